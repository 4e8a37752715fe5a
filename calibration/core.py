"""The one entry point: recorded steps and breaths in, a checked :class:`CalibrationResult` out."""

from __future__ import annotations

import math
from collections.abc import Sequence

from calibration.assessment import assessment_figures
from calibration.compute import (
    breath_figures,
    contraction_reps,
    drop_reps,
    resting_baseline,
    ripple_amplitude,
)
from calibration.errors import CalibrationRefused
from calibration.result import CalibrationResult
from calibration.steps import CONTRACTION_KINDS, BreathData, StepKind, StepSegment
from calibration.track import Track
from calibration.units import Conversion
from calibration.validate import (
    check_breathing,
    check_contraction,
    check_data,
    check_drop,
    check_saturation,
    check_stuck,
)

__all__ = ["KINDS", "calibrate"]

#: Calibration kinds.
KINDS = ("quick", "assessment")

#: A drop this close to the resting variability (in sd) gets a warning.
_SNR_WARN = 5.0


def calibrate(
    segments: Sequence[StepSegment],
    breath: BreathData | None,
    *,
    kind: str = "quick",
    unit: str = "count",
    conversion: Conversion | None = None,
    rails: tuple[float, float] | None = None,
    rate_hz: float | None = None,
) -> CalibrationResult:
    """Compute and check a calibration.

    Parameters
    ----------
    segments : sequence of StepSegment
        One per prompted step, pressure of one channel in sensor units.
    breath : BreathData or None
        The breaths the caller detected over the whole recording (None: no
        breath analysis, and no breathing check).
    kind : str
        ``"quick"`` or ``"assessment"`` (adds the Glazer-style figures).
    unit : str
        The sensor's unit.
    conversion : Conversion, optional
        To the common unit (cmH2O) when known.
    rails : (lo, hi), optional
        The sensor's field range (saturation check).
    rate_hz : float, optional
        The sensor's nominal rate (coverage check).

    Returns
    -------
    CalibrationResult

    Raises
    ------
    CalibrationRefused
        When a step must be repeated (see :mod:`calibration.validate`).
    ValueError
        For an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    check_data(segments, rate_hz)
    track = Track.from_segments(segments)
    check_saturation(segments, rails, track.fs)
    check_stuck(segments)
    try:
        baseline = resting_baseline(track)
    except ValueError as exc:
        raise CalibrationRefused("disconnected", str(StepKind.REST), str(exc)) from None
    contractions = contraction_reps(track, baseline.mean, CONTRACTION_KINDS)
    check_contraction(contractions, baseline, conversion)
    mvc = max(r.amplitude for r in contractions)
    drops = drop_reps(track, baseline.mean)
    check_drop(drops, baseline, mvc)
    if breath is not None:
        check_breathing(breath, segments)
        breathing = breath_figures(track, breath)
        ripple = ripple_amplitude(track, breath)
    else:
        breathing = breath_figures(track, BreathData())
        ripple = 0.0
    result = CalibrationResult(
        kind=kind,
        unit=unit,
        baseline=baseline,
        contractions=contractions,
        drops=drops,
        breathing=breathing,
        ripple=ripple,
        conversion=conversion,
    )
    if kind == "assessment":
        result.assessment = assessment_figures(track, baseline.mean, mvc, drops)
    result.warnings.extend(_warnings(result, breath))
    return result


def _warnings(r: CalibrationResult, breath: BreathData | None) -> list[str]:
    out: list[str] = []
    if r.drop_snr < _SNR_WARN:
        out.append(
            f"the drop is small against the resting variability ({r.drop_snr:.1f} sd): "
            "drops near the edge of the noise may be missed"
        )
    amps = [c.amplitude for c in r.contractions if c.kind is StepKind.SQUEEZE]
    if len(amps) >= 2 and max(amps) > 0 and min(amps) < 0.6 * max(amps):
        out.append("the squeezes differed a lot in strength: MVC is the best of them")
    if breath is None:
        out.append("no breath data: the suggested pacer uses a default rate")
    elif breath.from_pressure:
        out.append(
            "breathing was read from the probe's pressure ripple (no breath sensor): "
            "rate and depth are rough"
        )
    if r.breathing.rate_bpm is None:
        out.append(
            "the natural breathing rate could not be measured (too few or too irregular "
            "breaths): the pacer uses a default"
        )
    drift = abs(r.baseline.drift_per_min)
    if r.mvc > 0 and math.isfinite(drift) and drift > 0.1 * r.mvc:
        out.append("the resting level drifted during the rest step (the probe may be settling)")
    return out
