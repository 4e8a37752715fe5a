"""Pelvic state on real breathing: the body breathes a recorded trace and meets
a real session's artefacts (issue 12 item 4). Needs ../shared/data (skips when absent)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.intent import Intent, PelvicAction
from devices.virtual.body import (
    Artefact,
    ArtefactKind,
    BodyModel,
    RecordedBreaths,
    SessionArtefacts,
    read_respiration_csv,
)
from devices.vocab import BreathPhase, PelvicState


@pytest.fixture
def trace(respiration_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_respiration_csv(respiration_dir / "systole_belt_50hz.csv")


def test_the_body_breathes_the_recorded_breaths(trace: tuple[np.ndarray, np.ndarray]) -> None:
    rb = RecordedBreaths(*trace, seed=3)
    periods = np.array([b.inhale_s + b.exhale_s + b.pause_s for b in rb.breaths])
    body = BodyModel(3, breaths=RecordedBreaths(*trace, seed=3))
    inh, _ = body.breath_onsets(0.0, 100.0)
    got = np.diff(inh)
    # the body's breath periods are the recording's, in its order, from the seeded start
    err = [np.abs(periods[i : i + 5] - got[1:6]).sum() for i in range(len(periods) - 5)]
    start = int(np.argmin(err))
    np.testing.assert_allclose(got[1:6], periods[start : start + 5], atol=0.02)
    # irregular like the recording (not the model's own 10 % variation)
    assert np.std(got) / np.mean(got) > 0.15
    # the breath labels follow the volume of the recorded breaths
    t = np.arange(5.0, 100.0, 0.02)
    phase = body.labels(t)[0]
    dv = np.diff(body.lung_volume(t))
    same = phase[1:] == phase[:-1]
    assert np.all(dv[same & (phase[1:] == BreathPhase.INHALE)] >= -1e-9)
    assert np.all(dv[same & (phase[1:] == BreathPhase.EXHALE)] <= 1e-9)


def test_drops_follow_the_recorded_inhales(trace: tuple[np.ndarray, np.ndarray]) -> None:
    body = BodyModel(
        4,
        intent=lambda t: Intent(pelvic=PelvicAction.DROP) if t >= 20 else Intent(),
        breaths=RecordedBreaths(*trace, seed=4),
    )
    t = np.arange(30.0, 90.0, 0.02)
    d = body.components(t)["drop"]
    inh, exh = body.breath_onsets(30.0, 90.0)
    # the floor descends with each recorded inhale and is deepest as it ends
    for a, b in itertools.pairwise(inh):
        e = exh[(exh > a) & (exh < b)]
        w = (t >= a) & (t < b)
        assert e.size == 1 and d[w].min() < d[w][0]
        assert abs(t[w][np.argmin(d[w])] - e[0]) < 1.0


def test_artefacts_are_seeded_labelled_and_leave_the_truth_alone_but_while_moving() -> None:
    kinds = tuple(ArtefactKind)[1:]
    a = SessionArtefacts.random(5, kinds, 10.0, 100.0)
    assert a.events == SessionArtefacts.random(5, kinds, 10.0, 100.0).events
    assert a.events != SessionArtefacts.random(6, kinds, 10.0, 100.0).events
    assert {e.kind for e in a.events} == set(kinds)
    plain = BodyModel(2)
    body = BodyModel(2, artefacts=a)
    t = np.arange(0.0, 110.0, 0.02)
    lab = body.artefact_labels(t)
    for e in a.events:
        if e.kind is not ArtefactKind.DRIFT:
            inside = lab[(t >= e.start) & (t < e.start + e.dur)]
            assert np.all(inside != 0) and np.any(inside == e.kind)
    diff = body.pelvic_pressure(t) - plain.pelvic_pressure(t)
    assert np.abs(diff).max() > 5.0
    # the truth is the plain body's, but unknown while it moves through a
    # posture change (the floor braces with the trunk)
    moving = np.zeros(t.size, bool)
    for e in a.events:
        if e.kind is ArtefactKind.POSTURE:
            moving |= (t >= e.start) & (t < e.start + e.dur)
    assert moving.any()
    truth = body.labels(t)[1]
    np.testing.assert_array_equal(truth[~moving], plain.labels(t)[1][~moving])
    assert np.all(truth[moving] == PelvicState.UNKNOWN)


def test_each_artefact_has_its_shape() -> None:
    cough = SessionArtefacts([Artefact(ArtefactKind.COUGH, 10.0, 0.4, 40.0)])
    slip = SessionArtefacts([Artefact(ArtefactKind.SLIP, 10.0, 0.05, -10.0)])
    t = np.arange(0.0, 20.0, 0.01)
    base, tip, _ = cough.probe(t)
    assert tip.max() == pytest.approx(40.0, rel=0.02) and base.max() < tip.max()
    assert np.all(base[(t < 10.0) | (t > 10.4)] == 0.0)
    base, tip, _ = slip.probe(t)
    assert np.all(base[t >= 10.05] == -10.0) and np.all(tip[t >= 10.05] == -10.0)
    assert np.all(base[t < 10.0] == 0.0)


# ------------------------------------------------- the goals, on a reduced set
# (benchmarks/bench_pelvic_scenarios.py prints the full table: 30 seeds x 6 scenarios)


def _bench():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pelvic_scenarios.py"
    spec = importlib.util.spec_from_file_location("bench_pelvic_scenarios", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("setup", ["1ch+belt", "2ch"])
@pytest.mark.parametrize("scenario", ["cough", "slip"])
def test_pelvic_state_through_coughs_and_slips(
    respiration_dir: Path, setup: str, scenario: str
) -> None:
    b = _bench()
    files = b.traces(respiration_dir.parent)
    for seed in (0, 1, 2):
        sc = b.run(files[seed % len(files)], seed, b.SCENARIOS[scenario], setup)
        # (1ch+belt: 0.94 until a breath held at the top of an inhale counted as a
        # hold and a small rise back from a set of drops as the drifted tone)
        assert sc.agreement >= 0.95, (seed, sc)
        assert sc.strain_as_drop == 0, (seed, sc)
        assert sc.cough_as_drop == 0 and sc.cough_good_reps == 0, (seed, sc)
        assert sc.settle_s <= 5.0, (seed, sc)


@pytest.mark.parametrize(
    ("setup", "scenario", "seeds", "bar"),
    [
        # two channels: a posture change and drift move both sensors alike
        ("2ch", "posture", (0, 2, 3), 0.95),
        ("2ch", "drift", (4, 5), 0.95),
        # one channel: the drift's slope carries the rest through a set of drops
        # (the seeds whose drift had left the rest behind the tone)
        ("1ch+belt", "drift", (4, 5), 0.95),
        # one channel and a belt: a posture change steps the probe's baseline at
        # muscle speed and reads as an action until the belt's next trough
        # witnesses it (pelvic/posture.py: 0.70 -> 0.92 for this seed); the
        # movement itself and that wait (4-10 s per change) stay below 0.95
        pytest.param(
            "1ch+belt",
            "posture",
            (0,),
            0.95,
            marks=pytest.mark.xfail(strict=True, reason="one-channel posture change: issue 12.4"),
        ),
    ],
)
def test_pelvic_state_through_posture_changes_and_drift(
    respiration_dir: Path, setup: str, scenario: str, seeds: tuple[int, ...], bar: float
) -> None:
    b = _bench()
    files = b.traces(respiration_dir.parent)
    for seed in seeds:
        sc = b.run(files[seed % len(files)], seed, b.SCENARIOS[scenario], setup)
        assert sc.agreement >= bar, (seed, sc)
        assert sc.strain_as_drop == 0, (seed, sc)
        assert sc.settle_s <= 5.0, (seed, sc)


def test_a_held_drop_without_a_posture_change_stays_a_drop(
    trace: tuple[np.ndarray, np.ndarray],
) -> None:
    """One channel and a belt: a drop held for 10 s while breathing on, with no
    posture change, is scored as a drop throughout (the guard for any rule that
    re-baselines a sustained offset as the body having moved)."""
    from biofeedback.signal.pipeline import Pipeline
    from devices.intent import Schedule
    from devices.stream import Chunk
    from devices.vocab import PelvicState

    b = _bench()
    intent = Schedule([(0.0, Intent()), (20.0, Intent(pelvic=PelvicAction.DROP)), (30.0, Intent())])
    body = BodyModel(7, intent=intent, breaths=RecordedBreaths(*trace, seed=7))
    pipe = Pipeline(b.SETUPS["1ch+belt"])
    est, ref = [], []
    for s in range(40):
        tp = s + np.arange(50) / b.FS
        up = pipe.process(Chunk("pressure", tp, body.pelvic_pressure(tp)[:, :1], "cmH2O"))
        pipe.process(Chunk("force", tp, body.belt_force(tp)[:, None], "N"))
        assert up.pelvic is not None
        est.append(up.pelvic.state)
        ref.append(body.labels(tp)[1])
    assert pipe.pelvic is not None
    lag = round(pipe.pelvic.delay_s * b.FS)
    e, r = np.concatenate(est)[lag:], np.concatenate(ref)[: 40 * 50 - lag]
    dropped = r == PelvicState.DROP
    assert dropped.sum() > 6 * b.FS  # the body held the drop (from its first inhale on)
    assert np.mean(e[dropped] == PelvicState.DROP) >= 0.9
    # and still a drop at the end of the hold
    assert np.all(e[dropped][-int(b.FS) :] == PelvicState.DROP)
