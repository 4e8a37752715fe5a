"""Polar H10 chest strap: ECG and accelerometer over the Polar Measurement Data (PMD) service.

Vendor-documented (Polar BLE SDK, ``notes/ble-protocols.md`` §3.2). The strap
has two PMD characteristics:

* the control point ``FB005C81-…`` (write + indicate + read): a read returns
  ``0F <feature bits>`` (``0F 05`` on an H10: ECG and ACC); commands are
  ``[op, type, (setting_id, count=1, value LE)…]`` and each one is answered by
  an indication ``F0 op type status [more params…]``;
* the data characteristic ``FB005C82-…`` (notify): frames of
  ``[type][u64 LE ns of the LAST sample][frame type][samples]``, raw or
  delta-compressed (frame type bit 7).

Everything in this module except :class:`PolarH10Driver.start` /
:meth:`~PolarH10Driver.stop` is pure: packets are small dataclasses with
``from_bytes`` / ``__bytes__`` that the virtual twin uses to build what the
parser reads. :class:`SensorClockTimestamper` places the samples on the host
clock from the strap's own clock, correcting its drift and surviving its
resets to 2019-01-01 after a power-off.

The H10 also offers the SIG Heart Rate Service (0x180D); this driver delivers
ECG and ACC only (the ``hrs`` driver reads heart rate and RR from straps that
``polar-h10`` does not claim).
"""

from __future__ import annotations

import enum
import logging
import math
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Self

import numpy as np
import numpy.typing as npt

from devices.drivers.base import (
    Decoded,
    Driver,
    DriverInfo,
    DriverIO,
    Parser,
    normalize_uuid,
)
from devices.errors import ConnectionFailedError, ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel
from devices.timestamps import Timestamper

__all__ = [
    "ACC_RANGES_G",
    "ACC_RATES_HZ",
    "ECG_RATE_HZ",
    "EPOCH_2019_NS",
    "HR_SERVICE",
    "INFO",
    "PMD_CP",
    "PMD_DATA",
    "PMD_SERVICE",
    "ControlOp",
    "FrameLayout",
    "MeasurementType",
    "PmdCommand",
    "PmdFeatures",
    "PmdFrame",
    "PmdParser",
    "PmdResponse",
    "PmdSettings",
    "PolarH10Driver",
    "ResponseStatus",
    "SensorClockTimestamper",
    "SettingType",
    "build_frame",
    "decode_delta",
    "decode_raw",
    "encode_delta",
    "encode_raw",
    "frame_layout",
]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

PMD_SERVICE = normalize_uuid("fb005c80-02e7-f387-1cad-8acd2d8df0c8")
PMD_CP = normalize_uuid("fb005c81-02e7-f387-1cad-8acd2d8df0c8")
PMD_DATA = normalize_uuid("fb005c82-02e7-f387-1cad-8acd2d8df0c8")
HR_SERVICE = normalize_uuid("180d")

#: The H10's ECG runs at one rate only.
ECG_RATE_HZ = 130
#: Accelerometer rates and ranges the H10 offers (get-settings answer).
ACC_RATES_HZ = (25, 50, 100, 200)
ACC_RANGES_G = (2, 4, 8)
#: Resolutions the H10 reports: ECG 14 bit, ACC 16 bit.
ECG_RESOLUTION = 14
ACC_RESOLUTION = 16

#: Sensor time is ns since 2000-01-01T00:00Z; after a power-off the H10
#: restarts its clock at 2019-01-01 (6940 days later) unless the app sets it.
EPOCH_2019_NS = 6940 * 86_400 * 1_000_000_000
#: Seconds from the sensor epoch (2000-01-01) to the Unix epoch.
SENSOR_EPOCH_UNIX_S = 946_684_800

_CP_RESPONSE = 0xF0
_CP_FEATURES = 0x0F
_CP_DEVICE_STOPPED = 0x01  # server-to-client: online measurement stopped
_HEADER = struct.Struct("<BQB")  # measurement type, u64 ns, frame type
_DELTA_BIT = 0x80


class MeasurementType(enum.IntEnum):
    """PMD measurement types (type byte, low 6 bits)."""

    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6


class ControlOp(enum.IntEnum):
    """PMD control-point op codes (client to sensor)."""

    GET_SETTINGS = 1
    START = 2
    STOP = 3


class SettingType(enum.IntEnum):
    """Setting ids inside commands and settings answers."""

    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5
    SECURITY = 6


