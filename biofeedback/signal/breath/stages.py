"""The breath detector's stages, each a small function or class on plain values.

After the front end has cleaned the stream (:mod:`.frontends`), detection runs:

1. :class:`DetectionSignal` -- the breath signal minus its slow midline
   (a causal high-pass with kept state) and the running size of its swings;
2. :func:`hysteresis` -- the thresholds a swing must cross: a fraction of the
   running swing size, held between a floor and a cap set by the recent
   breaths (:class:`RecentSwings`), never below the noise;
3. :func:`next_crossing` (the one hot kernel; :func:`next_crossing_reference`
   is the plain loop it must equal) -- candidate extrema are confirmed when the
   signal crosses to the other side of the midline by the hysteresis: a peak
   when it falls below ``-h``, a trough when it rises above ``+h``. A notch or
   a heartbeat that does not cross the midline is never a breath;
4. :func:`onset_time` -- when the breath left the extreme (the foot);
5. :func:`polarity_evidence` and :class:`PolarityVote` -- which way inhale goes.

Phase labels, rate and depth are in :mod:`.figures`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from biofeedback.signal.filters import (
    LOOP_MAX,
    FloatArray,
    Interp,
    SosFilter,
    df2t_loop,
    highpass_sos,
    lowpass_sos,
    phase_delays_s,
)

__all__ = [
    "DetectionSignal",
    "PolarityVote",
    "RecentSwings",
    "band_delay_s",
    "hysteresis",
    "next_crossing",
    "next_crossing_reference",
    "onset_time",
    "polarity_evidence",
    "swing_reach",
]

#: The midline's high-pass edge: well below the slowest breathing we coach
#: (4-6 breaths/min, 0.07-0.1 Hz), so slow breaths keep their swing.
MIDLINE_HP_HZ = 0.05
#: The detection band's low-pass edge: above the fastest breathing (~40/min),
#: below most heart rates (48-120 beats/min), whose ripple rides on belt and
#: impedance traces and would otherwise read as small breaths.
DETECTION_LP_HZ = 0.7
#: Memory of the running swing size, seconds (a few breaths at rest).
SWING_TAU_S = 10.0
#: Hysteresis as a fraction of the running mean |signal| (for a sine wave of
#: amplitude A, about 0.4 A: a breath must cross the midline by that much).
SWING_FRAC = 0.667
#: The hysteresis never exceeds this fraction of the recent breaths' swings
#: (a sigh inflates the running mean; the breaths after it must still count) ...
CAP_FRAC = 0.3
#: ... nor falls below this fraction of them (in a pause, the heartbeat and
#: small twitches are not breaths), nor below this many noise SDs.
FLOOR_FRAC = 0.1
NOISE_SDS = 4.0
#: ... nor exceeds this fraction of how far the current swing went from the
#: midline (:func:`hysteresis`).
REACH_FRAC = 0.3


def detection_sos(fs: float) -> FloatArray:
    """The detection band: the midline off (high-pass), and the heartbeat damped
    (a low-pass below the resting heart rate, above the fastest breathing)."""
    lp = min(DETECTION_LP_HZ, 0.4 * fs)
    return np.vstack((highpass_sos(MIDLINE_HP_HZ, fs, 1), lowpass_sos(lp, fs, 2)))


def band_delay_s(fs: float) -> Interp:
    """``f_hz -> seconds``: the detection band's phase delay at breath frequency ``f_hz``.

    An extreme of the detection signal lags the same extreme of the cleaned
    signal by this much (the cleaning's own delay comes on top).
    """
    f = np.geomspace(0.03, min(1.0, 0.45 * fs), 48)
    return Interp(f, phase_delays_s(detection_sos(fs), f, fs))


class DetectionSignal:
    """The cleaned breath signal minus its midline, and its running swing size.

    The swing size is the running mean of ``|d|`` over about ``SWING_TAU_S``,
    unbiased from the first sample on (an exponential mean started at zero,
    divided by the weight it has gathered), so detection can start after a
    breath or two without a transient.

    Parameters
    ----------
    fs : float
        Rate of the cleaned signal.
    """

    def __init__(self, fs: float) -> None:
        self._hp = SosFilter(detection_sos(fs), 1)
        a = math.exp(-1.0 / (SWING_TAU_S * fs))
        self._ab = (np.array([1.0 - a]), np.array([1.0, -a]))
        self._abl = ([1.0 - a, 0.0], [1.0, -a])  # as lfilter pads them
        self._decay = a
        self.reset()

    def reset(self) -> None:
        self._hp.reset()
        self._z = np.zeros(1)  # the exponential mean's state, started at zero
        self._n = 0  # samples seen

    def process(self, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(d, level)``: ``y`` about its midline, and the running mean of ``|d|``."""
        d = self._hp.process(y)
        if d.shape[0] <= LOOP_MAX:  # a live chunk: the plain loop, bit for bit lfilter's
            z = self._z.tolist()
            m = np.array(df2t_loop(self._abl[0], self._abl[1], np.abs(d).tolist(), z))
            self._z = np.array(z)
        else:
            m, self._z = sps.lfilter(*self._ab, np.abs(d), zi=self._z)
        k = self._n + 1 + np.arange(d.shape[0])
        self._n += d.shape[0]
        return d, m / (1.0 - self._decay**k)


@dataclass(slots=True)
class RecentSwings:
    """How far the recent breaths swung from the midline (peaks and troughs alike)."""

    sizes: deque[float] = field(default_factory=lambda: deque(maxlen=6))
    noise: float = 0.0  # noise SD of the detection signal

    def add(self, size: float) -> None:
        self.sizes.append(abs(size))

    def bounds(self) -> tuple[float, float]:
        """``(floor, cap)`` of the hysteresis."""
        lo = max(NOISE_SDS * self.noise, 1e-12)
        if len(self.sizes) < 3:
            return lo, math.inf
        typical = float(statistics.median(self.sizes))
        return max(lo, FLOOR_FRAC * typical), max(lo, CAP_FRAC * typical)


def hysteresis(
    level: FloatArray, floor: float, cap: float, reach: FloatArray | None = None
) -> FloatArray:
    """Per-sample hysteresis: ``SWING_FRAC * level`` held within ``[floor, cap]``.

    With ``reach`` (how far the current swing has gone from the midline so
    far), also at most ``REACH_FRAC`` of it: a breath is measured against
    itself as well as against the recent ones. After a deep breath the
    midline and the recent swings are inflated for a while, and a shallow
    breath that dipped below the midline comes back above it by less than
    the usual cap; relative to its own dip it is plainly a breath.
    """
    h = np.minimum(SWING_FRAC * level, cap)
    if reach is not None:
        np.minimum(h, REACH_FRAC * reach, out=h)
    return np.maximum(h, floor, out=h)


def swing_reach(d: FloatArray, mode: int, start: float) -> FloatArray | None:
    """How far the current swing has gone from the midline at each sample.

    ``mode`` +1 (above the midline): the running maximum of ``d``; -1: of
    ``-d``; ``start`` is the swing's extreme before these samples. None
    while the search is not placed (``mode`` 0).
    """
    if mode > 0:
        return np.maximum.accumulate(np.maximum(d, start))
    if mode < 0:
        return -np.minimum.accumulate(np.minimum(d, start))
    return None


def next_crossing(d: FloatArray, h: FloatArray, mode: int) -> int:
    """First sample that confirms an extremum, or -1.

    ``mode`` +1 (above the midline, seeking a peak): ``d < -h``; -1 (below,
    seeking a trough): ``d > h``; 0 (not yet placed): ``|d| > h``. The
    vectorised form of :func:`next_crossing_reference`.
    """
    if mode > 0:
        hit = d < -h
    elif mode < 0:
        hit = d > h
    else:
        hit = np.abs(d) > h
    i = int(hit.argmax()) if hit.shape[0] else 0
    return i if hit.shape[0] and hit[i] else -1


def next_crossing_reference(d: FloatArray, h: FloatArray, mode: int) -> int:
    """Plain-loop reference of :func:`next_crossing` (same result, sample by sample)."""
    for i in range(d.shape[0]):
        v, th = float(d[i]), float(h[i])
        if (mode > 0 and v < -th) or (mode < 0 and v > th) or (mode == 0 and abs(v) > th):
            return i
    return -1


def onset_time(t: FloatArray, y: FloatArray, kind: int) -> float:
    """When the signal left its extreme: the foot of the departure, sub-sample.

    ``t``, ``y`` run from the extreme (``y[0]``, a peak for ``kind`` +1, a
    trough for -1) to the confirmation. The foot is where the tangent at the
    steepest point of the departure meets the extreme's level (the
    intersecting-tangent foot of pulse-wave analysis), refined once by the
    tangent at that foot (:func:`_refine_foot`). Slopes are taken over 0.2 s
    so a cardiac ripple does not steer them.

    Why not the extreme sample, or where the signal leaves a band around it:
    in an end-expiratory pause the extreme sample is wherever the heartbeat's
    ripple dipped lowest, anywhere in the pause, and a band narrow enough for
    the breath is crossed by that ripple. On 52 ICU impedance records (BIDMC)
    the band-exit knee's onsets jittered 0.35 s (robust SD) against the
    annotated breaths, this foot's 0.25 s.
    """
    n = y.shape[0]
    if n < 3:
        return float(t[0])
    dist = (y[0] - y) if kind > 0 else (y - y[0])  # >= 0: distance from the extreme
    dt_mean = float(t[-1] - t[0]) / (n - 1)
    w = max(1, min(round(0.1 / dt_mean) if dt_mean > 0 else 1, (n - 1) // 2))
    slope = (dist[2 * w :] - dist[: n - 2 * w]) / (t[2 * w :] - t[: n - 2 * w])
    if slope.shape[0] == 0:
        return float(t[0])
    k = int(np.argmax(slope))
    if not slope[k] > 0:
        return float(t[0])
    s = k + w  # the steepest point's sample
    foot = float(t[s]) - float(dist[s]) / float(slope[k])
    foot = _refine_foot(foot, t[w : n - w], dist[w : n - w], slope)
    return min(max(foot, float(t[0])), float(t[s]))


def _refine_foot(foot: float, t: FloatArray, dist: FloatArray, slope: FloatArray) -> float:
    """One more tangent step, from the foot towards the extreme's level.

    At the end of a pause the signal is still at the extreme's level, so the
    foot stays where it is. On a smooth, rounded extreme (a sinusoid-like
    breath with no pause) the steepest tangent's foot lands about 9 % of the
    period past the true turn, 0.9 s at 6 breaths/min; this step halves that.
    (A further step halves it again but lets the heartbeat's ripple back in:
    on the BIDMC records it cost more jitter than it removed.)
    """
    if not t.shape[0] or foot <= float(t[0]) or foot >= float(t[-1]):
        return foot
    d = float(np.interp(foot, t, dist))
    sl = float(np.interp(foot, t, slope))
    return foot - d / sl if d > 0 and sl > 0 else foot


def polarity_evidence(y: FloatArray) -> float | None:
    """Evidence (-1..1) that inhale raises the signal, from one whole cycle ``y``.

    The end-expiratory pause sits at the bottom: ``log(time near bottom /
    time near top)``. (Inhale being shorter than exhale is no evidence: on
    real people -- 35 of 52 ICU impedance records, BIDMC -- the fall is
    often the shorter, and it outvoted the pause.) None when the cycle is too
    short or flat to say.
    """
    hi, lo = float(y.max()), float(y.min())
    amp = hi - lo
    if y.shape[0] < 4 or not amp > 0:
        return None
    bottom = np.count_nonzero(y < lo + 0.2 * amp) / y.shape[0]
    top = np.count_nonzero(y > hi - 0.2 * amp) / y.shape[0]
    e = math.log((bottom + 0.05) / (top + 0.05))
    return max(-1.0, min(1.0, e))


#: How clearly contrary the running evidence must be to overturn the polarity
#: a source's physics sets (a belt stretches on inhale): a trace held at the
#: top (an inspiratory hold, a clipped rail) reads like a pause there.
PRIOR_FLIP = 0.6


@dataclass(slots=True)
class PolarityVote:
    """The polarity decided from the evidence of recent cycles.

    Undecided (``prior`` 0), the median of the last few cycles decides. Once
    decided, or from a source whose physics sets it (a belt stretches on
    inhale), it flips only when the running mean of the evidence over about
    ``memory`` cycles is clearly contrary: one cycle's shape can mislead (a
    rail-clipped top reads like a pause at the bottom), a run of them cannot.
    """

    polarity: int = 0
    prior: int = 0
    memory: int = 16
    history: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    lean: float = 0.0  # running mean of the evidence
    n: int = 0

    def add(self, evidence: float) -> int:
        self.history.append(evidence)
        self.n += 1
        self.lean += (evidence - self.lean) / min(self.n, self.memory)
        if self.polarity == 0:
            med = float(statistics.median(self.history))
            k = len(self.history)
            if (k >= 2 and abs(med) > 0.4) or (k >= 3 and abs(med) > 0.15):
                self.polarity = 1 if med > 0 else -1
        else:
            need_n, need_e = (5, 0.3) if self.prior == 0 else (8, PRIOR_FLIP)
            if self.n >= need_n and self.lean * self.polarity < -need_e:
                self.polarity = -self.polarity
        return self.polarity
