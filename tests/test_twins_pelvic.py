"""Pelvic twins end to end: each twin streams through plain bleak to its driver.

Every twin runs on the virtual radio with a seeded body; the connection
layer's :class:`~devices.ble.BleSource` (``establish_connection(BleakClient,
...)``) runs the driver's ``start``; what arrives must be exactly what the twin
sent, at the twin's rate, and match the body through the twin's documented
conversion. The Magic Motion test checks through the twin's ``writes`` log
that nothing ever reaches its (bricking) OAD service.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from bleak import BleakClient

import devices.drivers as drivers_pkg
from devices.ble import BleSource, ReconnectPolicy, resolve_device, scan
from devices.clock import SimClock
from devices.drivers.base import Driver, DriverIO, RawPacket
from devices.drivers.declarative import load_toml_driver
from devices.drivers.elvie import ElvieDriver
from devices.drivers.gdx_rb import GdxRbDriver
from devices.drivers.kgoal import KGoalDriver
from devices.drivers.magic_motion import MM_OAD_SERVICE, MagicMotionDriver
from devices.drivers.perifit import PERIFIT_TWIN_CHAR, PerifitDriver
from devices.errors import WriteNotAllowedError
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins import CountsConversion
from devices.virtual.twins.elvie import ELVIE_CONVERSION, ElvieTwin
from devices.virtual.twins.kgoal import KGOAL_CONVERSION, KGoalTwin
from devices.virtual.twins.magic_motion import (
    MM_CONVERSION,
    MM_OAD_BLOCK,
    MM_OAD_IDENTIFY,
    MagicMotionTwin,
)
from devices.virtual.twins.perifit import (
    PERIFIT_BASE_CONVERSION,
    PERIFIT_TIP_CONVERSION,
    PerifitTwin,
)
from devices.virtual.world import TwinSpec, VirtualWorld

pytestmark = pytest.mark.asyncio

EXAMPLES = Path(drivers_pkg.__file__).parent / "examples"

FAST = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=2, stall_timeout=2.0)


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


async def stream(
    radio: VirtualRadio,
    driver: Driver,
    name: str,
    clock: SimClock,
    seconds: float,
    chars: set[str] | None = None,
) -> tuple[list[Chunk | LinkEvent], BleSource]:
    """Connect to ``name`` with ``driver`` through BleSource and collect ``seconds``.

    ``chars`` collects the characteristics the raw packets came from.
    """
    found = await resolve_device(name, Registry([driver]), clock, backend=virtual_backend(radio))

    def on_raw(pkt: RawPacket) -> None:
        if chars is not None:
            chars.add(pkt.char)

    src = BleSource(found.device, driver, clock, policy=FAST, on_raw=on_raw, backend=found.backend)
    items: list[Chunk | LinkEvent] = []

    async def go() -> None:
        async for item in src:
            items.append(item)

    async with src:
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(go(), seconds)
    return items, src


def joined(items: list[Chunk | LinkEvent], stream: str) -> tuple[np.ndarray, np.ndarray]:
    chunks = [i for i in items if isinstance(i, Chunk) and i.stream == stream]
    assert chunks, f"no {stream} chunks"
    return np.concatenate([c.t for c in chunks]), np.concatenate([c.values for c in chunks])


def assert_matches_body(
    history: list[tuple[float, tuple[int, ...]]],
    body: BodyModel,
    conv: CountsConversion,
    column: int,
    channel: int,
) -> None:
    """What the twin sent is the body's pressure through its conversion (within noise)."""
    t = np.array([h[0] for h in history])
    sent = np.array([h[1][column] for h in history], dtype=float)
    expected = conv.offset + conv.gain * body.pelvic_pressure(t)[:, channel]
    err = sent - expected
    assert abs(err.mean()) < 0.5 + 0.5 * conv.noise
    assert err.std() < conv.noise + 0.5  # noise plus quantisation
    assert np.ptp(sent) > 2 * conv.noise  # breathing and tone move it


