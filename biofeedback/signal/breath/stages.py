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
   a heartbeat that does not cross the midline is not a breath -- unless it is
   a *turn* (:func:`scan_swing_loop`): a swing as large as a typical half
   breath and as long as an inhale that comes back and turns again without
   reaching the midline (the shallow breaths after a sigh, while the midline
   is still high, or on a wandering baseline);
4. :func:`onset_time` -- when the breath left the extreme (the foot);

Which way inhale goes is in :mod:`.polarity`; phase labels, rate and depth
are in :mod:`.figures`.
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
    interp_at,
    lowpass_sos,
    phase_delays_s,
)

__all__ = [
    "SCAN_LOOP_MAX",
    "Bounds",
    "DetectionSignal",
    "RecentSwings",
    "Search",
    "band_delay_s",
    "hysteresis",
    "next_crossing",
    "next_crossing_reference",
    "onset_time",
    "scan_swing",
    "scan_swing_loop",
    "scan_swing_vector",
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
#: midline (:func:`hysteresis`): a wiggle back over the midline by under a
#: third of its own dip is not a breath (0.4 did better on the even BIDMC
#: records but missed the shallow paced inhale after a deep breath, body-model
#: seed 4, which needs at most 0.37).
REACH_FRAC = 0.35
#: A swing that turns back without crossing the midline is a breath too when
#: it came back this fraction of the recent swings from its extreme (about 40 %
#: of a typical breath, peak to trough: the shallow breath after a deep or
#: clipped one that both BIDMC annotators mark; at half, 1.0, those were missed;
#: at 0.8 a 5 N posture step in a belt's exhale read as a breath) ...
RETREAT_FRAC = 0.85
#: ... then turned again by this fraction of that (a wiggle is not a turn) ...
TURN_FRAC = 0.5
#: ... and took at least this long to come back (a shallow breath's inhale or
#: exhale at up to 25 breaths/min, as in a second, smaller breath stacked on
#: an exhale; a heartbeat's notch on the detection signal, at 48 beats/min or
#: faster, comes back within about 0.6 s).
TURN_S = 0.8


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
        self._z = [0.0]  # the exponential mean's state, started at zero
        self._n = 0  # samples seen

    def process(self, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(d, level)``: ``y`` about its midline, and the running mean of ``|d|``."""
        d = self._hp.process(y)
        n = d.shape[0]
        if n <= LOOP_MAX:  # a live chunk: the plain loop, bit for bit lfilter's
            m = np.array(df2t_loop(self._abl[0], self._abl[1], np.abs(d).tolist(), self._z))
        else:
            m, z = sps.lfilter(*self._ab, np.abs(d), zi=np.array(self._z))
            self._z = [float(z[0])]
        k0 = self._n + 1
        self._n += n
        if self._decay**k0 < _UNBIASED:  # the start's weight is gone: 1 - decay**k is 1.0
            return d, m
        return d, m / (1.0 - self._decay ** (k0 + np.arange(n)))


#: Below this, ``1.0 - x`` rounds to exactly 1.0 (half an ulp of 1 is 2**-54;
#: a margin for ``**`` rounding).
_UNBIASED = 2.0**-56


#: ``(floor, cap, retreat)``: the hysteresis' bounds (:func:`hysteresis`) and
#: the size of a swing that turns back without crossing the midline
#: (:func:`scan_swing`).
Bounds = tuple[float, float, float]


@dataclass(slots=True)
class RecentSwings:
    """How far the recent breaths swung from the midline (peaks and troughs alike).

    The hysteresis bounds they set change only when a swing or the noise is
    added, so they are worked out then, not at every look.
    """

    sizes: deque[float] = field(default_factory=lambda: deque(maxlen=6))
    _noise: float = 0.0  # noise SD of the detection signal
    _bounds: Bounds = (1e-12, math.inf, math.inf)

    @property
    def noise(self) -> float:
        return self._noise

    @noise.setter
    def noise(self, value: float) -> None:
        self._noise = value
        self._bounds = self._work_out()

    def add(self, size: float) -> None:
        self.sizes.append(abs(size))
        self._bounds = self._work_out()

    def bounds(self) -> Bounds:
        """``(floor, cap)`` of the hysteresis."""
        return self._bounds

    def _work_out(self) -> Bounds:
        lo = max(NOISE_SDS * self._noise, 1e-12)
        if len(self.sizes) < 3:
            return lo, math.inf, math.inf
        typical = float(statistics.median(self.sizes))
        floor = max(lo, FLOOR_FRAC * typical)
        return floor, max(lo, CAP_FRAC * typical), max(2.0 * floor, RETREAT_FRAC * typical)


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


@dataclass(slots=True)
class Search:
    """The search for the next extremum: which side of the midline, and the
    running extremes of the swing since the last confirmation."""

    mode: int = 0  # +1 seeking a peak (above the midline, or a turn), -1 a trough, 0 not placed
    ext_i: int = -1  # the extreme of the cleaned signal ``y`` (global index) ...
    ext_v: float = math.nan  # ... and its value
    swing: float = 0.0  # largest |d| since the last confirmation
    top_i: int = -1  # the extreme of the detection signal ``d`` (its swing's sign) ...
    top_d: float = 0.0  # ... and its value

    fresh: bool = False  # the first swing since detection started (it may be a part)
    back_i: int = -1  # the furthest ``d`` went back from ``top_d`` since (global index) ...
    back_d: float = 0.0  # ... and its value
    turn_n: int = 1  # samples from the extreme to ``back_i`` for a turn (:func:`scan_swing`)
    turned: bool = False  # the last confirmation was a turn, not a crossing
    start_i: int = -1  # where the swing started (global index)

    def restart(self, mode: int, i: int, v: float, d: float) -> None:
        self.mode, self.ext_i, self.ext_v, self.swing, self.start_i = mode, i, v, abs(d), i
        self.top_i, self.top_d, self.fresh = i, d, False
        self.back_i, self.back_d = i, d

    def extend(self, y: FloatArray, d: FloatArray, g0: int) -> None:
        """Take in samples ``y``, ``d`` (global indices from ``g0``)."""
        if self.mode == 0 or y.shape[0] == 0:
            return
        up = self.mode > 0
        j = int(y.argmax()) if up else int(y.argmin())
        v = float(y[j])
        if (v > self.ext_v) if up else (v < self.ext_v):
            self.ext_i, self.ext_v = g0 + j, v
        k = int(d.argmax()) if up else int(d.argmin())
        dk = float(d[k])
        if (dk > self.top_d) if up else (dk < self.top_d):
            self.top_i, self.top_d, self.back_i, self.back_d = g0 + k, dk, g0 + k, dk
        rest = d[self.top_i - g0 :] if self.top_i >= g0 else d
        j = int(rest.argmin()) if up else int(rest.argmax())
        dj = float(rest[j])
        if (dj < self.back_d) if up else (dj > self.back_d):
            self.back_i, self.back_d = g0 + d.shape[0] - rest.shape[0] + j, dj
        self.swing = max(self.swing, float(np.abs(d).max()))


#: Longest stretch :func:`scan_swing` gives the plain loop (a live chunk: a
#: 1 s belt chunk is 25 working samples); above it the vectorised stages win
#: over the loop's cost per sample. (At 16, a 25-sample stretch took the
#: vector path, and 4 in 10 of those ran the loop as well, a turn being possible.)
SCAN_LOOP_MAX = 64


def scan_swing(
    search: Search, d: FloatArray, y: FloatArray, level: FloatArray, g0: int, bounds: Bounds
) -> tuple[int, float]:
    """Advance the placed ``search`` over ``d``, ``y``, ``level`` to the first crossing.

    Stages 2 and 3 in one step: the hysteresis per sample (:func:`hysteresis`
    with the swing's reach), the first sample that confirms the extremum
    sought (:func:`next_crossing`, or a turn: :func:`scan_swing_loop`), and
    the swing's extremes taken in up to it (:meth:`Search.extend`). ``g0``
    is the global index of ``d[0]``, ``bounds`` the hysteresis ``(floor,
    cap)`` and the turn's ``retreat``.

    Returns
    -------
    c : int
        Index of the confirming sample, -1 when none (all samples taken in).
    h_c : float
        The hysteresis at ``c`` (nan when none).

    The hot kernel: a live chunk (a few samples) runs the plain loop
    :func:`scan_swing_loop`, a long stretch :func:`scan_swing_vector`; the
    two give the same result (``tests/test_signal_breath.py``).
    """
    if d.shape[0] <= SCAN_LOOP_MAX:
        return scan_swing_loop(search, d, y, level, g0, bounds)
    return scan_swing_vector(search, d, y, level, g0, bounds)


def scan_swing_vector(
    search: Search, d: FloatArray, y: FloatArray, level: FloatArray, g0: int, bounds: Bounds
) -> tuple[int, float]:
    """:func:`scan_swing` by whole-array stages."""
    reach = swing_reach(d, search.mode, search.top_d)
    h = hysteresis(level, bounds[0], bounds[1], reach)
    c = next_crossing(d, h, search.mode)
    end = c + 1 if c >= 0 else d.shape[0]
    if _may_turn(search, d[:end], reach[:end] if reach is not None else None, bounds[2]):
        return scan_swing_loop(search, d, y, level, g0, bounds)
    search.extend(y[:end], d[:end], g0)
    search.turned = False
    return c, float(h[c]) if c >= 0 else math.nan


def _may_turn(search: Search, d: FloatArray, reach: FloatArray | None, retreat: float) -> bool:
    """Whether a turn (:func:`scan_swing_loop`) can confirm within ``d``: only
    once the swing has come back ``retreat`` from its extreme."""
    if reach is None or d.shape[0] == 0 or not math.isfinite(retreat):
        return False
    s = 1.0 if search.mode > 0 else -1.0
    if s * search.top_d - s * search.back_d >= retreat:
        return True
    return bool(np.any(reach - s * d >= retreat))


def scan_swing_loop(
    search: Search, d: FloatArray, y: FloatArray, level: FloatArray, g0: int, bounds: Bounds
) -> tuple[int, float]:
    """:func:`scan_swing` sample by sample (the plain reference; the cheaper on a few samples).

    Besides the midline crossing, an extremum is confirmed by a *turn*: the
    swing came back ``retreat`` (``bounds[2]``, :data:`RETREAT_FRAC` of the
    recent swings) from its extreme, taking at least ``search.turn_n``
    samples (:data:`TURN_S`), and has since turned again by
    :data:`TURN_FRAC` of that (``search.turned`` says so). A breath that
    does not reach the midline -- after a sigh the high-pass midline sits
    high for a while, and on a wandering baseline it lags -- is still a
    breath when it is as large as half a typical breath and as long as an
    inhale; a heartbeat's notch is neither.
    """
    floor, cap, retreat = bounds
    up = search.mode > 0
    s = 1.0 if up else -1.0
    ext_i, ext_v, top_i, top = search.ext_i, search.ext_v, search.top_i, search.top_d
    swing, back_i, back, turn_n = search.swing, search.back_i, search.back_d, search.turn_n
    turned = False
    turn_back = TURN_FRAC * retreat
    # the hysteresis is at least a positive floor (or NaN): a sample on the
    # swing's own side of the midline cannot cross, so it is worked out only
    # on the other side (or at a turn, which reports it)
    lazy_h = floor > 0.0
    c, h_c = -1, math.nan
    for i, (v, yi, lv) in enumerate(zip(d.tolist(), y.tolist(), level.tolist(), strict=True)):
        if (yi > ext_v) if up else (yi < ext_v):
            ext_i, ext_v = g0 + i, yi
        if (v > top) if up else (v < top):
            top_i, top, back_i, back = g0 + i, v, g0 + i, v
        elif (v < back) if up else (v > back):
            back_i, back = g0 + i, v
        if abs(v) > swing:
            swing = abs(v)
        # a turn: the swing came back ``retreat`` from its extreme, over at least
        # ``turn_n`` samples, and has now turned again by a good part of that
        turned = (
            s * (top - back) >= retreat and s * (v - back) >= turn_back and back_i - top_i >= turn_n
        )
        if turned or s * v < 0.0 or not lazy_h:
            h = max(min(SWING_FRAC * lv, cap, REACH_FRAC * (s * top)), floor)
            if turned or s * v < -h:
                c, h_c = i, h
                break
    search.ext_i, search.ext_v, search.top_i, search.top_d = ext_i, ext_v, top_i, top
    search.swing, search.back_i, search.back_d, search.turned = swing, back_i, back, turned
    return c, h_c


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
    t0 = t.item(0)  # (``item``: a Python float, without a numpy scalar's cost per operation)
    if n < 3:
        return t0
    y0 = y.item(0)
    dist = (y0 - y) if kind > 0 else (y - y0)  # >= 0: distance from the extreme
    dt_mean = (t.item(n - 1) - t0) / (n - 1)
    w = max(1, min(round(0.1 / dt_mean) if dt_mean > 0 else 1, (n - 1) // 2))
    slope = (dist[2 * w :] - dist[: n - 2 * w]) / (t[2 * w :] - t[: n - 2 * w])
    if slope.shape[0] == 0:
        return t0
    k = int(slope.argmax())
    slope_k = slope.item(k)
    if not slope_k > 0:
        return t0
    s = k + w  # the steepest point's sample
    t_s = t.item(s)
    foot = t_s - dist.item(s) / slope_k
    step_max = REFINE_MAX * (t_s - foot)
    foot = _refine_foot(foot, t[w : n - w], dist[w : n - w], slope, step_max)
    return min(max(foot, t0), t_s)


#: The foot's refinement step (:func:`_refine_foot`) is at most this fraction
#: of the steepest tangent's own reach (steepest point -> foot). On a smooth
#: turn the step is under a third of it (0.29 on a sinusoid), with a cardiac
#: ripple on the pause before a smooth inhale up to about 0.6; a longer step
#: is the ripple and a creeping pause setting the distance and the slope.
REFINE_MAX = 0.7


def _refine_foot(
    foot: float, t: FloatArray, dist: FloatArray, slope: FloatArray, step_max: float
) -> float:
    """One more tangent step, from the foot towards the extreme's level.

    At the end of a pause the signal is still at the extreme's level, so the
    foot stays where it is. On a smooth, rounded extreme (a sinusoid-like
    breath with no pause) the steepest tangent's foot lands about 9 % of the
    period past the true turn, 0.9 s at 6 breaths/min; this step halves that.
    (A further step halves it again but lets the heartbeat's ripple back in:
    on the BIDMC records it cost more jitter than it removed.)

    The step is at most ``step_max``: in a pause, the distance left at the
    foot is the heartbeat's ripple above the lowest dip, and the slope there
    the ripple's, so an unbounded step runs off back through the pause (on
    the BIDMC records it moved the onsets 0.5-1 s early on the breaths with a
    strong cardiac ripple).
    """
    if not t.shape[0] or foot <= t.item(0) or foot >= t.item(-1):
        return foot
    d = interp_at(foot, t, dist)
    sl = interp_at(foot, t, slope)
    return foot - min(d / sl, step_max) if d > 0 and sl > 0 else foot
