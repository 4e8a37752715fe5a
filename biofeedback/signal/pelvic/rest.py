"""The resting tone: learned over 1 s blocks in which the floor rested.

Once per block (at fixed sample indices, so the result does not depend on the
chunking) :meth:`RestModel.end_block` takes the block's sums and decides how
the resting tone moves:

* both sensors of a two-channel probe stood shifted alike while the floor
  rested: the probe or the tone shifted (posture, slip, drift), the rest is
  where the signal is now;
* resting and steady for two blocks: the rest follows the tone's slow drift
  (an EWMA plus the drift's slope, :class:`RestTrend`);
* otherwise (an action, an unsteady block) the rest goes on drifting as it did;
* after an action that came most of the way back (an :class:`Episode`), a short
  window in which a steady level re-anchors the rest (tone drifts during a set).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from biofeedback.signal.filters import Ewma, FloatArray

__all__ = [
    "COMMON_FRAC",
    "Block",
    "Episode",
    "Learned",
    "RestModel",
    "RestTrend",
    "Ripple",
    "trend_fit",
    "trend_fit_reference",
]

#: Two-channel probe: a change that moves the tip by the base's amount, within
#: this fraction of it, is common to both sensors (posture, probe shift, drift);
#: a muscle moves the base about twice as much as the tip, bearing down the tip
#: about one and a half times as much as the base.
COMMON_FRAC = 0.25

#: Blocks after an action in which a steady level may re-anchor the rest.
POST_BLOCKS = 10


def trend_fit(pts: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares slope of ``(block, level)`` points and its standard error.

    A plain loop: at most 40 points once per resting block, where building
    arrays costs more than the sums (:func:`trend_fit_reference` is the same
    fit in numpy).
    """
    n = len(pts)
    xs, ys = zip(*pts, strict=True)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sxy = syy = 0.0
    for i, v in pts:
        dx = i - mx
        dy = v - my
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    slope = sxy / sxx
    rss = max(syy - slope * sxy, 0.0)  # the residuals' sum of squares
    return slope, math.sqrt(rss / (n - 2) / sxx)


