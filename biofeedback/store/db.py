"""The SQLite store in the user data dir: known devices and recorded sessions.

:class:`Store` answers the queries; opening a file (refusing foreign ones,
migrating, WAL) is :mod:`biofeedback.store.opening`, the schema
:mod:`biofeedback.store.schema`. Sessions are written as they stream by a
:class:`~biofeedback.store.sessions.SessionWriter` (its own thread and
connection, a commit at least every 0.25 s) and read back here: metadata,
raw sample blocks per stream, pelvic state runs, events and annotations.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from biofeedback.store.codec import SIZE_DTYPE, decode_block, dumps
from biofeedback.store.errors import StoreError
from biofeedback.store.liveness import RecordingLock, lock_path
from biofeedback.store.opening import open_store
from biofeedback.store.records import (
    Block,
    DemoMarks,
    FloatArray,
    KnownDevice,
    SessionEvent,
    SessionInfo,
    SessionMeta,
    StateRun,
    StreamStats,
    now_iso,
    valid_pain,
)
from biofeedback.store.rows import (
    SESSION_SELECT,
    event_data,
    known_device,
    session_info,
    stream_spec,
)
from biofeedback.store.sessions import SessionWriter
from devices.errors import InputError
from devices.stream import LinkEvent, StreamSpec

__all__ = ["Store"]


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
        self.conn, self.readonly = open_store(self.path, self.BUSY_TIMEOUT_S)

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
        return known_device(row) if row else None

    def devices(self, *, include_demo: bool = False) -> list[KnownDevice]:
        """Known devices, latest seen first; the demo's only with ``include_demo``."""
        where = "" if include_demo else " WHERE demo = 0"
        rows = self.conn.execute(
            f"SELECT * FROM devices{where} ORDER BY last_seen DESC, name").fetchall()
        return [known_device(r) for r in rows]

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
        pain = valid_pain(meta.pain_before, "pain before")
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
                     None if meta.pacer is None else dumps(meta.pacer), meta.profile,
                     dumps(list(meta.devices)), int(meta.virtual), pain, meta.note_before,
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
                        (sid, spec.name, str(spec.kind), dumps(list(spec.channels)),
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
        rows = self.conn.execute(SESSION_SELECT + " ORDER BY s.id").fetchall()
        specs = self._stream_specs(None)
        return [session_info(r, specs.get(r["id"], ()), self.path) for r in rows]

    def session(self, session_id: int) -> SessionInfo:
        """One session.

        Raises
        ------
        InputError
            ``no session N`` when it does not exist.
        """
        row = self.conn.execute(SESSION_SELECT + " WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            raise InputError(f"no session {session_id}")
        return session_info(row, self._stream_specs(session_id).get(session_id, ()), self.path)

    def _stream_specs(self, session_id: int | None) -> dict[int, tuple[StreamSpec, ...]]:
        sql = "SELECT * FROM streams"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            args = (session_id,)
        out: dict[int, list[StreamSpec]] = {}
        for r in self.conn.execute(sql + " ORDER BY id", args):
            out.setdefault(r["session_id"], []).append(stream_spec(r))
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
                tuple(int(x) for x in np.frombuffer(r["sizes"], dtype=SIZE_DTYPE))
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
            SessionEvent(r["t"], r["kind"], r["text"], event_data(r["data"]))
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


def _wall() -> float:
    return time.time()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
