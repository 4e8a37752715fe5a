"""Sessions in the store: records, the block codec, and the streaming writer.

A session is written *as it streams* by a :class:`SessionWriter`: its methods
only put items on a queue (they never wait for the disk), and a writer thread
commits whatever arrived at least every :data:`FLUSH_INTERVAL_S`, so a killed
process loses well under a second. A session whose writer never finished reads
back as incomplete ("interrupted") with everything committed so far.

Raw samples are stored per stream as blocks: one row per flush and stream,
holding the float64 timestamps and the values (float32 when every value is
exactly a float32 -- raw counts and the float32 that most sensors send --,
else float64) as little-endian bytes, plus the sizes of the chunks they came
in, so a replay delivers the very same chunks. Pelvic states are stored
run-length encoded.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from biofeedback.jsonable import finite, json_default
from biofeedback.paths import make_private_dirs
from biofeedback.store.errors import StoreError
from devices.errors import InputError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import PelvicState

__all__ = [
    "FLUSH_INTERVAL_S",
    "Block",
    "SessionEvent",
    "SessionInfo",
    "SessionMeta",
    "SessionWriter",
    "StateRun",
    "StreamStats",
    "decode_block",
    "encode_block",
    "run_length_encode",
]

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the writer's pid and heartbeat
    fcntl = None  # type: ignore[assignment]

FloatArray = npt.NDArray[np.float64]

#: The writer thread commits at least this often (seconds of wall time).
FLUSH_INTERVAL_S = 0.25

#: Session statuses as :attr:`SessionInfo.status` reports them.
STATUS_RECORDING = "recording"
STATUS_INTERRUPTED = "interrupted"
STATUS_FINISHED = "finished"
STATUS_DAMAGED = "damaged"

#: What ``sessions --json`` / ``show --json`` say in ``status`` (:attr:`SessionInfo.outcome`).
OUTCOMES = ("complete", "stopped", "interrupted", "recording", "damaged")

#: A writer whose heartbeat is older than this is not recording any more.
_HEARTBEAT_STALE_S = 10.0
#: An idle writer still commits a heartbeat this often.
_HEARTBEAT_EVERY_S = 2.0

_DTYPES: dict[str, np.dtype[Any]] = {"f4": np.dtype("<f4"), "f8": np.dtype("<f8")}
_T_DTYPE = np.dtype("<f8")
_SIZE_DTYPE = np.dtype("<u4")


def now_iso() -> str:
    """Wall-clock now, ISO 8601 UTC with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _pain(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 10:
        raise InputError(f"{what} must be a whole number from 0 to 10, not {value!r}")
    return int(value)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, default=json_default, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# --------------------------------------------------------------------------- records


@dataclass
class SessionMeta:
    """What is known about a session when it starts.

    Parameters
    ----------
    person : str or None
        Who trains (a name or code the user chose).
    protocol : str
        Protocol id (``quick``, ``standard``, ``long``, ``calibration``...).
    streams : sequence of StreamSpec
        The streams that will be recorded (names as in :attr:`Chunk.stream`).
        A chunk of a stream not listed is recorded too (kind ``other``).
    devices : list of dict
        One ``{"name", "address", "driver"}`` per device.
    t0 : float
        The run clock at the start of the session; every stored time is on
        this clock, exports show seconds from ``t0``.
    pacer : dict or None
        The pacer settings (inhale/hold/exhale seconds...).
    profile : str or None
        Reference to the calibration profile in use.
    virtual : bool
        Recorded from the virtual radio.
    pain_before : int or None
        Pain before the session, 0-10.
    note_before : str or None
        Free text before the session.
    position : str or None
        The position the session is done in (``lying``, ``sitting``,
        ``standing``; None: not said).
    started_at : str or None
        ISO 8601 start to store instead of now (a simulated programme's
        sessions, spread over its weeks).
    demo : bool
        Recorded by the demo: listed, but removed by ``data wipe --demo``
        (:meth:`Store.wipe_demo`).
    """

    person: str | None
    protocol: str
    streams: Sequence[StreamSpec]
    devices: list[dict[str, Any]]
    t0: float
    pacer: dict[str, Any] | None = None
    profile: str | None = None
    virtual: bool = False
    pain_before: int | None = None
    note_before: str | None = None
    position: str | None = None
    started_at: str | None = None
    demo: bool = False


@dataclass(frozen=True)
class StreamStats:
    """How much of a stream a session holds."""

    samples: int
    blocks: int
    t_first: float | None
    t_last: float | None

    def rate_hz(self) -> float | None:
        """Measured mean rate (None with fewer than two samples)."""
        if self.samples < 2 or self.t_first is None or self.t_last is None:
            return None
        span = self.t_last - self.t_first
        return (self.samples - 1) / span if span > 0 else None


@dataclass(frozen=True)
class SessionInfo:
    """A stored session's metadata and summary.

    ``status`` is ``"recording"`` while a live writer holds it,
    ``"interrupted"`` when the writer died before finishing (a crash: the data
    up to the last commit is kept), ``"finished"`` otherwise. ``complete`` is
    what the session engine said at the end (the protocol ran to its end).
    ``"damaged"`` when a stored field cannot be read (``damage`` says which);
    such a session can still be deleted. :attr:`outcome` combines the two
    for people and JSON.
    """

    id: int
    started_at: str
    t0: float
    duration_s: float
    person: str | None
    protocol: str
    pacer: dict[str, Any] | None
    profile: str | None
    devices: list[dict[str, Any]]
    virtual: bool
    complete: bool
    status: str
    summary: dict[str, Any] | None
    pain_before: int | None
    pain_after: int | None
    note_before: str | None
    note_after: str | None
    reps: int
    score: float | None
    streams: tuple[StreamSpec, ...] = ()
    damage: str | None = None
    position: str | None = None
    demo: bool = False

    @property
    def start(self) -> dt.datetime:
        """Start time (aware, UTC; the epoch when the stored one is damaged)."""
        try:
            return dt.datetime.fromisoformat(self.started_at)
        except (TypeError, ValueError):
            return dt.datetime.fromtimestamp(0, dt.UTC)

    @property
    def file_stem(self) -> str:
        """Default export name: ``session-<id>-<UTC start>`` (no personal data)."""
        return f"session-{self.id}-{self.start.strftime('%Y%m%d-%H%M%S')}"

    @property
    def outcome(self) -> str:
        """How the session ended, one of :data:`OUTCOMES`.

        ``complete``: the protocol ran to its end; ``stopped``: the recording
        ended normally before that (stop, ``--duration``, a link given up:
        ``summary["ended_by"]`` says which); ``interrupted``: the recording
        process died before finishing (kept up to its last commit);
        ``recording``: a live process is writing it; ``damaged``: a stored
        field cannot be read.
        """
        if self.status == STATUS_FINISHED:
            return "complete" if self.complete else "stopped"
        return self.status

    @property
    def ended_by(self) -> str | None:
        """Why a finished session ended, as the session engine said (None if unsaid)."""
        value = (self.summary or {}).get("ended_by")
        return value if isinstance(value, str) and value else None

    def to_json(self) -> dict[str, Any]:
        """The ``sessions --json`` record (DESIGN.md); ``status`` is :attr:`outcome`."""
        return {
            "id": self.id,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "person": self.person,
            "devices": self.devices,
            "reps": self.reps,
            "score": None if self.score is None else round(self.score, 1),
            "complete": self.complete,
            "status": self.outcome,
        }

    def to_detail_json(self) -> dict[str, Any]:
        """Everything known about the session (``show --json``, JSON export)."""
        d = self.to_json()
        d.update(
            {
                "damage": self.damage,
                "protocol": self.protocol,
                "pacer": self.pacer,
                "profile": self.profile,
                "virtual": self.virtual,
                "pain_before": self.pain_before,
                "pain_after": self.pain_after,
                "note_before": self.note_before,
                "note_after": self.note_after,
                "position": self.position,
                "demo": self.demo,
                "streams": [s.to_json() for s in self.streams],
                "summary": self.summary,
            }
        )
        return d


@dataclass(frozen=True)
class SessionEvent:
    """A stored event: a link event (kind ``link``), cue, rep, step, annotation...

    ``t`` is on the run clock; :meth:`to_json` gives seconds from the start.
    """

    t: float
    kind: str
    text: str
    data: dict[str, Any] | None = None

    def to_json(self, t0: float = 0.0) -> dict[str, Any]:
        return {"t_s": round(self.t - t0, 6), "kind": self.kind, "text": self.text,
                "data": self.data}

    def to_link_event(self) -> LinkEvent:
        """The :class:`LinkEvent` a ``link`` event was stored from."""
        if self.kind != "link":
            raise ValueError(f"not a link event: {self.kind!r}")
        d = self.data or {}
        value = d.get("value")
        return LinkEvent(
            kind=LinkKind(self.text),
            t=self.t,
            device=str(d.get("device", "")),
            detail=str(d.get("detail", "")),
            value=None if value is None else float(value),
        )


@dataclass(frozen=True)
class StateRun:
    """A run of one pelvic state on a stream, ``[t_start, t_end)`` on the run clock.

    ``t_end`` is the first sample of the next run (or the last sample of the
    stream for the run still open when the recording ended).
    """

    stream: str
    t_start: float
    t_end: float
    state: int

    @property
    def name(self) -> str:
        """``drop``, ``rest``, ``contraction``, ``strain`` or ``unknown``."""
        try:
            return PelvicState(self.state).name.lower()
        except ValueError:
            return f"state-{self.state}"

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    def to_json(self, t0: float = 0.0) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "t_s": round(self.t_start - t0, 6),
            "duration_s": round(self.duration, 6),
            "state": self.name,
        }


