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
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

__all__ = [
    "BlockMean",
    "Ewma",
    "GridResampler",
    "QualityMonitor",
    "RingBuffer",
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
        self._n_sections = int(self.sos.shape[0])
        self._b = [self.sos[k, :3].copy() for k in range(self._n_sections)]
        self._a = [self.sos[k, 3:].copy() for k in range(self._n_sections)]
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
        # Same recursion as sosfilt (direct form II transposed per section, the
        # same zi layout), one lfilter call per section: sosfilt's fixed cost per
        # call (~25 us) is five times lfilter's and dominates small chunks.
        zi = self._zi
        y: FloatArray = x2
        for k in range(self._n_sections):
            y, zi[k] = sps.lfilter(self._b[k], self._a[k], y, axis=0, zi=zi[k])
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
        f = self.factor
        m = t.shape[0] // f
        k = m * f
        if k < t.shape[0]:
            self._t_rem = t[k:].copy()
            self._x_rem = x[k:].copy()
        elif self._t_rem.size:
            self._t_rem = self._t_rem[:0]
            self._x_rem = self._x_rem[:0]
        inv = 1.0 / f
        tb = t[:k].reshape(m, f).sum(axis=1) * inv
        xb = x[:k].reshape(m, f, self.n_channels).sum(axis=1) * inv
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


class RingBuffer:
    """The last ``capacity`` samples of a stream, addressed by global sample index.

    Appends are amortised O(1): the storage is twice the capacity and the
    newest ``capacity`` samples move to the front only when it fills up.

    Parameters
    ----------
    capacity : int
        Samples kept.
    n_channels : int
        0 for a 1-D stream, else the number of columns.
    """

    def __init__(self, capacity: int, n_channels: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, {capacity!r} is invalid")
        self.capacity = capacity
        shape: tuple[int, ...] = (2 * capacity,) if n_channels == 0 else (2 * capacity, n_channels)
        self._t = np.empty(2 * capacity)
        self._x = np.empty(shape)
        self._len = 0
        self.total = 0  # samples ever appended

    @property
    def first(self) -> int:
        """Global index of the oldest sample kept."""
        return self.total - self._len

    def clear(self) -> None:
        """Forget the samples (the global index keeps counting)."""
        self._len = 0

    def append(self, t: FloatArray, x: FloatArray) -> None:
        n = int(t.shape[0])
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:
            self._t[:cap] = t[n - cap :]
            self._x[:cap] = x[n - cap :]
            self._len = cap
            self.total += n
            return
        if self._len + n > 2 * cap:
            keep = cap - n
            s = self._len - keep
            self._t[:keep] = self._t[s : self._len]
            self._x[:keep] = self._x[s : self._len]
            self._len = keep
        self._t[self._len : self._len + n] = t
        self._x[self._len : self._len + n] = x
        self._len += n
        self.total += n

    def t(self, g0: int, g1: int) -> FloatArray:
        """Times of global samples ``g0 .. g1-1`` (clipped to what is kept)."""
        base = self.first
        return self._t[max(g0 - base, 0) : max(g1 - base, 0)]

    def x(self, g0: int, g1: int) -> FloatArray:
        """Values of global samples ``g0 .. g1-1`` (clipped to what is kept)."""
        base = self.first
        return self._x[max(g0 - base, 0) : max(g1 - base, 0)]

    def since(self, t0: float) -> tuple[FloatArray, FloatArray]:
        """Times and values of the kept samples at or after ``t0``."""
        tt = self._t[: self._len]
        i = int(np.searchsorted(tt, t0, side="left"))
        return tt[i:], self._x[i : self._len]


class QualityMonitor:
    """Flat, clipped and noisy stretches of a stream, per chunk.

    * flat: a value repeated exactly for ``flat_s`` (sensor off, stuck, silent);
    * clipped: samples repeated at the highest or lowest value the stream ever
      had (an amplifier or ADC rail) for ``clip_s`` in a chunk;
    * noisy: white noise (measured by the caller) is most of the stream's
      variation over the last ``tau_s``.

    A flat or clipped stretch keeps the flag for ``hold_s`` after it ends, so a
    live view shows it long enough to read. The result is the state after the
    chunk, worst first (clipped > flat > noisy > ok). Cheap: a handful of
    array operations per chunk.

    Parameters
    ----------
    fs : float
        Sample rate.
    n_channels : int
        Columns.
    """

    def __init__(
        self,
        fs: float,
        n_channels: int = 1,
        *,
        flat_s: float = 2.0,
        clip_s: float = 0.12,
        hold_s: float = 3.0,
        tau_s: float = 10.0,
        noisy_ratio: float = 0.8,
    ) -> None:
        from biofeedback.signal.types import Quality

        self._Q = Quality
        self.fs = fs
        self.n_channels = n_channels
        self._flat_n = max(3, round(flat_s * fs))
        self._clip_n = max(2, round(clip_s * fs))
        self._hold_n = max(1, round(hold_s * fs))
        self._noisy_ratio = noisy_ratio
        self._tau_n = tau_s * fs
        self.reset()

    def reset(self) -> None:
        self._last: float | None = None
        self._run = 0  # samples the current value has repeated (any channel)
        self._hi = -math.inf
        self._lo = math.inf
        self._since_flat = 1 << 40
        self._since_clip = 1 << 40
        self._mu: float | None = None
        self._var = 0.0
        self.quality = self._Q.OK

    def process(self, x: FloatArray, noise_sd: float | None = None) -> Any:
        """Update with ``x`` (n, n_channels); returns the :class:`Quality` now."""
        n = int(x.shape[0])
        if n == 0:
            return self.quality
        # a stuck or silent stream repeats its first channel exactly
        x0 = x[:, 0]
        same = np.empty(n, dtype=bool)
        same[0] = self._last is not None and x0[0] == self._last
        np.equal(x0[1:], x0[:-1], out=same[1:])
        self._last = float(x0[-1])
        prev_run = self._run
        if same.all():
            self._run += n
            longest = self._run
        else:
            brk = np.flatnonzero(~same)
            self._run = n - 1 - int(brk[-1])
            longest = max(prev_run + int(brk[0]), self._run)
            if n >= self._flat_n:  # a long chunk may hide a flat stretch inside
                longest = max(longest, int(np.diff(brk).max(initial=0)) - 1)
        self._since_flat = 0 if longest >= self._flat_n else self._since_flat + n
        # the rails: the highest and lowest value of any channel so far (one
        # converter, one range)
        hi = float(x.max())
        lo = float(x.min())
        clipped = False
        if hi >= self._hi or lo <= self._lo:
            self._hi = max(self._hi, hi)
            self._lo = min(self._lo, lo)
            if self._hi > self._lo:
                # repeated samples at a rail
                rail = (x[1:] >= self._hi) | (x[1:] <= self._lo)
                rail &= x[1:] == x[:-1]
                clipped = int(np.count_nonzero(rail)) >= self._clip_n - 1
        self._since_clip = 0 if clipped else self._since_clip + n
        # running variance of the first channel, updated per chunk (a display
        # figure: chunk-size dependence does not matter here)
        mu = float(x0.sum()) / n
        dev = x0 - mu
        w = 1.0 - math.exp(-n / self._tau_n)
        if self._mu is None:
            self._mu, self._var = mu, float(dev @ dev) / n
        else:
            d = mu - self._mu
            self._mu += w * d
            self._var += w * (float(dev @ dev) / n + d * d - self._var)
        if self._since_clip < self._hold_n:
            q = self._Q.CLIPPED
        elif self._since_flat < self._hold_n:
            q = self._Q.FLAT
        elif noise_sd is not None and noise_sd > self._noisy_ratio * math.sqrt(max(self._var, 0)):
            q = self._Q.NOISY
        else:
            q = self._Q.OK
        self.quality = q
        return q
