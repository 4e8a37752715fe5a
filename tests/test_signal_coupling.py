"""Breath-pelvic coupling scores, reasons, reps and summaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofeedback.signal.coupling import (
    CONTRACTED_EXHALE,
    DROP_TOO_SMALL,
    NO_DROP,
    PRESSURE_ROSE,
    RELEASE_LOST,
    STRAIN,
    WRONG_PHASE,
    CouplingScorer,
    score_cycle,
)
from biofeedback.signal.reps import RepPolicy, RepWindow, summarise_reps
from biofeedback.signal.results import CouplingResult
from biofeedback.signal.types import (
    BreathEvent,
    PelvicOutput,
    Quality,
)
from devices.vocab import BreathPhase, PelvicState

MD, MC = 1.0, 2.0
FS = 50.0
T = np.arange(0, 10, 1 / FS)  # inhale 0-4 s, exhale 4-10 s
INHALE = T < 4.0


def states_from(rel: np.ndarray, strain: np.ndarray | None = None) -> np.ndarray:
    """What a tracker with these margins would report (without hysteresis)."""
    s = np.full(rel.shape, PelvicState.REST, dtype=np.int8)
    s[rel < -MD] = PelvicState.DROP
    s[rel > MC] = PelvicState.CONTRACTION
    if strain is not None:
        s[strain & (rel > MC)] = PelvicState.STRAIN
    return s


def score(rel: np.ndarray, state: np.ndarray | None = None) -> CouplingResult:
    res = score_cycle(
        T,
        rel,
        states_from(rel) if state is None else state,
        0.0,
        4.0,
        10.0,
        rest_level=30.0,
        drop_margin=MD,
        contraction_margin=MC,
    )
    assert res is not None
    return res


def ramp_drop(depth: float, kept: float) -> np.ndarray:
    """Drop to ``-depth`` on the inhale, keep ``kept`` of it through the exhale."""
    inh = -depth * np.clip(T / 1.5, 0, 1)
    exh = -depth * kept
    return np.where(INHALE, inh, exh)


def test_drop_on_inhale_kept_on_exhale_scores_high_without_reasons() -> None:
    r = score(ramp_drop(2.0, 0.8))
    assert r.score >= 90 and r.reasons == ()
    assert r.good and not r.strain and not r.contracted
    assert r.drop == pytest.approx(2.0) and r.drop_ratio == pytest.approx(2.0)
    assert 0.8 <= r.release_kept <= 1.0
    assert r.inhale_level < 0 and r.exhale_level < 0


@pytest.mark.parametrize(
    ("rel", "reason", "max_score"),
    [
        (np.zeros(T.size), NO_DROP, 5),
        (ramp_drop(0.7, 0.8), DROP_TOO_SMALL, 50),
        (ramp_drop(2.0, 0.0), RELEASE_LOST, 70),
        (np.where(INHALE, 0.0, -2.0), WRONG_PHASE, 40),
        (np.where(INHALE, -2.0, 3.0), CONTRACTED_EXHALE, 30),
    ],
)
def test_faults_lose_points_with_a_reason(rel: np.ndarray, reason: str, max_score: float) -> None:
    r = score(rel)
    assert reason in r.reasons
    assert r.score <= max_score
    assert not r.good


def test_a_slow_descent_on_the_inhale_is_not_the_wrong_phase() -> None:
    """From rest, the floor descends through the whole inhale, so the inhale's
    mean sits above a kept release; it still dropped on the inhale."""
    inh = -3.0 * T / 4.0  # reaches -3 margins at the end of the inhale
    rel = np.where(INHALE, inh, -2.2)  # keeps most of it on the exhale
    r = score(rel)
    assert r.inhale_level > r.exhale_level + 0.5 * MD  # (what used to trigger it)
    assert WRONG_PHASE not in r.reasons
    assert r.score >= 90


def test_strain_scores_zero_and_is_never_a_drop() -> None:
    rel = np.where(INHALE, -2.0, 0.0)
    rel[(T > 5) & (T < 8)] = 6.0  # bearing down on the exhale
    st_ = states_from(rel, strain=np.ones(T.size, bool))
    r = score(rel, st_)
    assert r.score == 0.0 and r.strain and STRAIN in r.reasons


def test_a_rise_without_a_reported_state_still_caps_the_score() -> None:
    rel = ramp_drop(2.0, 0.8)
    rel[(T > 6) & (T < 6.1)] = 2.5  # a brief spike above the contraction margin
    st_ = np.full(T.size, PelvicState.DROP, dtype=np.int8)
    r = score(rel, st_)
    assert PRESSURE_ROSE in r.reasons and r.score <= 40


@settings(max_examples=60)
@given(
    depth=st.floats(0.0, 4.0),
    kept=st.floats(0.0, 1.0),
    bump_at=st.floats(0.0, 9.5),
    bump_len=st.floats(0.05, 5.0),
    bump=st.floats(0.01, 8.0),
)
def test_a_pressure_rise_is_never_rewarded(
    depth: float, kept: float, bump_at: float, bump_len: float, bump: float
) -> None:
    """Raising the pressure anywhere in the cycle never raises the score."""
    rel = ramp_drop(depth, kept)
    raised = rel + np.where((bump_at <= T) & (bump_at + bump_len > T), bump, 0.0)
    assert score(raised).score <= score(rel).score + 1e-9


def test_cycles_not_covered_by_the_pelvic_signal_are_not_scored() -> None:
    rel = ramp_drop(2.0, 0.8)
    rel[300:310] = np.nan  # settling / a gap
    assert (
        score_cycle(
            T,
            rel,
            states_from(rel),
            0.0,
            4.0,
            10.0,
            rest_level=0,
            drop_margin=1,
            contraction_margin=2,
        )
        is None
    )
    assert (
        score_cycle(
            T,
            rel,
            states_from(rel),
            4.0,
            3.0,
            10.0,
            rest_level=0,
            drop_margin=1,
            contraction_margin=2,
        )
        is None
    )


@pytest.mark.parametrize("where", [(100, 110), (300, 310), (150, 320)])
def test_a_gap_in_either_half_leaves_the_cycle_unscored_and_infinities_do_not(
    where: tuple[int, int],
) -> None:
    """The NaN check (a half's sum) tells a gap from +inf and -inf summing to NaN."""

    def scored(rel: np.ndarray) -> CouplingResult | None:
        return score_cycle(
            T, rel, states_from(rel), 0.0, 4.0, 10.0,
            rest_level=30.0, drop_margin=MD, contraction_margin=MC,
        )  # fmt: skip

    rel = ramp_drop(2.0, 0.8)
    gap = rel.copy()
    gap[where[0] : where[1]] = np.nan
    assert scored(gap) is None
    rails = rel.copy()
    rails[where[0]], rails[where[1]] = np.inf, -np.inf  # a sum of NaN, no NaN
    with np.errstate(invalid="ignore"):  # (inf - inf in the sums)
        assert scored(rails) is not None


def _pelvic(t: np.ndarray, rel: np.ndarray) -> PelvicOutput:
    return PelvicOutput(
        stream="p",
        t=t,
        level=30 + rel,
        relative=rel,
        state=states_from(rel),
        confidence=np.ones(t.size),
        rest_level=30.0,
        margins=(MD, MC, MC),
        noise=0.05,
        quality=Quality.OK,
        events=(),
        calibrated=False,
        delay_s=0.3,
    )


def test_scorer_waits_for_the_pelvic_signal_and_counts_reps() -> None:
    sc = CouplingScorer()
    reps = RepPolicy()
    reps.start(RepWindow(target=2))
    ev = [
        BreathEvent(BreathPhase.INHALE, 0.0, 0.8, 0.0),
        BreathEvent(BreathPhase.EXHALE, 4.0, 4.9, 1.0),
        BreathEvent(BreathPhase.INHALE, 10.0, 10.8, 0.0),
        BreathEvent(BreathPhase.EXHALE, 14.0, 14.9, 1.0),
        BreathEvent(BreathPhase.INHALE, 20.0, 20.8, 0.0),
        BreathEvent(BreathPhase.EXHALE, 24.0, 24.9, 1.0),
        BreathEvent(BreathPhase.INHALE, 30.0, 30.8, 0.0),
    ]
    sc.add_breath(ev)
    assert sc.ready() == []  # no pelvic signal yet
    t = np.arange(0, 31, 1 / FS)
    rel = np.tile(ramp_drop(2.0, 0.8), 4)[: t.size]
    sc.add_pelvic(_pelvic(t[: 12 * 50], rel[: 12 * 50]))
    got = sc.ready()
    assert len(got) == 1 and got[0].end == 10.0  # the second cycle is not covered yet
    sc.add_pelvic(_pelvic(t[12 * 50 :], rel[12 * 50 :]))
    got += sc.ready()
    assert [c.inhale_onset for c in got] == [0.0, 10.0, 20.0]
    counted = reps.offer(got)
    assert [r.index for r in counted] == [1, 2]  # the target was reached: the third is no rep
    summary = reps.stop()
    assert summary.reps == 2 and summary.good == 2
    assert summary.mean_score is not None and summary.mean_score >= 90
    assert summary.mean_cycle_s == pytest.approx(10.0)
    assert summary.to_json()["reps"] == 2


def test_summary_of_no_reps_and_of_mixed_reps() -> None:
    empty = summarise_reps([])
    assert empty.reps == 0 and empty.mean_score is None
    rc = RepPolicy()
    assert rc.offer([score(ramp_drop(2.0, 0.8))]) == ()  # no set started
    rc.start(RepWindow())
    rc.offer([score(ramp_drop(2.0, 0.8)), score(np.zeros(T.size))])
    s = rc.stop()
    assert s.reps == 2 and s.good == 1 and s.reasons == {NO_DROP: 1}
    assert s.best_score is not None and s.best_score >= 90
    with pytest.raises(ValueError, match="target"):
        RepWindow(target=0)
