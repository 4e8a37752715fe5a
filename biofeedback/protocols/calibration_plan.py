"""Calibration plans: timed steps with their prompts, and the steps placed on the clock.

Plans (:data:`PLANS`):

==========  ============================================================  =======
plan        steps                                                         total
==========  ============================================================  =======
quick       get ready 5 s, rest 30 s, 3 x (squeeze 5 s + let go 10 s),    ~2.5 min
            a paced exhale 7 s, 3 x slow-inhale drop (one paced breath:
            in 5 s, out 7 s), free breathing 30 s
assessment  get ready 5 s, pre-baseline 60 s, 5 flicks (2 s on, 10 s      ~7 min
            off), 5 holds (10 s on, 10 s off), endurance 60 s + 10 s
            rest, post-baseline 60 s, a paced exhale, 5 slow-inhale drops
==========  ============================================================  =======

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biofeedback.protocols.pacer import Pacer
from calibration import StepKind

__all__ = [
    "DROP_EXHALE_S",
    "DROP_INHALE_S",
    "PLANS",
    "PROMPTS",
    "CalibrationPlan",
    "PlanStep",
    "ScheduledStep",
    "assessment_plan",
    "quick_plan",
]

#: What each step asks, in the person's words.
PROMPTS: dict[StepKind, str] = {
    StepKind.READY: "get ready: lie or sit comfortably with the probe in place",
    StepKind.REST: "rest: breathe normally and let everything go",
    StepKind.SQUEEZE: "squeeze as hard as you comfortably can",
    StepKind.RELAX: "let go completely and rest",
    StepKind.DROP: "breathe in slowly and let the floor drop",
    StepKind.RECOVER: "breathe out gently and let it come back",
    StepKind.BREATHE: "breathe freely: nothing else to do",
    StepKind.PRE_BASELINE: "rest: breathe normally and let everything go",
    StepKind.FLICK: "quick squeeze!",
    StepKind.HOLD: "squeeze and hold",
    StepKind.ENDURANCE: "squeeze and hold it steadily for the whole minute",
    StepKind.POST_BASELINE: "rest again: breathe normally and let everything go",
}

#: The paced breath of a drop step: a slow inhale, then a longer exhale.
DROP_INHALE_S = 5.0
DROP_EXHALE_S = 7.0


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan.

    Parameters
    ----------
    kind : StepKind
        What it asks.
    seconds : float
        How long it lasts.
    index : int
        1-based repetition among the steps of this kind (0: not repeated).
    prompt : str
        What to tell the person (default: :data:`PROMPTS`).
    """

    kind: StepKind
    seconds: float
    index: int = 0
    prompt: str = ""

    @property
    def text(self) -> str:
        """The prompt, with the repetition number when repeated."""
        base = self.prompt or PROMPTS[self.kind]
        return f"{base} ({self.index})" if self.index > 0 else base

    def to_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "seconds": self.seconds, "index": self.index}


@dataclass(frozen=True)
class CalibrationPlan:
    """A named list of timed steps."""

    name: str
    steps: tuple[PlanStep, ...]

    @property
    def total_s(self) -> float:
        return float(sum(s.seconds for s in self.steps))


def _reps(kind: StepKind, on_s: float, rest: StepKind, off_s: float, n: int) -> list[PlanStep]:
    out: list[PlanStep] = []
    for i in range(1, n + 1):
        out.append(PlanStep(kind, on_s, i))
        out.append(PlanStep(rest, off_s, i))
    return out


def _drops(n: int) -> list[PlanStep]:
    """Paced breaths, each a slow inhale with the drop and a long exhale.

    A paced exhale comes first: someone caught at the top of a free breath
    cannot take a slow breath in (and so cannot drop) until they breathe out.
    """
    lead = PlanStep(StepKind.RECOVER, DROP_EXHALE_S, 0, "breathe out slowly and get ready")
    return [lead, *_reps(StepKind.DROP, DROP_INHALE_S, StepKind.RECOVER, DROP_EXHALE_S, n)]


def quick_plan(squeezes: int = 3, drops: int = 3) -> CalibrationPlan:
    """The quick calibration (about 2.5 minutes)."""
    steps = [
        PlanStep(StepKind.READY, 5.0),
        PlanStep(StepKind.REST, 30.0),
        *_reps(StepKind.SQUEEZE, 5.0, StepKind.RELAX, 10.0, squeezes),
        *_drops(drops),
        PlanStep(StepKind.BREATHE, 30.0),
    ]
    return CalibrationPlan("quick", tuple(steps))


def assessment_plan() -> CalibrationPlan:
    """The Glazer-style assessment, adapted to pressure (about 7 minutes)."""
    steps = [
        PlanStep(StepKind.READY, 5.0),
        PlanStep(StepKind.PRE_BASELINE, 60.0),
        *_reps(StepKind.FLICK, 2.0, StepKind.RELAX, 10.0, 5),
        *_reps(StepKind.HOLD, 10.0, StepKind.RELAX, 10.0, 5),
        PlanStep(StepKind.ENDURANCE, 60.0),
        PlanStep(StepKind.RELAX, 10.0),
        PlanStep(StepKind.POST_BASELINE, 60.0),
        *_drops(5),
    ]
    return CalibrationPlan("assessment", tuple(steps))


#: The built-in plans.
PLANS: dict[str, CalibrationPlan] = {"quick": quick_plan(), "assessment": assessment_plan()}


@dataclass(frozen=True)
class ScheduledStep:
    """A plan step placed on the clock.

    Parameters
    ----------
    step : PlanStep
        The step.
    number : int
        1-based position in the plan.
    t_start, t_end : float
        Clock times.
    pacer : Pacer or None
        For a drop and its recovery: the paced breath (inhale at the drop's start).
    """

    step: PlanStep
    number: int
    t_start: float
    t_end: float
    pacer: Pacer | None = None

