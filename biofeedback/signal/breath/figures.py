"""The breath detector's last stages: phase per sample, and rate, depth, regularity.

Both change only at confirmed events or per sample through kept state, so the
output does not depend on how the stream is chunked.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.types import Int8Array
from devices.vocab import BreathPhase

__all__ = [
    "BreathFigures",
    "PhaseLabeller",
    "label_phases",
    "label_phases_loop",
    "median_of",
    "pstdev_of",
    "slope_threshold",
]

_INH = np.int8(BreathPhase.INHALE)
_EXH = np.int8(BreathPhase.EXHALE)
_PAU = np.int8(BreathPhase.PAUSE)
_UNK = np.int8(BreathPhase.UNKNOWN)


def median_of(xs: Iterable[float]) -> float:
    """The median of a few values, as a Python float (whatever floats they are)."""
    return float(statistics.median(xs))


def pstdev_of(xs: Sequence[float], mean: float) -> float:
    """Population standard deviation of a few values about their ``mean``, as a float.

    Plain float arithmetic: ``statistics.pstdev`` sums exactly with fractions
    (a tenth of a millisecond per call, at every event) and returns numpy
    scalars when handed them.
    """
    return math.sqrt(sum((float(x) - mean) ** 2 for x in xs) / len(xs))


def slope_threshold(amp_typ: float, period_s: float, slope_dt: float) -> float:
    """The phase trigger: a quarter of a typical breath's steepest rise over ``slope_dt``."""
    if not math.isfinite(amp_typ):
        return math.nan
    per = period_s if period_s > 0 else 6.0
    return 0.25 * math.pi * amp_typ / per * slope_dt


@dataclass(slots=True)
class BreathFigures:
    """Typical amplitude, period, rate, regularity and delay of the recent breaths.

    Updated at events (:meth:`add_swing`, :meth:`add_period`, ...); read freely.
    """

    amplitudes: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    inhale_amplitudes: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    periods: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    inhale_onsets: deque[float] = field(default_factory=lambda: deque(maxlen=7))
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    amplitude: float = math.nan  # median peak-to-trough amplitude
    period_s: float = math.nan  # median period between onsets of a kind
    inhale_period_s: float = math.nan  # median period between inhale onsets
    regularity: float | None = None
    delay_s: float = math.nan

    def add_swing(self, amp: float) -> None:
        self.amplitudes.append(amp)
        self.amplitude = median_of(self.amplitudes)

    def add_period(self, period: float) -> None:
        p = self.periods
        p.append(period)
        self.period_s = median_of(p)
        if len(p) >= 3:
            mean = float(sum(p)) / len(p)
            cv = pstdev_of(p, mean) / mean if mean > 0 else 1.0
            self.regularity = min(1.0, max(0.0, 1.0 - cv))

    def add_inhale_onset(self, t: float) -> None:
        ons = self.inhale_onsets
        ons.append(t)
        if len(ons) >= 2:
            self.inhale_period_s = median_of(b - a for a, b in itertools.pairwise(ons))

    def add_delay(self, delay: float) -> None:
        self.delays.append(delay)
        self.delay_s = sum(self.delays) / len(self.delays)

    def depth(self, inhale_amp: float) -> float:
        """The breath's inhale amplitude relative to the recent ones (1.0 = typical)."""
        self.inhale_amplitudes.append(inhale_amp)
        typical = median_of(self.inhale_amplitudes)
        return inhale_amp / typical if typical > 0 else math.nan

    def rate_bpm(self, now: float) -> float | None:
        """Breath rate now; falls during a breath hold rather than freezing."""
        per = self.inhale_period_s
        if not math.isfinite(per) or per <= 0:
            return None
        since = now - self.inhale_onsets[-1]
        return 60.0 / (since if since > 2.0 * per else per)


@dataclass(slots=True)
class LabelParams:
    """What the labeller uses between two events (set at each event)."""

    theta: float = math.nan  # slope trigger
    band: float = math.nan  # a pause sits within this of the bottom
    sign: int = 1  # +1: inhale raises the signal


