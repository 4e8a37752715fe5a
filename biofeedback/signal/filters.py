"""Streaming filters with kept state (block means, the grid resampler and the ring
buffer are in :mod:`biofeedback.signal.buffers`, the quality monitor in
:mod:`biofeedback.signal.quality`; all re-exported here).

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

import bisect
import math

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from biofeedback.signal.buffers import BlockMean, GridResampler, RingBuffer
from biofeedback.signal.quality import QualityMonitor

__all__ = [
    "LOOP_MAX",
    "BlockMean",
    "Ewma",
    "GridResampler",
    "Interp",
    "QualityMonitor",
    "RingBuffer",
    "SosFilter",
    "bandpass_sos",
    "df2t_loop",
    "df2t_loop2",
    "ffill_nan",
    "highpass_sos",
    "interp_at",
    "lfilter_zi",
    "lowpass_sos",
    "median",
    "noise_sd",
    "percentile",
    "phase_delay_s",
    "phase_delays_s",
]

FloatArray = npt.NDArray[np.float64]

_F64 = np.dtype(np.float64)
_add_reduce = np.add.reduce


def lfilter_zi(
    b: FloatArray, a: FloatArray, x: FloatArray, axis: int, zi: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``(y, zf)``: :func:`scipy.signal.lfilter` with initial state ``zi`` (float64 arrays)."""
    y, zf = sps.lfilter(b, a, x, axis=axis, zi=zi)
    return np.asarray(y), np.asarray(zf)


#: Longest 1-D stretch the plain-loop filter (:func:`df2t_loop`) takes; above
#: it, lfilter's compiled loop wins over its fixed cost per call.
LOOP_MAX = 64


def df2t_loop(b: list[float], a: list[float], x: list[float], z: list[float]) -> list[float]:
    """``lfilter(b, a, x, zi=z)`` for a first- or second-order section, in plain Python.

    A live chunk is a few dozen samples, and scipy's ``lfilter`` spends far
    longer checking and converting its arguments than filtering them. This
    runs the same recursion -- direct form II transposed, the same operations
    in the same order as scipy's compiled loop -- so the output is the same
    bit for bit (``tests/test_signal_filters.py`` checks it against
    ``lfilter``), and chunking cannot tell the two apart. ``a[0]`` must be 1
    and ``b``, ``a`` of one length (2 or 3); ``z`` (length - 1) is updated in
    place to the final state.
    """
    y: list[float] = []
    append = y.append
    if len(b) == 3:
        b0, b1, b2 = b
        a1, a2 = a[1], a[2]
        z0, z1 = z
        for xn in x:
            yn = z0 + b0 * xn
            z0 = z1 + xn * b1 - yn * a1
            z1 = xn * b2 - yn * a2
            append(yn)
        z[0], z[1] = z0, z1
        return y
    b0, b1 = b
    a1 = a[1]
    z0 = z[0]
    for xn in x:
        yn = z0 + b0 * xn
        z0 = xn * b1 - yn * a1
        append(yn)
    z[0] = z0
    return y


def df2t_loop2(
    b: list[list[float]], a: list[list[float]], x: list[float], z: list[list[float]]
) -> list[float]:
    """Two second-order sections in cascade, in one pass: ``df2t_loop`` of the
    second section over ``df2t_loop`` of the first, bit for bit.

    Each sample runs both recursions with the same operations in the same
    order as :func:`df2t_loop` (so as scipy's compiled loop); one pass saves
    the second loop's iteration and the list between the two. ``b``, ``a``,
    ``z``: per section, as for :func:`df2t_loop` with three coefficients.
    """
    y: list[float] = []
    append = y.append
    (b0, b1, b2), (c0, c1, c2) = b
    a1, a2, e1, e2 = a[0][1], a[0][2], a[1][1], a[1][2]
    (z0, z1), (w0, w1) = z
    for xn in x:
        un = z0 + b0 * xn  # the first section's output ...
        z0 = z1 + xn * b1 - un * a1
        z1 = xn * b2 - un * a2
        yn = w0 + c0 * un  # ... through the second
        w0 = w1 + un * c1 - yn * e1
        w1 = un * c2 - yn * e2
        append(yn)
    z[0][0], z[0][1], z[1][0], z[1][1] = z0, z1, w0, w1
    return y


