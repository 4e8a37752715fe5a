"""Breath–pelvic coupling per breath cycle, and reps.

Done right, the floor *drops on the inhale* (below resting tone), *keeps the
release on the exhale*, and never strains. Each completed breath cycle
(inhale onset → exhale onset → next inhale onset) is scored 0–100 from the
pelvic level relative to rest during its inhale and exhale:

* up to 50 points for the drop during the inhale (its deepest tenth, full at
  1.5 drop margins);
* up to 35 for keeping the release through the exhale (mean exhale level a
  drop margin below rest);
* up to 15 for staying down through the whole inhale (mean inhale level a
  drop margin below rest);
* strain scores 0; a contraction caps the score. Every point comes from the
  floor being *below* rest and shrinks as the pressure rises: a pressure rise
  is never rewarded (raising any sample never raises the score).

Which scored cycles are *reps* is the rep policy's call
(:mod:`biofeedback.signal.reps`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biofeedback.signal.filters import FloatArray, percentile
from biofeedback.signal.results import CouplingResult
from biofeedback.signal.types import (
    BreathEvent,
    Int8Array,
    PelvicFigures,
    PelvicOutput,
)
from devices.vocab import BreathPhase, PelvicState

__all__ = ["CouplingScorer", "FigureLog", "score_cycle"]

#: Reasons, as shown to the user.
DROP_TOO_SMALL = "drop too small"
NO_DROP = "no drop on inhale"
RELEASE_LOST = "release not kept on exhale"
WRONG_PHASE = "dropped on exhale, not inhale"
CONTRACTED_INHALE = "contracted on inhale"
CONTRACTED_EXHALE = "contracted on exhale"
STRAIN = "strain"
PRESSURE_ROSE = "pressure rose above rest"


_add_reduce = np.add.reduce
_STRAIN = int(PelvicState.STRAIN)
_CONTRACTION = int(PelvicState.CONTRACTION)
_N_STATES = max(PelvicState) + 1

#: Completed cycles kept waiting for the pelvic signal at most.
MAX_PENDING = 10_000

#: Figure changes kept at most (about one a second: a day's).
MAX_FIGURES = 86_400


def _clip(x: float, lo: float, hi: float) -> float:
    """``float(np.clip(x, lo, hi))`` for a Python float, without numpy's per-call cost."""
    if x != x:  # NaN passes, as in numpy
        return x
    x = x if x > lo else lo
    return x if x < hi else hi


@dataclass(frozen=True)
class CycleHalves:
    """A breath cycle's pelvic samples, split at the exhale onset.

    ``rel_in``/``rel_ex``: level minus rest in the inhale and exhale halves
    (no NaN); ``state_in``/``state_ex``: their :class:`PelvicState` codes;
    ``sum_in``/``sum_ex``: the sums of ``rel_in``/``rel_ex``.
    """

    rel_in: FloatArray
    rel_ex: FloatArray
    state_in: Int8Array
    state_ex: Int8Array
    sum_in: float  # the halves' sums (``np.add.reduce``, as ``ndarray.mean`` sums)
    sum_ex: float


@dataclass(frozen=True)
class CycleLevels:
    """Where the floor sat through a cycle, relative to rest (stream units)."""

    inhale_level: float  # mean over the inhale
    exhale_level: float  # mean over the exhale
    drop: float  # depth of the inhale's deepest tenth below rest (>= 0)
    drop_ratio: float  # drop / drop margin
    release_kept: float  # 0..1: how much of the inhale's mean the exhale kept
    peak: float  # the highest sample above rest in either half


@dataclass(frozen=True)
class CycleFaults:
    """The states that cap or zero a cycle's score."""

    contracted_inhale: bool  # over 5 % of the inhale in contraction
    contracted_exhale: bool  # over 5 % of the exhale in contraction
    strained: bool  # over 3 % of the cycle in strain


