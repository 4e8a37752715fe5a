"""Fuzzing every parser written for the pelvic and GDX-RB drivers (hypothesis).

Property: on any bytes -- random, or a valid packet truncated or corrupted --
a parser returns a list of :class:`Decoded` with well-formed float64 arrays
of the stream's width, or raises :class:`ParseError`; never anything else.
Stateful parsers (GDX-RB reassembly) get whole sequences of notifications.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import devices.drivers as drivers_pkg
from devices.drivers.base import Decoded, Parser
from devices.drivers.declarative import load_toml_driver
from devices.drivers.elvie import ELVIE_CHAR, ElvieDriver, ElvieReading
from devices.drivers.gdx_commands import GDX_RESPONSE, GdxCommandFrame, GdxResponse, chunk_frame
from devices.drivers.gdx_packets import (
    GdxDeviceInfo,
    GdxMeasurement,
    GdxSensorInfo,
    GdxStatus,
    MeasurementType,
)
from devices.drivers.gdx_rb import GdxParser, GdxRbDriver
from devices.drivers.kgoal import KGOAL_NOTIFY, KGoalDriver, KGoalPacket
from devices.drivers.magic_motion import MM_NOTIFY, MagicMotionDriver, MagicMotionPacket
from devices.drivers.perifit import PERIFIT_TWIN_CHAR, PerifitDriver, PerifitPacket
from devices.errors import ParseError

EXAMPLES = Path(drivers_pkg.__file__).parent / "examples"

#: (name, parser factory, characteristic, channel count per stream, one valid packet)
Case = tuple[str, Callable[[], Parser], str, dict[str, int], bytes]

CASES: list[Case] = [
    ("kgoal", KGoalDriver().make_parser, KGOAL_NOTIFY, {"pressure": 2}, bytes(KGoalPacket(1, 2))),
    (
        "perifit",
        PerifitDriver().make_parser,
        PERIFIT_TWIN_CHAR,
        {"pressure": 2},
        bytes(PerifitPacket(0x1378, 7)),
    ),
    ("elvie", ElvieDriver().make_parser, ELVIE_CHAR, {"pressure": 1}, bytes(ElvieReading(12))),
    (
        "magic-motion",
        MagicMotionDriver().make_parser,
        MM_NOTIFY,
        {"pressure": 1},
        bytes(MagicMotionPacket(500)),
    ),
    (
        "gdx-rb",
        GdxRbDriver().make_parser,
        GDX_RESPONSE,
        {"force": 1, "rate": 1},
        bytes(
            GdxMeasurement(
                MeasurementType.NORMAL_REAL32, (1, 2), np.array([[10.0, np.nan], [11.0, 12.0]])
            )
        ),
    ),
    (
        "kgoal-toml",
        load_toml_driver(EXAMPLES / "kgoal.toml").make_parser,
        KGOAL_NOTIFY,
        {"pressure": 2},
        bytes(KGoalPacket(3, 4)),
    ),
    (
        "generic-force-toml",
        load_toml_driver(EXAMPLES / "generic-force.toml").make_parser,
        "0000ffe1-0000-1000-8000-00805f9b34fb",
        {"force": 1},
        bytes(18),
    ),
]


def check(out: object, widths: dict[str, int]) -> None:
    """What a parser may return: Decoded items of its streams, (n, k) float64."""
    assert isinstance(out, list)
    for d in out:
        assert isinstance(d, Decoded)
        assert d.stream in widths
        assert isinstance(d.values, np.ndarray) and d.values.dtype == np.float64
        assert d.values.ndim == 2 and d.values.shape[1] == widths[d.stream]
        assert d.values.shape[0] >= 1


def feed_checked(parser: Parser, char: str, data: bytes, widths: dict[str, int]) -> None:
    try:
        out = parser.feed(char, data)
    except ParseError:
        return
    check(out, widths)


@settings(max_examples=300)
@given(data=st.binary(max_size=300), case=st.sampled_from(CASES))
def test_random_bytes(data: bytes, case: Case) -> None:
    _, factory, char, widths, _ = case
    feed_checked(factory(), char, data, widths)


@settings(max_examples=200)
@given(
    case=st.sampled_from(CASES),
    cut=st.integers(min_value=0, max_value=400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
)
def test_truncated_and_corrupted_valid_packets(
    case: Case, cut: int, flips: list[tuple[int, int]]
) -> None:
    _, factory, char, widths, valid = case
    buf = bytearray(valid[: cut % (len(valid) + 1)])
    for pos, value in flips:
        if buf:
            buf[pos % len(buf)] = value
    feed_checked(factory(), char, bytes(buf), widths)


def test_every_prefix_of_every_valid_packet() -> None:
    for _, factory, char, widths, valid in CASES:
        for n in range(len(valid) + 1):
            feed_checked(factory(), char, valid[:n], widths)


def _gdx_frame(kind: int, body: bytes) -> bytes:
    frame = bytearray([kind, 0, 0, 0]) + body
    frame[1] = len(frame) & 0xFF
    return bytes(frame)


gdx_frames = st.one_of(
    st.builds(
        lambda mt, mask, count, vals: _gdx_frame(
            0x20,
            bytes([mt])
            + struct.pack("<HBB", mask, count, 0)
            + b"".join(struct.pack("<f", v) for v in vals),
        ),
        st.sampled_from(list(range(0x04, 0x10))),
        st.integers(0, 0xFFFF),
        st.integers(0, 255),
        st.lists(st.floats(width=32), max_size=50),
    ),
    st.builds(lambda body: _gdx_frame(0x58, body), st.binary(min_size=1, max_size=200)),
    st.binary(min_size=1, max_size=60),
)


@settings(max_examples=300)
@given(frames=st.lists(gdx_frames, max_size=6), split=st.integers(1, 25))
def test_gdx_notification_sequences(frames: list[bytes], split: int) -> None:
    # Frames (valid or not) split into notifications at random sizes, one parser.
    parser = GdxParser()
    for frame in frames:
        for part in chunk_frame(frame, split):
            feed_checked(parser, GDX_RESPONSE, part, {"force": 1, "rate": 1})


@settings(max_examples=300)
@given(data=st.binary(max_size=260), verify=st.booleans())
def test_gdx_frame_decoders(data: bytes, verify: bool) -> None:
    decoders: list[Callable[[bytes], object]] = [
        lambda b: GdxCommandFrame.from_bytes(b, verify=verify),
        lambda b: GdxResponse.from_bytes(b, verify=verify),
        lambda b: GdxMeasurement.from_bytes(b, verify=verify),
        GdxStatus.from_bytes,
        GdxDeviceInfo.from_bytes,
        GdxSensorInfo.from_bytes,
        KGoalPacket.from_bytes,
        PerifitPacket.from_bytes,
        ElvieReading.from_bytes,
        MagicMotionPacket.from_bytes,
    ]
    for decode in decoders:
        try:
            obj = decode(data)
        except ParseError:
            continue
        assert obj is not None


@settings(max_examples=100)
@given(
    values=st.lists(st.tuples(st.floats(width=32), st.floats(width=32)), min_size=0, max_size=30),
    seq=st.integers(0, 255),
)
def test_gdx_measurement_roundtrip(values: list[tuple[float, float]], seq: int) -> None:
    arr = np.array(values, dtype=np.float64).reshape(len(values), 2)
    m = GdxMeasurement(MeasurementType.NORMAL_REAL32, (1, 2), arr, seq=seq)
    back = GdxMeasurement.from_bytes(bytes(m), verify=True)
    np.testing.assert_array_equal(back.values, arr)
    assert bytes(back) == bytes(m)
