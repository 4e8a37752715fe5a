"""The virtual learner's Glazer-style assessments during ``demo --weeks``.

At the start of the weeks and then every two weeks, before that day's
session, the learner does the app's own assessment
(:func:`~biofeedback.protocols.calibration_plan.assessment_plan`: pre-baseline,
flicks, holds, endurance, post-baseline, drops) lying down at the skill of
the day. The recording runs through the same
:class:`~biofeedback.protocols.calibration.CalibrationRunner` and
:func:`calibration.calibrate` as ``calibrate --assessment`` and is saved the
same way (a profile of kind ``assessment``, back-dated to that morning),
then marked as the demo's so ``data wipe --demo`` removes it. A recording the
calibration refuses is tried again once, as a person would repeat it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biofeedback.protocols.calibration import CalibrationRunner
from calibration import CalibrationRefused, Profile, SensorId, conversion_for, save_profile
from devices.clock import SimClock

__all__ = ["ASSESS_EVERY_DAYS", "TWIN_SOURCE", "assess"]

#: Days between two assessments (the first is on the first day of practice).
ASSESS_EVERY_DAYS = 14
#: What the virtual sensor's counts conversion stands in for (as ``calibrate`` says).
TWIN_SOURCE = "the virtual twin's documented conversion (stands in for a factory calibration)"


def _sensor(spec: Any, device: dict[str, Any], channel: str) -> SensorId:
    return SensorId(driver=str(device["driver"]), address=f"virtual:{device['name']}",
                    name=str(device["name"]), stream=spec.name, channel=channel,
                    unit=spec.unit, virtual=True)


async def _record(source: Callable[..., Any], seed: int, skill: float,
                  counts_factory: tuple[float, float] | None
                  ) -> tuple[Any, SensorId, SensorId | None]:
    clock = SimClock(None)
    runner = CalibrationRunner(clock, "assessment")
    src = source(clock, seed, skill=skill, posture="supine")
    src.body.intent = runner.intent
    rec = await runner.record(src.chunks(), list(src.streams))
    assert rec.pressure is not None
    channel = rec.pressure.channels[rec.channel]
    conv = None if counts_factory is None else conversion_for(
        rec.pressure.unit, factory=counts_factory, source=TWIN_SOURCE)
    result = runner.compute(rec, conversion=conv, driver=str(src.devices[0]["driver"]))
    sensor = _sensor(rec.pressure, src.devices[0], channel)
    breath = None
    if rec.breath_source is not None:
        breath = _sensor(rec.breath_source, src.devices[-1], "")
    return result, sensor, breath


def assess(folder: Path, person: str, at: dt.datetime, *, skill: float, seed: int,
           source: Callable[..., Any], counts_factory: tuple[float, float] | None = None
           ) -> Profile | None:
    """One assessment of the virtual learner, saved as a profile created ``at``.

    Parameters
    ----------
    folder : Path
        The profiles folder (``data_dir()/profiles``).
    person : str
        Whose profile.
    at : datetime
        When it was done (the profile's ``created_at``).
    skill : float
        The learner's skill that day.
    seed : int
        Seeds the body (a repeat uses the next seed).
    source : callable
        ``(clock, seed, skill=, posture=) -> source``, as for the sessions.
    counts_factory : (gain, offset), optional
        The sensor's counts conversion, for figures in cmH2O too.

    Returns
    -------
    Profile or None
        The saved profile; None when the calibration refused both tries.
    """
    for attempt in range(2):
        try:
            result, sensor, breath = asyncio.run(
                _record(source, seed + 7919 * attempt, skill, counts_factory))
        except CalibrationRefused:
            continue
        profile = Profile.from_result(result, person=person, sensor=sensor,
                                      breath_sensor=breath, created_at=at)
        return save_profile(folder, profile)
    return None
