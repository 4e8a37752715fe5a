"""Several sources as one stream of chunks and link events.

Sources connect at once (none waits for another's scan or connect; the
radio serialises what must be: bumble and the BlueZ double allow one pending
LE connect, as BlueZ queues them); entering returns once each source is
connected or has given up, then their items are multiplexed in arrival order.
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
        Entered together; the first error a source ends with before it
        connected is raised here (the others are closed), as it would be by
        that source alone.
    fail_fast : bool
        Re-raise the first error a source ends with (the others are closed);
        otherwise a failed source just stops contributing.
    """
    out: asyncio.Queue[Any] = asyncio.Queue()
    entered: list[Source] = []
    tasks: list[asyncio.Task[None]] = []
    settled: asyncio.Queue[BaseException | None] = asyncio.Queue()
    try:
        for src in sources:
            await src.__aenter__()
            entered.append(src)
        tasks.extend(
            asyncio.create_task(_pump_iter(src.__aiter__(), src, out, settled)) for src in entered
        )
        for _ in entered:  # each connected, given up or ended before connecting
            if (early := await settled.get()) is not None:
                raise early

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
    it: AsyncIterator[Chunk | LinkEvent],
    source: Source,
    out: asyncio.Queue[Any],
    settled: asyncio.Queue[BaseException | None],
) -> None:
    """Forward ``source``'s items; say on ``settled`` when it connected (None) or failed first."""
    up = False
    try:
        async for item in it:
            out.put_nowait(item)
            if not up and isinstance(item, LinkEvent) and item.kind in (
                LinkKind.CONNECTED, LinkKind.GIVEN_UP,
            ):
                up = True
                settled.put_nowait(None)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if not up:
            settled.put_nowait(exc)  # raised where the source is entered
            return
        out.put_nowait((_DONE, source, exc))
        return
    if not up:
        settled.put_nowait(None)
    out.put_nowait((_DONE, source, None))
