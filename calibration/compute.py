"""From recorded steps and detected breaths to a person's figures and zones.

All figures are first computed in the sensor's own units (counts for a raw
probe); :mod:`calibration.units` brings them to cmH2O where a scale is known
and to normalised units (%MVC) always.

* **Resting baseline** -- the rest step: mean (the *zero* of every zone),
  variability (standard deviation after removing a linear drift, and as a
  coefficient of variation), white-noise level, drift.
* **Maximal voluntary contraction** -- each squeeze's peak (smoothed over
  0.25 s) above the level just before it; the best of the attempts.
* **Maximal voluntary drop** -- each slow inhale's lowest level below the
  level just before it; the best of the attempts. A belly inhale raises the
  probe pressure a little (the breathing *ripple*), so the sensor sees the
  floor's drop minus that ripple: both the seen drop (what the thresholds
  use) and the ripple-corrected one are reported.
* **Natural breathing** -- rate and depth from the breaths the caller
  detected during the free-breathing and rest steps.
* **Thresholds** -- rest level and the drop / contraction / strain margins,
  shaped like ``biofeedback.signal.types.Thresholds`` (plain data: this
  package may not import ``biofeedback``).
* **Suggested pacer** -- from the natural rate, slowed toward 6 breaths/min.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.steps import (
    BASELINE_KINDS,
    BREATHING_KINDS,
    CONTRACTION_KINDS,
    BreathData,
    BreathMark,
    StepKind,
    StepSegment,
)
from calibration.track import Track, noise_sd
from calibration.units import NORMALISED_UNIT, Conversion

__all__ = [
    "RESONANCE_BPM",
    "Baseline",
    "BreathFigures",
    "CalibrationResult",
    "ContractionRep",
    "DropRep",
    "breath_figures",
    "contraction_reps",
    "drop_reps",
    "resting_baseline",
    "ripple_amplitude",
    "suggest_pacer",
    "thresholds_from",
]

#: Resonance breathing rate the pacer slows toward (breaths per minute).
RESONANCE_BPM = 6.0
#: Seconds at the start of a rest step left out (settling after the prompt).
REST_SKIP_S = 3.0
#: Breaths read from the probe's own pressure ripple (no breath sensor) give a
#: natural rate only when their periods are this regular (1 - CV); otherwise
#: the detector was following something else (tone changes, noise).
MIN_RIPPLE_REGULARITY = 0.7
#: A peak is the highest mean over this long: a squeeze's tremor (about 3 % of
#: the force, ~0.1 s correlated) would bias a shorter window's maximum upward.
PEAK_S = 1.0
#: Level before an action: median over this many seconds before its prompt.
REFERENCE_S = 3.0


def _r(x: float | None, nd: int = 4) -> float | None:
    """Rounded float for JSON (None for missing or non-finite)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


# ----------------------------------------------------------------------------- records


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
            "rate_bpm": _r(self.rate_bpm, 2),
            "depth": _r(self.depth),
            "unit": self.unit,
            "regularity": _r(self.regularity, 3),
            "breaths": self.n,
            "source": self.source,
        }


# ----------------------------------------------------------------------------- figures


def resting_baseline(track: Track, kinds: Sequence[StepKind] = BASELINE_KINDS) -> Baseline:
    """Resting figures from the first rest-like step of ``kinds`` present.

    Raises
    ------
    ValueError
        When no such step has samples (validation refuses earlier).
    """
    for kind in kinds:
        steps = track.of_kind(kind)
        if steps:
            return baseline_of(track, steps[0])
    raise ValueError(f"no rest step ({', '.join(map(str, kinds))}) was recorded")


def baseline_of(track: Track, step: StepSegment, skip_s: float = REST_SKIP_S) -> Baseline:
    """Resting figures of one step (its first ``skip_s`` seconds left out)."""
    skip = min(skip_s, 0.25 * step.duration)
    w = track.window(step.t_start + skip, step.t_end)
    t, x = track.t[w], track.x[w]
    if x.size < 3:
        raise ValueError(f"the {step.label} step has too few samples")
    tc = t - t.mean()
    slope = float(np.dot(tc, x - x.mean()) / max(float(np.dot(tc, tc)), 1e-12))
    resid = x - x.mean() - slope * tc
    p05, p95 = np.percentile(x, [5.0, 95.0])
    steps = np.diff(np.unique(x))
    return Baseline(
        mean=float(x.mean()),
        sd=float(resid.std()),
        noise_sd=noise_sd(x),
        drift_per_min=60.0 * slope,
        p05=float(p05),
        p95=float(p95),
        duration_s=float(t[-1] - t[0]),
        quantum=float(steps.min()) if steps.size else 0.0,
    )


