"""Perifit: notify, two u16 BE pressures (base, tip) in one notification.

Layout (reverse-engineered, ``buttplugio/stpihkal#171`` and the
``docs.buttplug.io`` Perifit page; ``notes/ble-protocols.md`` §2.2)::

    BB BB | TT TT
    [0:2] u16 BE base pressure
    [2:4] u16 BE tip pressure      (max seen about 0x1378, expected max 0x1400)

The service and characteristic are only known as "0xaa41"; the 128-bit form
is not published. The driver therefore names the characteristic by the short
form ``aa41`` and the connection layer resolves it after discovery with
:func:`devices.drivers.declarative.resolve_char` (an exact SIG-base match
first, else the discovered characteristic whose first UUID group contains
``aa41`` -- e.g. the TI SensorTag-style ``f000aa41-0451-4000-b000-000000000000``
our twin uses). Both channels go in one ``pressure`` stream: the pair is what
tells a real drop (both fall) from bearing down (the base rises). Units are
raw counts; the rate is not documented (the twin streams at 20 Hz).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.drivers.base import CharFilter, Decoded, Driver, DriverInfo
from devices.errors import ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "PERIFIT_CHAR",
    "PERIFIT_TWIN_CHAR",
    "PERIFIT_TWIN_SERVICE",
    "PerifitDriver",
    "PerifitPacket",
    "PerifitParser",
]

#: Short form matched against discovered characteristics.
PERIFIT_CHAR = "aa41"
#: The full UUIDs our virtual twin uses (a guess after the TI SensorTag base).
PERIFIT_TWIN_SERVICE = "f000aa40-0451-4000-b000-000000000000"
PERIFIT_TWIN_CHAR = "f000aa41-0451-4000-b000-000000000000"
PERIFIT_RATE_HZ = 20.0

_PAIR = struct.Struct(">HH")


@dataclass(frozen=True)
class PerifitPacket:
    """One Perifit notification: base and tip pressure (u16 BE each).

    Bytes after [4] (none on the documented device) are kept in ``tail``.
    """

    base: int
    tip: int
    tail: bytes = b""

    LENGTH: ClassVar[int] = 4

    def __post_init__(self) -> None:
        for name in ("base", "tip"):
            v = getattr(self, name)
            if not 0 <= v <= 0xFFFF:
                raise ValueError(f"{name} must fit in u16, {v!r} does not")

    @classmethod
    def from_bytes(cls, data: bytes) -> PerifitPacket:
        """Decode one notification.

        Raises
        ------
        ParseError
            When shorter than 4 bytes.
        """
        if len(data) < cls.LENGTH:
            raise ParseError(f"Perifit packet needs {cls.LENGTH} bytes, got {len(data)}")
        base, tip = _PAIR.unpack_from(data)
        return cls(base, tip, bytes(data[4:]))

    def __bytes__(self) -> bytes:
        return _PAIR.pack(self.base, self.tip) + self.tail


class PerifitParser:
    """Pure parser: one (base, tip) sample per notification.

    Packets from characteristics other than the ``aa41`` one give no samples.
    """

    stream = "pressure"

    def __init__(self) -> None:
        self._ours = CharFilter(PERIFIT_CHAR)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        pkt = PerifitPacket.from_bytes(data)
        return [Decoded(self.stream, np.array([[pkt.base, pkt.tip]], dtype=np.float64))]

    def reset(self) -> None:
        """Stateless: nothing to forget."""


class PerifitDriver(Driver):
    """Perifit (reverse-engineered; 128-bit UUIDs unknown)."""

    info = DriverInfo(
        id="perifit",
        title="Perifit",
        support=SupportLevel.REVERSE_ENGINEERED,
        name_patterns=(r"Perifit.*",),
        streams=(
            StreamSpec("pressure", StreamKind.PRESSURE, ("base", "tip"), "count", PERIFIT_RATE_HZ),
        ),
        notify_chars=(PERIFIT_CHAR,),
        notes="u16 BE base + tip pressure on 'aa41' (matched after discovery); ~20 Hz",
    )

    def make_parser(self) -> PerifitParser:
        return PerifitParser()