@dataclass(frozen=True, eq=False)
class Block:
    """One stored block of a stream: samples and the chunk sizes they arrived in."""

    t: FloatArray
    values: FloatArray
    sizes: tuple[int, ...]

    def chunks(self, stream: str, unit: str, channels: tuple[str, ...]) -> list[Chunk]:
        """The original chunks this block was written from."""
        out = []
        start = 0
        for n in self.sizes:
            out.append(
                Chunk(stream, self.t[start : start + n], self.values[start : start + n],
                      unit, channels)
            )
            start += n
        return out


# --------------------------------------------------------------------------- codec


def encode_block(t: FloatArray, values: FloatArray) -> tuple[bytes, bytes, str]:
    """Encode samples as ``(t bytes, value bytes, dtype)``.

    Values are stored as float32 when that is lossless (NaN included), else as
    float64; timestamps always as float64.
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    v32 = v.astype(_DTYPES["f4"])
    with np.errstate(over="ignore", invalid="ignore"):
        lossless = np.array_equal(v32.astype(np.float64), v, equal_nan=True)
    if lossless:
        vb, code = v32.tobytes(), "f4"
    else:
        vb, code = v.astype(_DTYPES["f8"], copy=False).tobytes(), "f8"
    return np.ascontiguousarray(t, dtype=_T_DTYPE).tobytes(), vb, code


def decode_block(
    t_bytes: bytes, v_bytes: bytes, dtype: str, n_channels: int
) -> tuple[FloatArray, FloatArray]:
    """Inverse of :func:`encode_block`."""
    t = np.frombuffer(t_bytes, dtype=_T_DTYPE).astype(np.float64)
    v = np.frombuffer(v_bytes, dtype=_DTYPES[dtype]).astype(np.float64)
    return t, v.reshape(t.shape[0], n_channels)


def run_length_encode(
    t: FloatArray, codes: npt.NDArray[Any]
) -> list[tuple[float, float, int]]:
    """Runs of equal codes as ``(t_start, t_end, code)``.

    ``t_end`` is the time of the first sample of the next run; the last run
    ends at the last sample.
    """
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(codes).astype(np.int64, copy=False)
    if t.shape != c.shape or t.ndim != 1:
        raise ValueError(f"t and codes must be 1-D of the same length, got {t.shape}, {c.shape}")
    if t.size == 0:
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(c)) + 1))
    ends_t = np.concatenate((t[starts[1:]], [t[-1]]))
    return [(float(t[s]), float(e), int(c[s])) for s, e in zip(starts, ends_t, strict=True)]


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
        pain = _pain(pain_after, "pain after")
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
                js = None if data is None else _dumps(finite(data))
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
                (self.session_id, name, str(StreamKind.OTHER), _dumps(list(channels)), nch,
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
                    sizes = np.array([len(c) for c in cs], dtype=_SIZE_DTYPE).tobytes()
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
                     _dumps(finite(fin.summary)), fin.pain_after, fin.note_after,
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


def lock_path(store: Path, session_id: int) -> Path:
    """The lock file a session's recording process holds while it records."""
    return Path(f"{store}.locks") / f"session-{session_id}.lock"


