"""EDF's numbers: record layout, header-safe ranges, resampling onto a regular grid.

Pure functions for :mod:`biofeedback.export.edf_export`: EDF wants every
signal sampled regularly with a whole number of samples per data record, no
holes, and physical ranges that fit 8-character header fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from devices.errors import InputError

__all__ = ["Resampled", "Span", "edf_bound", "physical_range", "plan_rates", "resample_to_grid"]

FloatArray = npt.NDArray[np.float64]

#: Record durations tried, shortest first (seconds).
_RECORD_DURATIONS = (1, 2, 4, 5, 8, 10)
#: Margin added to each side of the data range, as a fraction of the span.
_RANGE_MARGIN = 0.02
#: What an 8-character header field holds.
_EDF_MAX = 99_999_999.0
_EDF_MIN = -9_999_999.0


def plan_rates(rates: list[float]) -> tuple[int, list[int]]:
    """Record duration and samples per record for each rate.

    Returns the shortest record duration (seconds, from 1, 2, 4, 5, 8, 10)
    in which every rate gives a whole number of samples; when none does, 1 s
    with each rate rounded *up* to a whole number (never lose resolution).

    Parameters
    ----------
    rates : list of float
        Positive sample rates, Hz.

    Returns
    -------
    duration : int
        Record duration, seconds.
    samples : list of int
        Samples per record for each rate (the output rate is ``samples / duration``).
    """
    for r in rates:
        if not (math.isfinite(r) and r > 0):
            raise ValueError(f"rates must be positive, got {r!r}")
    for d in _RECORD_DURATIONS:
        spr = [r * d for r in rates]
        if all(abs(x - round(x)) < 1e-6 for x in spr):
            return d, [round(x) for x in spr]
    return 1, [math.ceil(r - 1e-9) for r in rates]


def edf_bound(x: float, *, up: bool) -> float:
    """The nearest number at or beyond ``x`` that an 8-character EDF field holds.

    ``up=True`` rounds toward +inf (for a maximum), else toward -inf.

    Raises
    ------
    InputError
        When ``abs(x)`` does not fit in 8 characters.
    """
    if not (math.isfinite(x) and _EDF_MIN <= x <= _EDF_MAX):
        raise InputError(f"value {x!r} is out of what an EDF header field holds "
                         f"({_EDF_MIN:.0f} to {_EDF_MAX:.0f}); export as CSV instead")
    rnd = math.ceil if up else math.floor
    for decimals in range(7, -1, -1):
        q = 10**decimals
        y = rnd(Fraction(x) * q) / q  # exact rational rounding
        text = f"{float(y):.{decimals}f}"
        if decimals:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        val = float(text)
        # Tiny non-zero numbers would print as 1e-05: readers want plain decimals.
        if val != 0.0 and abs(val) < 1e-4:
            continue
        if len(text) <= 8 and (val >= x if up else val <= x):
            return val
    raise InputError(f"value {x!r} does not fit an EDF header field")  # pragma: no cover


def physical_range(values: FloatArray) -> tuple[float, float]:
    """``(min, max)`` for a signal: the data's range with a margin, header-safe."""
    lo = float(np.min(values))
    hi = float(np.max(values))
    span = hi - lo
    if span <= 0.0:
        span = max(abs(lo) * 1e-3, 1.0)
    lo_b = edf_bound(lo - _RANGE_MARGIN * span, up=False)
    hi_b = edf_bound(hi + _RANGE_MARGIN * span, up=True)
    if hi_b <= lo_b:  # pragma: no cover - guarded by the span above
        hi_b = edf_bound(lo_b + 1.0, up=True)
    return lo_b, hi_b


Span = tuple[float, float]


@dataclass(frozen=True, eq=False)
class Resampled:
    """A stream on its EDF grid, and where it had nothing to show.

    Attributes
    ----------
    values : ndarray, shape (n, channels)
        The grid values (held where there was nothing).
    gaps : list of (start, end)
        No sample arrived for longer than the gap threshold (a lost link, a
        stream that started late or ended early).
    no_value : list of (start, end)
        Samples arrived but held no value (NaN: e.g. a belt's breath rate
        before its first breath); never counted as a gap.
    """

    values: FloatArray
    gaps: list[Span]
    no_value: list[Span]


