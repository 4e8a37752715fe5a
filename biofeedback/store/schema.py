"""The store's schema: its application id and the ordered migrations.

The schema version lives in ``PRAGMA user_version`` and the application id in
``PRAGMA application_id``; migration n (1-based) brings version n-1 to n.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["APPLICATION_ID", "MIGRATIONS", "Header", "read_header", "split_sql"]

#: "BIOF" as a 32-bit big-endian integer: marks our files.
APPLICATION_ID = 0x42494F46

#: Migration n (1-based) brings the schema from version n-1 to n. Append only.
MIGRATIONS: list[str] = [
    # 1: known devices
    """
    CREATE TABLE devices (
        address     TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        driver      TEXT NOT NULL,
        support     TEXT NOT NULL,
        virtual     INTEGER NOT NULL DEFAULT 0,
        paired_at   TEXT NOT NULL,
        last_seen   TEXT NOT NULL
    );
    """,
    # 2: sessions, their streams, raw sample blocks, pelvic state runs, events, annotations
    """
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at  TEXT NOT NULL,              -- ISO 8601 UTC
        t0          REAL NOT NULL,              -- run clock at the start
        t_last      REAL NOT NULL,              -- latest time written (run clock)
        duration_s  REAL NOT NULL DEFAULT 0,
        person      TEXT,
        protocol    TEXT NOT NULL,
        pacer       TEXT,                       -- JSON
        profile     TEXT,
        devices     TEXT NOT NULL DEFAULT '[]', -- JSON list of {name, address, driver}
        virtual     INTEGER NOT NULL DEFAULT 0,
        complete    INTEGER NOT NULL DEFAULT 0,
        finished    INTEGER NOT NULL DEFAULT 0, -- the writer finished (else live or crashed)
        ended_at    TEXT,
        summary     TEXT,                       -- JSON
        pain_before INTEGER CHECK (pain_before BETWEEN 0 AND 10),
        pain_after  INTEGER CHECK (pain_after BETWEEN 0 AND 10),
        note_before TEXT,
        note_after  TEXT,
        writer_pid  INTEGER,
        heartbeat   REAL                        -- wall time of the writer's last commit
    );
    CREATE TABLE streams (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        channels    TEXT NOT NULL,              -- JSON list of names
        n_channels  INTEGER NOT NULL,
        unit        TEXT NOT NULL,
        rate_hz     REAL,                       -- nominal; NULL for irregular streams
        UNIQUE (session_id, name)
    );
    CREATE TABLE blocks (
        id          INTEGER PRIMARY KEY,
        stream_id   INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
        t_first     REAL NOT NULL,
        t_last      REAL NOT NULL,
        n           INTEGER NOT NULL,
        dtype       TEXT NOT NULL CHECK (dtype IN ('f4', 'f8')),
        t           BLOB NOT NULL,              -- float64 LE, n values
        v           BLOB NOT NULL,              -- dtype LE, n x n_channels, row-major
        sizes       BLOB                        -- uint32 LE: sizes of the chunks it holds
    );
    CREATE INDEX blocks_by_stream ON blocks (stream_id, t_first);
    CREATE TABLE states (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        stream      TEXT NOT NULL,
        t_start     REAL NOT NULL,
        t_end       REAL NOT NULL,
        state       INTEGER NOT NULL
    );
    CREATE INDEX states_by_session ON states (session_id, stream, t_start);
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        t           REAL NOT NULL,
        kind        TEXT NOT NULL,              -- link, cue, rep, step, annotation, strain...
        text        TEXT NOT NULL DEFAULT '',
        data        TEXT                        -- JSON
    );
    CREATE INDEX events_by_session ON events (session_id, t);
    CREATE TABLE annotations (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        t           REAL NOT NULL,              -- run clock
        duration_s  REAL,
        text        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX annotations_by_session ON annotations (session_id, t);
    """,
    # 3: the position a session was done in (lying, sitting, standing; NULL: not said)
    """
    ALTER TABLE sessions ADD COLUMN position TEXT;
    """,
    # 4: the demo's marks: its sessions, its devices and the profiles it saved
    """
    ALTER TABLE sessions ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE demo_profiles (
        id          TEXT PRIMARY KEY,
        path        TEXT NOT NULL,              -- the profile's JSON file
        marked_at   TEXT NOT NULL
    );
    """,
]


def split_sql(script: str) -> list[str]:
    """The statements of a migration script (executescript would commit our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


@dataclass(frozen=True)
class Header:
    """What identifies a store, read in one transaction."""

    app_id: int
    version: int
    has_tables: bool


def read_header(conn: sqlite3.Connection) -> Header:
    """Read the identification; the caller holds a transaction so the three agree."""
    return Header(
        app_id=int(conn.execute("PRAGMA application_id").fetchone()[0]),
        version=int(conn.execute("PRAGMA user_version").fetchone()[0]),
        has_tables=bool(conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table'"
        ).fetchone()[0]),
    )

