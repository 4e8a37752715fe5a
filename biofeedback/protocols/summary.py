"""The session summary: what a session achieved, built from the engine's parts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from biofeedback.protocols.figures import RepLog, StateFigures
from biofeedback.protocols.links import LinkGapTracker
from biofeedback.protocols.pacer import Pacer, PacerFollow, pacer_json
from biofeedback.protocols.pain import PainLog
from biofeedback.protocols.plan import Step, StepKind
from biofeedback.protocols.timeline import SessionTimeline
from biofeedback.signal.reps import summarise_reps

__all__ = ["SessionSummary", "SummaryBuilder"]


def _num(x: float | None, nd: int = 3) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


@dataclass
class SessionSummary:
    """What a session achieved (stored with the session, printed by ``live --json``).

    ``complete`` is False when the session was stopped, ended by pain, a lost
    link or the end of its source before the last step.
    """

    protocol: str
    complete: bool
    ended_by: str
    duration_s: float
    steps: list[dict[str, Any]]
    fitted: bool
    reps: int
    reps_target: int
    good_reps: int
    mean_score: float | None
    best_score: float | None
    drop_depth: float | None
    drop_unit: str | None
    release_kept: float | None
    drop_on_inhale_pct: float | None
    strain_count: int
    strain_reps: int
    contracted_reps: int
    breath_rate_bpm: float | None
    target_rate_bpm: float
    rep_clock: str | None
    pacer: dict[str, float]
    link_gaps: int
    gap_s: float
    pain_before: int | None = None
    pain_after: int | None = None
    pain_during: int | None = None
    note_before: str | None = None
    note_after: str | None = None
    advice: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    rep_scores: list[float | None] = field(default_factory=list)
    sets: list[dict[str, Any]] = field(default_factory=list)
    adaptive_pacer: dict[str, Any] | None = None
    #: The stream the breath came from and its mean trust over the session (0..1).
    breath_source: str | None = None
    breath_trust: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "complete": self.complete,
            "ended_by": self.ended_by,
            "duration_s": _num(self.duration_s, 2),
            "steps": self.steps,
            "fitted": self.fitted,
            "reps": self.reps,
            "reps_target": self.reps_target,
            "good_reps": self.good_reps,
            "mean_score": _num(self.mean_score, 1),
            "best_score": _num(self.best_score, 1),
            "drop_depth": _num(self.drop_depth),
            "drop_unit": self.drop_unit,
            "release_kept": _num(self.release_kept),
            "drop_on_inhale_pct": _num(self.drop_on_inhale_pct, 1),
            "strain_count": self.strain_count,
            "strain_reps": self.strain_reps,
            "contracted_reps": self.contracted_reps,
            "breath_rate_bpm": _num(self.breath_rate_bpm, 2),
            "target_rate_bpm": _num(self.target_rate_bpm, 2),
            "rep_clock": self.rep_clock,
            "pacer": dict(self.pacer),
            "link_gaps": self.link_gaps,
            "gap_s": _num(self.gap_s, 2),
            "pain_before": self.pain_before,
            "pain_during": self.pain_during,
            "pain_after": self.pain_after,
            "note_before": self.note_before,
            "note_after": self.note_after,
            "advice": list(self.advice),
            "reasons": dict(self.reasons),
            "rep_scores": [_num(s, 1) for s in self.rep_scores],
            "sets": list(self.sets),
            "adaptive_pacer": self.adaptive_pacer,
            "breath_source": self.breath_source,
            "breath_trust": _num(self.breath_trust, 2),
        }


@dataclass(frozen=True)
class SummaryBuilder:
    """Builds the :class:`SessionSummary` from the parts that counted the session.

    Parameters
    ----------
    protocol : str
        The protocol's name.
    steps : tuple of Step
        The plan as run (fitted or not).
    fitted : bool
        True when the plan was shortened to the session's duration.
    pacer : Pacer
        The session's breath timing.
    timeline, reps, figures, links, pain
        The engine's parts.
    pacer_follow : PacerFollow, optional
        How an adaptive pacer's target changed (the summary's ``adaptive_pacer``).
    """

    protocol: str
    steps: tuple[Step, ...]
    fitted: bool
    pacer: Pacer
    timeline: SessionTimeline
    reps: RepLog
    figures: StateFigures
    links: LinkGapTracker
    pain: PainLog
    pacer_follow: PacerFollow | None = None

    def build(self, *, end: float, started: bool, complete: bool, ended_by: str) -> SessionSummary:
        """The summary of the session as it stands at clock time ``end``."""
        reps = summarise_reps(self.reps.reps)
        rate = self.figures.last_rate
        if self.reps.rep_clock == "breath" and reps.mean_cycle_s:
            # The detected cycles of the reps: the rate breathed against the pacer.
            rate = 60.0 / reps.mean_cycle_s
        t0 = self.timeline.t0 if self.timeline.t0 is not None else 0.0
        pain = self.pain
        return SessionSummary(
            protocol=self.protocol,
            complete=complete,
            ended_by=ended_by or "running",
            duration_s=max(end - t0, 0.0) if started else 0.0,
            steps=[s.summary_json(t0) for s in self.timeline.all_segments()],
            fitted=self.fitted,
            reps=reps.reps,
            reps_target=sum(s.reps for s in self.steps if s.kind is StepKind.REPS),
            good_reps=reps.good,
            mean_score=reps.mean_score,
            best_score=reps.best_score,
            drop_depth=reps.mean_drop,
            drop_unit=self.figures.drop_unit,
            release_kept=reps.mean_release_kept,
            drop_on_inhale_pct=self.figures.drop_on_inhale_pct,
            strain_count=self.figures.strain_count,
            strain_reps=reps.strain,
            contracted_reps=reps.contracted,
            breath_rate_bpm=rate,
            target_rate_bpm=self.pacer.rate_bpm,
            rep_clock=self.reps.rep_clock,
            pacer=pacer_json(self.pacer),
            link_gaps=self.links.gaps,
            gap_s=self.links.gap_s(end),
            pain_before=pain.before,
            pain_during=pain.during,
            pain_after=pain.after,
            note_before=pain.note_before,
            note_after=pain.note_after,
            advice=list(pain.advice),
            reasons=dict(reps.reasons),
            rep_scores=[r.score for r in self.reps.reps],
            sets=list(self.reps.sets),
            adaptive_pacer=None if self.pacer_follow is None else self.pacer_follow.to_json(t0),
            breath_source=self.figures.breath_source,
            breath_trust=self.figures.breath_trust,
        )
