"""The reconnecting link: one background task per source, with its reconnect policy.

BLE and LSL sources share this state machine; they only implement its hooks.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from devices.clock import Clock
from devices.errors import BiofeedbackError
from devices.item_queue import ItemQueue
from devices.source_items import Chunk, LinkEvent, LinkKind

__all__ = ["ReconnectPolicy", "TaskSource"]


@dataclass
class ReconnectPolicy:
    """How a source (re)connects: the one policy of :class:`TaskSource`'s loop.

    Parameters
    ----------
    backoff : tuple of float
        Seconds to wait before successive reconnect attempts (the last value
        repeats).
    max_consecutive_failures : int
        Failed reconnects in a row before giving up.
    connect_attempts : int
        Attempts before the first connection fails (for BLE also the
        attempts inside one ``establish_connection`` call).
    stall_timeout : float or None
        Seconds without any packet while connected after which the link is
        treated as lost and re-established (a sensor that went silent).
    rescan_timeout : float
        Before each BLE reconnect the device must be seen advertising within
        this many seconds (connecting to an absent device only times out slowly).
    """

    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    max_consecutive_failures: int = 6
    connect_attempts: int = 2
    stall_timeout: float | None = 5.0
    rescan_timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return self.backoff[min(max(attempt - 1, 0), len(self.backoff) - 1)]


class TaskSource(abc.ABC):
    """Base of sources that run one background task feeding a queue.

    The task is the link's one state machine (:meth:`_run`): open the link,
    pump it until it is lost, close it; then reconnect with the
    :attr:`policy`'s backoff, reporting ``connecting``, ``connected``,
    ``lost``, ``reconnecting`` and ``given_up`` as :class:`LinkEvent` items.
    Subclasses set :attr:`clock` and :attr:`policy` and implement the hooks
    :meth:`_open`, :meth:`_pump`, :meth:`_close`, :meth:`_retryable` and
    :meth:`_give_up` (and :meth:`_on_connected` when they have more to do);
    they put :class:`Chunk` items with :meth:`_put`. Entering starts the task;
    leaving (or :meth:`close`) cancels it, which closes the link cleanly.
    """

    clock: Clock
    policy: ReconnectPolicy

    def __init__(self) -> None:
        self._items = ItemQueue()
        self._task: asyncio.Task[None] | None = None
        #: Successful reconnections after the first connection.
        self.reconnects = 0

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Human name of the source (device name)."""

    # -- the hooks -------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self, *, reconnect: bool) -> None:
        """Bring the link up (raise to count a failed attempt)."""

    @abc.abstractmethod
    async def _pump(self) -> str:
        """Deliver items until the link is lost; returns why it was."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Take the link down (after a loss, or on cancel); never raises."""

    @abc.abstractmethod
    def _retryable(self, exc: Exception) -> bool:
        """Whether a failed :meth:`_open` is worth another attempt (else it ends the source)."""

    @abc.abstractmethod
    def _give_up(self, exc: Exception, reason: str, failures: int, first: bool) -> BaseException:
        """The error that ends the source after ``failures`` failed attempts in a row."""

    async def _on_connected(self) -> None:
        """Called once the link is up and reported (a battery read...); nothing by default."""
        return None

    # -- the loop --------------------------------------------------------------

    def _event(self, kind: LinkKind, detail: str = "", value: float | None = None) -> None:
        self._put(
            LinkEvent(kind=kind, t=self.clock.now(), device=self.name, detail=detail, value=value)
        )

    async def _run(self) -> None:
        """Open, pump until lost, close; reconnect with backoff; give up per the policy."""
        self._event(LinkKind.CONNECTING)
        await self._open_retrying(failures=0, first=True)
        self._event(LinkKind.CONNECTED)
        while True:
            reason = await self._connection()
            lost_at = self.clock.now()
            self._event(LinkKind.LOST, reason)
            await self._back_off(reason, failures=1)  # the loss: 1st failure of the next link
            await self._open_retrying(failures=1, first=False)
            self.reconnects += 1
            self._event(LinkKind.CONNECTED, "reconnected", self.clock.now() - lost_at)

    async def _connection(self) -> str:
        """One link from its report to its loss (returns why); closed however it ends."""
        try:
            await self._on_connected()
            return await self._pump()
        finally:
            await self._close()

    async def _open_retrying(self, failures: int, *, first: bool) -> None:
        """Open the link, ``failures`` failed attempts in a row so far; raise on giving up.

        The first connection has :attr:`ReconnectPolicy.connect_attempts`, a
        reconnection :attr:`ReconnectPolicy.max_consecutive_failures`.
        """
        while True:
            try:
                await self._open(reconnect=not first)
                return
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                failures += 1
                reason = str(exc) or type(exc).__name__
                logging.getLogger(type(self).__module__).info(
                    "%s: connect failed (%d): %s", self.name, failures, reason
                )
                policy = self.policy
                limit = policy.connect_attempts if first else policy.max_consecutive_failures
                if failures >= limit:
                    self._event(LinkKind.GIVEN_UP, reason, float(failures))
                    error = self._give_up(exc, reason, failures, first)
                    if error is exc:
                        raise
                    raise error from exc
                await self._back_off(reason, failures)

    async def _back_off(self, reason: str, failures: int) -> None:
        """Report the next attempt and wait the policy's delay for it."""
        self._event(LinkKind.RECONNECTING, reason, float(failures))
        await self.clock.sleep(self.policy.delay(failures))

    def _put(self, item: Chunk | LinkEvent) -> None:
        self._items.put(item)

    async def _guarded(self) -> None:
        """Run :meth:`_run`; however it ends, the consumer's iteration ends too."""
        error: BaseException | None = None
        try:
            await self._run()
        except asyncio.CancelledError:
            self._event(LinkKind.STOPPED, "stopped")
            raise
        except BiofeedbackError as exc:
            error = exc
        except Exception as exc:  # a bug: report it rather than hang the consumer
            logging.getLogger(type(self).__module__).exception("%s failed", self.name)
            error = exc
        finally:
            self._items.end(error)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._guarded(), name=f"{type(self).__name__} {self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the task (and with it the device) and wait for it."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]:
        return aiter(self._items)
