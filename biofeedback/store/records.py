"""Session and device records as the store reads and writes them.

Plain frozen dataclasses (plus :class:`SessionMeta`, filled by the caller at
the start of a session): what the writer is given, what queries return, and
the statuses a session can be in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.errors import InputError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamSpec
from devices.vocab import PelvicState

__all__ = [
    "OUTCOMES",
    "STATUS_DAMAGED",
    "STATUS_FINISHED",
    "STATUS_INTERRUPTED",
    "STATUS_RECORDING",
    "Block",
    "DemoMarks",
    "FloatArray",
    "KnownDevice",
    "SessionEvent",
    "SessionInfo",
    "SessionMeta",
    "StateRun",
    "StreamStats",
    "now_iso",
    "valid_pain",
]

FloatArray = npt.NDArray[np.float64]

#: Session statuses as :attr:`SessionInfo.status` reports them.
STATUS_RECORDING = "recording"
STATUS_INTERRUPTED = "interrupted"
STATUS_FINISHED = "finished"
STATUS_DAMAGED = "damaged"

#: What ``sessions --json`` / ``show --json`` say in ``status`` (:attr:`SessionInfo.outcome`).
OUTCOMES = ("complete", "stopped", "interrupted", "recording", "damaged")


def now_iso() -> str:
    """Wall-clock now, ISO 8601 UTC with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def valid_pain(value: int | None, what: str) -> int | None:
    """A pain rating 0-10 (or None); :class:`InputError` names ``what`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 10:
        raise InputError(f"{what} must be a whole number from 0 to 10, not {value!r}")
    return int(value)


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

