"""Polar H10 end to end: the virtual twin on the virtual radio, read through
:class:`~devices.ble.BleSource` (ECG and ACC, link drop, power cycle, refused start)
and through plain bleak (the control point's answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from bleak import BleakClient

from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.clock import SimClock
from devices.drivers.base import RawPacket
from devices.drivers.hrs import HeartRateDriver
from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import PmdFrame
from devices.drivers.polar_h10 import PolarH10Driver
from devices.drivers.polar_pmd import (
    ECG_RATE_HZ,
    EPOCH_2019_NS,
    PMD_CP,
    PMD_DATA,
    MeasurementType,
    PmdResponse,
    ResponseStatus,
    SettingType,
)
from devices.errors import ConnectionFailedError
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.polar_h10 import DEFAULT_SENSOR_TIME_NS, PolarH10Twin, SentFrame

ECG, ACC = MeasurementType.ECG, MeasurementType.ACC


# ---------------------------------------------------------- twin, end to end

FAST = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=3, stall_timeout=2.0)
NAME = "Polar H10 A1B2C3D4"


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


async def _twin(radio: VirtualRadio, clock: SimClock, **kw: object) -> PolarH10Twin:
    body = BodyModel(3, t0=clock.now())
    twin = PolarH10Twin(radio, clock, body=body, name=NAME, seed=3, **kw)  # type: ignore[arg-type]
    await twin.start()
    return twin


async def _source(
    radio: VirtualRadio, clock: SimClock, driver: PolarH10Driver | None = None
) -> BleSource:
    reg = Registry([PolarH10Driver(), HeartRateDriver()])
    found = await resolve_device(NAME, reg, clock, backend=virtual_backend(radio))
    assert found.driver is not None and found.driver.id == "polar-h10"
    return BleSource(
        found.device, driver or PolarH10Driver(), clock, policy=FAST, backend=found.backend
    )


async def _collect(src: BleSource, clock: SimClock, seconds: float) -> list[Chunk | LinkEvent]:
    items: list[Chunk | LinkEvent] = []

    async def go() -> None:
        async for item in src:
            items.append(item)

    with pytest.raises(TimeoutError):
        await clock.wait_for(go(), seconds)
    return items


def _pairs(chunks: list[Chunk], sent: list[SentFrame]) -> list[tuple[Chunk, SentFrame]]:
    """Pair each chunk with the frame that carried the same samples."""
    pairs, j = [], 0
    for c in chunks:
        while j < len(sent) and not (
            sent[j].samples.shape == c.values.shape and np.array_equal(sent[j].samples, c.values)
        ):
            j += 1
        assert j < len(sent), "a chunk that the twin never sent"
        pairs.append((c, sent[j]))
        j += 1
    return pairs


def _match(chunks: list[Chunk], sent: list[SentFrame]) -> tuple[np.ndarray, np.ndarray]:
    """Pair each chunk with the frame that carried the same samples: (t, t_true)."""
    pairs = _pairs(chunks, sent)
    return np.concatenate([c.t for c, _ in pairs]), np.concatenate([f.t_host for _, f in pairs])


def _latency_floor(
    pairs: list[tuple[Chunk, SentFrame]], raw: list[RawPacket], window_s: float, drift: float
) -> np.ndarray:
    """Per sample: the least latency the estimator was shown in the last ``window_s``.

    Latency is a frame's arrival (host clock) minus the true time of its last
    sample. A frame seen ``age`` seconds ago can hold the mapping to its
    latency plus ``drift · age`` (the drift is only known that well from a few
    windows of minima). If every frame of a window came late (a busy host
    delays notifications), no estimator can know better than that.
    """
    arrival = {}
    for pkt in raw:
        if pkt.char == PMD_DATA:
            f = PmdFrame.from_bytes(pkt.data)
            arrival[(f.measurement, f.timestamp_ns)] = pkt.t
    t_recv = np.array([arrival[(int(f.measurement), f.timestamp_ns)] for _, f in pairs])
    lat = t_recv - np.array([f.t_host[-1] for _, f in pairs])
    floor = []
    for t in t_recv:
        seen = (t_recv > t - window_s) & (t_recv <= t)
        floor.append(np.min(lat[seen] + drift * (t - t_recv[seen])))
    return np.repeat(floor, [len(f.t_host) for _, f in pairs])


def _of(items: list[Chunk | LinkEvent], stream: str) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk) and i.stream == stream]


def _sent(twin: PolarH10Twin, m: MeasurementType) -> list[SentFrame]:
    return [f for f in twin.sent if f.measurement == m]


@pytest.mark.asyncio
async def test_twin_streams_ecg_and_acc_through_ble_source(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, latency_jitter_s=0.03)
    try:
        src = await _source(radio, clock)
        raw: list[RawPacket] = []
        src.on_raw = raw.append
        async with src:
            items = await _collect(src, clock, 40.0)
        kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
        assert kinds[:2] == [LinkKind.CONNECTING, LinkKind.CONNECTED]
        assert twin.commands[:2] == [bytes(c) for c in PolarH10Driver().start_commands()]
        assert twin.commands[-2:] == [b"\x03\x02", b"\x03\x00"]  # clean stop
        window_s = SensorClockTimestamper(ECG_RATE_HZ).window_s
        for stream, m, rate in (("polar-h10.ecg", ECG, 130.0), ("polar-h10.acc", ACC, 200.0)):
            chunks = _of(items, stream)
            pairs = _pairs(chunks, _sent(twin, m))
            t, truth = _match(chunks, _sent(twin, m))
            # Every frame the twin sent arrived, decoded to the same samples.
            assert sum(len(c) for c in chunks) == sum(len(f.samples) for f in _sent(twin, m))
            assert np.all(np.diff(t) > 0)
            assert (t.size - 1) / (t[-1] - t[0]) == pytest.approx(rate, rel=1e-3)
            err = t - truth
            # Once the drift is fitted: within 5 ms, or within the least latency
            # the estimator was shown in its window when every frame came later
            # (a loaded host delays notifications in real time while busy), the
            # drift known to 500 ppm (its spread over 20 s of ECG minima).
            bound = np.maximum(5e-3, _latency_floor(pairs, raw, window_s, 5e-4))
            settled = truth > truth[0] + 20
            assert np.all(np.abs(err[settled]) < bound[settled]), stream
            assert np.max(np.abs(err)) < 0.035
        acc = _of(items, "polar-h10.acc")[0]
        assert acc.channels == ("x", "y", "z") and acc.unit == "mG"
        xyz = np.concatenate([c.values for c in _of(items, "polar-h10.acc")])
        assert 800 < np.median(np.linalg.norm(xyz, axis=1)) < 1200  # gravity, in mG
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_twin_raw_frames_option(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, compressed=False)
    try:
        frames: list[bytes] = []
        src = await _source(radio, clock)
        src.on_raw = lambda pkt: frames.append(pkt.data) if pkt.char == PMD_DATA else None
        async with src:
            items = await _collect(src, clock, 5.0)
        acc_types = {f[9] for f in frames if f[0] == 2}
        assert acc_types == {0x01}
        t, _ = _match(_of(items, "polar-h10.acc"), _sent(twin, ACC))
        assert t.size > 800
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_link_drop_resends_start_and_keeps_the_clock(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, faults=Faults(drop_after=120, max_drops=1))
    try:
        src = await _source(radio, clock)
        async with src:
            items = await _collect(src, clock, 40.0)
        kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
        assert kinds.count(LinkKind.LOST) == 1 and kinds.count(LinkKind.CONNECTED) == 2
        # The H10 stopped streaming with the link: START was sent again.
        assert twin.starts[ECG] == 2 and twin.starts[ACC] == 2
        assert src.stats.streams["polar-h10.acc"].gaps >= 1
        for stream, m in (("polar-h10.ecg", ECG), ("polar-h10.acc", ACC)):
            t, truth = _match(_of(items, stream), _sent(twin, m))
            assert np.all(np.diff(t) > 0)
            # Same sensor clock after the reconnect: no re-anchoring needed.
            assert np.max(np.abs(t - truth)) < 5e-3, stream
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_power_cycle_resets_the_sensor_clock_and_streams_resume(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        src = await _source(radio, clock)
        raw: list[RawPacket] = []
        src.on_raw = raw.append

        async def cycle() -> None:
            await clock.sleep(12.0)
            await twin.power_cycle(off_s=1.0)

        async with src:
            task = asyncio.ensure_future(cycle())
            items = await _collect(src, clock, 30.0)
            await task
        assert twin.power_cycles == 1 and twin.starts[ACC] == 2
        stamps = [PmdFrame.from_bytes(p.data).timestamp_ns for p in raw if p.char == PMD_DATA]
        assert stamps[0] > DEFAULT_SENSOR_TIME_NS  # 2025
        assert EPOCH_2019_NS < stamps[-1] < EPOCH_2019_NS + 60 * 10**9  # back to 2019
        t, truth = _match(_of(items, "polar-h10.acc"), _sent(twin, ACC))
        assert np.all(np.diff(t) > 0)
        # Host times stay right across the jump of the sensor clock.
        assert np.max(np.abs(t - truth)) < 5e-3
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_start_refused_by_the_strap_is_a_connection_error(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, start_status=ResponseStatus.DEVICE_IN_CHARGER)
    try:
        src = await _source(radio, clock)
        async with src:
            with pytest.raises(ConnectionFailedError, match="DEVICE_IN_CHARGER"):
                async for _ in src:
                    pass
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_twin_control_point_through_plain_bleak(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        answers: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(twin.address, **virtual_backend(radio).client_kwargs()) as client:
            assert bytes(await client.read_gatt_char(PMD_CP)) == b"\x0f\x05"
            await client.start_notify(PMD_CP, lambda _c, d: answers.put_nowait(bytes(d)))

            async def ask(cmd: str) -> PmdResponse:
                await client.write_gatt_char(PMD_CP, bytes.fromhex(cmd), response=True)
                return PmdResponse.from_bytes(await asyncio.wait_for(answers.get(), 2.0))

            got = await ask("01 02")
            assert got.status == 0 and got.settings.values[SettingType.SAMPLE_RATE] == (
                25,
                50,
                100,
                200,
            )
            assert (await ask("01 00")).settings.values[SettingType.RESOLUTION] == (14,)
            bad = {
                "02 02 00 01 78 00 01 01 10 00 02 01 08 00": ResponseStatus.INVALID_SAMPLE_RATE,
                "02 02 00 01 C8 00 01 01 0C 00 02 01 08 00": ResponseStatus.INVALID_RESOLUTION,
                "02 02 00 01 C8 00 01 01 10 00 02 01 10 00": ResponseStatus.INVALID_RANGE,
                "02 02 00 01 C8 00 01 01 10 00": ResponseStatus.INVALID_PARAMETER,
                "02 00 00 01 82 00 01 01 0E": ResponseStatus.INVALID_PARAMETER,
                "02 01": ResponseStatus.NOT_SUPPORTED,  # PPG: not on an H10
                "02 09": ResponseStatus.INVALID_MEASUREMENT_TYPE,
                "02 80": ResponseStatus.NOT_SUPPORTED,  # offline recording
                "07 00": ResponseStatus.INVALID_OP_CODE,
                "02": ResponseStatus.INVALID_LENGTH,
                "03 00": ResponseStatus.ALREADY_IN_STATE,  # stop what never started
            }
            for cmd, status in bad.items():
                assert (await ask(cmd)).status == status, cmd
            start = "02 00 00 01 82 00 01 01 0E 00"
            assert (await ask(start)).status == ResponseStatus.SUCCESS
            assert (await ask(start)).status == ResponseStatus.ALREADY_IN_STATE
            assert (await ask("03 00")).status == ResponseStatus.SUCCESS
        assert twin.starts == {ECG: 1}
        assert [r.status for r in twin.responses] == [0, 0, *bad.values(), 0, 6, 0]
    finally:
        await twin.stop()
