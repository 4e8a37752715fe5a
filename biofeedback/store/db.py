"""SQLite store in the user data dir: schema-versioned, owner-only, WAL.

The schema version lives in ``PRAGMA user_version`` and an application id in
``PRAGMA application_id``, so a foreign SQLite file (or anything that is not
SQLite) is refused with a clear error and left untouched. Migrations are an
ordered list of SQL scripts; opening a file applies the missing ones in one
transaction each (append only: migration 1 is known devices, 2 sessions, 3 a
session's position, 4 the demo's marks).

Sessions are written as they stream by a
:class:`~biofeedback.store.sessions.SessionWriter` (its own thread and
connection, a commit at least every 0.25 s) and read back here: metadata,
raw sample blocks per stream, pelvic state runs, events and annotations.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from biofeedback.paths import make_private_dirs
from biofeedback.store.errors import StoreError
from biofeedback.store.sessions import (
    Block,
    FloatArray,
    RecordingLock,
    SessionEvent,
    SessionInfo,
    SessionMeta,
    SessionWriter,
    StateRun,
    StreamStats,
    _dumps,
    _pain,
    decode_block,
    lock_path,
    now_iso,
    recording_lock_held,
    reps_and_score,
    session_status,
)
from devices.errors import InputError
from devices.stream import LinkEvent, StreamKind, StreamSpec

__all__ = ["APPLICATION_ID", "MIGRATIONS", "DemoMarks", "KnownDevice", "Store", "StoreError"]

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

_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class DemoMarks:
    """What the demo left in the store: session ids, device addresses, profile files."""

    sessions: list[int]
    devices: list[str]
    profiles: list[Path]

    def to_json(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "devices": self.devices,
                "profiles": [str(p) for p in self.profiles]}


@dataclass(frozen=True)
class KnownDevice:
    """A paired device."""

    address: str
    name: str
    driver: str
    support: str
    virtual: bool
    paired_at: str
    last_seen: str
    demo: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "driver": self.driver,
            "support": self.support,
            "virtual": self.virtual,
            "paired_at": self.paired_at,
            "last_seen": self.last_seen,
            "demo": self.demo,
        }


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _check_file(path: Path) -> None:
    """Refuse anything that is not an SQLite file before SQLite touches it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is a directory, not a store file; left untouched")
    if st.st_size == 0:
        return
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc.strerror or exc}") from exc
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a biofeedback store (not an SQLite file); left untouched")


def _create_file(path: Path) -> None:
    """Create an empty store file owner-only (health data); another process may win."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _writable(path: Path) -> bool:
    """The file and its folder can be written (WAL keeps two files beside it)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _split_sql(script: str) -> list[str]:
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
class _Header:
    """What identifies a store, read in one transaction."""

    app_id: int
    version: int
    has_tables: bool


def _read_header(conn: sqlite3.Connection) -> _Header:
    """Read the identification; the caller holds a transaction so the three agree."""
    return _Header(
        app_id=int(conn.execute("PRAGMA application_id").fetchone()[0]),
        version=int(conn.execute("PRAGMA user_version").fetchone()[0]),
        has_tables=bool(conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table'"
        ).fetchone()[0]),
    )


