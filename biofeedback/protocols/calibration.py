"""The guided calibration: timed steps with prompts and countdowns, then the figures.

A calibration is an exercise protocol like a session: a plan of timed steps
(rest, squeeze, slow-inhale drops, free breathing...) walked on the run's
clock. No keypress is needed: every step lasts its time. While it runs, the
runner records the pressure stream (and the breath stream) and feeds the
signal pipeline, whose breath detector finds the breaths; at the end the
recording is cut into one :class:`~calibration.steps.StepSegment` per step
and handed to :func:`calibration.calibrate`, which computes the figures and
refuses a recording it cannot trust.

Plans (:data:`PLANS`):

==========  ============================================================  =======
plan        steps                                                         total
==========  ============================================================  =======
quick       get ready 5 s, rest 30 s, 3 x (squeeze 5 s + let go 10 s),    ~2.5 min
            a paced exhale 7 s, 3 x slow-inhale drop (one paced breath:
            in 5 s, out 7 s), free breathing 30 s
assessment  get ready 5 s, pre-baseline 60 s, 5 flicks (2 s on, 10 s      ~7 min
            off), 5 holds (10 s on, 10 s off), endurance 60 s + 10 s
            rest, post-baseline 60 s, a paced exhale, 5 slow-inhale drops
==========  ============================================================  =======

Prompts go through ``show_step(prompt, seconds_left)`` (the terminal countdown
in the CLI; the live window's calibration screen takes the same callback) and
``on_step(step)`` at each step change. On the virtual radio the body model's
person follows the plan through :meth:`CalibrationRunner.intent`
(``world.body.intent = runner.intent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.plan import by_name
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.signal.pipeline import Pipeline
from biofeedback.signal.types import Thresholds
from calibration import (
    FIELD_RANGES,
    BreathData,
    BreathMark,
    CalibrationRefused,
    CalibrationResult,
    Conversion,
    Profile,
    SensorId,
    StepKind,
    StepSegment,
    calibrate,
)
from devices.clock import Clock
from devices.errors import GaveUpError, InputError
from devices.intent import Intent, PelvicAction
from devices.stream import Chunk, LinkEvent, StreamKind, StreamResolver, StreamSpec

__all__ = [
    "PLANS",
    "PROMPTS",
    "CalibrationPlan",
    "CalibrationRunner",
    "PlanStep",
    "Recording",
    "ScheduledStep",
    "ShowStep",
    "assessment_plan",
    "pick_channel",
    "quick_plan",
    "thresholds_from_profile",
]

log = logging.getLogger(__name__)

#: ``show_step(prompt, seconds_left)``: what a screen shows, once a second.
ShowStep = Callable[[str, float], None]

#: What each step asks, in the person's words.
PROMPTS: dict[StepKind, str] = {
    StepKind.READY: "get ready: lie or sit comfortably with the probe in place",
    StepKind.REST: "rest: breathe normally and let everything go",
    StepKind.SQUEEZE: "squeeze as hard as you comfortably can",
    StepKind.RELAX: "let go completely and rest",
    StepKind.DROP: "breathe in slowly and let the floor drop",
    StepKind.RECOVER: "breathe out gently and let it come back",
    StepKind.BREATHE: "breathe freely: nothing else to do",
    StepKind.PRE_BASELINE: "rest: breathe normally and let everything go",
    StepKind.FLICK: "quick squeeze!",
    StepKind.HOLD: "squeeze and hold",
    StepKind.ENDURANCE: "squeeze and hold it steadily for the whole minute",
    StepKind.POST_BASELINE: "rest again: breathe normally and let everything go",
}

#: The paced breath of a drop step: a slow inhale, then a longer exhale.
DROP_INHALE_S = 5.0
DROP_EXHALE_S = 7.0


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan.

    Parameters
    ----------
    kind : StepKind
        What it asks.
    seconds : float
        How long it lasts.
    index : int
        1-based repetition among the steps of this kind (0: not repeated).
    prompt : str
        What to tell the person (default: :data:`PROMPTS`).
    """

    kind: StepKind
    seconds: float
    index: int = 0
    prompt: str = ""

    @property
    def text(self) -> str:
        """The prompt, with the repetition number when repeated."""
        base = self.prompt or PROMPTS[self.kind]
        return f"{base} ({self.index})" if self.index > 0 else base

    def to_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "seconds": self.seconds, "index": self.index}