async def test_kgoal_twin_streams_raw_first_at_50_hz(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    body = BodyModel(11, t0=clock.now())
    twin = KGoalTwin(radio, clock, body=body, name="Boost", seed=1)
    await twin.start()
    try:
        items, src = await stream(radio, KGoalDriver(), "Boost", clock, 10.0)
        t, v = joined(items, "kgoal.pressure")
        assert 480 <= t.size <= 510
        assert np.median(np.diff(t)) == pytest.approx(0.02, abs=1e-4)
        sent = np.array([h[1] for h in list(twin.history)[: t.size]], dtype=float)
        np.testing.assert_array_equal(v, sent)  # (raw, calibrated), byte for byte
        assert twin.calibration_point is not None
        np.testing.assert_array_equal(v[:, 1], np.maximum(0, v[:, 0] - twin.calibration_point))
        assert_matches_body(list(twin.history), body, KGOAL_CONVERSION, 0, 0)
        battery = [i for i in items if isinstance(i, LinkEvent) and i.kind is LinkKind.BATTERY]
        assert battery and battery[0].value == 87
        assert twin.writes == []  # subscribe only: no start command
        assert src.stats.malformed == 0
    finally:
        await twin.stop()


async def test_kgoal_toml_driver_streams_from_the_twin(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = KGoalTwin(radio, clock, body=BodyModel(12, t0=clock.now()), name="Boost", seed=2)
    await twin.start()
    try:
        toml = load_toml_driver(EXAMPLES / "kgoal.toml")
        items, _ = await stream(radio, toml, "Boost", clock, 4.0)
        _, v = joined(items, "kgoal-toml.pressure")
        sent = np.array([h[1] for h in list(twin.history)[: v.shape[0]]], dtype=float)
        np.testing.assert_array_equal(v, sent)
    finally:
        await twin.stop()


async def test_perifit_twin_two_channels_found_by_short_uuid(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    body = BodyModel(13, t0=clock.now())
    twin = PerifitTwin(radio, clock, body=body, name="Perifit_o)", seed=3)
    await twin.start()
    try:
        chars: set[str] = set()
        items, src = await stream(radio, PerifitDriver(), "Perifit_o)", clock, 10.0, chars)
        t, v = joined(items, "perifit.pressure")
        assert v.shape[1] == 2 and 190 <= t.size <= 205  # 20 Hz
        chunk = next(i for i in items if isinstance(i, Chunk))
        assert chunk.channels == ("base", "tip")
        sent = np.array([h[1] for h in list(twin.history)[: t.size]], dtype=float)
        np.testing.assert_array_equal(v, sent)
        assert np.all(v <= 0x1400)
        assert_matches_body(list(twin.history), body, PERIFIT_BASE_CONVERSION, 0, 0)
        assert_matches_body(list(twin.history), body, PERIFIT_TIP_CONVERSION, 1, 1)
        assert chars == {PERIFIT_TWIN_CHAR}  # "aa41" resolved after discovery
        assert src.stats.malformed == 0
    finally:
        await twin.stop()


async def test_elvie_twin_is_polled_at_10_hz(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    body = BodyModel(14, t0=clock.now())
    twin = ElvieTwin(radio, clock, body=body, name="Elvie Trainer", seed=4)
    await twin.start()
    try:
        items, _ = await stream(radio, ElvieDriver(), "Elvie Trainer", clock, 10.0)
        t, v = joined(items, "elvie.pressure")
        assert 95 <= t.size <= 102
        assert np.median(np.diff(t)) == pytest.approx(0.1, abs=2e-3)
        sent = np.array([h[1][0] for h in list(twin.history)[: t.size]], dtype=float)
        np.testing.assert_array_equal(v[:, 0], sent)
        assert twin.reads >= t.size
        assert v.min() >= 8 and v.max() <= 22  # 9..21 observed on the device
        h = list(twin.history)
        times = np.array([x[0] for x in h])
        expected = ELVIE_CONVERSION.to_counts(body.pelvic_pressure(times)[:, 0])
        assert np.mean(np.abs(np.array([x[1][0] for x in h]) - expected)) < 0.6
        assert twin.writes == []
    finally:
        await twin.stop()


async def test_magic_motion_twin_streams_and_driver_never_writes(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    body = BodyModel(15, t0=clock.now())
    twin = MagicMotionTwin(radio, clock, body=body, name="Smart Bean3", seed=5)
    await twin.start()
    try:
        items, _ = await stream(radio, MagicMotionDriver(), "Smart Bean3", clock, 10.0)
        t, v = joined(items, "magic-motion.pressure")
        assert 190 <= t.size <= 205
        sent = np.array([h[1][0] for h in list(twin.history)[: t.size]], dtype=float)
        np.testing.assert_array_equal(v[:, 0], sent)
        assert_matches_body(list(twin.history), body, MM_CONVERSION, 0, 0)
        # Connect, subscribe, stream, stop, disconnect: not one write reached the toy.
        assert twin.writes == []
        assert not twin.bricked
        # The danger is real: the twin does expose writable OAD characteristics.
        found = await resolve_device(
            "Smart Bean3", Registry([MagicMotionDriver()]), clock, backend=virtual_backend(radio)
        )
        async with BleakClient(found.device, **found.backend.client_kwargs()) as client:
            oad = client.services.get_service(MM_OAD_SERVICE)
            assert oad is not None
            props = {c.uuid: c.properties for c in oad.characteristics}
            assert "write" in props[MM_OAD_IDENTIFY] and "write" in props[MM_OAD_BLOCK]
        assert twin.writes == []
    finally:
        await twin.stop()


class RogueMagicMotion(MagicMotionDriver):
    """A buggy driver that tries to write to the OAD image-identify characteristic."""

    async def start(self, io: DriverIO) -> None:
        await super().start(io)
        await io.write(MM_OAD_IDENTIFY, b"\x00" * 16, response=True)


async def test_magic_motion_oad_write_is_refused_before_the_radio(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = MagicMotionTwin(radio, clock, body=BodyModel(16, t0=clock.now()), name="Smart Bean")
    await twin.start()
    try:
        found = await resolve_device(
            "Smart Bean", Registry([MagicMotionDriver()]), clock, backend=virtual_backend(radio)
        )
        src = BleSource(found.device, RogueMagicMotion(), clock, policy=FAST, backend=found.backend)
        with pytest.raises(WriteNotAllowedError, match="may not write to f000ffc1"):
            async with src:
                async for _ in src:
                    pass
        assert twin.writes == [] and not twin.bricked
    finally:
        await twin.stop()


async def test_a_write_to_oad_would_brick_the_twin(radio: VirtualRadio) -> None:
    # What the whitelist prevents: bleak itself writes anywhere it is told to.
    clock = SimClock(speed=None)
    twin = MagicMotionTwin(radio, clock, body=BodyModel(17, t0=clock.now()), name="Magic Bean")
    await twin.start()
    try:
        found = await resolve_device(
            "Magic Bean", Registry([MagicMotionDriver()]), clock, backend=virtual_backend(radio)
        )
        async with BleakClient(found.device, **found.backend.client_kwargs()) as client:
            await client.write_gatt_char(MM_OAD_BLOCK, b"\x01\x02", response=True)
        assert twin.writes == [(MM_OAD_BLOCK, b"\x01\x02")]
        assert twin.bricked
    finally:
        await twin.stop()


async def test_world_twins_are_matched_to_their_drivers() -> None:
    clock = SimClock(speed=None)
    specs = [
        TwinSpec("kgoal", "devices.virtual.twins.kgoal:KGoalTwin", "Boost"),
        TwinSpec("gdx-rb", "devices.virtual.twins.gdx_rb:GdxRbTwin", "GDX-RB 0K2001A7"),
        TwinSpec("perifit", "devices.virtual.twins.perifit:PerifitTwin", "Perifit_o)"),
        TwinSpec("elvie", "devices.virtual.twins.elvie:ElvieTwin", "Elvie Trainer"),
        TwinSpec(
            "magic-motion", "devices.virtual.twins.magic_motion:MagicMotionTwin", "Smart Bean3"
        ),
    ]
    reg = Registry(
        [KGoalDriver(), PerifitDriver(), ElvieDriver(), MagicMotionDriver(), GdxRbDriver()]
    )
    async with VirtualWorld(clock, seed=3, twins=specs, faults={}) as world:
        found = await scan(reg, clock, timeout=1.0, backend=world.backend)
    by_name = {f.name: f.driver.id if f.driver else None for f in found}
    assert by_name == {s.name: s.family for s in specs}


@pytest.mark.parametrize(("rate", "conversions"), [
    (50.0, (KGOAL_CONVERSION,)),
    (20.0, (PERIFIT_BASE_CONVERSION, PERIFIT_TIP_CONVERSION)),
])
async def test_block_reads_give_the_counts_of_one_query_per_sample(
    rate: float, conversions: tuple[CountsConversion, ...]
) -> None:
    """A twin's block reads (BodySamples + to_count) = one body query per sample, bit for bit,
    also when the body's intent changes between samples and a belt read comes in between."""
    from devices.intent import Intent, PelvicAction, free_breathing
    from devices.virtual.twins import BodySamples

    def counts(blocks: bool) -> list[tuple[int, ...]]:
        squeeze = [False]
        body = BodyModel(5, t0=0.3, intent=lambda t: (
            Intent(pelvic=PelvicAction.CONTRACT) if squeeze[0] else free_breathing(t)))
        rng = np.random.default_rng(9)
        samples = BodySamples(body, 0.41, 1.0 / rate)
        t, out = 0.41, []
        for k in range(int(8 * rate)):
            t += 1.0 / rate
            squeeze[0] = k % 37 > 20  # the person follows a prompt that changes
            if k % 5 == 0:
                body.belt_force(np.array([t]))
            if blocks:
                assert samples.t == t
                p = samples.take()
                out.append(tuple(c.to_count(p[i], rng) for i, c in enumerate(conversions)))
            else:
                q = body.pelvic_pressure(np.array([t]))[0]
                out.append(tuple(int(c.to_counts(q[i], rng)) for i, c in enumerate(conversions)))
        return out

    one_by_one = counts(False)
    assert counts(True) == one_by_one
    assert len(set(one_by_one)) > 20  # the signal moves (a real comparison)
