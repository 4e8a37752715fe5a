"""One clock for everything that needs time.

Every component that reads or waits on time takes a :class:`Clock`. The real
clock is :func:`time.monotonic` with :func:`asyncio.sleep`; the simulated clock
lets the virtual radio, the body model, the pipeline and the session engine run
faster than real time with exactly the same code (``--speed``).

Two simulated modes exist:

* ``SimClock(speed=X)`` -- scaled: simulated time runs ``X`` times faster than
  the wall clock.
* ``SimClock(speed=None)`` (``--speed max``) -- event driven: when every party
  that can produce work is waiting, simulated time jumps to the earliest
  pending :meth:`Clock.sleep` deadline. The event loop's ready queue shows the
  loop's own work; work the loop cannot see declares itself:

  - :meth:`Clock.hold` -- work handed outside the loop (a worker thread, a
    subprocess, a D-Bus round trip) whose result belongs to the current
    instant: simulated time stands still until every hold is released. Usable
    from any thread.
  - :meth:`Clock.busy` -- a radio operation in flight (scan, connect,
    discovery): simulated time flows at the real rate instead of jumping, so a
    reconnect costs what it costs on the radio and never an arbitrary number
    of simulated seconds.

  A hold inside a busy section freezes the flow too. Code that holds the clock
  must not wait on it (a :meth:`Clock.sleep` under a hold never ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Clock", "RealClock", "SimClock", "clock_for_speed", "parse_speed"]

T = TypeVar("T")

#: Shortest real time a radio-level wait (a scan window) takes in simulated
#: modes: enough for a dozen advertising intervals on the virtual radio.
RADIO_FLOOR_S = 0.4


@runtime_checkable
class Clock(Protocol):
    """What every time-dependent component takes."""

    def now(self) -> float:
        """Seconds on this clock (monotonic; the origin is arbitrary)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Wait until :meth:`now` is at least ``t``."""
        ...

    def radio_seconds(self, seconds: float) -> float:
        """Real seconds a radio-level wait of ``seconds`` should take."""
        ...

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """Like :func:`asyncio.wait_for`, with ``timeout`` in this clock's seconds."""
        ...

    def busy(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Mark a radio operation in flight (simulated time flows in real time)."""
        ...

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Mark work outside the event loop in flight (simulated time stands still)."""
        ...

    @property
    def speed(self) -> float | None:
        """1.0 for real time, X for scaled, None for as fast as possible."""
        ...


class _ClockBase:
    async def sleep_until(self, t: float) -> None:
        dt = t - self.now()  # type: ignore[attr-defined]
        if dt > 0:
            await self.sleep(dt)  # type: ignore[attr-defined]
        else:
            await asyncio.sleep(0)

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """Like :func:`asyncio.wait_for`, with ``timeout`` in this clock's seconds.

        Raises
        ------
        TimeoutError
            When ``timeout`` elapses first.
        """
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.sleep(timeout))  # type: ignore[attr-defined]
        try:
            done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            timer.cancel()
            raise
        timer.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise TimeoutError(f"timed out after {timeout:g} s")


class RealClock(_ClockBase):
    """The monotonic wall clock."""

    speed: float | None = 1.0

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def radio_seconds(self, seconds: float) -> float:
        return seconds

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        yield

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        yield