def median(x: FloatArray, overwrite: bool = False) -> float:
    """``np.median`` of a non-empty 1-D float array, bit for bit, at a fraction of the cost.

    ``overwrite=True`` partitions ``x`` in place (a scratch array of the caller's).
    """
    n = int(x.shape[0])
    h = n // 2
    kth = (h, n - 1) if n % 2 else (h - 1, h, n - 1)
    if overwrite:
        x.partition(kth)
        part = x
    else:
        part = np.partition(x, kth)
    if math.isnan(part.item(n - 1)):  # NaN sorts last
        return math.nan
    if n % 2:
        return part.item(h)
    return (part.item(h - 1) + part.item(h)) / 2


def percentile(x: FloatArray, q: float) -> float:
    """``np.percentile(x, q)`` (linear method) of a non-empty 1-D float array, bit for bit."""
    n = int(x.shape[0])
    vi = (n - 1) * (q / 100)
    if vi >= n - 1:
        return float(x.max())
    lo = math.floor(vi)
    part = np.partition(x, (lo, lo + 1, n - 1))
    if math.isnan(part[n - 1]):
        return math.nan
    a, b = float(part[lo]), float(part[lo + 1])
    g = vi - lo
    diff = b - a
    # numpy's _lerp: from the nearer end
    return b - diff * (1 - g) if g >= 0.5 else a + diff * g


class Interp:
    """``float(np.interp(x, xp, fp))`` for a scalar ``x``, bit for bit, in plain Python.

    For a small table looked up once per event: numpy's per-call cost is
    several times the lookup. Same bracket search, same slope expression
    (``(fp[j+1] - fp[j]) / (xp[j+1] - xp[j])``), same edge rules.

    Parameters
    ----------
    xp, fp : ndarray, shape (n,)
        The table, ``xp`` increasing.
    """

    def __init__(self, xp: FloatArray, fp: FloatArray) -> None:
        self._x: list[float] = np.asarray(xp, dtype=np.float64).tolist()
        self._y: list[float] = np.asarray(fp, dtype=np.float64).tolist()
        x, y = self._x, self._y
        self._slope = [(y[j + 1] - y[j]) / (x[j + 1] - x[j]) for j in range(len(x) - 1)]

    def __call__(self, v: float) -> float:
        if v != v:  # NaN
            return v
        x, y = self._x, self._y
        j = bisect.bisect_right(x, v) - 1
        if j < 0:
            return y[0]
        if j >= len(x) - 1:
            return y[-1]
        if x[j] == v:
            return y[j]
        s = self._slope[j]
        r = s * (v - x[j]) + y[j]
        if r != r:  # NaN one way: numpy tries from the other end
            r = s * (v - x[j + 1]) + y[j + 1]
            if r != r and y[j] == y[j + 1]:
                r = y[j]
        return r


def interp_at(x: float, xp: FloatArray, fp: FloatArray) -> float:
    """``float(np.interp(x, xp, fp))`` for one value ``x``, bit for bit.

    For a lookup or two per breath event: ``np.interp`` costs several
    times a sorted search and a few element reads. Same rules as
    :class:`Interp` (bracket, slope expression, edges, NaN retries), read
    straight from the arrays (``xp`` increasing, at least one point).
    """
    if x != x:  # NaN
        return x
    n = int(xp.shape[0])
    j = int(xp.searchsorted(x, side="right")) - 1
    if j < 0:
        return float(fp.item(0))
    if j >= n - 1:
        return float(fp.item(n - 1))
    xj = xp.item(j)
    if xj == x:
        return float(fp.item(j))
    yj, yj1 = fp.item(j), fp.item(j + 1)
    s = (yj1 - yj) / (xp.item(j + 1) - xj)
    r = s * (x - xj) + yj
    if r != r:  # NaN one way: numpy tries from the other end
        r = s * (x - xp.item(j + 1)) + yj1
        if r != r and yj == yj1:
            r = yj
    return float(r)


