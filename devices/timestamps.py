"""Placing samples on the host clock.

Most sensors send no timestamps: a notification carries ``n`` samples taken
at a nominal rate, and all we know is when it arrived. Arrival is the sample
time plus a latency that is never negative and varies (connection interval,
batching). :class:`RateTimestamper` therefore tracks the *lower envelope* of
the implied offsets ``t_recv - k / rate``: a new minimum is taken at once, and
the estimate may rise slowly (``leak`` seconds per second) to follow a device
clock that runs slow. A jump far above the envelope is a gap (lost packets or a
lost link): the stream re-anchors there and the gap is counted.

The result depends only on the sequence of ``(n, t_recv)`` pairs, not on how
calls group them (:meth:`RateTimestamper.stamp_many` equals repeated
:meth:`RateTimestamper.stamp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["IntervalTimestamper", "RateTimestamper", "Timestamper"]

FloatArray = npt.NDArray[np.float64]


class Timestamper(Protocol):
    """Gives each decoded sample a host-clock time."""

    gaps: int
    gap_seconds: float

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        """Times of ``n`` samples that arrived at ``t_recv`` (host clock)."""
        ...

    def reset(self) -> None:
        """The link was re-established: the next packet re-anchors the stream."""
        ...


class RateTimestamper:
    """Reconstruct sample times from a nominal rate and receive times.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate.
    leak : float
        How fast (s/s) the offset estimate may rise to follow a slow device clock.
    gap_s : float, optional
        Offset jump that counts as a gap; default ``max(0.5, 5 / rate_hz)``.
    """

    def __init__(self, rate_hz: float, leak: float = 0.01, gap_s: float | None = None) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, {rate_hz!r} is invalid")
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self.leak = leak
        self.gap_s = gap_s if gap_s is not None else max(0.5, 5.0 * self.period)
        self.gaps = 0
        self.gap_seconds = 0.0
        self._k = 0
        self._offset: float | None = None
        self._last_recv = 0.0
        self._last_t = -np.inf
        self._pending_reset = False

    def reset(self) -> None:
        if self._offset is not None:
            self._pending_reset = True

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        if n <= 0:
            return np.empty(0)
        k_last = self._k + n - 1
        implied = t_recv - k_last * self.period
        if self._offset is None:
            self._offset = implied
        elif self._pending_reset or implied - self._offset > self.gap_s:
            # Anything beyond the envelope by more than gap_s: samples were lost.
            expected_end = self._offset + k_last * self.period
            lost = max(0.0, t_recv - expected_end)
            self.gaps += 1
            self.gap_seconds += lost
            self._offset = implied
            self._pending_reset = False
        else:
            leaked = self._offset + self.leak * max(0.0, t_recv - self._last_recv)
            self._offset = min(leaked, implied)
        self._last_recv = t_recv
        t = self._offset + np.arange(self._k, k_last + 1, dtype=np.float64) * self.period
        # Never step back in time: a lowered envelope may not reorder samples.
        floor = self._last_t + 1e-6 * np.arange(1, n + 1)
        t = np.maximum(t, floor)
        self._last_t = float(t[-1])
        self._k = k_last + 1
        return t

    def stamp_many(self, counts: Sequence[int], t_recv: Sequence[float]) -> FloatArray:
        """Stamp several packets at once (same result as one call per packet)."""
        parts = [self.stamp(int(n), float(t)) for n, t in zip(counts, t_recv, strict=True)]
        return np.concatenate(parts) if parts else np.empty(0)


class IntervalTimestamper:
    """Times of beats from their intervals (RR streams).

    Each packet carries the intervals of the beats since the previous one; the
    intervals chain into a beat clock of their own. A packet arrives after its
    last beat, so, as in :class:`RateTimestamper`, the offset between the beat
    clock and the host clock is the lower envelope of ``t_recv - beat_clock``
    (with a slow leak for clock drift). A jump far above the envelope means
    beats were lost: the chain re-anchors and the gap is counted.

    Parameters
    ----------
    leak : float
        How fast (s/s) the offset may rise.
    gap_s : float
        Offset jump that counts as lost beats.
    """

    def __init__(self, leak: float = 0.002, gap_s: float = 2.0) -> None:
        self.leak = leak
        self.gap_s = gap_s
        self.gaps = 0
        self.gap_seconds = 0.0
        self._beat_clock = 0.0
        self._offset: float | None = None
        self._last_recv = 0.0
        self._last_t = -np.inf
        self._pending_reset = False

    def reset(self) -> None:
        if self._offset is not None:
            self._pending_reset = True

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        if n <= 0:
            return np.empty(0)
        if device_time is None:
            raise ValueError("IntervalTimestamper needs the intervals as device_time")
        intervals = np.asarray(device_time, dtype=np.float64)
        beats = self._beat_clock + np.cumsum(intervals)
        implied = t_recv - float(beats[-1])
        if self._offset is None:
            self._offset = implied
        elif self._pending_reset or implied - self._offset > self.gap_s:
            self.gaps += 1
            self.gap_seconds += max(0.0, implied - self._offset)
            self._offset = implied
            self._pending_reset = False
        else:
            leaked = self._offset + self.leak * max(0.0, t_recv - self._last_recv)
            self._offset = min(leaked, implied)
        self._last_recv = t_recv
        self._beat_clock = float(beats[-1])
        t = np.maximum(self._offset + beats, self._last_t + 1e-6 * np.arange(1, n + 1))
        self._last_t = float(t[-1])
        return t
