"""A recorded session played back as a source, with the same contract as a sensor.

:class:`ReplaySource` is an async context manager and an async iterator of
:class:`~devices.stream.Chunk` and :class:`~devices.stream.LinkEvent` items in
time order across streams: the very chunks the session was recorded from
(values, times and sizes), and the recorded link events at their times. Each
chunk is delivered when its last sample is due, as a sensor would deliver
it, paced by the clock: real time (``speed=1``), scaled (``speed=X``), or as
fast as possible (``speed=None``; a :class:`~devices.clock.SimClock` with
``speed=None`` also gives "max" while keeping the pacing logic).

Before the recorded items the source says ``connected`` and after them
``stopped``, both with the replay's own name as device, so consumers that
wait for a source to connect (``devices.merge.merged``) work unchanged.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from biofeedback.store import SessionInfo, Store
from devices.clock import Clock
from devices.errors import InputError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamSpec

__all__ = ["ReplaySource"]

_Item = tuple[float, int, int, Chunk | LinkEvent]


class ReplaySource:
    """Play a stored session back as a source.

    Parameters
    ----------
    store : Store or path
        An open store (left open) or the path of a store file (opened on
        entry, closed on exit).
    session_id : int
        The session to play.
    clock : Clock
        Paces the playback: recorded item at session time ``s`` is delivered
        at clock time ``start + s / speed``.
    speed : float or None
        Recorded seconds per clock second; None delivers without waiting.
    rebase : bool
        False (default): items keep their recorded times. True: times are
        shifted so that the session start falls on the clock time when
        iteration starts (what a live consumer on ``clock`` expects; with
        ``speed`` other than 1 the spacing stays the recorded one).
    streams : sequence of str or None
        Play only these streams (default: all).

    Raises
    ------
    InputError
        No such session or stream, or a store that cannot be opened.
    """

    def __init__(
        self,
        store: Store | str | Path,
        session_id: int,
        clock: Clock,
        *,
        speed: float | None = 1.0,
        rebase: bool = False,
        streams: Sequence[str] | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be a positive number or None, {speed!r} is invalid")
        self.session_id = session_id
        self.clock = clock
        self.speed = speed
        self.rebase = rebase
        self._store: Store | None
        self._path: Path | None
        if isinstance(store, Store):
            self._own, self._store, self._path = False, store, None
            self.info: SessionInfo = store.session(session_id)
        else:
            self._own, self._store, self._path = True, None, Path(store)
            with Store(self._path) as st:
                self.info = st.session(session_id)
        known = {s.name: s for s in self.info.streams}
        if streams is None:
            self._specs = tuple(self.info.streams)
        else:
            missing = [s for s in streams if s not in known]
            if missing:
                raise InputError(f"session {session_id} has no stream {missing[0]!r}")
            self._specs = tuple(known[s] for s in streams)
        self._entered = False

    @property
    def name(self) -> str:
        return f"replay of session {self.session_id}"

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return self._specs

    async def __aenter__(self) -> Self:
        if self._store is None:
            assert self._path is not None
            self._store = Store(self._path)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        if self._own and self._store is not None:
            self._store.close()
            self._store = None

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]:
        if not self._entered or self._store is None:
            raise RuntimeError("use 'async with ReplaySource(...)' before iterating")
        return self._play(self._store)

    # -- playback ------------------------------------------------------------------

    def _items(self, store: Store) -> Iterator[_Item]:
        """Every recorded item keyed by its delivery time, merged across streams."""
        seq = itertools.count()

        def chunks(rank: int, spec: StreamSpec) -> Iterator[_Item]:
            for block in store.iter_blocks(self.session_id, spec.name):
                for c in block.chunks(spec.name, spec.unit, spec.channels):
                    yield (float(c.t[-1]), rank, next(seq), c)

        links: list[_Item] = [
            (ev.t, -1, next(seq), ev) for ev in store.link_events(self.session_id)
        ]
        gens = [chunks(i, s) for i, s in enumerate(self._specs)]
        return heapq.merge(iter(links), *gens, key=lambda x: (x[0], x[1], x[2]))

    async def _play(self, store: Store) -> AsyncIterator[Chunk | LinkEvent]:
        start = self.clock.now()
        t0 = self.info.t0
        shift = start - t0 if self.rebase else 0.0
        yield LinkEvent(LinkKind.CONNECTED, start if self.rebase else t0, self.name, "replay")
        last = t0
        for key, _rank, _n, item in self._items(store):
            last = max(last, key)
            if self.speed is None:
                await asyncio.sleep(0)  # let the consumer's other tasks run
            else:
                await self.clock.sleep_until(start + (key - t0) / self.speed)
            if shift == 0.0:
                yield item
            elif isinstance(item, Chunk):
                yield Chunk(item.stream, np.asarray(item.t + shift), item.values, item.unit,
                            item.channels)
            else:
                yield LinkEvent(item.kind, item.t + shift, item.device, item.detail, item.value)
        yield LinkEvent(LinkKind.STOPPED, last + shift, self.name, "replay ended")
