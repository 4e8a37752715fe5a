"""Resonance breathing: the stepped protocol and the choice of a person's rate.

Paced breathing at 6.5, 6.0, 5.5, 5.0 and 4.5 breaths/min (the Lehrer-Vaschillo
protocol), two minutes each; the heart rhythm (RR intervals from a chest strap)
swings most at the person's resonance rate. Per step this module computes the
heart-rate swing (mean peak-trough per breath), the low-frequency power of the
RR series (0.04-0.15 Hz), the paced swing (the RR rhythm at exactly the
pacer's frequency) and how closely the heart rhythm followed the pacer (the
share of its variance at the pacer's frequency), then picks the rate where
the paced swing is largest among the steps the breath followed (refined
between the tested rates by a parabola through the best step and its
neighbours).

Pure: RR intervals and the schedule in, figures out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from devices.pacer import Pacer

__all__ = [
    "DEFAULT_RATES",
    "LF_BAND_HZ",
    "ResonanceResult",
    "ResonanceStep",
    "StepFigures",
    "analyse_resonance",
    "pacer_for_rate",
    "resonance_schedule",
]

FloatArray = npt.NDArray[np.float64]

#: The protocol's rates, breaths per minute, fastest first.
DEFAULT_RATES: Final = (6.5, 6.0, 5.5, 5.0, 4.5)
#: Low-frequency band of heart-rate variability (Hz).
LF_BAND_HZ: Final = (0.04, 0.15)
#: Inhale share of a paced breath (exhale longer: it keeps the release).
INHALE_SHARE: Final = 0.4
_TACHO_HZ: Final = 4.0
_SETTLE_S: Final = 15.0  # start of each step left out (the rhythm changes over)
_FOLLOW_MIN: Final = 0.25


def pacer_for_rate(rate_bpm: float, t0: float = 0.0) -> Pacer:
    """A pacer at ``rate_bpm``: 40 % inhale, 60 % exhale, no hold."""
    if not 1.0 <= rate_bpm <= 30.0:
        raise ValueError(f"breath rate must be 1-30 breaths/min, {rate_bpm} is invalid")
    period = 60.0 / rate_bpm
    return Pacer(inhale_s=INHALE_SHARE * period, exhale_s=(1 - INHALE_SHARE) * period, t0=t0)


@dataclass(frozen=True)
class ResonanceStep:
    """One paced step: a rate from ``t_start`` to ``t_end`` (clock time)."""

    rate_bpm: float
    t_start: float
    t_end: float

    @property
    def pacer(self) -> Pacer:
        return pacer_for_rate(self.rate_bpm, self.t_start)


def resonance_schedule(
    t0: float, step_s: float = 120.0, rates: Sequence[float] = DEFAULT_RATES
) -> tuple[ResonanceStep, ...]:
    """The steps back to back from ``t0``, each ``step_s`` long.

    Raises
    ------
    ValueError
        A step shorter than 30 s (too short to measure) or no rates.
    """
    if not step_s >= 30.0:
        raise ValueError(f"a step must last at least 30 s, {step_s} is invalid")
    if not rates:
        raise ValueError("no rates to test")
    return tuple(
        ResonanceStep(float(r), t0 + k * step_s, t0 + (k + 1) * step_s)
        for k, r in enumerate(rates)
    )


@dataclass(frozen=True)
class StepFigures:
    """What one step showed.

    Parameters
    ----------
    rate_bpm : float
        The pacer's rate.
    swing_bpm : float
        Mean heart-rate peak-trough per paced breath.
    lf_power_ms2 : float
        Power of the RR series in 0.04-0.15 Hz.
    following : float
        0..1: share of the RR variance explained by a rhythm at the pacer's
        frequency (how well the breath, and the heart with it, followed).
    peak_bpm : float
        Where the LF spectrum peaks, in breaths/min.
    beats : int
        Beats used.
    paced_ms : float
        Peak-trough of the RR rhythm at exactly the pacer's frequency (a
        sinusoid fitted by least squares): the swing the breathing drives,
        with the heart's other variability left out.
    """

    rate_bpm: float
    swing_bpm: float
    lf_power_ms2: float
    following: float
    peak_bpm: float
    beats: int
    paced_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_bpm": self.rate_bpm,
            "paced_swing_ms": round(self.paced_ms, 1),
            "swing_bpm": round(self.swing_bpm, 2),
            "lf_power_ms2": round(self.lf_power_ms2, 1),
            "following": round(self.following, 3),
            "peak_bpm": round(self.peak_bpm, 2),
            "beats": self.beats,
        }


@dataclass(frozen=True)
class ResonanceResult:
    """The assessment: every step's figures, the chosen rate and why."""

    steps: tuple[StepFigures, ...]
    rate_bpm: float
    why: str

    def pacer(self) -> Pacer:
        """The pacer at the chosen rate."""
        return pacer_for_rate(self.rate_bpm)

    def to_json(self) -> dict[str, Any]:
        p = self.pacer()
        return {
            "rate_bpm": self.rate_bpm,
            "why": self.why,
            "pacer": {"inhale_s": round(p.inhale_s, 3), "hold_s": 0.0,
                      "exhale_s": round(p.exhale_s, 3)},
            "steps": [s.to_json() for s in self.steps],
        }


