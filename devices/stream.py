"""The source contract: timestamped sample chunks and link events.

A *source* (a BLE driver connection, an LSL inlet, the replay of a recording)
is an async iterator of :class:`Chunk` and :class:`LinkEvent` items, used as an
async context manager::

    async with source:
        async for item in source:
            if isinstance(item, Chunk):
                ...

Times are seconds on the run's :class:`~devices.clock.Clock`.

This module is the contract's public surface: :class:`Source`, and the names
its parts define, re-exported -- a stream's description and identity
(:mod:`devices.stream_spec`), the resolution of stream ids
(:mod:`devices.stream_resolver`), the items a source yields
(:mod:`devices.source_items`) and the reconnecting link BLE and LSL sources
share (:mod:`devices.task_source`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from devices.source_items import Chunk, LinkEvent, LinkKind
from devices.stream_resolver import StreamResolver
from devices.stream_spec import StreamKey, StreamKind, StreamSpec, SupportLevel
from devices.task_source import ReconnectPolicy, TaskSource

__all__ = [
    "Chunk",
    "LinkEvent",
    "LinkKind",
    "ReconnectPolicy",
    "Source",
    "StreamKey",
    "StreamKind",
    "StreamResolver",
    "StreamSpec",
    "SupportLevel",
    "TaskSource",
]


@runtime_checkable
class Source(Protocol):
    """What the pipeline, the store and the UI consume.

    Implemented by :class:`devices.ble.BleSource`, the LSL inlet, and the
    replay of a recording in ``biofeedback``.
    """

    @property
    def name(self) -> str:
        """Human name of the source (device name)."""
        ...

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        """The streams this source delivers."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]: ...