def trend_fit_reference(pts: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """:func:`trend_fit` in numpy (the reference for its test)."""
    x = np.array([p[0] for p in pts], dtype=np.float64)
    y = np.array([p[1] for p in pts])
    x -= x.mean()
    y -= y.mean()
    sxx = float(np.dot(x, x))
    slope = float(np.dot(x, y)) / sxx
    res = y - slope * x
    return slope, math.sqrt(float(np.dot(res, res)) / (len(pts) - 2) / sxx)


class RestTrend:
    """The resting tone's drift per block, from the recent resting blocks.

    A sensor drifts steadily (up to a few cmH2O a minute); the rest follows it
    while the floor rests, but not during a set of drops or a contraction, and
    after a 40 s set the tone may have moved past the drop margin. The slope of
    the last resting blocks' levels (a line through up to 40 of them, over at
    least 8), where it stands out of their scatter, carries the rest on through
    such a stretch, for a minute at most.

    Parameters
    ----------
    block_s : float
        Block length, s.
    max_rate : float
        The largest drift believed, stream units per minute.
    """

    def __init__(self, block_s: float, max_rate: float = 3.0) -> None:
        self._cap = max_rate * block_s / 60.0
        self._skip_max = round(60.0 / block_s)
        self._i = 0  # blocks seen
        self._pts: deque[tuple[int, float]] = deque(maxlen=40)
        self._slope = 0.0
        self._since = 0  # blocks since the last resting one

    def add(self, level: float) -> float:
        """A resting block's level; the drift expected over this block."""
        self._i += 1
        self._since = 0
        pts = self._pts
        while pts and self._i - pts[0][0] > 80:  # only the last 80 blocks' levels
            pts.popleft()
        pts.append((self._i, level))
        if len(pts) >= 8 and pts[-1][0] - pts[0][0] >= 8:
            slope, se = trend_fit(pts)
            # a drift only where the line stands out of the levels' scatter (3 SE)
            slope = slope if abs(slope) > 3.0 * se else 0.0
            self._slope = min(max(slope, -self._cap), self._cap)
        else:
            self._slope = 0.0
        return self._slope

    def shift(self, step: float) -> None:
        """The baseline stepped (the body moved): the levels kept move with it."""
        self._pts = deque(((i, lv + step) for i, lv in self._pts), maxlen=40)

    def skip(self) -> float:
        """A block that was not resting: the drift expected over it."""
        self._i += 1
        self._since += 1
        return self._slope if self._since <= self._skip_max else 0.0


class Ripple:
    """The base's breathing ripple (the base less its slow part, an EWMA),
    worked out only when it is asked for.

    The samples wait until then, and the EWMA runs over all of them in one
    call (it gives the same values however its input is split): outside long
    rests the ripple is not needed, and a short chunk costs no filter call.

    Parameters
    ----------
    fs : float
        Sample rate.
    tau_s : float
        The EWMA's time constant (its output is the slow part).
    keep : int
        Samples kept waiting at most between :meth:`trim` calls.
    """

    def __init__(self, fs: float, tau_s: float = 4.0, keep: int = 512) -> None:
        self._slow = Ewma(tau_s, fs)
        self._keep = keep
        self._waiting: list[FloatArray] = []
        self._n = 0

    def reset(self) -> None:
        """A gap: the EWMA starts again (the samples waiting are dropped)."""
        self._slow.reset()
        self._waiting = []
        self._n = 0

    def add(self, base: FloatArray) -> None:
        """Samples of the base (kept as given: the caller does not write to them)."""
        self._waiting.append(base)
        self._n += int(base.shape[0])

    def newest(self, n: int) -> FloatArray:
        """The ripple of the newest ``n`` samples (at most those added since
        the last call); the EWMA catches up over every sample waiting."""
        w = self._waiting
        x = w[0] if len(w) == 1 else np.concatenate(w)
        self._waiting = []
        self._n = 0
        r: FloatArray = x[x.shape[0] - n :] - self._slow.process(x)[x.shape[0] - n :]
        return r

    def trim(self) -> None:
        """Past ``keep`` samples waiting, the EWMA catches up (nothing asked)."""
        if self._n > self._keep:
            self.newest(0)


@dataclass
class Learned:
    """What the tracker has learned of the person and the sensor."""

    rest: float | None = None  # resting tone, base channel
    rest_tip: float = 0.0  # resting tone, tip channel
    ripple_var: float = 0.0  # variance of the breathing ripple at rest
    sigma: float = 0.0  # noise SD of the smoothed base
    rise_peak: float = 0.0  # the largest recent rise above rest (decays)


@dataclass
class Block:
    """The current rest-update block: its samples and what happened in it.

    The samples are summed once the block is complete, so the sums (and the
    resting tone) do not depend on where chunks happen to split a block.
    """

    buf: FloatArray  # rows: base, tip
    n: int = 0
    lo: float = math.inf  # lowest base level
    hi: float = -math.inf  # highest base level
    rest: bool = True  # every sample was REST
    rise: bool = False  # a contraction or strain sample

    def add(self, base: FloatArray, tip: FloatArray | None) -> None:
        """Append a stretch's samples (``tip`` None: one channel)."""
        pos, n = self.n, int(base.shape[0])
        self.buf[0, pos : pos + n] = base
        if tip is not None:
            self.buf[1, pos : pos + n] = tip
        self.n = pos + n

    def clear(self) -> None:
        """Start the next block."""
        self.n = 0
        self.lo, self.hi = math.inf, -math.inf
        self.rest = True
        self.rise = False


@dataclass
class Episode:
    """An action under way (since the last rest) and the re-anchoring window after it."""

    sign: int = 0  # -1 a drop, +1 a rise is under way
    excursion: float = 0.0  # largest distance from rest during it
    post: int = 0  # blocks left in the re-anchoring window
    post_quiet: int = 0  # steady blocks in the window so far
    post_sum: float = 0.0  # their base levels, summed
    post_tip: float = 0.0  # their tip levels, summed

    def open_window(self) -> None:
        """The action came most of the way back: a steady level may re-anchor the rest."""
        if self.post == 0:
            self.clear_window()
        self.post = POST_BLOCKS
        self.sign = 0

    def clear_window(self) -> None:
        self.post_quiet = 0
        self.post_sum = self.post_tip = 0.0


@dataclass
class RestModel:
    """The resting tone, updated once per block.

    Parameters
    ----------
    two : bool
        A two-channel (base and tip) probe.
    alpha : float
        EWMA weight of one resting block.
    peak_decay : float
        Per-block decay of the recent-contraction scale.
    trend : RestTrend
        The drift tracker.
    """

    two: bool
    alpha: float
    peak_decay: float
    trend: RestTrend
    learned: Learned = field(default_factory=Learned)
    episode: Episode = field(default_factory=Episode)
    quiet: int = 0  # consecutive resting, steady blocks

    def end_block(
        self, b: Block, sigma: float, md: float, ripple: Callable[[int], FloatArray]
    ) -> None:
        """Update the rest from a complete block (``md``: the drop margin;
        ``ripple(n)``: the breathing ripple of the newest ``n`` samples, asked
        for only when the ripple's variance is updated)."""
        n = b.n
        lr = self.learned
        if n == 0 or lr.rest is None:
            return
        bb = b.buf
        level = (0.0 + float(np.add.reduce(bb[0, :n]))) / n
        tip = (0.0 + float(np.add.reduce(bb[1, :n]))) / n if self.two else 0.0
        lr.sigma = sigma
        steady = (b.hi - b.lo) < max(md, 4.0 * sigma)
        self.quiet = self.quiet + 1 if (b.rest and steady) else 0
        if b.rise:
            lr.rise_peak = max(lr.rise_peak, b.hi - lr.rest)
        else:
            lr.rise_peak *= self.peak_decay
        self._move_rest(b, level, tip, md)
        if self.episode.post > 0:
            self._post_window(steady, level, tip, md)
        if self.quiet >= 8:
            # the ripple filter has forgotten any action by now; one block
            # may move the estimate by a bounded factor only
            r = ripple(n)
            v = (0.0 + float(np.dot(r, r))) / n
            if lr.ripple_var > 0:
                v = min(max(v, 0.25 * lr.ripple_var), 4.0 * lr.ripple_var)
            lr.ripple_var += self.alpha * (v - lr.ripple_var)

    def shift_rest(self, step: float) -> None:
        """The baseline stepped (the body moved): the rest and its recent levels move with it."""
        lr = self.learned
        if lr.rest is None:
            return
        lr.rest += step
        lr.rest_tip += step
        self.trend.shift(step)
        # the action under way is as far from the new rest as it is, not as it
        # seemed: else a held drop would look like one that came back, and its
        # level re-anchor the rest
        ep = self.episode
        ep.excursion = max(0.0, ep.excursion - ep.sign * step)

    def _move_rest(self, b: Block, level: float, tip: float, md: float) -> None:
        lr = self.learned
        assert lr.rest is not None
        if self.two and b.rest and abs(level - lr.rest) > md and self.floor_rests(level, tip, md):
            # both sensors moved alike while the floor rested: the probe or the
            # tone shifted (posture, slip, drift); the rest is where it is now
            lr.rest = level
            lr.rest_tip = tip
        elif self.quiet >= 2:
            # resting and steady for two blocks: follow the slow drift of the tone
            step = self.trend.add(level)
            a = self.alpha
            lr.rest += step + a * (level - lr.rest - step)
            lr.rest_tip += step + a * (tip - lr.rest_tip - step)
        else:
            # an action or an unsteady block: the rest goes on drifting as it did
            step = self.trend.skip()
            lr.rest += step
            lr.rest_tip += step

    def _post_window(self, steady: bool, level: float, tip: float, md: float) -> None:
        """After an action: three steady blocks near rest re-anchor it there."""
        ep, lr = self.episode, self.learned
        assert lr.rest is not None
        ep.post -= 1
        if steady:
            ep.post_quiet += 1
            ep.post_sum += level
            ep.post_tip += tip
        else:
            ep.clear_window()
        if ep.post_quiet >= 3:
            lvl = ep.post_sum / ep.post_quiet
            bound = self.anchor_bound(md)
            tip_level = ep.post_tip / ep.post_quiet
            if abs(lvl - lr.rest) < bound and self.floor_rests(lvl, tip_level, md):
                lr.rest_tip = tip_level
                lr.rest = lvl
            ep.post = 0
        if ep.post == 0:
            ep.clear_window()
            ep.excursion = 0.0

    def anchor_bound(self, md: float) -> float:
        """How far from the rest a steady level after an action may re-anchor it."""
        return max(3.0 * md, min(0.4 * self.episode.excursion, 6.0 * md))

    def floor_rests(self, base: float, tip: float, md: float) -> bool:
        """Levels away from rest are the floor's own rest moved (one channel
        cannot tell: yes); two channels: both moved alike."""
        lr = self.learned
        if not self.two or lr.rest is None:
            return True
        shift = base - lr.rest
        dt = (tip - lr.rest_tip) - shift
        return abs(dt) <= COMMON_FRAC * min(abs(shift), 3.0 * md) + 0.125 * md
