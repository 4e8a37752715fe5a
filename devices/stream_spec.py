"""What a stream is: its role, its static description and its identity.

A driver describes each stream it delivers with a :class:`StreamSpec`; the
text id a chunk carries reads back as a :class:`StreamKey`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamKey", "StreamKind", "StreamSpec", "SupportLevel"]


class SupportLevel(enum.StrEnum):
    """How much we know about a protocol (shown in ``scan``, ``drivers``, README)."""

    VENDOR_DOCUMENTED = "vendor-documented"
    REVERSE_ENGINEERED = "reverse-engineered"
    USER_DEFINED = "user-defined"


class StreamKind(enum.StrEnum):
    """What a stream measures: lets the pipeline pick its inputs by role."""

    PRESSURE = "pressure"  # pelvic probe, one or more channels
    BREATH_FORCE = "breath_force"  # respiration belt force
    BREATH_RATE = "breath_rate"  # a device's own breath-rate figure
    ACC = "acc"  # chest accelerometer (x, y, z)
    ECG = "ecg"
    RR = "rr"  # beat-to-beat intervals; t = beat times
    HEART_RATE = "heart_rate"
    OTHER = "other"


@dataclass(frozen=True)
class StreamKey:
    """Who a stream comes from: its structured identity.

    Its text form :attr:`id` (``"<device>/<driver>.<stream>"``, or
    ``"<driver>.<stream>"``, or ``"<stream>"``) is the stream id chunks carry,
    the store keeps on disk and exports are named after; :meth:`parse` is the
    one place that reads it back.

    Parameters
    ----------
    stream : str
        The driver's stream name (``"pressure"``, ``"force"``...).
    driver : str, optional
        The driver id (``"kgoal"``...).
    device : str, optional
        The device's name (or address) when a session has several.
    """

    stream: str
    driver: str | None = None
    device: str | None = None

    @property
    def id(self) -> str:
        """The text form: the stream id chunks carry."""
        head = f"{self.driver}.{self.stream}" if self.driver else self.stream
        return f"{self.device}/{head}" if self.device else head

    @classmethod
    def parse(cls, stream_id: str) -> StreamKey:
        """The key of a stream id (driver ids and stream names hold no dot)."""
        device, _, head = stream_id.rpartition("/")
        driver, dot, stream = head.partition(".")
        if not dot:
            driver, stream = "", head
        return cls(stream=stream, driver=driver or None, device=device or None)

    def matches(self, other: StreamKey) -> bool:
        """Same stream, and no part the two both name differs (an unnamed part is any)."""
        return (
            self.stream == other.stream
            and (self.driver is None or other.driver is None or self.driver == other.driver)
            and (self.device is None or other.device is None or self.device == other.device)
        )


@dataclass(frozen=True)
class StreamSpec:
    """Static description of one stream a driver delivers.

    Parameters
    ----------
    name : str
        Stream id, unique within a source (``"pressure"``, ``"force"``...).
    kind : StreamKind
        The role of the stream.
    channels : tuple of str
        Channel names, in column order of :attr:`Chunk.values`.
    unit : str
        Unit of every channel (``"count"`` for raw counts).
    rate_hz : float or None
        Nominal sample rate; None for irregular streams (RR).
    """

    name: str
    kind: StreamKind
    channels: tuple[str, ...]
    unit: str
    rate_hz: float | None

    @property
    def key(self) -> StreamKey:
        """The structured identity its name encodes."""
        return StreamKey.parse(self.name)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-ready values (the kind as its text)."""
        return {
            "name": self.name,
            "kind": str(self.kind),
            "channels": list(self.channels),
            "unit": self.unit,
            "rate_hz": self.rate_hz,
        }
