"""Walking a session's steps on the clock: enter and leave steps, fire the pacer's cues, end.

The :class:`StepWalker` of a :class:`~biofeedback.protocols.session.SessionEngine`
wakes at every step end, pacer cue and control call (:meth:`StepWalker.walk`)
and does what is due, in time order, on the parts the engine shares with it,
until the plan ends, the session is cut or stopped, or the source ends.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any

from biofeedback.protocols.cues import CUES
from biofeedback.protocols.pacer import Pacer, pacer_json, target_json, target_text
from biofeedback.protocols.parts import SessionParts
from biofeedback.protocols.plan import StepKind
from biofeedback.protocols.timeline import Segment
from biofeedback.signal.reps import RepClock
from devices.errors import DeviceError

__all__ = ["StepWalker"]


class StepWalker:
    """Enters and leaves the plan's steps, fires the pacer's cues and ends the session.

    Parameters
    ----------
    parts : SessionParts
        The session's pipeline, timeline, recorder, cues, rep log, figures and
        pacer follower.
    goal : Pacer
        The session's pacer (an adaptive pacer's goal).
    rep_clock : {"auto", "breath", "pacer"}
        What a rep is (see :class:`~biofeedback.protocols.session.SessionEngine`).
    """

    def __init__(self, parts: SessionParts, *, goal: Pacer, rep_clock: RepClock) -> None:
        self.parts = parts
        self.goal = goal
        self.rep_clock = rep_clock
        #: The session has ended (the steps are over, cut, stopped or failed).
        self.finished = False
        #: When it ended.
        self.t_end = 0.0
        #: It ran to the plan's end.
        self.complete = False
        #: Why it ended (``protocol end``, ``duration``, ``stopped``, ``pain``...).
        self.ended_by = ""
        #: The error the source failed with, when it did.
        self.error: BaseException | None = None

    async def walk(self, consumer: asyncio.Task[None], wake_up: asyncio.Event) -> None:
        """Wake at every step end, pacer cue and control call until the session ends.

        Parameters
        ----------
        consumer : asyncio.Task
            The task consuming the source; when it ends, so does the session.
        wake_up : asyncio.Event
            Set by a control call (pause, resume, stop) to look again at once.
        """
        clock = self.parts.clock
        while not self.finished:
            due = self.parts.timeline.next_due(self.parts.cue_scheduler.pacer_next)
            timer = (
                asyncio.ensure_future(clock.sleep_until(due))
                if due is not None and math.isfinite(due)
                else None
            )
            wake_up.clear()
            wake = asyncio.ensure_future(wake_up.wait())
            waits: set[asyncio.Future[Any]] = {consumer, wake}
            if timer is not None:
                waits.add(timer)
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                if timer is not None:
                    timer.cancel()
            now = clock.now()
            self.advance(now)
            if consumer in done:
                self._source_ended(now, consumer.exception())
                return

    def _source_ended(self, now: float, exc: BaseException | None) -> None:
        """The source ended (or failed) before the session did."""
        if self.finished:
            return
        if exc is not None:
            self.error = exc
            reason = "link" if isinstance(exc, DeviceError) else "error"
            self.parts.recorder.event(now, "error", str(exc) or type(exc).__name__)
            self.end(now, complete=False, ended_by=reason)
        else:
            self.end(now, complete=False, ended_by="source ended")

    def hold(self, seg: Segment, now: float) -> None:
        """Pause the running step ``seg`` at ``now`` (a pause step takes its place).

        Parameters
        ----------
        seg : Segment
            The step running.
        now : float
            The clock time.
        """
        pause = self.parts.timeline.hold(seg, now, self.parts.rep_log.in_set)
        self.leave(replace(seg, t_end=now), now)
        self.parts.recorder.mark(now, "pause", CUES["pause"])
        self.enter(pause, now)

    def unhold(self, seg: Segment, now: float) -> None:
        """Leave the pause step ``seg`` at ``now`` and go on with the plan.

        Parameters
        ----------
        seg : Segment
            The pause step running.
        now : float
            The clock time.
        """
        self.parts.timeline.unhold(now)
        self.leave(replace(seg, t_end=now), now)
        self.parts.recorder.mark(now, "resume", CUES["resume"])
        self.next_segment(now)

    def advance(self, now: float) -> None:
        """Fire every cue and step change due by ``now``, in time order."""
        while not self.finished and self.parts.timeline.current is not None:
            cut = self.parts.timeline.cut_time()
            if cut is not None and now >= cut and not self.parts.timeline.paused:
                self.end(cut, complete=False, ended_by="duration")
                return
            seg = self.parts.timeline.current
            if self.parts.timeline.refresh():  # an adaptive pacer's step ends when its cycles do
                seg = self.parts.timeline.current
                self.parts.figures.close_window(seg, seg.t_end)  # (the rep window's end, foreseen)
            fired = self.parts.cue_scheduler.fire_pacer(seg, now)
            if fired is not None:
                self.show_pacer(self.parts.pacer_follow.to_show(seg, fired), fired)
                continue
            if now >= seg.t_end:
                self.leave(seg, seg.t_end)
                self.next_segment(seg.t_end)
                continue
            return

    def next_segment(self, t: float) -> None:
        """Enter the next step at ``t`` (or end the session: the plan is done)."""
        seg = self.parts.timeline.take_next(t)
        if seg is None:
            self.end(t, complete=True, ended_by="protocol end")
            return
        self.enter(seg, t)

    def enter(self, seg: Segment, t: float) -> None:
        """Start a step: record it, start a rep step's set and pacer, give its cues."""
        self.parts.timeline.enter(seg)
        step = seg.step
        self.parts.recorder.event(t, "step", step.label, seg.to_json())
        self.parts.recorder.step(seg, "paused" if step.kind is StepKind.PAUSE else "running")
        if step.kind is StepKind.REPS and seg.pacer is not None:
            # The pipeline's rep policy decides which cycles are reps of this set.
            self.parts.rep_log.start_set(
                self.parts.pipeline.start_reps(
                    step.reps, pacer=seg.pacer.first, t_start=seg.t_start,
                    clock=self.rep_clock,
                )
            )
            self.parts.figures.open_window(seg)
            first = self.parts.pacer_follow.start(seg)
            if first is None:
                self.parts.recorder.pacer(seg.pacer.first)
            self.show_pacer(first, t)
        self.parts.cue_scheduler.enter(seg, t)

    def show_pacer(self, cycle: Pacer | None, t: float) -> None:
        """An adaptive pacer's new target: shown, and recorded with the goal."""
        if cycle is None:
            return
        self.parts.recorder.pacer(cycle)
        data = {**target_json(cycle), "goal_bpm": round(self.goal.rate_bpm, 2),
                "exact": pacer_json(cycle)}
        self.parts.recorder.event(t, "pacer", target_text(cycle), data)

    def leave(self, seg: Segment, t: float) -> None:
        """Close a step at ``t``: its zones, a rep step's set and figures."""
        self.parts.cue_scheduler.leave()
        self.record_zones(t)
        if seg.step.kind is StepKind.REPS:
            result = self.parts.pipeline.stop_reps()
            self.parts.recorder.pacer(None)
            self.parts.rep_log.end_set(seg, t, self.parts.timeline.t0 or 0.0, result)
            self.parts.figures.close_window(seg, t)
        self.parts.timeline.leave(seg, t)

    def end(self, t: float, *, complete: bool, ended_by: str) -> None:
        """End the session at ``t`` (once): close the step, say why it ended."""
        if self.finished:
            return
        seg = self.parts.timeline.current
        if seg is not None:
            self.leave(replace(seg, t_end=min(t, seg.t_end)), t)
        self.finished = True
        self.t_end = t
        self.complete = complete
        self.ended_by = ended_by
        self.parts.recorder.running("stopped")
        self.parts.cue_scheduler.end(t, complete, ended_by)
        self.parts.recorder.event(t, "end", ended_by, {"complete": self.complete})

    def record_zones(self, t: float) -> None:
        """The pelvic zones in use (for the report), once per step."""
        if self.parts.recorder.writer is None:
            return
        zones = self.parts.figures.zones_json(self.parts.pipeline.status.breath_source)
        if zones is not None:
            self.parts.recorder.event(t, "zones", zones["stream"], zones)
