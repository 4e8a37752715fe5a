"""Signal quality per chunk: flat, clipped and noisy stretches of a stream.

Split from :mod:`biofeedback.signal.buffers` (re-exported, as there, by
:mod:`biofeedback.signal.filters`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["QualityMonitor"]

FloatArray = npt.NDArray[np.float64]

_add_reduce = np.add.reduce
_count_nonzero = np.count_nonzero


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
        self._w: dict[int, float] = {}  # chunk length -> weight of its variance update
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
        x0 = x[:, 0]
        self._note_repeats(x0, n)
        self._note_rails(x, n)
        self._note_spread(x0, n)
        hold = self._hold_n
        Q = self._Q
        if self._since_clip < hold:
            q = Q.CLIPPED
        elif self._since_flat < hold:
            q = Q.FLAT
        elif noise_sd is not None and noise_sd > self._noisy_ratio * math.sqrt(max(self._var, 0)):
            q = Q.NOISY
        else:
            q = Q.OK
        self.quality = q
        return q

    def _note_repeats(self, x0: FloatArray, n: int) -> None:
        """A stuck or silent stream repeats its first channel exactly: the
        longest run of repeats so far sets the flat flag."""
        last = self._last
        first_same = last is not None and x0.item(0) == last
        same_in = x0[1:] == x0[:-1]
        self._last = x0.item(n - 1)
        prev_run = self._run
        if not first_same and not _count_nonzero(same_in):
            # the usual case, a live signal: no repeat at all
            self._run = 0
            longest = prev_run
        else:
            same = np.empty(n, dtype=bool)
            same[0] = first_same
            same[1:] = same_in
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

    def _note_rails(self, x: FloatArray, n: int) -> None:
        """The rails: the highest and lowest value of any channel so far (one
        converter, one range); samples repeated at one set the clipped flag."""
        # (argmax/argmin and a lookup: a third of a full reduction's fixed cost;
        # a NaN wins both, as it does max and min)
        xf = x.ravel()
        hi = xf.item(int(xf.argmax()))
        lo = xf.item(int(xf.argmin()))
        if not (hi >= self._hi or lo <= self._lo):
            self._since_clip += n
            return
        self._hi = max(self._hi, hi)
        self._lo = min(self._lo, lo)
        clipped = False
        if self._hi > self._lo:
            # repeated samples at a rail
            rail = (x[1:] >= self._hi) | (x[1:] <= self._lo)
            rail &= x[1:] == x[:-1]
            clipped = int(np.count_nonzero(rail)) >= self._clip_n - 1
        self._since_clip = 0 if clipped else self._since_clip + n

    def _note_spread(self, x0: FloatArray, n: int) -> None:
        """Running variance of the first channel, updated per chunk (a display
        figure: chunk-size dependence does not matter here)."""
        mu = float(_add_reduce(x0)) / n
        dev = x0 - mu
        ss = float(np.dot(dev, dev))  # (the same sum as ``dev @ dev``, at less cost per call)
        w = self._w.get(n)
        if w is None:
            w = 1.0 - math.exp(-n / self._tau_n)
            if len(self._w) < 256:
                self._w[n] = w
        if self._mu is None:
            self._mu, self._var = mu, ss / n
        else:
            d = mu - self._mu
            self._mu += w * d
            self._var += w * (ss / n + d * d - self._var)
