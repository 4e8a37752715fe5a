"""Which sensors a session streams from: found by name, remembered, counted.

:func:`find_devices_named` scans for the named sensors (the demo's twins),
:func:`remember_devices` stores them as known, :func:`source_prefix` names a
source's streams after its device and :func:`stream_stats` counts what each
stream delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biofeedback.paths import store_path
from biofeedback.store import Store
from devices.ble import BleSource
from devices.ble_scan import PLATFORM, BleBackend, Found, scan
from devices.clock import Clock
from devices.errors import DeviceNotFoundError
from devices.registry import Registry
from devices.stream import StreamKey

__all__ = ["find_devices_named", "remember_devices", "source_prefix", "stream_stats"]


async def find_devices_named(
    names: Sequence[str],
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 2.0,
    backend: BleBackend = PLATFORM,
) -> list[Found]:
    """Scan until a device whose name starts with each of ``names`` (with a driver) is seen.

    Raises
    ------
    DeviceNotFoundError
        When one of them is not advertising.
    """
    wanted = [n.lower() for n in names]
    seen: list[Found] = []

    def seen_all(f: Found) -> bool:
        seen.append(f)
        return all(any(_named(x, w) for x in seen) for w in wanted)

    found = await scan(registry, clock, timeout=timeout, stop_when=seen_all, backend=backend)
    chosen = []
    for name, w in zip(names, wanted, strict=True):
        matches = [f for f in found if _named(f, w)]
        if not matches:
            raise DeviceNotFoundError(f"{name} not found (is it on, charged and in range?)")
        chosen.append(matches[0])
    return chosen


def _named(f: Found, prefix: str) -> bool:
    return f.driver is not None and (f.name or "").lower().startswith(prefix)


def remember_devices(chosen: Sequence[Found], *, virtual: bool, demo: bool = False) -> None:
    """Store the chosen devices as known (``pair`` without asking; ``demo``: as the demo's)."""
    with Store(store_path()) as store:
        for f in chosen:
            assert f.driver is not None
            store.remember_device(
                address=f.adv.address, name=f.name, driver=f.driver.id,
                support=str(f.driver.info.support), virtual=virtual, demo=demo,
            )


def source_prefix(f: Found) -> str:
    """What the source puts before its stream names: the :class:`StreamKey` id of the
    device and driver (``"<device name>/<driver>."``), so link events map to streams."""
    assert f.driver is not None
    device = (f.name or f.adv.address).replace("/", "_")
    return StreamKey(stream="", driver=f.driver.id, device=device).id


def stream_stats(sources: Sequence[BleSource]) -> dict[str, dict[str, Any]]:
    """Per-stream counters, named ``<driver>.<stream>`` (the ``demo --json`` keys)."""
    out: dict[str, dict[str, Any]] = {}
    for s in sources:
        for spec in s.driver.info.streams:
            st = s.stats.streams[s.prefix + spec.name]
            rate = st.measured_rate()
            out[StreamKey(spec.name, s.driver.id).id] = {
                "samples": st.samples,
                "rate_hz": round(rate, 2) if rate else None,
                "gaps": st.gaps,
                "reconnects": s.reconnects,
            }
    return out