@dataclass(frozen=True)
class CalibrationPlan:
    """A named list of timed steps."""

    name: str
    steps: tuple[PlanStep, ...]

    @property
    def total_s(self) -> float:
        return float(sum(s.seconds for s in self.steps))


def _reps(kind: StepKind, on_s: float, rest: StepKind, off_s: float, n: int) -> list[PlanStep]:
    out: list[PlanStep] = []
    for i in range(1, n + 1):
        out.append(PlanStep(kind, on_s, i))
        out.append(PlanStep(rest, off_s, i))
    return out


def _drops(n: int) -> list[PlanStep]:
    """Paced breaths, each a slow inhale with the drop and a long exhale.

    A paced exhale comes first: someone caught at the top of a free breath
    cannot take a slow breath in (and so cannot drop) until they breathe out.
    """
    lead = PlanStep(StepKind.RECOVER, DROP_EXHALE_S, 0, "breathe out slowly and get ready")
    return [lead, *_reps(StepKind.DROP, DROP_INHALE_S, StepKind.RECOVER, DROP_EXHALE_S, n)]


def quick_plan(squeezes: int = 3, drops: int = 3) -> CalibrationPlan:
    """The quick calibration (about 2.5 minutes)."""
    steps = [
        PlanStep(StepKind.READY, 5.0),
        PlanStep(StepKind.REST, 30.0),
        *_reps(StepKind.SQUEEZE, 5.0, StepKind.RELAX, 10.0, squeezes),
        *_drops(drops),
        PlanStep(StepKind.BREATHE, 30.0),
    ]
    return CalibrationPlan("quick", tuple(steps))


def assessment_plan() -> CalibrationPlan:
    """The Glazer-style assessment, adapted to pressure (about 7 minutes)."""
    steps = [
        PlanStep(StepKind.READY, 5.0),
        PlanStep(StepKind.PRE_BASELINE, 60.0),
        *_reps(StepKind.FLICK, 2.0, StepKind.RELAX, 10.0, 5),
        *_reps(StepKind.HOLD, 10.0, StepKind.RELAX, 10.0, 5),
        PlanStep(StepKind.ENDURANCE, 60.0),
        PlanStep(StepKind.RELAX, 10.0),
        PlanStep(StepKind.POST_BASELINE, 60.0),
        *_drops(5),
    ]
    return CalibrationPlan("assessment", tuple(steps))


#: The built-in plans.
PLANS: dict[str, CalibrationPlan] = {"quick": quick_plan(), "assessment": assessment_plan()}


@dataclass(frozen=True)
class ScheduledStep:
    """A plan step placed on the clock.

    Parameters
    ----------
    step : PlanStep
        The step.
    number : int
        1-based position in the plan.
    t_start, t_end : float
        Clock times.
    pacer : Pacer or None
        For a drop and its recovery: the paced breath (inhale at the drop's start).
    """

    step: PlanStep
    number: int
    t_start: float
    t_end: float
    pacer: Pacer | None = None


def pick_channel(channels: Sequence[str]) -> int:
    """The channel calibration uses: the one the pelvic state reads (``raw`` on
    a kGoal, whose calibrated channel clips at 0; ``base`` on two-channel
    probes; else ``pressure``, else the first)."""
    return pressure_channels(channels)[0]


