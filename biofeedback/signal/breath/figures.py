"""The breath detector's last stages: phase per sample, and rate, depth, regularity.

Both change only at confirmed events or per sample through kept state, so the
output does not depend on how the stream is chunked.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.types import Int8Array
from devices.vocab import BreathPhase

__all__ = ["BreathFigures", "PhaseLabeller", "slope_threshold"]

_INH = np.int8(BreathPhase.INHALE)
_EXH = np.int8(BreathPhase.EXHALE)
_PAU = np.int8(BreathPhase.PAUSE)
_UNK = np.int8(BreathPhase.UNKNOWN)


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
        self.amplitude = statistics.median(self.amplitudes)

    def add_period(self, period: float) -> None:
        p = self.periods
        p.append(period)
        self.period_s = statistics.median(p)
        if len(p) >= 3:
            mean = sum(p) / len(p)
            cv = statistics.pstdev(p) / mean if mean > 0 else 1.0
            self.regularity = min(1.0, max(0.0, 1.0 - cv))

    def add_inhale_onset(self, t: float) -> None:
        ons = self.inhale_onsets
        ons.append(t)
        if len(ons) >= 2:
            self.inhale_period_s = statistics.median(b - a for a, b in itertools.pairwise(ons))

    def add_delay(self, delay: float) -> None:
        self.delays.append(delay)
        self.delay_s = sum(self.delays) / len(self.delays)

    def depth(self, inhale_amp: float) -> float:
        """The breath's inhale amplitude relative to the recent ones (1.0 = typical)."""
        self.inhale_amplitudes.append(inhale_amp)
        typical = statistics.median(self.inhale_amplitudes)
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
        self._tail = np.empty(0)  # the last slope_k samples
        self._phase = _UNK
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
        k = self.slope_k
        ext = np.concatenate((np.full(max(0, k - self._tail.shape[0]), y[0]), self._tail, y))
        self._tail = ext[-k:].copy()
        p = self.params
        if not known or not math.isfinite(p.theta):
            return np.full(n, _UNK, dtype=np.int8)
        s = p.sign * y
        slope = p.sign * (ext[k:] - ext[:n])
        code = np.where(slope > p.theta, _INH, np.where(slope < -p.theta, _EXH, np.int8(0)))
        hit = np.flatnonzero(code)
        self.last_move = int(hit[-1]) if hit.shape[0] else -1
        # carry the last triggered phase over the quiet samples
        idx = np.where(code != 0, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        out = np.where(idx >= 0, code[np.maximum(idx, 0)], self._phase).astype(np.int8)
        self._phase = out[-1]
        bottom = np.minimum.accumulate(np.minimum(s, self._bottom))
        self._bottom = float(bottom[-1])
        pause = (out == _EXH) & (np.abs(slope) < 0.5 * p.theta) & (s - bottom < p.band)
        out[pause] = _PAU
        return out