def _crossing_before(t: np.ndarray, y: np.ndarray, i: int, level: float) -> int:
    """Last index <= i where ``y`` is at or below ``level`` (0 when none)."""
    below = np.flatnonzero(y[: i + 1] <= level)
    return int(below[-1]) if below.size else 0


def contraction_reps(
    track: Track, rest: float, kinds: Sequence[StepKind] = CONTRACTION_KINDS
) -> list[ContractionRep]:
    """One :class:`ContractionRep` per step of ``kinds``.

    The level before each is the median of the :data:`REFERENCE_S` seconds
    before its prompt (``rest`` when there is none); the peak is searched up to
    1 s after the step (reaction and rise), the recovery up to 5 s after it.
    """
    reps: list[ContractionRep] = []
    xp = track.smoothed(PEAK_S)
    for step in track.of_kind(*kinds):
        ref = track.reference_before(step.t_start, rest)
        w = track.window(step.t_start, step.t_end + 5.0)
        t, y = track.t[w], track.xs[w]
        if y.size < 3:
            continue
        in_peak = t < step.t_end + 1.0
        ip = int(np.argmax(np.where(in_peak, xp[w], -np.inf)))
        peak = float(xp[w][ip])
        amp = peak - ref
        # Held part: after the reaction and rise, until the prompt to let go.
        hold_from = step.t_start + min(1.0, 0.25 * step.duration)
        held = (t >= hold_from) & (t <= step.t_end)
        mean_level = float(y[held].mean()) if held.any() else peak
        rise = recovery = math.nan
        if amp > 0:
            i10 = _crossing_before(t, y, ip, ref + 0.1 * amp)
            above = np.flatnonzero(y[i10 : ip + 1] >= ref + 0.9 * amp)
            if above.size and i10 > 0:
                rise = float(t[i10 + int(above[0])] - t[i10])
            # Fall from the level at the release (a held squeeze may have sagged).
            rel = (t >= step.t_end - 1.0) & (t <= step.t_end + 1.0)
            if rel.any():
                ir = int(np.flatnonzero(rel)[0]) + int(np.argmax(y[rel]))
                lv = float(y[ir]) - ref
                if lv > 0:
                    after = np.flatnonzero(y[ir:] <= ref + 0.1 * lv)
                    if after.size:
                        i_lo = ir + int(after[0])
                        hi = np.flatnonzero(y[ir : i_lo + 1] >= ref + 0.9 * lv)
                        i_hi = ir + int(hi[-1]) if hi.size else ir
                        recovery = float(t[i_lo] - t[i_hi])
        reps.append(
            ContractionRep(
                step.kind, step.index, ref, peak, mean_level, rise, recovery, float(t[ip])
            )
        )
    return reps


def drop_reps(track: Track, rest: float) -> list[DropRep]:
    """One :class:`DropRep` per drop step (the inhale, and 1.5 s after it)."""
    reps: list[DropRep] = []
    for step in track.of_kind(StepKind.DROP):
        ref = track.reference_before(step.t_start, rest)
        w = track.window(step.t_start, step.t_end + 1.5)
        t, y = track.t[w], track.xs[w]
        if y.size < 3:
            continue
        i = int(np.argmin(y))
        inh = t <= step.t_end
        rise = float(y[inh].max() - ref) if inh.any() else 0.0
        reps.append(DropRep(step.index, ref, float(y[i]), rise, float(t[i])))
    return reps


def _breaths_in(breaths: Sequence[BreathMark], steps: Sequence[StepSegment]) -> list[list[float]]:
    """Inhale onsets per step (breaths whose whole inhale lies inside the step)."""
    out: list[list[float]] = []
    for s in steps:
        out.append(
            [
                b.inhale_onset
                for b in breaths
                if s.t_start <= b.inhale_onset and b.exhale_onset <= s.t_end
            ]
        )
    return out


