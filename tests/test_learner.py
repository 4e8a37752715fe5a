"""The virtual learner: a beginner's mistakes, scores that rise with skill, progress over weeks."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.session import SessionEngine, SessionSummary
from biofeedback.signal.pipeline import Pipeline
from devices.clock import SimClock
from devices.intent import Intent, PelvicAction
from devices.pacer import Pacer as BodyPacer
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.body.learner import learner_params, skill_over_sessions
from devices.virtual.direct import DirectSource
from devices.vocab import PelvicState

PACER = BodyPacer(inhale_s=4.0, exhale_s=6.0, t0=5.0)


def drop_set(t: float) -> Intent:
    """Drop on each paced inhale from 5 s on."""
    if t < 5.0:
        return Intent()
    return Intent(breath=PACER(t), pelvic=PelvicAction.DROP)


def truth(skill: float, seed: int) -> dict[str, float]:
    """Ground truth over 70 s of drop-on-inhale reps."""
    body = BodyModel(seed, params=BodyParams(skill=skill), intent=drop_set, retention_s=200.0)
    t = np.arange(5.0, 75.0, 0.02)
    _, pelvic = body.labels(t)
    comp = body.components(t)
    return {
        "strain": float(np.mean(pelvic == PelvicState.STRAIN)),
        "contraction": float(np.mean(pelvic == PelvicState.CONTRACTION)),
        "depth": float(-np.min(comp["drop"])),
    }


def test_a_beginner_pushes_squeezes_and_drops_shallow() -> None:
    novice = [truth(0.0, s) for s in range(3)]
    expert = [truth(1.0, s) for s in range(3)]
    assert sum(n["strain"] for n in novice) > 0.0
    assert sum(n["contraction"] for n in novice) > 0.05
    assert all(e["strain"] == 0.0 and e["contraction"] == 0.0 for e in expert)
    assert np.mean([n["depth"] for n in novice]) < 0.7 * np.mean([e["depth"] for e in expert])


def test_skill_one_is_the_skilled_person_exactly() -> None:
    t = np.arange(0.0, 60.0, 0.02)
    a = BodyModel(3, intent=drop_set).pelvic_pressure(t)
    b = BodyModel(3, params=BodyParams(skill=1.0), intent=drop_set).pelvic_pressure(t)
    assert np.array_equal(a, b)


def test_skill_is_checked() -> None:
    with pytest.raises(ValueError, match="skill"):
        BodyParams(skill=1.5)


async def _session(seed: int, skill: float) -> SessionSummary:
    clock = SimClock(None)
    src = DirectSource(clock, seed, params=BodyParams(skill=skill))
    engine = SessionEngine(clock, Pipeline(list(src.streams)), "quick",
                           pacer=Pacer(4.0, 0.0, 6.0), duration=90.0)
    src.body.intent = engine.intent
    return await engine.run(src.chunks())


def test_scores_rise_with_skill_and_repeat() -> None:
    seeds = range(3)
    low = [asyncio.run(_session(s, 0.1)) for s in seeds]
    high = [asyncio.run(_session(s, 0.9)) for s in seeds]
    mean_low = np.mean([s.mean_score or 0.0 for s in low])
    mean_high = np.mean([s.mean_score or 0.0 for s in high])
    assert mean_low < 50.0 < mean_high
    assert sum(s.strain_count + s.contracted_reps for s in low) > 0
    again = asyncio.run(_session(0, 0.1))
    assert again.to_json() == low[0].to_json()


def test_skill_rises_over_sessions_with_bad_days() -> None:
    curve = skill_over_sessions(42, seed=1)
    assert curve == skill_over_sessions(42, seed=1)
    assert all(0.0 <= s <= 1.0 for s in curve)
    assert np.mean(curve[-7:]) > np.mean(curve[:7]) + 0.4
    dips = sum(1 for a, b in itertools.pairwise(curve) if b < a - 0.1)
    assert dips >= 2  # bad days


def _rest(seed: int, skill: float) -> tuple[float, float]:
    """Resting mean and variability (SD about the line) over a minute lying at rest."""
    body = BodyModel(seed, params=learner_params(skill, "supine"))
    t = np.arange(15.0, 75.0, 0.02)
    x = body.pelvic_pressure(t)[:, 0]
    resid = x - np.polyval(np.polyfit(t, x, 1), t)
    return float(x.mean()), float(resid.std())


def test_resting_tone_and_its_variability_fall_with_skill() -> None:
    # The demo's assessments: the same person on the first day and six weeks on
    # (skill of the day, bad days included), each with the day's own body seed.
    for seed in range(3):
        skills = skill_over_sessions(36, seed)
        first = _rest(seed * 1000 + 500_000, skills[0])
        last = _rest(seed * 1000 + 35 + 500_000, skills[-1])
        assert last[0] < first[0] - 2.0  # cmH2O: a guarded floor lets go
        assert last[1] < 0.85 * first[1]
    # Guarding alone, the day's noise aside: 6 cmH2O higher and more unsteady.
    lo, hi = _rest(7, 0.0), _rest(7, 1.0)
    assert lo[0] - hi[0] == pytest.approx(6.0, abs=0.3) and lo[1] > 1.15 * hi[1]
