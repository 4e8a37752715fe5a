"""The figures a calibration measures, as records: baseline, reps, breathing.

Plain frozen dataclasses in the sensor's own units (see :mod:`calibration.compute`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from calibration.steps import StepKind

__all__ = ["Baseline", "BreathFigures", "ContractionRep", "DropRep", "rounded"]


def rounded(x: float | None, nd: int = 4) -> float | None:
    """Rounded float for JSON (None for missing or non-finite)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)



@dataclass(frozen=True)
class Baseline:
    """Resting pressure, sensor units.

    Parameters
    ----------
    mean : float
        Resting level (the zero of the zones).
    sd : float
        Variability: standard deviation after removing a linear drift.
    noise_sd : float
        White noise per sample (sensor plus fast jitter).
    drift_per_min : float
        Slope of the linear drift, units per minute.
    p05, p95 : float
        5th and 95th percentiles.
    duration_s : float
        Seconds of signal used.
    quantum : float
        The smallest step between two readings (the sensor's resolution;
        0 for a constant signal).
    """

    mean: float
    sd: float
    noise_sd: float
    drift_per_min: float
    p05: float
    p95: float
    duration_s: float
    quantum: float = 0.0

    @property
    def cv_pct(self) -> float:
        """Variability as percent of the mean (only meaningful with a physical zero)."""
        return 100.0 * self.sd / abs(self.mean) if self.mean else math.nan


@dataclass(frozen=True)
class ContractionRep:
    """One contraction attempt, sensor units.

    Parameters
    ----------
    kind : StepKind
        Squeeze, flick, hold or endurance.
    index : int
        1-based attempt number.
    ref : float
        Level just before it.
    peak : float
        Highest smoothed level (absolute).
    mean_level : float
        Mean smoothed level over the held part (absolute).
    rise_s, recovery_s : float
        10 -> 90 % rise time, and 90 -> 10 % fall time from the level at the
        release (NaN when not measurable).
    t_peak : float
        When the peak was reached.
    """

    kind: StepKind
    index: int
    ref: float
    peak: float
    mean_level: float
    rise_s: float
    recovery_s: float
    t_peak: float

    @property
    def amplitude(self) -> float:
        """Peak above the level before it."""
        return self.peak - self.ref

    @property
    def mean_amplitude(self) -> float:
        """Mean held level above the level before it."""
        return self.mean_level - self.ref


@dataclass(frozen=True)
class DropRep:
    """One slow-inhale drop attempt, sensor units.

    Parameters
    ----------
    index : int
        1-based attempt number.
    ref : float
        Level just before the inhale.
    floor : float
        Lowest smoothed level during the inhale (and just after).
    rise : float
        Highest smoothed level during the inhale above ``ref`` (pushing shows
        here: bearing down raises the pressure).
    t_floor : float
        When the floor was reached.
    """

    index: int
    ref: float
    floor: float
    rise: float
    t_floor: float

    @property
    def depth(self) -> float:
        """How far below the level before it the floor went (>= 0 is a drop)."""
        return self.ref - self.floor


@dataclass(frozen=True)
class BreathFigures:
    """Natural breathing from the caller's breaths.

    Parameters
    ----------
    rate_bpm : float or None
        Breaths per minute (None: too few breaths).
    depth : float or None
        Median breath amplitude, the breath source's units.
    regularity : float or None
        1 - coefficient of variation of the periods.
    n : int
        Breaths used.
    unit, source : str
        Of the amplitudes.
    """

    rate_bpm: float | None
    depth: float | None
    regularity: float | None
    n: int
    unit: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_bpm": rounded(self.rate_bpm, 2),
            "depth": rounded(self.depth),
            "unit": self.unit,
            "regularity": rounded(self.regularity, 3),
            "breaths": self.n,
            "source": self.source,
        }

