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
:class:`~.steps.StepWalker`               waking on the clock, entering and leaving steps; the end
:class:`~.feed.SessionFeed`               chunks to the recording and pipeline, findings to cues
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
from collections.abc import AsyncIterator, Sequence
from typing import Any

from biofeedback.protocols.cues import CUES, Cue, CueKind, CueScheduler
from biofeedback.protocols.feed import SessionFeed, pipeline_unit
from biofeedback.protocols.figures import RepLog, StateFigures
from biofeedback.protocols.links import LinkGapTracker
from biofeedback.protocols.pacer import (
    AdaptivePacer,
    Pacer,
    PacerFollow,
    PacerLike,
)
from biofeedback.protocols.pain import (
    PAIN_STOP,
    PainLog,
    PainRefusedError,
    check_pain,
    pain_advice,
)
from biofeedback.protocols.parts import SessionParts
from biofeedback.protocols.plan import (
    PROTOCOLS,
    SessionProtocol,
    Step,
    StepKind,
    by_name,
    pacer_from_profile,
)
from biofeedback.protocols.readouts import intent_at, status_line
from biofeedback.protocols.recorder import SessionRecorder
from biofeedback.protocols.sinks import LiveSink, MarkerFn, RecordingSink
from biofeedback.protocols.steps import StepWalker
from biofeedback.protocols.summary import SessionSummary, SummaryBuilder
from biofeedback.protocols.timeline import Segment, SessionTimeline
from biofeedback.signal.reps import RepClock
from biofeedback.signal.results import (
    PipelineAPI,
    RepResult,
)
from devices.clock import Clock
from devices.errors import InputError
from devices.intent import Intent
from devices.stream import Chunk, LinkEvent

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
        self.parts = SessionParts(
            clock=clock, pipeline=pipeline, timeline=self.timeline, recorder=self.recorder,
            cue_scheduler=self.cue_scheduler, rep_log=self.rep_log, figures=self.figures,
            links=self.links, pacer_follow=self.pacer_follow,
        )
        self.walker = StepWalker(self.parts, goal=self.pacer, rep_clock=rep_clock)
        self.feed = SessionFeed(self.parts, adaptive=adaptive_pacer)
        # How the run stands (the walker knows how it ended).
        self._started = False
        self._wake = asyncio.Event()

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
        """The session has ended."""
        return self.walker.finished

    @property
    def complete(self) -> bool:
        """The session ran to the plan's end."""
        return self.walker.complete

    @property
    def ended_by(self) -> str:
        """Why the session ended (empty while it runs)."""
        return self.walker.ended_by

    @property
    def error(self) -> BaseException | None:
        """Why the source failed, when it did (the summary says the session ended)."""
        return self.walker.error

    @property
    def paused(self) -> bool:
        return self.timeline.paused

    def intent(self, t: float) -> Intent:
        """What the (virtual) person should be doing at ``t``.

        A function of ``t`` and the plan only (the body model evaluates it a
        little ahead of time): free breathing at rest outside rep steps, the
        pacer with a drop on each inhale during reps, rest on the closing inhale.
        """
        return intent_at(self.timeline, t, effort=self.effort, compliance=self.compliance)

    def pause(self) -> None:
        """Pause the steps (the recording goes on); :meth:`resume` continues."""
        seg = self.timeline.current
        if self.finished or not self._started or self.paused or seg is None:
            return
        self.walker.hold(seg, self.clock.now())
        self._wake.set()

    def resume(self) -> None:
        """Continue after :meth:`pause` (a rep step restarts its pacer for the reps left)."""
        seg = self.timeline.current
        if not self.paused or seg is None:
            return
        self.walker.unhold(seg, self.clock.now())
        self._wake.set()

    def stop(self, reason: str = "stopped") -> None:
        """End the session now; what was recorded is kept, the summary says incomplete."""
        if self.finished:
            return
        self.walker.end(self.clock.now(), complete=False, ended_by=reason)
        self._wake.set()

    def report_pain(self, level: int, note: str | None = None) -> bool:
        """The person reports pain during the session; returns True when it ends it."""
        lvl = self.pain.report_during(level)
        now = self.clock.now()
        self.recorder.event(
            now, "pain", f"{lvl}/10", {"level": lvl, "when": "during", "note": note}
        )
        if lvl >= PAIN_STOP and not self.finished:
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
        self.walker.next_segment(now)
        consumer = asyncio.create_task(self._consume(items), name="session consumer")
        try:
            await self.walker.walk(consumer, self._wake)
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
            t = self.walker.t_end if self.finished else self.clock.now()
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
            end=self.walker.t_end if self.finished else self.clock.now(),
            started=self._started,
            complete=self.complete,
            ended_by=self.ended_by,
        )

    def status(self) -> dict[str, Any]:
        """A compact snapshot for a status line."""
        return status_line(
            self.clock.now(), self.timeline, self.pipeline, self.reps, finished=self.finished
        )

    def pipeline_unit(self, stream: str) -> str | None:
        """The unit of a pipeline stream (by its id, resolved like the pipeline does)."""
        return pipeline_unit(self.pipeline, stream)

    # ------------------------------------------------------------------ data

    async def _consume(self, items: AsyncIterator[Chunk | LinkEvent]) -> None:
        async for item in items:
            if isinstance(item, Chunk):
                self.feed.on_chunk(item)
            else:
                self.feed.on_link(item)
            if self.finished:
                return
