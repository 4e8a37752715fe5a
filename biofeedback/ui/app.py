"""Running the window: the QApplication and the qasync loop.

Qt and asyncio share one loop (``qasync``): the session's coroutines, the BLE
sources and the window all run on the GUI thread, so nothing crosses threads.
:func:`run_window` is what a command calls; :func:`has_display` tells it
whether to fall back to the terminal view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from biofeedback.stop_signals import on_stop_signals
from biofeedback.ui.model import LiveModel
from devices.errors import BiofeedbackError

__all__ = ["DisplayLostError", "ensure_qapp", "has_display", "run_window"]


class DisplayLostError(BiofeedbackError):
    """The window's display went away while a session ran (exit 1)."""

T = TypeVar("T")


def has_display(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a window can be shown.

    False on Linux (and other X11/Wayland systems) when neither ``DISPLAY`` nor
    ``WAYLAND_DISPLAY`` is set, unless ``QT_QPA_PLATFORM`` asks for the
    ``offscreen`` platform (tests, screenshots). Windows and macOS always have one.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if env.get("QT_QPA_PLATFORM", "").split(":")[0].strip() == "offscreen":
        return True
    if platform.startswith(("win", "darwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def ensure_qapp() -> Any:
    """The QApplication (created once per process, as Qt requires)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "biofeedback"])
        app.setApplicationName("biofeedback")
    return app


def run_window(
    main: Callable[[Any], Awaitable[T]],
    *,
    model: LiveModel | None = None,
    linger: bool | Callable[[T], bool] = False,
    **window_kwargs: Any,
) -> T | None:
    """Show the session window and run ``main(window)`` on a qasync loop.

    Parameters
    ----------
    main : callable
        ``async def main(window) -> T``: the session (it calls
        ``window.set_model`` and connects the window's signals).
    model : LiveModel, optional
        A model to show from the start.
    linger : bool or callable
        Keep the window open after ``main`` returned, until the user closes it
        (a callable decides from ``main``'s result: not after an interrupted session).
    **window_kwargs
        Passed to :class:`~biofeedback.ui.window.SessionWindow`.

    Returns
    -------
    The result of ``main``, or None when the user closed the window first
    (``main`` is then cancelled, which stops the session cleanly).

    Notes
    -----
    SIGINT and SIGTERM close the window (``main`` is cancelled, which stops the
    session cleanly) from the moment the loop exists until it is drained; a
    session running inside registers its own stopper meanwhile
    (:func:`~biofeedback.stop_signals.on_stop_signals`), and the window gets the
    signals back when it ends. Before and after, they raise KeyboardInterrupt
    (``biofeedback.cli.main``: "Interrupted.", exit 130).
    """
    import qasync

    from biofeedback.ui.window import SessionWindow

    app = ensure_qapp()
    # The window's ``closed`` signal ends the run; Qt quitting on its own when the
    # last window closes would stop the loop under a pending future.
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = SessionWindow(model, **window_kwargs)
    window.show()

    try:
        with loop:
            # SIGINT/SIGTERM close the window (not kill Qt mid-paint) from here until the
            # loop is drained; a session inside takes them meanwhile (stop_signals).
            undo_signals = on_stop_signals(window.close, loop)
            try:
                return _run_until_done(loop, window, main, linger)
            finally:
                try:
                    _drain(loop)
                    window.timer.stop()
                    if window.isVisible():
                        window.close()
                finally:
                    undo_signals()  # before the loop closes (it would restore SIG_DFL)
    finally:
        asyncio.set_event_loop(None)
        window.timer.stop()
        if window.isVisible():
            window.close()
        window.deleteLater()


def _run_until_done(
    loop: asyncio.AbstractEventLoop, window: Any, main: Callable[[Any], Awaitable[T]],
    linger: bool | Callable[[Any], bool],
) -> T | None:
    """Run the session (and the lingering window) on ``loop``; see :func:`run_window`."""
    run = asyncio.ensure_future(_until_done_or_closed(window, main, linger), loop=loop)
    try:
        return loop.run_until_complete(run)
    except RuntimeError:
        if run.done():
            raise
        # Qt stopped the loop under the session: its display went away (an X
        # server that died, a closed remote session). _drain cancels the session,
        # which stops it cleanly and keeps what it recorded.
        raise DisplayLostError(
            "the window's display went away (did the X server or remote desktop "
            "close?); the session was stopped and what it recorded is kept") from None


async def _until_done_or_closed(
    window: Any, main: Callable[[Any], Awaitable[T]], linger: bool | Callable[[T], bool]
) -> T | None:
    """Run ``main(window)`` until it returns (then linger, if asked) or the window closes.

    Closing the window first cancels ``main`` (the session stops cleanly): None.
    """
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    task = asyncio.ensure_future(main(window))
    closer = asyncio.ensure_future(closed.wait())
    try:
        done, _ = await asyncio.wait({task, closer}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            result = task.result()
            stay = linger(result) if callable(linger) else linger
            if stay and not closed.is_set():
                await closer
            return result
        await _cancel_until_done(task)
        return None
    finally:
        closer.cancel()
        if not task.done():
            await _cancel_until_done(task)


#: Seconds to wait for a cancelled session before cancelling it again.
CANCEL_RETRY_S = 0.5


async def _cancel_until_done(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it runs on.

    A cancellation can be swallowed on its way down (Python 3.11's
    ``asyncio.wait_for`` loses one that lands as its awaitable completes):
    the window was closed and the session ran on behind it.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still pending and let it finish before the loop closes (as asyncio.run)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