class Store:
    """The SQLite store.

    Opening is safe against other processes opening the same file at the same
    time: a new file is created and migrated under one ``BEGIN IMMEDIATE``
    transaction, and the identification is read again inside it.

    Parameters
    ----------
    path : Path
        The database file; created (mode 0600) when missing.

    Raises
    ------
    StoreError
        When the file is corrupt, foreign, or written by a newer version.
    """

    #: Seconds an open waits for another process's write lock (a migration, a commit).
    BUSY_TIMEOUT_S = 10.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: True when the file or its folder cannot be written: reading works, writing says why.
        self.readonly = False
        _check_file(self.path)
        if not self.path.exists():
            try:
                _create_file(self.path)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store {self.path}: {exc.strerror or exc}"
                ) from None
        # Identify the file on a read-only connection first: a foreign database is
        # never written (not even checkpointed) before we know it is ours.
        self.conn = self._connect(readonly=True)
        try:
            header = self._identify()
            if _writable(self.path):
                self.conn.close()
                self.conn = self._connect(readonly=False)
                self._open()
            elif header.version < len(MIGRATIONS):
                raise StoreError(f"{self.path} is read-only and needs an upgrade to this "
                                 "version's format: make it writable once")
            else:
                self.readonly = True
                self.conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            self.conn.close()
            raise

    def _identify(self) -> _Header:
        """The header, on the read-only connection.

        In a read-only folder SQLite cannot create the WAL index beside the
        file; with no ``-wal`` there, nobody is writing, so the file is read
        as immutable.
        """
        try:
            return self._header(lock=False)
        except StoreError:
            folder = self.path.parent
            if Path(f"{self.path}-wal").exists() or os.access(folder, os.W_OK | os.X_OK):
                raise
        self.conn.close()
        self.conn = self._connect(readonly=True, immutable=True)
        return self._header(lock=False)

    def _connect(self, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        uri += "?mode=ro&immutable=1" if immutable else "?mode=ro" if readonly else "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True,
                                   timeout=self.BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _open(self) -> None:
        """Identify the file, migrate it if needed, then switch it to WAL."""
        header = self._header(lock=False)
        if header.version < len(MIGRATIONS):
            self._migrate()
        try:
            self._set_wal()
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def _set_wal(self) -> None:
        """Switch to WAL (a no-op once the file is WAL).

        The switch needs an exclusive lock, and SQLite answers "locked" at
        once instead of waiting when two connections want it together (a
        deadlock otherwise), so it is retried until the busy timeout.
        """
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        pause = 0.001
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _header(self, *, lock: bool) -> _Header:
        """Read and check the identification (``lock``: inside our write transaction)."""
        try:
            if lock:
                header = _read_header(self.conn)
            else:
                self.conn.execute("BEGIN")
                try:
                    header = _read_header(self.conn)
                finally:
                    self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if "unable to open" in str(exc):
                raise StoreError(f"{self.path}: cannot open the store ({exc}); check the "
                                 "permissions of the file and its folder") from None
            raise StoreError(f"{self.path} is corrupt or not a biofeedback store ({exc}); "
                             "left untouched") from None
        if header.app_id != APPLICATION_ID and (header.has_tables or header.version):
            raise StoreError(
                f"{self.path} is an SQLite file of another application; left untouched"
            )
        if header.version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {header.version}, newer than this program "
                f"understands ({len(MIGRATIONS)}); update biofeedback"
            )
        return header

    def _migrate(self) -> None:
        """Bring the schema up to date in one write transaction.

        The version is read again once the lock is held: another process may
        have created or migrated the file since we first looked.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        try:
            version = self._header(lock=True).version
            step = version + 1
            for n in range(version, len(MIGRATIONS)):
                step = n + 1
                for sql in _split_sql(MIGRATIONS[n]):
                    self.conn.execute(sql)
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: migration to version {step} failed: {exc}") from exc
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).

        Raises
        ------
        StoreError
            When the store is read-only.
        """
        if self.readonly:
            raise StoreError(f"{self.path} is read-only (the file or its folder): this command "
                             "needs to write to it")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- known devices -------------------------------------------------------

    def remember_device(
        self, *, address: str, name: str, driver: str, support: str, virtual: bool,
        demo: bool = False,
    ) -> KnownDevice:
        """Store (or refresh) a paired device.

        ``demo``: paired by the demo (hidden from :meth:`devices`, removed by
        :meth:`wipe_demo`). A device the user paired stays theirs when the
        demo pairs it again.
        """
        now = _now_iso()
        with self.transaction() as c:
            c.execute(
                """INSERT INTO devices (address, name, driver, support, virtual, paired_at,
                       last_seen, demo) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(address) DO UPDATE SET name=excluded.name,
                       driver=excluded.driver, support=excluded.support,
                       virtual=excluded.virtual, last_seen=excluded.last_seen,
                       demo=devices.demo AND excluded.demo""",
                (address, name, driver, support, int(virtual), now, now, int(demo)),
            )
        dev = self.device(address)
        assert dev is not None
        return dev

    def device(self, address: str) -> KnownDevice | None:
        row = self.conn.execute(
            "SELECT * FROM devices WHERE address = ? COLLATE NOCASE", (address,)
        ).fetchone()
        return _device(row) if row else None

    def devices(self, *, include_demo: bool = False) -> list[KnownDevice]:
        """Known devices, latest seen first; the demo's only with ``include_demo``."""
        where = "" if include_demo else " WHERE demo = 0"
        rows = self.conn.execute(
            f"SELECT * FROM devices{where} ORDER BY last_seen DESC, name").fetchall()
        return [_device(r) for r in rows]

    def touch_device(self, address: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE devices SET last_seen = ? WHERE address = ? COLLATE NOCASE",
                (_now_iso(), address),
            )

    # -- sessions --------------------------------------------------------------

    def begin_session(self, meta: SessionMeta, *, flush_interval: float | None = None
                      ) -> SessionWriter:
        """Create a session and return the writer that records it as it streams.

        Parameters
        ----------
        meta : SessionMeta
            What is known at the start.
        flush_interval : float or None
            Seconds between the writer's commits (default
            :data:`~biofeedback.store.sessions.FLUSH_INTERVAL_S`).

        Raises
        ------
        InputError
            When ``pain_before`` is not 0-10 or two streams share a name.
        """
        pain = _pain(meta.pain_before, "pain before")
        names = [s.name for s in meta.streams]
        if len(set(names)) != len(names):
            raise InputError(f"stream names must be unique, got {names}")
        lock: RecordingLock | None = None
        try:
            with self.transaction() as c:
                cur = c.execute(
                    """INSERT INTO sessions (started_at, t0, t_last, person, protocol, pacer,
                           profile, devices, virtual, pain_before, note_before, writer_pid,
                           heartbeat, position, demo)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (meta.started_at or now_iso(), float(meta.t0), float(meta.t0),
                     meta.person, meta.protocol,
                     None if meta.pacer is None else _dumps(meta.pacer), meta.profile,
                     _dumps(list(meta.devices)), int(meta.virtual), pain, meta.note_before,
                     os.getpid(), _wall(), meta.position, int(meta.demo)),
                )
                sid = cur.lastrowid
                assert sid is not None
                # Taken before the row is visible, so nobody sees it unlocked.
                lock = RecordingLock(lock_path(self.path, sid))
                streams: dict[str, tuple[int, int]] = {}
                for spec in meta.streams:
                    cur = c.execute(
                        """INSERT INTO streams (session_id, name, kind, channels, n_channels, unit,
                               rate_hz) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                        (sid, spec.name, str(spec.kind), _dumps(list(spec.channels)),
                         len(spec.channels), spec.unit, spec.rate_hz),
                    )
                    assert cur.lastrowid is not None
                    streams[spec.name] = (cur.lastrowid, len(spec.channels))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        assert lock is not None
        kw = {} if flush_interval is None else {"flush_interval": flush_interval}
        return SessionWriter(self.path, sid, float(meta.t0), streams, lock=lock, **kw)

    def sessions(self) -> list[SessionInfo]:
        """Every session, oldest first."""
        rows = self.conn.execute(_SESSION_SELECT + " ORDER BY s.id").fetchall()
        specs = self._stream_specs(None)
        return [_session(r, specs.get(r["id"], ()), self.path) for r in rows]

    def session(self, session_id: int) -> SessionInfo:
        """One session.

        Raises
        ------
        InputError
            ``no session N`` when it does not exist.
        """
        row = self.conn.execute(_SESSION_SELECT + " WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            raise InputError(f"no session {session_id}")
        return _session(row, self._stream_specs(session_id).get(session_id, ()), self.path)

    def _stream_specs(self, session_id: int | None) -> dict[int, tuple[StreamSpec, ...]]:
        sql = "SELECT * FROM streams"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            args = (session_id,)
        out: dict[int, list[StreamSpec]] = {}
        for r in self.conn.execute(sql + " ORDER BY id", args):
            out.setdefault(r["session_id"], []).append(_spec(r))
        return {k: tuple(v) for k, v in out.items()}

    def _stream_row(self, session_id: int, stream: str) -> Any:
        row = self.conn.execute(
            "SELECT * FROM streams WHERE session_id = ? AND name = ?", (session_id, stream)
        ).fetchone()
        if row is None:
            self.session(session_id)  # "no session N" first
            raise InputError(f"session {session_id} has no stream {stream!r}")
        return row

    def stream_stats(self, session_id: int) -> dict[str, StreamStats]:
        """Samples, blocks and time span of each stream of a session."""
        self.session(session_id)
        rows = self.conn.execute(
            """SELECT st.name, count(b.id) AS blocks, coalesce(sum(b.n), 0) AS samples,
                      min(b.t_first) AS t_first, max(b.t_last) AS t_last
               FROM streams st LEFT JOIN blocks b ON b.stream_id = st.id
               WHERE st.session_id = ? GROUP BY st.id ORDER BY st.id""",
            (session_id,),
        ).fetchall()
        return {
            r["name"]: StreamStats(int(r["samples"]), int(r["blocks"]), r["t_first"],
                                   r["t_last"])
            for r in rows
        }

    def iter_blocks(self, session_id: int, stream: str) -> Iterator[Block]:
        """The stored blocks of a stream in time order (one query, read lazily)."""
        srow = self._stream_row(session_id, stream)
        nch = int(srow["n_channels"])
        cur = self.conn.execute(
            "SELECT t, v, dtype, n, sizes FROM blocks WHERE stream_id = ? ORDER BY t_first, id",
            (srow["id"],),
        )
        for r in cur:
            try:
                t, v = decode_block(r["t"], r["v"], r["dtype"], nch)
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreError(
                    f"{self.path}: session {session_id}, stream {stream!r}: a damaged "
                    f"sample block ({exc}); the session can still be deleted"
                ) from None
            sizes = (
                tuple(int(x) for x in np.frombuffer(r["sizes"], dtype="<u4"))
                if r["sizes"] is not None else (int(r["n"]),)
            )
            yield Block(t, v, sizes)

    def read_stream(self, session_id: int, stream: str) -> tuple[FloatArray, FloatArray]:
        """All samples of a stream: ``(t, values)`` with shapes ``(n,)`` and ``(n, channels)``.

        Times are on the run clock (subtract :attr:`SessionInfo.t0` for seconds
        from the start).
        """
        nch = int(self._stream_row(session_id, stream)["n_channels"])
        blocks = list(self.iter_blocks(session_id, stream))
        if not blocks:
            return np.zeros(0), np.zeros((0, nch))
        return (np.concatenate([b.t for b in blocks]),
                np.concatenate([b.values for b in blocks], axis=0))

    def events(self, session_id: int, kind: str | None = None) -> list[SessionEvent]:
        """Events of a session in time order (``kind`` filters, e.g. ``"rep"``)."""
        self.session(session_id)
        sql = "SELECT t, kind, text, data FROM events WHERE session_id = ?"
        args: tuple[Any, ...] = (session_id,)
        if kind is not None:
            sql += " AND kind = ?"
            args += (kind,)
        rows = self.conn.execute(sql + " ORDER BY t, id", args).fetchall()
        return [
            SessionEvent(r["t"], r["kind"], r["text"], _event_data(r["data"]))
            for r in rows
        ]

    def link_events(self, session_id: int) -> list[LinkEvent]:
        """The recorded link events, as the source delivered them."""
        out = []
        for e in self.events(session_id, "link"):
            try:
                out.append(e.to_link_event())
            except ValueError:  # a kind this version does not know: skip it
                continue
        return out

    def states(self, session_id: int, stream: str | None = None) -> list[StateRun]:
        """Pelvic state runs of a session (of one stream, or all), in time order."""
        self.session(session_id)
        sql = "SELECT stream, t_start, t_end, state FROM states WHERE session_id = ?"
        args: tuple[Any, ...] = (session_id,)
        if stream is not None:
            sql += " AND stream = ?"
            args += (stream,)
        rows = self.conn.execute(sql + " ORDER BY t_start, id", args).fetchall()
        return [StateRun(r["stream"], r["t_start"], r["t_end"], r["state"]) for r in rows]

    def annotate(
        self, session_id: int, at_s: float, text: str, duration_s: float | None = None
    ) -> None:
        """Add an annotation afterwards, ``at_s`` seconds from the session start."""
        info = self.session(session_id)
        if not text.strip():
            raise InputError("an annotation needs some text")
        if duration_s is not None and duration_s < 0:
            raise InputError(f"duration must not be negative, not {duration_s}")
        with self.transaction() as c:
            c.execute(
                """INSERT INTO annotations (session_id, t, duration_s, text, created_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (session_id, info.t0 + float(at_s), duration_s, text, now_iso()),
            )

    def annotations(self, session_id: int) -> list[SessionEvent]:
        """Annotations added afterwards, as events of kind ``annotation``."""
        self.session(session_id)
        rows = self.conn.execute(
            "SELECT t, duration_s, text, created_at FROM annotations WHERE session_id = ? "
            "ORDER BY t, id",
            (session_id,),
        ).fetchall()
        return [
            SessionEvent(r["t"], "annotation", r["text"],
                         {"duration_s": r["duration_s"], "created_at": r["created_at"]})
            for r in rows
        ]

    def delete_session(self, session_id: int) -> None:
        """Delete a session and everything recorded with it, overwriting the freed pages.

        Raises
        ------
        InputError
            ``no session N``.
        """
        info = self.session(session_id)
        if info.status == "recording":
            raise InputError(f"session {session_id} is still being recorded")
        # Health data: zero the freed pages, and move them out of the WAL now.
        self.conn.execute("PRAGMA secure_delete = ON")
        with self.transaction() as c:
            c.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        lock_path(self.path, session_id).unlink(missing_ok=True)  # a crashed writer's
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def mark_demo_profile(self, profile_id: str, path: Path) -> None:
        """Note that the demo saved profile ``profile_id`` at ``path`` (see :meth:`wipe_demo`)."""
        with self.transaction() as c:
            c.execute(
                """INSERT INTO demo_profiles (id, path, marked_at) VALUES (?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET path=excluded.path""",
                (profile_id, str(Path(path).absolute()), now_iso()),
            )

    def demo_marks(self) -> DemoMarks:
        """What the demo left: its sessions, devices and profile files."""
        return DemoMarks(
            sessions=[int(r[0]) for r in self.conn.execute(
                "SELECT id FROM sessions WHERE demo = 1 ORDER BY id")],
            devices=[str(r[0]) for r in self.conn.execute(
                "SELECT address FROM devices WHERE demo = 1 ORDER BY address")],
            profiles=[Path(r[0]) for r in self.conn.execute(
                "SELECT path FROM demo_profiles ORDER BY id")],
        )

    def wipe_demo(self) -> DemoMarks:
        """Delete the demo's sessions, devices and profile files; the user's data stays.

        Returns what was removed (profile files already gone are not listed).

        Raises
        ------
        InputError
            When a demo session is being recorded right now.
        """
        marks = self.demo_marks()
        for sid in marks.sessions:
            if self.session(sid).status == "recording":
                raise InputError(f"demo session {sid} is being recorded right now; stop it "
                                 "first")
        self.conn.execute("PRAGMA secure_delete = ON")  # health data, as delete_session
        with self.transaction() as c:
            c.execute("DELETE FROM sessions WHERE demo = 1")
            c.execute("DELETE FROM devices WHERE demo = 1")
            c.execute("DELETE FROM demo_profiles")
        for sid in marks.sessions:
            lock_path(self.path, sid).unlink(missing_ok=True)
        removed = []
        for p in marks.profiles:
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return DemoMarks(marks.sessions, marks.devices, removed)

    def backup(self, target: Path) -> None:
        """A consistent copy of the whole store (mode 0600), even while recording."""
        target = Path(target)
        fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.close(fd)
        dst = sqlite3.connect(target)
        try:
            self.conn.backup(dst)
        finally:
            dst.close()


def _event_data(raw: Any) -> dict[str, Any] | None:
    """An event's JSON details; a damaged one reads as ``{"damaged": True}``."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {"damaged": True}
    return data if isinstance(data, dict) else {"damaged": True}


def _wall() -> float:
    return time.time()


_SESSION_SELECT = """
    SELECT s.*,
        (SELECT count(*) FROM events e WHERE e.session_id = s.id AND e.kind = 'rep')
            AS rep_events,
        (SELECT avg(json_extract(e.data, '$.score')) FROM events e
            WHERE e.session_id = s.id AND e.kind = 'rep' AND e.data IS NOT NULL)
            AS rep_score
    FROM sessions s"""


def _spec(row: sqlite3.Row) -> StreamSpec:
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


def _session(row: sqlite3.Row, streams: tuple[StreamSpec, ...], store: Path) -> SessionInfo:
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


def _device(row: sqlite3.Row) -> KnownDevice:
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