#: Bytes per value of each setting (LE unsigned; FACTOR is float32 bits).
_SETTING_SIZE: dict[SettingType, int] = {
    SettingType.SAMPLE_RATE: 2,
    SettingType.RESOLUTION: 2,
    SettingType.RANGE: 2,
    SettingType.RANGE_MILLIUNIT: 4,
    SettingType.CHANNELS: 1,
    SettingType.FACTOR: 4,
    SettingType.SECURITY: 16,
}


class ResponseStatus(enum.IntEnum):
    """Status byte of a control-point response."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13
    DISK_FULL = 14


def _status_name(status: int) -> str:
    try:
        return ResponseStatus(status).name
    except ValueError:
        return "UNKNOWN"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PmdSettings:
    """Settings as the control point encodes them: ``[id, count, count × value]…``.

    A start command carries one value per setting; a get-settings answer lists
    every value the sensor accepts.
    """

    values: Mapping[SettingType, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, vals in self.values.items():
            size = _SETTING_SIZE[SettingType(key)]
            if len(vals) > 255:
                raise ValueError(f"at most 255 values per setting, got {len(vals)}")
            for v in vals:
                if not 0 <= v < 1 << (8 * size):
                    raise ValueError(f"{SettingType(key).name} value {v} does not fit {size} bytes")

    @classmethod
    def single(cls, **kwargs: int) -> Self:
        """One value per setting, by lower-case name: ``single(sample_rate=130)``."""
        return cls({SettingType[k.upper()]: (int(v),) for k, v in kwargs.items()})

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse settings TLVs.

        Raises
        ------
        ParseError
            On an unknown or repeated setting id, or a truncated value list.
        """
        out: dict[SettingType, tuple[int, ...]] = {}
        i = 0
        while i < len(data):
            if i + 2 > len(data):
                raise ParseError(f"PMD settings truncated at byte {i}")
            try:
                key = SettingType(data[i])
            except ValueError:
                raise ParseError(f"unknown PMD setting id {data[i]}") from None
            if key in out:
                raise ParseError(f"PMD setting {key.name} given twice")
            count = data[i + 1]
            size = _SETTING_SIZE[key]
            end = i + 2 + count * size
            if end > len(data):
                raise ParseError(
                    f"PMD setting {key.name} needs {end - i} bytes, has {len(data) - i}"
                )
            vals = tuple(
                int.from_bytes(data[j : j + size], "little") for j in range(i + 2, end, size)
            )
            out[key] = vals
            i = end
        return cls(out)

    def __bytes__(self) -> bytes:
        out = bytearray()
        for key, vals in self.values.items():
            size = _SETTING_SIZE[SettingType(key)]
            out += bytes((int(key), len(vals)))
            for v in vals:
                out += int(v).to_bytes(size, "little")
        return bytes(out)

    def get(self, key: SettingType) -> int | None:
        """The first value of ``key``, or None."""
        vals = self.values.get(key)
        return vals[0] if vals else None

    @property
    def factor(self) -> float | None:
        """The FACTOR setting decoded as float32, if present."""
        bits = self.get(SettingType.FACTOR)
        if bits is None:
            return None
        return float(struct.unpack("<f", struct.pack("<I", bits))[0])


# --------------------------------------------------------------------------- control point


