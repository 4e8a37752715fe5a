"""Causal breath detection from a belt, chest acceleration, RR intervals or a pressure ripple.

Two layers:

* a *front end* per source kind turns the raw stream into one cleaned breath
  signal at a working rate of at most ~50 Hz (block-mean decimation, causal
  band-limiting, for chest acceleration the projection on the axis that carries
  the breathing, for RR intervals a resampled tachogram) and reports its own
  phase delay so events can be back-dated exactly;
* :class:`BreathDetector` finds alternating extrema with an adaptive hysteresis
  (a fraction of the typical breath amplitude, never below the noise), refines
  each onset to the knee where the signal leaves its plateau, detects the
  polarity (inhale shorter than exhale, end-expiratory pause at the bottom), and
  labels per-sample phase with a slope trigger.

Everything is causal (no future samples) and chunking-invariant: statistics
change only at detected events, at fixed sample indices, or per sample through
kept filter state. The hot path is vectorised per chunk; the only Python loops
run over detected events.

Method names follow NeuroKit2 (``rsp_clean`` / ``rsp_peaks`` / ``rsp_phase``),
but nothing here looks ahead: NeuroKit2's cleaning is zero-phase and offline.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biofeedback.signal.filters import (
    BlockMean,
    Ewma,
    FloatArray,
    GridResampler,
    Interp,
    QualityMonitor,
    RingBuffer,
    SosFilter,
    bandpass_sos,
    ffill_nan,
    lowpass_sos,
    noise_sd,
    phase_delays_s,
)
from biofeedback.signal.types import Breath, BreathEvent, BreathOutput, Int8Array
from devices.stream import StreamKind
from devices.vocab import BreathPhase

__all__ = [
    "AccFrontEnd",
    "BeltFrontEnd",
    "BreathDetector",
    "BreathTracker",
    "FrontEnd",
    "RippleFrontEnd",
    "RrFrontEnd",
    "front_end_for",
]

_INHALE = BreathPhase.INHALE
_EXHALE = BreathPhase.EXHALE
_INH = np.int8(BreathPhase.INHALE)
_EXH = np.int8(BreathPhase.EXHALE)
_PAU = np.int8(BreathPhase.PAUSE)
_UNK = np.int8(BreathPhase.UNKNOWN)

# figures recomputed when read (BreathDetector._stale bits)
_STALE_DELAY = 1
_STALE_REGULARITY = 2
_STALE_INH_PERIOD = 4

_add_reduce = np.add.reduce
_multiply = np.multiply
_max_acc = np.maximum.accumulate
_min_acc = np.minimum.accumulate
_count_nonzero = np.count_nonzero

#: What a front end gives: times, cleaned signal, and the raw signal at the
#: working rate (its second differences measure the noise).
FrontOut = tuple[FloatArray, FloatArray, FloatArray]

#: High-pass that removes offsets (gravity, resting tone) from the ACC and
#: pressure sources: slow enough not to tilt a 2-3 s breath pause visibly
#: (a faster one lets the pause drift back toward the mean by several percent
#: of the breath, and the onset with it).
_SLOW_HP_HZ = 0.001

#: Working rate the front ends decimate to (at most twice this).
WORK_RATE_HZ = 25.0


def _decimation(fs: float) -> int:
    return max(1, int(fs // WORK_RATE_HZ))


def _hysteresis(frac: float, amp_typ: float, sigma: float) -> float:
    """The zigzag's hysteresis: a fraction of the typical breath, never below the noise."""
    return max(frac * amp_typ, 4.0 * sigma, 1e-12)


def _theta(amp_typ: float, period: float, slope_dt: float) -> float:
    """Slope threshold of the phase trigger: a quarter of a typical breath's steepest."""
    if not math.isfinite(amp_typ):
        return math.nan
    per = period if period > 0 else 6.0
    return 0.25 * math.pi * amp_typ / per * slope_dt


def _spread(st: Sequence[tuple[Any, ...]], k: int, n: int) -> FloatArray:
    """Field ``k`` of each labelling stretch, per sample (``n`` samples in all)."""
    if len(st) > 6:  # (a long chunk: one repeat beats a slice per stretch)
        return np.repeat(np.array([x[k] for x in st], dtype=np.float64), [x[0] for x in st])
    out = np.empty(n)
    i = 0
    for x in st:
        out[i : i + x[0]] = x[k]
        i += x[0]
    return out


def _div(num: float, den: float) -> float:
    """``num / den`` with numpy's float rules for a zero divisor (inf or NaN, no exception)."""
    if den:
        return num / den
    if num != num or num == 0:
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)


def _median(xs: Sequence[float]) -> float:
    """Median of a short sequence (faster than :func:`statistics.median` for a few items)."""
    s = sorted(xs)
    n = len(s)
    m = n // 2
    return s[m] if n % 2 else 0.5 * (s[m - 1] + s[m])


# --------------------------------------------------------------------------- front ends


class FrontEnd:
    """Turns one raw stream into a cleaned 1-D breath signal (base class).

    Attributes
    ----------
    fs : float
        Working rate of the output.
    prior : int
        Polarity to assume before any evidence (+1 inhale rises, 0 unknown).
    fixed_polarity : int or None
        Physiology fixes the polarity for some sources (RR: inhale shortens
        the intervals); None when it has to be detected.
    """

    fs: float
    prior: int = 0
    fixed_polarity: int | None = None
    sos: FloatArray

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        """``(t_out, y, raw)`` for a raw chunk (``values`` shape (n, channels))."""
        raise NotImplementedError

    def reset(self) -> None:
        """A gap: restart the filters on the next sample."""
        raise NotImplementedError

    def noise_to_output(self) -> float:
        """Factor from white input noise SD to its SD after the cleaning filter."""
        # equivalent noise bandwidth of the low-pass edge (the high-pass barely matters)
        return math.sqrt(min(1.0, 2.0 * 1.11 * self._lp_hz / self.fs))

    _delay_table: tuple[FloatArray, FloatArray] | None = None
    _delay_interp: Interp | None = None

    def delay(self, f_hz: float) -> float:
        """Phase delay of the cleaning at breath frequency ``f_hz``, seconds."""
        interp = self._delay_interp
        if interp is None:
            hi = min(1.0, 0.45 * self.fs)
            fs_ = np.geomspace(0.03, hi, 48)
            d = phase_delays_s(self.sos, fs_, self.fs)
            self._delay_table = (fs_, d)
            interp = self._delay_interp = Interp(fs_, d)  # np.interp's result, per event
        return interp(f_hz)

    _lp_hz: float = 1.2


