"""Changes faster than a muscle: a cough's spike and a probe's slip, taken out.

The pelvic floor changes the probe pressure with muscle time constants (a
contraction rises over about a second, a drop over half a second). A cough
(a sharp spike of abdominal pressure) or a probe that slips (a sudden offset)
changes it within a tenth of a second. :class:`JumpGate` watches the change
over 0.1 s; when it is far beyond what the signal usually does in that time,
it holds the signal at its level from before the jump and decides what
happened:

* **spike** -- back near the level before: nothing happened to the floor;
* **step** -- it reached its new level at once and stays there: the probe
  moved; the offset is removed from then on (the rest stays where it was).
  A two-channel probe that moves shifts both sensors alike: a jump that moved
  them apart is the floor's (a contraction begun with a cough), and passes;
* **action** -- it kept going the same way after its first 0.1 s (a quick
  contraction, a drop: muscles do not finish in 0.1 s): the hold ends at once
  and the signal passes unchanged.

Causal, per sample, and the same however the stream is chunked: its noise
scale is updated at fixed sample indices, and the per-sample loop runs only
inside a window (rare).
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.filters import FloatArray, median

__all__ = ["CommonShift", "JumpGate"]

_K_SD = 8.0  # a jump is this many typical 0.1 s changes
_SPIKE_BACK = 0.3  # within this fraction of the excursion: back where it was
_STEP_FAST = 0.7  # a step had this much of its size within its first 0.1 s
_STEADY = 6.0  # a step is this many times the spread of the levels around it
_GOING_ON = 0.3  # an action still grows by this fraction in its second 0.1 s
_QUANTUM = 1e-9  # resolution of the common shift (stream units)


class JumpGate:
    """Removes spikes and steps faster than a muscle from probe pressure.

    Parameters
    ----------
    fs : float
        Sample rate (after any decimation).
    n_channels : int
        Columns; column ``main`` decides, every column is corrected.
    main : int
        The column that decides (the base sensor).
    window_s : float
        How long a jump is held before deciding (longer than a cough).
    tip : int or None
        A two-channel probe's tip column: a step must move it as the main
        column, within ``frac`` of the main's change (None: one channel).
    frac : float
        See ``tip``.
    """

    def __init__(
        self,
        fs: float,
        n_channels: int,
        main: int = 0,
        window_s: float = 0.7,
        *,
        tip: int | None = None,
        frac: float = 0.25,
    ) -> None:
        self.k = max(1, round(0.1 * fs))
        self.main = main
        self.tip = tip
        self.frac = frac
        self._win_n = max(self.k + 2, round(window_s * fs))
        self._block_n = max(4 * self.k, round(2.0 * fs))
        # work buffer: the last 3k input samples (``_h`` rows) at the front, a
        # piece (at most a block) written behind them: no concatenation per chunk
        self._ext = np.empty((3 * self.k + self._block_n, n_channels))
        self._h = 0
        self.offset = np.zeros(n_channels)  # removed steps, per column
        self._scale = math.nan  # typical |change over k samples| (robust)
        self._n = 0  # samples seen
        # the 0.1 s changes of the current block (the first ``_dn``)
        self._d_block = np.empty(self._block_n)
        self._dn = 0
        # the open window: samples left, level before, largest excursion, first 0.1 s
        self._left = 0
        self._pre = np.zeros(n_channels)
        self._peak = 0.0
        self._early = 0.0
        self._since = 0
        self._pre_sd = 0.0
        self._armed = True  # False from a muscle's change until it slows
        self._es: list[float] = []
        self.jumps = 0  # spikes and steps removed
        self.moved_at = -1  # sample index of the last step removed (-1: none)

    def reset(self) -> None:
        """A gap: forget the history (the removed offset and the scale stay)."""
        self._h = 0
        self._dn = 0
        self._left = 0

    def process(self, x: FloatArray) -> FloatArray:
        """Corrected samples, shape as ``x`` (``(n, channels)``; ``x`` itself
        while no step has been taken out: do not write to it)."""
        m = x.shape[0]
        b = min(m, self._block_n - self._n % self._block_n)
        if b == m:  # (the usual case: the chunk ends inside the scale's block)
            return self._piece(x)
        out = np.empty_like(x)
        a = 0
        while a < m:
            # pieces end at the scale's block boundaries (fixed sample indices)
            b = min(m, a + self._block_n - self._n % self._block_n)
            out[a:b] = self._piece(x[a:b])
            a = b
        return out

    def _piece(self, x: FloatArray) -> FloatArray:
        """Corrected samples of a piece inside one scale block (``x`` itself
        while no step has been taken out)."""
        k = self.k
        m = x.shape[0]
        h = self._h
        ext = self._ext[: h + m]  # the history, then the piece
        ext[h:] = x
        d = self._changes(ext, h)
        thr = _K_SD * self._scale
        ad = np.abs(d)
        top = float(np.maximum.reduce(ad))
        if math.isfinite(top):  # (the usual case: one reduction tells all)
            seen = d
            big = top > thr  # (False while the scale is unknown: NaN)
        else:  # the history is filling, or a value is not finite
            seen = d[np.isfinite(d)]
            big = bool(np.any(ad > thr))
        quiet = self._left == 0 and not big
        if quiet and not self._armed:
            self._armed = not np.all(np.isfinite(d)) or bool(np.any(ad <= 0.5 * thr))
        if quiet:  # (no step taken out yet: the samples pass as they are)
            out = x - self.offset if self.moved_at >= 0 else x
        else:
            out = self._walk(ext, h, d, thr)
        keep = min(3 * k, h + m)
        self._ext[:keep] = ext[h + m - keep :]
        self._h = keep
        self._n += x.shape[0]
        self._note_changes(seen, d)
        return out

    def _changes(self, ext: FloatArray, h: int) -> FloatArray:
        """The main column's change over 0.1 s at each sample of the piece (NaN
        where the history is too short), written into the block's buffer."""
        k, main, n = self.k, self.main, ext.shape[0]
        d = self._d_block[self._dn : self._dn + n - h]
        if h >= k:  # a full history: every change over 0.1 s is known
            np.subtract(ext[h:, main], ext[h - k : n - k, main], out=d)
        else:
            d.fill(np.nan)
            if n > k:
                lo = max(h, k)
                d[lo - h :] = ext[lo:, main] - ext[lo - k : -k, main]
        return d

    def _note_changes(self, seen: FloatArray, d: FloatArray) -> None:
        """Keep the piece's finite changes ``seen`` (``d``: all of them, already
        in the block's buffer); at a block's end, the scale from them."""
        if seen is not d:
            self._d_block[self._dn : self._dn + seen.shape[0]] = seen
        self._dn += seen.shape[0]
        if self._n % self._block_n == 0 and self._dn:
            # the scale from blocks as they come: a robust spread of the 0.1 s changes
            dd = self._d_block[: self._dn]
            dd -= median(dd)
            s = 1.4826 * median(np.abs(dd, out=dd), overwrite=True)
            if s > 0:
                self._scale = s if math.isnan(self._scale) else 0.8 * self._scale + 0.2 * s
            self._dn = 0

    def _walk(self, ext: FloatArray, h: int, d: FloatArray, thr: float) -> FloatArray:
        """A piece in which a window is open or opens (``ext``: the piece with
        the ``h`` samples of history before it): the stretches outside windows
        at once, sample by sample only inside them (:meth:`_walk_reference`,
        the plain loop over every sample, gives the same)."""
        x = ext[h:]
        m = x.shape[0]
        out = np.empty_like(x)
        xm, dl = x[:, self.main].tolist(), d.tolist()
        i = 0
        while i < m:
            if self._left == 0:
                j = self._next_opening(d, i, thr)
                out[i:j] = x[i:j] - self.offset
                if j == m:
                    break
                self._open(ext, h, j)
                i = j
            a, held = i, True
            while i < m and self._left and held:
                held = self._hold_sample(ext, h, i, xm[i], dl[i], thr)
                i += 1
            out[a : i if held else i - 1] = self._pre
            if not held:  # a muscle's change: it passes from this sample on
                out[i - 1] = x[i - 1] - self.offset
        return out

    def _walk_reference(self, ext: FloatArray, h: int, d: FloatArray, thr: float) -> FloatArray:
        """:meth:`_walk` as a plain loop over every sample (its reference)."""
        x = ext[h:]
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            if not self._armed:
                # after a muscle's change: wait until it slows before watching again
                self._armed = not abs(d[i]) > 0.5 * thr
            elif self._left == 0 and abs(d[i]) > thr:
                self._open(ext, h, i)
            if self._left and self._hold_sample(ext, h, i, float(x[i, self.main]), d[i], thr):
                out[i] = self._pre
            else:
                out[i] = x[i] - self.offset
        return out

    def _next_opening(self, d: FloatArray, i: int, thr: float) -> int:
        """Local index of the next sample from ``i`` that opens a window (the
        piece's length: none); re-arms the gate where a muscle's change slowed."""
        m = d.shape[0]
        if not self._armed:
            calm = np.flatnonzero(~(np.abs(d[i:]) > 0.5 * thr))
            if not calm.shape[0]:
                return m
            self._armed = True
            i += int(calm[0]) + 1  # (re-armed at that sample: a window opens from the next)
        big = np.flatnonzero(np.abs(d[i:]) > thr)
        return i + int(big[0]) if big.shape[0] else m

    def _open(self, ext: FloatArray, h: int, i: int) -> None:
        """A window opens at local index ``i``: the level before is the one 0.1 s back."""
        self._left = self._win_n
        j = max(h + i - self.k, 0)
        self._pre = ext[j] - self.offset
        self._pre_sd = float(np.std(ext[max(j - 2 * self.k, 0) : j + 1, self.main]))
        self._peak = 0.0
        self._since = 0
        self._es = []

    def _hold_sample(
        self, ext: FloatArray, h: int, i: int, xi: float, di: float, thr: float
    ) -> bool:
        """One sample inside the open window (local index ``i``, its main value
        ``xi`` and 0.1 s change ``di``): True while it is held at the level
        before; False once the change turned out a muscle's (the window
        closes and the sample passes)."""
        main = self.main
        e = xi - float(self.offset[main]) - float(self._pre[main])
        if abs(e) > abs(self._peak):
            self._peak = e
        self._since += 1
        self._es.append(e)
        if self._since > 2 * self.k and self._again(ext, h + i, di, thr):
            # a second jump while the first is held (a probe that slips twice):
            # judged together, from the level before the first
            self._left = self._win_n
            self._since = 1
        if self._since == self.k:
            self._early = e
        elif self._since > self.k and (e - self._early) * self._early > _GOING_ON * (
            self._early * self._early
        ):
            # still going the same way after its first 0.1 s: a muscle, let it pass
            self._left = 0
            self._armed = False
            return False
        self._left -= 1
        if self._left == 0:
            self._decide(ext[h + i] - self.offset, e, i)
        return True

    def _again(self, ext: FloatArray, j: int, dj: float, thr: float) -> bool:
        """A new jump at ``ext[j]``: past the threshold, and much faster than the
        0.1 s before it (a muscle slows down as it goes; a second slip starts
        from standing still)."""
        k = self.k
        if not abs(dj) > thr or j < 2 * k:
            return False
        before = float(ext[j - k, self.main] - ext[j - 2 * k, self.main])
        return abs(dj) > 3.0 * abs(before)

    def _decide(self, now: FloatArray, e: float, i: int) -> None:
        peak = self._peak
        if abs(e) <= _SPIKE_BACK * abs(peak):
            self.jumps += 1  # a spike: nothing to keep
        elif (
            abs(self._early) >= _STEP_FAST * abs(e)
            and abs(e) >= 0.7 * abs(peak)
            # steady before and after: not a jolt within a tremulous contraction
            and abs(e) > _STEADY * max(self._pre_sd, float(np.std(self._es[-self.k :])))
            and self._alike(now - self._pre)
        ):
            self.offset = self.offset + (now - self._pre)  # a step: the probe moved
            self.jumps += 1
            self.moved_at = self._n + i
        # else an action: it passes from here on

    def _alike(self, moved: FloatArray) -> bool:
        """Every sensor of the probe moved as the main one (one channel: yes)."""
        if self.tip is None:
            return True
        dm = float(moved[self.main])
        return abs(float(moved[self.tip]) - dm) <= self.frac * abs(dm)