class RecordingLock:
    """An OS lock (``flock``) held by the process that records a session.

    The operating system releases it when the process dies (even by kill -9)
    and keeps it while the process is suspended (Ctrl-Z, SIGSTOP), which a
    heartbeat's age cannot tell apart.

    Parameters
    ----------
    path : Path
        The lock file (created owner-only; removed on :meth:`release`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        if fcntl is None:
            return
        make_private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove the file, then let go of the lock (idempotent)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def recording_lock_held(path: Path) -> bool | None:
    """True while a live process holds ``path``; None when this system cannot tell."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also lets go of our shared lock
    return False


def _writer_pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def session_status(finished: bool, writer_pid: int | None, heartbeat: float | None,
                   *, lock_held: bool | None = None) -> str:
    """``finished``, ``recording`` (a live writer), or ``interrupted`` (it died).

    ``lock_held`` (from :func:`recording_lock_held`) decides when known; the
    writer's pid and heartbeat are the fallback where OS locks are missing.
    """
    if finished:
        return STATUS_FINISHED
    if lock_held is not None:
        return STATUS_RECORDING if lock_held else STATUS_INTERRUPTED
    fresh = heartbeat is not None and time.time() - heartbeat < _HEARTBEAT_STALE_S
    if fresh and _writer_pid_alive(writer_pid):
        return STATUS_RECORDING
    return STATUS_INTERRUPTED


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
