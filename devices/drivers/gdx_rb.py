"""Vernier Go Direct Respiration Belt (GDX-RB): framed command protocol.

Vendor-documented (BSD code: ``VernierST/godirect-py`` ``device.py`` and
``device_bleak.py``, ``VernierST/godirect-js`` ``Device.js`` and
``constants.js``; ``notes/ble-protocols.md`` §3.1).

Host -> device, written without response to the command characteristic in
chunks of at most 20 bytes::

    58 len ctr chk cmd params...
    len  total frame length
    ctr  rolling counter: INIT resets it to 0xFF, it is decremented before
         every command (INIT goes out with 0xFE)
    chk  (sum of every byte except [3]) & 0xFF

Device -> host, notified on the response characteristic and split into
notifications (reassembled until the length reaches byte [1])::

    20 len seq chk type ...            measurement (type at [4])
    TT len seq chk cmd ctr payload...  command response: echo of the command
                                       at [4] and of its counter at [5]

Measurement types: 0x06 NORMAL_REAL32 (mask u16 LE at [5:7], count at [7],
float32 LE from [9], interleaved sensor by sensor for each sample); 0x07
WIDE_REAL32 (mask u32 at [5:9], count at [9], data from [11]); 0x08/0x0A one
sensor float32 (sensor at [6], count at [7], data from [8]); 0x09/0x0B the
same with int32. 0x0C START_TIME, 0x0D DROPPED, 0x0E PERIOD are ignored, as by
both official libraries (their layout is not public).

What is *not* published, and what we chose (shared with the twin):

* the type byte ``TT`` of a command response: the vendor code never reads
  it (anything but 0x20 is a response); our twin sends 0x58;
* bytes [2:4] of device packets: the vendor code never checks them; our twin
  fills them like a command (own rolling counter, same checksum), and the
  parser verifies that checksum only when asked (``verify_checksum=True``);
* byte [8] of NORMAL_REAL32 (and [10] of WIDE): undecoded, kept as ``spare``.

Channels of the belt (bit positions in the sensor mask; confirmed at start by
GET_SENSOR_INFO): 1 force (N), 2 respiration rate (bpm; NaN until the device
has about 30 s of breathing, then updated about every 10 s), 3 steps, 4 step
rate. The driver enables 1 and 2 and delivers them as the ``force`` and
``rate`` streams, both at the configured period (default 100 ms, i.e. 10 Hz;
the belt is reported to manage 20 Hz at most). Samples carry no timestamps:
they are placed at t0 + i * period by the rate timestamper.
"""

from __future__ import annotations

import enum
import logging
import struct
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from devices.drivers.base import CharFilter, Decoded, Driver, DriverInfo, DriverIO, normalize_uuid
from devices.errors import ConnectionFailedError, InputError, ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "FORCE_CHANNEL",
    "GDX_COMMAND",
    "GDX_RESPONSE",
    "GDX_SERVICE",
    "RATE_CHANNEL",
    "Command",
    "GdxCommandFrame",
    "GdxDeviceInfo",
    "GdxMeasurement",
    "GdxParser",
    "GdxRbDriver",
    "GdxReassembler",
    "GdxResponse",
    "GdxSensorInfo",
    "GdxStatus",
    "MeasurementType",
    "RollingCounter",
    "chunk_frame",
    "frame_checksum",
    "init_frame",
    "set_period_frame",
    "start_frame",
    "stop_frame",
]

log = logging.getLogger(__name__)

GDX_SERVICE = "d91714ef-28b9-4f91-ba16-f0d9a604f112"
GDX_COMMAND = "f4bf14a6-c7d5-4b6d-8aa8-df1a7c83adcb"
GDX_RESPONSE = "b41e6675-a329-40e0-aa01-44d2f444babe"

COMMAND_HEADER = 0x58
RESPONSE_MEASUREMENT = 0x20
#: Type byte of a command response: not published, never read by the vendor
#: code; what our twin sends.
RESPONSE_COMMAND = 0x58
#: Host writes go out in chunks of at most this many bytes, without response.
WRITE_CHUNK = 20

FORCE_CHANNEL = 1
RATE_CHANNEL = 2

#: The INIT command's fixed parameter bytes (vendor code).
INIT_PARAMS = bytes.fromhex("a54a06490748084709460a450b440c430d420e41")


