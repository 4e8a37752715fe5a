"""Glazer-style assessment figures, adapted from surface EMG to pressure.

The clinical protocol (Glazer; timings in ``notes/field.md``): a 60 s
pre-baseline rest, 5 quick flicks (phasic), 5 ten-second holds with 10 s rest
(tonic), a 60 s endurance hold, a 60 s post-baseline rest -- here followed by
a set of reverse-Kegel drops (slow inhales letting the floor drop), the part
this project trains.

Figures, per phase: resting mean and variability (pre and post, and their
change), peak and mean amplitude above the level before each contraction,
rise (10 -> 90 %) and recovery (90 -> 10 % from the release) times, the
endurance slope (linear fit of the held level over the hold) and fatigue
ratio (last 10 s over first 10 s), the time held above half the MVC, and
drop depth.

Reliability note (Oleksy 2021, ``notes/field.md``): mean and peak amplitudes
are good between trials and moderate between days; rise and recovery times
are poor. They are reported, but no threshold depends on them.

Values are kept as ``(value, kind)`` pairs while computing, ``kind`` saying
how a unit change applies: ``"level"`` (an absolute reading), ``"delta"`` (a
difference), or ``"none"`` (seconds, ratios, counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from calibration.compute import baseline_of, contraction_reps
from calibration.measures import Baseline, ContractionRep, DropRep
from calibration.steps import StepKind
from calibration.track import Track

__all__ = ["assessment_figures", "convert_assessment", "endurance_figures"]

Value = tuple[float | int | None, str]


def _v(x: float | None, kind: str = "delta") -> Value:
    if isinstance(x, int):
        return (x, kind)
    if x is None or not math.isfinite(x):
        return (None, kind)
    return (float(x), kind)


def _mean(xs: Sequence[float]) -> float | None:
    vals = [x for x in xs if math.isfinite(x)]
    return float(np.mean(vals)) if vals else None


def _rest(b: Baseline) -> dict[str, Value]:
    return {
        "mean": _v(b.mean, "level"),
        "sd": _v(b.sd),
        "noise_sd": _v(b.noise_sd),
        "drift_per_min": _v(b.drift_per_min),
        "duration_s": _v(b.duration_s, "none"),
    }


def _contractions(reps: Sequence[ContractionRep]) -> dict[str, Any]:
    amps = [r.amplitude for r in reps]
    means = [r.mean_amplitude for r in reps]
    return {
        "n": _v(len(reps), "none"),
        "peak_amplitude": _v(max(amps) if amps else None),
        "mean_peak_amplitude": _v(_mean(amps)),
        "mean_amplitude": _v(_mean(means)),
        "amplitude_cv_pct": _v(
            100.0 * float(np.std(amps)) / float(np.mean(amps))
            if len(amps) >= 2 and np.mean(amps) > 0
            else None,
            "none",
        ),
        "rise_s": _v(_mean([r.rise_s for r in reps]), "none"),
        "recovery_s": _v(_mean([r.recovery_s for r in reps]), "none"),
        "attempts": [
            {
                "index": _v(r.index, "none"),
                "amplitude": _v(r.amplitude),
                "mean_amplitude": _v(r.mean_amplitude),
                "rise_s": _v(r.rise_s, "none"),
                "recovery_s": _v(r.recovery_s, "none"),
            }
            for r in reps
        ],
    }


def endurance_figures(track: Track, rest: float, mvc: float) -> dict[str, Value] | None:
    """Figures of the (first) endurance hold; None when there is none.

    The slope is a least-squares line through the held level (above the level
    before the hold) from 1 s after the prompt to its end, in units per
    second; ``slope_pct_per_10s`` puts it against the first 10 s mean.
    """
    steps = track.of_kind(StepKind.ENDURANCE)
    if not steps:
        return None
    step = steps[0]
    reps = contraction_reps(track, rest, (StepKind.ENDURANCE,))
    ref = track.reference_before(step.t_start, rest)
    w = track.window(step.t_start + 1.0, step.t_end)
    t, y = track.t[w], track.xs[w] - ref
    if y.size < 10:
        return None
    tc = t - t.mean()
    slope = float(np.dot(tc, y - y.mean()) / max(float(np.dot(tc, tc)), 1e-12))
    first = y[t < t[0] + 10.0]
    last = y[t > t[-1] - 10.0]
    f_mean = float(first.mean()) if first.size else math.nan
    l_mean = float(last.mean()) if last.size else math.nan
    dt = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    held = float(np.count_nonzero(y >= 0.5 * mvc) * dt) if mvc > 0 else 0.0
    rep = reps[0] if reps else None
    return {
        "mean_amplitude": _v(float(y.mean())),
        "peak_amplitude": _v(rep.amplitude if rep else None),
        "slope_per_s": _v(slope),
        "slope_pct_per_10s": _v(
            100.0 * slope * 10.0 / f_mean if f_mean and f_mean > 0 else None, "none"
        ),
        "fatigue_ratio": _v(l_mean / f_mean if f_mean and f_mean > 0 else None, "none"),
        "held_above_half_s": _v(held, "none"),
        "rise_s": _v(rep.rise_s if rep else None, "none"),
        "recovery_s": _v(rep.recovery_s if rep else None, "none"),
        "duration_s": _v(step.duration, "none"),
    }


def assessment_figures(
    track: Track, rest: float, mvc: float, drops: Sequence[DropRep]
) -> dict[str, Any]:
    """All assessment figures (``(value, kind)`` pairs, sensor units)."""
    out: dict[str, Any] = {}
    pre_steps = track.of_kind(StepKind.PRE_BASELINE)
    post_steps = track.of_kind(StepKind.POST_BASELINE)
    pre = baseline_of(track, pre_steps[0]) if pre_steps else None
    post = baseline_of(track, post_steps[0]) if post_steps else None
    if pre is not None:
        out["pre_baseline"] = _rest(pre)
    if post is not None:
        out["post_baseline"] = _rest(post)
    if pre is not None and post is not None:
        change = post.mean - pre.mean
        out["baseline_change"] = {
            "mean": _v(change),
            "pct_of_mvc": _v(100.0 * change / mvc if mvc > 0 else None, "none"),
            "sd_ratio": _v(post.sd / pre.sd if pre.sd > 0 else None, "none"),
        }
    flicks = contraction_reps(track, rest, (StepKind.FLICK,))
    holds = contraction_reps(track, rest, (StepKind.HOLD,))
    if flicks:
        out["phasic"] = _contractions(flicks)
    if holds:
        out["tonic"] = _contractions(holds)
    endurance = endurance_figures(track, rest, mvc)
    if endurance is not None:
        out["endurance"] = endurance
    if drops:
        depths = [d.depth for d in drops]
        out["drops"] = {
            "n": _v(len(drops), "none"),
            "best_depth": _v(max(depths)),
            "mean_depth": _v(_mean(depths)),
            "attempts": [_v(d) for d in depths],
        }
    return out


def convert_assessment(
    fig: Any, level: Callable[[float], float], delta: Callable[[float], float]
) -> Any:
    """Plain JSON-ready figures from ``(value, kind)`` pairs, in a unit system."""
    if isinstance(fig, dict):
        return {k: convert_assessment(v, level, delta) for k, v in fig.items()}
    if isinstance(fig, list):
        return [convert_assessment(v, level, delta) for v in fig]
    if isinstance(fig, tuple) and len(fig) == 2 and isinstance(fig[1], str):
        value, kind = fig
        if value is None:
            return None
        if isinstance(value, int) and kind == "none":
            return value
        if kind == "level":
            x = level(value)
        elif kind == "delta":
            x = delta(value)
        else:
            x = float(value)
        return round(x, 4)
    return fig
