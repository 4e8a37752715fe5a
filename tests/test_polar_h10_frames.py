"""Polar H10 PMD data frames: raw and delta-compressed, on hand-built bytes.

Byte layouts follow ``notes/ble-protocols.md`` §3.2 (Polar BLE SDK): a data
frame is ``[type][u64 LE ns of the LAST sample][frame type][samples]``; delta
frames are a reference sample, then ``[bit width][count][packed deltas]``
blocks, LSB first, two's complement.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from devices.drivers.polar_frames import (
    PmdFrame,
    build_frame,
    decode_delta,
    decode_raw,
    encode_delta,
    encode_raw,
)
from devices.drivers.polar_h10 import PmdParser
from devices.drivers.polar_pmd import (
    ECG_RATE_HZ,
    PMD_DATA,
    MeasurementType,
)
from devices.errors import ParseError

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
