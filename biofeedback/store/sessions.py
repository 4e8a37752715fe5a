"""Recording a session: the streaming :class:`SessionWriter`.

A session is written *as it streams* by a :class:`SessionWriter`: its methods
only put items on a queue (they never wait for the disk), and a writer thread
commits whatever arrived at least every :data:`FLUSH_INTERVAL_S`, so a killed
process loses well under a second. A session whose writer never finished reads
back as incomplete ("interrupted") with everything committed so far.

Raw samples are stored per stream as blocks: one row per flush and stream,
holding the float64 timestamps and the values (float32 when every value is
exactly a float32 -- raw counts and the float32 that most sensors send --,
else float64) as little-endian bytes, plus the sizes of the chunks they came
in, so a replay delivers the very same chunks (:mod:`biofeedback.store.codec`).
Pelvic states are stored run-length encoded. The records live in
:mod:`biofeedback.store.records`.
"""

from __future__ import annotations

import atexit
import logging
import math
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from biofeedback.jsonable import finite
from biofeedback.store.codec import SIZE_DTYPE, dumps, encode_block, run_length_encode
from biofeedback.store.errors import StoreError
from biofeedback.store.liveness import RecordingLock
from biofeedback.store.records import FloatArray, SessionMeta, now_iso, valid_pain
from devices.stream import Chunk, LinkEvent, StreamKind

# SessionMeta is re-exported: biofeedback/runtime.py imports it from here.
__all__ = ["FLUSH_INTERVAL_S", "SessionMeta", "SessionWriter"]

log = logging.getLogger(__name__)

#: The writer thread commits at least this often (seconds of wall time).
FLUSH_INTERVAL_S = 0.25

#: An idle writer still commits a heartbeat this often.
_HEARTBEAT_EVERY_S = 2.0


# --------------------------------------------------------------------------- writer


@dataclass
class _OpenRun:
    state: int
    t_start: float
    t_end: float
    rowid: int | None = None
    dirty: bool = True


@dataclass
class _StreamSlot:
    stream_id: int
    n_channels: int


@dataclass
class _Finish:
    summary: dict[str, Any]
    complete: bool
    pain_after: int | None
    note_after: str | None


@dataclass
class _Batch:
    """Everything drained from the queue since the last successful commit."""

    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    events: list[tuple[float, str, str, str | None]] = field(default_factory=list)
    states: list[tuple[str, FloatArray, npt.NDArray[Any]]] = field(default_factory=list)
    finish: _Finish | None = None
    syncs: list[threading.Event] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.chunks or self.events or self.states or self.finish)


_live_writers: weakref.WeakSet[SessionWriter] = weakref.WeakSet()


@atexit.register
def _close_live_writers() -> None:
    """A normal interpreter exit flushes what is queued (a kill cannot)."""
    for w in list(_live_writers):
        try:
            w.close()
        except Exception as exc:  # exit must go on
            log.error("session %s: final flush failed: %s", w.session_id, exc)


