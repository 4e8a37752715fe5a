"""SIGINT/SIGTERM go to the newest stopper on the loop, and back to the one before.

Real signals, raised in this process: each test first checks that the signal
has a Python-level handler (a regression fails the check instead of killing
the test worker with SIGTERM's default action).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from biofeedback.stop_signals import on_stop_signals


class Got:
    """Which stopper got each signal (the test waits on an event, not a sleep)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.event = asyncio.Event()

    def stopper(self, name: str) -> Callable[[], None]:
        def stop() -> None:
            self.names.append(name)
            self.event.set()

        return stop

    async def after(self, sig: signal.Signals) -> str:
        """Raise ``sig`` here and wait until a stopper got it; its name."""
        handler = signal.getsignal(sig)
        assert handler not in (signal.SIG_DFL, None), "the signal would kill the worker"
        self.event.clear()
        signal.raise_signal(sig)
        await self.event.wait()
        return self.names[-1]


def _before(_signum: int, _frame: FrameType | None) -> None:
    raise AssertionError("the handler from before the stoppers must not run here")


@pytest.fixture
def sigterm_before() -> Iterator[object]:
    """A Python-level SIGTERM handler of the process's own (as ``biofeedback.cli.main``
    sets), put back after the test."""
    old = signal.signal(signal.SIGTERM, _before)
    try:
        yield _before
    finally:
        signal.signal(signal.SIGTERM, old)


def test_the_newest_stopper_gets_the_signals_and_gives_them_back(
    sigterm_before: object,
) -> None:
    async def main() -> None:
        int_before = signal.getsignal(signal.SIGINT)
        got = Got()
        undo_window = on_stop_signals(got.stopper("window"))
        assert await got.after(signal.SIGTERM) == "window"
        undo_session = on_stop_signals(got.stopper("session"))
        assert await got.after(signal.SIGTERM) == "session"
        assert await got.after(signal.SIGINT) == "session"
        undo_session()
        # The session ended: the window has them again (not SIG_DFL, which killed).
        assert await got.after(signal.SIGTERM) == "window"
        undo_window()
        undo_window()  # idempotent
        assert signal.getsignal(signal.SIGTERM) is sigterm_before
        assert signal.getsignal(signal.SIGINT) is int_before
        assert got.names == ["window", "session", "session", "window"]

    asyncio.run(main())


def test_undoing_out_of_order_leaves_the_other_stopper(sigterm_before: object) -> None:
    async def main() -> None:
        got = Got()
        undo_a = on_stop_signals(got.stopper("a"))
        undo_b = on_stop_signals(got.stopper("b"))
        undo_a()
        assert await got.after(signal.SIGTERM) == "b"
        undo_b()
        assert signal.getsignal(signal.SIGTERM) is sigterm_before

    asyncio.run(main())
