"""The session engine: settle, baseline, reverse-Kegel reps against the pacer, post-baseline.

A *protocol* is a list of steps (data: :mod:`biofeedback.protocols.plan`,
with the built-in protocols and how a short session is fitted). The engine
walks them on the run's clock while it consumes a source's chunks and link
events: every chunk goes to the recording, the live model and the signal
pipeline; the pipeline's states and reps come back as cues and as the session
summary. A plan that does not fit the session's ``duration`` even with one
rep is cut at ``duration`` instead (and marked incomplete).

The engine composes parts with one job each and does the wiring between them:

========================================  ====================================================
part                                      its job
========================================  ====================================================
:class:`~.timeline.SessionTimeline`       which step runs when; pauses; the cut
:class:`~.cues.CueScheduler`              what to tell the person and when (pacer, strain...)
:class:`~.figures.RepLog`                 the reps the pipeline counted, set by set
:class:`~.figures.StateFigures`           strain count, drop on inhale, breath rate, zones
:class:`~.links.LinkGapTracker`           link losses and the time without a link
:class:`~.pain.PainLog`                   pain ratings, notes, the "stop and rest" advice
:class:`~.recorder.SessionRecorder`       the outputs: recording, live model, marker listeners
:class:`~.summary.SummaryBuilder`         the :class:`~.summary.SessionSummary` from the above
========================================  ====================================================

Safety: a pain rating of :data:`PAIN_STOP` or more before the session refuses
it, during or after it ends it, always with "stop and rest" advice. A pressure
rise is never rewarded: strain is cued as strain, praise needs a rep the
pipeline scored good (a drop, no strain, no contraction).

Reps: each rep step starts a set in the pipeline with the step's pacer
window; the pipeline's rep policy (:mod:`biofeedback.signal.reps`) decides
which cycles are reps — detected breath cycles that answer the pacer with a
breath sensor, the pacer's own cycles with the probe alone — and the engine
records, cues and sums up the reps it hands back. ``rep_clock`` in the summary
says which clock counted them.

The engine's :meth:`SessionEngine.intent` is what the virtual person follows
(``--virtual``): rest with free breathing in settle and baselines, the pacer
with a drop on each inhale during reps.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from biofeedback.protocols.cues import CUES, Cue, CueKind, CueScheduler
from biofeedback.protocols.figures import RepLog, StateFigures
from biofeedback.protocols.links import LinkGapTracker
from biofeedback.protocols.pacer import (
    AdaptivePacer,
    Pacer,
    PacerFollow,
    PacerLike,
    pacer_json,
    target_json,
    target_text,
)
from biofeedback.protocols.pain import (
    PAIN_STOP,
    PainLog,
    PainRefusedError,
    check_pain,
    pain_advice,
)
from biofeedback.protocols.plan import (
    PROTOCOLS,
    SessionProtocol,
    Step,
    StepKind,
    by_name,
    pacer_from_profile,
)
from biofeedback.protocols.recorder import SessionRecorder
from biofeedback.protocols.sinks import LiveSink, MarkerFn, RecordingSink
from biofeedback.protocols.summary import SessionSummary, SummaryBuilder
from biofeedback.protocols.timeline import Segment, SessionTimeline
from biofeedback.signal.reps import RepClock
from biofeedback.signal.results import (
    PipelineAPI,
    PipelineUpdate,
    RepResult,
)
from biofeedback.signal.types import BreathOutput
from devices.clock import Clock
from devices.errors import DeviceError, InputError
from devices.intent import Intent, PelvicAction
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamResolver
from devices.vocab import PelvicState

# The parts' names stay importable from here (the engine's public vocabulary).
__all__ = [
    "CUES",
    "PAIN_STOP",
    "PROTOCOLS",
    "Cue",
    "CueKind",
    "LiveSink",
    "PainRefusedError",
    "RecordingSink",
    "Segment",
    "SessionEngine",
    "SessionProtocol",
    "SessionSummary",
    "Step",
    "StepKind",
    "check_pain",
    "pacer_from_profile",
    "pain_advice",
]

#: Link events the marker listeners hear about.
_MARKED_LINKS = (LinkKind.LOST, LinkKind.CONNECTED, LinkKind.GIVEN_UP)


class SessionEngine:
    """Runs one protocol against a source of chunks and link events.

    Parameters
    ----------
    clock : Clock
        The run's clock (the steps and the pacer run on it).
    pipeline : PipelineAPI
        The signal pipeline for the session's streams.
    protocol : SessionProtocol or str
        A protocol or the name of a built-in one.
    pacer : Pacer, optional
        Breath timing (its ``t0`` is ignored: each rep step starts its own
        pacer); default inhale 4 s, exhale 6 s.
    writer : RecordingSink, optional
        Where the session is recorded (a store ``SessionWriter``).
    model : LiveSink, optional
        A live view's model.
    duration : float, optional
        Session length in seconds; a longer protocol is fitted (see module doc).
    pain_before : int, optional
        0-10; at or above :data:`PAIN_STOP` the engine refuses to start.
    note_before : str, optional
        A note the person wrote before the session.
    on_marker : callable, optional
        Called with ``(t, kind, text)`` for every step, cue, state change, rep,
        pause and pain report.
    effort : float
        The virtual person's drop effort (``intent``).
    compliance : float
        The virtual person's compliance (``intent``).
    rep_clock : {"auto", "breath", "pacer"}
        What a rep is: a detected breath cycle, or a paced cycle; ``auto``
        takes the pacer when there is no breath sensor (see module notes).
    adaptive_pacer : bool
        Lead towards ``pacer`` only as fast as the person follows: each rep
        cycle is planned as it comes, from the breaths seen (a breath sensor
        is needed; without one the pacer holds). See :class:`~.pacer.PacerFollow`.
    pacer_plan : sequence of (float, Pacer)
        With ``adaptive_pacer``: the targets a recorded session showed (clock
        time, pattern), played back instead of adapting (``replay``).

    Raises
    ------
    PainRefusedError
        When ``pain_before`` is at or above :data:`PAIN_STOP`.
    """

    def __init__(
        self,
        clock: Clock,
        pipeline: PipelineAPI,
        protocol: SessionProtocol | str = "quick",
        *,
        pacer: Pacer | None = None,
        writer: RecordingSink | None = None,
        model: LiveSink | None = None,
        duration: float | None = None,
        pain_before: int | None = None,
        note_before: str | None = None,
        on_marker: MarkerFn | None = None,
        effort: float = 0.8,
        compliance: float = 1.0,
        rep_clock: RepClock = "auto",
        adaptive_pacer: bool = False,
        pacer_plan: Sequence[tuple[float, Pacer]] = (),
    ) -> None:
        if rep_clock not in ("auto", "breath", "pacer"):
            raise ValueError(f"rep_clock must be auto, breath or pacer, not {rep_clock!r}")
        if isinstance(protocol, str):
            protocol = by_name(PROTOCOLS, protocol, "protocol")
        self.pain = PainLog.start(pain_before, note_before)
        if duration is not None and not duration > 0:
            raise InputError(f"duration must be positive, {duration!r} is invalid")
        self.clock = clock
        self.pipeline = pipeline
        self.protocol = protocol
        self.pacer = pacer or Pacer()
        self.duration = duration
        self.effort = effort
        self.compliance = compliance
        self.rep_clock_mode = rep_clock
        steps, fits = (
            protocol.fit(duration, self.pacer) if duration is not None else (protocol.steps, True)
        )
        self.steps: tuple[Step, ...] = steps
        self.fitted = steps != protocol.steps
        self.adaptive_pacer = adaptive_pacer
        schedule: PacerLike = (AdaptivePacer(self.pacer, plan=tuple(pacer_plan))
                               if adaptive_pacer else self.pacer)
        # The parts (see the module doc).
        self.timeline = SessionTimeline(steps, schedule, cut_after=None if fits else duration)
        self.pacer_follow = PacerFollow(self.pacer)
        self.recorder = SessionRecorder(writer, model, [on_marker] if on_marker else [])
        self.cue_scheduler = CueScheduler(self.recorder)
        self.rep_log = RepLog()
        self.figures = StateFigures()
        self.links = LinkGapTracker()
        self._summary = SummaryBuilder(
            protocol=protocol.name,
            steps=steps,
            fitted=self.fitted,
            pacer=self.pacer,
            timeline=self.timeline,
            reps=self.rep_log,
            figures=self.figures,
            links=self.links,
            pain=self.pain,
            pacer_follow=self.pacer_follow,
        )
        # How the run stands.
        self._started = False
        self._finished = False
        self._t_end = 0.0
        self._wake = asyncio.Event()
        self.complete = False
        self.ended_by = ""
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ the parts' figures

    @property
    def writer(self) -> RecordingSink | None:
        """Where the session is recorded (may be set before :meth:`run`)."""
        return self.recorder.writer

    @writer.setter
    def writer(self, writer: RecordingSink | None) -> None:
        self.recorder.writer = writer

    @property
    def model(self) -> LiveSink | None:
        """The live view's model (a front end may wrap it before :meth:`run`)."""
        return self.recorder.model

    @model.setter
    def model(self, model: LiveSink | None) -> None:
        self.recorder.model = model

    @property
    def t0(self) -> float | None:
        """Clock time the session started (None before :meth:`run`)."""
        return self.timeline.t0

    @property
    def segments(self) -> list[Segment]:
        """The steps as they ran, finished ones only."""
        return self.timeline.segments

    @property
    def cues(self) -> list[Cue]:
        """Every cue given, in order."""
        return self.cue_scheduler.cues

    @property
    def reps(self) -> list[RepResult]:
        """Every rep recorded, in order."""
        return self.rep_log.reps

    @property
    def rep_clock(self) -> str | None:
        """What the last rep step counted by (``"breath"`` or ``"pacer"``)."""
        return self.rep_log.rep_clock

    @property
    def pain_before(self) -> int | None:
        return self.pain.before

    # ------------------------------------------------------------------ public

    def add_marker_listener(self, fn: MarkerFn) -> None:
        """Also call ``fn(t, kind, text)`` for everything the engine marks."""
        self.recorder.markers.append(fn)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def paused(self) -> bool:
        return self.timeline.paused

    def intent(self, t: float) -> Intent:
        """What the (virtual) person should be doing at ``t``.

        A function of ``t`` and the plan only (the body model evaluates it a
        little ahead of time): free breathing at rest outside rep steps, the
        pacer with a drop on each inhale during reps, rest on the closing inhale.
        """
        seg = self.timeline.segment_at(t)
        if seg is None or seg.step.kind is not StepKind.REPS or seg.pacer is None:
            return Intent(compliance=self.compliance)
        target = seg.pacer.target(t)
        if t >= seg.reps_end:
            return Intent(breath=target, pelvic=PelvicAction.REST, compliance=self.compliance)
        return Intent(
            breath=target,
            pelvic=PelvicAction.DROP,
            effort=self.effort,
            compliance=self.compliance,
            drop_on_inhale=True,
        )

    def pause(self) -> None:
        """Pause the steps (the recording goes on); :meth:`resume` continues."""
        seg = self.timeline.current
        if self._finished or not self._started or self.paused or seg is None:
            return
        now = self.clock.now()
        pause = self.timeline.hold(seg, now, self.rep_log.in_set)
        self._leave(replace(seg, t_end=now), now)
        self.recorder.mark(now, "pause", CUES["pause"])
        self._enter(pause, now)
        self._wake.set()

    def resume(self) -> None:
        """Continue after :meth:`pause` (a rep step restarts its pacer for the reps left)."""
        seg = self.timeline.current
        if not self.paused or seg is None:
            return
        now = self.clock.now()
        self.timeline.unhold(now)
        self._leave(replace(seg, t_end=now), now)
        self.recorder.mark(now, "resume", CUES["resume"])
        self._next_segment(now)
        self._wake.set()

    def stop(self, reason: str = "stopped") -> None:
        """End the session now; what was recorded is kept, the summary says incomplete."""
        if self._finished:
            return
        now = self.clock.now()
        self._end(now, complete=False, ended_by=reason)
        self._wake.set()

    def report_pain(self, level: int, note: str | None = None) -> bool:
        """The person reports pain during the session; returns True when it ends it."""
        lvl = self.pain.report_during(level)
        now = self.clock.now()
        self.recorder.event(
            now, "pain", f"{lvl}/10", {"level": lvl, "when": "during", "note": note}
        )
        if lvl >= PAIN_STOP and not self._finished:
            self.pain.add_advice(pain_advice(lvl, "during"))
            self.stop("pain")
            return True
        return False

    async def run(
        self, items: AsyncIterator[Chunk | LinkEvent], *, start_at: float | None = None
    ) -> SessionSummary:
        """Consume ``items`` and walk the steps until the end, a stop, or the source ends.

        A source that fails (link given up) ends the session too: the summary
        says so, and the error is kept in :attr:`error` for the caller.

        Parameters
        ----------
        items : async iterator of Chunk or LinkEvent
            The session's source (several merged sources, a replay...).
        start_at : float, optional
            Clock time the first step starts (default: now); a replay starts
            the steps where the recording had them.
        """
        now = self.clock.now() if start_at is None else start_at
        self.timeline.start(now)
        self._started = True
        self.recorder.mark(now, "session", f"{self.protocol.name} session")
        self.recorder.event(
            now,
            "plan",
            self.protocol.name,
            {"steps": [s.to_json() for s in self.steps], "fitted": self.fitted},
        )
        self.cue_scheduler.cue(now, CueKind.SAFETY, CUES["safety"])
        self._next_segment(now)
        consumer = asyncio.create_task(self._consume(items), name="session consumer")
        try:
            await self._schedule(consumer)
        finally:
            if not consumer.done():
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
        return self.summary()

    def finish(
        self, *, pain_after: int | None = None, note_after: str | None = None
    ) -> SessionSummary:
        """Add the after-session ratings and close the recording (``writer.finish``)."""
        level = self.pain.report_after(pain_after, note_after)
        if level is not None:
            t = self._t_end if self._finished else self.clock.now()
            self.recorder.event(t, "pain", f"{level}/10", {"level": level, "when": "after"})
        summary = self.summary()
        self.recorder.finish(
            summary=summary.to_json(),
            complete=summary.complete,
            pain_after=self.pain.after,
            note_after=self.pain.note_after,
        )
        return summary

    def summary(self) -> SessionSummary:
        """The summary so far (final once :meth:`run` returned)."""
        return self._summary.build(
            end=self._t_end if self._finished else self.clock.now(),
            started=self._started,
            complete=self.complete,
            ended_by=self.ended_by,
        )

    def status(self) -> dict[str, Any]:
        """A compact snapshot for a status line."""
        now = self.clock.now()
        seg = self.timeline.current
        st = self.pipeline.status
        t0 = self.timeline.t0
        out: dict[str, Any] = {
            "t": now - (t0 or now),
            "step": seg.step.label if seg else ("done" if self._finished else "-"),
            "left_s": (seg.t_end - now) if seg and math.isfinite(seg.t_end) else None,
            "phase": None,
            "reps": len(self.reps),
            "last_score": self.reps[-1].score if self.reps else None,
            "state": st.pelvic_state.name.lower(),
            # The probe's own ripple is no breath rate worth showing.
            "rate_bpm": st.rate_bpm
            if self._breath_kind() not in (None, StreamKind.PRESSURE)
            else None,
        }
        if seg is not None and seg.pacer is not None:
            out["phase"] = seg.pacer.target(now).phase.name.lower()
        return out

    def pipeline_unit(self, stream: str) -> str | None:
        """The unit of a pipeline stream (by its id, resolved like the pipeline does)."""
        spec = StreamResolver(self.pipeline.streams).spec(stream)
        return None if spec is None else spec.unit

    def _breath_kind(self) -> StreamKind | None:
        src = self.pipeline.status.breath_source
        if src is None:
            return None
        for spec in self.pipeline.streams:
            if spec.name == src:
                return spec.kind
        return None

    # ------------------------------------------------------------------ scheduling

    async def _schedule(self, consumer: asyncio.Task[None]) -> None:
        """Wake at every step end, pacer cue and control call until the session ends."""
        while not self._finished:
            due = self.timeline.next_due(self.cue_scheduler.pacer_next)
            timer = (
                asyncio.ensure_future(self.clock.sleep_until(due))
                if due is not None and math.isfinite(due)
                else None
            )
            self._wake.clear()
            wake = asyncio.ensure_future(self._wake.wait())
            waits: set[asyncio.Future[Any]] = {consumer, wake}
            if timer is not None:
                waits.add(timer)
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                if timer is not None:
                    timer.cancel()
            now = self.clock.now()
            self._advance(now)
            if consumer in done:
                self._source_ended(now, consumer.exception())
                return

    def _source_ended(self, now: float, exc: BaseException | None) -> None:
        """The source ended (or failed) before the session did."""
        if self._finished:
            return
        if exc is not None:
            self.error = exc
            reason = "link" if isinstance(exc, DeviceError) else "error"
            self.recorder.event(now, "error", str(exc) or type(exc).__name__)
            self._end(now, complete=False, ended_by=reason)
        else:
            self._end(now, complete=False, ended_by="source ended")

    def _advance(self, now: float) -> None:
        """Fire every cue and step change due by ``now``, in time order."""
        while not self._finished and self.timeline.current is not None:
            cut = self.timeline.cut_time()
            if cut is not None and now >= cut and not self.paused:
                self._end(cut, complete=False, ended_by="duration")
                return
            seg = self.timeline.current
            if self.timeline.refresh():  # an adaptive pacer's step ends when its cycles do
                seg = self.timeline.current
                self.figures.close_window(seg, seg.t_end)  # (the rep window's end, foreseen)
            fired = self.cue_scheduler.fire_pacer(seg, now)
            if fired is not None:
                self._show_pacer(self.pacer_follow.to_show(seg, fired), fired)
                continue
            if now >= seg.t_end:
                self._leave(seg, seg.t_end)
                self._next_segment(seg.t_end)
                continue
            return

    def _next_segment(self, t: float) -> None:
        seg = self.timeline.take_next(t)
        if seg is None:
            self._end(t, complete=True, ended_by="protocol end")
            return
        self._enter(seg, t)

    def _enter(self, seg: Segment, t: float) -> None:
        self.timeline.enter(seg)
        step = seg.step
        self.recorder.event(t, "step", step.label, seg.to_json())
        self.recorder.step(seg, "paused" if step.kind is StepKind.PAUSE else "running")
        if step.kind is StepKind.REPS and seg.pacer is not None:
            # The pipeline's rep policy decides which cycles are reps of this set.
            self.rep_log.start_set(
                self.pipeline.start_reps(
                    step.reps, pacer=seg.pacer.first, t_start=seg.t_start,
                    clock=self.rep_clock_mode,
                )
            )
            self.figures.open_window(seg)
            first = self.pacer_follow.start(seg)
            if first is None:
                self.recorder.pacer(seg.pacer.first)
            self._show_pacer(first, t)
        self.cue_scheduler.enter(seg, t)

    def _show_pacer(self, cycle: Pacer | None, t: float) -> None:
        """An adaptive pacer's new target: shown, and recorded with the goal."""
        if cycle is None:
            return
        self.recorder.pacer(cycle)
        data = {**target_json(cycle), "goal_bpm": round(self.pacer.rate_bpm, 2),
                "exact": pacer_json(cycle)}
        self.recorder.event(t, "pacer", target_text(cycle), data)

    def _leave(self, seg: Segment, t: float) -> None:
        self.cue_scheduler.leave()
        self._record_zones(t)
        if seg.step.kind is StepKind.REPS:
            result = self.pipeline.stop_reps()
            self.recorder.pacer(None)
            self.rep_log.end_set(seg, t, self.timeline.t0 or 0.0, result)
            self.figures.close_window(seg, t)
        self.timeline.leave(seg, t)

    def _end(self, t: float, *, complete: bool, ended_by: str) -> None:
        if self._finished:
            return
        seg = self.timeline.current
        if seg is not None:
            self._leave(replace(seg, t_end=min(t, seg.t_end)), t)
        self._finished = True
        self._t_end = t
        self.complete = complete
        self.ended_by = ended_by
        self.recorder.running("stopped")
        self.cue_scheduler.end(t, complete, ended_by)
        self.recorder.event(t, "end", ended_by, {"complete": self.complete})

    def _record_zones(self, t: float) -> None:
        """The pelvic zones in use (for the report), once per step."""
        if self.recorder.writer is None:
            return
        zones = self.figures.zones_json(self.pipeline.status.breath_source)
        if zones is not None:
            self.recorder.event(t, "zones", zones["stream"], zones)

    # ------------------------------------------------------------------ data

    async def _consume(self, items: AsyncIterator[Chunk | LinkEvent]) -> None:
        async for item in items:
            if isinstance(item, Chunk):
                self._on_chunk(item)
            else:
                self._on_link(item)
            if self._finished:
                return

    def _on_chunk(self, chunk: Chunk) -> None:
        if len(chunk) == 0:
            return
        self.recorder.chunk(chunk)
        upd = self.pipeline.process(chunk)
        self._on_update(upd)
        self.recorder.update(upd)

    def _on_update(self, upd: PipelineUpdate) -> None:
        """Record and cue what the pipeline found."""
        pel = upd.pelvic
        if pel is not None:
            self.figures.on_pelvic(pel, self.pipeline_unit)
            self.recorder.states(pel.stream, pel.t, pel.state)
            for ev in pel.events:
                name = PelvicState(ev.state).name.lower()
                self.recorder.event(ev.t, "pelvic", name, ev.to_json())
                self.cue_scheduler.on_pelvic_event(ev, self.timeline.in_reps(ev.t))
        br = upd.breath
        if br is not None:
            self.figures.on_breath(br)
            self._follow_breaths(br)
            for b in br.breaths:
                self.recorder.event(b.inhale_onset, "breath", "", b.to_json())
        for rep in upd.reps:
            self._on_rep(rep)

    def _follow_breaths(self, br: BreathOutput) -> None:
        """A breath sensor's breaths during the reps teach an adaptive pacer."""
        seg = self.timeline.current
        if (
            self.adaptive_pacer
            and seg is not None
            and seg.step.kind is StepKind.REPS
            and self.rep_log.rep_clock == "breath"
            and br.kind is not StreamKind.PRESSURE
            and br.breaths
        ):
            self.pacer_follow.on_breaths(seg, br.breaths)

    def _on_rep(self, rep: RepResult) -> None:
        """A rep the pipeline counted: record it, then cue or praise."""
        seg = self.timeline.current
        if seg is None or seg.step.kind is not StepKind.REPS:
            return  # (the set was counted until the step ended)
        n = self.rep_log.add(rep)
        data = rep.to_json()
        data.update({"set": seg.step.set_index, "n": n, "of": seg.step.reps})
        self.recorder.event(rep.t_end, "rep", f"{n}/{seg.step.reps} score {rep.score:.0f}", data)
        self.cue_scheduler.on_rep(rep, max(self.clock.now(), rep.t_end))

    def _on_link(self, ev: LinkEvent) -> None:
        self.recorder.link(ev)
        self.pipeline.on_link_event(ev)
        self.links.on_event(ev)
        if ev.kind in _MARKED_LINKS:
            self.recorder.mark(ev.t, "link", f"{ev.device}: {ev.kind}")
