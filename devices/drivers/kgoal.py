"""kGoal Boost / kGoal (Minna): notify, two u16 BE pressure readings.

Layout (reverse-engineered, ``buttplug`` ``kgoal_boost.rs`` and ``khole-py``;
see ``notes/ble-protocols.md`` §2.1)::

    00 01 04 | CC CC | RR RR | ...
    [0:3] constant 00 01 04 (not checked: no open driver checks it)
    [3:5] u16 BE calibrated reading (raw - calibration point, clipped at 0)
    [5:7] u16 BE raw reading
    the original kGoal returns 19 bytes when read; bytes 7.. are unknown

No start command is needed; the device has the standard Battery Service.
The ``pressure`` stream carries both readings, **raw first**: the calibrated
channel clips at 0 and cannot show a drop below the calibration point, which
is exactly what down-training needs. Units are raw counts. The rate is not
documented; 50 Hz is the nominal rate our twin streams at (measure it on a
real device; the timestamper follows the receive times anyway).
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
    "KGOAL_NOTIFY",
    "KGOAL_SERVICE",
    "KGOAL_TX",
    "KGoalDriver",
    "KGoalPacket",
    "KGoalParser",
]

KGOAL_SERVICE = "8e7c6065-7656-17ad-1b41-b53d1a548e0d"
KGOAL_NOTIFY = "10c2be2d-d2d5-b7a8-5f42-e2468c9ebbf5"
#: Motor command characteristic of the original kGoal; never written by us.
KGOAL_TX = "453ad6d2-c7f2-16ae-6948-1859e5f040d0"
#: Nominal rate (not documented; the twin's rate).
KGOAL_RATE_HZ = 50.0

_U16_PAIR = struct.Struct(">HH")


@dataclass(frozen=True)
class KGoalPacket:
    """One kGoal notification.

    Parameters
    ----------
    calibrated : int
        u16 at [3:5]: raw minus the calibration point, clipped at 0.
    raw : int
        u16 at [5:7]: the uncalibrated reading.
    header : bytes
        The three leading bytes (``00 01 04`` on every known device).
    tail : bytes
        Bytes after [7] (the original kGoal's 19-byte read); meaning unknown.
    """

    calibrated: int
    raw: int
    header: bytes = b"\x00\x01\x04"
    tail: bytes = b""

    MIN_LEN: ClassVar[int] = 7

    def __post_init__(self) -> None:
        for name in ("calibrated", "raw"):
            v = getattr(self, name)
            if not 0 <= v <= 0xFFFF:
                raise ValueError(f"{name} must fit in u16, {v!r} does not")
        if len(self.header) != 3:
            raise ValueError(f"header must be 3 bytes, got {len(self.header)}")

    @classmethod
    def from_bytes(cls, data: bytes) -> KGoalPacket:
        """Decode one notification.

        Raises
        ------
        ParseError
            When shorter than 7 bytes.
        """
        if len(data) < cls.MIN_LEN:
            raise ParseError(f"kGoal packet needs {cls.MIN_LEN} bytes, got {len(data)}")
        calibrated, raw = _U16_PAIR.unpack_from(data, 3)
        return cls(calibrated, raw, bytes(data[:3]), bytes(data[7:]))

    def __bytes__(self) -> bytes:
        return self.header + _U16_PAIR.pack(self.calibrated, self.raw) + self.tail


class KGoalParser:
    """Pure parser: one sample (raw, calibrated) per notification.

    Packets from other characteristics (e.g. battery) give no samples.
    """

    stream = "pressure"

    def __init__(self) -> None:
        self._ours = CharFilter(KGOAL_NOTIFY)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        pkt = KGoalPacket.from_bytes(data)
        values = np.array([[pkt.raw, pkt.calibrated]], dtype=np.float64)
        return [Decoded(self.stream, values)]

    def reset(self) -> None:
        """Stateless: nothing to forget."""


class KGoalDriver(Driver):
    """kGoal Boost and original kGoal (reverse-engineered)."""

    info = DriverInfo(
        id="kgoal",
        title="kGoal / kGoal Boost (Minna)",
        support=SupportLevel.REVERSE_ENGINEERED,
        name_patterns=("Boost", "kGoal"),
        service_uuids=(KGOAL_SERVICE,),
        streams=(
            StreamSpec(
                "pressure",
                StreamKind.PRESSURE,
                ("raw", "calibrated"),
                "count",
                KGOAL_RATE_HZ,
            ),
        ),
        notify_chars=(KGOAL_NOTIFY,),
        battery=True,
        notes="u16 BE raw + calibrated pressure (raw is primary); rate undocumented, ~50 Hz",
    )

    def make_parser(self) -> KGoalParser:
        return KGoalParser()
