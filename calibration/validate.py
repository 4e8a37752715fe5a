"""Refuse a calibration that cannot be trusted, saying which step to repeat and why.

Checks run in the order a person would want to hear about them: no data
(disconnected), a flat signal, a saturated sensor, a stuck one, then what the
person did -- never contracted, never dropped (or pushed instead), no
breathing on the breath sensor. The first failure raises
:class:`~calibration.errors.CalibrationRefused`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from calibration.errors import CalibrationRefused
from calibration.measures import Baseline, ContractionRep, DropRep
from calibration.steps import (
    BREATHING_KINDS,
    BreathData,
    StepKind,
    StepSegment,
)
from calibration.units import Conversion

__all__ = [
    "MIN_BREATHS",
    "MIN_COVERAGE",
    "check_breathing",
    "check_contraction",
    "check_data",
    "check_drop",
    "check_saturation",
    "check_stuck",
    "min_contraction",
    "min_drop",
]

#: Fraction of a step's expected samples that must be there.
MIN_COVERAGE = 0.5
#: Breaths needed in the free-breathing steps.
MIN_BREATHS = 2
#: Smallest MVC worth calibrating against when the unit is known (cmH2O):
#: well under the weakest Modified-Oxford grade (7.5 cmH2O, ``notes/field.md``).
MIN_MVC_CMH2O = 2.0
#: A step at least this long whose samples are all identical is a stuck sensor.
STUCK_S = 5.0


def _analysed(segments: Sequence[StepSegment]) -> list[StepSegment]:
    return [s for s in sorted(segments, key=lambda s: s.t_start) if s.kind is not StepKind.READY]


def check_data(segments: Sequence[StepSegment], rate_hz: float | None) -> None:
    """Every step has most of its samples, and the signal is not flat throughout.

    Parameters
    ----------
    segments : sequence of StepSegment
        The recording.
    rate_hz : float or None
        The sensor's nominal rate (None: estimated from the recording).

    Raises
    ------
    CalibrationRefused
        ``disconnected`` (a step with too few samples) or ``flat``.
    """
    steps = _analysed(segments)
    if not steps:
        raise CalibrationRefused(
            "disconnected", "rest", "nothing was recorded", "Check the sensor is on and connected."
        )
    rate = rate_hz
    if rate is None or not rate > 0:
        counts = [(s.values.size, s.duration) for s in steps if s.duration > 0]
        tot_n = sum(n for n, _ in counts)
        tot_d = sum(d for _, d in counts)
        rate = tot_n / tot_d if tot_d > 0 else 0.0
    for s in steps:
        n_ok = int(np.count_nonzero(np.isfinite(s.values)))
        expected = s.duration * rate
        if expected >= 2 and n_ok < MIN_COVERAGE * expected:
            got = n_ok / rate if rate > 0 else 0.0
            raise CalibrationRefused(
                "disconnected",
                str(s.kind),
                f"the pressure sensor sent almost no data during it ({got:.1f} of "
                f"{s.duration:.0f} s): it disconnected or stopped sending",
                "Check it is on, charged and close by, then repeat the calibration.",
            )
    every = np.concatenate([s.values[np.isfinite(s.values)] for s in steps])
    if every.size and float(np.ptp(every)) == 0.0:
        raise CalibrationRefused(
            "flat",
            str(steps[0].kind),
            f"the pressure signal is flat (every sample reads {every[0]:g}): the sensor "
            "is off, stuck or not in place",
            "Check the probe is inserted and switched on, then repeat the calibration.",
        )


def check_stuck(segments: Sequence[StepSegment]) -> None:
    """No step of :data:`STUCK_S` or more reads one value throughout (a stuck sensor).

    Run after :func:`check_saturation`: a reading held at a rail is saturation.

    Raises
    ------
    CalibrationRefused
        ``flat``, naming the step.
    """
    for s in _analysed(segments):
        v = s.values[np.isfinite(s.values)]
        if s.duration >= STUCK_S and v.size >= 3 and float(np.ptp(v)) == 0.0:
            raise CalibrationRefused(
                "flat",
                str(s.kind),
                f"the pressure signal stuck at {v[0]:g} for the whole step (the sensor "
                "stopped measuring)",
                "Check the sensor, then repeat the calibration.",
            )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


def check_saturation(
    segments: Sequence[StepSegment], rails: tuple[float, float] | None, fs: float
) -> None:
    """The sensor never sat at the end of its range.

    With known ``rails`` (the protocol field's range), two consecutive samples
    at a rail refuse. Without, a run of identical samples at the recording's
    highest value lasting 0.3 s refuses -- but only for a sensor whose resting
    signal dithers (a coarsely quantised sensor repeats values anyway).

    Raises
    ------
    CalibrationRefused
        ``saturated``, naming the step it happened in.
    """
    steps = _analysed(segments)
    if rails is not None:
        lo, hi = rails
        for s in steps:
            v = s.values
            for mask, where, value in ((v >= hi, "maximum", hi), (v <= lo, "minimum", lo)):
                runs = [r for r in _runs(mask) if r[1] >= 2]
                if runs:
                    n = sum(r[1] for r in runs)
                    raise _saturated(s, n, where, value)
        return
    allv = [s.values[np.isfinite(s.values)] for s in steps]
    if not allv or not any(a.size for a in allv):
        return
    top = max(float(a.max()) for a in allv if a.size)
    min_n = max(5, round(0.3 * fs)) if math.isfinite(fs) else 5
    rest = next((s for s in steps if s.kind in BREATHING_KINDS and s.values.size > 10), None)
    if rest is not None:
        rv = rest.values[np.isfinite(rest.values)]
        if float(np.mean(np.diff(rv) == 0)) > 0.5:
            return  # coarse sensor: repeated values are normal
    for s in steps:
        runs = [r for r in _runs(s.values == top) if r[1] >= min_n]
        if runs:
            raise _saturated(s, sum(r[1] for r in runs), "maximum", top)


def _saturated(s: StepSegment, n: int, where: str, value: float) -> CalibrationRefused:
    if where == "maximum":
        advice = (
            "Squeeze a little less hard (it is past what the sensor can measure) or check "
            "the probe's position, then repeat it."
        )
    else:
        advice = "The probe may have slipped: re-seat it, then repeat it."
    return CalibrationRefused(
        "saturated",
        str(s.kind),
        f"the sensor saturated ({n} samples at its {where} reading {value:g})",
        advice,
    )


def min_contraction(baseline: Baseline, conversion: Conversion | None) -> float:
    """Smallest MVC (sensor units) that counts as having contracted at all."""
    sd = max(baseline.sd, baseline.noise_sd)
    floor = max(6.0 * sd, 2.0 * (baseline.p95 - baseline.p05))
    if conversion is not None:
        floor = max(floor, MIN_MVC_CMH2O * abs(conversion.gain))
    return floor


def min_drop(baseline: Baseline) -> float:
    """Smallest drop (sensor units) that counts as having dropped at all."""
    return 3.0 * max(baseline.sd, baseline.noise_sd)


def check_contraction(
    reps: Sequence[ContractionRep], baseline: Baseline, conversion: Conversion | None
) -> None:
    """The person contracted clearly above rest at least once.

    Raises
    ------
    CalibrationRefused
        ``no_contraction``.
    """
    need = min_contraction(baseline, conversion)
    best = max((r.amplitude for r in reps), default=-math.inf)
    if best >= need:
        return
    step = str(reps[0].kind) if reps else str(StepKind.SQUEEZE)
    if math.isfinite(best):
        seen = f"the highest rise was {best:.3g}, under the {need:.3g} needed"
    else:
        seen = "no squeeze was recorded"
    raise CalibrationRefused(
        "no_contraction",
        step,
        f"no contraction above rest was seen ({seen}, sensor units)",
        "Squeeze and lift as hard as you comfortably can when asked, and let go after.",
    )


def check_drop(reps: Sequence[DropRep], baseline: Baseline, mvc: float) -> None:
    """At least one slow inhale took the floor clearly below rest.

    Raises
    ------
    CalibrationRefused
        ``no_drop`` (the message says so when the pressure rose instead: pushing).
    """
    need = min_drop(baseline)
    best = max((r.depth for r in reps), default=-math.inf)
    if best >= need:
        return
    rise = max((r.rise for r in reps), default=0.0)
    pushing = rise > max(0.1 * mvc, 4.0 * max(baseline.sd, baseline.noise_sd))
    if pushing:
        why = (
            "the pressure rose on the slow inhales instead of falling: that is pushing or "
            "bearing down"
        )
        advice = (
            "Breathe in slowly through the nose and let the floor soften and widen, "
            "with no pushing or straining."
        )
    elif baseline.quantum > 0 and need < 2.0 * baseline.quantum:
        # The resting noise is about one step of the reading: the sensor is too coarse.
        deepest = f"{best:.3g}" if math.isfinite(best) else "none"
        why = (
            f"the drop was too small for this sensor to show (deepest {deepest}; its reading "
            f"moves in steps of {baseline.quantum:g}, sensor units)"
        )
        advice = (
            "Repeat it with slow, full inhales; if it is refused again, this sensor is too "
            "coarse to show your drop."
        )
    else:
        deepest = f"{best:.3g}" if math.isfinite(best) else "none"
        why = (
            f"the floor never went below rest (deepest {deepest}, under the {need:.3g} needed, "
            "sensor units)"
        )
        advice = (
            "Breathe in slowly through the nose and let the floor soften and drop, "
            "like letting go; no pushing."
        )
    raise CalibrationRefused("no_drop", str(StepKind.DROP), why, advice)


def check_breathing(breath: BreathData, segments: Sequence[StepSegment]) -> None:
    """Breathing was seen on the breath sensor during the free-breathing steps.

    Raises
    ------
    CalibrationRefused
        ``no_breathing``, naming the breathing step (``breathe``, else the
        first rest step).
    """
    steps = [s for s in _analysed(segments) if s.kind in BREATHING_KINDS]
    if not steps:
        return
    named = next((s for s in steps if s.kind is StepKind.BREATHE), steps[0])
    what = (
        "the pressure probe (no breath sensor)"
        if breath.from_pressure
        else (f"the breath sensor ({breath.source})" if breath.source else "the breath sensor")
    )
    if breath.values is not None:
        v = np.asarray(breath.values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise CalibrationRefused(
                "no_breathing",
                str(named.kind),
                f"no data came from {what}",
                "Check it is on and connected, then repeat it.",
            )
        if float(np.ptp(v)) == 0.0:
            raise CalibrationRefused(
                "no_breathing",
                str(named.kind),
                f"the signal of {what} is flat",
                "Check it is on and sits snugly (a belt around the lower ribs), then repeat it.",
            )
    n = sum(
        1
        for b in breath.breaths
        if any(s.t_start <= b.inhale_onset and b.exhale_onset <= s.t_end for s in steps)
    )
    if n < MIN_BREATHS:
        raise CalibrationRefused(
            "no_breathing",
            str(named.kind),
            f"no breathing was seen on {what} ({n} breaths in "
            f"{sum(s.duration for s in steps):.0f} s of free breathing)",
            "Breathe normally into your belly; check a belt sits snugly around the lower "
            "ribs, then repeat it.",
        )
