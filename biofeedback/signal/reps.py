"""What a rep is: the one rep policy, with the pacer's window as its input.

A *set* is counted between :meth:`RepPolicy.start` and :meth:`RepPolicy.stop`.
Its :class:`RepWindow` says when the set started, how many reps it asks for and,
for a paced set, the pacer (its first inhale at the window's start).

Which breath cycles are reps depends on the rep clock:

* ``breath``: the cycles the breath detector found and the coupling scorer
  scored. With a pacer, a cycle belongs to the set when it answers the pacer
  (:func:`is_paced_cycle`: not the free breath before the first cue; the
  breath under way when the pacer starts runs into the first paced inhale and
  counts, scored from the pacer's start on, see :func:`rescore_from`). Without
  a pacer, every cycle that began from the set's start (less
  :data:`GRACE_S`) counts.
* ``pacer``: there is no breath sensor of its own (the probe's breathing
  ripple is swamped by the very drop being trained), so each paced cycle,
  shifted by :data:`PACED_LAG_S`, is scored against the pelvic signal.

At most the window's ``target`` reps are counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from biofeedback.signal.coupling import CouplingScorer, FigureLog, score_cycle
from biofeedback.signal.filters import FloatArray
from biofeedback.signal.results import (
    CouplingResult,
    RepResult,
    RepSummary,
)
from biofeedback.signal.types import (
    BreathEvent,
    Int8Array,
    PelvicOutput,
)
from devices.pacer import Pacer
from devices.vocab import BreathPhase

__all__ = [
    "GRACE_S",
    "PACED_LAG_S",
    "RepClock",
    "RepPolicy",
    "RepWindow",
    "is_paced_cycle",
    "rescore_from",
    "summarise_reps",
]

#: Pacer-clocked reps: how long after the pacer's cue the person's breath and
#: floor are taken to follow it (reaction plus the floor's release).
PACED_LAG_S = 0.5

#: A set without a pacer: a cycle may begin this much before the set started
#: and still count (the user starts a little early; onsets are back-dated).
GRACE_S = 1.0

#: What clocks the reps: ``auto`` takes the pacer without a breath sensor.
RepClock = Literal["auto", "breath", "pacer"]


@dataclass(frozen=True)
class RepWindow:
    """A set as it is asked for.

    Parameters
    ----------
    t_start : float
        When the set starts (the pacer's first inhale, when paced).
    target : int or None
        Reps at most (None: no limit).
    pacer : Pacer, optional
        The pacer the reps follow, its ``t0`` at the first inhale.
    """

    t_start: float = -math.inf
    target: int | None = None
    pacer: Pacer | None = None

    def __post_init__(self) -> None:
        if self.target is not None and self.target < 1:
            raise ValueError(f"target must be >= 1, {self.target!r} is invalid")

    def paced_cycles(self, lag_s: float = PACED_LAG_S) -> list[BreathEvent]:
        """The pacer's onsets of the set's cycles (and the closing inhale), ``lag_s`` late."""
        p = self.pacer
        if p is None or self.target is None:
            return []
        events = []
        for k in range(self.target + 1):  # the last inhale closes the last cycle
            t_in = p.t0 + k * p.period
            events.append(BreathEvent(BreathPhase.INHALE, t_in + lag_s, t_in, math.nan))
            if k < self.target:
                t_ex = t_in + p.inhale_s + p.hold_s
                events.append(BreathEvent(BreathPhase.EXHALE, t_ex + lag_s, t_ex, math.nan))
        return events


def is_paced_cycle(c: CouplingResult, window: RepWindow) -> bool:
    """Whether a detected breath cycle belongs to the set (not to the free breathing before).

    The pacer may start while the person is half-way into a free inhale: they
    carry on into the paced inhale, and that cycle (begun a little before the
    set) is the first rep. A cycle that ends before the first paced exhale
    began is the free breathing before the set, and so is one whose inhale
    ended just as the set began (less than a quarter of the paced inhale
    left in it): its exhale is not the answer to the pacer's first inhale.
    Without a pacer, a cycle counts when it began from the set's start on
    (less :data:`GRACE_S`).
    """
    p = window.pacer
    if p is None:
        return c.inhale_onset >= window.t_start - GRACE_S
    return (
        c.inhale_onset >= window.t_start - 0.5 * p.period
        and c.exhale_onset > window.t_start + 0.25 * p.inhale_s
        and c.end > window.t_start + p.inhale_s + p.hold_s
    )


def rescore_from(
    c: CouplingResult,
    t_start: float,
    t: FloatArray,
    relative: FloatArray,
    state: Int8Array,
    margins: tuple[float, float],
) -> CouplingResult:
    """Score the breath under way when the pacer started from the pacer's start on.

    Its beginning was free breathing at rest: judged whole, the paced drop
    that followed would look late ("dropped on exhale").
    """
    drop, con = margins
    res = score_cycle(
        t,
        relative,
        state,
        t_start,
        c.exhale_onset,
        c.end,
        rest_level=c.rest_level,
        drop_margin=drop,
        contraction_margin=con,
    )
    return c if res is None else res


def _mean(xs: Sequence[float]) -> float | None:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(vals)) if vals else None


def summarise_reps(reps: Sequence[RepResult]) -> RepSummary:
    """Summary figures of reps (one set or several)."""
    reasons: dict[str, int] = {}
    for r in reps:
        for why in r.reasons:
            reasons[why] = reasons.get(why, 0) + 1
    scores = [r.score for r in reps]
    return RepSummary(
        reps=len(reps),
        good=sum(1 for r in reps if r.good),
        strain=sum(1 for r in reps if r.coupling.strain),
        contracted=sum(1 for r in reps if r.coupling.contracted),
        mean_score=_mean(scores),
        best_score=max(scores) if scores else None,
        mean_drop=_mean([r.coupling.drop for r in reps]),
        mean_release_kept=_mean([r.coupling.release_kept for r in reps]),
        mean_cycle_s=_mean([r.t_end - r.t_start for r in reps]),
        reasons=reasons,
    )


class RepPolicy:
    """Counts the reps of a set: which scored cycles are reps, and their scores.

    Parameters
    ----------
    fs_hint : float
        Pelvic rate, to size the paced scorer's history.
    """

    def __init__(self, fs_hint: float = 50.0) -> None:
        self.fs_hint = fs_hint
        self.active = False
        self.window = RepWindow()
        self.clock: Literal["breath", "pacer"] | None = None
        self.reps: list[RepResult] = []
        self._paced: CouplingScorer | None = None
        self._figures = FigureLog()
        # the set's pelvic signal, until no cycle can straddle its start (for rescoring)
        self._pelvic: list[PelvicOutput] = []
        self._past_start = False

    def start(self, window: RepWindow, *, paced: bool = False) -> None:
        """Start a set (forgets the previous one); ``paced``: the pacer clocks the reps."""
        if paced and window.pacer is None:
            raise ValueError("pacer-clocked reps need the pacer")
        self.active = True
        self.window = window
        self.clock = "pacer" if paced else "breath"
        self.reps = []
        self._pelvic = []
        self._past_start = False
        self._paced = None
        if paced:
            self._paced = CouplingScorer(fs_hint=self.fs_hint)
            self._paced.add_breath(window.paced_cycles())

    def stop(self) -> RepSummary:
        """End the set; its summary."""
        self.active = False
        self._paced = None
        self._pelvic = []
        return summarise_reps(self.reps)

    def add_pelvic(self, out: PelvicOutput) -> None:
        """The pelvic signal as it comes (its figures always; its samples during a set)."""
        self._figures.add(out)
        if not self.active:
            self._figures.forget_before(math.inf)  # (the latest is all a set starts from)
            return
        if self._straddle_open():
            self._pelvic.append(out)
        if self._paced is not None:
            self._paced.add_pelvic(out)

    def _straddle_open(self) -> bool:
        """A cycle begun before the paced set's start may still come (and be
        rescored from the start on: :func:`rescore_from`)."""
        return self.window.pacer is not None and not self._past_start

    def offer(self, detected: Sequence[CouplingResult]) -> tuple[RepResult, ...]:
        """The reps among the cycles scored now (the detector's, or the pacer's own)."""
        if not self.active:
            return ()
        cycles = self._paced.ready() if self._paced is not None else detected
        out: list[RepResult] = []
        for c in cycles:
            rep = self._rep(c)
            self._figures.forget_before(c.end)
            if rep is not None:
                out.append(rep)
        return tuple(out)

    def _rep(self, c: CouplingResult) -> RepResult | None:
        w = self.window
        if w.pacer is not None and c.inhale_onset < w.t_start < c.exhale_onset:
            c = self._rescored(c)
        if c.inhale_onset >= w.t_start and not self._past_start:
            # later cycles begin later still: none can straddle the start
            self._past_start = True
            self._pelvic = []
        if not is_paced_cycle(c, w):
            return None
        if w.target is not None and len(self.reps) >= w.target:
            return None
        rep = RepResult(len(self.reps) + 1, c, c.score, c.good, c.reasons)
        self.reps.append(rep)
        return rep

    def _rescored(self, c: CouplingResult) -> CouplingResult:
        fig = self._figures.at(c.end)
        if not self._pelvic or fig is None:
            return c
        t = np.concatenate([o.t for o in self._pelvic])
        rel = np.concatenate([o.relative for o in self._pelvic])
        state = np.concatenate([o.state for o in self._pelvic])
        margins = (fig.margins[0], fig.margins[1])
        return rescore_from(c, self.window.t_start, t, rel, state, margins)
