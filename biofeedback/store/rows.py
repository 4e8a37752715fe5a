"""Stored rows back into records: sessions, streams, devices, events.

A damaged field never stops a listing: the session reads as ``damaged`` and
says which field (it can still be deleted).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biofeedback.store.liveness import lock_path, recording_lock_held, session_status
from biofeedback.store.records import KnownDevice, SessionInfo
from devices.stream import StreamKind, StreamSpec

__all__ = ["SESSION_SELECT", "event_data", "known_device", "reps_and_score", "session_info",
           "stream_spec"]


def event_data(raw: Any) -> dict[str, Any] | None:
    """An event's JSON details; a damaged one reads as ``{"damaged": True}``."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {"damaged": True}
    return data if isinstance(data, dict) else {"damaged": True}


SESSION_SELECT = """
    SELECT s.*,
        (SELECT count(*) FROM events e WHERE e.session_id = s.id AND e.kind = 'rep')
            AS rep_events,
        (SELECT avg(json_extract(e.data, '$.score')) FROM events e
            WHERE e.session_id = s.id AND e.kind = 'rep' AND e.data IS NOT NULL)
            AS rep_score
    FROM sessions s"""


def stream_spec(row: sqlite3.Row) -> StreamSpec:
    """A ``streams`` row as a spec (a damaged kind or channel list gets a neutral one)."""
    try:
        kind = StreamKind(row["kind"])
    except ValueError:
        kind = StreamKind.OTHER
    try:
        channels = json.loads(row["channels"])
    except (TypeError, ValueError):
        channels = None
    if not isinstance(channels, list) or len(channels) != row["n_channels"]:
        channels = [f"ch{i}" for i in range(int(row["n_channels"]))]  # damaged: name them
    return StreamSpec(
        name=row["name"],
        kind=kind,
        channels=tuple(str(c) for c in channels),
        unit=row["unit"],
        rate_hz=row["rate_hz"],
    )


class _Fields:
    """Reads a session row's stored fields, noting the ones that are damaged."""

    def __init__(self, row: sqlite3.Row) -> None:
        self.row = row
        self.damaged: list[str] = []

    def json(self, key: str, default: Any, kind: type) -> Any:
        raw = self.row[key]
        if raw is None:
            return default if kind is not dict else None
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):  # bad JSON, or bytes that are not UTF-8
            value = None
        if not isinstance(value, kind):
            self.damaged.append(key)
            return default
        return value

    def number(self, key: str, default: float) -> float:
        try:
            value = float(self.row[key])
        except (TypeError, ValueError):
            self.damaged.append(key)
            return default
        return value

    def text(self, key: str) -> str | None:
        value = self.row[key]
        if value is None or isinstance(value, str):
            return value
        self.damaged.append(key)
        return None


def session_info(row: sqlite3.Row, streams: tuple[StreamSpec, ...], store: Path) -> SessionInfo:
    """A :data:`SESSION_SELECT` row as a record; its status asks the recording lock."""
    f = _Fields(row)
    summary = f.json("summary", None, dict)
    pacer = f.json("pacer", None, dict)
    devices = [d for d in f.json("devices", [], list) if isinstance(d, dict)]
    started_at = f.text("started_at") or ""
    try:
        dt.datetime.fromisoformat(started_at)
    except ValueError:
        f.damaged.append("started_at")
    try:
        reps, score = reps_and_score(summary, int(row["rep_events"]), row["rep_score"])
    except (TypeError, ValueError):
        f.damaged.append("summary")
        reps, score = 0, None
    held = None if row["finished"] else recording_lock_held(lock_path(store, int(row["id"])))
    status = session_status(bool(row["finished"]), row["writer_pid"], row["heartbeat"],
                            lock_held=held)
    t0, duration_s = f.number("t0", 0.0), f.number("duration_s", 0.0)
    person, protocol, profile = f.text("person"), f.text("protocol"), f.text("profile")
    position = f.text("position")
    notes = f.text("note_before"), f.text("note_after")
    damage = ", ".join(sorted(set(f.damaged))) or None
    return SessionInfo(
        id=int(row["id"]),
        started_at=started_at,
        t0=t0,
        duration_s=duration_s,
        person=person,
        protocol=protocol or "?",
        pacer=pacer,
        profile=profile,
        devices=devices,
        virtual=bool(row["virtual"]),
        complete=bool(row["complete"]),
        status=status if damage is None or status == "recording" else "damaged",
        summary=summary,
        pain_before=row["pain_before"],
        pain_after=row["pain_after"],
        note_before=notes[0],
        note_after=notes[1],
        reps=reps,
        score=score,
        streams=streams,
        damage=None if damage is None else f"unreadable {damage}",
        position=position,
        demo=bool(row["demo"]),
    )


def known_device(row: sqlite3.Row) -> KnownDevice:
    """A ``devices`` row as a record."""
    return KnownDevice(
        address=row["address"],
        name=row["name"],
        driver=row["driver"],
        support=row["support"],
        virtual=bool(row["virtual"]),
        paired_at=row["paired_at"],
        last_seen=row["last_seen"],
        demo=bool(row["demo"]),
    )


def reps_and_score(
    summary: Mapping[str, Any] | None, rep_events: int, rep_score: float | None
) -> tuple[int, float | None]:
    """Reps and score of a session from its summary, else from its rep events.

    Accepts the summary shapes the session engine may write: ``{"reps": n,
    "score": x}``, ``{"reps": {RepSummary...}}``, ``{"reps": [...]}``,
    ``{"mean_score": x}``.
    """
    reps: int | None = None
    score: float | None = None
    if summary:
        r = summary.get("reps")
        s = summary.get("score")
        if isinstance(r, Mapping):
            s = s if s is not None else r.get("mean_score")
            r = r.get("reps")
        elif isinstance(r, list):
            r = len(r)
        if s is None:
            s = summary.get("mean_score")
        if isinstance(s, Mapping):
            s = s.get("mean") if s.get("mean") is not None else s.get("mean_score")
        if isinstance(r, int | float) and not isinstance(r, bool):
            reps = int(r)
        if isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s):
            score = float(s)
    if reps is None:
        reps = rep_events
    if score is None and rep_score is not None and math.isfinite(rep_score):
        score = float(rep_score)
    return reps, score
