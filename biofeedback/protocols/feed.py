"""A session's data path: chunks to the recording and the pipeline, findings to cues.

Every chunk is recorded and processed; what the pipeline found (pelvic states
and events, breaths, reps) goes to the session's figures, the recording and
the cues; link events go to everyone who keeps track of the links.
"""

from __future__ import annotations

from biofeedback.protocols.parts import SessionParts
from biofeedback.protocols.plan import StepKind
from biofeedback.signal.results import PipelineAPI, PipelineUpdate, RepResult
from biofeedback.signal.types import BreathOutput
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamResolver
from devices.vocab import PelvicState

__all__ = ["SessionFeed", "breath_kind", "pipeline_unit"]

#: Link events the marker listeners hear about.
_MARKED_LINKS = (LinkKind.LOST, LinkKind.CONNECTED, LinkKind.GIVEN_UP)


def pipeline_unit(pipeline: PipelineAPI, stream: str) -> str | None:
    """The unit of a pipeline stream (by its id, resolved like the pipeline does).

    Parameters
    ----------
    pipeline : PipelineAPI
        The pipeline.
    stream : str
        A stream id.

    Returns
    -------
    str or None
        The unit, None for a stream the pipeline does not know.
    """
    spec = StreamResolver(pipeline.streams).spec(stream)
    return None if spec is None else spec.unit


def breath_kind(pipeline: PipelineAPI) -> StreamKind | None:
    """The kind of stream the pipeline takes the breath from (None: no breath source).

    Parameters
    ----------
    pipeline : PipelineAPI
        The pipeline.

    Returns
    -------
    StreamKind or None
        The breath source's kind.
    """
    src = pipeline.status.breath_source
    if src is None:
        return None
    for spec in pipeline.streams:
        if spec.name == src:
            return spec.kind
    return None


class SessionFeed:
    """Hands a session's chunks and link events to the parts that use them.

    Parameters
    ----------
    parts : SessionParts
        The session's clock, pipeline, timeline, recorder, cues, rep log,
        figures, link tracker and pacer follower.
    adaptive : bool
        The pacer adapts to the breaths seen (the pacer follower learns from
        the breaths during reps).
    """

    def __init__(self, parts: SessionParts, *, adaptive: bool) -> None:
        self.parts = parts
        self.adaptive_pacer = adaptive

    def _unit(self, stream: str) -> str | None:
        return pipeline_unit(self.parts.pipeline, stream)

    def on_chunk(self, chunk: Chunk) -> None:
        """Record and process a chunk, then record and cue what the pipeline found."""
        if len(chunk) == 0:
            return
        self.parts.recorder.chunk(chunk)
        upd = self.parts.pipeline.process(chunk)
        self.on_update(upd)
        self.parts.recorder.update(upd)

    def on_update(self, upd: PipelineUpdate) -> None:
        """Record and cue what the pipeline found."""
        pel = upd.pelvic
        if pel is not None:
            self.parts.figures.on_pelvic(pel, self._unit)
            self.parts.recorder.states(pel.stream, pel.t, pel.state)
            for ev in pel.events:
                name = PelvicState(ev.state).name.lower()
                self.parts.recorder.event(ev.t, "pelvic", name, ev.to_json())
                self.parts.cue_scheduler.on_pelvic_event(ev, self.parts.timeline.in_reps(ev.t))
        br = upd.breath
        if br is not None:
            self.parts.figures.on_breath(br)
            self.follow_breaths(br)
            for b in br.breaths:
                self.parts.recorder.event(b.inhale_onset, "breath", "", b.to_json())
        for rep in upd.reps:
            self.on_rep(rep)

    def follow_breaths(self, br: BreathOutput) -> None:
        """A breath sensor's breaths during the reps teach an adaptive pacer."""
        seg = self.parts.timeline.current
        if (
            self.adaptive_pacer
            and seg is not None
            and seg.step.kind is StepKind.REPS
            and self.parts.rep_log.rep_clock == "breath"
            and br.kind is not StreamKind.PRESSURE
            and br.breaths
        ):
            self.parts.pacer_follow.on_breaths(seg, br.breaths)

    def on_rep(self, rep: RepResult) -> None:
        """A rep the pipeline counted: record it, then cue or praise."""
        seg = self.parts.timeline.current
        if seg is None or seg.step.kind is not StepKind.REPS:
            return  # (the set was counted until the step ended)
        n = self.parts.rep_log.add(rep)
        data = rep.to_json()
        data.update({"set": seg.step.set_index, "n": n, "of": seg.step.reps})
        text = f"{n}/{seg.step.reps} score {rep.score:.0f}"
        self.parts.recorder.event(rep.t_end, "rep", text, data)
        self.parts.cue_scheduler.on_rep(rep, max(self.parts.clock.now(), rep.t_end))

    def on_link(self, ev: LinkEvent) -> None:
        """Record a link event and tell the pipeline and the link tracker."""
        self.parts.recorder.link(ev)
        self.parts.pipeline.on_link_event(ev)
        self.parts.links.on_event(ev)
        if ev.kind in _MARKED_LINKS:
            self.parts.recorder.mark(ev.t, "link", f"{ev.device}: {ev.kind}")
