"""What every export format shares: progress, owner-only files, names, the session bundle."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from biofeedback.paths import replace_privately
from biofeedback.store import SessionEvent, SessionInfo, StateRun, Store, StreamStats
from devices.errors import InputError

__all__ = [
    "ExportJob",
    "NullProgress",
    "Progress",
    "SessionBundle",
    "ascii_text",
    "begin_export",
    "check_target",
    "load_bundle",
    "open_private",
    "private_file",
    "safe_name",
]


class Progress(Protocol):
    """Where an export reports progress (the CLI shows a rich bar on stderr)."""

    def start(self, total: int, description: str) -> None:
        """A new phase of ``total`` steps."""
        ...

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps done."""
        ...


class NullProgress:
    """Progress that goes nowhere."""

    def start(self, total: int, description: str) -> None:
        return None

    def advance(self, steps: int = 1) -> None:
        return None


@dataclass(frozen=True)
class SessionBundle:
    """A session's metadata, stream statistics, events, annotations and state runs."""

    info: SessionInfo
    stats: dict[str, StreamStats]
    events: list[SessionEvent]
    states: list[StateRun]

    @property
    def t0(self) -> float:
        return self.info.t0

    @property
    def total_blocks(self) -> int:
        return sum(s.blocks for s in self.stats.values())


def load_bundle(store: Store, session_id: int) -> SessionBundle:
    """Everything about a session except its samples (read those block by block).

    Events include the annotations added afterwards; both are in time order.
    """
    info = store.session(session_id)
    events = store.events(session_id) + store.annotations(session_id)
    events.sort(key=lambda e: e.t)
    return SessionBundle(info, store.stream_stats(session_id), events, store.states(session_id))


@dataclass(frozen=True)
class ExportJob:
    """An export about to be written: the session, its target and where progress goes."""

    bundle: SessionBundle
    path: Path
    progress: Progress


def begin_export(store: Store, session_id: int, path: Path, *, force: bool,
                 progress: Progress | None, directory: bool = False) -> ExportJob:
    """What every exporter does first: check the target, then read the session.

    The target is checked before the session is read, so every format refuses
    an existing target (without ``force``) the same way.

    Raises
    ------
    InputError
        An existing target without ``force``, a missing parent folder, or no
        such session.
    """
    path = Path(path)
    check_target(path, force=force, directory=directory)
    return ExportJob(load_bundle(store, session_id), path, progress or NullProgress())


def safe_name(text: str) -> str:
    """A file-name-safe version of a stream name (``Boost/pressure`` -> ``Boost_pressure``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text(text)).strip("._")
    return name or "stream"


def ascii_text(text: str) -> str:
    """Printable ASCII (accents dropped, others removed): for EDF header fields."""
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if 32 <= ord(c) < 127)


@contextmanager
def private_file(path: Path, *, force: bool, binary: bool = False,
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Write ``path`` owner-only through a temporary file renamed into place at the end.

    An existing target (or a symlink there) is refused unless ``force``; a
    symlink is replaced, never followed. If writing fails, nothing is left
    behind and the error says what could not be written and where.

    Raises
    ------
    InputError
        An existing target without ``force``, or a write error.
    """
    path = Path(path)
    check_target(path, force=force)
    with replace_privately(path, binary=binary, newline=newline) as f:
        yield f


@contextmanager
def open_private(path: Path, *, force: bool, newline: str | None = None) -> Iterator[IO[str]]:
    """A new text file owner-only (health data); refuse to overwrite without ``force``."""
    with private_file(path, force=force, newline=newline) as f:
        yield f


def check_target(path: Path, *, force: bool, directory: bool = False) -> None:
    """Refuse an existing target (unless ``force``) and a missing parent folder."""
    if directory:
        if path.is_symlink():
            raise InputError(f"{path} is a symbolic link; give a real folder")
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise InputError(f"{path} is not empty; pass --force to write into it")
        return
    if path.is_symlink() and not force:
        raise InputError(f"{path} is a symbolic link; pass --force to replace the link "
                         "(its target is never written)")
    if path.is_dir() and not path.is_symlink():
        raise InputError(f"{path} is a folder; give a file name")
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent} does not exist")