def split_cycle(
    t: FloatArray,
    rel: FloatArray,
    state: Int8Array,
    inhale_onset: float,
    exhale_onset: float,
    end: float,
) -> CycleHalves | None:
    """The cycle's two halves; None when either has under 2 samples or a gap (NaN)."""
    if not inhale_onset < exhale_onset < end:
        return None
    i0, i1, i2 = np.searchsorted(t, (inhale_onset, exhale_onset, end)).tolist()
    if i1 - i0 < 2 or i2 - i1 < 2:
        return None
    ri, re = rel[i0:i1], rel[i1:i2]
    sum_in, sum_ex = float(_add_reduce(ri)), float(_add_reduce(re))
    # a NaN makes its half's sum NaN (one reduction per half, which the levels
    # need anyway); a NaN sum without one (inf - inf) is checked for it
    if math.isnan(sum_in + sum_ex) and (np.isnan(ri).any() or np.isnan(re).any()):
        return None
    return CycleHalves(
        rel_in=ri,
        rel_ex=re,
        state_in=state[i0:i1],
        state_ex=state[i1:i2],
        sum_in=sum_in,
        sum_ex=sum_ex,
    )


def cycle_levels(h: CycleHalves, drop_margin: float) -> CycleLevels:
    """The inhale and exhale levels, the drop and how much of it the exhale kept."""
    md = max(drop_margin, 1e-12)
    inhale_level = h.sum_in / h.rel_in.shape[0]
    exhale_level = h.sum_ex / h.rel_ex.shape[0]
    drop = max(0.0, -percentile(h.rel_in, 10))
    release_kept = 0.0
    if inhale_level < 0:
        release_kept = _clip(-exhale_level / -inhale_level, 0.0, 1.0) + 0.0
    peak = max(h.rel_in.item(int(h.rel_in.argmax())), h.rel_ex.item(int(h.rel_ex.argmax())))
    return CycleLevels(
        inhale_level=inhale_level,
        exhale_level=exhale_level,
        drop=drop,
        drop_ratio=drop / md,
        release_kept=release_kept,
        peak=peak,
    )


def cycle_faults(h: CycleHalves) -> CycleFaults:
    """Contraction in either half, strain over the cycle (samples per state code)."""
    n_i, n_e = h.state_in.shape[0], h.state_ex.shape[0]
    ci = np.bincount(h.state_in, minlength=_N_STATES).tolist()
    ce = np.bincount(h.state_ex, minlength=_N_STATES).tolist()
    return CycleFaults(
        contracted_inhale=ci[_CONTRACTION] > 0.05 * n_i,
        contracted_exhale=ce[_CONTRACTION] > 0.05 * n_e,
        strained=ci[_STRAIN] + ce[_STRAIN] > 0.03 * (n_i + n_e),
    )


def cycle_points(
    lv: CycleLevels, faults: CycleFaults, drop_margin: float, contraction_margin: float
) -> tuple[float, tuple[str, ...]]:
    """The 0-100 score and the reasons it lost points.

    Points come only from being below rest, each a non-increasing function of
    the pressure: raising any sample can never raise the score.
    """
    md = max(drop_margin, 1e-12)
    mc = max(contraction_margin, 1e-12)
    reasons: list[str] = []
    score = (
        50.0 * _clip((lv.drop_ratio - 0.25) / 1.25, 0.0, 1.0)  # the drop
        + 35.0 * _clip(-lv.exhale_level / md, 0.0, 1.0)  # the release kept
        + 15.0 * _clip(-lv.inhale_level / md, 0.0, 1.0)  # down through the inhale
    )
    if lv.drop_ratio < 0.25:
        reasons.append(NO_DROP)
    elif lv.drop_ratio < 1.0:
        reasons.append(DROP_TOO_SMALL)
    if lv.drop_ratio >= 0.5 and lv.release_kept < 0.5:
        reasons.append(RELEASE_LOST)
    # the floor went further down on the exhale than it ever did on the inhale
    # (the inhale's mean is no test: from rest, it includes the descent)
    if lv.exhale_level < -md and -lv.exhale_level > lv.drop + 0.5 * md:
        reasons.append(WRONG_PHASE)
    if faults.contracted_inhale:
        reasons.append(CONTRACTED_INHALE)
        score = min(score, 20.0)
    if faults.contracted_exhale:
        reasons.append(CONTRACTED_EXHALE)
        score = min(score, 30.0)
    contracted = faults.contracted_inhale or faults.contracted_exhale
    if not (contracted or faults.strained) and lv.peak > mc:
        reasons.append(PRESSURE_ROSE)
        score = min(score, 40.0)
    if faults.strained:
        reasons.append(STRAIN)
        score = 0.0
    return round(_clip(score, 0.0, 100.0), 1), tuple(reasons)