@dataclass(frozen=True)
class PmdCommand:
    """A control-point command: ``[op, type, settings…]``.

    Bit 7 of the type byte selects offline recording, which this project never
    uses; :meth:`from_bytes` refuses it.
    """

    op: int
    measurement: int
    settings: PmdSettings = field(default_factory=PmdSettings)

    @classmethod
    def start(
        cls,
        measurement: MeasurementType,
        *,
        sample_rate: int,
        resolution: int,
        range_g: int | None = None,
    ) -> Self:
        """A START command with the settings in the order the SDK sends them."""
        values: dict[SettingType, tuple[int, ...]] = {
            SettingType.SAMPLE_RATE: (sample_rate,),
            SettingType.RESOLUTION: (resolution,),
        }
        if range_g is not None:
            values[SettingType.RANGE] = (range_g,)
        return cls(ControlOp.START, measurement, PmdSettings(values))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a command (the twin's side).

        Raises
        ------
        ParseError
            When shorter than two bytes, for offline recording, or on bad settings.
        """
        if len(data) < 2:
            raise ParseError(f"PMD command needs 2 bytes, got {len(data)}")
        if data[1] & 0x80:
            raise ParseError("offline recording (type bit 7) is not supported")
        return cls(data[0], data[1], PmdSettings.from_bytes(bytes(data[2:])))

    def __bytes__(self) -> bytes:
        return bytes((self.op, self.measurement)) + bytes(self.settings)


@dataclass(frozen=True)
class PmdResponse:
    """A control-point response indication: ``F0 op type status [more params…]``."""

    op: int
    measurement: int
    status: int
    more: bool = False
    params: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a response.

        Raises
        ------
        ParseError
            When shorter than 4 bytes or not starting with ``F0``.
        """
        if len(data) < 4 or data[0] != _CP_RESPONSE:
            raise ParseError(f"not a PMD control-point response: {bytes(data).hex(' ')}")
        more = len(data) > 4 and data[4] != 0
        params = bytes(data[5:]) if data[3] == ResponseStatus.SUCCESS else b""
        return cls(data[1], data[2], data[3], more, params)

    def __bytes__(self) -> bytes:
        head = bytes((_CP_RESPONSE, self.op, self.measurement, self.status))
        if self.status != ResponseStatus.SUCCESS:
            return head
        return head + bytes((1 if self.more else 0,)) + self.params

    @property
    def ok(self) -> bool:
        """Success, or "already in state" (the stream is running)."""
        return self.status in (ResponseStatus.SUCCESS, ResponseStatus.ALREADY_IN_STATE)

    @property
    def settings(self) -> PmdSettings:
        """The parameters read as settings (get-settings answers, start factors)."""
        return PmdSettings.from_bytes(self.params)

    def describe(self) -> str:
        """Human text: ``status 10 (INVALID_MTU)``."""
        return f"status {self.status} ({_status_name(self.status)})"


@dataclass(frozen=True)
class PmdFeatures:
    """What reading the control point returns: ``0F <feature bits…>``."""

    measurements: frozenset[int]

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a feature read.

        Raises
        ------
        ParseError
            When the first byte is not ``0F``.
        """
        if len(data) < 2 or data[0] != _CP_FEATURES:
            raise ParseError(f"not a PMD feature read: {bytes(data).hex(' ')}")
        bits = int.from_bytes(data[1:], "little")
        return cls(frozenset(i for i in range(8 * (len(data) - 1)) if bits >> i & 1))

    def __bytes__(self) -> bytes:
        bits = 0
        for m in self.measurements:
            bits |= 1 << int(m)
        n = max(1, (bits.bit_length() + 7) // 8)
        return bytes((_CP_FEATURES,)) + bits.to_bytes(n, "little")


# --------------------------------------------------------------------------- data frames


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


# --------------------------------------------------------------------------- parser


def _uuid(char: str) -> str:
    try:
        return normalize_uuid(char)
    except ValueError:
        raise ParseError(f"not a characteristic UUID: {char!r}") from None


_STREAM_OF: dict[int, str] = {int(MeasurementType.ECG): "ecg", int(MeasurementType.ACC): "acc"}


class PmdParser:
    """Pure decoder of PMD data frames (and the control-point indications).

    Per-sample sensor times follow the SDK: linear between the previous
    frame's last-sample time and this frame's; for the first frame (and after
    a clock jump or lost frames, where that span disagrees with the nominal
    rate by more than half) ``1 / fs`` steps back from the last sample.
    ``Decoded.device_time`` is in seconds since 2000-01-01 on the sensor clock.

    A successful START response on the control point restarts the time
    interpolation and picks up a scale factor when the sensor sends one.

    Parameters
    ----------
    rates : mapping of MeasurementType to float
        Nominal sample rates (what the driver asked for).
    """

    def __init__(self, rates: Mapping[MeasurementType, float] | None = None) -> None:
        self.rates: dict[int, float] = {
            int(MeasurementType.ECG): float(ECG_RATE_HZ),
            int(MeasurementType.ACC): 200.0,
        }
        for k, v in (rates or {}).items():
            self.rates[int(k)] = float(v)
        self.factors: dict[int, float] = {}
        self._prev_s: dict[int, float] = {}

    def reset(self) -> None:
        """Forget the previous frame times (a new connection starts new streams)."""
        self._prev_s.clear()

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        """Decode one notification/indication.

        Raises
        ------
        ParseError
            On a malformed or unsupported frame, or a packet from another
            characteristic.
        """
        char = _uuid(char)
        if char == PMD_CP:
            self._control(bytes(data))
            return []
        if char != PMD_DATA:
            raise ParseError(f"not a PMD characteristic: {char}")
        frame = PmdFrame.from_bytes(bytes(data))
        stream = _STREAM_OF.get(frame.measurement)
        if stream is None:
            raise ParseError(f"unsupported PMD measurement type {frame.measurement}")
        samples = frame.samples()
        n = samples.shape[0]
        if n == 0:
            return []
        values = samples.astype(np.float64)
        factor = self.factors.get(frame.measurement)
        if factor is not None and factor != 1.0:
            values *= factor
        t = self._sample_times(frame.measurement, frame.timestamp_ns, n)
        return [Decoded(stream, values, t)]

    def _control(self, data: bytes) -> None:
        if data and data[0] == _CP_DEVICE_STOPPED:
            # The sensor stopped streams by itself: the next frames start anew.
            for m in data[1:]:
                self._prev_s.pop(m & 0x3F, None)
            return
        resp = PmdResponse.from_bytes(data)
        if resp.op == ControlOp.START and resp.status == ResponseStatus.SUCCESS:
            m = resp.measurement & 0x3F
            self._prev_s.pop(m, None)
            factor = resp.settings.factor if resp.params else None
            if factor is not None and math.isfinite(factor) and factor > 0:
                self.factors[m] = factor
        elif resp.op == ControlOp.STOP and resp.status == ResponseStatus.SUCCESS:
            self._prev_s.pop(resp.measurement & 0x3F, None)

    def _sample_times(self, measurement: int, timestamp_ns: int, n: int) -> FloatArray:
        t_last = timestamp_ns * 1e-9
        period = 1.0 / self.rates.get(measurement, 1.0)
        prev = self._prev_s.get(measurement)
        self._prev_s[measurement] = t_last
        if prev is not None:
            span = t_last - prev
            if 0.5 * n * period < span < 1.5 * n * period:
                return prev + span * np.arange(1, n + 1, dtype=np.float64) / n
        return t_last - period * np.arange(n - 1, -1, -1, dtype=np.float64)


# --------------------------------------------------------------------------- timestamps


class SensorClockTimestamper:
    """Map the strap's clock to the host clock, correcting drift and resets.

    The host time of a sample is ``s + offset(s)`` where ``s`` is its sensor
    time and ``offset`` a line ``o + slope · (s − s_ref)``:

    * the level ``o`` follows the *lower envelope* of ``t_recv − s_last``
      (receive latency is never negative): a new minimum is taken at once, and
      otherwise the level may rise by ``leak`` s/s (before the first drift
      estimate: ``max_drift``);
    * the slope (the sensor clock's drift, typically 10–500 ppm) is fitted by
      least squares through the minima of successive ``window_s`` windows,
      over the last ``fit_windows`` windows, clipped to ``±max_drift``;
    * a jump of the implied offset by more than ``jump_s`` (the H10 restarting
      its clock at 2019-01-01 after a power-off, or the app setting it) re-anchors
      the mapping and is counted in :attr:`clock_resets`; the drift estimate is
      kept (same crystal).

    Gaps (sensor time jumping forward by more than ``2.5 / rate_hz`` between
    consecutive samples: lost frames or a lost link) are counted in
    :attr:`gaps` and :attr:`gap_seconds`.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate (for gap detection only).
    leak : float
        How fast (s/s) the offset level may rise once the drift is estimated.
    window_s : float
        Sensor seconds per envelope window.
    fit_windows : int
        How many windows the drift fit uses.
    max_drift : float
        Largest drift believed (s/s).
    jump_s : float
        Offset change that counts as a sensor clock reset.
    """

    def __init__(
        self,
        rate_hz: float,
        *,
        leak: float = 5e-5,
        window_s: float = 5.0,
        fit_windows: int = 36,
        max_drift: float = 1e-3,
        jump_s: float = 1.0,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, {rate_hz!r} is invalid")
        self.rate_hz = float(rate_hz)
        self.leak = leak
        self.window_s = window_s
        self.max_drift = max_drift
        self.jump_s = jump_s
        self.gaps = 0
        self.gap_seconds = 0.0
        self.clock_resets = 0
        #: Current drift estimate: d(host − sensor)/d(sensor), s/s (None until fitted).
        self.drift: float | None = None
        self._windows: deque[tuple[float, float]] = deque(maxlen=fit_windows)
        self._win_start: float | None = None
        self._win_min: tuple[float, float] | None = None
        self._o: float | None = None
        self._s_ref = 0.0
        self._last_s = -math.inf
        self._last_recv = 0.0
        self._last_t = -math.inf

    def reset(self) -> None:
        """A new link: the mapping is kept (the strap's clock runs on); jumps are detected."""

    @property
    def offset(self) -> float | None:
        """Current host − sensor offset at the last sample's sensor time."""
        return self._o

    def host_time(self, s: npt.ArrayLike) -> FloatArray:
        """Host times of sensor times ``s`` under the current mapping."""
        if self._o is None:
            raise ValueError("no packet has been stamped yet")
        s_arr = np.asarray(s, dtype=np.float64)
        slope = self.drift or 0.0
        return s_arr + self._o + slope * (s_arr - self._s_ref)

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        """Host times of ``n`` samples whose sensor times are ``device_time``."""
        if n <= 0:
            return np.empty(0)
        if device_time is None or len(device_time) != n:
            raise ValueError("SensorClockTimestamper needs one sensor time per sample")
        s = np.asarray(device_time, dtype=np.float64)
        s_last = float(s[-1])
        implied = t_recv - s_last
        slope = self.drift or 0.0
        if self._o is None:
            self._anchor(s_last, implied)
        else:
            predicted = self._o + slope * (s_last - self._s_ref)
            if abs(implied - predicted) > self.jump_s or s[0] < self._last_s - self.jump_s:
                # The sensor clock jumped (power-off reset to 2019, or set by an app).
                self.clock_resets += 1
                log.info("sensor clock jumped by %.3f s: re-anchored", predicted - implied)
                self._windows.clear()
                self._win_start = None
                self._win_min = None
                self._anchor(s_last, implied)
            else:
                gap = float(s[0] - self._last_s)
                if gap > 2.5 / self.rate_hz:
                    self.gaps += 1
                    self.gap_seconds += gap - 1.0 / self.rate_hz
                leak = self.leak if self.drift is not None else self.max_drift
                risen = predicted + leak * max(0.0, t_recv - self._last_recv)
                self._o = min(risen, implied)
                self._s_ref = s_last
        self._track_envelope(s_last, implied)
        self._last_s = s_last
        self._last_recv = t_recv
        t = self.host_time(s)
        # Never step back in time (a lowered envelope may not reorder samples).
        t = np.maximum(t, self._last_t + 1e-6 * np.arange(1, n + 1))
        self._last_t = float(t[-1])
        return t

    def _anchor(self, s_last: float, implied: float) -> None:
        self._o = implied
        self._s_ref = s_last

    def _track_envelope(self, s_last: float, implied: float) -> None:
        if self._win_start is None:
            self._win_start = s_last
        if self._win_min is None or implied < self._win_min[1]:
            self._win_min = (s_last, implied)
        if s_last - self._win_start >= self.window_s:
            self._windows.append(self._win_min)
            self._win_start = s_last
            self._win_min = None
            self._fit_drift()

    def _fit_drift(self) -> None:
        if len(self._windows) < 3:
            return
        pts = np.asarray(self._windows, dtype=np.float64)
        x = pts[:, 0] - pts[-1, 0]
        y = pts[:, 1]
        slope, icept = np.polyfit(x, y, 1)
        # Windows without a low-latency packet sit high above the line: drop them once.
        keep = y - (slope * x + icept) < 2e-3
        if 3 <= keep.sum() < len(y):
            slope, icept = np.polyfit(x[keep], y[keep], 1)
        self.drift = float(np.clip(slope, -self.max_drift, self.max_drift))


# --------------------------------------------------------------------------- driver

INFO = DriverInfo(
    id="polar-h10",
    title="Polar H10 chest strap (PMD: ECG + accelerometer)",
    support=SupportLevel.VENDOR_DOCUMENTED,
    name_patterns=(r"Polar H10( .*)?",),
    service_uuids=(PMD_SERVICE,),
    streams=(
        StreamSpec("ecg", StreamKind.ECG, ("ecg",), "uV", float(ECG_RATE_HZ)),
        StreamSpec("acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0),
    ),
    notify_chars=(PMD_CP, PMD_DATA),
    writable_chars=(PMD_CP,),
    battery=True,
    notes="ECG 130 Hz (int24 µV) + chest ACC 25-200 Hz (mG) on the strap's drift-corrected clock",
)


class PolarH10Driver(Driver):
    """Polar H10: starts ECG and ACC through the PMD control point.

    Parameters
    ----------
    acc_rate_hz : int
        Accelerometer rate, one of 25, 50, 100, 200.
    acc_range_g : int
        Accelerometer range, one of 2, 4, 8 G.
    response_timeout : float
        Clock seconds to wait for each control-point response.
    """

    def __init__(
        self, *, acc_rate_hz: int = 200, acc_range_g: int = 8, response_timeout: float = 5.0
    ) -> None:
        if acc_rate_hz not in ACC_RATES_HZ:
            raise ValueError(
                f"acc_rate_hz must be one of {ACC_RATES_HZ}, {acc_rate_hz!r} is invalid"
            )
        if acc_range_g not in ACC_RANGES_G:
            raise ValueError(
                f"acc_range_g must be one of {ACC_RANGES_G}, {acc_range_g!r} is invalid"
            )
        self.acc_rate_hz = acc_rate_hz
        self.acc_range_g = acc_range_g
        self.response_timeout = response_timeout
        acc = replace(INFO.stream("acc"), rate_hz=float(acc_rate_hz))
        self.info = replace(INFO, streams=(INFO.stream("ecg"), acc))

    def start_commands(self) -> list[PmdCommand]:
        """The START commands, in the order they are sent (ECG, then ACC)."""
        return [
            PmdCommand.start(
                MeasurementType.ECG, sample_rate=ECG_RATE_HZ, resolution=ECG_RESOLUTION
            ),
            PmdCommand.start(
                MeasurementType.ACC,
                sample_rate=self.acc_rate_hz,
                resolution=ACC_RESOLUTION,
                range_g=self.acc_range_g,
            ),
        ]

    def make_parser(self) -> Parser:
        return PmdParser({MeasurementType.ECG: ECG_RATE_HZ, MeasurementType.ACC: self.acc_rate_hz})

    def make_timestampers(self) -> dict[str, Timestamper]:
        return {
            "ecg": SensorClockTimestamper(ECG_RATE_HZ),
            "acc": SensorClockTimestamper(self.acc_rate_hz),
        }

    async def start(self, io: DriverIO) -> None:
        """Subscribe, check the features, send both STARTs and await their indications.

        Called again by the connection layer after every reconnect (the H10
        stops its streams when the link drops).

        Raises
        ------
        ConnectionFailedError
            When the strap lacks ECG/ACC, refuses a start (naming the status)
            or does not answer in time.
        """
        await io.subscribe(PMD_CP)
        await io.subscribe(PMD_DATA)
        try:
            features = PmdFeatures.from_bytes(await io.read(PMD_CP))
        except ParseError as exc:
            raise ConnectionFailedError(f"Polar H10: unreadable PMD features ({exc})") from exc
        for cmd in self.start_commands():
            name = MeasurementType(cmd.measurement).name
            if cmd.measurement not in features.measurements:
                raise ConnectionFailedError(f"Polar H10: the sensor offers no {name} stream")
            await io.write(PMD_CP, bytes(cmd), response=True)
            resp = await self._response(io, cmd)
            if not resp.ok:
                raise ConnectionFailedError(f"Polar H10 refused to start {name}: {resp.describe()}")
            log.debug("PMD %s started (%s)", name, resp.describe())

    async def _response(self, io: DriverIO, cmd: PmdCommand) -> PmdResponse:
        deadline = io.clock.now() + self.response_timeout
        name = MeasurementType(cmd.measurement).name
        while True:
            remaining = deadline - io.clock.now()
            if remaining <= 0:
                break
            try:
                # Frames of a stream started a moment before stay with the stream.
                pkt = await io.next_packet(remaining, char=PMD_CP)
            except TimeoutError:
                break
            if normalize_uuid(pkt.char) != PMD_CP:
                continue
            try:
                resp = PmdResponse.from_bytes(pkt.data)
            except ParseError:
                continue
            if resp.op == cmd.op and resp.measurement & 0x3F == cmd.measurement:
                return resp
        raise ConnectionFailedError(
            f"Polar H10: no control-point response to {name} start within "
            f"{self.response_timeout:g} s"
        )

    async def stop(self, io: DriverIO) -> None:
        """Send STOP for both streams (the H10 keeps streaming otherwise, KnownIssues)."""
        errors: list[Exception] = []
        for cmd in reversed(self.start_commands()):
            try:
                await io.write(PMD_CP, bytes((ControlOp.STOP, cmd.measurement)), response=True)
            except Exception as exc:  # try every stop, report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]
