"""The session engine: settle, baseline, reverse-Kegel reps against the pacer, post-baseline.

A *protocol* is a list of steps (data, see :data:`PROTOCOLS`). The engine walks
them on the run's clock while it consumes a source's chunks and link events:
every chunk goes to the recording, the live model and the signal pipeline; the
pipeline's states and reps come back as cues and as the session summary.

Protocols (durations with the default pacer, inhale 4 s / exhale 6 s, one
breath cycle = 10 s; a rep step lasts its breath cycles plus one closing
inhale, the breath that ends the last cycle):

=========  =============================================================  ========
protocol   steps                                                          total
=========  =============================================================  ========
quick      settle 20 s, baseline 30 s, 5 reps (54 s), post 30 s           ~2.2 min
standard   settle 30 s, baseline 60 s, 10 reps (104 s), post 60 s         ~4.2 min
long       settle 30 s, baseline 60 s, 10 reps, rest 60 s, 10 reps,       ~7 min
           post 60 s
=========  =============================================================  ========

A session shorter than its protocol (``duration``) is *fitted*: the reps keep
at most 60 % of the time (at least one rep), the settle/baseline/rest steps
share the rest in their proportions, so a short session still has a baseline,
reps and a post-baseline. Below one rep's worth of time the session is cut at
``duration`` instead (and marked incomplete).

Safety: a pain rating of :data:`PAIN_STOP` or more before the session refuses
it, during or after it ends it, always with "stop and rest" advice. A pressure
rise is never rewarded: strain is cued as strain, praise needs a rep the
pipeline scored good (a drop, no strain, no contraction).

Reps: each rep step starts a set in the pipeline with the step's pacer
window; the pipeline's rep policy (:mod:`biofeedback.signal.reps`) decides
which cycles are reps — detected breath cycles that answer the pacer with a
breath sensor, the pacer's own cycles with the probe alone — and the engine
records, cues and sums up the reps it hands back. ``rep_clock`` in the summary
says which clock counted them.

The engine's :meth:`SessionEngine.intent` is what the virtual person follows
(``--virtual``): rest with free breathing in settle and baselines, the pacer
with a drop on each inhale during reps.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.reps import RepClock, summarise_reps
from biofeedback.signal.types import (
    PipelineAPI,
    PipelineUpdate,
    RepResult,
)
from devices.clock import Clock
from devices.errors import DeviceError, InputError
from devices.intent import Intent, PelvicAction
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamResolver
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "CUES",
    "PAIN_STOP",
    "PROTOCOLS",
    "Cue",
    "CueKind",
    "LiveSink",
    "PainRefusedError",
    "RecordingSink",
    "Segment",
    "SessionEngine",
    "SessionProtocol",
    "SessionSummary",
    "Step",
    "StepKind",
    "check_pain",
    "pacer_from_profile",
    "pain_advice",
]

log = logging.getLogger(__name__)

#: A pain or discomfort rating (0-10) at or above this ends or refuses the exercise.
PAIN_STOP = 5


#: Least time between two strain (or contraction) cues.
NAG_INTERVAL_S = 4.0

#: Time the reps of a fitted (shortened) session may take at most.
FIT_REPS_FRACTION = 0.6


class StepKind(enum.StrEnum):
    """What a protocol step asks for."""

    SETTLE = "settle"
    BASELINE = "baseline"
    REPS = "reps"
    REST = "rest"  # between sets
    POST = "post"  # post-baseline
    PAUSE = "pause"  # asked for by the person, not planned


class CueKind(enum.StrEnum):
    """Why a cue was given."""

    STEP = "step"
    BREATH = "breath"
    STRAIN = "strain"
    CONTRACTION = "contraction"
    PRAISE = "praise"
    SAFETY = "safety"
    INFO = "info"


#: The cue texts (the live view and the recording show them verbatim).
CUES: dict[str, str] = {
    "inhale": "breathe in, let the floor drop",
    "exhale": "breathe out, keep it soft",
    "hold": "hold softly, no pushing",
    "closing": "breathe in, and rest",
    "strain": "strain — soften, no pushing",
    "contraction": "let go — no squeezing",
    "well_done": "well done",
    "safety": "stop if it hurts",
    "settle": "settle in: lie or sit comfortably, breathe into your belly",
    "baseline": "baseline: rest and breathe normally",
    "reps": "reps: follow the pacer, {n} breaths",
    "rest": "rest between sets: breathe normally",
    "post": "post-baseline: rest and breathe normally",
    "pause": "paused",
    "resume": "resumed",
    "done": "session done",
    "stopped": "session stopped",
}


@dataclass(frozen=True)
class Step:
    """One protocol step.

    Parameters
    ----------
    kind : StepKind
        What the step asks for.
    duration_s : float
        Length of a timed step. A rep step lasts its breath cycles plus the
        closing inhale unless ``duration_s`` is positive (a replay gives the
        recorded length).
    reps : int
        Breath cycles of a rep step.
    set_index : int
        1-based set number of a rep step (0 otherwise).
    """

    kind: StepKind
    duration_s: float = 0.0
    reps: int = 0
    set_index: int = 0

    @property
    def label(self) -> str:
        if self.kind is StepKind.REPS:
            return f"reps (set {self.set_index})" if self.set_index > 1 else "reps"
        return str(self.kind)

    def length(self, pacer: Pacer) -> float:
        """Seconds this step lasts with ``pacer``."""
        if self.kind is StepKind.REPS and self.duration_s <= 0:
            return self.reps * pacer.period + closing_s(pacer)
        return self.duration_s

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "duration_s": self.duration_s,
            "reps": self.reps,
            "set": self.set_index,
        }


def closing_s(pacer: Pacer) -> float:
    """The closing inhale after the last rep: it ends the last breath cycle."""
    return max(pacer.inhale_s + pacer.hold_s, 3.0)


@dataclass(frozen=True)
class SessionProtocol:
    """A named list of steps.

    Parameters
    ----------
    name : str
        ``quick``, ``standard``, ``long`` (or a test's own).
    steps : tuple of Step
        In order.
    """

    name: str
    steps: tuple[Step, ...]

    @property
    def reps(self) -> int:
        """Reps over all sets."""
        return sum(s.reps for s in self.steps if s.kind is StepKind.REPS)

    def length(self, pacer: Pacer) -> float:
        """Total seconds with ``pacer``."""
        return sum(s.length(pacer) for s in self.steps)

    def fit(self, duration: float, pacer: Pacer) -> tuple[tuple[Step, ...], bool]:
        """The steps shortened to fit ``duration`` seconds.

        Returns
        -------
        steps : tuple of Step
            The protocol's own steps when they fit, else shortened ones.
        fits : bool
            False when not even one rep fits: the caller cuts at ``duration``.
        """
        if self.length(pacer) <= duration + 1e-9:
            return self.steps, True
        rep_steps = [s for s in self.steps if s.kind is StepKind.REPS]
        close = closing_s(pacer)
        if not rep_steps or pacer.period + close > duration:
            return self.steps, False
        # Fill the sets in order (a short session is one set, not two halves).
        budget = FIT_REPS_FRACTION * duration
        per_set: list[int] = []
        for s in rep_steps:
            n = max(0, min(s.reps, math.floor((budget - close) / pacer.period + 1e-9)))
            per_set.append(n)
            budget -= n * pacer.period + (close if n else 0.0)
        if sum(per_set) == 0:
            per_set[0] = 1
        rep_time = sum(per_set) * pacer.period + close * sum(1 for n in per_set if n > 0)
        # Drop sets left without reps, with the rest step before them.
        kept: list[Step] = []
        k = 0
        for s in self.steps:
            if s.kind is StepKind.REPS:
                n = per_set[k]
                k += 1
                if n > 0:
                    kept.append(replace(s, reps=n))
                elif kept and kept[-1].kind is StepKind.REST:
                    kept.pop()
            else:
                kept.append(s)
        planned = sum(s.duration_s for s in kept if s.kind is not StepKind.REPS)
        scale = max(duration - rep_time, 0.0) / planned if planned > 0 else 0.0
        out = [
            s if s.kind is StepKind.REPS else replace(s, duration_s=round(s.duration_s * scale, 3))
            for s in kept
        ]
        return tuple(out), True


def _sets(n_sets: int, reps: int, settle: float, baseline: float, rest: float, post: float) -> (
    tuple[Step, ...]
):
    steps: list[Step] = [Step(StepKind.SETTLE, settle), Step(StepKind.BASELINE, baseline)]
    for k in range(1, n_sets + 1):
        if k > 1:
            steps.append(Step(StepKind.REST, rest))
        steps.append(Step(StepKind.REPS, reps=reps, set_index=k))
    steps.append(Step(StepKind.POST, post))
    return tuple(steps)


#: The built-in protocols (see the module docstring for their durations).
PROTOCOLS: dict[str, SessionProtocol] = {
    "quick": SessionProtocol("quick", _sets(1, 5, 20.0, 30.0, 0.0, 30.0)),
    "standard": SessionProtocol("standard", _sets(1, 10, 30.0, 60.0, 0.0, 60.0)),
    "long": SessionProtocol("long", _sets(2, 10, 30.0, 60.0, 60.0, 60.0)),
}


def pacer_from_profile(profile: Mapping[str, Any]) -> Pacer | None:
    """A calibration profile's suggested pacer, if it has one.

    Looks for ``suggested_pacer`` (or ``pacer``) with ``inhale_s``, ``exhale_s``
    and optionally ``hold_s``; returns None when absent or not valid.
    """
    spec = profile.get("suggested_pacer") or profile.get("pacer")
    if not isinstance(spec, Mapping):
        return None
    try:
        return Pacer(
            inhale_s=float(spec["inhale_s"]),
            hold_s=float(spec.get("hold_s", 0.0) or 0.0),
            exhale_s=float(spec["exhale_s"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- pain


class PainRefusedError(InputError):
    """Pain before the session at or above :data:`PAIN_STOP`: the exercise is refused (exit 1)."""


def check_pain(value: float | None, what: str = "pain") -> int | None:
    """Validate a 0-10 rating.

    Raises
    ------
    InputError
        When it is not a whole number from 0 to 10.
    """
    if value is None:
        return None
    if not float(value).is_integer() or not 0 <= value <= 10:
        raise InputError(f"{what} must be a whole number from 0 to 10, {value!r} is invalid")
    return int(value)


def pain_advice(level: int, when: str) -> str:
    """The "stop and rest" advice for a pain rating at or above the threshold."""
    return (
        f"Stop and rest: pain {level}/10 {when} the session. Do not exercise through pain; "
        "if it persists or keeps coming back, see a pelvic health physiotherapist or a doctor."
    )


# ----------------------------------------------------------------------------- sinks


class RecordingSink(Protocol):
    """What the engine records through (a store ``SessionWriter``)."""

    def chunk(self, chunk: Chunk) -> Any: ...

    def link_event(self, ev: LinkEvent) -> Any: ...

    def event(
        self, t: float, kind: str, text: str = "", data: dict[str, Any] | None = None
    ) -> Any: ...

    def states(self, stream: str, t: Any, state: Any) -> Any: ...

    def finish(
        self,
        *,
        summary: dict[str, Any],
        complete: bool,
        pain_after: int | None = None,
        note_after: str | None = None,
    ) -> Any:
        """The session's summary and after-session ratings; the recording ends."""
        ...


class LiveSink(Protocol):
    """What the engine feeds a live view's model with."""

    def on_chunk(self, chunk: Chunk) -> Any: ...

    def on_update(self, update: PipelineUpdate) -> Any: ...

    def on_link(self, ev: LinkEvent) -> Any: ...

    def on_cue(self, text: str, t: float) -> Any: ...

    def set_step(self, name: str, t_start: float, t_end: float | None) -> Any: ...

    def set_pacer(self, pacer: Pacer | None) -> Any: ...

    def set_running(self, state: Any) -> Any: ...


@dataclass(frozen=True)
class Cue:
    """A live cue: what to tell the person, and when."""

    t: float
    kind: CueKind
    text: str


#: Listener of everything the engine marks: ``(t, kind, text)`` (LSL markers, printing).
MarkerFn = Callable[[float, str, str], None]


# ----------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Segment:
    """One step as it ran (or is planned to run) on the clock.

    Parameters
    ----------
    step : Step
        The step (a pause is ``Step(StepKind.PAUSE)``).
    index : int
        Position in the plan (pauses share the index of the step they interrupt).
    t_start, t_end : float
        Clock times (``t_end`` is inf for a pause until it ends).
    pacer : Pacer or None
        For rep steps: the pacer, its first inhale at ``t_start``.
    """

    step: Step
    index: int
    t_start: float
    t_end: float
    pacer: Pacer | None = None

    @property
    def reps_end(self) -> float:
        """End of the rep cycles (before the closing inhale)."""
        if self.pacer is None:
            return self.t_end
        return min(self.t_end, self.t_start + self.step.reps * self.pacer.period)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "step": str(self.step.kind),
            "label": self.step.label,
            "index": self.index,
            "t_start": self.t_start,
            "t_end": self.t_end if math.isfinite(self.t_end) else None,
            "reps": self.step.reps,
            "set": self.step.set_index,
        }
        if self.pacer is not None:
            d["pacer"] = {
                "inhale_s": self.pacer.inhale_s,
                "hold_s": self.pacer.hold_s,
                "exhale_s": self.pacer.exhale_s,
                "t0": self.pacer.t0,
            }
        return d


