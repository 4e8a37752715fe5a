"""Breath front ends: one raw stream (belt, chest ACC, ripple, RR) -> one clean breath signal.

The *clean* stage of breath detection. Each front end decimates to a working
rate of at most ~50 Hz (block means), band-limits causally with kept filter
state, and reports its own phase delay so the detector can back-date events
exactly. For chest acceleration it also projects on the axis that carries the
breathing. RR intervals (:mod:`~biofeedback.signal.breath.rr`) and the ECG
(:mod:`~biofeedback.signal.breath.edr`) build on :class:`FrontEnd` in their own
modules; :mod:`~biofeedback.signal.breath.sources` picks one per stream kind.
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.filters import (
    BlockMean,
    Ewma,
    FloatArray,
    Interp,
    SosFilter,
    bandpass_sos,
    ffill_nan,
    lowpass_sos,
    phase_delays_s,
)

__all__ = [
    "WORK_RATE_HZ",
    "AccFrontEnd",
    "BeltFrontEnd",
    "FrontEnd",
    "FrontOut",
    "RippleFrontEnd",
]

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

#: Low-pass edge of the belt: passes breathing up to ~40/min and damps the
#: heartbeat (48-120 beats/min, 0.8-2 Hz), which rides on impedance and belt
#: traces and otherwise reads as small extra breaths.
BELT_LP_HZ = 1.2


def _decimation(fs: float) -> int:
    return max(1, int(fs // WORK_RATE_HZ))


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

    def trust(self, kind_trust: float) -> float:
        """0..1: how far this source's breaths can be trusted now, before the signal's
        quality is counted; by default the source kind's measured figure."""
        return kind_trust

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

    def __init__(self, rate_hz: float, channel: int = 0, lp_hz: float = BELT_LP_HZ) -> None:
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
        if math.isnan(float(np.add.reduce(x))):  # a NaN somewhere (or inf - inf): fill it in
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
