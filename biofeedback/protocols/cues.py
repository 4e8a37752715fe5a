"""Live cues: what to tell the person, and when.

The :class:`CueScheduler` says the step at each step change, the pacer's
phase at each phase change of a rep step, strain and contraction (at most
every :data:`NAG_INTERVAL_S` each), and praise. A pressure rise is never
rewarded: strain is cued as strain, praise needs a rep the pipeline scored
good (a drop, no strain, no contraction).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from biofeedback.protocols.plan import Step, StepKind
from devices.vocab import BreathPhase, PelvicState

if TYPE_CHECKING:
    from biofeedback.protocols.recorder import SessionRecorder
    from biofeedback.protocols.timeline import Segment
    from biofeedback.signal.results import RepResult
    from biofeedback.signal.types import PelvicEvent

__all__ = ["CUES", "NAG_INTERVAL_S", "Cue", "CueKind", "CueScheduler", "next_phase_change"]

#: Least time between two strain (or contraction) cues.
NAG_INTERVAL_S = 4.0


class CueKind(enum.StrEnum):
    """Why a cue was given."""

    STEP = "step"
    BREATH = "breath"
    STRAIN = "strain"
    CONTRACTION = "contraction"
    PRAISE = "praise"
    SAFETY = "safety"
    INFO = "info"


#: The cue texts (the live view and the recording show them verbatim).
CUES: dict[str, str] = {
    "inhale": "breathe in, let the floor drop",
    "exhale": "breathe out, keep it soft",
    "hold": "hold softly, no pushing",
    "closing": "breathe in, and rest",
    "strain": "strain — soften, no pushing",
    "contraction": "let go — no squeezing",
    "well_done": "well done",
    "safety": "stop if it hurts",
    "settle": "settle in: lie or sit comfortably, breathe into your belly",
    "baseline": "baseline: rest and breathe normally",
    "reps": "reps: follow the pacer, {n} breaths",
    "rest": "rest between sets: breathe normally",
    "post": "post-baseline: rest and breathe normally",
    "pause": "paused",
    "resume": "resumed",
    "done": "session done",
    "stopped": "session stopped",
}


@dataclass(frozen=True)
class Cue:
    """A live cue: what to tell the person, and when."""

    t: float
    kind: CueKind
    text: str


def next_phase_change(seg: Segment, t: float) -> float | None:
    """The rep step's next pacer phase change after ``t`` (None: none before it ends)."""
    if seg.pacer is None:
        return None
    p = seg.pacer.cycle_at(t + 1e-9)  # an adaptive pacer plans the cycle now
    base = p.t0
    marks = [base, base + p.inhale_s]
    if p.hold_s > 0:
        marks.append(base + p.inhale_s + p.hold_s)
    marks.append(base + p.period)
    nxt = min((m for m in marks if m > t + 1e-9), default=None)
    if nxt is None or nxt >= seg.t_end:
        return None
    return nxt


class CueScheduler:
    """Decides the cues and keeps them; the recorder sends each one out.

    Parameters
    ----------
    recorder : SessionRecorder
        Where every cue goes (recording, live view, listeners).
    """

    def __init__(self, recorder: SessionRecorder) -> None:
        self.cues: list[Cue] = []
        #: The next pacer phase change to cue (None: no pacer running).
        self.pacer_next: float | None = None
        self._last_nag: dict[str, float] = {}
        self._recorder = recorder

    def cue(self, t: float, kind: CueKind, text: str) -> None:
        """Give a cue now."""
        cue = Cue(t, kind, text)
        self.cues.append(cue)
        self._recorder.cue(cue)

    def nag(self, t: float, key: str, kind: CueKind) -> None:
        """Cue ``key`` unless the same was cued less than :data:`NAG_INTERVAL_S` ago."""
        last = self._last_nag.get(key)
        if last is not None and t - last < NAG_INTERVAL_S:
            return
        self._last_nag[key] = t
        self.cue(t, kind, CUES[key])

    # ------------------------------------------------------------------ steps and pacer

    def enter(self, seg: Segment, t: float) -> None:
        """A step begins: say it, and start the pacer's cues of a rep step."""
        step: Step = seg.step
        self.pacer_next = None
        if step.kind is StepKind.REPS and seg.pacer is not None:
            self.cue(t, CueKind.STEP, CUES["reps"].format(n=step.reps))
            self._pacer_cue(seg, t)
            self.pacer_next = next_phase_change(seg, t)
        elif step.kind is not StepKind.PAUSE:
            self.cue(t, CueKind.STEP, CUES[str(step.kind)])

    def leave(self) -> None:
        """A step ends: no more pacer cues."""
        self.pacer_next = None

    def fire_pacer(self, seg: Segment, now: float) -> float | None:
        """Cue the pacer's phase change due by ``now`` in ``seg``; its time (None: none due)."""
        if self.pacer_next is None or self.pacer_next > min(now, seg.t_end):
            return None
        t = self.pacer_next
        if t < seg.t_end:
            self._pacer_cue(seg, t)
        self.pacer_next = next_phase_change(seg, t)
        return t

    def _pacer_cue(self, seg: Segment, t: float) -> None:
        assert seg.pacer is not None
        phase = seg.pacer.target(t + 1e-9).phase
        if t >= seg.reps_end - 1e-9:
            if phase == BreathPhase.INHALE:
                self.cue(t, CueKind.BREATH, CUES["closing"])
            return
        key = {BreathPhase.INHALE: "inhale", BreathPhase.EXHALE: "exhale"}.get(phase, "hold")
        self.cue(t, CueKind.BREATH, CUES[key])

    # ------------------------------------------------------------------ what the pipeline found

    def on_pelvic_event(self, ev: PelvicEvent, in_reps: bool) -> None:
        """Strain is cued always, a contraction during the reps."""
        if ev.state == PelvicState.STRAIN:
            self.nag(ev.t_detected, "strain", CueKind.STRAIN)
        elif ev.state == PelvicState.CONTRACTION and in_reps:
            self.nag(ev.t_detected, "contraction", CueKind.CONTRACTION)

    def on_rep(self, rep: RepResult, t: float) -> None:
        """A counted rep: strain or contraction cued, a good drop praised."""
        if rep.coupling.strain:
            self.nag(t, "strain", CueKind.STRAIN)
        elif rep.coupling.contracted:
            self.nag(t, "contraction", CueKind.CONTRACTION)
        elif rep.good and rep.coupling.drop > 0:
            # Praise only a real drop: never a pressure rise.
            self.cue(t, CueKind.PRAISE, CUES["well_done"])

    def end(self, t: float, complete: bool, ended_by: str) -> None:
        """The session's last cue."""
        text = CUES["done"] if complete else f"{CUES['stopped']} ({ended_by})"
        self.cue(t, CueKind.INFO, text)
