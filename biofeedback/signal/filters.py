"""Streaming filters with kept state, and resampling onto a regular clock.

Everything here is causal and *chunking-invariant*: feeding a signal in one
call or split into any chunks gives the same output (up to floating-point
rounding of identical operations, i.e. bit for bit in practice). That is why
the filters are seeded with the *first sample* (a step response starting in
steady state) rather than the mean of the first chunk as mne-lsl does: the
first chunk's length would otherwise change the output.

Never use zero-phase (``filtfilt``) filtering on the live path: it needs the
future.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

__all__ = [
    "BlockMean",
    "Ewma",
    "GridResampler",
    "SosFilter",
    "bandpass_sos",
    "highpass_sos",
    "lowpass_sos",
    "phase_delay_s",
]

FloatArray = npt.NDArray[np.float64]


def lowpass_sos(cutoff_hz: float, fs: float, order: int = 2) -> FloatArray:
    """Butterworth low-pass as second-order sections.

    Raises
    ------
    ValueError
        If the cutoff is not below Nyquist.
    """
    _check_cutoff(cutoff_hz, fs)
    return np.asarray(sps.butter(order, cutoff_hz, btype="lowpass", fs=fs, output="sos"))


def highpass_sos(cutoff_hz: float, fs: float, order: int = 1) -> FloatArray:
    """Butterworth high-pass as second-order sections."""
    _check_cutoff(cutoff_hz, fs)
    return np.asarray(sps.butter(order, cutoff_hz, btype="highpass", fs=fs, output="sos"))


def bandpass_sos(
    low_hz: float, high_hz: float, fs: float, low_order: int = 1, high_order: int = 2
) -> FloatArray:
    """A high-pass at ``low_hz`` cascaded with a low-pass at ``high_hz``.

    Built as two Butterworth filters (not one band-pass design) so the two
    edges can have different orders: a gentle, low-order high-pass keeps the
    phase lead at slow breathing small.
    """
    if not 0 < low_hz < high_hz:
        raise ValueError(f"need 0 < low_hz < high_hz, got {low_hz!r}, {high_hz!r}")
    return np.vstack([highpass_sos(low_hz, fs, low_order), lowpass_sos(high_hz, fs, high_order)])


def _check_cutoff(cutoff_hz: float, fs: float) -> None:
    if not fs > 0:
        raise ValueError(f"fs must be a strictly positive number, {fs!r} is invalid")
    if not 0 < cutoff_hz < fs / 2:
        raise ValueError(f"cutoff {cutoff_hz!r} Hz must lie in (0, {fs / 2}) for fs={fs}")


def phase_delay_s(sos: FloatArray, f_hz: float, fs: float) -> float:
    """Phase delay (seconds) of ``sos`` at frequency ``f_hz``.

    For a near-sinusoidal component at ``f_hz`` this is how late the filter
    puts its extrema (negative for a lead, as a high-pass gives).
    """
    if not 0 < f_hz < fs / 2:
        raise ValueError(f"f_hz {f_hz!r} must lie in (0, {fs / 2})")
    _, h = sps.sosfreqz(sos, worN=[f_hz], fs=fs)
    ph = float(np.angle(h[0]))
    return -ph / (2 * math.pi * f_hz)


class SosFilter:
    """A causal SOS filter over ``n_channels`` columns with kept state.

    The state is seeded on the first sample (as if the signal had sat at that
    value forever), so a filter starts without a transient and the output does
    not depend on how the input is chunked.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections (e.g. from :func:`lowpass_sos`).
    n_channels : int
        Number of columns the filter sees.
    """

    def __init__(self, sos: FloatArray, n_channels: int = 1) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, {n_channels!r} is invalid")
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.n_channels = n_channels
        # sosfilt_zi: state for a unit step in steady state, shape (n_sections, 2)
        self._zi_unit = sps.sosfilt_zi(self.sos)[:, :, np.newaxis]
        self._zi: FloatArray | None = None

    def reset(self) -> None:
        """Forget the state (after a gap): the next sample seeds it again."""
        self._zi = None

    @property
    def seeded(self) -> bool:
        return self._zi is not None

    def process(self, x: FloatArray) -> FloatArray:
        """Filter ``x`` of shape (n,) or (n, n_channels); same shape out."""
        x = np.asarray(x, dtype=np.float64)
        one_d = x.ndim == 1
        x2 = x[:, np.newaxis] if one_d else x
        if x2.shape[0] == 0:
            return np.empty_like(x)
        if x2.shape[1] != self.n_channels:
            raise ValueError(f"expected {self.n_channels} channels, got {x2.shape[1]}")
        if self._zi is None:
            self._zi = self._zi_unit * x2[0][np.newaxis, np.newaxis, :]
        y, self._zi = sps.sosfilt(self.sos, x2, axis=0, zi=self._zi)
        return y[:, 0] if one_d else y


class Ewma:
    """Exponentially weighted moving average with kept state (a 1-pole low-pass).

    Parameters
    ----------
    tau_s : float
        Time constant, seconds.
    fs : float
        Sample rate.
    n_channels : int
        Columns.
    """

    def __init__(self, tau_s: float, fs: float, n_channels: int = 1) -> None:
        if not tau_s > 0 or not fs > 0:
            raise ValueError(f"tau_s and fs must be positive, got {tau_s!r}, {fs!r}")
        a = math.exp(-1.0 / (tau_s * fs))
        self._b = np.array([1.0 - a])
        self._a = np.array([1.0, -a])
        self.n_channels = n_channels
        self._zi: FloatArray | None = None

    def reset(self) -> None:
        self._zi = None

    def process(self, x: FloatArray) -> FloatArray:
        """Smooth ``x`` of shape (n,) or (n, n_channels)."""
        x = np.asarray(x, dtype=np.float64)
        one_d = x.ndim == 1
        x2 = x[:, np.newaxis] if one_d else x
        if x2.shape[0] == 0:
            return np.empty_like(x)
        if self._zi is None:
            # steady state at the first sample: y[-1] = x[0]
            self._zi = (self._a[1] * -1.0 * x2[0])[np.newaxis, :].astype(np.float64)
        y, self._zi = sps.lfilter(self._b, self._a, x2, axis=0, zi=self._zi)
        y = np.asarray(y)
        return y[:, 0] if one_d else y


class BlockMean:
    """Decimate by an integer factor with block means, keeping the remainder.

    A block mean of ``factor`` samples has spectral zeros at multiples of the
    output rate, so noise that would alias onto the (slow) breath band is
    cancelled; the breath band itself passes almost untouched. The output
    time of a block is the mean time of its samples.

    Parameters
    ----------
    factor : int
        Samples per output sample.
    n_channels : int
        Columns.
    """

    def __init__(self, factor: int, n_channels: int = 1) -> None:
        if factor < 1:
            raise ValueError(f"factor must be >= 1, {factor!r} is invalid")
        self.factor = factor
        self.n_channels = n_channels
        self._t_rem = np.empty(0)
        self._x_rem = np.empty((0, n_channels))

    def reset(self) -> None:
        self._t_rem = np.empty(0)
        self._x_rem = np.empty((0, self.n_channels))

    def process(self, t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Blocks completed by ``(t, x)``: times (m,) and values (m, n_channels)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(t), self.n_channels)
        if self.factor == 1:
            return np.asarray(t, dtype=np.float64), x
        if self._t_rem.size:
            t = np.concatenate([self._t_rem, t])
            x = np.concatenate([self._x_rem, x])
        m = t.shape[0] // self.factor
        k = m * self.factor
        self._t_rem = t[k:].copy()
        self._x_rem = x[k:].copy()
        tb = t[:k].reshape(m, self.factor).mean(axis=1)
        xb = x[:k].reshape(m, self.factor, self.n_channels).mean(axis=1)
        return tb, xb


class GridResampler:
    """Irregular samples onto a regular grid by linear interpolation, streaming.

    Used for beat-to-beat intervals (one value per beat) to get an evenly
    sampled tachogram. A grid point is emitted once a sample at or after it
    exists, so the output is causal and independent of chunking. Gaps longer
    than ``max_gap_s`` are not bridged: the grid restarts after them.

    Parameters
    ----------
    rate_hz : float
        Grid rate.
    max_gap_s : float
        Longest span between samples to interpolate across.
    """

    def __init__(self, rate_hz: float, max_gap_s: float = 3.0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, {rate_hz!r} is invalid")
        self.rate_hz = rate_hz
        self.max_gap_s = max_gap_s
        self._dt = 1.0 / rate_hz
        self._last_t: float | None = None
        self._last_v = 0.0
        self._next_k = 0  # index of the next grid point (grid anchored at _t0)
        self._t0 = 0.0
        self.restarts = 0

    def reset(self) -> None:
        self._last_t = None

    def process(self, t: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray, bool]:
        """Grid samples completed by the new points.

        Returns
        -------
        tg, vg : ndarray
            Grid times and values.
        restarted : bool
            True when a gap (or the first sample) restarted the grid; the
            caller resets downstream filters before using ``vg``.
        """
        t = np.asarray(t, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        restarted = False
        if t.size == 0:
            return np.empty(0), np.empty(0), False
        if self._last_t is None:
            restarted = True
            self._t0 = float(t[0])
            self._next_k = 0
            self._last_t = float(t[0])
            self._last_v = float(v[0])
            t, v = t[1:], v[1:]
            # the first grid point is the first sample itself
            out_t = [np.array([self._t0])]
            out_v = [np.array([self._last_v])]
            self._next_k = 1
        else:
            out_t, out_v = [], []
        if t.size:
            pt = np.concatenate([[self._last_t], t])
            pv = np.concatenate([[self._last_v], v])
            gaps = np.flatnonzero(np.diff(pt) > self.max_gap_s)
            if gaps.size:
                # keep what precedes the first gap, restart at the sample after it
                g = int(gaps[0])
                tg, vg = self._emit(pt[: g + 1], pv[: g + 1])
                out_t.append(tg)
                out_v.append(vg)
                self._last_t = None
                self.restarts += 1
                tg2, vg2, _ = self.process(pt[g + 1 :], pv[g + 1 :])
                out_t.append(tg2)
                out_v.append(vg2)
                return np.concatenate(out_t), np.concatenate(out_v), True
            tg, vg = self._emit(pt, pv)
            out_t.append(tg)
            out_v.append(vg)
        return np.concatenate(out_t), np.concatenate(out_v), restarted

    def _emit(self, pt: FloatArray, pv: FloatArray) -> tuple[FloatArray, FloatArray]:
        k_end = math.floor((pt[-1] - self._t0) / self._dt + 1e-9)
        ks = np.arange(self._next_k, k_end + 1)
        tg = self._t0 + ks * self._dt
        vg = np.interp(tg, pt, pv)
        self._next_k = k_end + 1
        self._last_t = float(pt[-1])
        self._last_v = float(pv[-1])
        return tg, vg
