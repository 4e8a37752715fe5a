"""Where a session's outputs go: the recording, a live view's model, marker listeners.

Protocols only (structural types): the store's ``SessionWriter`` is a
:class:`RecordingSink`, the UI's ``LiveModel`` a :class:`LiveSink`; tests
hand in their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.results import PipelineUpdate
from devices.stream import Chunk, LinkEvent

__all__ = ["LiveSink", "MarkerFn", "RecordingSink"]


class RecordingSink(Protocol):
    """What the engine records through (a store ``SessionWriter``)."""

    def chunk(self, chunk: Chunk) -> Any: ...

    def link_event(self, ev: LinkEvent) -> Any: ...

    def event(
        self, t: float, kind: str, text: str = "", data: dict[str, Any] | None = None
    ) -> Any: ...

    def states(self, stream: str, t: Any, state: Any) -> Any: ...

    def finish(
        self,
        *,
        summary: dict[str, Any],
        complete: bool,
        pain_after: int | None = None,
        note_after: str | None = None,
    ) -> Any:
        """The session's summary and after-session ratings; the recording ends."""
        ...


class LiveSink(Protocol):
    """What the engine feeds a live view's model with."""

    def on_chunk(self, chunk: Chunk) -> Any: ...

    def on_update(self, update: PipelineUpdate) -> Any: ...

    def on_link(self, ev: LinkEvent) -> Any: ...

    def on_cue(self, text: str, t: float) -> Any: ...

    def set_step(self, name: str, t_start: float, t_end: float | None) -> Any: ...

    def set_pacer(self, pacer: Pacer | None) -> Any: ...

    def set_running(self, state: Any) -> Any: ...


#: Listener of everything the engine marks: ``(t, kind, text)`` (LSL markers, printing).
MarkerFn = Callable[[float, str, str], None]