class CommonShift:
    """Takes out what moves both sensors of a two-channel probe alike.

    A posture change, a probe shift or sensor drift moves the base and the tip
    sensors by the same amount; the floor does not (a drop or a squeeze moves
    the base about twice as much as the tip, bearing down the tip one and a
    half times as much as the base). Where the (smoothed) pair changed over the
    last ``span`` samples by more than the drop margin, and by the same amount
    within ``frac`` of it, each sample's change is added to an offset that is
    taken out of both from then on. Slow drift passes (the resting-tone tracker
    follows it), and so does everything the floor does.

    Parameters
    ----------
    span : int
        Samples over which a change is measured (0.2 s: longer than the noise
        correlation, shorter than a posture change).
    frac : float
        How far the two changes may differ, as a fraction of the base's.
    """

    def __init__(self, span: int, frac: float = 0.25) -> None:
        self.span = max(1, span)
        self.frac = frac
        self._off = 0  # taken out so far, in _QUANTUM units (integers: the sum is
        # exact, the same however the stream is chunked)
        # work buffer, rows base and tip: the last ``_h`` (<= span) input
        # samples at the front, a chunk written behind them (no concatenation)
        self._w = np.empty((2, self.span + 64))
        self._h = 0

    def reset(self) -> None:
        """A gap: changes across it are not changes (the offset stays)."""
        self._h = 0

    def process(
        self, base: FloatArray, tip: FloatArray, margin: float
    ) -> tuple[FloatArray, FloatArray]:
        """``(base, tip)`` with the common shifts taken out (the inputs
        themselves while nothing has been taken out: do not write to them)."""
        n = base.shape[0]
        h = self._h
        k = self.span
        w = self._history_and(base, tip)
        if h + n <= k or not margin > 0:
            self._keep(h + n)
            return self._less(base, tip)
        # change over the span ending at each sample (the base first: usually
        # nothing moved that fast, and nothing else is needed)
        lo = max(h, k)
        eb, et = w[0, : h + n], w[1, : h + n]
        moved = eb[lo:] - eb[lo - k : h + n - k]  # (from sample lo - h on)
        # (fmax skips NaN: no NaN change is fast)
        if not np.fmax.reduce(np.abs(moved, out=moved)) > margin:
            self._keep(h + n)
            return self._less(base, tip)
        db = np.zeros(n)
        db[lo - h :] = eb[lo:] - eb[lo - k : h + n - k]
        fast = np.abs(db) > margin
        dt = np.zeros(n)
        dt[lo - h :] = et[lo:] - et[lo - k : h + n - k]
        common = fast & (np.abs(dt - db) <= self.frac * np.abs(db))
        if not common.any():
            self._keep(h + n)
            return self._less(base, tip)
        # each sample's own change (from the one before), where the span's is common
        one = max(h, 1)
        step = np.zeros(n)
        step[one - h :] = 0.5 * (eb[one:] - eb[one - 1 : -1] + et[one:] - et[one - 1 : -1])
        self._keep(h + n)
        inc = np.where(common, np.rint(step / _QUANTUM), 0.0)
        units = self._off + np.cumsum(inc.astype(np.int64))
        self._off = int(units[-1])
        shift = units * _QUANTUM
        return base - shift, tip - shift

    def _history_and(self, base: FloatArray, tip: FloatArray) -> FloatArray:
        """The work buffer with the chunk written behind the history (grown if needed)."""
        h, n = self._h, base.shape[0]
        w = self._w
        if w.shape[1] < h + n:
            grown = np.empty((2, max(h + n, 2 * w.shape[1])))
            grown[:, :h] = w[:, :h]
            w = self._w = grown
        w[0, h : h + n] = base
        w[1, h : h + n] = tip
        return w

    def _less(self, base: FloatArray, tip: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(base, tip)`` less the offset taken out so far."""
        if self._off == 0:
            return base, tip
        off = self._off * _QUANTUM
        return base - off, tip - off

    def _keep(self, end: int) -> None:
        """Keep the last ``span`` of the ``end`` samples in the buffer for the next call."""
        keep = min(self.span, end)
        if end > keep:
            self._w[:, :keep] = self._w[:, end - keep : end]
        self._h = keep

    @property
    def offset(self) -> float:
        """The offset taken out of both sensors so far (stream units)."""
        return self._off * _QUANTUM