# ----------------------------------------------------------------------------- summary


def _num(x: float | None, nd: int = 3) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


@dataclass
class SessionSummary:
    """What a session achieved (stored with the session, printed by ``live --json``).

    ``complete`` is False when the session was stopped, ended by pain, a lost
    link or the end of its source before the last step.
    """

    protocol: str
    complete: bool
    ended_by: str
    duration_s: float
    steps: list[dict[str, Any]]
    fitted: bool
    reps: int
    reps_target: int
    good_reps: int
    mean_score: float | None
    best_score: float | None
    drop_depth: float | None
    drop_unit: str | None
    release_kept: float | None
    drop_on_inhale_pct: float | None
    strain_count: int
    strain_reps: int
    contracted_reps: int
    breath_rate_bpm: float | None
    target_rate_bpm: float
    rep_clock: str | None
    pacer: dict[str, float]
    link_gaps: int
    gap_s: float
    pain_before: int | None = None
    pain_after: int | None = None
    pain_during: int | None = None
    note_before: str | None = None
    note_after: str | None = None
    advice: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    rep_scores: list[float | None] = field(default_factory=list)
    sets: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "complete": self.complete,
            "ended_by": self.ended_by,
            "duration_s": _num(self.duration_s, 2),
            "steps": self.steps,
            "fitted": self.fitted,
            "reps": self.reps,
            "reps_target": self.reps_target,
            "good_reps": self.good_reps,
            "mean_score": _num(self.mean_score, 1),
            "best_score": _num(self.best_score, 1),
            "drop_depth": _num(self.drop_depth),
            "drop_unit": self.drop_unit,
            "release_kept": _num(self.release_kept),
            "drop_on_inhale_pct": _num(self.drop_on_inhale_pct, 1),
            "strain_count": self.strain_count,
            "strain_reps": self.strain_reps,
            "contracted_reps": self.contracted_reps,
            "breath_rate_bpm": _num(self.breath_rate_bpm, 2),
            "target_rate_bpm": _num(self.target_rate_bpm, 2),
            "rep_clock": self.rep_clock,
            "pacer": dict(self.pacer),
            "link_gaps": self.link_gaps,
            "gap_s": _num(self.gap_s, 2),
            "pain_before": self.pain_before,
            "pain_during": self.pain_during,
            "pain_after": self.pain_after,
            "note_before": self.note_before,
            "note_after": self.note_after,
            "advice": list(self.advice),
            "reasons": dict(self.reasons),
            "rep_scores": [_num(s, 1) for s in self.rep_scores],
            "sets": list(self.sets),
        }