class Command(enum.IntEnum):
    """Command ids (``godirect-py`` ``device.py``)."""

    GET_STATUS = 0x10
    START_MEASUREMENTS = 0x18
    STOP_MEASUREMENTS = 0x19
    INIT = 0x1A
    SET_MEASUREMENT_PERIOD = 0x1B
    GET_SENSOR_INFO = 0x50
    GET_SENSOR_AVAILABLE_MASK = 0x51
    DISCONNECT = 0x54
    GET_DEVICE_INFO = 0x55
    GET_DEFAULT_SENSORS_MASK = 0x56


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


def frame_checksum(frame: bytes | bytearray) -> int:
    """Checksum of a frame: the sum of every byte except [3], modulo 256."""
    return (sum(frame) - frame[3]) & 0xFF


def _finish(body: bytearray) -> bytes:
    """Fill in length and checksum of a frame whose [1] and [3] are placeholders."""
    if len(body) > 0xFF:
        raise ValueError(f"frame of {len(body)} bytes does not fit the u8 length field")
    body[1] = len(body)
    body[3] = 0
    body[3] = frame_checksum(body)
    return bytes(body)


def _check_u8(name: str, v: int) -> None:
    if not 0 <= v <= 0xFF:
        raise ValueError(f"{name} must fit in a byte, {v!r} does not")


class RollingCounter:
    """The host's rolling command counter (reset to 0xFF by INIT, decremented first)."""

    def __init__(self) -> None:
        self.value = 0xFF

    def reset(self) -> None:
        self.value = 0xFF

    def next(self) -> int:
        self.value = (self.value - 1) & 0xFF
        return self.value


@dataclass(frozen=True)
class GdxCommandFrame:
    """A host -> device command frame ``58 len ctr chk cmd params``.

    Parameters
    ----------
    counter : int
        Rolling counter value for this command.
    command : int
        Command id (:class:`Command`).
    params : bytes
        Command parameters.
    """

    counter: int
    command: int
    params: bytes = b""

    HEADER_LEN: ClassVar[int] = 5

    def __post_init__(self) -> None:
        _check_u8("counter", self.counter)
        _check_u8("command", self.command)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, verify: bool = True) -> GdxCommandFrame:
        """Decode one complete command frame.

        Raises
        ------
        ParseError
            When the header byte, the length or (with ``verify``) the checksum
            is wrong.
        """
        if len(data) < cls.HEADER_LEN:
            raise ParseError(f"GDX command frame needs {cls.HEADER_LEN} bytes, got {len(data)}")
        if data[0] != COMMAND_HEADER:
            raise ParseError(f"GDX command frame starts with 0x{data[0]:02x}, not 0x58")
        if data[1] != len(data):
            raise ParseError(f"GDX command frame length byte {data[1]} != {len(data)} bytes")
        if verify and frame_checksum(data) != data[3]:
            raise ParseError(
                f"GDX command frame checksum 0x{data[3]:02x} != 0x{frame_checksum(data):02x}"
            )
        return cls(data[2], data[4], bytes(data[5:]))

    def __bytes__(self) -> bytes:
        return _finish(bytearray([COMMAND_HEADER, 0, self.counter, 0, self.command]) + self.params)


def init_frame(counter: int) -> GdxCommandFrame:
    """INIT (send with the counter freshly reset, i.e. 0xFE)."""
    return GdxCommandFrame(counter, Command.INIT, INIT_PARAMS)


def set_period_frame(counter: int, period_us: int) -> GdxCommandFrame:
    """SET_MEASUREMENT_PERIOD ``1B FF 00 <period_us u32 LE> 00 00 00 00``."""
    return GdxCommandFrame(
        counter,
        Command.SET_MEASUREMENT_PERIOD,
        b"\xff\x00" + struct.pack("<I", period_us) + bytes(4),
    )


def start_frame(counter: int, mask: int) -> GdxCommandFrame:
    """START_MEASUREMENTS ``18 FF 01 <mask u32 LE> 00 x 8``."""
    return GdxCommandFrame(
        counter, Command.START_MEASUREMENTS, b"\xff\x01" + struct.pack("<I", mask) + bytes(8)
    )


