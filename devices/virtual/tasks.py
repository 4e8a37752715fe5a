"""The tasks a virtual peripheral runs on its own behalf, and how they end when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["PeripheralTasks"]


class PeripheralTasks:
    """A virtual peripheral's tasks: its own, cancelled when it stops, and HCI exchanges,
    let finish (bumble's host cannot take a cancelled command: the late Command Complete
    raises ``InvalidStateError``). A task that fails is logged under the owner's name.

    Parameters
    ----------
    owner : str
        The peripheral's name (in task names and log lines).
    log : logging.Logger
        Where failures are logged.
    """

    def __init__(self, owner: str, log: logging.Logger) -> None:
        self.owner = owner
        self.log = log
        self._own: set[asyncio.Task[Any]] = set()
        self._hci: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as an own task (cancelled by :meth:`cancel`)."""
        task = asyncio.create_task(coro, name=name)
        self._own.add(task)
        task.add_done_callback(self.done)
        return task

    def spawn_hci(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run an HCI exchange to its end (waited for by :meth:`finish_hci`)."""
        task = asyncio.create_task(coro, name=name)
        self._hci.add(task)
        task.add_done_callback(self.done)

    def done(self, task: asyncio.Task[Any]) -> None:
        """Forget an ended task and log its failure (also for tasks started elsewhere)."""
        self._own.discard(task)
        self._hci.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error(
                "%s: task %s failed", self.owner, task.get_name(), exc_info=task.exception()
            )

    async def cancel(self, *also: asyncio.Task[Any] | None) -> None:
        """Cancel ``also`` and the own tasks, and wait until they ended."""
        tasks = [t for t in (*also, *self._own) if t is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._own.clear()

    async def finish_hci(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the HCI exchanges in flight."""
        if self._hci:
            await asyncio.wait(set(self._hci), timeout=timeout)
