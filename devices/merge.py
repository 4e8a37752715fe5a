"""Several sources as one stream of chunks and link events.

Sources are entered one after another (each waits for its first
``connected`` or failure before the next connects: concurrent connects are
problematic on BlueZ, and bumble allows one pending connect), then their
items are multiplexed in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from devices.stream import Chunk, LinkEvent, LinkKind, Source

__all__ = ["merged"]

_DONE = object()


@contextlib.asynccontextmanager
async def merged(
    sources: Sequence[Source], *, fail_fast: bool = True
) -> AsyncIterator[AsyncIterator[Chunk | LinkEvent]]:
    """Enter every source and yield one iterator over all their items.

    Parameters
    ----------
    sources : sequence of Source
        Entered in order.
    fail_fast : bool
        Re-raise the first error a source ends with (the others are closed);
        otherwise a failed source just stops contributing.
    """
    out: asyncio.Queue[Any] = asyncio.Queue()
    entered: list[Source] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for src in sources:
            await src.__aenter__()
            entered.append(src)
            it = src.__aiter__()
            # Forward items until this source is connected (or fails), then go on.
            while True:
                try:
                    item = await it.__anext__()
                except StopAsyncIteration:
                    break
                await out.put(item)
                if isinstance(item, LinkEvent) and item.kind in (
                    LinkKind.CONNECTED,
                    LinkKind.GIVEN_UP,
                ):
                    break
            tasks.append(asyncio.create_task(_pump_iter(it, src, out)))

        async def iterate() -> AsyncIterator[Chunk | LinkEvent]:
            remaining = len(tasks)
            while remaining:
                item = await out.get()
                if isinstance(item, tuple) and len(item) == 3 and item[0] is _DONE:
                    remaining -= 1
                    if item[2] is not None and fail_fast:
                        raise item[2]
                    continue
                yield item

        yield iterate()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for src in reversed(entered):
            with contextlib.suppress(Exception):
                await src.__aexit__(None, None, None)


async def _pump_iter(
    it: AsyncIterator[Chunk | LinkEvent], source: Source, out: asyncio.Queue[Any]
) -> None:
    try:
        async for item in it:
            await out.put(item)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        await out.put((_DONE, source, exc))
        return
    await out.put((_DONE, source, None))
