"""CSV export: a folder with one file per stream, ``events.csv`` and ``session.json``.

Stream files: ``t_s`` (seconds from the session start, microseconds) then one
column per channel, every sample as recorded (no resampling; values in their
shortest exact form -- a float32 sensor value as the float32 it was --, an
empty cell for a missing value).
``events.csv``: ``t_s, kind, text, data`` (data as JSON) with the link events,
cues, reps, steps, annotations and the pelvic state runs (kind ``state``).
``session.json``: the session's metadata with its ISO 8601 start time, the
units and the file of each stream.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from biofeedback.export.common import Progress, begin_export, open_private, safe_name
from biofeedback.export.units import session_units
from biofeedback.paths import make_private_dirs
from biofeedback.store import Store

__all__ = ["export_csv"]


def _format_values(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Shortest exact text of each value (float32 when lossless), '' for NaN."""
    v32 = v.astype(np.float32)
    with np.errstate(invalid="ignore"):
        exact32 = np.array_equal(v32.astype(np.float64), v, equal_nan=True)
    text = (v32 if exact32 else v).astype(str)
    text[np.isnan(v)] = ""
    return text


def export_csv(
    store: Store,
    session_id: int,
    path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write a session as a folder of CSV files; returns the folder.

    Raises
    ------
    InputError
        When the session does not exist or ``path`` is not an empty folder
        (without ``force``).
    """
    job = begin_export(store, session_id, path, force=force, progress=progress, directory=True)
    bundle, path, progress = job.bundle, job.path, job.progress
    info = bundle.info
    make_private_dirs(path)  # a folder that exists keeps its mode

    files: dict[str, str] = {}
    used = {"events", "session"}
    for spec in info.streams:
        base = safe_name(spec.name)
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        files[spec.name] = f"{name}.csv"

    progress.start(max(1, bundle.total_blocks), f"CSV export of session {session_id}")
    for spec in info.streams:
        with open_private(path / files[spec.name], force=True, newline="") as f:
            f.write(",".join(["t_s", *spec.channels]) + "\n")
            for block in store.iter_blocks(session_id, spec.name):
                t_text = np.char.mod("%.6f", block.t - info.t0)
                cols = _format_values(block.values)
                rows = np.column_stack([t_text, cols])
                f.write("\n".join(",".join(r) for r in rows.tolist()))
                f.write("\n")
                progress.advance()

    with open_private(path / "events.csv", force=True, newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["t_s", "kind", "text", "data"])
        rows_: list[tuple[float, str, str, str]] = []
        for e in bundle.events:
            data = "" if e.data is None else json.dumps(e.data, separators=(",", ":"))
            rows_.append((e.t - info.t0, e.kind, e.text, data))
        for r in bundle.states:
            data = json.dumps({"stream": r.stream, "duration_s": round(r.duration, 6),
                               "code": r.state}, separators=(",", ":"))
            rows_.append((r.t_start - info.t0, "state", r.name, data))
        rows_.sort(key=lambda x: x[0])
        for t, kind, text, data in rows_:
            w.writerow([f"{t:.6f}", kind, text, data])

    meta = info.to_detail_json()
    meta["files"] = {"events": "events.csv", "streams": files}
    meta["time"] = "t_s is seconds from started_at (ISO 8601, UTC)"
    units = session_units(info)
    for spec, s in zip(info.streams, meta["streams"], strict=True):
        st = bundle.stats.get(s["name"])
        s["samples"] = st.samples if st else 0
        s["file"] = files.get(s["name"])
        # Values are as recorded; where the profile calibrated a channel, how to
        # get its unit (what show and the EDF+ export give).
        s["calibrated"] = {ch: units.describe(spec, ch) for ch in spec.channels
                           if units.describe(spec, ch) is not None}
    with open_private(path / "session.json", force=True) as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return path
