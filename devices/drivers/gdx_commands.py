"""GDX framed protocol, host side: UUIDs, commands, command frames and their responses.

See :mod:`devices.drivers.gdx_rb` for the wire format. Pure: frames are small
dataclasses with ``from_bytes`` / ``__bytes__`` that the virtual twin shares.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from devices.errors import ParseError

__all__ = [
    "COMMAND_HEADER",
    "FORCE_CHANNEL",
    "GDX_COMMAND",
    "GDX_RESPONSE",
    "GDX_SERVICE",
    "INIT_PARAMS",
    "RATE_CHANNEL",
    "RESPONSE_COMMAND",
    "RESPONSE_MEASUREMENT",
    "WRITE_CHUNK",
    "Command",
    "GdxCommandFrame",
    "GdxResponse",
    "RollingCounter",
    "check_u8",
    "chunk_frame",
    "finish_frame",
    "frame_checksum",
    "init_frame",
    "set_period_frame",
    "start_frame",
    "stop_frame",
]

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



def frame_checksum(frame: bytes | bytearray) -> int:
    """Checksum of a frame: the sum of every byte except [3], modulo 256."""
    return (sum(frame) - frame[3]) & 0xFF


def finish_frame(body: bytearray) -> bytes:
    """Fill in length and checksum of a frame whose [1] and [3] are placeholders."""
    if len(body) > 0xFF:
        raise ValueError(f"frame of {len(body)} bytes does not fit the u8 length field")
    body[1] = len(body)
    body[3] = 0
    body[3] = frame_checksum(body)
    return bytes(body)


def check_u8(name: str, v: int) -> None:
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
        check_u8("counter", self.counter)
        check_u8("command", self.command)

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
        head = bytearray([COMMAND_HEADER, 0, self.counter, 0, self.command])
        return finish_frame(head + self.params)


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
            check_u8(name, getattr(self, name))
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
        return finish_frame(head + self.payload)

    @property
    def status(self) -> int:
        """First payload byte (0 = success); -1 when there is no payload."""
        return self.payload[0] if self.payload else -1

