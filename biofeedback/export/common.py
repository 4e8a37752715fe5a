"""What every export format shares: progress, owner-only files, names, the session bundle."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from biofeedback.store import SessionEvent, SessionInfo, StateRun, Store, StreamStats
from devices.errors import InputError

__all__ = [
    "NullProgress",
    "Progress",
    "SessionBundle",
    "ascii_text",
    "load_bundle",
    "open_private",
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


def safe_name(text: str) -> str:
    """A file-name-safe version of a stream name (``Boost/pressure`` -> ``Boost_pressure``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text(text)).strip("._")
    return name or "stream"


def ascii_text(text: str) -> str:
    """Printable ASCII (accents dropped, others removed): for EDF header fields."""
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if 32 <= ord(c) < 127)


@contextmanager
def open_private(path: Path, *, force: bool, newline: str | None = None) -> Iterator[IO[str]]:
    """Open a new text file owner-only (health data); refuse to overwrite without ``force``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if not force:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise InputError(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    os.chmod(path, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
        yield f


def check_target(path: Path, *, force: bool, directory: bool = False) -> None:
    """Refuse an existing target (unless ``force``) and a missing parent folder."""
    if directory:
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise InputError(f"{path} is not empty; pass --force to write into it")
        return
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name")
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent} does not exist")
