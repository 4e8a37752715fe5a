"""Polar Measurement Data (PMD): the service, its control point, and its settings.

Vendor-documented (Polar BLE SDK, ``notes/ble-protocols.md`` §3.2). The PMD
service has two characteristics:

* the control point ``FB005C81-…`` (write + indicate + read): a read returns
  ``0F <feature bits>`` (``0F 05`` on an H10: ECG and ACC); commands are
  ``[op, type, (setting_id, count=1, value LE)…]`` and each one is answered by
  an indication ``F0 op type status [more params…]``;
* the data characteristic ``FB005C82-…`` (notify): frames, see
  :mod:`devices.drivers.polar_frames`.

Pure: packets are small dataclasses with ``from_bytes`` / ``__bytes__`` that
the virtual twin uses to build what the driver reads.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

from devices.drivers.base import normalize_uuid
from devices.errors import ParseError

__all__ = [
    "ACC_RANGES_G",
    "ACC_RATES_HZ",
    "ACC_RESOLUTION",
    "CP_DEVICE_STOPPED",
    "ECG_RATE_HZ",
    "ECG_RESOLUTION",
    "EPOCH_2019_NS",
    "HR_SERVICE",
    "PMD_CP",
    "PMD_DATA",
    "PMD_SERVICE",
    "ControlOp",
    "MeasurementType",
    "PmdCommand",
    "PmdFeatures",
    "PmdResponse",
    "PmdSettings",
    "ResponseStatus",
    "SettingType",
]

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
CP_DEVICE_STOPPED = 0x01  # server-to-client: online measurement stopped



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