def stop_frame(counter: int) -> GdxCommandFrame:
    """STOP_MEASUREMENTS ``19 FF 00 FF FF FF FF``."""
    return GdxCommandFrame(counter, Command.STOP_MEASUREMENTS, b"\xff\x00\xff\xff\xff\xff")


def chunk_frame(frame: bytes, size: int = WRITE_CHUNK) -> list[bytes]:
    """Split a frame into BLE writes of at most ``size`` bytes."""
    return [frame[i : i + size] for i in range(0, len(frame), size)]


@dataclass(frozen=True)
class GdxResponse:
    """A device -> host command response ``TT len seq chk cmd ctr payload``.

    Parameters
    ----------
    command : int
        Echo of the command id.
    counter : int
        Echo of the command's rolling counter.
    payload : bytes
        Response payload (from byte [6]); its first byte is a status (0 = ok)
        for INIT, SET_PERIOD, START and STOP.
    seq : int
        The device's own counter at [2] (not read by the vendor code).
    kind : int
        Type byte [0] (not published; :data:`RESPONSE_COMMAND` for our twin).
    """

    command: int
    counter: int
    payload: bytes = b""
    seq: int = 0
    kind: int = RESPONSE_COMMAND

    HEADER_LEN: ClassVar[int] = 6

    def __post_init__(self) -> None:
        for name in ("command", "counter", "seq", "kind"):
            _check_u8(name, getattr(self, name))
        if self.kind == RESPONSE_MEASUREMENT:
            raise ValueError("kind 0x20 is a measurement, not a command response")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, verify: bool = False) -> GdxResponse:
        """Decode one complete response frame.

        Raises
        ------
        ParseError
            When too short, a measurement, the length byte disagrees, or (with
            ``verify``) the checksum is wrong.
        """
        if len(data) < cls.HEADER_LEN:
            raise ParseError(f"GDX response needs {cls.HEADER_LEN} bytes, got {len(data)}")
        if data[0] == RESPONSE_MEASUREMENT:
            raise ParseError("GDX packet is a measurement, not a command response")
        if data[1] != len(data):
            raise ParseError(f"GDX response length byte {data[1]} != {len(data)} bytes")
        if verify and frame_checksum(data) != data[3]:
            raise ParseError(
                f"GDX response checksum 0x{data[3]:02x} != 0x{frame_checksum(data):02x}"
            )
        return cls(data[4], data[5], bytes(data[6:]), data[2], data[0])

    def __bytes__(self) -> bytes:
        head = bytearray([self.kind, 0, self.seq, 0, self.command, self.counter])
        return _finish(head + self.payload)

    @property
    def status(self) -> int:
        """First payload byte (0 = success); -1 when there is no payload."""
        return self.payload[0] if self.payload else -1


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


def _mask_to_sensors(mask: int) -> tuple[int, ...]:
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
        _check_u8("mtype", self.mtype)
        _check_u8("seq", self.seq)
        _check_u8("spare", self.spare)
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
            sensors = _mask_to_sensors(data[5] | data[6] << 8)
            count, spare = data[7], data[8]
        elif mtype == MeasurementType.WIDE_REAL32:
            head = 11
            if n < head:
                raise ParseError(f"GDX WIDE_REAL32 needs {head} bytes, got {n}")
            sensors = _mask_to_sensors(int.from_bytes(data[5:9], "little"))
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
        _check_u8("sample count", count)
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
            return _finish(head)
        else:
            raise ValueError(f"unknown measurement type 0x{self.mtype:02x}")
        dtype = "<i4" if self.mtype in _INT_TYPES else "<f4"
        return _finish(head + self.values.astype(dtype).tobytes())


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


