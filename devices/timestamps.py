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


class _LowerEnvelope:
    """The offset from a source's own time base to the host clock.

    A packet arrives after its last sample, so ``t_recv - source_time`` is
    the offset plus a latency that is never negative: the estimate is the
    lower envelope of those values, allowed to rise by ``leak`` seconds per
    second (a slow source clock). A jump above the envelope by more than
    ``gap_s`` (or the first packet after :meth:`reset`) is a gap: the offset
    re-anchors there and the gap is counted.
    """

    def __init__(self, leak: float, gap_s: float) -> None:
        self.leak = leak
        self.gap_s = gap_s
        self.gaps = 0
        self.gap_seconds = 0.0
        self._offset: float | None = None
        self._last_recv = 0.0
        self._last_t = -np.inf
        self._pending_reset = False

    def reset(self) -> None:
        if self._offset is not None:
            self._pending_reset = True

    def _track(self, implied: float, t_recv: float) -> float:
        """Update the envelope with one packet's implied offset; the offset to use."""
        if self._offset is None:
            self._offset = implied
        elif self._pending_reset or implied - self._offset > self.gap_s:
            # Beyond the envelope by more than gap_s: samples were lost.
            self.gaps += 1
            self.gap_seconds += max(0.0, implied - self._offset)
            self._offset = implied
            self._pending_reset = False
        else:
            leaked = self._offset + self.leak * max(0.0, t_recv - self._last_recv)
            self._offset = min(leaked, implied)
        self._last_recv = t_recv
        return self._offset

    def _monotonic(self, t: FloatArray) -> FloatArray:
        """Never step back in time: a lowered envelope may not reorder samples."""
        t = np.maximum(t, self._last_t + 1e-6 * np.arange(1, t.size + 1))
        self._last_t = float(t[-1])
        return t


class RateTimestamper(_LowerEnvelope):
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
        super().__init__(leak, gap_s if gap_s is not None else max(0.5, 5.0 * self.period))
        self._k = 0

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        if n <= 0:
            return np.empty(0)
        k_last = self._k + n - 1
        offset = self._track(t_recv - k_last * self.period, t_recv)
        t = offset + np.arange(self._k, k_last + 1, dtype=np.float64) * self.period
        self._k = k_last + 1
        return self._monotonic(t)

    def stamp_many(self, counts: Sequence[int], t_recv: Sequence[float]) -> FloatArray:
        """Stamp several packets at once (same result as one call per packet)."""
        parts = [self.stamp(int(n), float(t)) for n, t in zip(counts, t_recv, strict=True)]
        return np.concatenate(parts) if parts else np.empty(0)


class IntervalTimestamper(_LowerEnvelope):
    """Times of beats from their intervals (RR streams).

    Each packet carries the intervals of the beats since the previous one; the
    intervals chain into a beat clock of their own, placed on the host clock
    by the same lower envelope as :class:`RateTimestamper` (a jump means beats
    were lost).

    Parameters
    ----------
    leak : float
        How fast (s/s) the offset may rise.
    gap_s : float
        Offset jump that counts as lost beats.
    """

    def __init__(self, leak: float = 0.002, gap_s: float = 2.0) -> None:
        super().__init__(leak, gap_s)
        self._beat_clock = 0.0

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        if n <= 0:
            return np.empty(0)
        if device_time is None:
            raise ValueError("IntervalTimestamper needs the intervals as device_time")
        beats = self._beat_clock + np.cumsum(np.asarray(device_time, dtype=np.float64))
        offset = self._track(t_recv - float(beats[-1]), t_recv)
        self._beat_clock = float(beats[-1])
        return self._monotonic(offset + beats)