def score_cycle(
    t: FloatArray,
    rel: FloatArray,
    state: Int8Array,
    inhale_onset: float,
    exhale_onset: float,
    end: float,
    *,
    rest_level: float,
    drop_margin: float,
    contraction_margin: float,
) -> CouplingResult | None:
    """Score one breath cycle from the pelvic level relative to rest.

    Parameters
    ----------
    t, rel, state : ndarray
        Pelvic sample times, level minus rest (stream units) and
        :class:`PelvicState` codes, covering the cycle.
    inhale_onset, exhale_onset, end : float
        The cycle's onsets (``end`` is the next inhale onset).
    rest_level, drop_margin, contraction_margin : float
        The tracker's figures in effect at the cycle's end.

    Returns
    -------
    CouplingResult or None
        None when the pelvic signal does not cover both halves of the cycle
        (a gap, or the tracker still settling).
    """
    halves = split_cycle(t, rel, state, inhale_onset, exhale_onset, end)
    if halves is None:
        return None
    lv = cycle_levels(halves, drop_margin)
    faults = cycle_faults(halves)
    score, reasons = cycle_points(lv, faults, drop_margin, contraction_margin)
    return CouplingResult(
        inhale_onset=inhale_onset,
        exhale_onset=exhale_onset,
        end=end,
        rest_level=rest_level,
        inhale_level=lv.inhale_level,
        exhale_level=lv.exhale_level,
        drop=lv.drop,
        drop_ratio=lv.drop_ratio,
        release_kept=lv.release_kept,
        strain=faults.strained,
        contracted=faults.contracted_inhale or faults.contracted_exhale,
        score=score,
        reasons=reasons,
    )


class FigureLog:
    """The pelvic tracker's figures (rest level, margins) as they changed.

    A cycle is scored against the figures in effect at its last sample, not
    those of whatever chunk arrived last: the same cycle gets the same score
    however the streams are chunked. The owner forgets what it no longer
    needs (:meth:`forget_before`).
    """

    def __init__(self) -> None:
        self._log: deque[PelvicFigures] = deque(maxlen=MAX_FIGURES)

    def add(self, out: PelvicOutput) -> None:
        """Take the figure changes a pelvic chunk reports."""
        if out.figures:
            self._log.extend(out.figures)
        elif not self._log and out.rest_level is not None and out.t.shape[0]:
            # (a source that reports no changes: its figures hold from this chunk on)
            self._log.append(
                PelvicFigures(t_from=out.t.item(0), rest_level=out.rest_level, margins=out.margins)
            )

    def at(self, t: float) -> PelvicFigures | None:
        """The figures in effect for the last sample before ``t`` (None: none yet)."""
        for f in reversed(self._log):
            if f.t_from < t:
                return f
        return None

    def forget_before(self, t: float) -> None:
        """Forget the figures no sample from ``t`` on can need."""
        log = self._log
        while len(log) > 1 and log[1].t_from < t:
            log.popleft()