def _tachogram(beats: FloatArray, rr: FloatArray, t0: float, t1: float) -> FloatArray:
    """RR (s) resampled at 4 Hz over ``[t0, t1)`` (linear between beats)."""
    grid = np.arange(t0, t1, 1.0 / _TACHO_HZ)
    out: FloatArray = np.interp(grid, beats, rr)
    return out


def step_figures(beats: FloatArray, rr: FloatArray, step: ResonanceStep) -> StepFigures | None:
    """One step's figures from the beats inside it (None: too few beats)."""
    ta = step.t_start + min(_SETTLE_S, 0.25 * (step.t_end - step.t_start))
    inside = (beats >= ta) & (beats < step.t_end)
    if np.count_nonzero(inside) < 20:
        return None
    b, r = beats[inside], rr[inside]
    tach = _tachogram(b, r, ta, step.t_end)
    from scipy import signal  # here: the window imports this module, scipy costs ~1.5 s

    rr_ms = signal.detrend(tach * 1000.0)
    freqs, psd = signal.periodogram(rr_ms, fs=_TACHO_HZ, window="hann", detrend=False)
    df = freqs[1] - freqs[0]
    lf = (freqs >= LF_BAND_HZ[0]) & (freqs <= LF_BAND_HZ[1])
    lf_power = float(np.sum(psd[lf]) * df)
    f_pace = step.rate_bpm / 60.0
    peak = float(freqs[lf][np.argmax(psd[lf])]) * 60.0 if lf.any() else math.nan
    # Heart-rate swing per paced breath: max - min of HR within each whole cycle.
    hr = 60.0 / tach
    t = ta + np.arange(tach.size) / _TACHO_HZ
    pacer = step.pacer
    k = np.floor((t - pacer.t0) / pacer.period).astype(int)
    swings = [float(np.ptp(hr[k == c])) for c in np.unique(k)
              if np.count_nonzero(k == c) >= 0.9 * pacer.period * _TACHO_HZ]
    swing = float(np.mean(swings)) if swings else float(np.ptp(hr))
    paced = _paced_swing(t, rr_ms, f_pace)
    var = float(np.var(rr_ms))
    return StepFigures(
        paced_ms=paced,
        rate_bpm=step.rate_bpm,
        swing_bpm=swing,
        lf_power_ms2=lf_power,
        # Share of the RR variance the pacer's rhythm explains (a sinusoid of
        # peak-trough P has variance P^2 / 8).
        following=min(paced**2 / 8.0 / var, 1.0) if var > 0 else 0.0,
        peak_bpm=peak,
        beats=int(b.size),
    )


