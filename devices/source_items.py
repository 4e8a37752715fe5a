"""What a source yields: sample chunks and link events."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Chunk", "LinkEvent", "LinkKind"]


@dataclass(frozen=True, eq=False)
class Chunk:
    """Samples of one stream with one host-clock time per sample.

    Parameters
    ----------
    stream : str
        Stream id (``"<device>/<stream>"`` once it leaves a source with several
        devices; a driver's :class:`StreamSpec` name inside one).
    t : ndarray, shape (n,)
        Sample times on the run's clock, increasing.
    values : ndarray, shape (n, n_channels)
        Sample values, float64.
    unit : str
        Unit of the values.
    channels : tuple of str
        Channel names, one per column of ``values``.
    """

    stream: str
    t: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    unit: str
    channels: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.t.ndim != 1:
            raise ValueError(f"t must be 1-D, got shape {self.t.shape}")
        if self.values.ndim != 2 or self.values.shape[0] != self.t.shape[0]:
            raise ValueError(
                f"values must have shape (n, channels) with n={self.t.shape[0]}, "
                f"got {self.values.shape}"
            )

    def __len__(self) -> int:
        return int(self.t.shape[0])


class LinkKind(enum.StrEnum):
    """Kinds of link event."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    GIVEN_UP = "given_up"
    BATTERY = "battery"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LinkEvent:
    """Something that happened to a device's link.

    Parameters
    ----------
    kind : LinkKind
        What happened.
    t : float
        When, on the run's clock.
    device : str
        The device's name (or the source's id).
    detail : str
        Human-readable detail (reason, attempt number, error).
    value : float or None
        A number that goes with the event: battery percent for ``battery``,
        the gap in seconds for ``connected`` after a reconnect, the attempt
        number for ``reconnecting``.
    """

    kind: LinkKind
    t: float
    device: str
    detail: str = ""
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as JSON-ready values (the kind as its text)."""
        return {
            "kind": str(self.kind),
            "t": self.t,
            "device": self.device,
            "detail": self.detail,
            "value": self.value,
        }