class GdxParser:
    """Pure parser of the response characteristic: reassembly + measurements.

    Command responses (which the driver consumes during start) and the ignored
    measurement types give no samples.

    Parameters
    ----------
    verify_checksum : bool
        Also check the checksum of device packets (off by default: the vendor
        libraries never do, and its use on device packets is not published).
    """

    def __init__(self, verify_checksum: bool = False) -> None:
        self.verify_checksum = verify_checksum
        self._reasm = GdxReassembler(min_frame=5)
        self._ours = CharFilter(GDX_RESPONSE)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        force: list[npt.NDArray[np.float64]] = []
        rate: list[npt.NDArray[np.float64]] = []
        for frame in self._reasm.push(data):
            if frame[0] != RESPONSE_MEASUREMENT:
                if len(frame) < GdxResponse.HEADER_LEN:
                    raise ParseError(f"GDX response of {len(frame)} bytes is too short")
                continue
            m = GdxMeasurement.from_bytes(frame, verify=self.verify_checksum)
            if m.values.shape[0] == 0:
                continue
            for col, sensor in enumerate(m.sensors):
                if sensor == FORCE_CHANNEL:
                    force.append(m.values[:, col : col + 1])
                elif sensor == RATE_CHANNEL:
                    rate.append(m.values[:, col : col + 1])
        out: list[Decoded] = []
        if force:
            out.append(Decoded("force", force[0] if len(force) == 1 else np.vstack(force)))
        if rate:
            out.append(Decoded("rate", rate[0] if len(rate) == 1 else np.vstack(rate)))
        return out

    def reset(self) -> None:
        self._reasm.reset()


@dataclass
class _Session:
    counter: RollingCounter = field(default_factory=RollingCounter)
    reasm: GdxReassembler = field(default_factory=lambda: GdxReassembler(min_frame=5))