class BeltFrontEnd(FrontEnd):
    """Belt force (or any single-channel respiration trace): decimate and low-pass.

    No high-pass: offsets and slow drift do not disturb the extremum detector,
    and a high-pass would tilt the end-expiratory plateau and move the onsets.

    Parameters
    ----------
    rate_hz : float
        Stream rate.
    channel : int
        Column to use.
    lp_hz : float
        Low-pass cutoff (keeps breathing up to ~40/min with its shape).
    """

    prior = 1  # a belt stretches on inhale

    def __init__(self, rate_hz: float, channel: int = 0, lp_hz: float = 1.2) -> None:
        self._dec = BlockMean(_decimation(rate_hz), 1)
        self.fs = rate_hz / self._dec.factor
        self._lp_hz = min(lp_hz, 0.4 * self.fs)
        self.sos = lowpass_sos(self._lp_hz, self.fs, 2)
        self._filt = SosFilter(self.sos, 1)
        self._last = np.zeros(1)
        self.channel = channel

    def reset(self) -> None:
        self._dec.reset()
        self._filt.reset()

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        x = values[:, self.channel]
        if math.isnan(_add_reduce(x)):  # a NaN somewhere (or inf - inf): fill it in
            x = ffill_nan(values[:, self.channel : self.channel + 1], self._last)[:, 0]
        else:
            self._last[0] = x[-1]
        tb, xb1 = self._dec.process1(t, x)
        if tb.shape[0] == 0:
            return tb, np.empty(0), np.empty(0)
        return tb, self._filt.process(xb1), xb1


class RippleFrontEnd(BeltFrontEnd):
    """The breathing ripple on a pelvic pressure probe (mean of its channels).

    A very gentle high-pass removes the resting tone (a steeper one would tilt
    the end-expiratory plateau and move the onsets); pelvic actions that last
    seconds still leak into the band, which is why this source ranks below
    the belt and the chest accelerometer.
    """

    prior = 0

    def __init__(self, rate_hz: float, n_channels: int = 1, lp_hz: float = 1.0) -> None:
        super().__init__(rate_hz, 0, lp_hz)
        self.sos = bandpass_sos(_SLOW_HP_HZ, self._lp_hz, self.fs, 1, 2)
        self._filt = SosFilter(self.sos, 1)
        self.n_channels = n_channels
        self._last = np.zeros(n_channels)

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        x = ffill_nan(values, self._last)
        x = x.mean(axis=1, keepdims=True) if x.shape[1] > 1 else x
        tb, xb = self._dec.process(t, x)
        if tb.size == 0:
            return tb, np.empty(0), np.empty(0)
        xb1 = xb[:, 0]
        return tb, self._filt.process(xb1), xb1


class AccFrontEnd(FrontEnd):
    """Chest acceleration (3 axes): the projection that carries the breathing.

    The axes are block-mean decimated, low-passed (1 Hz: the heartbeat drops
    out) with a very slow high-pass (gravity drops out without tilting the
    breath's plateaus), and projected on the principal axis of the running
    covariance of their *differences* (time constant ``tau_s``): differences
    weigh the breathing above slow posture drift. The axis is found once
    (eigendecomposition) and then tracked once per second of signal, at fixed
    sample indices, by power iterations from the axis in use: the covariance
    changes slowly, the sign stays continuous, and a few scalar steps cost far
    less than a decomposition per chunk. The detector then finds the
    breathing's polarity on the projection.

    Parameters
    ----------
    rate_hz : float
        Stream rate (Polar H10: 25–200 Hz).
    tau_s : float
        Memory of the covariance.
    """

    prior = 0

    def __init__(self, rate_hz: float, tau_s: float = 20.0, lp_hz: float = 1.0) -> None:
        self._dec = BlockMean(_decimation(rate_hz), 3)
        self.fs = rate_hz / self._dec.factor
        self._lp_hz = min(lp_hz, 0.4 * self.fs)
        self.sos = bandpass_sos(_SLOW_HP_HZ, self._lp_hz, self.fs, 1, 2)
        self._filt = SosFilter(self.sos, 3)
        self._prev = np.zeros(3)
        self._cov = Ewma(tau_s, self.fs, 6)
        self._scale = Ewma(3.0 * tau_s, self.fs, 1)
        self._block = max(1, round(self.fs))  # axis update period: 1 s of samples
        self._n = 0  # working samples seen
        self._axis = np.zeros(3)
        self._last = np.zeros(3)
        self._iu = np.triu_indices(3)
        self._power_steps = 2  # per axis update
        # posture: a change of the gravity vector larger than a fraction of
        # gravity within ``_jump_n`` samples moves the baseline taken off
        self._jump_n = max(1, round(0.5 * self.fs))
        self._reset_posture()

    def _reset_posture(self) -> None:
        self._base: FloatArray | None = None  # gravity, as of the last posture change
        self._jump2 = math.inf  # squared size of a posture change (set from gravity)
        self._tail = np.empty((0, 3))  # the last _jump_n working samples

    def reset(self) -> None:
        self._dec.reset()
        self._filt.reset()
        self._cov.reset()
        self._scale.reset()
        self._n = 0
        self._axis = np.zeros(3)
        self._reset_posture()

    def _take_off_gravity(self, xb: FloatArray) -> FloatArray:
        """``xb`` minus the gravity of the current posture.

        Gravity is taken off before the band-pass as a piecewise-constant
        baseline, moved to the current sample whenever the vector changed by
        more than a fifth of gravity within half a second (sitting up, lying
        down): the slow high-pass alone would ring for minutes after such a
        step (its time constant is ~160 s) and bury the breathing.
        """
        m = xb.shape[0]
        if self._base is None:
            self._base = xb[0].copy()
            g2 = float(xb[0] @ xb[0])
            # a sensor that reports no gravity has no posture steps to follow
            self._jump2 = 0.04 * g2 if g2 > 0.0 else math.inf
        k = self._jump_n
        tail = self._tail
        # each sample against the one k samples before (the stream's first one early on)
        if tail.shape[0] == k and m >= k:  # (the usual case: no gather needed)
            d = np.empty_like(xb)
            np.subtract(xb[:k], tail, out=d[:k])
            np.subtract(xb[k:], xb[: m - k], out=d[k:])
            self._tail = xb[m - k :].copy()
        else:
            ext = np.concatenate((tail, xb))
            ref = np.arange(m) + (tail.shape[0] - k)
            np.maximum(ref, 0, out=ref)
            d = xb - ext[ref]
            self._tail = ext[-k:].copy()
        jump = np.einsum("ij,ij->i", d, d) > self._jump2
        if not jump.any():
            return xb - self._base
        idx = np.where(jump, np.arange(m), -1)
        np.maximum.accumulate(idx, out=idx)
        base = np.where((idx >= 0)[:, np.newaxis], xb[np.maximum(idx, 0)], self._base)
        self._base = base[m - 1].copy()
        return xb - base

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        x = ffill_nan(values[:, :3], self._last)
        tb, xb = self._dec.process(t, x)
        m = tb.shape[0]
        if m == 0:
            return tb, np.empty(0), np.empty(0)
        bp = self._filt.process(self._take_off_gravity(xb))  # (m, 3)
        dv = np.empty_like(bp)
        np.subtract(bp[1:], bp[:-1], out=dv[1:])
        np.subtract(bp[0], bp[0] if self._n == 0 else self._prev, out=dv[0])
        self._prev = bp[m - 1].copy()
        # Motion jolts are far steeper than breathing: cap each sample's weight
        # at a few times the typical step so one jolt cannot swing the axis.
        mag = np.sqrt(np.einsum("ij,ij->i", dv, dv))
        typ = self._scale.process(mag)
        w = np.minimum(1.0, 3.0 * typ / np.maximum(mag, 1e-12))
        dv *= w[:, np.newaxis]
        prods = dv[:, self._iu[0]] * dv[:, self._iu[1]]  # xx xy xz yy yz zz
        cov = self._cov.process(prods)
        # the axis changes at global sample indices that are multiples of the
        # block; the axis estimated at a boundary applies from the next sample on
        n0 = self._n
        self._n = n0 + m
        first = (-n0) % self._block  # local index of the first boundary
        if first >= m:  # no boundary in this chunk: one axis throughout
            axes: FloatArray = self._axis[np.newaxis]
            return tb, np.einsum("ij,ij->i", bp, np.broadcast_to(axes, bp.shape)), xb[:, 0]
        bounds = range(first, m, self._block)
        nb = len(bounds)
        table = [self._axis.tolist()]
        for i, (xx, xy, xz, yy, yz, zz) in enumerate(cov[first :: self._block].tolist()):
            p0, p1, p2 = table[i]
            if p0 == 0.0 and p1 == 0.0 and p2 == 0.0:
                # the first estimate: the principal axis outright
                cm = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
                if np.isfinite(cm).all():
                    p0, p1, p2 = np.linalg.eigh(cm)[1][:, 2].tolist()
            else:
                # then tracked: power iterations from the axis in use (the
                # covariance changes slowly; the sign stays continuous, as
                # the covariance is positive semi-definite)
                for _ in range(self._power_steps):
                    q0 = xx * p0 + xy * p1 + xz * p2
                    q1 = xy * p0 + yy * p1 + yz * p2
                    q2 = xz * p0 + yz * p1 + zz * p2
                    nrm = math.sqrt(q0 * q0 + q1 * q1 + q2 * q2)
                    if not 0.0 < nrm < math.inf:  # a flat or broken stretch: keep the axis
                        break
                    p0, p1, p2 = q0 / nrm, q1 / nrm, q2 / nrm
            table.append([p0, p1, p2])
        axes = np.empty((m, 3))
        axes[: first + 1] = table[0]
        for i in range(nb):
            lo_i = bounds[i] + 1
            axes[lo_i : lo_i + self._block] = table[i + 1]
        self._axis = np.array(table[nb])
        y = np.einsum("ij,ij->i", bp, axes)
        return tb, y, xb[:, 0]


