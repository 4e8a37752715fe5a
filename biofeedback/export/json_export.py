"""JSON summary export: metadata, summary, reps, events and state runs (no raw samples).

Times are ``t_s``: seconds from ``session.started_at`` (ISO 8601, UTC).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biofeedback.export.common import (
    Progress,
    SessionBundle,
    begin_export,
    open_private,
)
from biofeedback.store import Store
from biofeedback.store.records import now_iso

__all__ = ["FORMAT_VERSION", "export_json", "session_document"]

#: Bumped when a key changes meaning; keys are only ever added.
FORMAT_VERSION = 1


def session_document(bundle: SessionBundle) -> dict[str, Any]:
    """The JSON document of a session (what ``export --format json`` writes)."""
    info = bundle.info
    t0 = info.t0
    session = info.to_detail_json()
    for s in session["streams"]:
        st = bundle.stats.get(s["name"])
        s["samples"] = st.samples if st else 0
        rate = st.rate_hz() if st else None
        s["measured_rate_hz"] = None if rate is None else round(rate, 3)
    reps = []
    for e in bundle.events:
        if e.kind == "rep":
            reps.append({"t_s": round(e.t - t0, 6), "text": e.text, **(e.data or {})})
    return {
        "format": "biofeedback-session",
        "format_version": FORMAT_VERSION,
        "exported_at": now_iso(),
        "time": "t_s is seconds from session.started_at (ISO 8601, UTC)",
        "session": session,
        "summary": info.summary,
        "reps": reps,
        "events": [e.to_json(t0) for e in bundle.events],
        "states": [r.to_json(t0) for r in bundle.states],
    }


def export_json(
    store: Store,
    session_id: int,
    path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the JSON summary of a session to ``path``; returns it."""
    job = begin_export(store, session_id, path, force=force, progress=progress)
    job.progress.start(1, f"JSON export of session {session_id}")
    doc = session_document(job.bundle)
    with open_private(job.path, force=force) as f:
        json.dump(doc, f, indent=2, allow_nan=False)
        f.write("\n")
    job.progress.advance()
    return job.path