def breath_figures(track: Track, breath: BreathData) -> BreathFigures:
    """Natural rate, depth and regularity from breaths in free-breathing steps."""
    steps = [s for s in track.of_kind(*BREATHING_KINDS)]
    used = [
        b
        for b in breath.breaths
        if any(s.t_start <= b.inhale_onset and b.exhale_onset <= s.t_end for s in steps)
    ]
    periods: list[float] = []
    for onsets in _breaths_in(breath.breaths, steps):
        periods.extend(float(p) for p in np.diff(onsets) if 1.0 <= p <= 30.0)
    rate = reg = None
    if len(periods) >= 2:
        per = float(np.median(periods))
        rate = 60.0 / per
        reg = max(0.0, 1.0 - float(np.std(periods)) / float(np.mean(periods)))
        if breath.from_pressure and reg < MIN_RIPPLE_REGULARITY:
            rate = None  # the probe's ripple picked up more than breathing
    elif used:
        span = sum(s.duration for s in steps)
        rate = 60.0 * len(used) / span if span > 0 else None
    amps = [b.amplitude for b in used if math.isfinite(b.amplitude)]
    depth = float(np.median(amps)) if amps else None
    return BreathFigures(rate, depth, reg, len(used), breath.unit, breath.source)


def ripple_amplitude(track: Track, breath: BreathData) -> float:
    """Pressure rise over a natural inhale (median over free breaths), sensor units.

    Returns 0 when no breaths fall in free-breathing steps.
    """
    steps = track.of_kind(*BREATHING_KINDS)
    rises = []
    for b in breath.breaths:
        if any(s.t_start + 1.0 <= b.inhale_onset and b.exhale_onset <= s.t_end for s in steps):
            lo, hi = track.at(np.array([b.inhale_onset, b.exhale_onset]))
            rises.append(float(hi - lo))
    return float(np.median(rises)) if rises else 0.0


# ----------------------------------------------------------------------------- zones, pacer


def thresholds_from(
    baseline: Baseline, mvc: float, drop: float, ripple: float, unit: str
) -> dict[str, Any]:
    """The person's zones, shaped like ``biofeedback.signal.types.Thresholds``.

    * drop: below rest by a quarter of the person's maximal (seen) drop, but
      clear of the resting variability (3 sd) -- capped at 60 % of the drop so
      a drop close to the noise still registers;
    * contraction: above rest by 10 % of MVC, clear of the variability (4 sd)
      and of the breathing ripple;
    * strain: the same rise (what tells strain from a squeeze is the breath
      hold or the second channel, not the size).

    Parameters
    ----------
    baseline : Baseline
        Resting figures.
    mvc, drop, ripple : float
        MVC amplitude, seen drop depth, breathing ripple (sensor units).
    unit : str
        The sensor's unit (the pipeline checks it against its stream's).
    """
    sd = max(baseline.sd, baseline.noise_sd, 1e-9)
    drop = max(drop, 0.0)
    md = min(max(0.25 * drop, 3.0 * sd), 0.6 * drop) if drop > 0 else 3.0 * sd
    mc = min(max(0.10 * mvc, 4.0 * sd, 2.0 * max(ripple, 0.0)), 0.5 * mvc) if mvc > 0 else 6 * sd
    return {
        "rest_level": baseline.mean,
        "drop_margin": md,
        "contraction_margin": mc,
        "strain_margin": mc,
        "unit": unit,
    }


def _half(x: float) -> float:
    return max(0.5, round(2.0 * x) / 2.0)


def suggest_pacer(rate_bpm: float | None, contract_s: float = 5.0) -> dict[str, float]:
    """A breathing pacer from the natural rate, and a work/rest pair.

    The rate is taken halfway from the natural rate toward :data:`RESONANCE_BPM`
    (a slower rate than the person's own, without asking for a jump they
    cannot follow yet); a person already at or below it keeps their own (never
    below 4/min). Exhale 60 % of the cycle, inhale 40 % (the slow inhale
    carries the drop). For contraction work the rest is at least twice the
    contraction (``relax_s >= 2 * contract_s``).
    """
    natural = rate_bpm if rate_bpm is not None and math.isfinite(rate_bpm) else 12.0
    if natural > RESONANCE_BPM:
        rate = natural - 0.5 * (natural - RESONANCE_BPM)
    else:
        rate = max(natural, 4.0)
    period = 60.0 / rate
    inhale = _half(0.4 * period)
    exhale = _half(max(period - inhale, inhale))
    contract = _half(min(max(contract_s, 2.0), 10.0))
    return {
        "inhale_s": inhale,
        "hold_s": 0.0,
        "exhale_s": exhale,
        "rate_bpm": round(60.0 / (inhale + exhale), 2),
        "natural_rate_bpm": round(natural, 2),
        "contract_s": contract,
        "relax_s": 2.0 * contract,
    }


# ----------------------------------------------------------------------------- result