class PhaseLabeller:
    """Phase per sample: a slope trigger with hysteresis, and the pause.

    Inhale once the (inhale-up) signal rises faster than ``theta`` over
    ``slope_k`` samples, exhale once it falls that fast, unchanged in
    between; a pause while, after an exhale, it barely moves near the bottom
    reached since the last exhale onset.
    """

    def __init__(self, fs: float) -> None:
        self.slope_k = max(1, round(0.25 * fs))
        self.slope_dt = self.slope_k / fs
        self.params = LabelParams()
        self.reset()

    def reset(self) -> None:
        self._tail: list[float] = []  # the last slope_k samples
        self._phase = int(_UNK)
        self._bottom = math.inf  # lowest inhale-up value since the last exhale onset
        self.last_move = -1  # index (in the latest call) of the last sample that triggered

    def exhale_onset(self) -> None:
        """A new exhale began: the bottom is sought again."""
        self._bottom = math.inf

    def label(self, y: FloatArray, known: bool = True) -> Int8Array:
        """Phases of the next samples ``y`` (``known`` False: unknown, state kept)."""
        n = y.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int8)
        if n > LOOP_MAX:
            return self._label_long(y, known)
        # a few samples (a notification, a second): plain floats and the plain
        # loop, cheaper than the arrays' cost per call
        k = self.slope_k
        v = y.tolist()
        tail = self._tail
        if len(tail) < k:  # the stream's start: as if it had sat at its first value
            tail = [v[0]] * (k - len(tail)) + tail
        ext = tail + v
        self._tail = ext[n:]
        p = self.params
        if not known or not math.isfinite(p.theta):
            return np.full(n, _UNK, dtype=np.int8)
        # n slopes: ext[k:] is the shorter (no copy of ext[:n])
        slope = [b - a for a, b in zip(ext, ext[k:], strict=False)]
        if p.sign < 0:
            slope = [-x for x in slope]
            v = [-x for x in v]
        out, self.last_move, self._phase, self._bottom = label_phases_loop(
            slope, v, p.theta, p.band, self._phase, self._bottom
        )
        return out

    def _label_long(self, y: FloatArray, known: bool) -> Int8Array:
        """:meth:`label` for a long stretch: the vectorised kernel (the same result)."""
        n = y.shape[0]
        k = self.slope_k
        tail = np.array(self._tail)
        if tail.shape[0] < k:  # the stream's start: as if it had sat at its first value
            tail = np.concatenate((np.full(k - tail.shape[0], y[0]), tail))
        ext = np.concatenate((tail, y))
        self._tail = ext[n:].tolist()
        p = self.params
        if not known or not math.isfinite(p.theta):
            return np.full(n, _UNK, dtype=np.int8)
        slope = ext[k:] - ext[:n]
        s = y
        if p.sign < 0:
            np.negative(slope, out=slope)
            s = -y
        out, self.last_move, self._phase, self._bottom = label_phases(
            slope, s, p.theta, p.band, self._phase, self._bottom
        )
        return out


#: Longest stretch :meth:`PhaseLabeller.label` gives the plain loop.
LOOP_MAX = 48


def label_phases(
    slope: FloatArray, s: FloatArray, theta: float, band: float, phase: int, bottom: float
) -> tuple[Int8Array, int, int, float]:
    """Phase per sample from the inhale-up signal ``s`` and its slope (the kernel).

    Inhale once ``slope > theta``, exhale once ``slope < -theta``, else the
    phase carried from before (``phase``, then the last trigger); a pause
    where an exhale barely moves (``|slope| < theta / 2``) within ``band`` of
    the lowest ``s`` since the exhale onset (``bottom`` before these samples).

    Returns
    -------
    out : ndarray of int8
        The phases.
    last_move : int
        Index of the last sample that triggered (-1: none).
    phase, bottom
        The carried phase (never a pause) and the bottom, after these samples.

    :func:`label_phases_loop` is the plain loop it must equal.
    """
    n = s.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int8), -1, int(phase), float(bottom)
    # INHALE is 1 and EXHALE 2 (devices.vocab): the code is inh + 2 * exh
    code = (slope > theta).view(np.int8) + ((slope < -theta).view(np.int8) << 1)
    hit = np.flatnonzero(code)
    if hit.shape[0] == 0:
        out = np.full(n, phase, dtype=np.int8)
        last = -1
    else:
        out = np.empty(n, dtype=np.int8)
        first = int(hit[0])
        out[:first] = phase
        out[first:] = np.repeat(code[hit], np.diff(hit, append=n))
        last = int(hit[-1])
    carried = int(out[n - 1])
    exhaling = out == _EXH
    if not exhaling.any():
        return out, last, carried, min(bottom, float(s.min()))
    low = np.minimum.accumulate(np.minimum(s, bottom))
    pause = exhaling & (np.abs(slope) < 0.5 * theta) & (s - low < band)
    out[pause] = _PAU
    return out, last, carried, float(low[n - 1])


def label_phases_loop(
    slope: FloatArray | list[float],
    s: FloatArray | list[float],
    theta: float,
    band: float,
    phase: int,
    bottom: float,
) -> tuple[Int8Array, int, int, float]:
    """Plain-loop reference of :func:`label_phases` (same result, sample by sample).

    Takes arrays or lists of floats.
    """
    out: list[int] = []
    append = out.append
    last = -1
    half = 0.5 * theta
    neg = -theta
    inh, exh, pau = int(_INH), int(_EXH), int(_PAU)
    sl_seq = slope.tolist() if isinstance(slope, np.ndarray) else slope
    s_seq = s.tolist() if isinstance(s, np.ndarray) else s
    for i, (sl, v) in enumerate(zip(sl_seq, s_seq, strict=True)):
        if sl > theta:
            phase, last = inh, i
        elif sl < neg:
            phase, last = exh, i
        if v < bottom:
            bottom = v
        pausing = phase == exh and abs(sl) < half and v - bottom < band
        append(pau if pausing else phase)
    return np.array(out, dtype=np.int8), last, int(phase), float(bottom)
