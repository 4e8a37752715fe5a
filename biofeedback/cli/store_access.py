"""The store as the commands open it: damage found while reading is a one-line error."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from biofeedback.paths import store_path
from biofeedback.store import Store, StoreError

__all__ = ["open_store"]


@contextmanager
def open_store(path: Path | None = None) -> Iterator[Store]:
    """The store; damage found while reading is a one-line store error, not a crash.

    Parameters
    ----------
    path : Path, optional
        The store file (default: :func:`~biofeedback.paths.store_path`).

    Yields
    ------
    Store
        The open store (closed when the block ends).

    Raises
    ------
    StoreError
        The store is damaged.
    """
    path = path or store_path()
    with Store(path) as store:
        try:
            yield store
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is damaged: {exc}") from exc
