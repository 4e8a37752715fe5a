"""PMD data frames: layouts, the raw and delta-compressed sample codecs, building a frame.

A frame is ``[type][u64 LE ns of the LAST sample][frame type][samples]``, raw
or delta-compressed (frame type bit 7). Pure functions and a dataclass with
``from_bytes`` / ``__bytes__``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from devices.drivers.polar_pmd import MeasurementType
from devices.errors import ParseError

__all__ = [
    "FrameLayout",
    "PmdFrame",
    "build_frame",
    "decode_delta",
    "decode_raw",
    "encode_delta",
    "encode_raw",
    "frame_layout",
]

IntArray = npt.NDArray[np.int64]

_HEADER = struct.Struct("<BQB")  # measurement type, u64 ns, frame type
_DELTA_BIT = 0x80


@dataclass(frozen=True)
class FrameLayout:
    """How samples of one (measurement, frame type) are laid out."""

    channels: int
    sample_bytes: int

    @property
    def resolution(self) -> int:
        """Bits of one reference value in a delta frame."""
        return 8 * self.sample_bytes


#: Known layouts by (measurement type, frame type without bit 7). The H10
#: sends ECG type 0 (int24 µV) and ACC type 1 (3 × int16 mG); ACC types 0 and
#: 2 (int8 / int24) come from other Polar sensors and are read the same way.
_LAYOUTS: dict[tuple[int, int], FrameLayout] = {
    (MeasurementType.ECG, 0): FrameLayout(1, 3),
    (MeasurementType.ACC, 0): FrameLayout(3, 1),
    (MeasurementType.ACC, 1): FrameLayout(3, 2),
    (MeasurementType.ACC, 2): FrameLayout(3, 3),
}


def frame_layout(measurement: int, frame_type: int) -> FrameLayout:
    """The layout of a frame type.

    Raises
    ------
    ParseError
        For measurement/frame-type pairs this driver does not read.
    """
    try:
        return _LAYOUTS[(measurement, frame_type)]
    except KeyError:
        raise ParseError(
            f"unsupported PMD frame: measurement {measurement}, frame type {frame_type}"
        ) from None


@dataclass(frozen=True)
class PmdFrame:
    """One data-characteristic notification.

    Parameters
    ----------
    measurement : int
        Measurement type (low 6 bits of byte 0).
    timestamp_ns : int
        Sensor time of the LAST sample, ns since 2000-01-01T00:00Z.
    frame_type : int
        Frame type without the compression bit.
    compressed : bool
        Bit 7 of the frame-type byte: delta-compressed samples.
    payload : bytes
        The sample bytes after the 10-byte header.
    """

    measurement: int
    timestamp_ns: int
    frame_type: int
    compressed: bool
    payload: bytes

    HEADER_SIZE = _HEADER.size

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Split a notification into header and payload.

        Raises
        ------
        ParseError
            When shorter than the 10-byte header.
        """
        if len(data) < _HEADER.size:
            raise ParseError(f"PMD frame needs {_HEADER.size} header bytes, got {len(data)}")
        mtype, ts, ftype = _HEADER.unpack_from(data)
        return cls(
            mtype & 0x3F, ts, ftype & 0x7F, bool(ftype & _DELTA_BIT), bytes(data[_HEADER.size :])
        )

    def __bytes__(self) -> bytes:
        ftype = self.frame_type | (_DELTA_BIT if self.compressed else 0)
        return _HEADER.pack(self.measurement, self.timestamp_ns, ftype) + self.payload

    def samples(self) -> IntArray:
        """The samples as integers, shape (n, channels).

        Raises
        ------
        ParseError
            For unknown layouts and malformed payloads.
        """
        layout = frame_layout(self.measurement, self.frame_type)
        if self.compressed:
            return decode_delta(self.payload, layout.channels, layout.resolution)
        return decode_raw(self.payload, layout.channels, layout.sample_bytes)


def _signed_le(buf: npt.NDArray[np.uint8], nbytes: int) -> IntArray:
    """Little-endian two's-complement integers of ``nbytes`` each (vectorised)."""
    b = buf.reshape(-1, nbytes).astype(np.int64)
    v = np.zeros(b.shape[0], dtype=np.int64)
    for i in range(nbytes):
        v |= b[:, i] << (8 * i)
    bits = 8 * nbytes
    return v - ((v >> (bits - 1)) & 1) * (1 << bits)


def decode_raw(payload: bytes, channels: int, sample_bytes: int) -> IntArray:
    """Raw frame samples: ``channels`` signed LE integers of ``sample_bytes`` each.

    Raises
    ------
    ParseError
        When the payload is not a whole number of samples.
    """
    step = channels * sample_bytes
    if len(payload) % step:
        raise ParseError(f"raw PMD payload of {len(payload)} bytes is not a multiple of {step}")
    buf = np.frombuffer(payload, dtype=np.uint8)
    return _signed_le(buf, sample_bytes).reshape(-1, channels)


