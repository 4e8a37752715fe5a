"""SIGINT and SIGTERM while an event loop runs: the innermost stopper gets them.

Front ends nest on one loop: the window closes on a signal, and while a session
runs in it, the session stops instead (its recording is kept and finished).
Each registers a stopper with :func:`on_stop_signals` and undoes it when done;
the signal goes to the newest stopper still registered, so when a session
ends, the window's stopper has the signals again.

asyncio's ``remove_signal_handler`` puts back the *default* disposition, not
the one before (for SIGTERM that kills the process). So one route per loop owns
the loop's handlers: they are added with the first stopper and removed with
the last, and the handlers the process had before (``biofeedback.cli.main``
makes SIGTERM raise KeyboardInterrupt like Ctrl-C) are put back then.

::

    undo = on_stop_signals(lambda: engine.stop("interrupted"))
    try:
        await engine.run(items)
    finally:
        undo()
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["STOP_SIGNALS", "on_stop_signals"]

#: The signals that ask a command to stop (Ctrl-C, and ``kill``/a service manager).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Route:
    """One loop's stop signals: its handlers dispatch to the newest stopper."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.stoppers: list[Callable[[], object]] = []
        self.before: dict[int, Any] = {}  # the Python-level handlers to put back

    def add(self, stopper: Callable[[], object]) -> None:
        if not self.stoppers:
            self._install()
        self.stoppers.append(stopper)

    def remove(self, stopper: Callable[[], object]) -> None:
        # By identity, from the end: undoing out of order leaves the others in place.
        for i in range(len(self.stoppers) - 1, -1, -1):
            if self.stoppers[i] is stopper:
                del self.stoppers[i]
                break
        if not self.stoppers:
            self._uninstall()

    def dispatch(self) -> None:
        if self.stoppers:
            self.stoppers[-1]()

    def _install(self) -> None:
        for sig in STOP_SIGNALS:
            before = signal.getsignal(sig)
            try:
                self.loop.add_signal_handler(sig, self.dispatch)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without them
            self.before[sig] = before

    def _uninstall(self) -> None:
        for sig, before in self.before.items():
            with contextlib.suppress(Exception):  # the loop closed first: nothing to undo
                self.loop.remove_signal_handler(sig)
            # (Between these two calls the default disposition is in place for a few
            # instructions; asyncio offers no way to hand the signal back directly.)
            if before is not None:
                signal.signal(sig, before)
        self.before.clear()


_routes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Route] = (
    weakref.WeakKeyDictionary())


def on_stop_signals(
    stopper: Callable[[], object], loop: asyncio.AbstractEventLoop | None = None
) -> Callable[[], None]:
    """Send SIGINT and SIGTERM to ``stopper`` until the returned undo is called.

    Parameters
    ----------
    stopper : callable
        Called on the loop (not in the signal handler) when either signal arrives,
        as long as it is the newest stopper registered on the loop.
    loop : asyncio.AbstractEventLoop, optional
        The loop that handles the signals (default: the running loop). It must run
        in the main thread; elsewhere, and on platforms without loop signal
        handlers, the signals keep their handlers and ``stopper`` is never called.

    Returns
    -------
    callable
        The undo (idempotent): ``stopper`` no longer gets the signals; the one
        registered before it does again, or, after the last undo, the handlers
        the process had before the first.
    """
    loop = asyncio.get_running_loop() if loop is None else loop
    route = _routes.get(loop)
    if route is None:
        route = _routes[loop] = _Route(loop)
    route.add(stopper)
    done = False

    def undo() -> None:
        nonlocal done
        if not done:
            done = True
            route.remove(stopper)

    return undo
