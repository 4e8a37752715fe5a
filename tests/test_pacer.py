"""The one breath pacer shared by the app and the virtual body."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from biofeedback.protocols.pacer import Pacer as AppPacer
from devices.intent import BreathTarget, Intent
from devices.pacer import AdaptivePacer, Pacer
from devices.virtual.body import BodyModel
from devices.vocab import BreathPhase


def test_the_app_and_the_simulator_use_one_class() -> None:
    assert AppPacer is Pacer
    p = Pacer()
    assert (p.inhale_s, p.hold_s, p.exhale_s, p.t0, p.depth) == (4.0, 0.0, 6.0, 0.0, 1.0)
    assert p.rate_bpm == pytest.approx(6.0)


def test_target_onsets_and_curve_agree() -> None:
    p = Pacer(inhale_s=3.0, hold_s=1.0, exhale_s=5.0, t0=2.0, depth=1.2)
    inh, exh = p.onsets(0.0, 40.0)
    assert np.allclose(np.diff(inh), p.period) and np.allclose(exh - inh[: exh.size], 4.0)
    for t in inh:
        tgt = p(float(t) + 1e-6)
        assert tgt == p.target(float(t) + 1e-6)
        assert tgt.phase is BreathPhase.INHALE and tgt.depth == 1.2
        assert p.target(float(t) + 3.5).phase is BreathPhase.PAUSE
        assert p.cycle(float(t) + 0.5) == round((t - p.t0) / p.period)
    for t in exh:
        assert p.target(float(t) + 1e-6).phase is BreathPhase.EXHALE
    # the curve is empty at an inhale onset, full through the hold
    assert p.curve(inh)[0] == pytest.approx(0.0)
    assert p.curve(np.array([inh[1] + 3.5]))[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("i", "h", "e"), [(0.0, 0.0, 6.0), (4.0, -1.0, 6.0), (4.0, 0.0, 0.0)])
def test_bad_durations_are_refused(i: float, h: float, e: float) -> None:
    with pytest.raises(ValueError, match="inhale and exhale"):
        Pacer(inhale_s=i, hold_s=h, exhale_s=e)


# ------------------------------------------------------------------ adaptive pacer


class _ShortBreathPerson:
    """A person whose exhale lasts at most ``limit`` s: asked for longer, they cut it short
    and breathe in early. A longer exhale within reach (``reach`` x limit) that they complete
    trains them: the limit grows part of the way to it. Far beyond reach, no progress."""

    def __init__(self, pacer: Any, limit: float = 3.0, reach: float = 1.3) -> None:
        self.pacer = pacer
        self.limit = limit
        self.reach = reach
        self.phase = BreathPhase.INHALE
        self.start = 0.0
        self.length = 2.0
        self.prev_paced = BreathPhase.INHALE

    def __call__(self, t: float) -> Intent:
        tgt = self.pacer.target(t)
        paced_inhale = tgt.phase is BreathPhase.INHALE and self.prev_paced is not BreathPhase.INHALE
        self.prev_paced = tgt.phase
        if self.phase is BreathPhase.INHALE and t - self.start >= self.length:
            self.phase, self.start = BreathPhase.EXHALE, t
            asked = tgt.exhale_s
            self.length = min(asked, self.limit)
            if asked <= self.reach * self.limit:  # within reach: practice lengthens it
                self.limit += 0.5 * max(asked - self.limit, 0.0)
        elif self.phase is BreathPhase.EXHALE and (paced_inhale or t - self.start >= self.length):
            self.phase, self.start, self.length = BreathPhase.INHALE, t, tgt.inhale_s
        progress = min((t - self.start) / self.length, 1.0)
        breath = BreathTarget(phase=self.phase, progress=progress, inhale_s=tgt.inhale_s,
                              hold_s=0.0, exhale_s=tgt.exhale_s)
        return Intent(breath=breath)


def _practise(pacer: AdaptivePacer, minutes: float, seed: int = 2) -> AdaptivePacer:
    body = BodyModel(seed, intent=_ShortBreathPerson(pacer), t0=0.0)
    told = 0.0
    for now in np.arange(5.0, minutes * 60.0, 1.0):
        body.lung_volume([now])  # the body breathes up to now (and a little ahead)
        inh, exh = body.breath_onsets(told, now - 1.0)
        for a, b in itertools.pairwise(inh):
            e = exh[(exh > a) & (exh < b)]
            if e.size and a >= told:
                pacer.observe(float(a), float(e[0]), float(b))
                told = float(b) - 1e-6
    return pacer


def test_adaptive_pacer_leads_a_short_breather_to_the_goal() -> None:
    goal = Pacer(inhale_s=4.0, exhale_s=6.0)  # 6/min; the person is comfortable near 12/min
    comfy = Pacer(inhale_s=2.0, exhale_s=3.0)
    fixed = _practise(AdaptivePacer(goal, start=goal, step=0.0), 6.0)
    adaptive = _practise(AdaptivePacer(goal, start=comfy), 6.0)
    followed = lambda p: np.mean([not s.trouble for s in p.seen[-10:]])  # noqa: E731
    # A fixed 6/min pacer: the exhale is always cut short, no progress.
    assert followed(fixed) < 0.2 and fixed.current == replace(goal, t0=fixed.current.t0)
    # Adaptive: the exhale lengthens step by step (easing back when cut short)...
    exh = np.array([c.exhale_s for c in adaptive.cycles])
    assert max(np.diff(exh)) <= adaptive.max_step_s + 1e-9 and exh[0] == 3.0
    assert np.argmax(exh > 5.0) >= 5  # gradually: over several breaths
    # ...and the person ends up breathing with it at (nearly) the goal rate.
    assert followed(adaptive) >= 0.8
    assert adaptive.current.rate_bpm == pytest.approx(goal.rate_bpm, abs=0.5)
    assert "leading to 6.0/min" in adaptive.describe()


def test_adaptive_pacer_eases_back_when_the_breath_cannot_follow() -> None:
    goal = Pacer(inhale_s=4.0, exhale_s=6.0)
    p = _practise(AdaptivePacer(goal), 2.0)  # starts at the goal: too slow for this person
    exh = [c.exhale_s for c in p.cycles]
    assert min(exh) < 0.8 * goal.exhale_s  # it eased the exhale back towards theirs
    trouble = [s.trouble for s in p.seen]
    assert sum(trouble[:6]) >= 3 and sum(trouble[-6:]) <= 1  # then they could follow


def test_adaptive_pacer_plans_each_cycle_once() -> None:
    p = AdaptivePacer(Pacer(inhale_s=4.0, exhale_s=6.0), start=Pacer(inhale_s=2.0, exhale_s=3.0))
    first = p.target(1.0)
    assert first.phase is BreathPhase.INHALE and first.inhale_s == 2.0
    p.target(12.0)  # plans cycles 2 and 3 as they were
    planned = p.cycles
    p.observe(0.1, 2.1, 5.0)  # a followed breath changes only cycles not yet planned
    assert p.cycles == planned and p.cycle_at(20.0).exhale_s > 3.0
    inh, exh = p.onsets(0.0, 10.0)
    assert np.allclose(inh, [0.0, 5.0]) and np.allclose(exh, [2.0, 7.0])
