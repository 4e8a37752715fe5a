"""ItemQueue: the items a source's task hands its consumer, then the end."""

from __future__ import annotations

import numpy as np
import pytest

from devices.errors import GaveUpError
from devices.item_queue import ItemQueue
from devices.stream import Chunk, LinkEvent, LinkKind


def _chunk(t0: float) -> Chunk:
    return Chunk(
        stream="pressure", t=np.array([t0, t0 + 0.1]), values=np.zeros((2, 1)), unit="count"
    )


@pytest.mark.asyncio
async def test_items_come_in_order_then_the_iteration_ends() -> None:
    queue = ItemQueue()
    items: list[Chunk | LinkEvent] = [
        LinkEvent(kind=LinkKind.CONNECTED, t=0.0, device="d"),
        _chunk(0.0),
        _chunk(0.2),
    ]
    for item in items:
        queue.put(item)
    queue.end()
    got = [item async for item in queue]
    assert len(got) == len(items)
    assert all(a is b for a, b in zip(got, items, strict=True))  # the same objects, in order


@pytest.mark.asyncio
async def test_the_error_the_producer_ended_with_reaches_the_consumer_after_the_items() -> None:
    queue = ItemQueue()
    queue.put(LinkEvent(kind=LinkKind.GIVEN_UP, t=3.0, device="d", detail="no answer"))
    queue.end(GaveUpError("gave up after 3: no answer"))
    got: list[Chunk | LinkEvent] = []
    with pytest.raises(GaveUpError, match="gave up after 3"):
        async for item in queue:
            got.append(item)
    assert [e.kind for e in got if isinstance(e, LinkEvent)] == [LinkKind.GIVEN_UP]
