"""Polar H10 PMD: parser on hand-built frames, control point, clock mapping, twin end to end.

Byte layouts follow ``notes/ble-protocols.md`` §3.2 (Polar BLE SDK): a data
frame is ``[type][u64 LE ns of the LAST sample][frame type][samples]``; delta
frames are a reference sample, then ``[bit width][count][packed deltas]``
blocks, LSB first, two's complement.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio
from bleak import BleakClient

from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.clock import Clock, RealClock, SimClock
from devices.drivers.base import Advertisement, RawPacket, normalize_uuid
from devices.drivers.hrs import HeartRateDriver
from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import (
    PmdFrame,
    build_frame,
    decode_delta,
    decode_raw,
    encode_delta,
    encode_raw,
)
from devices.drivers.polar_h10 import INFO, PmdParser, PolarH10Driver
from devices.drivers.polar_pmd import (
    ECG_RATE_HZ,
    EPOCH_2019_NS,
    PMD_CP,
    PMD_DATA,
    ControlOp,
    MeasurementType,
    PmdCommand,
    PmdFeatures,
    PmdResponse,
    PmdSettings,
    ResponseStatus,
    SettingType,
)
from devices.errors import ConnectionFailedError, ParseError
from devices.registry import BUILTIN, Registry
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, SupportLevel
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.polar_h10 import DEFAULT_SENSOR_TIME_NS, PolarH10Twin, SentFrame

TS = 0x0A1B2C3D4E5F6071  # an arbitrary sensor time in ns
TS_LE = struct.pack("<Q", TS)
ECG, ACC = MeasurementType.ECG, MeasurementType.ACC


# ----------------------------------------------------------------- raw frames


def test_ecg_raw_frame_int24_extremes() -> None:
    # 00 | ts | 00 | +1, -1, max, min, 0 as int24 LE
    data = b"\x00" + TS_LE + b"\x00" + bytes.fromhex("010000 ffffff ffff7f 000080 000000")
    out = PmdParser().feed(PMD_DATA, data)
    assert len(out) == 1 and out[0].stream == "ecg"
    assert out[0].values[:, 0].tolist() == [1, -1, 8_388_607, -8_388_608, 0]
    # First frame: 1/fs steps back from the last sample's time.
    t = out[0].device_time
    assert t is not None
    assert t[-1] == pytest.approx(TS * 1e-9, abs=1e-6)
    assert np.diff(t) == pytest.approx(np.full(4, 1 / ECG_RATE_HZ), abs=1e-6)


def test_acc_raw_frame_type1() -> None:
    # 02 | ts | 01 | (1000, -1000, 32767) (-32768, 0, 1) as int16 LE
    data = b"\x02" + TS_LE + b"\x01" + bytes.fromhex("e803 18fc ff7f 0080 0000 0100")
    out = PmdParser({ACC: 100}).feed(PMD_DATA, data)
    assert out[0].stream == "acc"
    assert out[0].values.tolist() == [[1000, -1000, 32767], [-32768, 0, 1]]
    assert out[0].device_time is not None
    assert np.diff(out[0].device_time) == pytest.approx([0.01], abs=1e-6)


def test_acc_raw_types_0_and_2() -> None:
    # Other Polar sensors: int8 (type 0) and int24 (type 2) ACC frames.
    t0 = b"\x02" + TS_LE + b"\x00" + bytes([0x7F, 0x80, 0xFF])
    assert PmdParser().feed(PMD_DATA, t0)[0].values.tolist() == [[127, -128, -1]]
    t2 = b"\x02" + TS_LE + b"\x02" + bytes.fromhex("ffff7f 000080 fdffff")
    assert PmdParser().feed(PMD_DATA, t2)[0].values.tolist() == [[8_388_607, -8_388_608, -3]]


def test_header_fields_and_roundtrip() -> None:
    data = b"\x02" + TS_LE + b"\x81" + b"\x00" * 6
    f = PmdFrame.from_bytes(data)
    assert (f.measurement, f.timestamp_ns, f.frame_type, f.compressed) == (2, TS, 1, True)
    assert bytes(f) == data
    # Only the low 6 bits of byte 0 are the measurement type.
    assert PmdFrame.from_bytes(b"\xc0" + data[1:]).measurement == 0


# --------------------------------------------------------------- delta frames


def test_acc_delta_frame_hand_packed() -> None:
    # Reference (1000, -1000, 0); one block: width 3, count 2, deltas
    # (+1, -1, +3) (-4, 0, +2) -> bits LSB first 100 111 110 001 000 010
    # -> bytes f9 08 01 (worked out by hand).
    payload = bytes.fromhex("e803 18fc 0000") + bytes([3, 2]) + bytes.fromhex("f90801")
    data = b"\x02" + TS_LE + b"\x81" + payload
    out = PmdParser().feed(PMD_DATA, data)
    assert out[0].values.tolist() == [[1000, -1000, 0], [1001, -1001, 3], [997, -1001, 5]]
    assert encode_delta([[1000, -1000, 0], [1001, -1001, 3], [997, -1001, 5]], 16) == payload


def test_raw_and_delta_frames_of_the_same_samples_decode_alike() -> None:
    rng = np.random.default_rng(7)
    samples = np.cumsum(rng.integers(-400, 400, (36, 3)), axis=0) + 1000
    raw = build_frame(ACC, TS, samples, compressed=False)
    delta = build_frame(ACC, TS, samples, compressed=True, block=10)
    assert bytes(raw)[9] == 0x01 and bytes(delta)[9] == 0x81
    assert len(bytes(delta)) < len(bytes(raw))
    a = PmdParser().feed(PMD_DATA, bytes(raw))[0]
    b = PmdParser().feed(PMD_DATA, bytes(delta))[0]
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.values, samples)
    assert a.device_time is not None and b.device_time is not None
    assert np.array_equal(a.device_time, b.device_time)


@pytest.mark.parametrize("width", [*range(1, 17), 24])
def test_delta_bit_widths_with_extreme_deltas(width: int) -> None:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = np.random.default_rng(width)
    deltas = rng.integers(lo, hi + 1, (20, 1))
    deltas[0], deltas[1], deltas[2] = lo, hi, 0
    samples = np.concatenate([[[-(1 << 22)]], -(1 << 22) + np.cumsum(deltas, axis=0)])
    payload = encode_delta(samples, 24, width=width)
    assert payload[3] == width and payload[4] == 20
    assert len(payload) == 3 + 2 + (20 * width + 7) // 8
    assert np.array_equal(decode_delta(payload, 1, 24), samples)
    # The same through an (ECG, 24-bit reference) delta frame.
    frame = b"\x00" + TS_LE + b"\x80" + payload
    assert np.array_equal(PmdParser().feed(PMD_DATA, frame)[0].values, samples)


def test_delta_width_one_is_zero_or_minus_one() -> None:
    # Reference 5, width 1, count 8, bits 1,0,1,1,0,0,0,1 -> deltas -1,0,-1,-1,0,0,0,-1.
    payload = bytes([5, 0]) + bytes([1, 8, 0b10001101])
    assert decode_delta(payload, 1, 16)[:, 0].tolist() == [5, 4, 4, 3, 2, 2, 2, 2, 1]


def test_delta_count_zero_blocks_and_reference_only() -> None:
    ref_only = bytes.fromhex("0a00 f6ff 0000")
    assert decode_delta(ref_only, 3, 16).tolist() == [[10, -10, 0]]
    with_empty = ref_only + bytes([7, 0]) + bytes([2, 1, 0b00_01_11]) + bytes([16, 0])
    # width 2, one sample: x=-1 (11), y=+1 (01), z=0 (00)
    assert decode_delta(with_empty, 3, 16).tolist() == [[10, -10, 0], [9, -9, 0]]


def test_delta_several_blocks_accumulate() -> None:
    samples = np.array([[0], [100], [101], [-30000], [-29999], [32767]])
    payload = encode_delta(samples, 16, block=2)
    assert np.array_equal(decode_delta(payload, 1, 16), samples)
    widths = []
    i = 2
    while i < len(payload):
        w, n = payload[i], payload[i + 1]
        widths.append(w)
        i += 2 + (w * n + 7) // 8
    assert widths == [8, 16, 17]  # each block its own smallest width (-30101 fits 16)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "header"),
        (b"\x00" + TS_LE, "header"),  # 9 bytes
        (b"\x00" + TS_LE + b"\x00" + b"\x01\x02", "multiple of 3"),
        (b"\x02" + TS_LE + b"\x01" + b"\x00" * 7, "multiple of 6"),
        (b"\x02" + TS_LE + b"\x81" + b"\x00" * 5, "reference sample"),
        (b"\x02" + TS_LE + b"\x81" + b"\x00" * 6 + b"\x04", "header truncated"),
        (b"\x02" + TS_LE + b"\x81" + b"\x00" * 6 + b"\x04\x02" + b"\x00\x00", "truncated"),
        (b"\x02" + TS_LE + b"\x81" + b"\x00" * 6 + b"\x00\x01", "bit width 0"),
        (b"\x02" + TS_LE + b"\x81" + b"\x00" * 6 + b"\x21\x01" + b"\x00" * 13, "bit width 33"),
        (b"\x00" + TS_LE + b"\x05" + b"\x00" * 3, "frame type 5"),  # unknown ECG frame type
        (b"\x02" + TS_LE + b"\x03" + b"\x00" * 6, "frame type 3"),  # unknown ACC frame type
        (b"\x01" + TS_LE + b"\x00" + b"\x00" * 3, "measurement type 1"),  # PPG: not an H10
    ],
)
def test_malformed_frames_raise_parse_error(data: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        PmdParser().feed(PMD_DATA, data)


def test_other_characteristics_are_refused() -> None:
    with pytest.raises(ParseError, match="not a PMD characteristic"):
        PmdParser().feed("2a37", b"\x00\x48")
    with pytest.raises(ParseError, match="not a characteristic UUID"):
        PmdParser().feed("pmd", b"\x00\x48")


def test_empty_raw_frame_yields_nothing() -> None:
    assert PmdParser().feed(PMD_DATA, b"\x00" + TS_LE + b"\x00") == []


def test_encoders_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="int16"):
        encode_raw([[40000, 0, 0]], 2)
    with pytest.raises(ValueError, match="fit 4 bits"):
        encode_delta([[0], [8]], 16, width=4)
    with pytest.raises(ValueError, match="n >= 1"):
        encode_delta(np.zeros((0, 3)), 16)
    assert decode_raw(encode_raw([[-1, 2, -3]], 3), 3, 3).tolist() == [[-1, 2, -3]]


# ------------------------------------------------------------ sample times


def _ecg(ts_ns: int, n: int) -> bytes:
    return bytes(build_frame(ECG, ts_ns, np.arange(n)))


def test_sample_times_interpolate_between_frames_like_the_sdk() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, _ecg(10**18, 73))
    # The next frame's span is 73 samples of a clock 0.3 % fast: interpolated.
    span_ns = round(73 / 130 * 1.003e9)
    t = p.feed(PMD_DATA, _ecg(10**18 + span_ns, 73))[0].device_time
    assert t is not None
    assert t[0] == pytest.approx(1e9 + span_ns / 73 * 1e-9, abs=1e-6)
    # float64 seconds near 1e9 s resolve ~0.1 µs
    assert np.diff(t) == pytest.approx(np.full(72, span_ns / 73 * 1e-9), abs=3e-7)


def test_sample_times_after_a_lost_frame_or_a_reset_use_the_nominal_rate() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, _ecg(10**18, 73))
    lost = 10**18 + 2 * round(73 / 130 * 1e9)  # one frame never arrived
    t = p.feed(PMD_DATA, _ecg(lost, 73))[0].device_time
    assert t is not None and np.diff(t) == pytest.approx(np.full(72, 1 / 130), abs=1e-6)
    # Clock back to 2019: nominal steps again, ending at the new time.
    t = p.feed(PMD_DATA, _ecg(EPOCH_2019_NS + 10**9, 73))[0].device_time
    assert t is not None and t[-1] == pytest.approx((EPOCH_2019_NS + 10**9) * 1e-9, abs=1e-6)
    assert np.diff(t) == pytest.approx(np.full(72, 1 / 130), abs=1e-6)


def test_start_response_restarts_interpolation_and_sets_factor() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, bytes(build_frame(ACC, 10**18, np.zeros((36, 3)))))
    factor = struct.unpack("<I", struct.pack("<f", 0.5))[0]
    params = bytes(PmdSettings({SettingType.FACTOR: (factor,)}))
    start = PmdResponse(ControlOp.START, ACC, ResponseStatus.SUCCESS, False, params)
    assert p.feed(PMD_CP, bytes(start)) == []
    # A frame 10 s later would interpolate over 10 s without the restart.
    out = p.feed(PMD_DATA, bytes(build_frame(ACC, 10**18 + 10**10, np.full((36, 3), 100))))[0]
    assert out.values[0].tolist() == [50.0, 50.0, 50.0]
    assert out.device_time is not None
    assert np.diff(out.device_time) == pytest.approx(np.full(35, 1 / 200), abs=1e-6)
    # The sensor stopping a stream by itself (0x01 <types>) also restarts it.
    assert p.feed(PMD_CP, b"\x01\x02") == []
    with pytest.raises(ParseError):
        p.feed(PMD_CP, b"\xf0\x02")


# ------------------------------------------------------------ control point


def test_start_commands_are_the_documented_bytes() -> None:
    ecg, acc = PolarH10Driver().start_commands()
    assert bytes(ecg) == bytes.fromhex("02 00 00 01 82 00 01 01 0E 00")
    assert bytes(acc) == bytes.fromhex("02 02 00 01 C8 00 01 01 10 00 02 01 08 00")
    _, acc50 = PolarH10Driver(acc_rate_hz=50, acc_range_g=2).start_commands()
    assert bytes(acc50) == bytes.fromhex("02 02 00 01 32 00 01 01 10 00 02 01 02 00")
    assert PmdCommand.from_bytes(bytes(acc)) == acc
    with pytest.raises(ValueError, match="acc_rate_hz"):
        PolarH10Driver(acc_rate_hz=120)
    with pytest.raises(ParseError, match="offline"):
        PmdCommand.from_bytes(b"\x02\x80")


def test_responses_features_and_settings() -> None:
    ok = PmdResponse.from_bytes(bytes.fromhex("F0 02 00 00 00"))
    assert (ok.op, ok.measurement, ok.status, ok.more, ok.ok) == (2, 0, 0, False, True)
    err = PmdResponse.from_bytes(bytes.fromhex("F0 02 00 0A"))
    assert not err.ok and err.describe() == "status 10 (INVALID_MTU)"
    assert bytes(err) == bytes.fromhex("F0 02 00 0A")
    assert PmdResponse.from_bytes(bytes.fromhex("F0 02 02 06")).ok  # already in state
    assert PmdResponse(2, 0, 99).describe() == "status 99 (UNKNOWN)"
    assert PmdFeatures.from_bytes(b"\x0f\x05").measurements == {0, 2}
    assert bytes(PmdFeatures(frozenset({0, 2}))) == b"\x0f\x05"
    acc = bytes.fromhex("00 04 19 00 32 00 64 00 C8 00 01 01 10 00 02 03 02 00 04 00 08 00")
    s = PmdSettings.from_bytes(acc)
    assert s.values[SettingType.SAMPLE_RATE] == (25, 50, 100, 200)
    assert s.values[SettingType.RANGE] == (2, 4, 8)
    assert bytes(s) == acc
    for bad in (b"\x00", b"\x00\x02\x01\x00", b"\x09\x01\x00\x00", b"\x00\x01\x82\x00" * 2):
        with pytest.raises(ParseError):
            PmdSettings.from_bytes(bad)
    for bad in (b"", b"\xf0\x02\x00", b"\x0f\x05\x00\x00"):
        with pytest.raises(ParseError):
            PmdResponse.from_bytes(bad)
    with pytest.raises(ParseError):
        PmdFeatures.from_bytes(b"\xf0\x05")


def test_driver_info_and_registry_order() -> None:
    d = PolarH10Driver(acc_rate_hz=100)
    assert d.id == "polar-h10" and d.info.support == SupportLevel.VENDOR_DOCUMENTED
    assert d.info.stream("ecg").kind == StreamKind.ECG and d.info.stream("ecg").unit == "uV"
    acc = d.info.stream("acc")
    assert (acc.kind, acc.channels, acc.rate_hz) == (StreamKind.ACC, ("x", "y", "z"), 100.0)
    assert INFO.stream("acc").rate_hz == 200.0
    assert d.info.writable_chars == (PMD_CP,)
    assert list(BUILTIN).index("polar-h10") < list(BUILTIN).index("hrs")
    h10 = Advertisement("Polar H10 A1B2C3D4", "AA", service_uuids=("180d",))
    reg = Registry([PolarH10Driver(), HeartRateDriver()])
    match = reg.match(h10)
    assert match is not None and match.id == "polar-h10"
    assert not PolarH10Driver().matches(Advertisement("Polar H9 1234", "BB", None, ("180d",)))
    stampers = d.make_timestampers()
    assert isinstance(stampers["acc"], SensorClockTimestamper) and stampers["acc"].rate_hz == 100


# ------------------------------------------------ driver start over a DriverIO


class ScriptIO:
    """A DriverIO whose control point answers from ``responder`` (no BLE at all)."""

    def __init__(self, responder: Callable[[bytes], list[tuple[str, bytes]]]) -> None:
        self.clock: Clock = RealClock()
        self.responder = responder
        self.writes: list[tuple[str, bytes]] = []
        self.subscribed: list[str] = []
        self.queue: asyncio.Queue[RawPacket] = asyncio.Queue()

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        self.writes.append((normalize_uuid(char), bytes(data)))
        for c, d in self.responder(bytes(data)):
            self.queue.put_nowait(RawPacket(self.clock.now(), c, d))

    async def read(self, char: str) -> bytes:
        return b"\x0f\x05"

    async def subscribe(self, char: str) -> None:
        self.subscribed.append(normalize_uuid(char))

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        return await asyncio.wait_for(self.queue.get(), timeout)


def _answer(status: int, *, noise: bool = False) -> Callable[[bytes], list[tuple[str, bytes]]]:
    def responder(cmd: bytes) -> list[tuple[str, bytes]]:
        out = []
        if noise:  # a data frame and a foreign indication arrive first
            out.append((PMD_DATA, _ecg(10**18, 3)))
            out.append((PMD_CP, b"\x01\x00"))
        out.append((PMD_CP, bytes(PmdResponse(cmd[0], cmd[1], status))))
        return out

    return responder


@pytest.mark.asyncio
async def test_start_sends_both_commands_and_awaits_indications() -> None:
    io = ScriptIO(_answer(ResponseStatus.SUCCESS, noise=True))
    await PolarH10Driver().start(io)
    assert io.subscribed == [PMD_CP, PMD_DATA]
    assert [w[1][:2] for w in io.writes] == [b"\x02\x00", b"\x02\x02"]
    await PolarH10Driver().stop(io)
    assert [w[1] for w in io.writes[2:]] == [b"\x03\x02", b"\x03\x00"]
    # "Already in state" is a running stream, not an error.
    await PolarH10Driver().start(ScriptIO(_answer(ResponseStatus.ALREADY_IN_STATE)))


@pytest.mark.asyncio
async def test_start_error_status_names_the_status() -> None:
    with pytest.raises(ConnectionFailedError, match=r"ECG: status 13 \(DEVICE_IN_CHARGER\)"):
        await PolarH10Driver().start(ScriptIO(_answer(ResponseStatus.DEVICE_IN_CHARGER)))


@pytest.mark.asyncio
async def test_start_without_answer_times_out() -> None:
    driver = PolarH10Driver(response_timeout=0.05)
    with pytest.raises(ConnectionFailedError, match="no control-point response"):
        await driver.start(ScriptIO(lambda cmd: []))


# ------------------------------------------------------------- clock mapping


def _simulate(
    ppm: float,
    rate: int,
    frame: int,
    *,
    seconds: float = 150.0,
    jitter: float = 0.03,
    reset_at: float | None = None,
    seed: int = 0,
    stamper: SensorClockTimestamper | None = None,
) -> tuple[np.ndarray, np.ndarray, SensorClockTimestamper]:
    """Frames from a sensor clock ``ppm`` fast, received 0..jitter s late.

    Returns per-sample (error, true host time, timestamper).
    """
    rng = np.random.default_rng(seed)
    meas = ECG if rate == ECG_RATE_HZ else ACC
    parser = PmdParser({meas: rate})
    stamper = stamper or SensorClockTimestamper(rate)
    ratio = 1 + ppm * 1e-6
    base_ns, base_t = 9132 * 86_400 * 10**9, 1000.0
    k, errors, truth = 0, [], []
    while True:
        ks = np.arange(k + 1, k + frame + 1)
        offs = ks * 10**9 // rate
        t_true = base_t + offs * 1e-9 / ratio
        if t_true[-1] > 1000.0 + seconds:
            break
        if reset_at is not None and t_true[0] > 1000.0 + reset_at:
            # Power-off: the clock restarts at 2019 when the sensor comes back.
            base_ns, base_t, k, reset_at = EPOCH_2019_NS, t_true[0] + 2.0, 0, None
            continue
        f = build_frame(meas, base_ns + int(offs[-1]), np.zeros((frame, 1 if meas == ECG else 3)))
        d = parser.feed(PMD_DATA, bytes(f))[0]
        t = stamper.stamp(frame, t_true[-1] + rng.uniform(0, jitter), d.device_time)
        errors.append(t - t_true)
        truth.append(t_true - 1000.0)
        k += frame
    return np.concatenate(errors), np.concatenate(truth), stamper


@pytest.mark.parametrize("ppm", [200.0, -300.0, 500.0])
def test_drift_is_corrected_under_receive_jitter(ppm: float) -> None:
    for rate, frame, limit in ((200, 36, 2e-3), (130, 73, 5e-3)):
        err, t, st = _simulate(ppm, rate, frame)
        settled = t > 30.0
        assert np.max(np.abs(err[settled])) < limit, (rate, ppm)
        assert np.median(err[settled]) > 0  # latency is never negative
        assert st.drift is not None
        # The fitted slope of (host - sensor) is -drift (sensor runs fast).
        assert st.drift == pytest.approx(-ppm * 1e-6, abs=25e-6)
        assert st.clock_resets == 0 and st.gaps == 0
        assert np.max(np.abs(err)) < 0.035  # even before the fit: within the jitter


def test_without_drift_correction_the_error_would_grow() -> None:
    # A sensor clock 300 ppm slow: the envelope has to rise. With the slope
    # fitted the error stays ~1 ms; a plain envelope (slope fixed at 0, the
    # same small leak) falls behind by (300 - 50) ppm x 150 s, tens of ms.
    err, t, _ = _simulate(-300.0, 200, 36)
    plain, _, _ = _simulate(-300.0, 200, 36, stamper=SensorClockTimestamper(200, max_drift=0.0))
    end = t > 140
    assert np.max(np.abs(err[end])) < 2e-3
    assert np.median(np.abs(plain[end])) > 0.02


def test_runs_of_late_arrivals_do_not_pull_the_mapping() -> None:
    # A busy host: 8 s of every 20 s, every frame comes 10-50 ms later still.
    # The envelope ignores them (the level only rises by the leak, the drift
    # fit drops windows without a low-latency frame): ACC frames stay ~1 ms.
    rng = np.random.default_rng(11)
    st = SensorClockTimestamper(200.0)
    ratio, s0, k, worst = 1 + 200e-6, 6e8, 0, 0.0
    while (t_last := 0.1 + (k + 36) / 200.0 / ratio) < 120.0:
        s = s0 + np.arange(k + 1, k + 37) / 200.0
        late = rng.uniform(0.01, 0.05) if t_last % 20.0 > 12.0 else 0.0
        t = st.stamp(36, t_last + rng.uniform(0, 0.03) + late, s)
        if t_last > 30.0:
            worst = max(worst, float(np.max(np.abs(t - (0.1 + (s - s0) / ratio)))))
        k += 36
    assert worst < 5e-3
    assert st.drift == pytest.approx(1 / ratio - 1, abs=50e-6)


def test_sensor_clock_reset_re_anchors_and_is_counted() -> None:
    err, t, st = _simulate(200.0, 200, 36, seconds=150.0, reset_at=70.0)
    assert st.clock_resets == 1
    assert np.max(np.abs(err[(t > 30) & (t < 70)])) < 2e-3
    # Right after the reset: within the receive jitter; then accurate again
    # (the drift estimate survives: same crystal).
    after = t > 72.0
    assert np.max(np.abs(err[after])) < 0.035
    assert np.max(np.abs(err[t > 80.0])) < 2e-3


def test_gaps_in_sensor_time_are_counted_and_monotonic() -> None:
    st = SensorClockTimestamper(200)
    s = 1e9 + np.arange(1, 37) / 200
    a = st.stamp(36, s[-1] + 0.01 - 1e9 + 5000.0, s)
    skipped = s + 36 * 2 / 200  # one frame lost
    b = st.stamp(36, skipped[-1] + 0.01 - 1e9 + 5000.0, skipped)
    assert st.gaps == 1 and st.gap_seconds == pytest.approx(36 / 200, abs=1e-6)
    assert b[0] > a[-1]
    assert np.all(np.diff(np.concatenate([a, b])) > 0)
    with pytest.raises(ValueError, match="sensor time"):
        st.stamp(3, 1.0, None)
    assert st.stamp(0, 1.0, np.empty(0)).size == 0


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


async def _collect(
    src: BleSource, clock: SimClock, seconds: float, during: Callable[[], object] | None = None
) -> list[Chunk | LinkEvent]:
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