class RrFrontEnd(FrontEnd):
    """Respiratory sinus arrhythmia from beat-to-beat intervals.

    RR chunks have beat times as ``t`` and intervals (seconds) as values. The
    tachogram is cleaned of implausible beats, resampled onto a 4 Hz grid and
    band-passed; inhaling speeds the heart, so inhale is a *fall* of the RR
    interval (fixed polarity -1). The heart's response lags the breath by a
    fraction of a second, so RR onsets are the least precise.
    """

    fixed_polarity = -1
    prior = -1

    def __init__(self, grid_hz: float = 4.0, lp_hz: float = 0.6) -> None:
        self.fs = grid_hz
        self._lp_hz = lp_hz
        self.sos = bandpass_sos(0.05, lp_hz, grid_hz, 1, 2)
        self._filt = SosFilter(self.sos, 1)
        self._grid = GridResampler(grid_hz, max_gap_s=3.0)
        self._ref: float | None = None  # running typical RR for outlier rejection

    def reset(self) -> None:
        self._grid.reset()
        self._filt.reset()

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        rr = np.asarray(values[:, 0], dtype=np.float64)
        ok = np.isfinite(rr) & (rr > 0.25) & (rr < 2.5)
        if self._ref is not None:
            # ectopic or missed beats: more than 30 % off the running typical interval
            ok &= np.abs(rr - self._ref) < 0.3 * self._ref
        t, rr = t[ok], rr[ok]
        if rr.size:
            self._ref = float(np.median(rr)) if self._ref is None else self._ref
            # a slow update per accepted beat (vectorised geometric weights)
            w = 0.9 ** np.arange(rr.size, 0, -1)
            self._ref = float(self._ref * 0.9**rr.size + 0.1 * np.dot(w / 0.9, rr))
        tg, vg, restarted = self._grid.process(t, rr)
        if restarted:
            self._filt.reset()
        if tg.size == 0:
            return tg, np.empty(0), np.empty(0)
        return tg, self._filt.process(vg), vg


def front_end_for(kind: StreamKind, rate_hz: float | None, n_channels: int = 1) -> FrontEnd:
    """The front end for a breath source of ``kind``.

    Raises
    ------
    ValueError
        For a kind that carries no breathing, or a missing rate.
    """
    if kind is StreamKind.RR:
        return RrFrontEnd()
    if rate_hz is None or not rate_hz > 0:
        raise ValueError(f"a {kind} breath source needs a positive rate, got {rate_hz!r}")
    if kind is StreamKind.BREATH_FORCE or kind is StreamKind.OTHER:
        return BeltFrontEnd(rate_hz)
    if kind is StreamKind.ACC:
        if n_channels < 3:
            raise ValueError(f"an ACC breath source needs 3 axes, got {n_channels}")
        return AccFrontEnd(rate_hz)
    if kind is StreamKind.PRESSURE:
        return RippleFrontEnd(rate_hz, n_channels)
    raise ValueError(f"no breath front end for stream kind {kind!s}")


# --------------------------------------------------------------------------- detector


@dataclass(slots=True)
class _Extremum:
    kind: int  # +1 peak, -1 trough (in the raw orientation)
    idx: int  # global index of the extreme sample
    value: float
    t: float  # back-dated onset (knee, delay-compensated)
    t_detected: float
    phase: BreathPhase  # the onset it was reported as