@dataclass
class CalibrationResult:
    """Everything a calibration found, in sensor units, with the unit systems to show it.

    Parameters
    ----------
    kind : str
        ``"quick"`` or ``"assessment"``.
    unit : str
        The sensor's unit.
    baseline : Baseline
        Resting figures.
    contractions : list of ContractionRep
        The squeezes (flicks and holds in an assessment).
    drops : list of DropRep
        The slow-inhale drops.
    breathing : BreathFigures
        Natural breathing.
    ripple : float
        Breathing ripple on the probe, sensor units.
    conversion : Conversion or None
        To cmH2O when known.
    assessment : dict or None
        Glazer-style figures (``calibration.assessment``), sensor units.
    warnings : list of str
        Things worth knowing that did not refuse the calibration.
    """

    kind: str
    unit: str
    baseline: Baseline
    contractions: list[ContractionRep]
    drops: list[DropRep]
    breathing: BreathFigures
    ripple: float
    conversion: Conversion | None = None
    assessment: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def mvc(self) -> float:
        """Maximal voluntary contraction above rest (best attempt), sensor units."""
        return max((r.amplitude for r in self.contractions), default=0.0)

    @property
    def drop_depth(self) -> float:
        """Maximal voluntary drop below rest as the sensor sees it (best attempt)."""
        return max((r.depth for r in self.drops), default=0.0)

    @property
    def drop_depth_corrected(self) -> float:
        """The floor's own drop: the seen drop plus the ripple the inhale adds."""
        return self.drop_depth + max(self.ripple, 0.0) if self.drop_depth > 0 else 0.0

    @property
    def drop_snr(self) -> float:
        """Seen drop over the resting variability (how far from the noise it is)."""
        sd = max(self.baseline.sd, self.baseline.noise_sd)
        return self.drop_depth / sd if sd > 0 else math.inf

    def thresholds(self) -> dict[str, Any]:
        """Thresholds in the sensor's units (what the pipeline gets)."""
        return thresholds_from(self.baseline, self.mvc, self.drop_depth, self.ripple, self.unit)

    def pacer(self) -> dict[str, float]:
        """The suggested pacer."""
        contract = 5.0
        endurance = (self.assessment or {}).get("endurance")
        if endurance:
            held = endurance["held_above_half_s"][0]
            if held is not None:
                contract = float(held) / 6.0  # a sixth of what they held: sustainable
        return suggest_pacer(self.breathing.rate_bpm, contract)

    # -- figures in three unit systems --------------------------------------

    def figures(self, system: str = "sensor") -> dict[str, Any] | None:
        """The figures in ``"sensor"`` units, the ``"common"`` unit or ``"normalised"``.

        Returns None for ``"common"`` without a known conversion.
        """
        level: Callable[[float], float]
        delta: Callable[[float], float]
        if system == "sensor":
            unit = self.unit
            level = delta = float
        elif system == "common":
            conv = self.conversion
            if conv is None:
                return None
            unit = conv.unit
            level, delta = conv.level, conv.delta
        elif system == "normalised":
            mvc = self.mvc
            if not mvc > 0:
                return None
            rest = self.baseline.mean
            unit = NORMALISED_UNIT

            def level(x: float) -> float:
                return 100.0 * (x - rest) / mvc

            def delta(x: float) -> float:
                return 100.0 * x / mvc

        else:
            raise ValueError(f"system must be sensor, common or normalised, not {system!r}")
        b = self.baseline
        th = self.thresholds()
        out: dict[str, Any] = {
            "unit": unit,
            "rest": {
                "mean": _r(level(b.mean)),
                "sd": _r(delta(b.sd)),
                "cv_pct": _r(b.cv_pct, 2) if system == "common" else None,
                "noise_sd": _r(delta(b.noise_sd)),
                "drift_per_min": _r(delta(b.drift_per_min)),
                "duration_s": _r(b.duration_s, 2),
            },
            "mvc": _r(delta(self.mvc)),
            "mvc_attempts": [_r(delta(r.amplitude)) for r in self.contractions],
            "drop_depth": _r(delta(self.drop_depth)),
            "drop_depth_corrected": _r(delta(self.drop_depth_corrected)),
            "drop_attempts": [_r(delta(r.depth)) for r in self.drops],
            "drop_snr": _r(self.drop_snr, 2),
            "ripple": _r(delta(self.ripple)),
            "thresholds": {
                "rest_level": _r(level(th["rest_level"])),
                "drop_margin": _r(delta(th["drop_margin"])),
                "contraction_margin": _r(delta(th["contraction_margin"])),
                "strain_margin": _r(delta(th["strain_margin"])),
                "unit": unit,
            },
        }
        if self.assessment is not None:
            from calibration.assessment import convert_assessment

            out["assessment"] = convert_assessment(self.assessment, level, delta)
        return out