class CouplingScorer:
    """Pairs breath cycles with the pelvic signal as both arrive.

    Breath events and pelvic chunks come from different streams at different
    times; a completed cycle waits until the pelvic signal covers its end.

    Parameters
    ----------
    history_s : float
        Pelvic signal kept (longer than any breath cycle).
    fs_hint : float
        Pelvic rate, to size the history.
    """

    def __init__(self, history_s: float = 90.0, fs_hint: float = 50.0) -> None:
        self.history_s = history_s
        self.fs_hint = fs_hint  # (kept for callers; the history is kept by time)
        # the pelvic chunks of the last history_s seconds, with their last
        # sample's time: a cycle's samples are gathered when it is scored
        self._recent: deque[tuple[float, PelvicOutput]] = deque()
        # completed cycles waiting for the pelvic signal: a whole recording's
        # in one call (a day of breathing at most, should the pelvic stream be gone)
        self._pending: deque[tuple[float, float, float]] = deque(maxlen=MAX_PENDING)
        self._last_inhale: float | None = None
        self._last_exhale: float | None = None
        self._t_pelvic = -math.inf
        self._figures = FigureLog()

    def reset_breath(self) -> None:
        """The breath source restarted: forget the half-open cycle."""
        self._last_inhale = self._last_exhale = None

    def add_pelvic(self, out: PelvicOutput) -> None:
        """Append a pelvic chunk (relative level and state)."""
        n = out.t.shape[0]
        if not n:
            return
        t_last = out.t.item(n - 1)
        recent = self._recent
        recent.append((t_last, out))
        self._t_pelvic = t_last
        self._figures.add(out)
        t_old = t_last - self.history_s
        while recent[0][0] < t_old:
            recent.popleft()
        if not self._pending:
            self._figures.forget_before(t_old)

    def add_breath(self, events: Sequence[BreathEvent]) -> None:
        """Register onsets; an inhale onset closes the previous cycle."""
        for ev in events:  # a few per minute
            if ev.phase is BreathPhase.INHALE:
                if (
                    self._last_inhale is not None
                    and self._last_exhale is not None
                    and self._last_inhale < self._last_exhale < ev.t
                ):
                    self._pending.append((self._last_inhale, self._last_exhale, ev.t))
                self._last_inhale = ev.t
                self._last_exhale = None
            elif ev.phase is BreathPhase.EXHALE:
                self._last_exhale = ev.t

    @property
    def pending(self) -> bool:
        """Some completed cycle waits for the pelvic signal to cover it."""
        return bool(self._pending)

    def ready(self) -> list[CouplingResult]:
        """Score the cycles the pelvic signal now covers."""
        out: list[CouplingResult] = []
        if not (self._pending and self._pending[0][2] <= self._t_pelvic):
            return out
        while self._pending and self._pending[0][2] <= self._t_pelvic:
            t_in, t_ex, t_end = self._pending.popleft()
            fig = self._figures.at(t_end)
            self._figures.forget_before(t_end)  # (cycles are scored in the order they end)
            if fig is None:
                continue
            t, rel, state = self._since(t_in)
            res = score_cycle(
                t,
                rel,
                state,
                t_in,
                t_ex,
                t_end,
                rest_level=fig.rest_level,
                drop_margin=fig.margins[0],
                contraction_margin=fig.margins[1],
            )
            if res is not None:
                out.append(res)
        return out

    def _since(self, t0: float) -> tuple[FloatArray, FloatArray, Int8Array]:
        """Pelvic times, relative levels and states of the kept chunks that
        reach ``t0`` or later (the first may begin before it)."""
        parts: list[PelvicOutput] = []
        for t_last, o in reversed(self._recent):
            if t_last < t0:
                break
            parts.append(o)
        if len(parts) == 1:
            o = parts[0]
            return o.t, o.relative, o.state
        parts.reverse()
        if not parts:
            return np.empty(0), np.empty(0), np.empty(0, np.int8)
        return (
            np.concatenate([o.t for o in parts]),
            np.concatenate([o.relative for o in parts]),
            np.concatenate([o.state for o in parts]),
        )
