"""Every sensor family survives a lost link: reconnect, start re-sent, stream goes on.

Each family's twin drops the link once mid-stream (fault injection); the
connection layer must report the loss, reconnect through plain bleak on the
virtual radio, re-send whatever start commands the protocol needs, and keep
delivering samples on the same iterator with the gap counted.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.clock import SimClock
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind
from devices.virtual.peripheral import Faults
from devices.virtual.world import DEFAULT_TWINS, VirtualWorld

pytestmark = pytest.mark.asyncio

SPECS = {s.family: s for s in DEFAULT_TWINS}
POLICY = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=4, stall_timeout=None)


def _start_commands(twin: object) -> int:
    """How many times the twin was told to start (protocols with a start command)."""
    starts = getattr(twin, "starts", None)
    if starts is not None and hasattr(starts, "values"):
        return int(min(starts.values())) if starts else 0  # Polar: ECG and ACC each
    commands = getattr(twin, "commands", None)
    if commands is not None:
        return sum(1 for c in commands if c == 0x18)  # GDX-RB START
    return -1  # no start command in this protocol


@pytest.mark.parametrize("family", sorted(SPECS))
async def test_link_drop_reconnects_and_resends_start(family: str) -> None:
    clock = SimClock(speed=None)
    spec = SPECS[family]
    # Poll-based sensors send no notifications: drop them at a time instead.
    if family == "elvie":
        fault = Faults(drop_at=20.0)
    else:  # the heart-rate strap notifies once a second, the others many times
        fault = Faults(drop_after=15 if family == "hrs" else 60, max_drops=1)
    async with VirtualWorld(clock, seed=2, twins=[spec], faults={spec.name: fault}) as world:
        reg = Registry.builtin()
        found = await resolve_device(spec.name, reg, clock, backend=world.backend)
        assert found.driver is not None and found.driver.id == family
        twin = world.twin(family)
        items: list[Chunk | LinkEvent] = []
        src = BleSource(found.device, found.driver, clock, policy=POLICY, backend=found.backend)
        async with src:

            async def collect() -> None:
                async for item in src:
                    items.append(item)

            with contextlib.suppress(TimeoutError):
                await clock.wait_for(collect(), 45.0)
        kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
        assert LinkKind.LOST in kinds, kinds
        lost_at = kinds.index(LinkKind.LOST)
        assert LinkKind.CONNECTED in kinds[lost_at:], kinds
        t_lost = next(i.t for i in items if isinstance(i, LinkEvent) and i.kind == LinkKind.LOST)
        after = [i for i in items if isinstance(i, Chunk) and i.t[0] > t_lost]
        assert after, "no samples after the reconnect"
        assert src.reconnects == 1
        starts = _start_commands(twin)
        if starts != -1:
            assert starts >= 2, f"{family}: start not re-sent after the reconnect"
        for name, st in src.stats.streams.items():
            if st.samples and st.rate_hz:
                chunks = [c for c in items if isinstance(c, Chunk) and c.stream == name]
                t = np.concatenate([c.t for c in chunks])
                assert np.all(np.diff(t) > 0), f"{name}: times go back"
