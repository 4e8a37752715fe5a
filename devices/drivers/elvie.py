"""Elvie Trainer: read-polled pressure, no notifications.

Layout (reverse-engineered, ``buttplugio/stpihkal#109`` and the
``docs.buttplug.io`` Elvie page; ``notes/ble-protocols.md`` §2.3)::

    read of 0a09fff1-dcac-7001-ed03-030502030401
    [5]   pressure, one byte (about 9..21 observed)
    other bytes: meaning unknown (the author thought the value might be wider)

There is no notify: the connection layer reads the characteristic every
:data:`ELVIE_POLL_S` seconds (``DriverInfo.poll_chars``), so the rate is the
host's polling rate (10 Hz). The advertised name is unknown: devices are
matched by the service UUID, or a name starting with ``Elvie`` (a guess). The
device is reported to need a few squeezes before it connects and retries when
connecting. Units are raw counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.drivers.base import CharFilter, Decoded, Driver, DriverInfo
from devices.errors import ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "ELVIE_CHAR",
    "ELVIE_POLL_S",
    "ELVIE_SERVICE",
    "ElvieDriver",
    "ElvieParser",
    "ElvieReading",
]

ELVIE_SERVICE = "0a09fff0-dcac-7001-ed03-030502030401"
ELVIE_CHAR = "0a09fff1-dcac-7001-ed03-030502030401"
#: Host polling period (10 Hz).
ELVIE_POLL_S = 0.1


@dataclass(frozen=True)
class ElvieReading:
    """One read of the Elvie characteristic.

    Parameters
    ----------
    pressure : int
        Byte [5].
    other : bytes
        Every other byte of the read, in order (meaning unknown); the twin
        sends 7 zero bytes (an 8-byte read).
    """

    pressure: int
    other: bytes = bytes(7)

    OFFSET: ClassVar[int] = 5

    def __post_init__(self) -> None:
        if not 0 <= self.pressure <= 0xFF:
            raise ValueError(f"pressure must fit in a byte, {self.pressure!r} does not")
        if len(self.other) < self.OFFSET:
            raise ValueError(f"other must hold at least {self.OFFSET} bytes (those before [5])")

    @classmethod
    def from_bytes(cls, data: bytes) -> ElvieReading:
        """Decode one read.

        Raises
        ------
        ParseError
            When shorter than 6 bytes.
        """
        if len(data) <= cls.OFFSET:
            raise ParseError(f"Elvie read needs {cls.OFFSET + 1} bytes, got {len(data)}")
        return cls(data[cls.OFFSET], bytes(data[: cls.OFFSET]) + bytes(data[cls.OFFSET + 1 :]))

    def __bytes__(self) -> bytes:
        o = self.OFFSET
        return self.other[:o] + bytes([self.pressure]) + self.other[o:]


class ElvieParser:
    """Pure parser: one sample per poll read (other characteristics give none)."""

    stream = "pressure"

    def __init__(self) -> None:
        self._ours = CharFilter(ELVIE_CHAR)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        reading = ElvieReading.from_bytes(data)
        return [Decoded(self.stream, np.array([[reading.pressure]], dtype=np.float64))]

    def reset(self) -> None:
        """Stateless: nothing to forget."""


class ElvieDriver(Driver):
    """Elvie Trainer (reverse-engineered; polled)."""

    info = DriverInfo(
        id="elvie",
        title="Elvie Trainer",
        support=SupportLevel.REVERSE_ENGINEERED,
        name_patterns=(r"Elvie.*",),
        service_uuids=(ELVIE_SERVICE,),
        streams=(
            StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "count", 1.0 / ELVIE_POLL_S),
        ),
        poll_chars=((ELVIE_CHAR, ELVIE_POLL_S),),
        notes="read-polled at 10 Hz, byte [5] pressure; needs squeezes and retries to connect",
    )

    def make_parser(self) -> ElvieParser:
        return ElvieParser()
