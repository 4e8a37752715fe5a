"""A session's start-up, raw streams first: the sensors stream while the session stack loads.

The session stack (:data:`SESSION_STACK`: the engine and the pipeline, scipy)
takes about 1.5 s to import. With ``LiveOptions.raw_first`` the sources are
connected first; :func:`loaded` imports the stack in a thread while
:func:`preview` shows the raw streams (the window's preview model, or one
terminal line per stream, :func:`raw_text`), and keeps every item, in order,
for the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence

from biofeedback.session_options import LiveOptions
from devices.ble import BleSource
from devices.clock import Clock
from devices.stream import Chunk, LinkEvent

__all__ = ["FIRST_CHUNKS_WAIT_S", "SESSION_STACK", "loaded", "preview", "raw_text"]

#: What a session needs beyond the radio (the engine, the pipeline: scipy, about
#: 1.5 s to import). A command that has not loaded them yet (the demo) connects
#: the sensors first and loads these while the raw streams are on screen.
SESSION_STACK = ("biofeedback.protocols.session", "biofeedback.signal.pipeline")

#: How long the demo waits for each sensor's first chunk before loading the stack.
FIRST_CHUNKS_WAIT_S = 1.0


async def load_session_stack() -> None:
    """Import :data:`SESSION_STACK` in a thread; the loop runs meanwhile.

    A plain thread, not the loop's executor (qasync's would report the result of
    a cancelled run as an error); when cancelled, this still waits for the import
    to end, so nothing outlives the loop.
    """
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    failed: list[BaseException] = []

    def work() -> None:
        try:
            for name in SESSION_STACK:
                importlib.import_module(name)
        except BaseException as exc:  # raised again on the loop
            failed.append(exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits
                loop.call_soon_threadsafe(done.set)

    threading.Thread(target=work, name="session-stack-import", daemon=True).start()
    try:
        await done.wait()
    except asyncio.CancelledError:
        await done.wait()
        raise
    if failed:
        raise failed[0]


def preview(
    clock: Clock, sources: Sequence[BleSource], opts: LiveOptions
) -> Callable[[Chunk | LinkEvent], None] | None:
    """What shows the raw streams before the pipeline exists (None: nothing does).

    The window draws them on a preview model; the terminal prints one line per
    stream at its first chunk (its latest value and the rate of its sample times).
    """
    if opts.window is not None:
        specs = [s for src in sources for s in src.streams]
        from biofeedback.ui.model import LiveModel  # only a window previews on a model

        model = LiveModel(specs, clock=clock,
                          device_of={s.name: src.name for src in sources for s in src.streams})
        opts.window.set_model(model)

        def draw(item: Chunk | LinkEvent) -> None:
            if isinstance(item, Chunk):
                model.on_chunk(item)
            else:
                model.on_link(item)

        return draw
    if not opts.status_lines:
        return None
    named = {s.name: (src.name, s.rate_hz) for src in sources for s in src.streams}
    printed: set[str] = set()

    def print_first(item: Chunk | LinkEvent) -> None:
        if isinstance(item, Chunk) and item.stream not in printed and item.t.size:
            printed.add(item.stream)
            device, rate = named.get(item.stream, (item.stream, None))
            opts.say(f"  {device}: {raw_text(item, rate)}")

    return print_first


def raw_text(chunk: Chunk, rate_hz: float | None = None) -> str:
    """A chunk's stream, its latest raw sample and the stream's rate, in words.

    >>> import numpy as np
    >>> raw_text(Chunk("Boost/kgoal.pressure", np.array([0.0, 0.02]),
    ...                np.array([[101.0, 0.0], [103.5, 1.0]]), "count", ("raw", "flags")), 50.0)
    'pressure raw 103.5 flags 1 count, 50 Hz (raw; the session starts in a moment)'
    """
    stream = chunk.stream.rsplit(".", 1)[-1]
    names = chunk.channels if len(chunk.channels) == chunk.values.shape[1] > 1 else ()
    last = [f"{v:.4g}" for v in chunk.values[-1]]
    value = " ".join(f"{n} {v}" for n, v in zip(names, last, strict=True)) if names \
        else ", ".join(last)
    rate = f", {rate_hz:g} Hz" if rate_hz else ""
    return f"{stream} {value} {chunk.unit}{rate} (raw; the session starts in a moment)"


@contextlib.asynccontextmanager
async def loaded(
    items: AsyncIterator[Chunk | LinkEvent], clock: Clock, sources: Sequence[BleSource],
    opts: LiveOptions,
) -> AsyncIterator[AsyncIterator[Chunk | LinkEvent]]:
    """``items``, once the session stack is imported; the window shows the raw streams meanwhile.

    Without ``opts.raw_first``, or when the stack is loaded already, this is
    ``items`` itself (the stack imported first). Otherwise it is
    imported in a thread (the loop keeps running: the sensors stream, the window
    or the terminal shows them, see :func:`preview`) while the items are kept in
    order for the engine, none lost.
    """
    if all(name in sys.modules for name in SESSION_STACK) or not opts.raw_first:
        for name in SESSION_STACK:
            importlib.import_module(name)
        yield items
        return
    show: Callable[[Chunk | LinkEvent], None] | None = preview(clock, sources, opts)
    kept: asyncio.Queue[Chunk | LinkEvent | BaseException | None] = asyncio.Queue()
    streams: set[str] = set()
    shown = asyncio.Event()  # a chunk of each sensor drawn (or the items ended)

    async def keep() -> None:
        try:
            async for item in items:
                if show is not None:
                    show(item)
                if isinstance(item, Chunk):
                    streams.add(item.stream)
                    if len(streams) >= len(sources):
                        shown.set()
                kept.put_nowait(item)
        except Exception as exc:  # the engine raises it where it would have met it
            kept.put_nowait(exc)
        else:
            kept.put_nowait(None)
        finally:
            shown.set()

    async def replay() -> AsyncIterator[Chunk | LinkEvent]:
        nonlocal show
        show = None  # the engine's model takes over from here
        while (item := await kept.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    task = asyncio.create_task(keep())
    try:
        # The import shares the interpreter with the streams: first let them reach
        # the screen (at most a second of waiting for a silent sensor).
        # (asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
        # cancellation that lands as the awaited event is set -- a SIGTERM that
        # closed the window as the first chunks arrived was lost, and the session ran on)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CHUNKS_WAIT_S):
                await shown.wait()
        await load_session_stack()
        yield replay()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
