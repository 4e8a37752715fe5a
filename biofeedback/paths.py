"""Where the user's data lives (platformdirs); files are created owner-only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import platformdirs

from devices.errors import InputError

__all__ = [
    "PROFILES_DIRNAME",
    "config_dir",
    "data_dir",
    "log_file",
    "make_private_dirs",
    "profiles_dir",
    "replace_privately",
    "store_path",
]

APP = "biofeedback"

#: The folder below :func:`data_dir` where calibration profiles live.
PROFILES_DIRNAME = "profiles"


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and every missing parent owner-only (0700).

    Folders that exist keep their mode: they are the user's.
    """
    folder = Path(folder)
    missing = []
    for d in (folder, *folder.parents):
        if d.is_dir():
            break
        missing.append(d)
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise


@contextmanager
def replace_privately(
    path: Path, *, binary: bool = False, newline: str | None = None
) -> Iterator[IO[Any]]:
    """A new owner-only file that takes the place of ``path`` when the block ends.

    What the block writes goes to a temporary file beside ``path`` (0600),
    flushed to the disk and renamed over ``path``: a reader never sees half a
    file, and a symlink at ``path`` is replaced, never followed. If the block
    fails, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : Path
        The file to write; its folder must exist.
    binary : bool
        A binary file (else UTF-8 text).
    newline : str, optional
        How a text file writes line ends (as for :func:`open`).

    Raises
    ------
    InputError
        When the file cannot be written (the message names ``path``).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        mode = "wb" if binary else "w"
        enc = None if binary else "utf-8"
        with os.fdopen(fd, mode, encoding=enc, newline=None if binary else newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ensure(path: Path) -> Path:
    make_private_dirs(path)
    return path


def data_dir() -> Path:
    """The user data directory (``BIOFEEDBACK_HOME`` overrides, for tests and portable use)."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return _ensure(Path(home) / "data")
    return _ensure(Path(platformdirs.user_data_dir(APP, appauthor=False)))


def profiles_dir() -> Path:
    """Where profiles live: ``data_dir()/profiles`` (not created here)."""
    return data_dir() / PROFILES_DIRNAME


def config_dir() -> Path:
    """The user config directory (TOML drivers live in ``drivers/`` below it)."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return _ensure(Path(home) / "config")
    return _ensure(Path(platformdirs.user_config_dir(APP, appauthor=False)))


def log_file() -> Path:
    """The debug log file written with ``-v``."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    base = Path(home) / "log" if home else Path(platformdirs.user_log_dir(APP, appauthor=False))
    return _ensure(base) / "biofeedback.log"


def store_path() -> Path:
    """The SQLite store (known devices, sessions)."""
    return data_dir() / "biofeedback.sqlite"
