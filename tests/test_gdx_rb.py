"""Vernier GDX-RB: frames, measurement packets, reassembly, the start sequence, the twin.

Frames are hand-built from the vendor code's layouts (``godirect-py``
``device.py``, ``godirect-js`` ``Device.js``; ``notes/ble-protocols.md`` §3.1);
the checksum is recomputed here with the vendor's own loop. The start sequence
is first driven through a scripted :class:`DriverIO` (protocol answers from
the twin's pure device model, split into 20-byte notifications, with stale
packets mixed in), then end to end: the twin on the virtual radio, plain
bleak through :class:`devices.ble.BleSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from bleak import BleakClient

from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.clock import Clock, SimClock
from devices.drivers.base import Advertisement, RawPacket
from devices.drivers.gdx_commands import (
    GDX_COMMAND,
    GDX_RESPONSE,
    Command,
    GdxCommandFrame,
    GdxResponse,
    RollingCounter,
    chunk_frame,
    frame_checksum,
    init_frame,
    set_period_frame,
    start_frame,
    stop_frame,
)
from devices.drivers.gdx_packets import (
    GdxDeviceInfo,
    GdxMeasurement,
    GdxReassembler,
    GdxSensorInfo,
    GdxStatus,
    MeasurementType,
)
from devices.drivers.gdx_rb import GdxParser, GdxRbDriver
from devices.errors import ConnectionFailedError, InputError, ParseError
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, SupportLevel
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.gdx_rb import BreathRateEstimator, GdxDeviceModel, GdxRbTwin

NAME = "GDX-RB 0K2001A7"


def vendor_checksum(buff: bytes) -> int:
    """``_GDX_calculate_checksum`` of godirect-py, line for line."""
    length = int(buff[1])
    checksum = -1 * int(buff[3])
    for i in range(length):
        checksum += int(buff[i])
        checksum = checksum & 0xFF
    return checksum


def measurement(mtype: int, head: bytes, floats: list[float], fmt: str = "<f") -> bytes:
    """A measurement packet ``20 len seq chk type head values`` with a valid checksum."""
    body = bytearray([0x20, 0, 0x42, 0, mtype]) + head
    for v in floats:
        body += struct.pack(fmt, v)
    body[1] = len(body)
    body[3] = vendor_checksum(bytes(body))
    return bytes(body)


# --------------------------------------------------------------------- command frames
def test_init_frame_bytes() -> None:
    ctr = RollingCounter()
    frame = bytes(init_frame(ctr.next()))
    assert frame.hex(" ") == (
        "58 19 fe 3f 1a a5 4a 06 49 07 48 08 47 09 46 0a 45 0b 44 0c 43 0d 42 0e 41"
    )
    assert frame[3] == vendor_checksum(frame) == frame_checksum(frame)


def test_command_frames_match_vendor_layouts() -> None:
    assert bytes(GdxCommandFrame(0xFD, Command.GET_STATUS)).hex() == "5805fd6a10"
    period = bytes(set_period_frame(0xF8, 100_000))
    assert period[:5] == bytes([0x58, 15, 0xF8, period[3], 0x1B])
    assert period[5:].hex() == "ff00a086010000000000"  # 100000 us = 0x0186A0 LE
    start = bytes(start_frame(0xF7, 0b110))
    assert len(start) == 19 and start[4:].hex() == "18ff01" + "06000000" + "00" * 8
    stop = bytes(stop_frame(0xF6))
    assert stop[1] == 11 and stop[4:].hex() == "19ff00ffffffff"
    info = bytes(GdxCommandFrame(0xF9, Command.GET_SENSOR_INFO, b"\x02"))
    assert info.hex()[:4] == "5806" and info[4:] == b"\x50\x02"
    for f in (period, start, stop, info):
        assert f[1] == len(f)
        assert f[3] == vendor_checksum(f)


def test_rolling_counter_resets_to_ff_and_wraps() -> None:
    ctr = RollingCounter()
    assert [ctr.next() for _ in range(3)] == [0xFE, 0xFD, 0xFC]
    ctr.value = 0x01
    assert [ctr.next(), ctr.next()] == [0x00, 0xFF]
    ctr.reset()
    assert ctr.next() == 0xFE


def test_chunking_at_most_20_bytes() -> None:
    frame = bytes(init_frame(0xFE))
    parts = chunk_frame(frame)
    assert [len(p) for p in parts] == [20, 5]
    assert b"".join(parts) == frame
    assert chunk_frame(bytes(start_frame(1, 2))) == [bytes(start_frame(1, 2))]


def test_command_frame_rejects_bad_checksum_header_and_length() -> None:
    good = bytearray(bytes(GdxCommandFrame(0xFD, Command.GET_STATUS)))
    assert GdxCommandFrame.from_bytes(bytes(good)) == GdxCommandFrame(0xFD, Command.GET_STATUS)
    bad = bytearray(good)
    bad[3] ^= 0x01
    with pytest.raises(ParseError, match="checksum"):
        GdxCommandFrame.from_bytes(bytes(bad))
    assert GdxCommandFrame.from_bytes(bytes(bad), verify=False).command == Command.GET_STATUS
    bad = bytearray(good)
    bad[0] = 0x57
    with pytest.raises(ParseError, match="starts with 0x57"):
        GdxCommandFrame.from_bytes(bytes(bad))
    with pytest.raises(ParseError, match="length byte 5 != 6"):
        GdxCommandFrame.from_bytes(bytes(good) + b"\x00")
    with pytest.raises(ParseError, match="needs 5 bytes"):
        GdxCommandFrame.from_bytes(bytes(good[:4]))


# ------------------------------------------------------------------------- responses
def test_response_layout_echoes_command_and_counter() -> None:
    resp = GdxResponse(Command.GET_SENSOR_AVAILABLE_MASK, 0xFB, struct.pack("<I", 0x1E), seq=0x10)
    raw = bytes(resp)
    assert raw[1] == len(raw) == 10
    assert (raw[4], raw[5]) == (0x51, 0xFB)  # vendor: command at [4], counter at [5]
    assert struct.unpack("<I", raw[6:])[0] == 0x1E  # vendor: struct.unpack("<I", response[6:])
    assert raw[3] == vendor_checksum(raw)
    assert GdxResponse.from_bytes(raw) == resp
    with pytest.raises(ParseError, match="is a measurement"):
        GdxResponse.from_bytes(measurement(6, bytes(4), []))


def test_payload_sizes_and_vendor_offsets() -> None:
    assert len(bytes(GdxStatus())) == 12  # '<xxxxxxBBBBHBBHBB' minus the 6-byte header
    assert len(bytes(GdxDeviceInfo())) == 152  # '<xxxxxx16s16s32sHHBBBBHBBHBBBBBBI64s'
    info = GdxSensorInfo(
        number=1,
        sensor_id=7001,
        description="Force",
        unit="N",
        uncertainty=0.01,
        min_value=-1.5,
        max_value=50.0,
        min_period_us=50_000,
        max_period_us=2**40,
        typ_period_us=100_000,
        granularity_us=1_000,
        mutual_exclusion_mask=0x8,
    )
    frame = bytes(GdxResponse(Command.GET_SENSOR_INFO, 0xF9, bytes(info)))
    assert len(frame) == 154
    # Offsets used by godirect-js Device.js (relative to the payload at [6]).
    p = frame[6:]
    assert p[0] == 1 and struct.unpack_from("<I", p, 2)[0] == 7001
    assert frame[14:19] == b"Force" and frame[74:75] == b"N"
    assert struct.unpack_from("<d", p, 108)[0] == -1.5
    assert struct.unpack_from("<d", p, 116)[0] == 50.0
    assert struct.unpack_from("<I", p, 124)[0] == 50_000
    assert struct.unpack_from("<Q", p, 128)[0] == 2**40
    assert struct.unpack_from("<I", p, 136)[0] == 100_000
    assert struct.unpack_from("<I", p, 144)[0] == 0x8
    assert GdxSensorInfo.from_bytes(p) == info
    dev = GdxDeviceInfo(serial_number="0K2001A7", device_name=NAME, ble_address=bytes(range(6)))
    assert GdxDeviceInfo.from_bytes(bytes(dev)) == dev
    assert bytes(dev)[16:24] == b"0K2001A7"  # js: serial at buffer offset 22 = payload 16
    status = GdxStatus(battery_percent=55, charger_state=1)
    assert bytes(status)[10] == 55  # godirect-js: battery = payload.getUint8(10)
    assert GdxStatus.from_bytes(bytes(status)) == status
    with pytest.raises(ParseError, match="sensor info needs 148 bytes"):
        GdxSensorInfo.from_bytes(p[:147])


# ----------------------------------------------------------------------- measurements
def test_normal_real32_interleaved_by_sample() -> None:
    # Mask 0b110 (force, rate), 2 samples: f0 r0 f1 r1 from [9].
    pkt = measurement(6, struct.pack("<HBB", 0b110, 2, 0), [1.5, math.nan, 2.25, 14.5])
    out = GdxParser().feed(GDX_RESPONSE, pkt)
    assert [d.stream for d in out] == ["force", "rate"]
    np.testing.assert_array_equal(out[0].values, [[1.5], [2.25]])
    np.testing.assert_array_equal(out[1].values, [[math.nan], [14.5]])
    m = GdxMeasurement.from_bytes(pkt, verify=True)
    assert m.sensors == (1, 2) and m.values.shape == (2, 2)


def test_measurement_roundtrip_is_byte_exact() -> None:
    values = np.array([[10.5, math.nan], [11.0, 12.25]])
    m = GdxMeasurement(MeasurementType.NORMAL_REAL32, (1, 2), values, seq=0x42)
    raw = bytes(m)
    assert raw == measurement(6, struct.pack("<HBB", 0b110, 2, 0), [10.5, math.nan, 11.0, 12.25])
    back = GdxMeasurement.from_bytes(raw, verify=True)
    np.testing.assert_array_equal(back.values, values)


def test_wide_and_single_channel_types() -> None:
    wide = measurement(7, struct.pack("<IBB", (1 << 1) | (1 << 20), 1, 0), [3.0, 99.0])
    (d,) = GdxParser().feed(GDX_RESPONSE, wide)
    np.testing.assert_array_equal(d.values, [[3.0]])  # sensor 20 is not ours
    single = measurement(8, bytes([0, 1, 3]), [1.0, 2.0, 3.0])  # spare, sensor 1, count 3
    (d,) = GdxParser().feed(GDX_RESPONSE, single)
    assert d.stream == "force"
    np.testing.assert_array_equal(d.values, [[1.0], [2.0], [3.0]])
    aper = measurement(0x0A, bytes([0, 2, 1]), [17.5])
    (d,) = GdxParser().feed(GDX_RESPONSE, aper)
    assert d.stream == "rate" and d.values[0, 0] == 17.5
    for t in (0x09, 0x0B):
        ints = measurement(t, bytes([0, 2, 2]), [-7, 2**31 - 1], fmt="<i")
        (d,) = GdxParser().feed(GDX_RESPONSE, ints)
        np.testing.assert_array_equal(d.values, [[-7], [2**31 - 1]])


@pytest.mark.parametrize("mtype", [0x0C, 0x0D, 0x0E])
def test_start_time_dropped_period_are_ignored(mtype: int) -> None:
    pkt = measurement(mtype, bytes(range(8)), [])
    assert GdxParser().feed(GDX_RESPONSE, pkt) == []
    assert bytes(GdxMeasurement.from_bytes(pkt)) == pkt


def test_unknown_type_and_truncated_values_raise() -> None:
    with pytest.raises(ParseError, match="type 0x05 is unknown"):
        GdxParser().feed(GDX_RESPONSE, measurement(5, bytes(4), []))
    # Announces 3 samples of 2 sensors (24 bytes) but carries 2 values.
    short = measurement(6, struct.pack("<HBB", 0b110, 3, 0), [1.0, 2.0])
    with pytest.raises(ParseError, match=r"announces 3 x 2 values"):
        GdxParser().feed(GDX_RESPONSE, short)
    with pytest.raises(ParseError, match="NORMAL_REAL32 needs 9 bytes"):
        GdxMeasurement.from_bytes(measurement(6, b"\x06\x00", []))


def test_zero_count_and_empty_mask_give_nothing() -> None:
    assert (
        GdxParser().feed(GDX_RESPONSE, measurement(6, struct.pack("<HBB", 0b110, 0, 0), [])) == []
    )
    assert GdxParser().feed(GDX_RESPONSE, measurement(6, struct.pack("<HBB", 0, 5, 0), [])) == []
    (d,) = GdxParser().feed(
        GDX_RESPONSE, measurement(6, struct.pack("<HBB", 0b1010, 1, 0), [4.0, 0.0])
    )
    assert d.stream == "force"  # sensor 3 (steps) is dropped


def test_checksum_checked_only_when_asked() -> None:
    pkt = bytearray(measurement(6, struct.pack("<HBB", 0b10, 1, 0), [5.0]))
    pkt[3] ^= 0xFF
    (d,) = GdxParser().feed(GDX_RESPONSE, bytes(pkt))  # the vendor code never checks
    assert d.values[0, 0] == 5.0
    with pytest.raises(ParseError, match="checksum"):
        GdxParser(verify_checksum=True).feed(GDX_RESPONSE, bytes(pkt))


# ------------------------------------------------------------------------- reassembly
def test_measurement_split_across_notifications() -> None:
    pkt = measurement(6, struct.pack("<HBB", 0b110, 3, 0), [1, 2, 3, 4, 5, 6])  # 33 bytes
    parser = GdxParser()
    first, second = pkt[:20], pkt[20:]
    assert parser.feed(GDX_RESPONSE, first) == []
    out = parser.feed(GDX_RESPONSE, second)
    np.testing.assert_array_equal(out[0].values.ravel(), [1, 3, 5])
    np.testing.assert_array_equal(out[1].values.ravel(), [2, 4, 6])


def test_byte_by_byte_and_two_frames_in_one_notification() -> None:
    a = measurement(6, struct.pack("<HBB", 0b10, 2, 0), [1.0, 2.0])
    b = measurement(6, struct.pack("<HBB", 0b10, 1, 0), [3.0])
    parser = GdxParser()
    got: list[float] = []
    for i in range(len(a)):
        for d in parser.feed(GDX_RESPONSE, a[i : i + 1]):
            got.extend(d.values.ravel())
    assert got == [1.0, 2.0]
    (d,) = parser.feed(GDX_RESPONSE, a + b)  # both frames, one stream, stacked
    np.testing.assert_array_equal(d.values.ravel(), [1.0, 2.0, 3.0])


def test_response_split_across_notifications_reassembles() -> None:
    info = bytes(GdxResponse(Command.GET_SENSOR_INFO, 0xF9, bytes(GdxSensorInfo(number=1))))
    r = GdxReassembler()
    frames = []
    for part in chunk_frame(info):
        frames += r.push(part)
    assert frames == [info] and r.pending == 0
    assert GdxParser().feed(GDX_RESPONSE, info) == []  # a command response carries no samples


def test_impossible_length_byte_raises_then_resynchronises() -> None:
    parser = GdxParser()
    with pytest.raises(ParseError, match="frame length 2 is below 5"):
        parser.feed(GDX_RESPONSE, b"\x20\x02\x00")
    good = measurement(6, struct.pack("<HBB", 0b10, 1, 0), [7.0])
    (d,) = parser.feed(GDX_RESPONSE, good)
    assert d.values[0, 0] == 7.0


def test_parser_reset_forgets_a_partial_frame() -> None:
    pkt = measurement(6, struct.pack("<HBB", 0b10, 4, 0), [1, 2, 3, 4])
    parser = GdxParser()
    assert parser.feed(GDX_RESPONSE, pkt[:10]) == []
    parser.reset()
    (d,) = parser.feed(GDX_RESPONSE, pkt)
    assert d.values.shape == (4, 1)


def test_other_characteristics_are_ignored() -> None:
    assert GdxParser().feed(GDX_COMMAND, measurement(6, b"\x02\x00\x01\x00", [1.0])) == []


# ----------------------------------------------------------------------------- driver
def test_driver_info_and_period() -> None:
    d = GdxRbDriver()
    assert d.info.support is SupportLevel.VENDOR_DOCUMENTED
    force, rate = d.info.streams
    assert (force.name, force.kind, force.unit, force.channels) == (
        "force",
        StreamKind.BREATH_FORCE,
        "N",
        ("force",),
    )
    assert (rate.name, rate.kind, rate.unit) == ("rate", StreamKind.BREATH_RATE, "bpm")
    assert force.rate_hz == rate.rate_hz == 10.0
    assert d.info.writable_chars == (GDX_COMMAND,)
    assert d.info.notify_chars == (GDX_RESPONSE,)
    assert GdxRbDriver(period_ms=50).info.stream("force").rate_hz == 20.0
    with pytest.raises(InputError, match="at least 50 ms"):
        GdxRbDriver(period_ms=40)
    assert d.matches(Advertisement(NAME, "A"))
    assert d.matches(Advertisement("GDX-RB", "A"))
    assert not d.matches(Advertisement("GDX-HD 123", "A"))  # another Go Direct sensor


class ScriptedIO:
    """A DriverIO answering like the belt: the twin's pure device model behind it.

    Every response is split into 20-byte notifications; before each response
    it can inject a stale measurement (a belt still streaming) and a stale
    response to an older counter.
    """

    def __init__(self, clock: SimClock, model: GdxDeviceModel, *, stale: bool = False) -> None:
        self.clock: Clock = clock
        self.sim = clock
        self.model = model
        self.stale = stale
        self.silent: set[int] = set()
        self.writes: list[tuple[str, bytes, bool]] = []
        self.subscribed: list[str] = []
        self.queue: asyncio.Queue[RawPacket] = asyncio.Queue()
        self._rx = GdxReassembler()

    def _notify(self, frame: bytes) -> None:
        for part in chunk_frame(frame):
            self.queue.put_nowait(RawPacket(self.clock.now(), GDX_RESPONSE, part))

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        self.writes.append((char, bytes(data), response))
        for raw in self._rx.push(data):
            frame = GdxCommandFrame.from_bytes(raw)
            if frame.command in self.silent:
                continue
            if self.stale:
                self._notify(measurement(6, struct.pack("<HBB", 0b110, 2, 0), [1, 2, 3, 4]))
                old = GdxResponse(frame.command, (frame.counter + 1) & 0xFF, b"\x00")
                self._notify(bytes(old))
            self._notify(self.model.handle(frame))

    async def read(self, char: str) -> bytes:
        raise AssertionError("the GDX-RB driver never reads")

    async def subscribe(self, char: str) -> None:
        self.subscribed.append(char)

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        return await self.sim.wait_for(self.queue.get(), timeout)


@pytest.mark.asyncio
@pytest.mark.parametrize("stale", [False, True])
async def test_start_sequence(stale: bool) -> None:
    clock = SimClock(speed=None)
    model = GdxDeviceModel(NAME, battery_percent=64)
    io = ScriptedIO(clock, model, stale=stale)
    driver = GdxRbDriver()
    await driver.start(io)
    assert driver.stale_packets == (22 if stale else 0)  # 11 measurements, 11 old responses
    assert io.subscribed == [GDX_RESPONSE]
    assert model.commands == [
        Command.INIT,
        Command.GET_STATUS,
        Command.GET_DEVICE_INFO,
        Command.GET_SENSOR_AVAILABLE_MASK,
        Command.GET_DEFAULT_SENSORS_MASK,
        Command.GET_SENSOR_INFO,  # sensors 1..4, one by one
        Command.GET_SENSOR_INFO,
        Command.GET_SENSOR_INFO,
        Command.GET_SENSOR_INFO,
        Command.SET_MEASUREMENT_PERIOD,
        Command.START_MEASUREMENTS,
    ]
    assert all(c == GDX_COMMAND and len(b) <= 20 and not r for c, b, r in io.writes)
    frames = GdxReassembler()
    sent = [GdxCommandFrame.from_bytes(f) for _, b, _ in io.writes for f in frames.push(b)]
    assert [f.counter for f in sent] == [0xFE - i for i in range(11)]
    assert model.measuring and model.mask == 0b110 and model.period_us == 100_000
    assert driver.status is not None and driver.status.battery_percent == 64
    assert driver.device_info is not None and driver.device_info.serial_number == "0K2001A7"
    assert [s.unit for s in driver.sensors.values()] == ["N", "bpm", "steps", "steps/min"]
    await driver.stop(io)
    stop = GdxCommandFrame.from_bytes(io.writes[-1][1])
    assert (stop.command, stop.counter) == (Command.STOP_MEASUREMENTS, 0xFE - 11)
    assert not model.measuring


@pytest.mark.asyncio
async def test_start_with_configured_period() -> None:
    clock = SimClock(speed=None)
    model = GdxDeviceModel(NAME)
    await GdxRbDriver(period_ms=50).start(ScriptedIO(clock, model))
    assert model.period_us == 50_000


@pytest.mark.asyncio
async def test_start_fails_clearly_when_a_command_is_not_answered() -> None:
    clock = SimClock(speed=None)
    io = ScriptedIO(clock, GdxDeviceModel(NAME))
    io.silent = {Command.GET_DEVICE_INFO}
    with pytest.raises(ConnectionFailedError, match="did not answer GET_DEVICE_INFO within 2 s"):
        await GdxRbDriver(timeout_s=2.0).start(io)


@pytest.mark.asyncio
async def test_start_refused_and_not_a_belt() -> None:
    clock = SimClock(speed=None)
    model = GdxDeviceModel(NAME)
    model.available_mask = 0b11  # sensor 1 answers with id 0 (godirect-js "false positive")
    model.sensors = {0: GdxSensorInfo(number=0, sensor_id=5)}
    with pytest.raises(ConnectionFailedError, match="no force channel 1"):
        await GdxRbDriver().start(ScriptedIO(clock, model))
    slow = {n: GdxSensorInfo(number=n, sensor_id=n, min_period_us=200_000) for n in (1, 2)}
    with pytest.raises(InputError, match="below the device's minimum 200 ms"):
        await GdxRbDriver().start(ScriptedIO(clock, GdxDeviceModel(NAME, slow)))


def test_device_model_answers_and_refuses() -> None:
    model = GdxDeviceModel(NAME)
    resp = GdxResponse.from_bytes(model.handle(set_period_frame(0x10, 10_000)), verify=True)
    assert (resp.command, resp.counter, resp.status) == (0x1B, 0x10, 1)  # 10 ms is too fast
    assert model.period_us == 100_000
    resp = GdxResponse.from_bytes(model.handle(start_frame(0x0F, 1 << 9)), verify=True)
    assert resp.status == 1 and not model.measuring  # sensor 9 does not exist


def test_breath_rate_estimator_nan_then_updates() -> None:
    est = BreathRateEstimator(0.1)
    est.reset(0.0)
    t = np.arange(0, 60, 0.1)
    x = 12 + np.sin(2 * np.pi * (15 / 60) * t)
    out = np.concatenate([est.push(t[i : i + 3], x[i : i + 3]) for i in range(0, t.size, 3)])
    assert np.all(np.isnan(out[t < 30 - 1e-9]))
    assert np.all(np.isfinite(out[t >= 30]))
    assert out[-1] == pytest.approx(15.0, abs=0.3)
    # Piecewise constant: changes only at 30, 40, 50 s.
    changes = t[1:][np.diff(np.nan_to_num(out)) != 0]
    assert np.allclose(changes, [30.0, 40.0, 50.0])


# --------------------------------------------------------------------- twin, end to end
@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


async def _collect(src: BleSource, clock: SimClock, seconds: float) -> list[Chunk | LinkEvent]:
    items: list[Chunk | LinkEvent] = []

    async def go() -> None:
        async for item in src:
            items.append(item)

    with contextlib.suppress(TimeoutError):
        await clock.wait_for(go(), seconds)
    return items


def _stream(items: list[Chunk | LinkEvent], name: str) -> tuple[np.ndarray, np.ndarray]:
    chunks = [c for c in items if isinstance(c, Chunk) and c.stream == name]
    return np.concatenate([c.t for c in chunks]), np.concatenate([c.values for c in chunks])


@pytest.mark.asyncio
async def test_twin_streams_force_and_rate_through_bleak(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    params = BodyParams(natural_rate_bpm=15.0, breath_irregularity=0.0)
    body = BodyModel(5, params=params, t0=clock.now())
    twin = GdxRbTwin(radio, clock, body=body, name=NAME, seed=1)
    await twin.start()
    try:
        found = await resolve_device(
            NAME, Registry([GdxRbDriver()]), clock, backend=virtual_backend(radio)
        )
        assert found.driver is not None and found.driver.id == "gdx-rb"
        src = BleSource(found.device, GdxRbDriver(), clock, backend=found.backend)
        async with src:
            items = await _collect(src, clock, 50.0)
        t, force = _stream(items, "gdx-rb.force")
        tr, rate = _stream(items, "gdx-rb.rate")
        assert 480 <= t.size <= 500  # 50 s at 10 Hz, several samples per packet
        assert np.diff(t) == pytest.approx(np.full(t.size - 1, 0.1), abs=2e-3)
        # 3 samples x 2 channels = a 33-byte packet: two 20-byte notifications each.
        assert src.stats.packets >= 2 * twin.packets_sent - 2
        assert np.array_equal(t, tr)
        # The force follows the body's belt (N), breathing clearly visible.
        assert 5 < force.mean() < 25 and np.ptp(force) > 1.0
        # Rate: NaN for the first 30 s of measuring, then the breathing rate.
        t_start = t[0]
        assert np.all(np.isnan(rate[tr < t_start + 29.5]))
        late = rate[tr > t_start + 31]
        assert late.size > 0 and np.all(np.isfinite(late))
        assert late[-1] == pytest.approx(15.0, abs=1.0)
        # Only ever written: the command characteristic, in chunks of <= 20 bytes.
        assert {c for c, _ in twin.writes} == {GDX_COMMAND}
        assert max(len(v) for _, v in twin.writes) <= 20
        assert twin.bad_frames == 0
        # STOP went out on close: the belt is no longer measuring.
        assert twin.model.commands[-1] == Command.STOP_MEASUREMENTS
        assert not twin.model.measuring
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_twin_at_20_hz(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = GdxRbTwin(radio, clock, body=BodyModel(2, t0=clock.now()), name=NAME, seed=2)
    await twin.start()
    try:
        found = await resolve_device(
            NAME, Registry([GdxRbDriver()]), clock, backend=virtual_backend(radio)
        )
        src = BleSource(found.device, GdxRbDriver(period_ms=50), clock, backend=found.backend)
        async with src:
            items = await _collect(src, clock, 10.0)
        t, _ = _stream(items, "gdx-rb.force")
        assert twin.model.period_us == 50_000
        assert twin.samples_per_packet() == 6
        assert 180 <= t.size <= 200
        assert np.median(np.diff(t)) == pytest.approx(0.05, abs=1e-3)
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_twin_protocol_through_plain_bleak_client(radio: VirtualRadio) -> None:
    clock = SimClock(speed=None)
    twin = GdxRbTwin(radio, clock, body=BodyModel(3, t0=clock.now()), name=NAME, seed=3)
    await twin.start()
    got: asyncio.Queue[bytes] = asyncio.Queue()
    reasm = GdxReassembler()

    def on_notify(_c: object, data: bytearray) -> None:
        assert len(data) <= 20
        for frame in reasm.push(bytes(data)):
            got.put_nowait(frame)

    async def command(frame: GdxCommandFrame) -> GdxResponse:
        for part in chunk_frame(bytes(frame)):
            await client.write_gatt_char(GDX_COMMAND, part, response=False)
        while True:
            raw = await asyncio.wait_for(got.get(), 2.0)
            if raw[0] != 0x20:
                return GdxResponse.from_bytes(raw, verify=True)

    try:
        found = await resolve_device(
            NAME, Registry([GdxRbDriver()]), clock, backend=virtual_backend(radio)
        )
        async with BleakClient(found.device, **found.backend.client_kwargs()) as client:
            await client.start_notify(GDX_RESPONSE, on_notify)
            await clock.sleep(2.0)
            assert got.empty() and twin.packets_sent == 0  # nothing before START
            ctr = RollingCounter()
            resp = await command(init_frame(ctr.next()))
            assert (resp.command, resp.counter, resp.status) == (Command.INIT, 0xFE, 0)
            # A frame with a bad checksum is dropped unanswered.
            bad = bytearray(bytes(GdxCommandFrame(ctr.next(), Command.GET_STATUS)))
            bad[3] ^= 0x55
            await client.write_gatt_char(GDX_COMMAND, bytes(bad), response=True)
            await clock.sleep(0.5)
            assert got.empty() and twin.bad_frames == 1
            resp = await command(GdxCommandFrame(ctr.next(), Command.GET_DEVICE_INFO))
            assert GdxDeviceInfo.from_bytes(resp.payload).device_name == NAME
            resp = await command(set_period_frame(ctr.next(), 200_000))
            assert resp.status == 0 and twin.model.period_us == 200_000
            resp = await command(start_frame(ctr.next(), 0b10))
            assert resp.status == 0
            await clock.sleep(3.0)
            packets = []
            while not got.empty():
                packets.append(GdxMeasurement.from_bytes(got.get_nowait(), verify=True))
            assert 6 <= len(packets) <= 8  # one packet per 0.4 s
            # 0.3 s of batching at a 0.2 s period: 2 samples per packet.
            assert all(p.sensors == (1,) and p.values.shape == (2, 1) for p in packets)
            resp = await command(stop_frame(ctr.next()))
            assert resp.status == 0
            await clock.sleep(1.0)
            while not got.empty():  # at most what was already queued
                got.get_nowait()
            sent = twin.packets_sent
            await clock.sleep(3.0)
            assert twin.packets_sent == sent and got.empty()  # nothing after STOP
    finally:
        await twin.stop()


@pytest.mark.asyncio
async def test_reconnect_while_the_belt_keeps_streaming(radio: VirtualRadio) -> None:
    # The link drops while measuring; the belt keeps measuring and streams as
    # soon as the central subscribes again, i.e. during the driver's INIT...
    clock = SimClock(speed=None)
    faults = Faults(drop_after=200, max_drops=1)
    body = BodyModel(4, t0=clock.now())
    # One sample per packet, and a belt that takes 30 ms per answer: packets
    # of the running measurement arrive while the driver is starting.
    twin = GdxRbTwin(
        radio, clock, body=body, name=NAME, seed=4, faults=faults, batch_s=0.1, reply_delay_s=0.03
    )
    await twin.start()
    try:
        found = await resolve_device(
            NAME, Registry([GdxRbDriver()]), clock, backend=virtual_backend(radio)
        )
        policy = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=3, stall_timeout=3.0)
        driver = GdxRbDriver()
        src = BleSource(found.device, driver, clock, policy=policy, backend=found.backend)
        async with src:
            items = await _collect(src, clock, 30.0)
        assert driver.stale_packets > 0  # measurements arrived during the second start
        kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
        assert kinds.count(LinkKind.CONNECTED) == 2 and LinkKind.LOST in kinds
        assert twin.model.commands.count(Command.INIT) == 2
        t, force = _stream(items, "gdx-rb.force")
        assert t.size > 200 and np.all(np.isfinite(force))
        assert np.all(np.diff(t) > 0)
        assert src.stats.malformed <= 1  # at most the frame cut by the drop
    finally:
        await twin.stop()