def _paced_swing(t: FloatArray, x: FloatArray, f: float) -> float:
    """Peak-trough of the sinusoid at ``f`` that best fits ``x`` (least squares)."""
    w = 2.0 * np.pi * f * t
    design = np.column_stack((np.sin(w), np.cos(w), np.ones_like(t)))
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return float(2.0 * math.hypot(coef[0], coef[1]))


def analyse_resonance(
    beats: npt.ArrayLike, rr: npt.ArrayLike, steps: Sequence[ResonanceStep]
) -> ResonanceResult:
    """Each step's figures and the chosen rate.

    Parameters
    ----------
    beats, rr : array_like
        Beat times (clock time, s) and the RR interval ending at each (s).
    steps : sequence of ResonanceStep
        The schedule that was paced.

    Raises
    ------
    ValueError
        Fewer than two steps with enough beats (nothing to compare).
    """
    b = np.asarray(beats, dtype=np.float64)
    r = np.asarray(rr, dtype=np.float64)
    ok = np.isfinite(b) & np.isfinite(r) & (r > 0.25) & (r < 2.5)  # ectopics and gaps out
    figs = [f for f in (step_figures(b[ok], r[ok], s) for s in steps) if f is not None]
    if len(figs) < 2:
        raise ValueError("too few heart beats in the steps to compare the rates")
    return ResonanceResult(tuple(figs), *_choose(figs))


def _choose(figs: Sequence[StepFigures]) -> tuple[float, str]:
    """The rate whose paced swing is largest among the steps the breath followed.

    The paced swing (the RR rhythm at the pacer's own frequency) is the
    resonance itself; the heart-rate swing and the LF power, which also count
    the heart's other variability, are reported beside it.
    """
    followed = [f for f in figs if f.following >= _FOLLOW_MIN] or list(figs)
    best = max(followed, key=lambda f: f.paced_ms)
    rate = _vertex(sorted(followed, key=lambda f: f.rate_bpm), best)
    ranked = sorted(followed, key=lambda f: f.paced_ms, reverse=True)
    runner = ranked[1] if len(ranked) > 1 else best
    top_lf = max(followed, key=lambda f: f.lf_power_ms2)
    why = (
        f"the heart rhythm swung most at {best.rate_bpm:g}/min"
        + (f" (the peak lies towards {runner.rate_bpm:g}/min: {rate:g})"
           if rate != best.rate_bpm else "")
        + f": {best.paced_ms:.0f} ms "
        f"peak-trough at the breathing rhythm (next: {runner.paced_ms:.0f} ms at "
        f"{runner.rate_bpm:g}/min), heart rate {best.swing_bpm:.1f} bpm up and down per breath, "
        f"LF power {best.lf_power_ms2:.0f} ms²"
        + ("" if top_lf is best else f" (largest LF power at {top_lf.rate_bpm:g}/min)")
    )
    lost = [f.rate_bpm for f in figs if f not in followed]
    if lost:
        why += "; not counted, the breath did not follow the pacer at " + ", ".join(
            f"{x:g}" for x in lost) + "/min"
    return rate, why


def _vertex(by_rate: Sequence[StepFigures], best: StepFigures) -> float:
    """The peak of a parabola through the best step and its neighbours (0.1/min steps).

    Every step's swing carries the heart's own variability; the neighbours'
    swings locate the peak between the tested rates better than the best step
    alone. At the end of the range, the end rate.
    """
    k = by_rate.index(best)
    if k == 0 or k == len(by_rate) - 1:
        return best.rate_bpm
    lo, mid, hi = by_rate[k - 1], best, by_rate[k + 1]
    den = lo.paced_ms - 2.0 * mid.paced_ms + hi.paced_ms
    if not den < 0:
        return best.rate_bpm
    off = min(max(0.5 * (lo.paced_ms - hi.paced_ms) / den, -0.5), 0.5)
    step = hi.rate_bpm - mid.rate_bpm if off > 0 else mid.rate_bpm - lo.rate_bpm
    return round(mid.rate_bpm + off * step, 1)
