"""GDX framed protocol, device side: status and info records, measurements, reassembly.

See :mod:`devices.drivers.gdx_rb` for the wire format. Pure: packets are
small dataclasses with ``from_bytes`` / ``__bytes__`` that the virtual twin
shares.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.drivers.gdx_commands import (
    RESPONSE_MEASUREMENT,
    check_u8,
    finish_frame,
    frame_checksum,
)
from devices.errors import ParseError

__all__ = [
    "GdxDeviceInfo",
    "GdxMeasurement",
    "GdxReassembler",
    "GdxSensorInfo",
    "GdxStatus",
    "MeasurementType",
    "mask_to_sensors",
]

class MeasurementType(enum.IntEnum):
    """Measurement packet types (byte [4] of a 0x20 packet)."""

    NORMAL_REAL32 = 0x06
    WIDE_REAL32 = 0x07
    SINGLE_CHANNEL_REAL32 = 0x08
    SINGLE_CHANNEL_INT32 = 0x09
    APERIODIC_REAL32 = 0x0A
    APERIODIC_INT32 = 0x0B
    START_TIME = 0x0C
    DROPPED = 0x0D
    PERIOD = 0x0E


_IGNORED_TYPES = frozenset(
    {MeasurementType.START_TIME, MeasurementType.DROPPED, MeasurementType.PERIOD}
)
_SINGLE_TYPES = frozenset(
    {
        MeasurementType.SINGLE_CHANNEL_REAL32,
        MeasurementType.SINGLE_CHANNEL_INT32,
        MeasurementType.APERIODIC_REAL32,
        MeasurementType.APERIODIC_INT32,
    }
)
_INT_TYPES = frozenset({MeasurementType.SINGLE_CHANNEL_INT32, MeasurementType.APERIODIC_INT32})


_STATUS = struct.Struct("<BBBBHBBHBB")


@dataclass(frozen=True)
class GdxStatus:
    """GET_STATUS payload (``<BBBBHBBHBB``)."""

    status: int = 0
    spare: int = 0
    master_major: int = 1
    master_minor: int = 0
    master_build: int = 0
    ble_major: int = 1
    ble_minor: int = 0
    ble_build: int = 0
    battery_percent: int = 100
    charger_state: int = 0

    @classmethod
    def from_bytes(cls, payload: bytes) -> GdxStatus:
        if len(payload) < _STATUS.size:
            raise ParseError(f"GDX status needs {_STATUS.size} bytes, got {len(payload)}")
        return cls(*_STATUS.unpack_from(payload))

    def __bytes__(self) -> bytes:
        return _STATUS.pack(
            self.status,
            self.spare,
            self.master_major,
            self.master_minor,
            self.master_build,
            self.ble_major,
            self.ble_minor,
            self.ble_build,
            self.battery_percent,
            self.charger_state,
        )


_DEVICE_INFO = struct.Struct("<16s16s32sHHBBBBHBBH6BI64s")


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class GdxDeviceInfo:
    """GET_DEVICE_INFO payload (``<16s16s32sHHBBBBHBBH6BI64s``)."""

    order_code: str = "GDX-RB"
    serial_number: str = ""
    device_name: str = ""
    manufacturer_id: int = 0
    manufactured_year: int = 2020
    manufactured_month: int = 1
    manufactured_day: int = 1
    master_major: int = 1
    master_minor: int = 0
    master_build: int = 0
    ble_major: int = 1
    ble_minor: int = 0
    ble_build: int = 0
    ble_address: bytes = bytes(6)
    nvmem_size: int = 0
    description: str = "Go Direct Respiration Belt"

    @classmethod
    def from_bytes(cls, payload: bytes) -> GdxDeviceInfo:
        if len(payload) < _DEVICE_INFO.size:
            raise ParseError(f"GDX device info needs {_DEVICE_INFO.size} bytes, got {len(payload)}")
        f = _DEVICE_INFO.unpack_from(payload)
        return cls(
            order_code=_cstr(f[0]),
            serial_number=_cstr(f[1]),
            device_name=_cstr(f[2]),
            manufacturer_id=f[3],
            manufactured_year=f[4],
            manufactured_month=f[5],
            manufactured_day=f[6],
            master_major=f[7],
            master_minor=f[8],
            master_build=f[9],
            ble_major=f[10],
            ble_minor=f[11],
            ble_build=f[12],
            ble_address=bytes(f[13:19]),
            nvmem_size=f[19],
            description=_cstr(f[20]),
        )

    def __bytes__(self) -> bytes:
        return _DEVICE_INFO.pack(
            self.order_code.encode(),
            self.serial_number.encode(),
            self.device_name.encode(),
            self.manufacturer_id,
            self.manufactured_year,
            self.manufactured_month,
            self.manufactured_day,
            self.master_major,
            self.master_minor,
            self.master_build,
            self.ble_major,
            self.ble_minor,
            self.ble_build,
            *self.ble_address,
            self.nvmem_size,
            self.description.encode(),
        )


_SENSOR_INFO = struct.Struct("<bBIBB60s32sdddIQIII")


@dataclass(frozen=True)
class GdxSensorInfo:
    """GET_SENSOR_INFO payload (``<bBIBB60s32sdddIQIII``, 148 bytes).

    Periods are in microseconds.
    """

    number: int
    sensor_id: int = 0
    numeric_type: int = 0  # 0 = real, 1 = int32
    sampling_mode: int = 0  # 0 = periodic, 1 = aperiodic
    description: str = ""
    unit: str = ""
    uncertainty: float = 0.0
    min_value: float = 0.0
    max_value: float = 0.0
    min_period_us: int = 0
    max_period_us: int = 0
    typ_period_us: int = 0
    granularity_us: int = 0
    mutual_exclusion_mask: int = 0
    spare: int = 0

    @classmethod
    def from_bytes(cls, payload: bytes) -> GdxSensorInfo:
        if len(payload) < _SENSOR_INFO.size:
            raise ParseError(f"GDX sensor info needs {_SENSOR_INFO.size} bytes, got {len(payload)}")
        f = _SENSOR_INFO.unpack_from(payload)
        return cls(
            number=f[0],
            spare=f[1],
            sensor_id=f[2],
            numeric_type=f[3],
            sampling_mode=f[4],
            description=_cstr(f[5]),
            unit=_cstr(f[6]),
            uncertainty=f[7],
            min_value=f[8],
            max_value=f[9],
            min_period_us=f[10],
            max_period_us=f[11],
            typ_period_us=f[12],
            granularity_us=f[13],
            mutual_exclusion_mask=f[14],
        )

    def __bytes__(self) -> bytes:
        return _SENSOR_INFO.pack(
            self.number,
            self.spare,
            self.sensor_id,
            self.numeric_type,
            self.sampling_mode,
            self.description.encode(),
            self.unit.encode(),
            self.uncertainty,
            self.min_value,
            self.max_value,
            self.min_period_us,
            self.max_period_us,
            self.typ_period_us,
            self.granularity_us,
            self.mutual_exclusion_mask,
        )


def mask_to_sensors(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(32) if mask >> i & 1)


@dataclass(frozen=True, eq=False)
class GdxMeasurement:
    """A measurement packet (``20 len seq chk type ...``).

    Parameters
    ----------
    mtype : int
        :class:`MeasurementType`.
    sensors : tuple of int
        Sensor numbers in column order (ascending bit order of the mask).
    values : ndarray, shape (n, len(sensors))
        Samples, float64 (int32 types hold integers).
    seq : int
        Byte [2] (not decoded by the vendor code).
    spare : int
        The undecoded byte after the count (NORMAL: [8], WIDE: [10]) or
        before the sensor number (single-channel types: [5]).
    raw : bytes
        For the ignored types (START_TIME, DROPPED, PERIOD): the bytes after
        [4], kept as they are.
    """

    mtype: int
    sensors: tuple[int, ...] = ()
    values: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    seq: int = 0
    spare: int = 0
    raw: bytes = b""

    def __post_init__(self) -> None:
        check_u8("mtype", self.mtype)
        check_u8("seq", self.seq)
        check_u8("spare", self.spare)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.sensors):
            raise ValueError(
                f"values must have shape (n, {len(self.sensors)}), got {self.values.shape}"
            )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, verify: bool = False) -> GdxMeasurement:
        """Decode one complete measurement frame.

        Raises
        ------
        ParseError
            Not a measurement, length byte wrong, unknown type, the samples
            announced do not fit, or (with ``verify``) a bad checksum.
        """
        n = len(data)
        if n < 5:
            raise ParseError(f"GDX measurement needs at least 5 bytes, got {n}")
        if data[0] != RESPONSE_MEASUREMENT:
            raise ParseError(f"GDX packet type 0x{data[0]:02x} is not a measurement")
        if data[1] != n:
            raise ParseError(f"GDX measurement length byte {data[1]} != {n} bytes")
        if verify and frame_checksum(data) != data[3]:
            raise ParseError(
                f"GDX measurement checksum 0x{data[3]:02x} != 0x{frame_checksum(data):02x}"
            )
        mtype = data[4]
        seq = data[2]
        if mtype in _IGNORED_TYPES:
            return cls(mtype, seq=seq, raw=bytes(data[5:]))
        if mtype == MeasurementType.NORMAL_REAL32:
            head = 9
            if n < head:
                raise ParseError(f"GDX NORMAL_REAL32 needs {head} bytes, got {n}")
            sensors = mask_to_sensors(data[5] | data[6] << 8)
            count, spare = data[7], data[8]
        elif mtype == MeasurementType.WIDE_REAL32:
            head = 11
            if n < head:
                raise ParseError(f"GDX WIDE_REAL32 needs {head} bytes, got {n}")
            sensors = mask_to_sensors(int.from_bytes(data[5:9], "little"))
            count, spare = data[9], data[10]
        elif mtype in _SINGLE_TYPES:
            head = 8
            if n < head:
                raise ParseError(f"GDX single-channel packet needs {head} bytes, got {n}")
            sensors = (data[6],)
            count, spare = data[7], data[5]
        else:
            raise ParseError(f"GDX measurement type 0x{mtype:02x} is unknown")
        k = len(sensors)
        need = head + 4 * count * k
        if n < need:
            raise ParseError(
                f"GDX measurement announces {count} x {k} values ({need} bytes), got {n} bytes"
            )
        dtype = "<i4" if mtype in _INT_TYPES else "<f4"
        flat = np.frombuffer(bytes(data), dtype=dtype, count=count * k, offset=head)
        values = flat.astype(np.float64).reshape(count, k)
        return cls(mtype, sensors, values, seq, spare)

    def __bytes__(self) -> bytes:
        count = self.values.shape[0]
        check_u8("sample count", count)
        if self.mtype == MeasurementType.NORMAL_REAL32:
            mask = sum(1 << s for s in self.sensors)
            if mask > 0xFFFF:
                raise ValueError("NORMAL_REAL32 carries sensors 0..15 only")
            head = bytearray([RESPONSE_MEASUREMENT, 0, self.seq, 0, self.mtype])
            head += struct.pack("<HBB", mask, count, self.spare)
        elif self.mtype == MeasurementType.WIDE_REAL32:
            mask = sum(1 << s for s in self.sensors)
            head = bytearray([RESPONSE_MEASUREMENT, 0, self.seq, 0, self.mtype])
            head += struct.pack("<IBB", mask, count, self.spare)
        elif self.mtype in _SINGLE_TYPES:
            if len(self.sensors) != 1:
                raise ValueError("single-channel packets carry exactly one sensor")
            head = bytearray([RESPONSE_MEASUREMENT, 0, self.seq, 0, self.mtype])
            head += bytes([self.spare, self.sensors[0], count])
        elif self.mtype in _IGNORED_TYPES:
            head = bytearray([RESPONSE_MEASUREMENT, 0, self.seq, 0, self.mtype]) + self.raw
            return finish_frame(head)
        else:
            raise ValueError(f"unknown measurement type 0x{self.mtype:02x}")
        dtype = "<i4" if self.mtype in _INT_TYPES else "<f4"
        return finish_frame(head + self.values.astype(dtype).tobytes())


class GdxReassembler:
    """Join notifications into frames by the length byte [1].

    Parameters
    ----------
    min_frame : int
        Smallest valid frame; a shorter length byte is a framing error.
    """

    def __init__(self, min_frame: int = 5) -> None:
        self.min_frame = min_frame
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buf)

    def push(self, data: bytes | bytearray) -> list[bytes]:
        """Add one notification; return the frames it completes.

        Raises
        ------
        ParseError
            When a frame's length byte is impossible; the buffer is dropped so
            that the next notification starts afresh.
        """
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 2:
            length = self._buf[1]
            if length < self.min_frame:
                bad = bytes(self._buf[:2])
                self._buf.clear()
                raise ParseError(
                    f"GDX frame length {length} is below {self.min_frame} (starts {bad.hex()})"
                )
            if len(self._buf) < length:
                break
            out.append(bytes(self._buf[:length]))
            del self._buf[:length]
        return out

