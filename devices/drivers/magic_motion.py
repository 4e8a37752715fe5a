"""Magic Motion Kegel family ("Vtoy Sensor" service): notify, u16 BE pressure.

Layout (reverse-engineered: a 2018 forum post quoted in
``buttplugio/buttplug-spec#59``, ``stpihkal#21``; ``notes/ble-protocols.md``
§2.4)::

    [0:2] u16 BE pressure (value = data[0] * 256 + data[1])

Multi-sensor devices (Kegel Twins) are undocumented: only the first u16 is
decoded and longer packets' other bytes are ignored. Names come from the
buttplug device config of the family (Smart Bean, Magic Bean, Kegel Coach,
funkegel, Gballs, Lilac, Krush); whether each of them exposes the sensor
service is verified by GATT discovery only (Krush's sensor is undocumented).

**Safety.** These toys expose a writable TI OAD firmware-update service
(``f000ffc0-…``); writing to it can brick the toy. This driver writes
nothing at all (``writable_chars`` is empty; vibration is out of scope), and
the connection layer refuses any write a driver's info does not name.
Units are raw counts; the rate is not documented (the twin streams at 20 Hz).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.drivers.base import CharFilter, Decoded, Driver, DriverInfo
from devices.errors import ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "MM_NAMES",
    "MM_NOTIFY",
    "MM_OAD_SERVICE",
    "MM_SERVICE",
    "MM_VIBRATION",
    "MagicMotionDriver",
    "MagicMotionPacket",
    "MagicMotionParser",
]

MM_SERVICE = "6f468792-f91f-11e3-a847-b2227cce2b54"
MM_NOTIFY = "6f468bfc-f91f-11e3-a847-b2227cce2b54"
#: Vibration command characteristic: never written by this driver.
MM_VIBRATION = "78667579-a914-49a4-8333-aa3c0cd8fedc"
#: TI OAD firmware update: never to be written.
MM_OAD_SERVICE = "f000ffc0-0451-4000-b000-000000000000"
MM_RATE_HZ = 20.0

#: Advertised names of the family (buttplug magic-motion-1/3/4.yml).
MM_NAMES = (
    "Smart Bean",
    "Smart Bean3",
    "Magic Bean",
    "Kegel Coach",
    "funkegel",
    "Gballs2",
    "GBalls3",
    "FM-LILAC-101",
    "Krush",
)

_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class MagicMotionPacket:
    """One sensor notification: u16 BE pressure (extra bytes kept in ``tail``)."""

    pressure: int
    tail: bytes = b""

    LENGTH: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if not 0 <= self.pressure <= 0xFFFF:
            raise ValueError(f"pressure must fit in u16, {self.pressure!r} does not")

    @classmethod
    def from_bytes(cls, data: bytes) -> MagicMotionPacket:
        """Decode one notification.

        Raises
        ------
        ParseError
            When shorter than 2 bytes.
        """
        if len(data) < cls.LENGTH:
            raise ParseError(f"Magic Motion packet needs {cls.LENGTH} bytes, got {len(data)}")
        return cls(_U16.unpack_from(data)[0], bytes(data[2:]))

    def __bytes__(self) -> bytes:
        return _U16.pack(self.pressure) + self.tail


class MagicMotionParser:
    """Pure parser: one sample per notification (other characteristics give none)."""

    stream = "pressure"

    def __init__(self) -> None:
        self._ours = CharFilter(MM_NOTIFY)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        pkt = MagicMotionPacket.from_bytes(data)
        return [Decoded(self.stream, np.array([[pkt.pressure]], dtype=np.float64))]

    def reset(self) -> None:
        """Stateless: nothing to forget."""


class MagicMotionDriver(Driver):
    """Magic Motion Kegel family (reverse-engineered; writes nothing)."""

    info = DriverInfo(
        id="magic-motion",
        title="Magic Motion Kegel family (Kegel Master, Smart Bean, ...)",
        support=SupportLevel.REVERSE_ENGINEERED,
        name_patterns=tuple(re.escape(n) for n in MM_NAMES),
        service_uuids=(MM_SERVICE,),
        streams=(StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "count", MM_RATE_HZ),),
        notify_chars=(MM_NOTIFY,),
        writable_chars=(),
        notes="u16 BE pressure; never writes (the toys expose a writable OAD service); ~20 Hz",
    )

    def make_parser(self) -> MagicMotionParser:
        return MagicMotionParser()
