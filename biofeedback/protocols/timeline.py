"""Which step runs when: the plan's queue, the segments as they ran, pauses, the cut.

The :class:`SessionTimeline` holds the clock side of a session's plan and
nothing else: what runs now, what comes next and when, how a pause shifts
the rest. The engine asks it and does the side effects (cues, recording,
the pipeline's sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from biofeedback.protocols.pacer import pacer_json
from biofeedback.protocols.plan import Step, StepKind, closing_s
from devices.pacer import AdaptivePacer, PacerLike

__all__ = ["Segment", "SessionTimeline"]


@dataclass(frozen=True)
class Segment:
    """One step as it ran (or is planned to run) on the clock.

    Parameters
    ----------
    step : Step
        The step (a pause is ``Step(StepKind.PAUSE)``).
    index : int
        Position in the plan (pauses share the index of the step they interrupt).
    t_start, t_end : float
        Clock times (``t_end`` is inf for a pause until it ends).
    pacer : Pacer or AdaptivePacer or None
        For rep steps: the pacer, its first inhale at ``t_start``. An
        adaptive one plans each cycle as it comes, so ``t_end`` is foreseen
        until the last cycle is planned (:meth:`SessionTimeline.refresh`).
    """

    step: Step
    index: int
    t_start: float
    t_end: float
    pacer: PacerLike | None = None

    @property
    def reps_end(self) -> float:
        """End of the rep cycles (before the closing inhale)."""
        if self.pacer is None:
            return self.t_end
        return min(self.t_end, self.pacer.start_of(self.step.reps))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "step": str(self.step.kind),
            "label": self.step.label,
            "index": self.index,
            "t_start": self.t_start,
            "t_end": self.t_end if math.isfinite(self.t_end) else None,
            "reps": self.step.reps,
            "set": self.step.set_index,
        }
        if self.pacer is not None:
            d["pacer"] = {**pacer_json(self.pacer.first), "t0": self.pacer.t0}
            if isinstance(self.pacer, AdaptivePacer):
                d["pacer"]["adaptive"] = True
        return d

    def summary_json(self, t0: float) -> dict[str, Any]:
        """The segment as the session summary lists it (times from the session start)."""
        end = self.t_end if math.isfinite(self.t_end) else None
        return {
            "step": self.step.label,
            "kind": str(self.step.kind),
            "start_s": round(self.t_start - t0, 3),
            "end_s": None if end is None else round(end - t0, 3),
            "reps": self.step.reps,
        }


class SessionTimeline:
    """The plan's steps on the clock.

    Parameters
    ----------
    steps : tuple of Step
        The plan, in order.
    pacer : Pacer or AdaptivePacer
        Breath timing; each rep step starts a copy at its own start (an
        adaptive pacer goes on from where the last set left it).
    cut_after : float, optional
        Seconds of session (pauses not counted) after which it is cut (a
        plan that does not fit its duration).
    """

    def __init__(
        self, steps: tuple[Step, ...], pacer: PacerLike, *, cut_after: float | None = None
    ) -> None:
        self.pacer = pacer
        self.t0: float | None = None
        self.segments: list[Segment] = []  # finished segments, in order
        self.current: Segment | None = None
        self._queue: list[tuple[int, Step]] = list(enumerate(steps))
        self._cut_after = cut_after
        self._paused_step: tuple[int, Step, float] | None = None  # (index, step, remaining)
        self._pause_total = 0.0

    @property
    def paused(self) -> bool:
        return self.current is not None and self.current.step.kind is StepKind.PAUSE

    def start(self, t: float) -> None:
        """The session starts at ``t``."""
        self.t0 = t

    def all_segments(self) -> list[Segment]:
        """The finished segments and the current one."""
        return [*self.segments, *([self.current] if self.current is not None else [])]

    # ------------------------------------------------------------------ moving on

    def take_next(self, t: float) -> Segment | None:
        """The next planned step as a segment starting at ``t`` (None: the plan is done)."""
        if not self._queue:
            return None
        index, step = self._queue.pop(0)
        seg = self._planned(index, step, t)
        if isinstance(seg.pacer, AdaptivePacer):
            self.pacer = seg.pacer  # the next set goes on from where this one ends
        return seg

    def refresh(self) -> bool:
        """Foresee the current rep step's end again (an adaptive pacer planned a cycle);
        True when it moved."""
        cur = self.current
        if cur is not None and isinstance(cur.pacer, AdaptivePacer) and cur.step.duration_s <= 0:
            end = _adaptive_end(cur.step, cur.pacer)
            if end != cur.t_end:
                self.current = replace(cur, t_end=end)
                return True
        return False

    def _planned(self, index: int, step: Step, t: float) -> Segment:
        """``step`` as a segment starting at ``t`` (a rep step with its own pacer)."""
        if step.kind is not StepKind.REPS:
            return Segment(step, index, t, t + step.length(self.pacer.first))
        pacer = self.pacer.restart(t)
        if isinstance(pacer, AdaptivePacer) and step.duration_s <= 0:
            return Segment(step, index, t, _adaptive_end(step, pacer), pacer)
        return Segment(step, index, t, t + step.length(pacer.first), pacer)

    def enter(self, seg: Segment) -> None:
        """``seg`` runs now."""
        self.current = seg

    def leave(self, seg: Segment, t: float) -> None:
        """``seg`` ended at ``t``."""
        self.current = None
        self.segments.append(replace(seg, t_end=t))

    def cut_time(self) -> float | None:
        """When a session that does not fit its duration is cut (None: never)."""
        if self._cut_after is None or self.t0 is None:
            return None
        return self.t0 + self._cut_after + self._pause_total

    def next_due(self, pacer_next: float | None) -> float | None:
        """The next time something changes: the step's end, a pacer cue, the cut."""
        cur = self.current
        if cur is None:
            return None
        due = cur.t_end
        if pacer_next is not None:
            due = min(due, pacer_next)
        cut = self.cut_time()
        if cut is not None:
            due = min(due, cut)
        return due

    # ------------------------------------------------------------------ pauses

    def hold(self, seg: Segment, now: float, reps_done: int) -> Segment:
        """Keep what is left of ``seg`` for after the pause; the pause segment."""
        remaining = max(seg.t_end - now, 0.0)
        step = seg.step
        if step.kind is StepKind.REPS:
            step = replace(step, reps=max(step.reps - reps_done, 0))
        self._paused_step = (seg.index, step, remaining)
        return Segment(Step(StepKind.PAUSE), seg.index, now, math.inf)

    def unhold(self, now: float) -> None:
        """The pause ends at ``now``: what was left of the step comes next."""
        if self.current is not None:
            self._pause_total += now - self.current.t_start
        if self._paused_step is None:
            return
        index, step, remaining = self._paused_step
        self._paused_step = None
        if step.kind is StepKind.REPS:
            # A rep step restarts its pacer for the reps left.
            if step.reps > 0:
                self._queue.insert(0, (index, step))
        elif remaining > 0.5:
            self._queue.insert(0, (index, replace(step, duration_s=remaining)))

    # ------------------------------------------------------------------ looking ahead

    def segment_at(self, t: float) -> Segment | None:
        """The segment running at ``t``, planned ahead from the current one."""
        cur = self.current
        if cur is None:
            # Not started (the plan from the time it will start is unknown) or done.
            return None
        if t < cur.t_end:
            return cur if t >= cur.t_start else None
        start = cur.t_end
        for index, step in self._queue:
            seg = self._planned(index, step, start)  # (an adaptive pacer: a throwaway copy)
            if t < seg.t_end:
                return seg
            start = seg.t_end
        return None

    def in_reps(self, t: float) -> bool:
        """``t`` falls in the rep cycles of the current rep step."""
        seg = self.current
        return (
            seg is not None and seg.step.kind is StepKind.REPS and seg.t_start <= t < seg.reps_end
        )


def _adaptive_end(step: Step, pacer: AdaptivePacer) -> float:
    """A rep step's end with an adaptive pacer: its cycles, then the closing inhale."""
    return pacer.start_of(step.reps) + closing_s(pacer.pattern_of(step.reps))
