"""Where the user's data lives (platformdirs); files are created owner-only."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["config_dir", "data_dir", "log_file", "store_path"]

APP = "biofeedback"


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def data_dir() -> Path:
    """The user data directory (``BIOFEEDBACK_HOME`` overrides, for tests and portable use)."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return _ensure(Path(home) / "data")
    return _ensure(Path(platformdirs.user_data_dir(APP, appauthor=False)))


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