@dataclass
class Recording:
    """What the runner recorded.

    Attributes
    ----------
    pressure : StreamSpec or None
        The pressure stream.
    channel : int
        The column used.
    t, values : ndarray
        Pressure samples (the chosen channel).
    breaths : list of BreathMark
        Breaths the pipeline found.
    breath_source : StreamSpec or None
        The stream the breath came from.
    breath_t, breath_values : ndarray
        The breath stream's samples (its most varying channel).
    link_events : list of LinkEvent
        What happened to the links.
    error : Exception or None
        A device error that ended the recording early.
    schedule : list of ScheduledStep
        The steps as they ran.
    """

    pressure: StreamSpec | None = None
    channel: int = 0
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    breaths: list[BreathMark] = field(default_factory=list)
    breath_source: StreamSpec | None = None
    breath_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    breath_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    link_events: list[LinkEvent] = field(default_factory=list)
    error: BaseException | None = None
    schedule: list[ScheduledStep] = field(default_factory=list)

    def segments(self) -> list[StepSegment]:
        """One segment per scheduled step (samples inside its window)."""
        out = []
        for s in self.schedule:
            a = int(np.searchsorted(self.t, s.t_start, "left"))
            b = int(np.searchsorted(self.t, s.t_end, "left"))
            out.append(
                StepSegment(
                    s.step.kind, s.step.index, self.t[a:b], self.values[a:b], s.t_start, s.t_end
                )
            )
        return out

    def breath_data(self) -> BreathData:
        """The breaths for :func:`calibration.calibrate`."""
        src = self.breath_source
        return BreathData(
            breaths=tuple(self.breaths),
            source="" if src is None else src.name,
            unit="" if src is None else src.unit,
            t=self.breath_t,
            values=self.breath_values,
            from_pressure=src is not None and src.kind is StreamKind.PRESSURE,
        )


