"""Session exports: CSV (a folder), EDF+ (a file clinicians' viewers open), JSON summary."""

from __future__ import annotations

from pathlib import Path

from biofeedback.export.common import NullProgress, Progress
from biofeedback.export.csv_export import export_csv
from biofeedback.export.edf_export import export_edf
from biofeedback.export.json_export import export_json, session_document
from biofeedback.store import SessionInfo, Store
from devices.errors import InputError

__all__ = [
    "FORMATS",
    "NullProgress",
    "Progress",
    "default_path",
    "export_csv",
    "export_edf",
    "export_json",
    "export_session",
    "session_document",
]

#: Export formats and what they write.
FORMATS = ("csv", "edf", "json")

_SUFFIX = {"csv": "", "edf": ".edf", "json": ".json"}


def default_path(info: SessionInfo, fmt: str, folder: Path | None = None) -> Path:
    """``session-<id>-<UTC start>[.edf|.json]`` in ``folder`` (the current directory)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return (folder or Path.cwd()) / (info.file_stem + _SUFFIX[fmt])


def export_session(
    store: Store,
    session_id: int,
    fmt: str,
    path: Path | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Export a session in ``fmt`` (``csv``, ``edf`` or ``json``); returns what was written.

    Parameters
    ----------
    store : Store
        The store holding the session.
    session_id : int
        The session.
    fmt : str
        ``csv`` writes a folder (one file per stream, ``events.csv``,
        ``session.json``); ``edf`` and ``json`` write a file.
    path : Path or None
        Target; None for :func:`default_path` in the current directory.
    force : bool
        Overwrite an existing file (or write into a non-empty folder).
    progress : Progress or None
        Progress sink (a rich bar in the CLI).

    Raises
    ------
    InputError
        Unknown session or format, an existing target without ``force``.
    """
    info = store.session(session_id)
    if info.damage:
        raise InputError(f"session {info.id} is damaged ({info.damage}); it cannot be "
                         f"exported, only deleted ('biofeedback delete {info.id}')")
    target = Path(path) if path is not None else default_path(info, fmt)
    if fmt == "csv":
        return export_csv(store, session_id, target, force=force, progress=progress)
    if fmt == "edf":
        return export_edf(store, session_id, target, force=force, progress=progress)
    if fmt == "json":
        return export_json(store, session_id, target, force=force, progress=progress)
    raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