class SessionWriter:
    """Records one session as it streams; made by :meth:`Store.begin_session`.

    Every recording method only enqueues (it never waits for the disk and
    never raises on a write error); a writer thread with its own SQLite
    connection commits at least every ``flush_interval`` seconds. A write
    error is logged, the data kept in memory and retried; :meth:`finish` and
    :meth:`close` raise :class:`StoreError` if it could not be written in the
    end.

    Parameters
    ----------
    path : Path
        The store file.
    session_id : int
        The session row, already created.
    t0 : float
        The session's start on the run clock.
    streams : mapping of str to (int, int)
        Stream name -> (stream row id, number of channels) for the declared
        streams.
    flush_interval : float
        Seconds between commits.
    lock : RecordingLock or None
        The OS lock that tells other processes this session is being
        recorded; released by :meth:`close`.
    """

    #: How long one commit waits for another writer's lock before it is retried.
    BUSY_TIMEOUT_S = 5.0
    #: How long :meth:`close` keeps retrying a failing commit before it gives up.
    CLOSE_GRACE_S = 10.0

    def __init__(
        self,
        path: Path,
        session_id: int,
        t0: float,
        streams: Mapping[str, tuple[int, int]],
        *,
        flush_interval: float = FLUSH_INTERVAL_S,
        lock: RecordingLock | None = None,
    ) -> None:
        self.path = Path(path)
        self._lock = lock
        self.session_id = session_id
        self.t0 = t0
        self.flush_interval = float(flush_interval)
        self._slots = {name: _StreamSlot(sid, nch) for name, (sid, nch) in streams.items()}
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._close_deadline = math.inf
        self._close_lock = threading.Lock()
        self._warned_closed = False
        self._error: BaseException | None = None
        self._runs: dict[str, _OpenRun] = {}
        self._t_last = t0
        self._pending = _Batch()
        self.committed_samples = 0
        self._thread = threading.Thread(
            target=self._run, name=f"session-writer-{session_id}", daemon=True
        )
        self._thread.start()
        _live_writers.add(self)

    # -- the pipeline's side: enqueue only -----------------------------------

    def _put(self, item: tuple[str, Any]) -> None:
        if self._stopping:
            if not self._warned_closed:
                self._warned_closed = True
                log.warning("session %s: writer closed, dropping late data", self.session_id)
            return
        self._queue.put(item)

    def chunk(self, chunk: Chunk) -> None:
        """Record a chunk of samples (its arrays are kept, not copied)."""
        if len(chunk):
            self._put(("chunk", chunk))

    def link_event(self, ev: LinkEvent) -> None:
        """Record a link event (stored as an event of kind ``link``)."""
        data = {"device": ev.device, "detail": ev.detail, "value": ev.value}
        self._put(("event", (float(ev.t), "link", str(ev.kind), data)))

    def event(
        self, t: float, kind: str, text: str = "", data: dict[str, Any] | None = None
    ) -> None:
        """Record an event: a cue, rep, step, annotation, strain warning...

        Parameters
        ----------
        t : float
            When, on the run clock.
        kind : str
            ``"cue"``, ``"rep"``, ``"step"``, ``"annotation"``, ``"strain"``...
        text : str
            Human-readable text.
        data : dict or None
            JSON-serialisable details (a rep's ``score``, ...).
        """
        self._put(("event", (float(t), str(kind), str(text), data)))

    def states(self, stream: str, t: FloatArray, state: npt.NDArray[Any]) -> None:
        """Record pelvic state codes per sample (stored run-length encoded)."""
        if len(t):
            self._put(("states", (stream, np.asarray(t, dtype=np.float64), np.asarray(state))))

    def finish(
        self,
        *,
        summary: dict[str, Any],
        complete: bool,
        pain_after: int | None = None,
        note_after: str | None = None,
    ) -> None:
        """Store the summary, mark the session finished, flush and stop.

        Raises
        ------
        InputError
            When ``pain_after`` is not 0-10.
        StoreError
            When the recording could not be written.
        """
        pain = valid_pain(pain_after, "pain after")
        self._put(("finish", _Finish(dict(summary), bool(complete), pain, note_after)))
        self.close()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything enqueued so far is committed (tests, checkpoints).

        Raises
        ------
        StoreError
            When it could not be committed within ``timeout`` seconds.
        """
        if self._stopping:
            return
        done = threading.Event()
        self._queue.put(("sync", done))
        self._wake.set()
        if not done.wait(timeout):
            raise StoreError(
                f"session {self.session_id}: could not write to {self.path}: {self._error}"
            )

    def close(self) -> None:
        """Flush what is queued and stop the writer thread (idempotent).

        Raises
        ------
        StoreError
            When the last data could not be written.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._close_deadline = time.monotonic() + self.CLOSE_GRACE_S
            self._stopping = True
            self._wake.set()
            self._thread.join()
            _live_writers.discard(self)
            if self._lock is not None:
                self._lock.release()
        if self._error is not None or not self._pending.empty():
            raise StoreError(
                f"session {self.session_id}: the last data could not be written to "
                f"{self.path}: {self._error}"
            )

    @property
    def error(self) -> BaseException | None:
        """The latest write error (None when the last commit worked)."""
        return self._error

    # -- the writer thread -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        last_commit = time.monotonic()
        while True:
            stopping = self._stopping
            self._drain()
            idle = time.monotonic() - last_commit > _HEARTBEAT_EVERY_S
            if not self._pending.empty() or self._pending.syncs or idle:
                try:
                    if conn is None:
                        conn = self._connect()
                    self._commit(conn)
                    self._error = None
                    last_commit = time.monotonic()
                except Exception as exc:  # keep the data and retry next round
                    if self._error is None or str(exc) != str(self._error):
                        log.error("session %s: write failed: %s", self.session_id, exc)
                    self._error = exc
                    if conn is not None:
                        try:
                            if conn.in_transaction:
                                conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            conn.close()
                            conn = None
            if stopping and self._queue.empty() and (
                self._pending.empty() or time.monotonic() > self._close_deadline
            ):
                break
            self._wake.wait(self.flush_interval)
            self._wake.clear()
        if conn is not None:
            conn.close()
        for ev in self._pending.syncs:
            ev.set()

    def _drain(self) -> None:
        b = self._pending
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "chunk":
                b.chunks.setdefault(item.stream, []).append(item)
            elif kind == "event":
                t, k, text, data = item
                js = None if data is None else dumps(finite(data))
                b.events.append((t, k, text, js))
            elif kind == "states":
                b.states.append(item)
            elif kind == "finish":
                b.finish = item
            elif kind == "sync":
                b.syncs.append(item)

    def _slot(self, conn: sqlite3.Connection, chunk: Chunk) -> _StreamSlot:
        """The stream row a chunk goes to (created for undeclared streams)."""
        name = chunk.stream
        nch = chunk.values.shape[1]
        slot = self._slots.get(name)
        k = 2
        while slot is not None and slot.n_channels != nch:
            # Same name, other shape: keep it, under a distinct name.
            name = f"{chunk.stream}~{k}"
            slot = self._slots.get(name)
            k += 1
        if slot is None:
            channels = chunk.channels or tuple(f"ch{i}" for i in range(nch))
            cur = conn.execute(
                """INSERT INTO streams (session_id, name, kind, channels, n_channels, unit,
                       rate_hz) VALUES (?, ?, ?, ?, ?, ?, NULL)""",
                (self.session_id, name, str(StreamKind.OTHER), dumps(list(channels)), nch,
                 chunk.unit),
            )
            assert cur.lastrowid is not None
            slot = _StreamSlot(cur.lastrowid, nch)
            self._slots[name] = slot
            log.info("session %s: recording undeclared stream %s", self.session_id, name)
        return slot

    def _commit(self, conn: sqlite3.Connection) -> None:
        b = self._pending
        t_last = self._t_last
        n_samples = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for chunks in b.chunks.values():
                # Group by target stream row (shape changes split a stream).
                groups: dict[int, tuple[_StreamSlot, list[Chunk]]] = {}
                for c in chunks:
                    slot = self._slot(conn, c)
                    groups.setdefault(slot.stream_id, (slot, []))[1].append(c)
                for slot, cs in groups.values():
                    t = np.concatenate([c.t for c in cs])
                    v = np.concatenate([c.values for c in cs], axis=0)
                    tb, vb, code = encode_block(t, v)
                    sizes = np.array([len(c) for c in cs], dtype=SIZE_DTYPE).tobytes()
                    conn.execute(
                        """INSERT INTO blocks (stream_id, t_first, t_last, n, dtype, t, v, sizes)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                        (slot.stream_id, float(t[0]), float(t[-1]), int(t.shape[0]), code,
                         tb, vb, sizes),
                    )
                    n_samples += int(t.shape[0])
                    t_last = max(t_last, float(np.max(t)))
            if b.events:
                conn.executemany(
                    "INSERT INTO events (session_id, t, kind, text, data) VALUES (?, ?, ?, ?, ?)",
                    [(self.session_id, *e) for e in b.events],
                )
                t_last = max(t_last, max(e[0] for e in b.events))
            runs = self._write_states(conn, b.states)
            fin = b.finish
            duration = max(0.0, t_last - self.t0)
            if fin is None:
                conn.execute(
                    "UPDATE sessions SET t_last = ?, duration_s = ?, heartbeat = ? WHERE id = ?",
                    (t_last, duration, time.time(), self.session_id),
                )
            else:
                conn.execute(
                    """UPDATE sessions SET t_last = ?, duration_s = ?, heartbeat = ?,
                           finished = 1, complete = ?, summary = ?, pain_after = ?,
                           note_after = ?, ended_at = ? WHERE id = ?""",
                    (t_last, duration, time.time(), int(fin.complete),
                     dumps(finite(fin.summary)), fin.pain_after, fin.note_after,
                     now_iso(), self.session_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # Only a committed transaction makes the new open runs (and row ids) true.
        self._runs = runs
        self._t_last = t_last
        self.committed_samples += n_samples
        syncs = b.syncs
        self._pending = _Batch()
        for ev in syncs:
            ev.set()

    def _write_states(
        self, conn: sqlite3.Connection, items: list[tuple[str, FloatArray, npt.NDArray[Any]]]
    ) -> dict[str, _OpenRun]:
        """Extend the open runs with new samples and write them; returns the new open runs.

        Works on copies: when the transaction fails, the writer's open runs
        stay as last committed and the same state arrays are replayed.
        """
        runs = {k: _OpenRun(r.state, r.t_start, r.t_end, r.rowid, r.dirty)
                for k, r in self._runs.items()}
        closed: list[tuple[str, _OpenRun]] = []
        for stream, t, codes in items:
            for t_start, t_end, code in run_length_encode(t, codes):
                cur = runs.get(stream)
                if cur is not None and cur.state == code:
                    cur.t_end = max(cur.t_end, t_end)
                    cur.dirty = True
                    continue
                if cur is not None:
                    cur.t_end = t_start  # a run ends where the next one starts
                    cur.dirty = True
                    closed.append((stream, cur))
                runs[stream] = _OpenRun(code, t_start, t_end)
        for stream, r in [*closed, *runs.items()]:
            if not r.dirty:
                continue
            if r.rowid is None:
                cur_ = conn.execute(
                    """INSERT INTO states (session_id, stream, t_start, t_end, state)
                       VALUES (?, ?, ?, ?, ?)""",
                    (self.session_id, stream, r.t_start, r.t_end, r.state),
                )
                assert cur_.lastrowid is not None
                r.rowid = cur_.lastrowid
            else:
                conn.execute("UPDATE states SET t_end = ? WHERE id = ?", (r.t_end, r.rowid))
            r.dirty = False
        return runs

    def __repr__(self) -> str:
        return f"<SessionWriter session={self.session_id} path={self.path}>"