# ----------------------------------------------------------------------------- engine


class SessionEngine:
    """Runs one protocol against a source of chunks and link events.

    Parameters
    ----------
    clock : Clock
        The run's clock (the steps and the pacer run on it).
    pipeline : PipelineAPI
        The signal pipeline for the session's streams.
    protocol : SessionProtocol or str
        A protocol or the name of a built-in one.
    pacer : Pacer, optional
        Breath timing (its ``t0`` is ignored: each rep step starts its own
        pacer); default inhale 4 s, exhale 6 s.
    writer : RecordingSink, optional
        Where the session is recorded (a store ``SessionWriter``).
    model : LiveSink, optional
        A live view's model.
    duration : float, optional
        Session length in seconds; a longer protocol is fitted (see module doc).
    pain_before : int, optional
        0-10; at or above :data:`PAIN_STOP` the engine refuses to start.
    note_before : str, optional
        A note the person wrote before the session.
    on_marker : callable, optional
        Called with ``(t, kind, text)`` for every step, cue, state change, rep,
        pause and pain report.
    effort : float
        The virtual person's drop effort (``intent``).
    compliance : float
        The virtual person's compliance (``intent``).
    rep_clock : {"auto", "breath", "pacer"}
        What a rep is: a detected breath cycle, or a paced cycle; ``auto``
        takes the pacer when there is no breath sensor (see module notes).

    Raises
    ------
    PainRefusedError
        When ``pain_before`` is at or above :data:`PAIN_STOP`.
    """

    def __init__(
        self,
        clock: Clock,
        pipeline: PipelineAPI,
        protocol: SessionProtocol | str = "quick",
        *,
        pacer: Pacer | None = None,
        writer: RecordingSink | None = None,
        model: LiveSink | None = None,
        duration: float | None = None,
        pain_before: int | None = None,
        note_before: str | None = None,
        on_marker: MarkerFn | None = None,
        effort: float = 0.8,
        compliance: float = 1.0,
        rep_clock: RepClock = "auto",
    ) -> None:
        if rep_clock not in ("auto", "breath", "pacer"):
            raise ValueError(f"rep_clock must be auto, breath or pacer, not {rep_clock!r}")
        if isinstance(protocol, str):
            try:
                protocol = PROTOCOLS[protocol]
            except KeyError:
                raise InputError(
                    f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})"
                ) from None
        self.pain_before = check_pain(pain_before, "pain before the session")
        if self.pain_before is not None and self.pain_before >= PAIN_STOP:
            raise PainRefusedError(pain_advice(self.pain_before, "before"))
        if duration is not None and not duration > 0:
            raise InputError(f"duration must be positive, {duration!r} is invalid")
        self.clock = clock
        self.pipeline = pipeline
        self.protocol = protocol
        self.pacer = pacer or Pacer()
        self.writer = writer
        self.model = model
        self.duration = duration
        self.note_before = note_before
        self.effort = effort
        self.compliance = compliance
        self.rep_clock_mode = rep_clock
        self.rep_clock: str | None = None  # what the last rep step used
        self._markers: list[MarkerFn] = [on_marker] if on_marker is not None else []
        if duration is not None:
            steps, fits = protocol.fit(duration, self.pacer)
        else:
            steps, fits = protocol.steps, True
        self.steps: tuple[Step, ...] = steps
        self.fitted = steps != protocol.steps
        self._cut_at_duration = not fits

        # Timeline state.
        self.t0: float | None = None
        self._queue: list[tuple[int, Step]] = list(enumerate(self.steps))
        self.segments: list[Segment] = []  # finished segments, in order
        self.current: Segment | None = None
        self._pacer_next: float | None = None  # next pacer phase change to cue
        self._paused_step: tuple[int, Step, float] | None = None  # (index, step, remaining)
        self._pause_total = 0.0
        self._finished = False
        self._started = False
        self.complete = False
        self.ended_by = ""
        self.error: BaseException | None = None
        self._wake = asyncio.Event()

        # Figures.
        self.reps: list[RepResult] = []
        self._set_reps: list[RepResult] = []
        self.set_summaries: list[dict[str, Any]] = []
        self.cues: list[Cue] = []
        self.strain_count = 0
        self._last_nag: dict[str, float] = {}
        self._inhale_n = 0
        self._inhale_drop_n = 0
        self._rep_windows: list[Segment] = []
        self.link_gaps = 0
        self._lost_at: dict[str, float] = {}
        self.gap_s = 0.0
        self.pain_during: int | None = None
        self.pain_after: int | None = None
        self.note_after: str | None = None
        self.advice: list[str] = []
        self.drop_unit: str | None = None
        self._last_rate: float | None = None
        self._t_last = 0.0
        self._t_end = 0.0
        self._zones: tuple[str, float | None, tuple[float, float, float], bool] | None = None

    # ------------------------------------------------------------------ public

    def add_marker_listener(self, fn: MarkerFn) -> None:
        """Also call ``fn(t, kind, text)`` for everything the engine marks."""
        self._markers.append(fn)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def paused(self) -> bool:
        return self.current is not None and self.current.step.kind is StepKind.PAUSE

    def intent(self, t: float) -> Intent:
        """What the (virtual) person should be doing at ``t``.

        A function of ``t`` and the plan only (the body model evaluates it a
        little ahead of time): free breathing at rest outside rep steps, the
        pacer with a drop on each inhale during reps, rest on the closing inhale.
        """
        seg = self._segment_at(t)
        if seg is None or seg.step.kind is not StepKind.REPS or seg.pacer is None:
            return Intent(compliance=self.compliance)
        target = seg.pacer.target(t)
        if t >= seg.reps_end:
            return Intent(breath=target, pelvic=PelvicAction.REST, compliance=self.compliance)
        return Intent(
            breath=target,
            pelvic=PelvicAction.DROP,
            effort=self.effort,
            compliance=self.compliance,
            drop_on_inhale=True,
        )

    def pause(self) -> None:
        """Pause the steps (the recording goes on); :meth:`resume` continues."""
        if self._finished or not self._started or self.paused or self.current is None:
            return
        now = self.clock.now()
        seg = self.current
        remaining = max(seg.t_end - now, 0.0)
        step = seg.step
        if step.kind is StepKind.REPS:
            done = len(self._set_reps)
            step = replace(step, reps=max(step.reps - done, 0))
        self._leave(replace(seg, t_end=now), now)
        self._paused_step = (seg.index, step, remaining)
        self._mark(now, "pause", CUES["pause"])
        self._enter(Segment(Step(StepKind.PAUSE), seg.index, now, math.inf), now)
        self._wake.set()

    def resume(self) -> None:
        """Continue after :meth:`pause` (a rep step restarts its pacer for the reps left)."""
        if not self.paused or self.current is None:
            return
        now = self.clock.now()
        self._pause_total += now - self.current.t_start
        self._leave(replace(self.current, t_end=now), now)
        self._mark(now, "resume", CUES["resume"])
        if self._paused_step is not None:
            index, step, remaining = self._paused_step
            self._paused_step = None
            if step.kind is StepKind.REPS:
                if step.reps > 0:
                    self._queue.insert(0, (index, step))
            elif remaining > 0.5:
                self._queue.insert(0, (index, replace(step, duration_s=remaining)))
        self._next_segment(now)
        self._wake.set()

    def stop(self, reason: str = "stopped") -> None:
        """End the session now; what was recorded is kept, the summary says incomplete."""
        if self._finished:
            return
        now = self.clock.now()
        self._end(now, complete=False, ended_by=reason)
        self._wake.set()

    def report_pain(self, level: int, note: str | None = None) -> bool:
        """The person reports pain during the session; returns True when it ends it."""
        lvl = check_pain(level, "pain")
        assert lvl is not None
        now = self.clock.now()
        self.pain_during = max(lvl, self.pain_during or 0)
        self._event(now, "pain", f"{lvl}/10", {"level": lvl, "when": "during", "note": note})
        if lvl >= PAIN_STOP and not self._finished:
            self._add_advice(pain_advice(lvl, "during"))
            self.stop("pain")
            return True
        return False

    async def run(
        self, items: AsyncIterator[Chunk | LinkEvent], *, start_at: float | None = None
    ) -> SessionSummary:
        """Consume ``items`` and walk the steps until the end, a stop, or the source ends.

        A source that fails (link given up) ends the session too: the summary
        says so, and the error is kept in :attr:`error` for the caller.

        Parameters
        ----------
        items : async iterator of Chunk or LinkEvent
            The session's source (several merged sources, a replay...).
        start_at : float, optional
            Clock time the first step starts (default: now); a replay starts
            the steps where the recording had them.
        """
        now = self.clock.now() if start_at is None else start_at
        self.t0 = now
        self._started = True
        self._mark(now, "session", f"{self.protocol.name} session")
        self._event(
            now,
            "plan",
            self.protocol.name,
            {"steps": [s.to_json() for s in self.steps], "fitted": self.fitted},
        )
        self._cue(now, CueKind.SAFETY, CUES["safety"])
        self._next_segment(now)
        consumer = asyncio.create_task(self._consume(items), name="session consumer")
        try:
            await self._schedule(consumer)
        finally:
            if not consumer.done():
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
        return self.summary()

    def finish(self, *, pain_after: int | None = None, note_after: str | None = None) -> (
        SessionSummary
    ):
        """Add the after-session ratings and close the recording (``writer.finish``)."""
        self.pain_after = check_pain(pain_after, "pain after the session")
        self.note_after = note_after
        if self.pain_after is not None:
            t = self._t_end if self._finished else self.clock.now()
            self._event(t, "pain", f"{self.pain_after}/10", {"level": self.pain_after,
                                                               "when": "after"})
            if self.pain_after >= PAIN_STOP:
                self._add_advice(pain_advice(self.pain_after, "after"))
        summary = self.summary()
        if self.writer is not None:
            self.writer.finish(
                summary=summary.to_json(),
                complete=summary.complete,
                pain_after=self.pain_after,
                note_after=self.note_after,
            )
        return summary

    def summary(self) -> SessionSummary:
        """The summary so far (final once :meth:`run` returned)."""
        reps = summarise_reps(self.reps)
        rate = self._last_rate
        if self.rep_clock == "breath" and reps.mean_cycle_s:
            # The detected cycles of the reps: the rate breathed against the pacer.
            rate = 60.0 / reps.mean_cycle_s
        segs = [*self.segments, *([self.current] if self.current is not None else [])]
        t0 = self.t0 if self.t0 is not None else 0.0
        end = self._t_end if self._finished else self.clock.now()
        gap_s = self.gap_s + sum(max(end - t, 0.0) for t in self._lost_at.values())
        pct = 100.0 * self._inhale_drop_n / self._inhale_n if self._inhale_n else None
        return SessionSummary(
            protocol=self.protocol.name,
            complete=self.complete,
            ended_by=self.ended_by or "running",
            duration_s=max(end - t0, 0.0) if self._started else 0.0,
            steps=[_seg_json(s, t0) for s in segs],
            fitted=self.fitted,
            reps=reps.reps,
            reps_target=sum(s.reps for s in self.steps if s.kind is StepKind.REPS),
            good_reps=reps.good,
            mean_score=reps.mean_score,
            best_score=reps.best_score,
            drop_depth=reps.mean_drop,
            drop_unit=self.drop_unit,
            release_kept=reps.mean_release_kept,
            drop_on_inhale_pct=pct,
            strain_count=self.strain_count,
            strain_reps=reps.strain,
            contracted_reps=reps.contracted,
            breath_rate_bpm=rate,
            target_rate_bpm=self.pacer.rate_bpm,
            rep_clock=self.rep_clock,
            pacer={
                "inhale_s": self.pacer.inhale_s,
                "hold_s": self.pacer.hold_s,
                "exhale_s": self.pacer.exhale_s,
            },
            link_gaps=self.link_gaps,
            gap_s=gap_s,
            pain_before=self.pain_before,
            pain_during=self.pain_during,
            pain_after=self.pain_after,
            note_before=self.note_before,
            note_after=self.note_after,
            advice=list(self.advice),
            reasons=dict(reps.reasons),
            rep_scores=[r.score for r in self.reps],
            sets=list(self.set_summaries),
        )

    def status(self) -> dict[str, Any]:
        """A compact snapshot for a status line."""
        now = self.clock.now()
        seg = self.current
        st = self.pipeline.status
        out: dict[str, Any] = {
            "t": now - (self.t0 or now),
            "step": seg.step.label if seg else ("done" if self._finished else "-"),
            "left_s": (seg.t_end - now) if seg and math.isfinite(seg.t_end) else None,
            "phase": None,
            "reps": len(self.reps),
            "last_score": self.reps[-1].score if self.reps else None,
            "state": st.pelvic_state.name.lower(),
            # The probe's own ripple is no breath rate worth showing.
            "rate_bpm": st.rate_bpm if self._breath_kind() not in (None, StreamKind.PRESSURE)
            else None,
        }
        if seg is not None and seg.pacer is not None:
            out["phase"] = seg.pacer.target(now).phase.name.lower()
        return out

    # ------------------------------------------------------------------ scheduling

    def _segment_at(self, t: float) -> Segment | None:
        cur = self.current
        if cur is None:
            if self._finished or not self._queue:
                return None
            # Not started: the plan from the time it will start is unknown; rest.
            return None
        if t < cur.t_end:
            return cur if t >= cur.t_start else None
        start = cur.t_end
        for index, step in self._queue:
            end = start + step.length(self.pacer)
            if t < end:
                pacer = replace(self.pacer, t0=start) if step.kind is StepKind.REPS else None
                return Segment(step, index, start, end, pacer)
            start = end
        return None

    async def _schedule(self, consumer: asyncio.Task[None]) -> None:
        while not self._finished:
            due = self._next_due()
            timer = (
                asyncio.ensure_future(self.clock.sleep_until(due))
                if due is not None and math.isfinite(due)
                else None
            )
            self._wake.clear()
            wake = asyncio.ensure_future(self._wake.wait())
            waits: set[asyncio.Future[Any]] = {consumer, wake}
            if timer is not None:
                waits.add(timer)
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                if timer is not None:
                    timer.cancel()
            now = self.clock.now()
            if consumer in done:
                exc = consumer.exception()
                self._advance(now)
                if not self._finished:
                    if exc is not None:
                        self.error = exc
                        reason = "link" if isinstance(exc, DeviceError) else "error"
                        self._event(now, "error", str(exc) or type(exc).__name__)
                        self._end(now, complete=False, ended_by=reason)
                    else:
                        self._end(now, complete=False, ended_by="source ended")
                return
            self._advance(now)

    def _next_due(self) -> float | None:
        cur = self.current
        if cur is None:
            return None
        due = cur.t_end
        if self._pacer_next is not None:
            due = min(due, self._pacer_next)
        if self._cut_at_duration and self.duration is not None and self.t0 is not None:
            due = min(due, self.t0 + self.duration + self._pause_total)
        return due

    def _advance(self, now: float) -> None:
        """Fire every cue and step change due by ``now``, in time order."""
        while not self._finished and self.current is not None:
            if (
                self._cut_at_duration
                and self.duration is not None
                and self.t0 is not None
                and now >= self.t0 + self.duration + self._pause_total
                and not self.paused
            ):
                self._end(self.t0 + self.duration + self._pause_total, complete=False,
                          ended_by="duration")
                return
            seg = self.current
            if self._pacer_next is not None and self._pacer_next <= min(now, seg.t_end):
                t = self._pacer_next
                if t < seg.t_end:
                    self._pacer_cue(seg, t)
                self._pacer_next = self._next_phase_change(seg, t)
                continue
            if now >= seg.t_end:
                self._leave(seg, seg.t_end)
                self._next_segment(seg.t_end)
                continue
            return

    def _next_segment(self, t: float) -> None:
        if not self._queue:
            self._end(t, complete=True, ended_by="protocol end")
            return
        index, step = self._queue.pop(0)
        end = t + step.length(self.pacer)
        pacer = replace(self.pacer, t0=t) if step.kind is StepKind.REPS else None
        self._enter(Segment(step, index, t, end, pacer), t)

    def _enter(self, seg: Segment, t: float) -> None:
        self.current = seg
        self._pacer_next = None
        step = seg.step
        self._event(t, "step", step.label, seg.to_json())
        if self.model is not None:
            end = seg.t_end if math.isfinite(seg.t_end) else None
            self.model.set_step(step.label, seg.t_start, end)
            self.model.set_running("paused" if step.kind is StepKind.PAUSE else "running")
        if step.kind is StepKind.REPS and seg.pacer is not None:
            self._set_reps = []
            # The pipeline's rep policy decides which cycles are reps of this set.
            self.rep_clock = self.pipeline.start_reps(
                step.reps, pacer=seg.pacer, t_start=seg.t_start, clock=self.rep_clock_mode
            )
            self._rep_windows.append(seg)
            if self.model is not None:
                self.model.set_pacer(seg.pacer)
            self._cue(t, CueKind.STEP, CUES["reps"].format(n=step.reps))
            self._pacer_cue(seg, t)
            self._pacer_next = self._next_phase_change(seg, t)
        elif step.kind is not StepKind.PAUSE:
            self._cue(t, CueKind.STEP, CUES[str(step.kind)])

    def _leave(self, seg: Segment, t: float) -> None:
        self.current = None
        self._pacer_next = None
        self._record_zones(t)
        if seg.step.kind is StepKind.REPS:
            rs = self.pipeline.stop_reps()
            if self.model is not None:
                self.model.set_pacer(None)
            self.set_summaries.append(
                {
                    "set": seg.step.set_index,
                    "start_s": round(seg.t_start - (self.t0 or 0.0), 3),
                    "end_s": round(t - (self.t0 or 0.0), 3),
                    "target": seg.step.reps,
                    "rep_clock": self.rep_clock,
                    "summary": rs.to_json(),
                    "pipeline_reps": rs.reps,
                }
            )
            if self._rep_windows and self._rep_windows[-1].t_start == seg.t_start:
                self._rep_windows[-1] = replace(seg, t_end=t)
        self.segments.append(replace(seg, t_end=t))

    def _end(self, t: float, *, complete: bool, ended_by: str) -> None:
        if self._finished:
            return
        if self.current is not None:
            seg = self.current
            self._leave(replace(seg, t_end=min(t, seg.t_end)), t)
        self._finished = True
        self._t_end = t
        self.complete = complete
        if self.model is not None:
            self.model.set_running("stopped")
        self.ended_by = ended_by
        text = CUES["done"] if complete else f"{CUES['stopped']} ({ended_by})"
        self._cue(t, CueKind.INFO, text)
        self._event(t, "end", ended_by, {"complete": self.complete})

    def _next_phase_change(self, seg: Segment, t: float) -> float | None:
        p = seg.pacer
        if p is None:
            return None
        k = p.cycle(t + 1e-9)
        base = p.t0 + k * p.period
        marks = [base, base + p.inhale_s]
        if p.hold_s > 0:
            marks.append(base + p.inhale_s + p.hold_s)
        marks.append(base + p.period)
        nxt = min((m for m in marks if m > t + 1e-9), default=None)
        if nxt is None or nxt >= seg.t_end:
            return None
        return nxt

    def _pacer_cue(self, seg: Segment, t: float) -> None:
        assert seg.pacer is not None
        phase = seg.pacer.target(t + 1e-9).phase
        if t >= seg.reps_end - 1e-9:
            if phase == BreathPhase.INHALE:
                self._cue(t, CueKind.BREATH, CUES["closing"])
            return
        key = {BreathPhase.INHALE: "inhale", BreathPhase.EXHALE: "exhale"}.get(phase, "hold")
        self._cue(t, CueKind.BREATH, CUES[key])

    def _breath_kind(self) -> StreamKind | None:
        src = self.pipeline.status.breath_source
        if src is None:
            return None
        for spec in self.pipeline.streams:
            if spec.name == src:
                return spec.kind
        return None

    # ------------------------------------------------------------------ data

    async def _consume(self, items: AsyncIterator[Chunk | LinkEvent]) -> None:
        async for item in items:
            if isinstance(item, Chunk):
                self._on_chunk(item)
            else:
                self._on_link(item)
            if self._finished:
                return

    def _on_chunk(self, chunk: Chunk) -> None:
        if len(chunk) == 0:
            return
        self._t_last = max(self._t_last, float(chunk.t[-1]))
        if self.writer is not None:
            self.writer.chunk(chunk)
        if self.model is not None:
            self.model.on_chunk(chunk)
        upd = self.pipeline.process(chunk)
        self._on_update(upd)
        if self.model is not None:
            self.model.on_update(upd)

    def _on_update(self, upd: PipelineUpdate) -> None:
        """Record and cue what the pipeline found."""
        pel = upd.pelvic
        if pel is not None:
            self._zones = (pel.stream, pel.rest_level, pel.margins, pel.calibrated)
            if self.drop_unit is None:
                self.drop_unit = self.pipeline_unit(pel.stream)
            if self.writer is not None:
                self.writer.states(pel.stream, pel.t, pel.state)
            for ev in pel.events:
                name = PelvicState(ev.state).name.lower()
                self._event(ev.t, "pelvic", name, ev.to_json())
                if ev.state == PelvicState.STRAIN:
                    self.strain_count += 1
                    self._nag(ev.t_detected, "strain", CueKind.STRAIN)
                elif ev.state == PelvicState.CONTRACTION and self._in_reps(ev.t):
                    self._nag(ev.t_detected, "contraction", CueKind.CONTRACTION)
            self._count_inhale_drop(pel.t - pel.delay_s, pel.state)
        br = upd.breath
        if br is not None:
            if br.rate_bpm is not None and br.kind is not StreamKind.PRESSURE:
                self._last_rate = br.rate_bpm
            for b in br.breaths:
                self._event(b.inhale_onset, "breath", "", b.to_json())
        for rep in upd.reps:
            self._on_rep(rep)

    def pipeline_unit(self, stream: str) -> str | None:
        """The unit of a pipeline stream (by its id, resolved like the pipeline does)."""
        spec = StreamResolver(self.pipeline.streams).spec(stream)
        return None if spec is None else spec.unit

    def _in_reps(self, t: float) -> bool:
        seg = self.current
        return (
            seg is not None
            and seg.step.kind is StepKind.REPS
            and seg.t_start <= t < seg.reps_end
        )

    def _on_rep(self, rep: RepResult) -> None:
        """A rep the pipeline counted: record it, then cue or praise."""
        seg = self.current
        if seg is None or seg.step.kind is not StepKind.REPS:
            return  # (the set was counted until the step ended)
        self._set_reps.append(rep)
        self.reps.append(rep)
        n = len(self._set_reps)
        data = rep.to_json()
        data.update({"set": seg.step.set_index, "n": n, "of": seg.step.reps})
        self._event(rep.t_end, "rep", f"{n}/{seg.step.reps} score {rep.score:.0f}", data)
        t = max(self.clock.now(), rep.t_end)
        if rep.coupling.strain:
            self._nag(t, "strain", CueKind.STRAIN)
        elif rep.coupling.contracted:
            self._nag(t, "contraction", CueKind.CONTRACTION)
        elif rep.good and rep.coupling.drop > 0:
            # Praise only a real drop: never a pressure rise.
            self._cue(t, CueKind.PRAISE, CUES["well_done"])

    def _record_zones(self, t: float) -> None:
        """The pelvic zones in use (for the report), once per step."""
        if self._zones is None or self.writer is None:
            return
        stream, rest, (drop, con, strain), calibrated = self._zones
        self.writer.event(
            t,
            "zones",
            stream,
            {
                "stream": stream,
                "rest_level": rest,
                "drop_margin": drop,
                "contraction_margin": con,
                "strain_margin": strain,
                "calibrated": calibrated,
                "unit": self.drop_unit,
                "breath_source": self.pipeline.status.breath_source,
            },
        )

    def _count_inhale_drop(self, t: Any, state: Any) -> None:
        """Time in drop during the pacer's inhales of the rep steps (per sample)."""
        for seg in self._rep_windows[-2:]:
            p = seg.pacer
            if p is None:
                continue
            m = (t >= seg.t_start) & (t < seg.reps_end)
            if not np.any(m):
                continue
            pos = np.mod(t[m] - p.t0, p.period)
            inh = pos < p.inhale_s
            known = state[m] != PelvicState.UNKNOWN
            sel = inh & known
            self._inhale_n += int(np.count_nonzero(sel))
            self._inhale_drop_n += int(np.count_nonzero(sel & (state[m] == PelvicState.DROP)))

    def _on_link(self, ev: LinkEvent) -> None:
        if self.writer is not None:
            self.writer.link_event(ev)
        self.pipeline.on_link_event(ev)
        if self.model is not None:
            self.model.on_link(ev)
        if ev.kind is LinkKind.LOST:
            self.link_gaps += 1
            self._lost_at[ev.device] = ev.t
        elif ev.kind is LinkKind.CONNECTED and ev.device in self._lost_at:
            lost = self._lost_at.pop(ev.device)
            self.gap_s += ev.value if ev.value is not None else max(ev.t - lost, 0.0)
        if ev.kind in (LinkKind.LOST, LinkKind.CONNECTED, LinkKind.GIVEN_UP):
            self._mark(ev.t, "link", f"{ev.device}: {ev.kind}")

    # ------------------------------------------------------------------ output

    def _nag(self, t: float, key: str, kind: CueKind) -> None:
        last = self._last_nag.get(key)
        if last is not None and t - last < NAG_INTERVAL_S:
            return
        self._last_nag[key] = t
        self._cue(t, kind, CUES[key])

    def _cue(self, t: float, kind: CueKind, text: str) -> None:
        cue = Cue(t, kind, text)
        self.cues.append(cue)
        if self.writer is not None:
            self.writer.event(t, "cue", text, {"kind": str(kind)})
        if self.model is not None:
            self.model.on_cue(text, t)
        for fn in self._markers:
            fn(t, "cue", text)

    def _event(
        self, t: float, kind: str, text: str = "", data: Mapping[str, Any] | None = None
    ) -> None:
        if self.writer is not None:
            self.writer.event(t, kind, text, dict(data) if data is not None else None)
        if kind in ("step", "pelvic", "rep", "pain", "end", "error"):
            for fn in self._markers:
                fn(t, kind, text)

    def _mark(self, t: float, kind: str, text: str) -> None:
        if self.writer is not None and kind not in ("link",):
            self.writer.event(t, kind, text)
        for fn in self._markers:
            fn(t, kind, text)

    def _add_advice(self, text: str) -> None:
        if text not in self.advice:
            self.advice.append(text)


def _seg_json(seg: Segment, t0: float) -> dict[str, Any]:
    end = seg.t_end if math.isfinite(seg.t_end) else None
    return {
        "step": seg.step.label,
        "kind": str(seg.step.kind),
        "start_s": round(seg.t_start - t0, 3),
        "end_s": None if end is None else round(end - t0, 3),
        "reps": seg.step.reps,
    }