class BreathDetector:
    """Adaptive-hysteresis breath onset detector on a cleaned breath signal.

    Parameters
    ----------
    fs : float
        Rate of the cleaned signal.
    polarity : int or None
        +1 (inhale rises) or -1 (inhale falls) to fix it; None to detect it.
    prior : int
        Polarity assumed while undecided (0 labels as +1 but decides freely;
        +1 or -1 need stronger contrary evidence to flip).
    delay : callable, optional
        ``f_hz -> seconds``: the cleaning's delay at the breath frequency,
        subtracted from event times (back-dating).
    frac : float
        Hysteresis as a fraction of the typical peak-to-trough amplitude.
    boot_s : float
        Signal needed before the first detection (to learn an amplitude).
    history_s : float
        Signal kept for back-dating and the polarity evidence.
    noise_gain : float
        Factor from the raw signal's white noise to the cleaned signal's.
    """

    def __init__(
        self,
        fs: float,
        *,
        polarity: int | None = None,
        prior: int = 0,
        delay: Callable[[float], float] | None = None,
        frac: float = 0.25,
        boot_s: float = 8.0,
        history_s: float = 60.0,
        noise_gain: float = 1.0,
    ) -> None:
        if not fs > 0:
            raise ValueError(f"fs must be a strictly positive number, {fs!r} is invalid")
        if polarity not in (None, 1, -1):
            raise ValueError(f"polarity must be +1, -1 or None, {polarity!r} is invalid")
        self.fs = fs
        self._fixed = polarity
        self._prior = prior
        self.polarity = polarity if polarity is not None else prior
        self._delay_fn = delay
        self.frac = frac
        self._boot_n = max(8, round(boot_s * fs))
        # the cleaned signal, and the raw one beside it (its noise is measured at events)
        self._ring = RingBuffer(max(round(history_s * fs), self._boot_n * 2), aux=True)
        self._noise_gain = noise_gain
        self._noise_n = max(16, round(10.0 * fs))  # raw samples the noise is measured on
        self._slope_k = max(1, round(0.25 * fs))
        self._slope_dt = self._slope_k / fs  # (seconds the slope is taken over)
        self._arange = np.arange(self._ring.capacity + 1)
        # hot loops slice the rings' storage directly (global index g at g - _off)
        self._T, self._Y = self._ring.storage()
        self._R = self._ring.aux_storage()
        self._off = 0
        self._half = self._ring.capacity // 2
        self._win = max(32, round(4.0 * fs))  # samples the zigzag looks ahead per step
        self._knee_w = max(1, round(0.2 * fs))
        self._pre_n = max(16, round(2.0 * fs))  # stretches short enough for the cheap look
        # a stretch is at most one search window: NaN for its missing extremes
        self._nan = np.full(self._win, np.nan)
        self._t_sorted = False  # the chunk being searched has its times in order (checked)
        self._reset_state()

    # ------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        self._started = False
        self._boot_at = self._ring.total + self._boot_n - 1  # global index of the next boot check
        self._mode = 0  # 0: first extreme either way; +1 seeking a peak; -1 seeking a trough
        self._max_v = -math.inf
        self._max_i = -1
        self._min_v = math.inf
        self._min_i = -1
        self._h = math.inf
        self._amp_typ = math.nan
        self._amps: deque[float] = deque(maxlen=8)
        self._inh_amps: deque[float] = deque(maxlen=8)
        self._periods: deque[float] = deque(maxlen=8)
        self._sigma = 0.0
        self._last_event_t = -math.inf  # detection time of the last extreme
        self._move_g = -1  # global index of the last sample the slope trigger fired on
        self._move_t = -math.inf  # its time
        self._events: deque[_Extremum] = deque(maxlen=4)
        self._delays: deque[float] = deque(maxlen=10)
        self._delay_mean = math.nan
        self._n_events = 0
        self._comp_per = math.nan  # the period the delay compensation is for
        self._comp = 0.0
        self._ev_hist: deque[float] = deque(maxlen=8)
        self._phase = _UNK
        self._last_inhale: float | None = None
        self._inhale_onsets: deque[float] = deque(maxlen=7)
        self._period = math.nan
        self._inh_period = math.nan
        self._regularity: float | None = None
        self._stale = 0  # _STALE_* bits: figures to recompute when read
        # (theta, pause band, sign) for the stretches, as of the last event; None: work out
        self._params: tuple[float, float, int] | None = None
        self._ring_start = self._ring.total
        self._label_from = 0
        self._t_first = -math.inf
        # per stretch between events: (length, slope threshold, orientation,
        # running extreme while seeking the bottom, pause band) -- as they
        # were when the stretch began, so labels do not depend on chunking
        self._stretches: list[tuple[int, float, int, FloatArray | None, float]] = []

    def reset(self) -> None:
        """A gap in the signal: start over, keeping what was learned about the person."""
        amps, inh, periods, pol, ev = (
            self._amps,
            self._inh_amps,
            self._periods,
            self.polarity,
            self._ev_hist,
        )
        self._ring.clear()
        self._reset_state()
        self._amps, self._inh_amps, self._periods = amps, inh, periods
        self.polarity, self._ev_hist = pol, ev
        if amps:
            self._amp_typ = _median(amps)
        if periods:
            self._period = _median(periods)

    # ------------------------------------------------------------------ figures

    @property
    def period_s(self) -> float:
        """Typical breath period (NaN until two onsets of a kind)."""
        return self._period

    @property
    def amplitude(self) -> float:
        """Typical peak-to-trough amplitude of the cleaned signal."""
        return self._amp_typ

    # Figures only read at a chunk's end are brought up to date when read (the
    # same arithmetic on the same recent values as at the latest event): a long
    # chunk's events then do not each pay for them.

    @property
    def delay_s(self) -> float:
        """Typical detection delay (mean over the recent events)."""
        if self._stale & _STALE_DELAY:
            self._stale &= ~_STALE_DELAY
            delays = self._delays
            self._delay_mean = sum(delays) / len(delays)
        return self._delay_mean

    @property
    def regularity(self) -> float | None:
        """1 - coefficient of variation of the recent breath periods (0..1)."""
        if self._stale & _STALE_REGULARITY:
            self._stale &= ~_STALE_REGULARITY
            periods = self._periods
            n = len(periods)
            mean = sum(periods) / n
            var = sum([(p - mean) ** 2 for p in periods]) / n
            cv = math.sqrt(var) / mean if mean > 0 else 1.0
            self._regularity = min(1.0, max(0.0, 1.0 - cv))
        return self._regularity

    def rate_bpm(self, now: float) -> float | None:
        """Breath rate now; falls during a breath hold rather than freezing."""
        if self._stale & _STALE_INH_PERIOD:
            self._stale &= ~_STALE_INH_PERIOD
            self._inh_period = _median([b - a for a, b in itertools.pairwise(self._inhale_onsets)])
        per = self._inh_period
        if not math.isfinite(per) or per <= 0:
            return None
        since = now - self._inhale_onsets[-1]
        if since > 2.0 * per:
            per = since
        return 60.0 / per

    @property
    def midline(self) -> float:
        """Level halfway between the last trough and peak (display centre)."""
        ev = self._events
        if len(ev) >= 2:
            return 0.5 * (ev[-1].value + ev[-2].value)
        return 0.0

    @property
    def noise_raw(self) -> float:
        """Noise SD of the raw signal at the last event (0 before)."""
        return self._sigma / self._noise_gain if self._noise_gain > 0 else 0.0

    @property
    def last_move_t(self) -> float:
        """When the signal last moved like breathing (its slope past the phase
        trigger, either way); -inf before. A breath hold stops it at once,
        where onsets only stop coming."""
        return self._move_t

    @property
    def last_event_t(self) -> float:
        """When the last onset was confirmed (-inf before any)."""
        return self._last_event_t

    @property
    def sign(self) -> int:
        """+1 or -1: how to turn the raw signal so inhale is up."""
        return -1 if self.polarity < 0 else 1

    # ------------------------------------------------------------------ processing

    def process(
        self, t: FloatArray, y: FloatArray, raw: FloatArray
    ) -> tuple[list[BreathEvent], list[Breath], Int8Array]:
        """Detect in one chunk of the cleaned signal.

        Parameters
        ----------
        t, y : ndarray, shape (n,)
            Times and cleaned breath signal.
        raw : ndarray, shape (n,)
            The signal before cleaning, at the same rate (its noise is
            measured at events and scaled by ``noise_gain``).

        Returns
        -------
        events : list of BreathEvent
            Onsets confirmed in this chunk (back-dated).
        breaths : list of Breath
            Breaths completed (exhale onset confirmed) in this chunk.
        phase : ndarray of int8, shape (n,)
            Phase per sample.
        """
        n = int(t.shape[0])
        half = self._half
        if n > half:
            # the history must hold a whole chunk: feed a long one in pieces
            # (the output does not depend on how the signal is chunked); once
            # started, the rest in one go (labels in one pass, same pieces)
            ev_all: list[BreathEvent] = []
            br_all: list[Breath] = []
            ph_all: list[Int8Array] = []
            i = 0
            while i < n:
                if self._started and n - i > half:
                    ev, br, ph = self._process_long(t[i:], y[i:], raw[i:])
                    i = n
                else:
                    ev, br, ph = self.process(t[i : i + half], y[i : i + half], raw[i : i + half])
                    i += half
                ev_all += ev
                br_all += br
                ph_all.append(ph)
            return ev_all, br_all, np.concatenate(ph_all)
        events: list[BreathEvent] = []
        breaths: list[Breath] = []
        if n == 0:
            return events, breaths, np.empty(0, dtype=np.int8)
        if not math.isfinite(self._t_first):
            self._t_first = float(t[0])
        ring = self._ring
        g0 = ring.total
        ring.append(t, y, raw)
        self._off = ring.total - ring._len  # global index of storage slot 0
        g1 = g0 + n
        if not self._started:
            while not self._started and self._boot_at < g1:
                self._try_boot(self._boot_at)
            if not self._started:
                return events, breaths, np.full(n, _UNK, dtype=np.int8)
            start = self._ring_start
        else:
            start = g0
        phase = np.empty(n, dtype=np.int8)  # _label writes every sample
        self._run(start, g1, g0, phase, events, breaths)
        mg = self._move_g
        if mg >= self._off:
            self._move_t = self._T.item(mg - self._off)
        return events, breaths, phase

    def _process_long(
        self, t: FloatArray, y: FloatArray, raw: FloatArray
    ) -> tuple[list[BreathEvent], list[Breath], Int8Array]:
        """A chunk longer than half the history, once started: the search runs
        piece by piece through the history, the labels in one pass over the chunk."""
        n = int(t.shape[0])
        half = self._half
        ring = self._ring
        g0 = ring.total
        first = ring.total - ring._len
        # the samples just before the chunk: the slope reference of its first ones
        before = self._Y[max(g0 - self._slope_k, first) - first : g0 - first].copy()
        events: list[BreathEvent] = []
        breaths: list[Breath] = []
        self._stretches = []
        self._st_ext = False
        # times in order (the contract): a window's last time is its latest
        self._t_sorted = bool((t[1:] >= t[:-1]).all())
        for i in range(0, n, half):
            tp = t[i : i + half]
            gp = ring.total
            ring.append(tp, y[i : i + half], raw[i : i + half])
            self._off = ring.total - ring._len
            self._zigzag(gp, gp + tp.shape[0], events, breaths)
        self._t_sorted = False
        phase = np.empty(n, dtype=np.int8)
        self._label(g0, g0 + n, g0, phase, y, before)
        if self._move_g >= g0:
            self._move_t = float(t[self._move_g - g0])
        return events, breaths, phase

    def _try_boot(self, at: int) -> None:
        lo = max(self._ring.first, at - self._boot_n + 1)
        w = self._ring.x(lo, at + 1)
        p5, p95 = np.percentile(w, [5.0, 95.0])
        rng = float(p95 - p5)
        sigma = self._noise_at(at)
        if rng > 0 and rng > 8.0 * sigma:
            self._started = True
            self._sigma = sigma
            if not math.isfinite(self._amp_typ):
                self._amp_typ = rng
            self._params = None
            self._set_h()
            self._ring_start = lo
            self._label_from = at + 1
        else:
            self._boot_at = at + self._boot_n // 2

    def _noise_at(self, i: int) -> float:
        """Noise SD of the cleaned signal, measured on the raw samples up to ``i``."""
        off = self._off
        raw = self._R[max(i + 1 - self._noise_n - off, 0) : max(i + 1 - off, 0)]
        return noise_sd(raw) * self._noise_gain

    def _set_h(self) -> None:
        self._h = _hysteresis(self.frac, self._amp_typ, self._sigma)

    def _run(
        self,
        g_start: int,
        g_end: int,
        g_out: int,
        phase: Int8Array,
        events: list[BreathEvent],
        breaths: list[Breath],
    ) -> None:
        """Zigzag over global samples ``g_start..g_end-1``; phases for ``g_out..``."""
        self._stretches = []
        self._st_ext = False  # some stretch seeks the bottom (pause labels)
        self._zigzag(g_start, g_end, events, breaths)
        self._label(g_start, g_end, g_out, phase)

    def _zigzag(
        self, g_start: int, g_end: int, events: list[BreathEvent], breaths: list[Breath]
    ) -> None:
        """The extremum search with adaptive hysteresis; notes each stretch's labelling.

        The search looks at most ``_win`` samples ahead per step: the first
        confirmation and the running extremes over a prefix are those over the
        whole stretch, so a long chunk gives the same result at a fraction of
        the array work.

        Each confirmed extreme is reported here too (the knee, the figures, the
        polarity evidence): written flat, with the search's state in locals
        written back at the end, as this Python is most of a long chunk's cost.
        """
        Y, T, off = self._Y, self._T, self._off
        yitem, titem = Y.item, T.item
        e_all = g_end - off
        t_end = titem(e_all - 1)
        win, pre_n = self._win, self._pre_n
        stretches = self._stretches
        t_sorted = self._t_sorted
        # the search's state, in locals (written back below)
        mode = self._mode
        max_v, max_i, min_v, min_i = self._max_v, self._max_i, self._min_v, self._min_i
        h_cur = self._h
        period = self._period
        last = self._last_event_t
        amp_typ = self._amp_typ
        sigma = self._sigma
        polarity = self.polarity
        evs = self._events
        hist = self._ev_hist
        need_n, need_e = (5, 0.3) if self._prior == 0 else (6, 0.4)
        # stretch parameters change only at events (kept from the last search)
        params = self._params
        if params is None:
            sign0 = -1 if polarity < 0 else 1
            params = (_theta(amp_typ, period, self._slope_dt), 0.2 * amp_typ, sign0)
        theta, band, sign = params
        event = True  # (the figures below change only at events)
        p = g_start
        while p < g_end:
            if event:
                # the hysteresis sinks once no event came for 1.5 periods
                event = False
                per = period if period > 0 else 6.0
                sink_at = last + 1.5 * per
                hf = max(0.08 * amp_typ, 4.0 * sigma, 1e-12)  # its floor
                watch = last > -math.inf and t_end - last > 1.5 * per
            a_loc = p - off if p > off else 0
            e_loc = a_loc + win if a_loc + win < e_all else e_all
            seg = Y[a_loc:e_loc]
            nseg = e_loc - a_loc
            h: float | FloatArray = h_cur
            fixed_h = True  # h is the hysteresis of the last event (no sinking yet)
            if watch:
                # no event for long: let the hysteresis sink toward its floor
                if t_sorted:
                    t_max = titem(e_loc - 1)
                else:
                    t_max = titem(a_loc + int(T[a_loc:e_loc].argmax()))
                if t_max - sink_at <= 0.0:
                    # (not yet in this window: exp(-0.0) is 1, the same h for every sample)
                    if not h_cur >= hf:
                        h = hf if hf == hf and h_cur == h_cur else math.nan
                        fixed_h = False
                else:
                    over = np.maximum(T[a_loc:e_loc] - sink_at, 0.0)
                    h = np.maximum(h_cur * np.exp(over * (-1.0 / per)), hf)
                    fixed_h = False
            if mode != 0 and fixed_h and nseg <= pre_n:
                # Cheap look first (a short stretch: a long one nearly always
                # holds an event): with a fixed hysteresis, no sample can confirm
                # while the whole stretch stays within h of the running extreme
                # (argmax/argmin pick the same first extremes the running
                # accumulation would; the comparisons bound it exactly).
                if mode > 0:
                    i_x = int(seg.argmax())
                    v_x = yitem(a_loc + i_x)
                    top = v_x if v_x > max_v else max_v
                    quiet = yitem(a_loc + int(seg.argmin())) >= top - h
                else:
                    i_x = int(seg.argmin())
                    v_x = yitem(a_loc + i_x)
                    bot = v_x if v_x < min_v else min_v
                    quiet = yitem(a_loc + int(seg.argmax())) <= bot + h
                if quiet:
                    run_ext = None
                    if mode == -sign:  # seeking the bottom of the breath: the pause needs it
                        if mode > 0:
                            run_ext = _max_acc(seg)
                            np.maximum(run_ext, max_v, out=run_ext)
                        else:
                            run_ext = _min_acc(seg)
                            np.minimum(run_ext, min_v, out=run_ext)
                        self._st_ext = True
                    stretches.append((nseg, theta, sign, run_ext, band))
                    if mode > 0:
                        if v_x > max_v:
                            max_v, max_i = v_x, p + i_x
                    elif v_x < min_v:
                        min_v, min_i = v_x, p + i_x
                    p += nseg
                    continue
            if mode > 0:
                rmax = _max_acc(seg)
                if not max_v <= yitem(a_loc):  # (else the carried max changes nothing)
                    np.maximum(rmax, max_v, out=rmax)
                cond = seg < rmax - h
                c = int(cond.argmax())
                if not cond[c]:
                    c = -1
                rmin = None
                hi_first = True
            elif mode < 0:
                rmin = _min_acc(seg)
                if not min_v >= yitem(a_loc):  # (else the carried min changes nothing)
                    np.minimum(rmin, min_v, out=rmin)
                cond = seg > rmin + h
                c = int(cond.argmax())
                if not cond[c]:
                    c = -1
                rmax = None
                hi_first = False
            else:
                rmax = _max_acc(seg)
                np.maximum(rmax, max_v, out=rmax)
                cond = seg < rmax - h
                c_hi = int(cond.argmax())
                if not cond[c_hi]:
                    c_hi = -1
                rmin = _min_acc(seg)
                np.minimum(rmin, min_v, out=rmin)
                cond = seg > rmin + h
                c_lo = int(cond.argmax())
                if not cond[c_lo]:
                    c_lo = -1
                # first extreme: whichever confirms first
                hi_first = c_hi >= 0 and (c_lo < 0 or c_hi <= c_lo)
                c = c_hi if hi_first else c_lo
            end = c + 1 if c >= 0 else nseg
            # phase labels for this stretch use the state before the event: note
            # the stretch's parameters; the labels are computed once, after the loop
            run_ext = None
            if mode == -sign:  # seeking the bottom of the breath
                run_ext = (rmin if sign > 0 else rmax)[:end]  # type: ignore[index]
                self._st_ext = True
            stretches.append((end, theta, sign, run_ext, band))
            if c < 0:
                # no confirmation: carry the running extremes
                if rmax is not None and rmax.item(nseg - 1) > max_v:
                    j = int(seg.argmax())
                    max_v, max_i = yitem(a_loc + j), p + j
                if rmin is not None and rmin.item(nseg - 1) < min_v:
                    j = int(seg.argmin())
                    min_v, min_i = yitem(a_loc + j), p + j
                p += nseg
                continue
            i_conf = p + c
            if hi_first:
                j = int(seg[: c + 1].argmax())
                v = yitem(a_loc + j)
                if v > max_v:
                    max_v, max_i = v, p + j
                kind, i_ext, v_ext = 1, max_i, max_v
                mode = -1
                min_v, min_i = yitem(a_loc + c), i_conf
            else:
                j = int(seg[: c + 1].argmin())
                v = yitem(a_loc + j)
                if v < min_v:
                    min_v, min_i = v, p + j
                kind, i_ext, v_ext = -1, min_i, min_v
                mode = 1
                max_v, max_i = yitem(a_loc + c), i_conf

            # ---------------------------------------------------- the event
            n_ev = self._n_events
            if n_ev & 7 == 0 or sigma == 0.0:
                sigma = self._noise_at(i_conf)  # slow to change: every eighth event
            self._n_events = n_ev + 1
            t_conf = titem(i_conf - off)
            if period != self._comp_per:  # (NaN never equals: recomputed until a period exists)
                self._comp_per = period
                f = 1.0 / period if math.isfinite(period) and period > 0 else 0.25
                self._comp = self._delay_fn(f) if self._delay_fn is not None else 0.0

            # The knee: when the signal left the extreme's plateau (sub-sample).
            # The onset is where the signal *leaves* the extreme: the end of a
            # plateau (a pause or a hold), or the vertex of a smooth extremum.
            # Take the last sample within a noise band of the extreme (the
            # departure) and step back by what a parabola through it would need
            # to reach its vertex: 2 * distance / slope. A sharp knee has a steep
            # departure, so the step is small; a smooth top a long one. The
            # distance from the extreme is read per sample: the band is left a
            # few samples before the confirmation.
            lo = i_ext - off if i_ext > off else 0
            hi = i_conf + 1 - off if i_conf + 1 > off else 0
            m = hi - lo
            if m < 2:
                knee = titem(lo) if m else t_conf
            else:
                # noise band: above the noise, but never a large part of the breath (a
                # noise estimate inflated by, say, the heartbeat must not smear the knee)
                delta = min(max(5.0 * sigma, 0.03 * amp_typ), 0.12 * amp_typ)
                jj = hi - 1  # the last sample in the band (storage index)
                if kind > 0:
                    while jj >= lo and not v_ext - yitem(jj) <= delta:
                        jj -= 1
                else:
                    while jj >= lo and not yitem(jj) - v_ext <= delta:
                        jj -= 1
                if jj < lo:  # the extreme itself is older than the history
                    knee = titem(lo)
                elif jj >= hi - 1:
                    knee = titem(jj)
                else:
                    w = self._knee_w
                    ia = jj - w if jj - w > lo else lo
                    ib = jj + w if jj + w < hi - 1 else hi - 1
                    if kind > 0:
                        d_ia, d_ib, d_j = v_ext - yitem(ia), v_ext - yitem(ib), v_ext - yitem(jj)
                    else:
                        d_ia, d_ib, d_j = yitem(ia) - v_ext, yitem(ib) - v_ext, yitem(jj) - v_ext
                    tj = titem(jj)
                    slope = _div(d_ib - d_ia, titem(ib) - titem(ia))
                    if slope <= 0:
                        knee = tj
                    else:
                        back = 2.0 * (d_j if d_j > 0.0 else 0.0) / slope
                        # never further back than the middle of the band (a smooth
                        # extremum's vertex); the band's first sample is nearly
                        # always the extreme itself
                        k = lo
                        if kind > 0:
                            while not v_ext - yitem(k) <= delta:
                                k += 1
                        else:
                            while not yitem(k) - v_ext <= delta:
                                k += 1
                        half = 0.5 * (tj - titem(k))
                        if half < back:
                            back = half
                        t0 = titem(lo)
                        knee = tj - back if tj - back > t0 else t0
            t_ev = knee - self._comp

            prev = evs[-1] if evs else None
            if t_ev < self._t_first:  # nothing happened before the stream began
                t_ev = self._t_first
            if prev is not None:
                if t_ev < prev.t + 1e-3:  # keep onsets in order
                    t_ev = prev.t + 1e-3
                amps = self._amps
                amps.append(abs(v_ext - prev.value))
                amp_typ = _median(amps)
            h_cur = _hysteresis(self.frac, amp_typ, sigma)
            if len(evs) >= 2 and evs[-2].kind == kind:
                a_ev = evs[-2]
                periods = self._periods
                periods.append(t_ev - a_ev.t)
                period = _median(periods)
                if len(periods) >= 3:
                    self._stale |= _STALE_REGULARITY
                if self._fixed is None and a_ev.idx >= off:
                    # polarity evidence from the cycle a -> prev -> this extreme
                    # (raw orientation), every cycle (the peak- and trough-bounded
                    # ones can disagree on a real belt; their median is steady).
                    # Skipped when the cycle began before the history kept (a
                    # very long hold).
                    assert prev is not None
                    t0 = titem(a_ev.idx - off)
                    tm = titem(prev.idx - off)
                    t1 = titem(i_ext - off)
                    if kind < 0:  # trough -> peak -> trough
                        rise, fall = tm - t0, t1 - tm
                        hi_v = max(a_ev.value, prev.value)
                        lo_v = min(a_ev.value, prev.value, v_ext)
                    else:  # peak -> trough -> peak
                        fall, rise = tm - t0, t1 - tm
                        hi_v = max(a_ev.value, prev.value, v_ext)
                        lo_v = min(a_ev.value, prev.value)
                    y = Y[a_ev.idx - off : i_ext + 1 - off]
                    n_y = y.shape[0]
                    amp = hi_v - lo_v
                    if n_y >= 4 and rise > 0 and fall > 0 and amp > 0:
                        # inhale is shorter than exhale, and the end-expiratory
                        # pause sits at the bottom
                        bottom = _count_nonzero(y < lo_v + 0.2 * amp) / n_y
                        top = _count_nonzero(y > hi_v - 0.2 * amp) / n_y
                        e = math.log(fall / rise) + math.log((bottom + 0.05) / (top + 0.05))
                        hist.append(max(-1.0, min(1.0, e)))
                        ev_med = _median(hist)
                        n_hist = len(hist)
                        if polarity == 0:
                            # undecided: a few consistent cycles decide
                            if (n_hist >= 2 and abs(ev_med) > 0.4) or (
                                n_hist >= 3 and abs(ev_med) > 0.15
                            ):
                                polarity = 1 if ev_med > 0 else -1
                        elif n_hist >= need_n and ev_med * polarity < -need_e:
                            # decided (or a prior): flipping needs a clear
                            # majority of contrary cycles
                            polarity = -polarity
            ph = _INHALE if kind == (-1 if polarity >= 0 else 1) else _EXHALE
            evs.append(_Extremum(kind, i_ext, v_ext, t_ev, t_conf, ph))
            last = t_conf
            self._delays.append(t_conf - t_ev)
            self._stale |= _STALE_DELAY
            events.append(BreathEvent(ph, t_ev, t_conf, -v_ext if polarity < 0 else v_ext))
            if ph is _INHALE:
                ons = self._inhale_onsets
                ons.append(t_ev)
                if len(ons) >= 2:
                    self._stale |= _STALE_INH_PERIOD
            elif prev is not None and prev.phase is _INHALE:
                amp = abs(v_ext - prev.value)
                inh = self._inh_amps
                inh.append(amp)
                breaths.append(Breath(prev.t, t_ev, amp, amp / _median(inh), t_conf))
            # the next stretches' labelling
            theta = _theta(amp_typ, period, self._slope_dt)
            band = 0.2 * amp_typ
            sign = -1 if polarity < 0 else 1
            event = True
            p = i_conf + 1
        self._mode = mode
        self._max_v, self._max_i, self._min_v, self._min_i = max_v, max_i, min_v, min_i
        self._h = h_cur
        self._period = period
        self._last_event_t = last
        self._amp_typ = amp_typ
        self._sigma = sigma
        self.polarity = polarity
        self._params = (theta, band, sign)

    def _label(
        self,
        a: int,
        b: int,
        g_out: int,
        phase: Int8Array,
        seg: FloatArray | None = None,
        before: FloatArray | None = None,
    ) -> None:
        """Phase per sample over global ``a..b-1`` (written from ``g_out`` on).

        A slope trigger with hysteresis: inhale once the (inhale-up) signal
        rises faster than a quarter of a typical breath's steepest slope,
        exhale once it falls that fast, unchanged in between; a pause while,
        after an exhale, it sits still near the bottom. Each stretch between
        events has its own threshold and orientation (noted by the zigzag).

        The signal comes from the history, or (a chunk longer than the history)
        as ``seg`` with ``before``, the kept samples just before ``a``.
        """
        st = self._stretches
        if not st or not math.isfinite(st[0][1]):
            phase.fill(_UNK)
            return
        n = b - a
        k = self._slope_k
        if seg is None:
            Y, off = self._Y, self._off
            seg = Y[a - off : b - off]
            pa = a - k - off
            if pa >= 0:
                prev = Y[pa : pa + n]
            else:  # the stream's first samples: no slope yet
                prev = Y[0 : max(b - k - off, 0)]
                if prev.shape[0] < n:
                    prev = np.concatenate([np.full(n - prev.shape[0], seg[0]), prev])
        else:
            assert before is not None
            prev = np.concatenate((before, seg[: n - k]))
            if prev.shape[0] < n:  # the stream's first samples: no slope yet
                prev = np.concatenate([np.full(n - prev.shape[0], seg[0]), prev])
        d = seg - prev
        if len(st) == 1:
            theta: float | FloatArray = st[0][1]
            if st[0][2] < 0:
                d = -d
        else:
            th_all: float | None = st[0][1]
            sg_all = st[0][2]
            for x in st:
                if x[1] != th_all:
                    th_all = None
                if x[2] != sg_all:
                    sg_all = 0
            theta = th_all if th_all is not None else _spread(st, 1, n)
            if sg_all < 0:
                d = -d
            elif sg_all == 0:  # the polarity flipped inside the chunk
                d *= _spread(st, 2, n)
        # codes: 1 inhale, 2 exhale, 0 hold the previous (the carried one first)
        up = d > theta
        down = d < -theta
        n_up = _count_nonzero(up)
        n_down = _count_nonzero(down)
        if n_up + n_down == 0:  # nothing triggered: the carried phase throughout
            ff = np.full(n, self._phase, dtype=np.int8)
        else:
            code = np.empty(n + 1, dtype=np.int8)
            code[0] = self._phase
            c1 = code[1:]
            c1[:] = up
            if n_down:
                c1[down] = 2
            if n_up + n_down == n:
                ff = c1  # every sample triggered: nothing to carry
                self._move_g = b - 1
            else:
                ar = self._arange if n < self._arange.shape[0] else np.arange(n + 1)
                idx = _multiply(ar[: n + 1], code != 0)
                _max_acc(idx, out=idx)
                ff = code[idx[1:]]
                self._move_g = a + int(idx[n]) - 1  # the last sample that triggered
        self._phase = ff[-1]
        if self._st_ext:
            # near the bottom, barely moving, after an exhale: the pause (the
            # cheap tests first: most exhale samples are still moving)
            exh = ff == _EXH
            if _count_nonzero(exh):
                exh &= np.abs(d) < 0.5 * theta
                if _count_nonzero(exh):
                    band: float | FloatArray = st[0][4]
                    ext: FloatArray | None = st[0][3]
                    if len(st) == 1:
                        if ext is None:  # (a lone stretch seeking the bottom has one)
                            ext = np.full(n, np.nan)
                    else:
                        nan = self._nan
                        ext = np.concatenate([nan[: x[0]] if x[3] is None else x[3] for x in st])
                        if any(x[4] != band for x in st):
                            band = _spread(st, 4, n)
                    exh &= np.abs(seg - ext) < band  # False where NaN
                    ff[exh] = _PAU
        lo = max(g_out, self._label_from, a)
        if lo > g_out:  # before the first label: unknown
            phase[: min(lo, b) - g_out] = _UNK
        if lo < b:
            phase[lo - g_out : b - g_out] = ff[lo - a :]

