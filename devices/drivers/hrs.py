"""Bluetooth SIG Heart Rate Service (0x180D): heart rate and RR intervals from any strap.

Vendor-documented (Bluetooth SIG HRS specification, ``notes/ble-protocols.md``
§3.3). The Heart Rate Measurement characteristic (0x2A37) notifies about once a
second::

    flags u8 | HR u8 or u16 LE | [energy expended u16 LE, kJ] | [RR u16 LE × n, 1/1024 s]

Flags: bit 0 = HR is u16; bit 1 = skin contact detected, meaningful only when
bit 2 (contact supported) is set; bit 3 = energy expended present; bit 4 = RR
intervals present, oldest first, filling the rest of the packet (0, 1, 2 or
more per notification). There is no timestamp: the HR stream is placed at the
receive time, and the beats of the RR stream are placed back from the receive
time by their intervals (:class:`~devices.timestamps.IntervalTimestamper`).

The Polar H10 has this service too; the registry tries ``polar-h10`` first, so
this driver takes the H10 only when asked for by id.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from devices.drivers.base import Decoded, Driver, DriverInfo, Parser, normalize_uuid
from devices.errors import ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel
from devices.timestamps import IntervalTimestamper, Timestamper

__all__ = [
    "HEART_RATE_MEASUREMENT",
    "HEART_RATE_SERVICE",
    "INFO",
    "RR_UNITS_PER_S",
    "HeartRateDriver",
    "HeartRateMeasurement",
    "HeartRateParser",
    "ReceiveTimeTimestamper",
]

FloatArray = npt.NDArray[np.float64]

HEART_RATE_SERVICE = normalize_uuid("180d")
HEART_RATE_MEASUREMENT = normalize_uuid("2a37")
#: RR intervals are counted in 1/1024 s.
RR_UNITS_PER_S = 1024.0

_U16 = struct.Struct("<H")


@dataclass(frozen=True)
class HeartRateMeasurement:
    """One 0x2A37 notification (the same shape as bumble's ``HeartRateMeasurement``).

    Parameters
    ----------
    heart_rate : int
        Beats per minute.
    contact : bool or None
        Skin contact detected; None when the sensor does not support detection.
    energy_expended : int or None
        Cumulative energy in kJ, when present.
    rr_intervals : tuple of int or None
        RR intervals in 1/1024 s, oldest first; None when the RR flag is clear.
    wide : bool
        Send the heart rate as u16 even when it fits a byte.
    """

    class Flag(enum.IntFlag):
        HR_UINT16 = 0x01
        CONTACT_DETECTED = 0x02
        CONTACT_SUPPORTED = 0x04
        ENERGY_EXPENDED = 0x08
        RR_INTERVALS = 0x10

    heart_rate: int
    contact: bool | None = None
    energy_expended: int | None = None
    rr_intervals: tuple[int, ...] | None = None
    wide: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.heart_rate <= 0xFFFF:
            raise ValueError(f"heart_rate {self.heart_rate} is out of range")
        if self.energy_expended is not None and not 0 <= self.energy_expended <= 0xFFFF:
            raise ValueError(f"energy_expended {self.energy_expended} is out of range")
        for rr in self.rr_intervals or ():
            if not 0 <= rr <= 0xFFFF:
                raise ValueError(f"RR interval {rr} is out of range")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a notification.

        Raises
        ------
        ParseError
            When empty, truncated, or when the RR part has an odd length.
            Trailing bytes without the RR flag are ignored.
        """
        if not data:
            raise ParseError("empty heart rate measurement")
        flags = cls.Flag(data[0] & 0x1F)  # bits 5-7 are reserved
        offset = 1
        wide = bool(flags & cls.Flag.HR_UINT16)
        need = offset + (2 if wide else 1)
        if len(data) < need:
            raise ParseError(f"heart rate measurement truncated: {bytes(data).hex(' ')}")
        hr = _U16.unpack_from(data, offset)[0] if wide else data[offset]
        offset = need
        contact: bool | None = None
        if flags & cls.Flag.CONTACT_SUPPORTED:
            contact = bool(flags & cls.Flag.CONTACT_DETECTED)
        energy: int | None = None
        if flags & cls.Flag.ENERGY_EXPENDED:
            if len(data) < offset + 2:
                raise ParseError(f"energy expended truncated: {bytes(data).hex(' ')}")
            energy = _U16.unpack_from(data, offset)[0]
            offset += 2
        rr: tuple[int, ...] | None = None
        if flags & cls.Flag.RR_INTERVALS:
            tail = bytes(data[offset:])
            if len(tail) % 2:
                raise ParseError(f"RR intervals of odd length {len(tail)}: {bytes(data).hex(' ')}")
            rr = tuple(np.frombuffer(tail, dtype="<u2").tolist())
        # Without the RR flag, trailing bytes are ignored, as bumble and bleakheart do.
        return cls(hr, contact, energy, rr, wide)

    def __bytes__(self) -> bytes:
        wide = self.wide or self.heart_rate > 0xFF
        flags = self.Flag(0)
        if wide:
            flags |= self.Flag.HR_UINT16
        if self.contact is not None:
            flags |= self.Flag.CONTACT_SUPPORTED
            if self.contact:
                flags |= self.Flag.CONTACT_DETECTED
        if self.energy_expended is not None:
            flags |= self.Flag.ENERGY_EXPENDED
        if self.rr_intervals is not None:
            flags |= self.Flag.RR_INTERVALS
        out = bytearray((int(flags),))
        out += _U16.pack(self.heart_rate) if wide else bytes((self.heart_rate,))
        if self.energy_expended is not None:
            out += _U16.pack(self.energy_expended)
        for rr in self.rr_intervals or ():
            out += _U16.pack(rr)
        return bytes(out)

    @property
    def rr_seconds(self) -> FloatArray:
        """The RR intervals in seconds (empty when none)."""
        return np.asarray(self.rr_intervals or (), dtype=np.float64) / RR_UNITS_PER_S


class HeartRateParser:
    """Pure decoder of 0x2A37 notifications into ``hr`` and ``rr`` samples.

    A heart rate is delivered unless the sensor says its contact is lost or the
    value is 0 (straps send 0 while they search); RR intervals are always
    delivered, values and ``device_time`` both in seconds.
    """

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        """Decode one notification.

        Raises
        ------
        ParseError
            On a malformed measurement or a packet from another characteristic.
        """
        try:
            uuid = normalize_uuid(char)
        except ValueError:
            uuid = char
        if uuid != HEART_RATE_MEASUREMENT:
            raise ParseError(f"not a heart rate measurement characteristic: {char}")
        m = HeartRateMeasurement.from_bytes(bytes(data))
        out: list[Decoded] = []
        if m.contact is not False and m.heart_rate > 0:
            out.append(Decoded("hr", np.array([[float(m.heart_rate)]])))
        rr = m.rr_seconds
        if rr.size:
            out.append(Decoded("rr", rr.reshape(-1, 1), device_time=rr))
        return out

    def reset(self) -> None:
        """Nothing to forget: every notification stands alone."""


class ReceiveTimeTimestamper:
    """Irregular samples placed at their receive time (never going back in time)."""

    def __init__(self) -> None:
        self.gaps = 0
        self.gap_seconds = 0.0
        self._last_t = -math.inf

    def reset(self) -> None:
        """Nothing to re-anchor: each packet carries its own time."""

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        """``n`` copies of ``t_recv``, nudged by 1 µs to stay increasing."""
        if n <= 0:
            return np.empty(0)
        t = np.full(n, float(t_recv))
        t = np.maximum(t, self._last_t + 1e-6 * np.arange(1, n + 1))
        self._last_t = float(t[-1])
        return t


INFO = DriverInfo(
    id="hrs",
    title="Heart Rate Service strap (HR + RR intervals)",
    support=SupportLevel.VENDOR_DOCUMENTED,
    name_patterns=(
        r"(?i)polar (h7|h9|h10|oh1|verity sense)\b.*",
        r"(?i)(wahoo )?tickr.*",
        r"(?i)(garmin )?hrm[- ].*",
        r"(?i)coospo.*",
        r"(?i)suunto smart sensor.*",
        r"(?i)decathlon dual hr.*",
        r"(?i)xoss.*",
        r"(?i)magene h\d+.*",
    ),
    service_uuids=(HEART_RATE_SERVICE,),
    streams=(
        StreamSpec("hr", StreamKind.HEART_RATE, ("hr",), "bpm", None),
        StreamSpec("rr", StreamKind.RR, ("rr",), "s", None),
    ),
    notify_chars=(HEART_RATE_MEASUREMENT,),
    battery=True,
    notes="about 1 notification/s; RR intervals give the beat times (RSA breathing)",
)


class HeartRateDriver(Driver):
    """Any strap with the Heart Rate Service: subscribe, no commands, no writes."""

    info = INFO

    def make_parser(self) -> Parser:
        return HeartRateParser()

    def make_timestampers(self) -> dict[str, Timestamper]:
        return {"hr": ReceiveTimeTimestamper(), "rr": IntervalTimestamper()}
