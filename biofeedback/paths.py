"""Where the user's data lives (platformdirs); files are created owner-only."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "PROFILES_DIRNAME",
    "config_dir",
    "data_dir",
    "log_file",
    "make_private_dirs",
    "profiles_dir",
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