def _holes(t: FloatArray, expected: Span, gap_s: float) -> list[Span]:
    """Stretches of ``expected`` longer than ``gap_s`` without a time in sorted ``t``."""
    if t.size == 0:
        return [expected]
    holes: list[Span] = []
    if t[0] - expected[0] > gap_s:
        holes.append((expected[0], float(t[0])))
    for i in np.flatnonzero(np.diff(t) > gap_s):
        holes.append((float(t[i]), float(t[i + 1])))
    if expected[1] - t[-1] > gap_s:
        holes.append((float(t[-1]), expected[1]))
    return holes


def _subtract(spans: list[Span], minus: list[Span], min_len: float) -> list[Span]:
    """The parts of ``spans`` outside every span of ``minus`` (longer than ``min_len``)."""
    out: list[Span] = []
    for a, b in spans:
        start = a
        for c, d in sorted(minus):
            if d <= start or c >= b:
                continue
            if c - start > min_len:
                out.append((start, c))
            start = max(start, d)
        if b - start > min_len:
            out.append((start, b))
    return out


def resample_to_grid(
    t: FloatArray,
    values: FloatArray,
    origin: float,
    rate: float,
    n: int,
    gap_s: float,
    expected: Span | None = None,
) -> Resampled:
    """Resample samples onto ``origin + k / rate``, ``k = 0..n-1``.

    Linear interpolation between neighbouring values closer than ``gap_s``;
    elsewhere (gaps, stretches without a value, before the first and after
    the last value) the last known value is held (the first value before the
    first one). Samples without a value (NaN) count as arrived for the gaps
    and as :attr:`Resampled.no_value` for what is shown.

    Parameters
    ----------
    t, values : ndarray
        Sample times ``(m,)`` and values ``(m, channels)``.
    origin, rate, n : float, float, int
        The grid.
    gap_s : float
        Longest stretch without samples that is not a gap.
    expected : (float, float) or None
        When data was expected (the session's span); a stream that starts
        later or ends earlier than this by more than ``gap_s`` has a gap
        there. None: the grid's span.
    """
    grid = origin + np.arange(n, dtype=np.float64) / rate
    if expected is None:
        expected = (origin, float(grid[-1]) if n else origin)
    arrived = np.sort(t[np.isfinite(t)])
    ok = np.isfinite(t) & np.all(np.isfinite(values), axis=1)
    t, values = t[ok], values[ok]
    order = np.argsort(t, kind="stable")
    t, values = t[order], values[order]
    gaps = _holes(arrived, expected, gap_s)
    no_value = _subtract(_holes(t, expected, gap_s), gaps, gap_s)
    return Resampled(_fill(grid, t, values, gap_s), gaps, no_value)


def _fill(grid: FloatArray, t: FloatArray, values: FloatArray, gap_s: float) -> FloatArray:
    """Interpolate sorted finite samples onto ``grid``, holding across holes."""
    out = np.zeros((grid.size, values.shape[1]))
    if t.size == 0:
        return out
    idx = np.searchsorted(t, grid, side="right") - 1  # last sample at or before each point
    held = values[np.clip(idx, 0, t.size - 1)]
    for c in range(values.shape[1]):
        out[:, c] = np.interp(grid, t, values[:, c])
    # Hold instead of interpolating across holes and outside the span with values.
    nxt = np.clip(idx + 1, 0, t.size - 1)
    across_gap = (idx >= 0) & (idx < t.size - 1) & ((t[nxt] - t[np.clip(idx, 0, None)]) > gap_s)
    hold = across_gap | (idx < 0) | (idx >= t.size - 1)
    out[hold] = held[hold]
    return out


# --------------------------------------------------------------------------- the plan
