"""The recording as one track: every step's samples in time order, and signal helpers.

Calibration runs after the recording, so the smoothing here may look both
ways (it never touches live data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calibration.steps import FloatArray, StepKind, StepSegment

__all__ = ["Track", "noise_sd", "smooth"]

#: Smoothing window for peaks and floors: long enough to average the sensor
#: noise, short against a contraction's rise (~0.3 s) or a 4-5 s inhale.
SMOOTH_S = 0.25


def smooth(x: FloatArray, n: int) -> FloatArray:
    """Centred moving average over ``n`` samples (odd), edges held."""
    if n <= 1 or x.size == 0:
        return x.copy()
    n = n | 1
    pad = n // 2
    xp = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    c = np.cumsum(np.concatenate([[0.0], xp]))
    return (c[n:] - c[:-n]) / n


def noise_sd(x: FloatArray) -> float:
    """White-noise level per sample, from first differences.

    Slow movements barely show in first differences; jumps (a motion artefact)
    are left out beyond five times their upper quartile. A root mean square
    rather than a median: on integer counts a median moves in whole steps.
    """
    d = np.diff(x[np.isfinite(x)])
    if d.size < 4:
        return 0.0
    a = np.abs(d - np.median(d))
    step = np.diff(np.unique(a))
    clip = 5.0 * max(float(np.percentile(a, 75)), float(step.min()) if step.size else 0.0)
    kept = a[a <= clip] if clip > 0 else a
    return float(np.sqrt(np.mean(kept * kept)) / math.sqrt(2.0))


def _fill_nan(x: FloatArray) -> FloatArray:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    ok = np.flatnonzero(~bad)
    if ok.size == 0:
        return np.zeros_like(x)
    return np.interp(np.arange(x.size), ok, x[ok])


@dataclass(frozen=True, eq=False)
class Track:
    """All samples of the recording, and the steps as windows on it.

    Parameters
    ----------
    t, x : ndarray
        Times and values (NaN-free: gaps inside a step are interpolated),
        strictly increasing times.
    xs : ndarray
        ``x`` smoothed over :data:`SMOOTH_S`.
    fs : float
        Sample rate estimated from the median interval.
    steps : tuple of StepSegment
        In time order.
    """

    t: FloatArray
    x: FloatArray
    xs: FloatArray
    fs: float
    steps: tuple[StepSegment, ...]

    @classmethod
    def from_segments(cls, segments: Sequence[StepSegment]) -> Track:
        steps = tuple(sorted(segments, key=lambda s: s.t_start))
        ts = [s.t for s in steps if s.t.size]
        xs = [s.values for s in steps if s.t.size]
        if ts:
            t = np.concatenate(ts)
            x = np.concatenate(xs)
            order = np.argsort(t, kind="stable")
            t, x = t[order], x[order]
            keep = np.concatenate([[True], np.diff(t) > 0])
            t, x = t[keep], x[keep]
        else:
            t = np.zeros(0)
            x = np.zeros(0)
        x = _fill_nan(x)
        dt = np.diff(t)
        fs = 1.0 / float(np.median(dt)) if dt.size else math.nan
        n = max(1, round(SMOOTH_S * fs)) if math.isfinite(fs) else 1
        return cls(t, x, smooth(x, n), fs, steps)

    def of_kind(self, *kinds: StepKind) -> list[StepSegment]:
        """The steps of these kinds, in time order."""
        return [s for s in self.steps if s.kind in kinds]

    def window(self, t0: float, t1: float) -> slice:
        """Index slice of the samples in ``[t0, t1)``."""
        a = int(np.searchsorted(self.t, t0, "left"))
        b = int(np.searchsorted(self.t, t1, "left"))
        return slice(a, b)

    def reference_before(self, t_start: float, fallback: float, span_s: float = 3.0) -> float:
        """The resting level just before ``t_start`` (median of ``span_s``)."""
        w = self.window(t_start - span_s, t_start)
        seg = self.x[w]
        if seg.size < 3:
            return fallback
        return float(np.median(seg))

    def smoothed(self, seconds: float) -> FloatArray:
        """``x`` smoothed over ``seconds`` (a centred moving average)."""
        if not math.isfinite(self.fs):
            return self.x.copy()
        return smooth(self.x, max(1, round(seconds * self.fs)))

    def at(self, t: FloatArray) -> FloatArray:
        """The smoothed signal at times ``t`` (linear interpolation)."""
        if self.t.size == 0:
            return np.full(np.shape(t), math.nan)
        return np.interp(t, self.t, self.xs)
