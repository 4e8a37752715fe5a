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
from collections.abc import Sequence
from typing import Any

import numpy as np

from calibration.measures import Baseline, BreathFigures, ContractionRep, DropRep
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

__all__ = [
    "RESONANCE_BPM",
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