class _Buffer:
    """Chunks of one stream, joined once at the end."""

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def add(self, chunk: Chunk) -> None:
        self.t.append(np.asarray(chunk.t, dtype=np.float64))
        self.v.append(np.asarray(chunk.values, dtype=np.float64))

    def arrays(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.t:
            return np.zeros(0), np.zeros((0, max(n_channels, 1)))
        t = np.concatenate(self.t)
        v = np.concatenate(self.v)
        order = np.argsort(t, kind="stable")
        return t[order], v[order]


class CalibrationRunner:
    """Walks a calibration plan on the clock, records, and computes the profile.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    plan : CalibrationPlan or str
        A plan or ``"quick"`` / ``"assessment"``.
    show_step : callable, optional
        ``show_step(prompt, seconds_left)``, called at each step's start and
        then once a second of clock time.
    on_step : callable, optional
        Called with each :class:`ScheduledStep` as it starts.
    effort, compliance : float
        How the virtual person follows the prompts (:meth:`intent`).

    Raises
    ------
    InputError
        For an unknown plan name.
    """

    def __init__(
        self,
        clock: Clock,
        plan: CalibrationPlan | str = "quick",
        *,
        show_step: ShowStep | None = None,
        on_step: Callable[[ScheduledStep], None] | None = None,
        effort: float = 1.0,
        compliance: float = 1.0,
    ) -> None:
        if isinstance(plan, str):
            plan = by_name(PLANS, plan, "calibration")
        self.clock = clock
        self.plan = plan
        self.show_step = show_step
        self.on_step = on_step
        self.effort = effort
        self.compliance = compliance
        self.schedule: list[ScheduledStep] = []
        self.recording: Recording | None = None

    @property
    def kind(self) -> str:
        """``quick`` or ``assessment`` (what :func:`calibration.calibrate` is told)."""
        return "assessment" if self.plan.name == "assessment" else "quick"

    def start(self, t0: float | None = None) -> list[ScheduledStep]:
        """Place the steps on the clock from ``t0`` (default: now)."""
        t = self.clock.now() if t0 is None else t0
        starts = np.cumsum([0.0, *(s.seconds for s in self.plan.steps)])[:-1] + t
        out: list[ScheduledStep] = []
        pacer: Pacer | None = None
        paced = (StepKind.DROP, StepKind.RECOVER)
        for i, (step, ts) in enumerate(zip(self.plan.steps, starts, strict=True), start=1):
            if step.kind not in paced:
                pacer = None
            elif pacer is None:
                # One pacer per block of drops: its first inhale is the first drop.
                first = next(
                    (
                        (s, float(tt))
                        for s, tt in zip(self.plan.steps[i - 1 :], starts[i - 1 :], strict=True)
                        if s.kind is StepKind.DROP
                    ),
                    None,
                )
                if first is not None:
                    pacer = Pacer(inhale_s=first[0].seconds, exhale_s=DROP_EXHALE_S, t0=first[1])
            out.append(ScheduledStep(step, i, float(ts), float(ts) + step.seconds, pacer))
        self.schedule = out
        return out

    @property
    def t_end(self) -> float:
        """When the last step ends (NaN before :meth:`start`)."""
        return self.schedule[-1].t_end if self.schedule else math.nan

    def step_at(self, t: float) -> ScheduledStep | None:
        """The step running at ``t``."""
        for s in self.schedule:
            if s.t_start <= t < s.t_end:
                return s
        return None

    def intent(self, t: float) -> Intent:
        """What the (virtual) person does at ``t``: a function of ``t`` and the plan only."""
        s = self.step_at(t)
        if s is None:
            return Intent(compliance=self.compliance)
        kind = s.step.kind
        if kind in (StepKind.SQUEEZE, StepKind.FLICK, StepKind.HOLD, StepKind.ENDURANCE):
            return Intent(
                pelvic=PelvicAction.CONTRACT, effort=self.effort, compliance=self.compliance
            )
        if kind is StepKind.DROP and s.pacer is not None:
            return Intent(
                breath=s.pacer.target(t),
                pelvic=PelvicAction.DROP,
                effort=self.effort,
                compliance=self.compliance,
                drop_on_inhale=True,
            )
        if kind is StepKind.RECOVER and s.pacer is not None:
            return Intent(breath=s.pacer.target(t), compliance=self.compliance)
        return Intent(compliance=self.compliance)

    # ------------------------------------------------------------------ running

    async def _countdown(self) -> None:
        for s in self.schedule:
            if self.on_step is not None:
                self.on_step(s)
            while True:
                now = self.clock.now()
                left = s.t_end - now
                if left <= 1e-9:
                    break
                if self.show_step is not None:
                    self.show_step(s.step.text, left)
                await self.clock.sleep_until(min(s.t_end, now + 1.0))
        if self.show_step is not None:
            self.show_step("done", 0.0)

    async def record(
        self,
        items: AsyncIterator[Chunk | LinkEvent],
        streams: Sequence[StreamSpec],
        *,
        t0: float | None = None,
    ) -> Recording:
        """Walk the plan while consuming ``items``; returns the recording.

        A link given up (:class:`~devices.errors.GaveUpError`) ends the
        recording early; the calibration then refuses the first step without
        data, naming the cause. Other device errors (a sensor that never
        connected) propagate.

        Parameters
        ----------
        items : async iterator of Chunk or LinkEvent
            The merged sources.
        streams : sequence of StreamSpec
            Their streams (the first pressure stream is calibrated).
        t0 : float, optional
            When the first step starts (default: now).

        Raises
        ------
        InputError
            When no stream is a pressure stream.
        """
        pressure = next((s for s in streams if s.kind is StreamKind.PRESSURE), None)
        if pressure is None:
            raise InputError(
                "calibration needs a pelvic pressure sensor; none of the devices given has one"
            )
        if not self.schedule or t0 is not None:
            self.start(t0)
        pipe = Pipeline(streams)
        resolver = StreamResolver(streams)
        bufs: dict[str, _Buffer] = {}
        rec = Recording(pressure=pressure, channel=pick_channel(pressure.channels))
        rec.schedule = list(self.schedule)
        ticker = asyncio.create_task(self._countdown(), name="calibration countdown")
        it = items.__aiter__()
        try:
            while True:
                remaining = self.t_end - self.clock.now()
                if remaining <= 0:
                    break
                try:
                    item = await self.clock.wait_for(it.__anext__(), remaining)
                except (TimeoutError, StopAsyncIteration):
                    break
                except GaveUpError as exc:
                    # Lost mid-way: the steps without data are refused, naming the cause.
                    log.info("calibration: the source ended: %s", exc)
                    rec.error = exc
                    break
                _take(item, pipe, resolver, bufs, rec)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        _fill(rec, bufs, streams, pressure, pipe.breath_source)
        self.recording = rec
        return rec

    def compute(
        self,
        recording: Recording | None = None,
        *,
        conversion: Conversion | None = None,
        rails: tuple[float, float] | None = None,
        driver: str | None = None,
    ) -> CalibrationResult:
        """The figures of ``recording`` (default: the last one recorded).

        Parameters
        ----------
        conversion : Conversion, optional
            The sensor's conversion to cmH2O when known.
        rails : (lo, hi), optional
            The sensor's field range (default: from ``driver`` via
            :data:`calibration.FIELD_RANGES`).
        driver : str, optional
            The pressure sensor's driver id.

        Raises
        ------
        CalibrationRefused
            When a step must be repeated.
        """
        rec = recording if recording is not None else self.recording
        if rec is None or rec.pressure is None:
            raise InputError("nothing was recorded")
        if rails is None and driver is not None:
            rails = FIELD_RANGES.get(driver)
        try:
            return calibrate(
                rec.segments(),
                rec.breath_data(),
                kind=self.kind,
                unit=rec.pressure.unit,
                conversion=conversion,
                rails=rails,
                rate_hz=rec.pressure.rate_hz,
            )
        except CalibrationRefused as exc:
            if exc.code != "disconnected" or rec.error is None:
                raise
            # The link was given up: say which device, not just "no data".
            raise CalibrationRefused(
                exc.code,
                exc.step,
                f"the recording stopped during it: {rec.error}",
                "Check the sensors are on, charged and close by, then repeat the calibration.",
            ) from rec.error

    def profile(
        self,
        result: CalibrationResult,
        *,
        person: str,
        sensor: SensorId,
        breath_sensor: SensorId | None = None,
    ) -> Profile:
        """The profile to save for ``result``."""
        return Profile.from_result(
            result, person=person, sensor=sensor, breath_sensor=breath_sensor
        )


def thresholds_from_profile(profile: Profile | dict[str, Any]) -> Thresholds:
    """The pipeline's :class:`Thresholds` from a profile (or its JSON).

    The thresholds are in the pressure sensor's units; the pipeline refuses
    them for a stream in another unit.

    Raises
    ------
    InputError
        When the profile's thresholds are not valid.
    """
    th = profile.thresholds if isinstance(profile, Profile) else profile.get("thresholds", {})
    try:
        return Thresholds.from_json(th)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the profile's thresholds are not valid: {exc}") from None


def _take(
    item: Chunk | LinkEvent,
    pipe: Pipeline,
    resolver: StreamResolver,
    bufs: dict[str, _Buffer],
    rec: Recording,
) -> None:
    """One item of the calibration's sources: kept per stream, breaths marked, links noted."""
    if isinstance(item, Chunk):
        upd = pipe.process(item)
        name = resolver.name(item.stream)
        if name is not None:
            bufs.setdefault(name, _Buffer()).add(item)
        if upd.breath is not None:
            rec.breaths.extend(
                BreathMark(b.inhale_onset, b.exhale_onset, b.amplitude) for b in upd.breath.breaths
            )
    else:
        pipe.on_link_event(item)
        rec.link_events.append(item)


def _fill(
    rec: Recording,
    bufs: dict[str, _Buffer],
    streams: Sequence[StreamSpec],
    pressure: StreamSpec,
    breath_source: str | None,
) -> None:
    """The recorded pressure channel and the breath source's liveliest channel, as arrays."""
    t, v = bufs.get(pressure.name, _Buffer()).arrays(len(pressure.channels))
    rec.t = t
    rec.values = v[:, rec.channel] if v.size else np.zeros(0)
    rec.breath_source = next((s for s in streams if s.name == breath_source), None)
    if rec.breath_source is not None:
        bt, bv = bufs.get(rec.breath_source.name, _Buffer()).arrays(len(rec.breath_source.channels))
        rec.breath_t = bt
        if bv.ndim == 2 and bv.shape[0]:
            col = int(np.argmax(np.ptp(bv, axis=0)))
            rec.breath_values = bv[:, col]
