"""What commands that touch sensors share: the registry, the radio, asyncio."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from biofeedback.cli.main import AppContext
from biofeedback.paths import config_dir
from biofeedback.stop_signals import on_stop_signals
from biofeedback.virtual_wiring import virtual_world
from devices.ble_scan import backend_of
from devices.clock import Clock
from devices.registry import Registry, default_registry

__all__ = ["backend_of", "radio", "registry_for", "run", "use_window"]

T = TypeVar("T")


def registry_for(extra: Iterable[Path] = ()) -> Registry:
    """Built-in drivers, the user's TOML drivers, and ``--driver`` files."""
    return default_registry([config_dir() / "drivers", *extra])


@contextlib.asynccontextmanager
async def radio(
    app: AppContext, clock: Clock, *, seed: int | None = None, **world_kwargs: Any
) -> AsyncIterator[Any]:
    """The virtual world when ``--virtual``, else nothing (the OS Bluetooth stack).

    Yields the :class:`~devices.virtual.world.VirtualWorld` or None.
    """
    async with virtual_world(
        app.virtual, clock, seed=app.seed if seed is None else seed, via=app.via, **world_kwargs
    ) as w:
        yield w


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on a fresh event loop.

    SIGINT and SIGTERM cancel it (its clean-up runs: a session begun is finished
    as interrupted) and the command ends as interrupted (KeyboardInterrupt: exit
    130), unless a session running inside takes them (it stops, and the command
    ends as usual).
    """

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        undo = on_stop_signals(task.cancel)
        try:
            return await coro
        finally:
            undo()

    try:
        return asyncio.run(cancellable())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def use_window(headless: bool, json_mode: bool) -> bool:
    """The window unless --headless, --json or it cannot open (then the terminal view).

    Qt aborts the process when its platform plugin cannot load or the display
    does not answer, so that is asked first; the one line says why and how to fix it.
    """
    if headless or json_mode:
        return False
    from biofeedback.ui.display import window_problem

    problem = window_problem()
    if problem is not None:
        click.echo(f"Showing the session in the terminal: {problem}.", err=True)
        return False
    return True
