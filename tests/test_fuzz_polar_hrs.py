"""Fuzzing the Polar PMD and Heart Rate parsers: any bytes give samples or ParseError.

Also property round trips: whatever the builders (shared with the twins)
make, the parsers read back exactly.
"""

from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from devices.drivers.base import Decoded
from devices.drivers.hrs import HEART_RATE_MEASUREMENT, HeartRateMeasurement, HeartRateParser
from devices.drivers.polar_frames import build_frame, decode_delta, encode_delta
from devices.drivers.polar_h10 import PmdParser
from devices.drivers.polar_pmd import (
    PMD_CP,
    PMD_DATA,
    MeasurementType,
    PmdCommand,
    PmdResponse,
    PmdSettings,
)
from devices.errors import ParseError

FUZZ = settings(max_examples=150, deadline=None)


def _check(out: list[Decoded]) -> None:
    for d in out:
        assert d.values.ndim == 2 and d.values.dtype == np.float64
        assert np.all(np.isfinite(d.values))
        if d.device_time is not None:
            assert d.device_time.shape == (d.values.shape[0],)
            assert np.all(np.isfinite(d.device_time))


def _feed_or_parse_error(parser: PmdParser | HeartRateParser, char: str, data: bytes) -> None:
    try:
        out = parser.feed(char, data)
    except ParseError:
        return
    _check(out)


@FUZZ
@given(st.binary(max_size=300))
def test_pmd_data_random_bytes(data: bytes) -> None:
    _feed_or_parse_error(PmdParser(), PMD_DATA, data)


@FUZZ
@given(
    st.sampled_from([0x00, 0x02, 0x01, 0x06, 0xC2]),
    st.integers(0, 2**64 - 1),
    st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x81, 0x82, 0x03, 0x7F, 0xFF]),
    st.binary(max_size=250),
)
def test_pmd_data_random_payloads_behind_plausible_headers(
    mtype: int, ts: int, ftype: int, payload: bytes
) -> None:
    data = bytes([mtype]) + ts.to_bytes(8, "little") + bytes([ftype]) + payload
    _feed_or_parse_error(PmdParser(), PMD_DATA, data)


@FUZZ
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=6))
def test_pmd_parser_state_survives_garbage_sequences(packets: list[bytes]) -> None:
    p = PmdParser()
    for i, data in enumerate(packets):
        _feed_or_parse_error(p, PMD_CP if i % 3 == 2 else PMD_DATA, data)


@FUZZ
@given(st.binary(max_size=40) | st.lists(st.binary(min_size=2, max_size=6)).map(b"".join))
def test_pmd_control_point_random_bytes(data: bytes) -> None:
    _feed_or_parse_error(PmdParser(), PMD_CP, data)
    for parse in (PmdResponse.from_bytes, PmdCommand.from_bytes, PmdSettings.from_bytes):
        with contextlib.suppress(ParseError):
            parse(data)


_acc = hnp.arrays(
    np.int64,
    st.tuples(st.integers(1, 60), st.just(3)),
    elements=st.integers(-32768, 32767),
)
_ecg = hnp.arrays(
    np.int64,
    st.tuples(st.integers(1, 73), st.just(1)),
    elements=st.integers(-(1 << 23), (1 << 23) - 1),
)


@FUZZ
@given(_acc, st.booleans(), st.integers(1, 255), st.integers(0, 2**63))
def test_acc_frames_round_trip(samples: np.ndarray, compressed: bool, block: int, ts: int) -> None:
    frame = build_frame(MeasurementType.ACC, ts, samples, compressed=compressed, block=block)
    out = PmdParser().feed(PMD_DATA, bytes(frame))
    assert len(out) == 1 and np.array_equal(out[0].values, samples)


@FUZZ
@given(_ecg, st.integers(1, 255))
def test_ecg_delta_round_trip_24_bit(samples: np.ndarray, block: int) -> None:
    payload = encode_delta(samples, 24, block=block)
    assert np.array_equal(decode_delta(payload, 1, 24), samples)


@FUZZ
@given(_acc, st.booleans(), st.data())
def test_truncated_valid_frames_decode_or_raise(
    samples: np.ndarray, compressed: bool, data: st.DataObject
) -> None:
    full = bytes(build_frame(MeasurementType.ACC, 10**18, samples, compressed=compressed))
    cut = data.draw(st.integers(0, len(full) - 1))
    try:
        out = PmdParser().feed(PMD_DATA, full[:cut])
    except ParseError:
        return
    # A cut that happens to fall on a sample/block boundary is a shorter frame.
    _check(out)
    for d in out:
        assert np.array_equal(d.values, samples[: d.values.shape[0]])


@FUZZ
@given(st.binary(max_size=40))
def test_heart_rate_random_bytes(data: bytes) -> None:
    _feed_or_parse_error(HeartRateParser(), HEART_RATE_MEASUREMENT, data)


_measurements = st.builds(
    HeartRateMeasurement,
    heart_rate=st.integers(0, 0xFFFF),
    contact=st.none() | st.booleans(),
    energy_expended=st.none() | st.integers(0, 0xFFFF),
    rr_intervals=st.none() | st.lists(st.integers(0, 0xFFFF), max_size=9).map(tuple),
    wide=st.booleans(),
)


@FUZZ
@given(_measurements)
def test_heart_rate_measurements_round_trip(m: HeartRateMeasurement) -> None:
    data = bytes(m)
    back = HeartRateMeasurement.from_bytes(data)
    assert back.heart_rate == m.heart_rate
    assert (back.contact, back.energy_expended, back.rr_intervals) == (
        m.contact,
        m.energy_expended,
        m.rr_intervals,
    )
    assert bytes(back) == data


@FUZZ
@given(_measurements, st.data())
def test_truncated_heart_rate_packets(m: HeartRateMeasurement, data: st.DataObject) -> None:
    full = bytes(m)
    cut = data.draw(st.integers(0, len(full)))
    _feed_or_parse_error(HeartRateParser(), HEART_RATE_MEASUREMENT, full[:cut])


@FUZZ
@given(
    st.text(max_size=40) | st.sampled_from([PMD_CP, PMD_DATA, "2a37", "180d"]),
    st.binary(max_size=30),
)
def test_any_characteristic_name(char: str, data: bytes) -> None:
    _feed_or_parse_error(PmdParser(), char, data)
    _feed_or_parse_error(HeartRateParser(), char, data)
