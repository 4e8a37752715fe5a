"""The session's outputs in one place: the recording, the live model, the marker listeners.

The engine says what happened (a chunk, an event, a cue, a step); the
:class:`SessionRecorder` hands it to each output that takes it. Any output
may be absent (a replay records nothing, a headless run has no model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from biofeedback.protocols.sinks import LiveSink, MarkerFn, RecordingSink
from biofeedback.signal.results import PipelineUpdate
from devices.stream import Chunk, LinkEvent

if TYPE_CHECKING:
    from biofeedback.protocols.cues import Cue
    from biofeedback.protocols.pacer import Pacer
    from biofeedback.protocols.timeline import Segment

__all__ = ["MARKED_EVENTS", "SessionRecorder"]

#: Recorded event kinds the marker listeners hear too (the rest is only recorded).
MARKED_EVENTS = ("step", "pelvic", "rep", "pain", "end", "error")


class SessionRecorder:
    """Fans a session's outputs out to the recording, the live model and the listeners.

    Parameters
    ----------
    writer : RecordingSink, optional
        The recording (a store ``SessionWriter``); may be set later.
    model : LiveSink, optional
        A live view's model.
    markers : list of callable, optional
        Called with ``(t, kind, text)`` for every mark.
    """

    def __init__(
        self,
        writer: RecordingSink | None = None,
        model: LiveSink | None = None,
        markers: list[MarkerFn] | None = None,
    ) -> None:
        self.writer = writer
        self.model = model
        self.markers: list[MarkerFn] = list(markers or [])

    # ------------------------------------------------------------------ data

    def chunk(self, chunk: Chunk) -> None:
        """A source's chunk: recorded, then shown."""
        if self.writer is not None:
            self.writer.chunk(chunk)
        if self.model is not None:
            self.model.on_chunk(chunk)

    def update(self, upd: PipelineUpdate) -> None:
        """The pipeline's answer to a chunk, for the live view."""
        if self.model is not None:
            self.model.on_update(upd)

    def states(self, stream: str, t: Any, state: Any) -> None:
        """Per-sample pelvic states of ``stream``."""
        if self.writer is not None:
            self.writer.states(stream, t, state)

    def link(self, ev: LinkEvent) -> None:
        """A link event: recorded, then shown."""
        if self.writer is not None:
            self.writer.link_event(ev)
        if self.model is not None:
            self.model.on_link(ev)

    # ------------------------------------------------------------------ events

    def event(
        self, t: float, kind: str, text: str = "", data: Mapping[str, Any] | None = None
    ) -> None:
        """Record an event; the listeners hear the kinds in :data:`MARKED_EVENTS`."""
        if self.writer is not None:
            self.writer.event(t, kind, text, dict(data) if data is not None else None)
        if kind in MARKED_EVENTS:
            self._tell(t, kind, text)

    def mark(self, t: float, kind: str, text: str) -> None:
        """A mark for the listeners (recorded too, except link marks: the links are)."""
        if self.writer is not None and kind != "link":
            self.writer.event(t, kind, text)
        self._tell(t, kind, text)

    def cue(self, cue: Cue) -> None:
        """A cue: recorded, shown, heard."""
        if self.writer is not None:
            self.writer.event(cue.t, "cue", cue.text, {"kind": str(cue.kind)})
        if self.model is not None:
            self.model.on_cue(cue.text, cue.t)
        self._tell(cue.t, "cue", cue.text)

    def _tell(self, t: float, kind: str, text: str) -> None:
        for fn in self.markers:
            fn(t, kind, text)

    # ------------------------------------------------------------------ live view

    def step(self, seg: Segment, running: str) -> None:
        """The step now under way, for the live view."""
        if self.model is not None:
            end = seg.t_end if math.isfinite(seg.t_end) else None
            self.model.set_step(seg.step.label, seg.t_start, end)
            self.model.set_running(running)

    def pacer(self, pacer: Pacer | None) -> None:
        """The pacer the live view draws (None: none)."""
        if self.model is not None:
            self.model.set_pacer(pacer)

    def running(self, state: str) -> None:
        """``running``, ``paused`` or ``stopped``, for the live view."""
        if self.model is not None:
            self.model.set_running(state)

    # ------------------------------------------------------------------ end

    def finish(
        self,
        *,
        summary: dict[str, Any],
        complete: bool,
        pain_after: int | None,
        note_after: str | None,
    ) -> None:
        """Close the recording with the summary and the after-session ratings."""
        if self.writer is not None:
            self.writer.finish(
                summary=summary, complete=complete, pain_after=pain_after, note_after=note_after
            )
