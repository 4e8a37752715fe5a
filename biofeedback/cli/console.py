"""Talking to the person at a terminal: messages on stderr, a yes/no question, a progress bar.

Everything here writes to stderr, so a command's ``--json`` output on stdout
stays clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from devices.errors import InputError

if TYPE_CHECKING:  # (the store stack loads only for the commands that use it)
    from biofeedback.export.common import Progress

__all__ = ["RichProgress", "confirm", "rich_progress", "say"]


def say(text: str) -> None:
    """Progress and prompts for people: stderr, so --json stdout stays clean.

    Parameters
    ----------
    text : str
        One line (or more) to show.
    """
    click.echo(text, err=True)


def confirm(question: str, yes: bool, refused: str) -> None:
    """Ask on stderr unless ``--yes``.

    A "no" is the user's choice, not an error: it says what was kept and
    ends the command with exit 0. No answer at all (no terminal, end of
    input) is exit 1.

    Parameters
    ----------
    question : str
        The question (the default answer is no).
    yes : bool
        ``--yes`` was given: do not ask.
    refused : str
        What was kept, said after a "no" (``session 3 was not deleted``).

    Raises
    ------
    InputError
        No answer came.
    click.exceptions.Exit
        The answer was no (exit 0).
    """
    if yes:
        return
    try:
        ok = click.confirm(question, default=False, err=True)
    except click.Abort:
        raise InputError(f"{refused}: no answer (use --yes to skip the question)") from None
    if not ok:
        click.echo(f"{refused[:1].upper()}{refused[1:]}.", err=True)
        raise click.exceptions.Exit(0)


class RichProgress:
    """A rich progress bar on stderr (nothing when stderr is not a terminal)."""

    def __init__(self, progress: Any) -> None:
        self._p = progress
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        """A new task (the previous one is hidden): ``total`` steps, named."""
        if self._task is not None:
            self._p.update(self._task, visible=False)
        self._task = self._p.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current task are done."""
        if self._task is not None:
            self._p.advance(self._task, steps)


@contextmanager
def rich_progress() -> Iterator[Progress]:
    """A :class:`RichProgress` for the duration of the block (an export's progress).

    Yields
    ------
    Progress
        The bar (transient: it disappears when the block ends).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as p:
        yield RichProgress(p)
