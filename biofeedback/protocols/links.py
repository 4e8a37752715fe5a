"""Link gaps: how often and how long the sensors' links were down during a session."""

from __future__ import annotations

from devices.stream import LinkEvent, LinkKind

__all__ = ["LinkGapTracker"]


class LinkGapTracker:
    """Counts the link losses and adds up the time each device was away."""

    def __init__(self) -> None:
        self.gaps = 0
        self._gap_s = 0.0  # closed gaps
        self._lost_at: dict[str, float] = {}  # open gaps, by device

    def on_event(self, ev: LinkEvent) -> None:
        """A link event of any kind (only losses and reconnections count)."""
        if ev.kind is LinkKind.LOST:
            self.gaps += 1
            self._lost_at[ev.device] = ev.t
        elif ev.kind is LinkKind.CONNECTED and ev.device in self._lost_at:
            lost = self._lost_at.pop(ev.device)
            # The source knows the gap best (its own value); else the events' times.
            self._gap_s += ev.value if ev.value is not None else max(ev.t - lost, 0.0)

    def gap_s(self, end: float) -> float:
        """Seconds without a link up to ``end`` (a gap still open counts until then)."""
        return self._gap_s + sum(max(end - t, 0.0) for t in self._lost_at.values())