def ffill_nan(x: FloatArray, last: FloatArray) -> FloatArray:
    """Replace NaN by the last finite value per column (``last`` carried in, updated).

    ``x`` has shape (n, columns); it is returned as is when it holds no NaN.
    """
    if not math.isnan(_add_reduce(x, None)):  # a NaN anywhere makes the sum NaN
        last[:] = x[-1]
        return x
    bad = np.isnan(x)
    if not bad.any():  # the sum overflowed (inf - inf): no NaN after all
        last[:] = x[-1]
        return x
    x = x.copy()
    n = x.shape[0]
    for j in range(x.shape[1]):  # columns: 1..3
        col = x[:, j]
        ok = ~bad[:, j]
        idx = np.where(ok, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx >= 0, col[np.maximum(idx, 0)], last[j])
        x[:, j] = filled
        if ok.any():
            last[j] = col[ok][-1]
    return x


def noise_sd(raw: FloatArray) -> float:
    """White-noise standard deviation of ``raw`` from its second differences.

    Breathing barely shows in second differences at the working rate, so
    their median absolute value measures the sensor noise alone.
    """
    if raw.shape[0] < 3:
        return 0.0
    d2 = raw[2:] - 2.0 * raw[1:-1]
    d2 += raw[:-2]
    # median |N(0, 6 s^2)| = 0.6745 * sqrt(6) * s
    return median(np.abs(d2, out=d2), overwrite=True) / (0.6745 * math.sqrt(6.0))


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
    return float(phase_delays_s(sos, np.array([f_hz], dtype=np.float64), fs)[0])


def phase_delays_s(sos: FloatArray, f_hz: FloatArray, fs: float) -> FloatArray:
    """Phase delays (seconds) of ``sos`` at each of the frequencies ``f_hz`` (one call)."""
    f = np.asarray(f_hz, dtype=np.float64)
    if not ((f > 0) & (f < fs / 2)).all():
        raise ValueError(f"frequencies {f_hz!r} must lie in (0, {fs / 2})")
    _, h = sps.sosfreqz(sos, worN=f, fs=fs)
    return np.asarray(-np.angle(h) / (2 * math.pi * f), dtype=np.float64)