class SimClock(_ClockBase):
    """Simulated time, scaled (``speed=X``) or event driven (``speed=None``).

    Parameters
    ----------
    speed : float or None
        Simulated seconds per real second; ``None`` runs as fast as the event
        loop allows.
    start : float
        Simulated time at creation.

    Notes
    -----
    In event-driven mode an advancer task waits until the event loop has
    nothing runnable but itself, no :meth:`hold` is held, and then moves time
    to the earliest deadline (or, under :meth:`busy`, lets it flow at the real
    rate up to that deadline, where it waits until the loop has run what the
    deadline woke). The ready queue is ``loop._ready`` on CPython's loops, so all
    callbacks that bumble's ``LocalLink`` schedules with ``call_soon`` are
    delivered before time moves; under ``qasync`` it is the zero-interval Qt
    timers through which qasync runs ``call_soon``.
    """

    def __init__(self, speed: float | None = None, start: float = 0.0) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be a positive number or None, {speed!r} is invalid")
        self._speed = speed
        self._start = start
        self._real0 = time.monotonic()
        self._now = start
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._holds = 0
        self._lock = threading.Lock()  # guards _busy, _holds and the flow's origin
        self._flow_real0: float | None = None  # real time the current flow began
        self._advancer: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    def __getstate__(self) -> dict[str, object]:
        # Copyable and picklable as before the lock (a recorded run keeps its clock).
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def speed(self) -> float | None:
        return self._speed

    @property
    def held(self) -> bool:
        """True while some :meth:`hold` is in force (time stands still)."""
        return self._holds > 0

    def now(self) -> float:
        if self._speed is not None:
            return self._start + (time.monotonic() - self._real0) * self._speed
        real0 = self._flow_real0
        if real0 is None:
            return self._now
        t = self._now + max(0.0, time.monotonic() - real0)
        # Flowing time stops at the next deadline until the advancer has
        # delivered it: a late loop makes a sleeper wake late in real time,
        # never late on this clock.
        with contextlib.suppress(IndexError):  # emptied by another thread meanwhile
            t = min(t, max(self._now, self._heap[0][0]))
        return t

    def radio_seconds(self, seconds: float) -> float:
        if self._speed is None:
            return min(seconds, RADIO_FLOOR_S)
        return max(seconds / self._speed, min(seconds, RADIO_FLOOR_S))

    def _retime(self, busy: int, holds: int) -> None:
        """Set the counters, folding any flow so far into ``_now`` (under the lock)."""
        self._now = self.now()
        self._busy, self._holds = busy, holds
        self._flow_real0 = time.monotonic() if busy and not holds else None

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        if self._speed is not None:
            yield
            return
        with self._lock:
            self._retime(self._busy + 1, self._holds)
        try:
            yield
        finally:
            with self._lock:
                self._retime(self._busy - 1, self._holds)
            self._wake()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep simulated time still while work outside the event loop is in flight.

        Wrap what the loop cannot see: a call handed to a worker thread or an
        executor, a subprocess, a round trip through D-Bus. Time neither jumps
        nor flows until every hold is released, so what that work produces is
        stamped at the instant it was asked for. May be entered and left from
        any thread. A scaled clock ignores holds (its time is the wall clock's).
        """
        if self._speed is not None:
            yield
            return
        with self._lock:
            self._retime(self._busy, self._holds + 1)
        try:
            yield
        finally:
            with self._lock:
                self._retime(self._busy, self._holds - 1)
            self._wake()

    def _wake(self) -> None:
        """Let the advancer look again (from any thread)."""
        advancer, wakeup = self._advancer, self._wakeup
        if advancer is None or wakeup is None or advancer.done():
            return
        loop = advancer.get_loop()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(wakeup.set)

    async def sleep(self, seconds: float) -> None:
        if self._speed is not None:
            await asyncio.sleep(max(0.0, seconds) / self._speed)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (self.now() + max(0.0, seconds), next(self._seq), fut))
        self._ensure_advancer(loop)
        assert self._wakeup is not None
        self._wakeup.set()
        await fut

    def _ensure_advancer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._advancer is None or self._advancer.done() or self._advancer.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._advancer = loop.create_task(self._advance(), name="SimClock advancer")

    async def _settle(self) -> None:
        """Return when nothing but this task is runnable.

        The loop is watched by a plain callback that puts itself back on the
        ready queue until it finds the queue empty (a task yielding with
        ``sleep(0)`` did the same at about twice the cost, once per loop
        round); the check that counts is made again here, in this task's own
        step, since the round that wakes it may have brought due timers.
        """
        loop = asyncio.get_running_loop()
        pending = _ready_counter(loop)
        if pending is None:  # an unknown loop: a hundred rounds, then time moves
            for _ in range(100):
                await asyncio.sleep(0)
            return
        rounds = 0
        while pending() and rounds < _SETTLE_ROUNDS:
            rounds += await _when_quiet(loop, pending, _SETTLE_ROUNDS - rounds)
        # Still busy after many rounds: let time move anyway.

    async def _advance(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            await self._settle()
            # Drop cancelled sleepers.
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap or self._holds:
                # Nothing to wake, or work outside the loop in flight: wait
                # for a sleeper or the last release (both set the event).
                wakeup.clear()
                await wakeup.wait()
                continue
            deadline = self._heap[0][0]
            if self._busy:
                # Radio work in flight: time flows at the real rate.
                wait = deadline - self.now()
                if wait > 0:
                    await asyncio.sleep(min(wait, 0.005))
                    continue
                with self._lock:  # flow on from the deadline once it is delivered
                    self._retime(self._busy, self._holds)
            elif deadline > self._now:
                self._now = deadline
            now = self.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, fut = heapq.heappop(self._heap)
                if not fut.done():
                    fut.set_result(None)


#: Loop rounds :meth:`SimClock._settle` waits for the ready queue to empty.
_SETTLE_ROUNDS = 10_000


def _when_quiet(
    loop: asyncio.AbstractEventLoop, pending: Callable[[], int], limit: int
) -> asyncio.Future[int]:
    """A future set, to the number of rounds waited, in the first loop round whose ready
    queue holds nothing but the watcher itself (or after ``limit`` rounds)."""
    done: asyncio.Future[int] = loop.create_future()
    rounds = 0

    def watch() -> None:
        nonlocal rounds
        rounds += 1
        if done.done():  # the waiter was cancelled
            return
        if pending() == 0 or rounds >= limit:
            done.set_result(rounds)
        else:
            loop.call_soon(watch)

    loop.call_soon(watch)
    return done


def _ready_counter(loop: asyncio.AbstractEventLoop) -> Callable[[], int] | None:
    """How many callbacks are ready to run on ``loop``, or None if that cannot be seen.

    CPython's loops keep them in ``loop._ready``. qasync runs ``call_soon``
    through zero-interval Qt timers on its timer object (its ``_ready`` stays
    empty), so there the count is those timers.
    """
    timer = getattr(loop, "_timer", None)
    if timer is not None and type(loop).__module__.startswith("qasync"):
        from PySide6.QtCore import QAbstractEventDispatcher

        dispatcher = QAbstractEventDispatcher.instance()
        if dispatcher is None:
            return None
        # The running callback's own timer is killed only after it returns.
        return lambda: sum(1 for t in dispatcher.registeredTimers(timer) if t.interval == 0) - 1
    ready = getattr(loop, "_ready", None)
    if ready is None:
        return None
    return lambda: len(ready)


def parse_speed(text: str | float | None) -> float | None:
    """Parse a ``--speed`` value: a positive number or ``max`` (returns None).

    Raises
    ------
    ValueError
        For anything else.
    """
    if text is None:
        return 1.0
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = text.strip().lower()
        if s in {"max", "inf", "fast"}:
            return None
        try:
            value = float(s)
        except ValueError:
            raise ValueError(f"speed must be a positive number or 'max', not {text!r}") from None
    if not value > 0 or value != value:
        raise ValueError(f"speed must be a positive number or 'max', not {text!r}")
    return value


def clock_for_speed(speed: float | None, *, virtual: bool) -> Clock:
    """The clock a command runs on.

    Real sensors always run on :class:`RealClock`; a virtual run at speed 1 too
    (the live window paces itself in real time), any other speed gets a
    :class:`SimClock`.
    """
    if not virtual or speed == 1.0:
        return RealClock()
    return SimClock(speed=speed)
