"""The one rep policy: which scored cycles are reps, with the pacer's window as input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofeedback.signal.reps import PACED_LAG_S, RepPolicy, RepWindow, summarise_reps
from biofeedback.signal.results import CouplingResult
from biofeedback.signal.types import PelvicOutput, Quality
from devices.pacer import Pacer
from devices.vocab import BreathPhase, PelvicState

FS = 50.0
PACER = Pacer(4.0, 0.0, 6.0, t0=100.0)


def pelvic(t: np.ndarray, rel: np.ndarray) -> PelvicOutput:
    state = np.where(rel < -1.0, PelvicState.DROP, PelvicState.REST).astype(np.int8)
    return PelvicOutput(
        stream="p", t=t, level=30 + rel, relative=rel, state=state,
        confidence=np.ones(t.size), rest_level=30.0, margins=(1.0, 2.0, 2.0), noise=0.05,
        quality=Quality.OK, events=(), calibrated=False, delay_s=0.3,
    )


def paced_drop(t: np.ndarray, pacer: Pacer) -> np.ndarray:
    """A compliant floor: down 2 on every paced inhale (from the lag on), kept on the exhale."""
    pos = np.mod(t - pacer.t0 - PACED_LAG_S, pacer.period)
    return np.where(pos < pacer.inhale_s, -2.0 * np.clip(pos / 1.5, 0, 1), -1.6)


def cycle(inhale: float, exhale: float, end: float, score: float = 80.0,
          drop: float = 2.0) -> CouplingResult:
    return CouplingResult(
        inhale_onset=inhale, exhale_onset=exhale, end=end, rest_level=0.0, inhale_level=-1.5,
        exhale_level=-1.5, drop=drop, drop_ratio=drop, release_kept=0.8, strain=False,
        contracted=False, score=score, reasons=(),
    )


def test_the_window_gives_the_paced_cycles_and_the_closing_inhale() -> None:
    ev = RepWindow(100.0, 2, PACER).paced_cycles()
    assert [(e.phase, e.t) for e in ev] == [
        (BreathPhase.INHALE, 100.5), (BreathPhase.EXHALE, 104.5),
        (BreathPhase.INHALE, 110.5), (BreathPhase.EXHALE, 114.5),
        (BreathPhase.INHALE, 120.5),
    ]
    assert RepWindow(100.0, 2).paced_cycles() == []  # no pacer: nothing to clock


def test_pacer_clocked_reps_are_the_paced_cycles_chunking_aside() -> None:
    """Probe alone: each paced cycle is scored against the floor; one call or many
    chunks give the same reps, and the target caps them."""
    t = np.arange(98.0, 140.0, 1 / FS)
    rel = paced_drop(t, PACER)

    def run(chunk_n: int) -> list[tuple[int, float, float]]:
        pol = RepPolicy()
        pol.add_pelvic(pelvic(t[:100], rel[:100]))  # before the set: margins only
        pol.start(RepWindow(100.0, 3, PACER), paced=True)
        got = []
        for a in range(100, t.size, chunk_n):
            pol.add_pelvic(pelvic(t[a:a + chunk_n], rel[a:a + chunk_n]))
            got += [(r.index, r.t_start, r.score) for r in pol.offer(())]
        assert pol.stop().reps == 3
        return got

    whole, chunked = run(t.size), run(7)
    assert whole == chunked
    assert [(i, s) for i, s, _ in whole] == [(1, 100.5), (2, 110.5), (3, 120.5)]
    assert all(score >= 80 for *_, score in whole)


def test_breath_clocked_reps_answer_the_pacer_and_stop_at_the_target() -> None:
    pol = RepPolicy()
    pol.start(RepWindow(100.0, 2, PACER))
    got = pol.offer([
        cycle(90.0, 94.0, 99.0),  # free breathing before the set
        cycle(97.8, 100.02, 110.5),  # the free inhale that ended as the set began
        cycle(100.3, 104.1, 110.1),
        cycle(110.1, 114.0, 120.2),
        cycle(120.2, 124.0, 130.1),  # over the target
    ])
    assert [(r.index, r.t_start) for r in got] == [(1, 100.3), (2, 110.1)]
    s = pol.stop()
    assert s.reps == 2 and s.mean_score == pytest.approx(80.0)
    assert pol.offer([cycle(130.1, 134.0, 140.0)]) == ()  # no set: no rep


def test_the_breath_under_way_at_the_first_cue_is_scored_from_the_cue() -> None:
    """A cycle begun before the pacer started is judged from the pacer's start on."""
    t = np.arange(95.0, 112.0, 1 / FS)
    rel = np.where(t < 100.0, 0.0, paced_drop(t, PACER))
    pol = RepPolicy()
    pol.start(RepWindow(100.0, 1, PACER))
    pol.add_pelvic(pelvic(t, rel))
    (rep,) = pol.offer([cycle(98.5, 104.6, 110.6, score=10.0)])
    assert rep.t_start == 100.0 and rep.score > 50  # rescored, not the 10 of the whole


def test_without_a_pacer_cycles_from_the_start_count() -> None:
    pol = RepPolicy()
    pol.start(RepWindow(100.0))
    got = pol.offer([cycle(98.0, 102.0, 108.0), cycle(99.5, 103.0, 109.0)])
    assert [r.t_start for r in got] == [99.5]  # one second of grace, not two
    with pytest.raises(ValueError, match="pacer"):
        pol.start(RepWindow(100.0, 2), paced=True)


def test_summary_skips_figures_that_are_not_numbers() -> None:
    pol = RepPolicy()
    pol.start(RepWindow())
    reps = pol.offer([cycle(0.0, 4.0, 10.0), cycle(10.0, 14.0, 20.0, 60.0, drop=math.nan)])
    s = summarise_reps(reps)
    assert s.reps == 2 and s.mean_drop == pytest.approx(2.0) and s.best_score == 80.0