def _plain(b: FloatArray, a: FloatArray) -> tuple[list[float], list[float]]:
    """One section's coefficients as plain floats, ``a[0]`` scaled to 1 (as lfilter does)."""
    return (b / a[0]).tolist(), (a / a[0]).tolist()


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
        self._zi_unit = sps.sosfilt_zi(self.sos)
        self._n_sections = int(self.sos.shape[0])
        self._b = [self.sos[k, :3].copy() for k in range(self._n_sections)]
        self._a = [self.sos[k, 3:].copy() for k in range(self._n_sections)]
        # the same, as plain floats for short chunks (:func:`df2t_loop`)
        self._bl = [_plain(self._b[k], self._a[k])[0] for k in range(self._n_sections)]
        self._al = [_plain(self._b[k], self._a[k])[1] for k in range(self._n_sections)]
        # per section: the state, shaped (2,) for 1-D input or (2, n_channels) ...
        self._zi: list[FloatArray] | None = None
        # ... or, between short 1-D chunks, as plain floats (one of the two is kept)
        self._zl: list[list[float]] | None = None

    def reset(self) -> None:
        """Forget the state (after a gap): the next sample seeds it again."""
        self._zi = None
        self._zl = None

    @property
    def seeded(self) -> bool:
        return self._zi is not None or self._zl is not None

    def process(self, x: FloatArray) -> FloatArray:
        """Filter ``x`` of shape (n,) or (n, n_channels); same shape out."""
        if type(x) is not np.ndarray or x.dtype != _F64:
            x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return np.empty_like(x)
        one_d = x.ndim == 1
        ch = 1 if one_d else x.shape[1]
        if ch != self.n_channels:
            raise ValueError(f"expected {self.n_channels} channels, got {ch}")
        short = x.shape[0] * ch <= LOOP_MAX
        if one_d and short and (self._zl is not None or self._zi is None or self._zi[0].ndim == 1):
            return self._process_short_1d(x)
        zs = self._state_arrays(x)
        if short and zs[0].ndim == x.ndim:
            return self._process_short(x, zs)
        # Same recursion as sosfilt (direct form II transposed per section, the
        # same zi layout), one compiled lfilter call per section: sosfilt's fixed
        # cost per call is several times that (scipy 1.17: 0.35 ms against 0.06
        # for a 25-sample chunk) and dominates small chunks.
        axis = -1 if one_d else 0
        y: FloatArray = x
        for k in range(self._n_sections):
            z = zs[k]
            if z.ndim != x.ndim:  # the caller switched between 1-D and 2-D input
                z = z.reshape(2) if one_d else z.reshape(2, 1)
            y, zs[k] = lfilter_zi(self._b[k], self._a[k], y, axis, z)
        return y

    def _state_arrays(self, x: FloatArray) -> list[FloatArray]:
        """The state as arrays (seeded on ``x[0]`` when there is none yet)."""
        if self._zl is not None:  # from the plain-float form of short 1-D chunks
            self._zi, self._zl = [np.array(z) for z in self._zl], None
        zs = self._zi
        if zs is None:
            x0 = x[0]
            zs = self._zi = [self._zi_unit[k, :, np.newaxis] * x0 for k in range(self._n_sections)]
            if x.ndim == 1:
                zs[:] = [z.reshape(2) for z in zs]
        return zs

    def _process_short_1d(self, x: FloatArray) -> FloatArray:
        """A short 1-D chunk through every section in plain Python, the state kept as floats.

        (Converting the state to and from arrays at every chunk cost as much
        as filtering a few samples.)
        """
        zl = self._zl
        if zl is None:
            zl = self._zl = [z.tolist() for z in self._state_arrays(x)]
            self._zi = None
        v = x.tolist()
        if self._n_sections == 2:  # (a band-pass: one pass through both)
            return np.array(df2t_loop2(self._bl, self._al, v, zl))
        for k in range(self._n_sections):
            v = df2t_loop(self._bl[k], self._al[k], v, zl[k])
        return np.array(v)

    def _process_short(self, x: FloatArray, zs: list[FloatArray]) -> FloatArray:
        """A short 2-D chunk through every section in plain Python (:func:`df2t_loop`)."""
        cols = []
        for c, col in enumerate(x.T.tolist()):  # each column on its own, as lfilter does
            for k in range(self._n_sections):
                z = zs[k][:, c].tolist()
                col = df2t_loop(self._bl[k], self._al[k], col, z)
                zs[k][:, c] = z
            cols.append(col)
        return np.array(cols).T.copy()


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
        self._bl, self._al = [1.0 - a, 0.0], [1.0, -a]  # (for df2t_loop)
        self.n_channels = n_channels
        self._zi: FloatArray | None = None

    def reset(self) -> None:
        self._zi = None

    def process(self, x: FloatArray) -> FloatArray:
        """Smooth ``x`` of shape (n,) or (n, n_channels)."""
        if type(x) is not np.ndarray or x.dtype != _F64:
            x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return np.empty_like(x)
        zi = self._zi
        if zi is None:
            # steady state at the first sample: y[-1] = x[0]
            zi = (self._a[1] * -1.0 * x[0]).reshape(1, -1)
        if x.ndim == 1 and x.shape[0] <= LOOP_MAX:
            # a live chunk: the plain loop, the same recursion as lfilter's
            z = [float(zi.reshape(1)[0])]
            y = np.array(df2t_loop(self._bl, self._al, x.tolist(), z))
            self._zi = np.array(z)
            return y
        if x.ndim == 1:
            y, zf = lfilter_zi(self._b, self._a, x, -1, zi.reshape(1))
        else:
            y, zf = lfilter_zi(self._b, self._a, x, 0, zi.reshape(1, -1))
        self._zi = zf
        return y
