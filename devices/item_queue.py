"""The queue between a source's background task and the one consumer of its items."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from devices.source_items import Chunk, LinkEvent

__all__ = ["ItemQueue"]


@dataclass(frozen=True)
class _End:
    """The last entry: the items are over, with the error they ended with (if any)."""

    error: BaseException | None


class ItemQueue:
    """Items a producer puts without waiting, then an end the consumer's iteration stops at.

    The producer (a source's task) calls :meth:`put` for each item and
    :meth:`end` once; iterating yields the items in order and, at the end,
    returns -- or raises the error the producer ended with.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Chunk | LinkEvent | _End] = asyncio.Queue()

    def put(self, item: Chunk | LinkEvent) -> None:
        """Hand ``item`` to the consumer (never blocks: the queue is unbounded)."""
        self._queue.put_nowait(item)

    def end(self, error: BaseException | None = None) -> None:
        """Mark the end of the items (call once); ``error`` is raised to the consumer there."""
        self._queue.put_nowait(_End(error))

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Chunk | LinkEvent]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
