"""Stream plumbing with kept state: block means, a regular grid, a ring buffer.

Like :mod:`biofeedback.signal.filters` (which re-exports these), causal and
chunking-invariant: one call or any chunks give the same output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BlockMean", "GridResampler", "RingBuffer"]

FloatArray = npt.NDArray[np.float64]

_F64 = np.dtype(np.float64)
_add_reduce = np.add.reduce
_count_nonzero = np.count_nonzero


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
        # the remainder (fewer than ``factor`` samples) waits at the front of
        # these work buffers; a chunk is written behind it, so no concatenation
        self._tbuf = np.empty(0)
        self._xbuf = np.empty((0, n_channels))
        self._r = 0

    def reset(self) -> None:
        self._r = 0

    def process(self, t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Blocks completed by ``(t, x)``: times (m,) and values (m, n_channels)."""
        if type(t) is not np.ndarray or t.dtype != _F64:
            t = np.asarray(t, dtype=np.float64)
        if type(x) is not np.ndarray or x.dtype != _F64:
            x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            x = x.reshape(t.shape[0], self.n_channels)
        return self._blocks(t, x, x)

    def process1(self, t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """:meth:`process` for one channel given as a 1-D array; block values 1-D too.

        Same sums as :meth:`process` (one state: the two may be mixed).
        """
        if self.n_channels != 1:
            raise ValueError(f"process1 needs one channel, this has {self.n_channels}")
        return self._blocks(t, x, x[:, np.newaxis])

    def _blocks(
        self, t: FloatArray, x: FloatArray, x2: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The blocks completed by ``t`` and ``x`` (``x2``: ``x`` as columns),
        block values shaped like ``x``; the incomplete rest waits in the buffer."""
        f = self.factor
        if f == 1:
            return t, x
        r = self._r
        n = r + t.shape[0]
        m = n // f
        k = m * f
        inv = 1.0 / f
        if r == 0 and k == n:  # whole blocks, nothing waiting: straight from the input
            return self._means(t, x, m, k, inv)
        if self._tbuf.shape[0] < n:
            size = max(n, 2 * self._tbuf.shape[0], 64)
            tbuf, xbuf = np.empty(size), np.empty((size, self.n_channels))
            tbuf[:r] = self._tbuf[:r]
            xbuf[:r] = self._xbuf[:r]
            self._tbuf, self._xbuf = tbuf, xbuf
        tbuf, xbuf = self._tbuf, self._xbuf
        tbuf[r:n] = t
        xbuf[r:n] = x2
        tb, xb = self._means(tbuf, xbuf if x.ndim == 2 else xbuf[:, 0], m, k, inv)
        self._r = n - k
        if k and k < n:
            tbuf[: n - k] = tbuf[k:n]
            xbuf[: n - k] = xbuf[k:n]
        return tb, xb

    def _means(
        self, t: FloatArray, x: FloatArray, m: int, k: int, inv: float
    ) -> tuple[FloatArray, FloatArray]:
        """Means of the ``m`` whole blocks in the first ``k`` samples."""
        f = self.factor
        if f == 2 and m >= 64:
            # a reduction over pairs walks its two-sample rows one by one; the
            # strided sum is the same arithmetic (``a + (0.0 + b)``: numpy's
            # reduction starts its partial sum from +0.0, which decides the
            # sign of a zero) at a fraction of the cost on long chunks
            tb = (t[0:k:2] + (t[1:k:2] + 0.0)) * inv
            xb = (x[0:k:2] + (x[1:k:2] + 0.0)) * inv
            return tb, xb
        tb = _add_reduce(t[:k].reshape(m, f), 1) * inv
        if x.ndim == 1:
            return tb, _add_reduce(x[:k].reshape(m, f), 1) * inv
        xb = _add_reduce(x[:k].reshape(m, f, self.n_channels), 1) * inv
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
    newest ``capacity`` samples move to the front only when it fills up, so
    the samples kept are always contiguous and any recent window is a view.
    The signal trackers address it by global index (:meth:`t`, :meth:`x`,
    :meth:`storage`); the live view reads the newest rows (:meth:`last`,
    :meth:`since`, read-only views).

    Parameters
    ----------
    capacity : int
        Samples kept.
    n_channels : int
        0 for a 1-D stream, else the number of columns (a 1-D chunk appended
        to a one-column buffer is taken as that column).
    """

    def __init__(self, capacity: int, n_channels: int = 0, *, aux: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, {capacity!r} is invalid")
        self.capacity = capacity
        self.n_channels = n_channels
        shape: tuple[int, ...] = (2 * capacity,) if n_channels == 0 else (2 * capacity, n_channels)
        self._t = np.empty(2 * capacity)
        self._x = np.empty(shape)
        # an optional second 1-D series on the same samples (one append moves both)
        self._aux = np.empty(2 * capacity) if aux else None
        self._len = 0
        self.total = 0  # samples ever appended

    @property
    def first(self) -> int:
        """Global index of the oldest sample kept."""
        return self.total - self._len

    def clear(self) -> None:
        """Forget the samples (the global index keeps counting)."""
        self._len = 0

    def _place(self, n: int) -> tuple[int, int, int]:
        """Make room for ``n`` (> 0) new samples: ``(skip, lo, hi)``, the new
        samples from ``skip`` on go to storage ``lo:hi``."""
        cap = self.capacity
        self.total += n
        if n >= cap:  # only the newest capacity samples stay
            self._len = cap
            return n - cap, 0, cap
        ln = self._len
        if ln + n > 2 * cap:  # full: the newest move to the front
            keep = cap - n
            s = ln - keep
            self._t[:keep] = self._t[s:ln]
            self._x[:keep] = self._x[s:ln]
            if self._aux is not None:
                self._aux[:keep] = self._aux[s:ln]
            ln = keep
        self._len = ln + n
        return 0, ln, ln + n

    def append(self, t: FloatArray, x: FloatArray, aux: FloatArray | None = None) -> None:
        """Append samples (``aux``: the second series, for a buffer made with ``aux=True``)."""
        n = int(t.shape[0])
        if n == 0:
            return
        if self.n_channels:
            x = x.reshape(n, -1) if x.ndim == 1 else x
            if x.shape[1] != self.n_channels:
                raise ValueError(f"expected {self.n_channels} channel(s), got {x.shape[1]}")
        k, lo, hi = self._place(n)
        self._t[lo:hi] = t[k:]
        self._x[lo:hi] = x[k:]
        if self._aux is not None and aux is not None:
            self._aux[lo:hi] = aux[k:]

    def t(self, g0: int, g1: int) -> FloatArray:
        """Times of global samples ``g0 .. g1-1`` (clipped to what is kept)."""
        base = self.first
        return self._t[max(g0 - base, 0) : max(g1 - base, 0)]

    def x(self, g0: int, g1: int) -> FloatArray:
        """Values of global samples ``g0 .. g1-1`` (clipped to what is kept)."""
        base = self.first
        return self._x[max(g0 - base, 0) : max(g1 - base, 0)]

    def storage(self) -> tuple[FloatArray, FloatArray]:
        """The backing arrays ``(t, x)``: global sample ``g`` sits at ``g - first``.

        For hot loops that slice many times per chunk; the arrays stay the same
        objects for the buffer's life, their contents move on :meth:`append`.
        """
        return self._t, self._x

    def aux_storage(self) -> FloatArray:
        """The backing array of the second series (a buffer made with ``aux=True``)."""
        if self._aux is None:
            raise ValueError("this buffer keeps no second series (aux=False)")
        return self._aux

    def append2(self, t: FloatArray, a: npt.NDArray[Any], b: npt.NDArray[Any]) -> None:
        """Append two columns given separately (a buffer with ``n_channels=2``)."""
        n = int(t.shape[0])
        if n == 0:
            return
        k, lo, hi = self._place(n)
        self._t[lo:hi] = t[k:]
        self._x[lo:hi, 0] = a[k:]
        self._x[lo:hi, 1] = b[k:]

    def since(self, t0: float) -> tuple[FloatArray, FloatArray]:
        """Times and values of the kept samples at or after ``t0`` (read-only views)."""
        tt = self._t[: self._len]
        i = int(np.searchsorted(tt, t0, side="left"))
        return _read_only(tt[i:], self._x[i : self._len])

    def last(self, n: int | None = None) -> tuple[FloatArray, FloatArray]:
        """The newest ``n`` samples (``capacity`` when None) as read-only views ``(t, x)``."""
        k = len(self) if n is None else max(0, min(int(n), len(self)))
        return _read_only(self._t[self._len - k : self._len], self._x[self._len - k : self._len])

    @property
    def last_t(self) -> float | None:
        """Time of the newest sample (None when empty)."""
        return float(self._t[self._len - 1]) if self._len else None

    def __len__(self) -> int:
        """Samples held, at most ``capacity`` (the storage may hold older ones too)."""
        return min(self._len, self.capacity)

    @property
    def nbytes(self) -> int:
        """Bytes of storage (fixed for the buffer's life)."""
        aux = self._aux.nbytes if self._aux is not None else 0
        return int(self._t.nbytes + self._x.nbytes + aux)


def _read_only(t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Views a reader cannot write into the buffer through by mistake."""
    t.flags.writeable = False
    x.flags.writeable = False
    return t, x