# --------------------------------------------------------------------------- tracker


class BreathTracker:
    """Breath from one stream: front end, detector, and the per-chunk output.

    Parameters
    ----------
    kind : StreamKind
        What the stream is (belt force, ACC, pressure ripple, RR).
    rate_hz : float or None
        Stream rate (None for RR).
    stream : str
        Stream id (copied into the outputs).
    n_channels : int
        Columns of the stream's chunks.
    polarity : int or None
        Fix the polarity (+1 inhale rises, -1 falls); None detects it.
    """

    def __init__(
        self,
        kind: StreamKind,
        rate_hz: float | None,
        *,
        stream: str = "",
        n_channels: int = 1,
        polarity: int | None = None,
    ) -> None:
        self.kind = kind
        self.stream = stream
        self.front = front_end_for(kind, rate_hz, n_channels)
        fixed = self.front.fixed_polarity if polarity is None else polarity
        self.detector = BreathDetector(
            self.front.fs,
            polarity=fixed,
            prior=self.front.prior,
            delay=self.front.delay,
            noise_gain=self.front.noise_to_output(),
        )
        self._quality = QualityMonitor(self.front.fs, 1)
        self.front.delay(0.25)  # builds the delay table now, not on the first event
        self._depth: float | None = None
        self._t_last = -math.inf

    def reset(self) -> None:
        """A gap: restart the filters and the detector (keeping learned figures)."""
        self.front.reset()
        self.detector.reset()
        self._quality.reset()

    @property
    def rate_bpm(self) -> float | None:
        """Breath rate now (breaths per minute)."""
        return self.detector.rate_bpm(self._t_last)

    @property
    def depth(self) -> float | None:
        """Relative depth of the latest breath."""
        return self._depth

    @property
    def delay_s(self) -> float:
        """The detector's delay (mean over recent events, else the filter's)."""
        d = self.detector.delay_s
        if math.isfinite(d):
            return d
        return self.front.delay(0.25)

    def process(self, t: FloatArray, values: FloatArray) -> BreathOutput:
        """Process one chunk of the source stream."""
        if type(values) is not np.ndarray or values.dtype != np.float64:
            values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, np.newaxis]
        if type(t) is not np.ndarray or t.dtype != np.float64:
            t = np.asarray(t, dtype=np.float64)
        tt, y, raw = self.front.process(t, values)
        det = self.detector
        midline = 0.0
        if tt.shape[0]:
            events, breaths, phase = det.process(tt, y, raw)
            self._t_last = tt.item(-1)
            midline = det.midline
            sig = y - midline
            if det.polarity < 0:  # (times +1 would change nothing)
                sig *= -1
            quality = self._quality.process(raw[:, np.newaxis], det.noise_raw)
        else:
            events, breaths, phase = [], [], np.empty(0, dtype=np.int8)
            sig = np.empty(0)
            quality = self._quality.quality
        if breaths:
            self._depth = breaths[-1].depth
        delay = det.delay_s
        if not math.isfinite(delay):
            delay = self.front.delay(0.25)
        # (positional: BreathOutput's field order; a keyword call costs more per chunk)
        return BreathOutput(
            self.stream,
            self.kind,
            tt,  # t
            sig,  # signal
            phase,
            tuple(events),
            tuple(breaths),
            det.rate_bpm(self._t_last),  # rate_bpm
            self._depth,  # depth
            det.regularity,
            det.polarity,
            delay,  # delay_s
            quality,
            midline,
        )
