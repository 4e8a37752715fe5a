"""The guided calibration: timed steps with prompts and countdowns, then the figures.

A calibration is an exercise protocol like a session: a plan of timed steps
(rest, squeeze, slow-inhale drops, free breathing...) walked on the run's
clock. No keypress is needed: every step lasts its time. While it runs, the
runner records the pressure stream (and the breath stream) and feeds the
signal pipeline, whose breath detector finds the breaths; at the end the
recording is cut into one :class:`~calibration.steps.StepSegment` per step
and handed to :func:`calibration.calibrate`, which computes the figures and
refuses a recording it cannot trust.

The plans and their steps are in :mod:`biofeedback.protocols.calibration_plan`,
what is recorded in :mod:`biofeedback.protocols.calibration_recording`.

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
from typing import Any

import numpy as np

from biofeedback.protocols.calibration_plan import (
    DROP_EXHALE_S,
    PLANS,
    CalibrationPlan,
    ScheduledStep,
)
from biofeedback.protocols.calibration_recording import (
    Recording,
    StreamBuffer,
    fill_arrays,
    pick_channel,
    take_item,
)
from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.plan import by_name
from biofeedback.signal.pipeline import Pipeline
from biofeedback.signal.types import Thresholds
from calibration import (
    FIELD_RANGES,
    CalibrationRefused,
    CalibrationResult,
    Conversion,
    Profile,
    SensorId,
    StepKind,
    calibrate,
)
from devices.clock import Clock
from devices.errors import GaveUpError, InputError
from devices.intent import Intent, PelvicAction
from devices.stream import Chunk, LinkEvent, StreamKind, StreamResolver, StreamSpec

__all__ = ["CalibrationRunner", "ShowStep", "thresholds_from_profile"]

log = logging.getLogger(__name__)

#: ``show_step(prompt, seconds_left)``: what a screen shows, once a second.
ShowStep = Callable[[str, float], None]


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
        bufs: dict[str, StreamBuffer] = {}
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
                take_item(item, pipe, resolver, bufs, rec)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        fill_arrays(rec, bufs, streams, pressure, pipe.breath_source)
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