def decode_delta(payload: bytes, channels: int, resolution: int) -> IntArray:
    """Delta-compressed frame samples (``parseDeltaFramesAll`` in the Polar SDK).

    The payload is a reference sample (``channels`` signed LE values of
    ``ceil(resolution / 8)`` bytes), then blocks of
    ``[bit_width u8][count u8][count × channels × bit_width bits]``, packed
    LSB-first in two's complement; each sample is the previous one plus its
    delta.

    Raises
    ------
    ParseError
        On a truncated reference sample, block header or block, or a bit
        width outside 1..32.
    """
    rb = (resolution + 7) // 8
    ref_len = channels * rb
    if len(payload) < ref_len:
        raise ParseError(
            f"delta PMD frame needs a {ref_len}-byte reference sample, has {len(payload)}"
        )
    buf = np.frombuffer(payload, dtype=np.uint8)
    parts = [_signed_le(buf[:ref_len], rb).reshape(1, channels)]
    offset = ref_len
    n = len(payload)
    while offset < n:
        if offset + 2 > n:
            raise ParseError(f"delta PMD block header truncated at byte {offset}")
        width, count = payload[offset], payload[offset + 1]
        offset += 2
        if count == 0:
            continue
        if not 1 <= width <= 32:
            raise ParseError(f"delta PMD block bit width {width} is not in 1..32")
        nbits = width * count * channels
        nbytes = (nbits + 7) // 8
        if offset + nbytes > n:
            raise ParseError(f"delta PMD block of {nbytes} bytes truncated at byte {offset}")
        bits = np.unpackbits(buf[offset : offset + nbytes], bitorder="little")[:nbits]
        weights = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
        vals = bits.reshape(-1, width).astype(np.int64) @ weights
        vals -= (vals >> (width - 1)) << width  # two's complement
        parts.append(vals.reshape(count, channels))
        offset += nbytes
    return np.cumsum(np.concatenate(parts), axis=0)


def encode_raw(samples: npt.ArrayLike, sample_bytes: int) -> bytes:
    """Pack samples (n, channels) as signed LE integers (the twin's raw frames).

    Raises
    ------
    ValueError
        When a value does not fit ``sample_bytes``.
    """
    s = np.asarray(samples, dtype=np.int64)
    lo, hi = -(1 << (8 * sample_bytes - 1)), (1 << (8 * sample_bytes - 1)) - 1
    if s.size and (s.min() < lo or s.max() > hi):
        raise ValueError(f"sample out of the int{8 * sample_bytes} range")
    u = (s.reshape(-1) & ((1 << (8 * sample_bytes)) - 1)).astype("<u8")
    return u.view(np.uint8).reshape(-1, 8)[:, :sample_bytes].tobytes()


def _pack_block(deltas: IntArray, width: int) -> bytes:
    u = deltas.reshape(-1) & ((1 << width) - 1)
    bits = ((u[:, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _width_for(deltas: IntArray) -> int:
    m = np.where(deltas < 0, ~deltas, deltas)
    return int(m.max()).bit_length() + 1 if m.size else 1


def encode_delta(
    samples: npt.ArrayLike, resolution: int, *, block: int = 255, width: int | None = None
) -> bytes:
    """Delta-compress samples (n, channels), n ≥ 1 (the twin's compressed frames).

    Parameters
    ----------
    samples : array_like, shape (n, channels)
        Integer samples; the first is sent as the reference.
    resolution : int
        Bits of the reference values (``ceil(resolution / 8)`` bytes each).
    block : int
        Samples per block (1..255); each block gets the smallest bit width
        that holds its deltas.
    width : int, optional
        Force one bit width for every block (tests of each width).

    Raises
    ------
    ValueError
        For an empty input, a reference value that does not fit, or deltas
        that do not fit a forced ``width``.
    """
    s = np.asarray(samples, dtype=np.int64)
    if s.ndim != 2 or s.shape[0] < 1:
        raise ValueError("need samples of shape (n >= 1, channels)")
    if not 1 <= block <= 255:
        raise ValueError(f"block must be in 1..255, {block} is invalid")
    rb = (resolution + 7) // 8
    out = bytearray(encode_raw(s[:1], rb))
    deltas = np.diff(s, axis=0)
    for start in range(0, deltas.shape[0], block):
        d = deltas[start : start + block]
        w = _width_for(d) if width is None else width
        if width is not None and _width_for(d) > width:
            raise ValueError(f"deltas do not fit {width} bits")
        out += bytes((w, d.shape[0])) + _pack_block(d, w)
    return bytes(out)


def build_frame(
    measurement: MeasurementType,
    timestamp_ns: int,
    samples: npt.ArrayLike,
    *,
    frame_type: int | None = None,
    compressed: bool = False,
    block: int = 255,
) -> PmdFrame:
    """A data frame carrying ``samples`` (the twin's and the tests' builder).

    ``frame_type`` defaults to what the H10 sends: 0 for ECG, 1 for ACC.
    """
    if frame_type is None:
        frame_type = 0 if measurement == MeasurementType.ECG else 1
    layout = frame_layout(int(measurement), frame_type)
    s = np.asarray(samples, dtype=np.int64).reshape(-1, layout.channels)
    if compressed:
        payload = encode_delta(s, layout.resolution, block=block)
    else:
        payload = encode_raw(s, layout.sample_bytes)
    return PmdFrame(int(measurement), int(timestamp_ns), frame_type, compressed, payload)