class GdxRbDriver(Driver):
    """Vernier Go Direct Respiration Belt (vendor-documented).

    Parameters
    ----------
    period_ms : float
        Sample period sent with SET_MEASUREMENT_PERIOD (default 100 ms = 10 Hz;
        50 ms = 20 Hz is the fastest the belt is reported to manage).
    timeout_s : float
        How long to wait for each command's response during start.
    """

    MIN_PERIOD_MS: ClassVar[float] = 50.0

    def __init__(self, period_ms: float = 100.0, timeout_s: float = 5.0) -> None:
        if not period_ms >= self.MIN_PERIOD_MS:
            raise InputError(
                f"GDX-RB period must be at least {self.MIN_PERIOD_MS:g} ms (20 Hz), "
                f"{period_ms!r} is invalid"
            )
        self.period_ms = float(period_ms)
        self.timeout_s = timeout_s
        rate = 1000.0 / self.period_ms
        self.info = DriverInfo(
            id="gdx-rb",
            title="Vernier Go Direct Respiration Belt (GDX-RB)",
            support=SupportLevel.VENDOR_DOCUMENTED,
            # The service UUID is shared by every Go Direct sensor: match the name.
            name_patterns=(r"GDX-RB( .*)?",),
            streams=(
                StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", rate),
                StreamSpec("rate", StreamKind.BREATH_RATE, ("rate",), "bpm", rate),
            ),
            notify_chars=(GDX_RESPONSE,),
            writable_chars=(GDX_COMMAND,),
            notes=(
                f"framed commands; float32 force (N) + vendor breath rate (bpm, NaN for "
                f"~30 s), {rate:g} Hz"
            ),
        )
        # Protocol state per connection (one driver instance may serve several belts).
        self._sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
        #: What the last start learned (for ``pair``/diagnostics).
        self.status: GdxStatus | None = None
        self.device_info: GdxDeviceInfo | None = None
        self.sensors: dict[int, GdxSensorInfo] = {}
        self.available_mask = 0
        self.default_mask = 0
        #: Measurement packets and stale responses skipped during the last start.
        self.stale_packets = 0

    @property
    def period_us(self) -> int:
        return round(self.period_ms * 1000)

    def make_parser(self) -> GdxParser:
        return GdxParser()

    async def _send(self, io: DriverIO, frame: GdxCommandFrame) -> None:
        for part in chunk_frame(bytes(frame)):
            await io.write(GDX_COMMAND, part, response=False)

    async def _command(self, io: DriverIO, session: _Session, frame: GdxCommandFrame) -> bytes:
        """Send one command and wait for its response (matched by command and counter)."""
        await self._send(io, frame)
        name = _command_name(frame.command)
        deadline = io.clock.now() + self.timeout_s
        want = normalize_uuid(GDX_RESPONSE)
        while True:
            left = deadline - io.clock.now()
            if left <= 0:
                raise ConnectionFailedError(
                    f"GDX-RB did not answer {name} within {self.timeout_s:g} s"
                )
            try:
                pkt = await io.next_packet(timeout=left)
            except TimeoutError:
                raise ConnectionFailedError(
                    f"GDX-RB did not answer {name} within {self.timeout_s:g} s"
                ) from None
            if normalize_uuid(pkt.char) != want:
                continue
            try:
                frames = session.reasm.push(pkt.data)
            except ParseError as exc:
                log.debug("GDX-RB: dropped a malformed frame during start: %s", exc)
                continue
            for raw in frames:
                if raw[0] == RESPONSE_MEASUREMENT:
                    # A measurement still running from before INIT (the belt
                    # keeps streaming across a lost link until STOP).
                    self.stale_packets += 1
                    continue
                try:
                    resp = GdxResponse.from_bytes(raw)
                except ParseError as exc:
                    log.debug("GDX-RB: bad response during start: %s", exc)
                    continue
                if resp.command == frame.command and resp.counter == frame.counter:
                    return resp.payload
                self.stale_packets += 1
                log.debug(
                    "GDX-RB: stale response to 0x%02x/%02x while waiting for %s",
                    resp.command,
                    resp.counter,
                    name,
                )

    async def start(self, io: DriverIO) -> None:
        """Subscribe, then INIT, status, info, masks, sensor info, SET_PERIOD, START.

        Raises
        ------
        ConnectionFailedError
            When a command is not answered, or refused, or the device has no
            force channel.
        InputError
            When the configured period is below the belt's minimum.
        """
        session = _Session()
        self._sessions[io] = session
        self.stale_packets = 0
        await io.subscribe(GDX_RESPONSE)
        ctr = session.counter
        ctr.reset()
        payload = await self._command(io, session, init_frame(ctr.next()))
        _expect_ok("INIT", payload)
        self.status = GdxStatus.from_bytes(
            await self._command(io, session, GdxCommandFrame(ctr.next(), Command.GET_STATUS))
        )
        self.device_info = GdxDeviceInfo.from_bytes(
            await self._command(io, session, GdxCommandFrame(ctr.next(), Command.GET_DEVICE_INFO))
        )
        self.available_mask = _u32(
            await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_SENSOR_AVAILABLE_MASK)
            ),
            "available sensor mask",
        )
        self.default_mask = _u32(
            await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_DEFAULT_SENSORS_MASK)
            ),
            "default sensor mask",
        )
        self.sensors = {}
        for number in _mask_to_sensors(self.available_mask):
            payload = await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_SENSOR_INFO, bytes([number]))
            )
            info = GdxSensorInfo.from_bytes(payload)
            if info.sensor_id == 0:
                # godirect-js: "false positives" answer with a zero sensor id.
                log.debug("GDX-RB: sensor %d reported no sensor id; skipped", number)
                continue
            self.sensors[number] = info
        if FORCE_CHANNEL not in self.sensors:
            raise ConnectionFailedError(
                f"GDX device has no force channel {FORCE_CHANNEL} "
                f"(available mask 0x{self.available_mask:x}): not a respiration belt"
            )
        wanted = [c for c in (FORCE_CHANNEL, RATE_CHANNEL) if c in self.sensors]
        slowest_min = max(self.sensors[c].min_period_us for c in wanted)
        if self.period_us < slowest_min:
            raise InputError(
                f"GDX-RB period {self.period_ms:g} ms is below the device's minimum "
                f"{slowest_min / 1000:g} ms"
            )
        payload = await self._command(io, session, set_period_frame(ctr.next(), self.period_us))
        _expect_ok("SET_MEASUREMENT_PERIOD", payload)
        mask = sum(1 << c for c in wanted)
        payload = await self._command(io, session, start_frame(ctr.next(), mask))
        _expect_ok("START_MEASUREMENTS", payload)

    async def stop(self, io: DriverIO) -> None:
        """Send STOP (the belt otherwise keeps streaming until power-cycled)."""
        session = self._sessions.pop(io, None) or _Session()
        await self._send(io, stop_frame(session.counter.next()))


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"


def _expect_ok(name: str, payload: bytes) -> None:
    if payload and payload[0] != 0:
        raise ConnectionFailedError(f"GDX-RB refused {name} (status {payload[0]})")


def _u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise ConnectionFailedError(f"GDX-RB {what} reply has {len(payload)} bytes, not 4")
    return int.from_bytes(payload[:4], "little")
