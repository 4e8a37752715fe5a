"""Calibration on body-model data with known truth: figures, zones, pacer, agreement.

The virtual person follows the calibration runner's own plan (``runner.intent``);
the probe's pressure goes through the virtual kGoal's counts conversion with
its sensor noise, the belt through the GDX-RB twin's noise, and the breaths come
from the pipeline's own detector -- everything the live path does, without
the radio (the CLI tests run the radio end to end). Counts are brought back to
cmH2O with the twin's known gain and offset, which stands in for a real
sensor's factory calibration (no pelvic probe publishes one).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from biofeedback.protocols.calibration import CalibrationRunner, thresholds_from_profile
from biofeedback.protocols.calibration_plan import PLANS
from biofeedback.protocols.calibration_recording import Recording, pick_channel
from biofeedback.protocols.session import pacer_from_profile
from biofeedback.signal.pipeline import Pipeline
from biofeedback.signal.types import Thresholds
from calibration import (
    BreathMark,
    CalibrationResult,
    Conversion,
    Profile,
    SensorId,
    StepKind,
    conversion_for,
    suggest_pacer,
)
from devices.clock import SimClock
from devices.intent import Intent, IntentFn, PelvicAction
from devices.stream import Chunk, StreamKind, StreamSpec
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.twins import CountsConversion
from devices.virtual.twins.kgoal import KGOAL_CONVERSION
from devices.vocab import PelvicState

PSPEC = StreamSpec("kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"), "count", 50.0)
BSPEC = StreamSpec("gdx-rb.force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
TWIN = conversion_for(
    "count",
    factory=(KGOAL_CONVERSION.gain, KGOAL_CONVERSION.offset),
    source="virtual twin (stands in for a factory calibration)",
)
SEEDS = (0, 1, 2, 3, 4)


@dataclass
class Sim:
    runner: CalibrationRunner
    recording: Recording
    body: BodyModel


@functools.lru_cache(maxsize=16)
def cached(seed: int, plan: str = "quick") -> Sim:
    """The default simulation of a seed, shared by the tests that only read it."""
    return simulate(seed, plan)


def simulate(
    seed: int,
    plan: str = "quick",
    *,
    params: BodyParams | None = None,
    counts: CountsConversion = KGOAL_CONVERSION,
    person: Callable[[CalibrationRunner], IntentFn] | None = None,
    belt: bool = True,
    belt_flat: bool = False,
) -> Sim:
    """Record a calibration of the virtual person (what ``runner.record`` collects)."""
    runner = CalibrationRunner(SimClock(start=0.0), plan)
    schedule = runner.start(1.0)
    intent = runner.intent if person is None else person(runner)
    body = BodyModel(seed, params=params, intent=intent)
    rng = np.random.default_rng(seed + 100)
    streams = [PSPEC, BSPEC] if belt else [PSPEC]
    pipe = Pipeline(streams)
    rec = Recording(pressure=PSPEC, channel=pick_channel(PSPEC.channels), schedule=schedule)
    ts, vs, bts, bvs = [], [], [], []
    cal_point: float | None = None
    for a in np.arange(0.0, runner.t_end + 0.5, 1.0):
        tp = a + np.arange(50) / 50.0 + 0.02
        raw = counts.to_counts(body.pelvic_pressure(tp)[:, 0], rng).astype(np.float64)
        cal_point = raw[0] if cal_point is None else cal_point
        vals = np.column_stack([raw, np.maximum(0.0, raw - cal_point)])
        upd = pipe.process(Chunk(PSPEC.name, tp, vals, "count"))
        ts.append(tp)
        vs.append(raw)
        if belt:
            tb = a + np.arange(10) / 10.0 + 0.05
            f = body.belt_force(tb) + rng.normal(0.0, 0.02, tb.size)
            if belt_flat:
                f = np.full(tb.size, 12.0)
            upd = pipe.process(Chunk(BSPEC.name, tb, f[:, None], "N"))
            bts.append(tb)
            bvs.append(f)
        if upd.breath is not None:
            rec.breaths.extend(
                BreathMark(b.inhale_onset, b.exhale_onset, b.amplitude) for b in upd.breath.breaths
            )
    rec.t = np.concatenate(ts)
    rec.values = np.concatenate(vs)
    rec.breath_source = BSPEC if belt else PSPEC
    if belt:
        rec.breath_t, rec.breath_values = np.concatenate(bts), np.concatenate(bvs)
    else:
        rec.breath_t, rec.breath_values = rec.t, rec.values
    return Sim(runner, rec, body)


def compute(sim: Sim, conversion: Conversion | None = TWIN) -> CalibrationResult:
    return sim.runner.compute(sim.recording, conversion=conversion, driver="kgoal")


@dataclass
class Truth:
    rest: float
    mvc: float
    drop: float


def truth(sim: Sim, seed: int, params: BodyParams | None = None) -> Truth:
    """What the model actually did (a fresh body with the same seed and intent replays it)."""
    p = params or BodyParams()
    body = BodyModel(seed, params=params, intent=sim.runner.intent)
    t = np.arange(0.0, sim.runner.t_end, 0.01)
    parts: dict[str, list[np.ndarray]] = {"drop": [], "contraction": [], "drift": [], "ripple": []}
    for a in range(0, t.size, 1000):
        c = body.components(t[a : a + 1000])
        for k, v in parts.items():
            v.append(c[k])
    comp = {k: np.concatenate(v) for k, v in parts.items()}
    rest = next(
        s for s in sim.recording.schedule if s.step.kind in (StepKind.REST, StepKind.PRE_BASELINE)
    )
    m = (t >= rest.t_start + 3.0) & (t < rest.t_end)
    # Resting tone: the parameter plus its slow drift (and the base's share of the ripple).
    rest_true = p.rest_cmH2O + comp["drift"][m].mean() + 0.65 * comp["ripple"][m].mean()
    drops = [
        -comp["drop"][(t >= s.t_start) & (t < s.t_end + 1.5)].min()
        for s in sim.recording.schedule
        if s.step.kind is StepKind.DROP
    ]
    return Truth(rest_true, float(comp["contraction"].max()), float(max(drops)))


# ----------------------------------------------------------------------------- figures


@pytest.mark.parametrize("seed", SEEDS)
def test_recovers_rest_mvc_and_drop_of_the_model(seed: int) -> None:
    sim = cached(seed)
    res = compute(sim)
    fig = res.figures("common")
    assert fig is not None and fig["unit"] == "cmH2O"
    tr = truth(sim, seed)
    p = BodyParams()
    # rest and MVC within 10 % (of what the model did, and of its nominal figures)
    assert fig["rest"]["mean"] == pytest.approx(tr.rest, rel=0.10)
    assert fig["rest"]["mean"] == pytest.approx(p.rest_cmH2O, rel=0.10)
    assert fig["mvc"] == pytest.approx(tr.mvc, rel=0.10)
    assert fig["mvc"] == pytest.approx(p.mvc_cmH2O, rel=0.10)
    # the drop within 20 %: the floor's own (ripple added back) and the seen one
    assert fig["drop_depth_corrected"] == pytest.approx(tr.drop, rel=0.20)
    assert fig["drop_depth_corrected"] == pytest.approx(p.drop_cmH2O, rel=0.20)
    assert fig["drop_depth"] == pytest.approx(tr.drop, rel=0.20)
    # ... and it stands well clear of the resting variability
    assert res.drop_snr > 8.0
    assert len(fig["mvc_attempts"]) == 3 and len(fig["drop_attempts"]) == 3
    # natural breathing from the belt: the model breathes at 12/min
    assert res.breathing.rate_bpm == pytest.approx(p.natural_rate_bpm, rel=0.15)
    assert res.breathing.unit == "N" and res.breathing.source == BSPEC.name
    assert not res.warnings


def test_another_person_weaker_slower() -> None:
    params = BodyParams(
        rest_cmH2O=22.0, mvc_cmH2O=14.0, drop_cmH2O=2.5, natural_rate_bpm=8.0, tidal_depth=1.3
    )
    sim = simulate(11, params=params)
    res = compute(sim)
    fig = res.figures("common")
    assert fig is not None
    tr = truth(sim, 11, params)
    assert fig["rest"]["mean"] == pytest.approx(tr.rest, rel=0.10)
    assert fig["mvc"] == pytest.approx(tr.mvc, rel=0.10)
    assert fig["drop_depth_corrected"] == pytest.approx(tr.drop, rel=0.20)
    assert res.breathing.rate_bpm == pytest.approx(8.0, rel=0.15)


def test_units_sensor_common_and_normalised_agree() -> None:
    res = compute(cached(2))
    sensor, common, norm = res.figures("sensor"), res.figures("common"), res.figures("normalised")
    assert sensor is not None and common is not None and norm is not None
    assert sensor["unit"] == "count" and norm["unit"] == "%MVC"
    g, off = KGOAL_CONVERSION.gain, KGOAL_CONVERSION.offset
    assert common["rest"]["mean"] == pytest.approx((sensor["rest"]["mean"] - off) / g, abs=1e-3)
    assert common["mvc"] == pytest.approx(sensor["mvc"] / g, abs=1e-3)
    assert norm["mvc"] == pytest.approx(100.0)
    assert norm["rest"]["mean"] == pytest.approx(0.0)
    assert norm["drop_depth"] == pytest.approx(
        100.0 * sensor["drop_depth"] / sensor["mvc"], rel=1e-3
    )
    # thresholds in the sensor's units, as the pipeline wants them
    th = res.thresholds()
    assert th["unit"] == "count"
    assert th["rest_level"] == pytest.approx(sensor["rest"]["mean"], abs=1e-3)
    assert 0 < th["drop_margin"] < res.drop_depth
    assert 0 < th["contraction_margin"] < res.mvc
    assert th["strain_margin"] == th["contraction_margin"]
    # without a known scale there is no common-unit block
    no_scale = compute(cached(2), conversion=None)
    assert no_scale.figures("common") is None
    assert no_scale.figures("normalised") is not None


def test_physical_units_convert_by_factor() -> None:
    mmhg = conversion_for("mmHg")
    assert mmhg is not None and mmhg.level(10.0) == pytest.approx(13.5951)
    assert conversion_for("kPa") is not None
    assert conversion_for("count") is None
    n = conversion_for("N", common_unit="N")
    assert n is not None and n.delta(3.0) == 3.0


def test_suggested_pacer_slows_toward_six_and_relaxes_twice_as_long() -> None:
    p = suggest_pacer(12.0)
    assert 6.0 <= p["rate_bpm"] < 12.0
    assert p["exhale_s"] > p["inhale_s"]
    assert p["relax_s"] >= 2 * p["contract_s"]
    slow = suggest_pacer(5.0)
    assert slow["rate_bpm"] == pytest.approx(5.0, rel=0.1)  # already slow: keep it
    fast = suggest_pacer(20.0)
    assert 6.0 < fast["rate_bpm"] < 20.0
    assert suggest_pacer(None)["natural_rate_bpm"] == 12.0
    # the session engine reads it from the profile
    res = compute(cached(3))
    prof = Profile.from_result(res, person="ann", sensor=SensorId("kgoal", "AA"))
    pacer = pacer_from_profile(prof.to_json())
    assert pacer is not None
    assert pacer.inhale_s == prof.suggested_pacer["inhale_s"]
    assert 6.0 <= pacer.rate_bpm < 12.5


def test_breath_from_the_probe_ripple_is_flagged_as_rough() -> None:
    res = compute(simulate(4, belt=False))
    assert any("ripple" in w for w in res.warnings)
    assert res.breathing.source == PSPEC.name


# ----------------------------------------------------------------------------- assessment


def test_assessment_figures() -> None:
    sim = cached(5, "assessment")
    res = compute(sim)
    assert res.kind == "assessment" and res.assessment is not None
    a = (res.figures("common") or {})["assessment"]
    for key in (
        "pre_baseline",
        "post_baseline",
        "baseline_change",
        "phasic",
        "tonic",
        "endurance",
        "drops",
    ):
        assert key in a, key
    tr = truth(sim, 5)
    assert a["pre_baseline"]["mean"] == pytest.approx(tr.rest, rel=0.10)
    assert a["phasic"]["n"] == 5 and a["tonic"]["n"] == 5 and a["drops"]["n"] == 5
    assert a["phasic"]["peak_amplitude"] == pytest.approx(tr.mvc, rel=0.10)
    # rise and recovery: the model's muscle time constants are 0.3 s and 0.5 s
    assert 0.2 < a["phasic"]["rise_s"] < 1.5
    assert 0.3 < a["tonic"]["recovery_s"] < 2.5
    # the 60 s hold fatigues: the level sinks
    end = a["endurance"]
    assert end["slope_per_s"] < 0 and end["fatigue_ratio"] < 0.95
    assert end["held_above_half_s"] > 30
    # the tonic holds' mean is below their peak, the baselines are close
    assert a["tonic"]["mean_amplitude"] < a["tonic"]["peak_amplitude"]
    assert abs(a["baseline_change"]["mean"]) < 0.1 * res.mvc / KGOAL_CONVERSION.gain
    assert a["drops"]["best_depth"] == pytest.approx(tr.drop, rel=0.25)
    # the pacer's work/rest comes from how long the hold was kept above half
    assert res.pacer()["relax_s"] >= 2 * res.pacer()["contract_s"]


def test_plans_follow_the_protocol_timings() -> None:
    quick, full = PLANS["quick"], PLANS["assessment"]
    kinds = [s.kind for s in quick.steps]
    assert kinds.count(StepKind.SQUEEZE) == 3 and kinds.count(StepKind.DROP) == 3
    assert next(s for s in quick.steps if s.kind is StepKind.REST).seconds == 30.0
    assert next(s for s in quick.steps if s.kind is StepKind.BREATHE).seconds == 30.0
    fk = [s for s in full.steps]
    assert [s.seconds for s in fk if s.kind is StepKind.FLICK] == [2.0] * 5
    assert [s.seconds for s in fk if s.kind is StepKind.HOLD] == [10.0] * 5
    assert [s.seconds for s in fk if s.kind is StepKind.ENDURANCE] == [60.0]
    assert [s.seconds for s in fk if s.kind is StepKind.PRE_BASELINE] == [60.0]
    assert [s.seconds for s in fk if s.kind is StepKind.POST_BASELINE] == [60.0]
    # rest after each hold as long as the hold (Glazer's 10 s / 10 s)
    holds = [i for i, s in enumerate(fk) if s.kind is StepKind.HOLD]
    assert all(fk[i + 1].kind is StepKind.RELAX and fk[i + 1].seconds == 10.0 for i in holds)


def test_runner_intent_follows_the_plan() -> None:
    runner = CalibrationRunner(SimClock(), "quick")
    sched = runner.start(100.0)
    assert runner.intent(50.0) == Intent()  # before the plan: rest, breathe freely
    sq = next(s for s in sched if s.step.kind is StepKind.SQUEEZE)
    assert runner.intent(sq.t_start + 1.0).pelvic is PelvicAction.CONTRACT
    drop = next(s for s in sched if s.step.kind is StepKind.DROP)
    it = runner.intent(drop.t_start + 1.0)
    assert it.pelvic is PelvicAction.DROP and it.breath is not None
    assert it.breath.phase.name == "INHALE"
    # the paced exhale before the first drop belongs to the same pacer
    lead = sched[drop.number - 2]
    assert lead.step.kind is StepKind.RECOVER and lead.pacer is drop.pacer
    ex = runner.intent(lead.t_start + 1.0)
    assert ex.breath is not None and ex.breath.phase.name == "EXHALE"
    assert ex.pelvic is PelvicAction.REST
    assert runner.intent(runner.t_end + 1.0) == Intent()


# ----------------------------------------------------------------------------- agreement


def _session_intent(effort: float = 0.8) -> tuple[IntentFn, float]:
    """A session: baseline, paced drops, a few squeezes, one strain, more drops."""
    from biofeedback.protocols.pacer import Pacer

    pac = Pacer(4.0, 0.0, 6.0, t0=40.0)

    def it(t: float) -> Intent:
        if t < 40.0:
            return Intent()
        if t < 100.0:
            return Intent(breath=pac.target(t), pelvic=PelvicAction.DROP, effort=effort)
        if 110.0 <= t < 150.0 and (t - 110.0) % 10.0 < 4.0:
            return Intent(pelvic=PelvicAction.CONTRACT, effort=0.5)
        if 160.0 <= t < 166.0:
            return Intent(pelvic=PelvicAction.STRAIN, effort=0.6)
        if 180.0 <= t < 240.0:
            return Intent(breath=pac.target(t), pelvic=PelvicAction.DROP, effort=0.6)
        return Intent()

    return it, 250.0


def _agreement(seed: int, thresholds: Thresholds | None) -> float:
    intent, duration = _session_intent()
    body = BodyModel(seed, intent=intent)
    rng = np.random.default_rng(seed + 7)
    pipe = Pipeline([PSPEC, BSPEC], thresholds=thresholds)
    got, want = [], []
    cal_point: float | None = None
    for a in np.arange(0.0, duration, 1.0):
        tp = a + np.arange(50) / 50.0 + 0.02
        raw = KGOAL_CONVERSION.to_counts(body.pelvic_pressure(tp)[:, 0], rng).astype(float)
        cal_point = raw[0] if cal_point is None else cal_point
        vals = np.column_stack([raw, np.maximum(0.0, raw - cal_point)])
        tb = a + np.arange(10) / 10.0 + 0.05
        force = body.belt_force(tb) + rng.normal(0.0, 0.02, tb.size)
        upd = pipe.process(Chunk(PSPEC.name, tp, vals, "count"))
        pipe.process(Chunk(BSPEC.name, tb, force[:, None], "N"))
        assert upd.pelvic is not None
        got.append(upd.pelvic.state)
        want.append(body.labels(upd.pelvic.t)[1])
    g, w = np.concatenate(got), np.concatenate(want)
    keep = np.arange(g.size) >= 6 * 50  # after the pipeline's settling
    assert np.isin(w[keep], [PelvicState.DROP, PelvicState.CONTRACTION]).any()
    return float(np.mean(g[keep] == w[keep]))


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_calibrated_pipeline_agrees_at_least_as_well(seed: int) -> None:
    # Calibrate on one recording, use the profile in a later session (new noise, drift).
    prof = Profile.from_result(compute(cached(seed)), person="p", sensor=SensorId("kgoal", "A"))
    th = thresholds_from_profile(prof.to_json())
    assert th.unit == "count"
    plain = _agreement(seed + 1000, None)
    calibrated = _agreement(seed + 1000, th)
    # Calibrated margins are floored by the live noise and contractions, so
    # the two differ only where the calibrated ones are wider (an MVC-based
    # contraction margin enters a little later): within 0.3 %, never a drop
    # read from noise.
    assert calibrated >= plain - 0.003
    assert calibrated > 0.94


# ----------------------------------------------------------------------------- the runner


def test_runner_records_from_a_source_and_shows_each_step() -> None:
    clock = SimClock(speed=None, start=0.0)
    shown: list[tuple[str, float]] = []
    started: list[int] = []
    runner = CalibrationRunner(
        clock,
        "quick",
        show_step=lambda p, s: shown.append((p, s)),
        on_step=lambda s: started.append(s.number),
    )
    body = BodyModel(8, intent=runner.intent)
    rng = np.random.default_rng(8)

    async def source() -> AsyncIterator[Chunk]:
        t = clock.now()
        while True:
            await clock.sleep(0.5)
            tp = t + np.arange(25) / 50.0
            raw = KGOAL_CONVERSION.to_counts(body.pelvic_pressure(tp)[:, 0], rng)
            yield Chunk(PSPEC.name, tp, np.column_stack([raw, raw]).astype(float), "count")
            tb = t + np.arange(5) / 10.0
            force = body.belt_force(tb) + rng.normal(0.0, 0.02, tb.size)
            yield Chunk(BSPEC.name, tb, force[:, None], "N")
            t += 0.5

    async def go() -> Recording:
        return await runner.record(source(), [PSPEC, BSPEC])

    rec = asyncio.run(go())
    n_steps = len(runner.plan.steps)
    assert started == list(range(1, n_steps + 1))
    prompts = [p for p, _ in shown]
    assert prompts[0].startswith("get ready") and prompts[-1] == "done"
    assert "squeeze as hard as you comfortably can (1)" in prompts
    assert "breathe in slowly and let the floor drop (3)" in prompts
    # the countdown for the rest step goes down a second at a time
    rest = [s for p, s in shown if p.startswith("rest")]
    assert rest[0] == pytest.approx(30.0) and np.all(np.diff(rest) < 0) and len(rest) == 30
    segs = rec.segments()
    assert [s.kind for s in segs] == [s.kind for s in runner.plan.steps]
    assert all(abs(s.values.size - 50 * s.duration) <= 50 for s in segs)
    assert rec.breath_source is BSPEC and len(rec.breaths) >= 15
    res = runner.compute(rec, conversion=TWIN, driver="kgoal")
    assert res.mvc / KGOAL_CONVERSION.gain == pytest.approx(BodyParams().mvc_cmH2O, rel=0.10)


def test_thresholds_from_profile_round_trip() -> None:
    prof = Profile.from_result(compute(cached(1)), person="bo", sensor=SensorId("kgoal", "B"))
    th = thresholds_from_profile(prof)
    assert th == thresholds_from_profile(prof.to_json())
    assert th.rest_level == pytest.approx(prof.thresholds["rest_level"])
    assert th.drop_margin is not None and math.isfinite(th.drop_margin)
    # the pipeline accepts them for a counts stream and refuses another unit
    Pipeline([PSPEC], thresholds=th)
    mmhg = StreamSpec("x.pressure", StreamKind.PRESSURE, ("p",), "mmHg", 50.0)
    with pytest.raises(ValueError, match="count"):
        Pipeline([mmhg], thresholds=th)


def test_a_link_given_up_mid_way_is_refused_naming_the_cause() -> None:
    from calibration import CalibrationRefused
    from devices.errors import GaveUpError

    clock = SimClock(speed=None, start=0.0)
    runner = CalibrationRunner(clock, "quick")
    body = BodyModel(9, intent=runner.intent)
    rng = np.random.default_rng(9)

    async def source() -> AsyncIterator[Chunk]:
        t = clock.now()
        while t < 37.0:  # the link is lost during the first squeeze (35-40 s), for good
            await clock.sleep(0.5)
            tp = t + np.arange(25) / 50.0
            raw = KGOAL_CONVERSION.to_counts(body.pelvic_pressure(tp)[:, 0], rng)
            yield Chunk(PSPEC.name, tp, np.column_stack([raw, raw]).astype(float), "count")
            t += 0.5
        raise GaveUpError("Boost: link lost and 6 reconnect attempts failed")

    rec = asyncio.run(runner.record(source(), [PSPEC]))
    assert isinstance(rec.error, GaveUpError)
    assert rec.t[-1] < 38.0 and runner.t_end > 100.0
    with pytest.raises(CalibrationRefused) as info:
        runner.compute(rec, driver="kgoal")
    err = info.value
    assert err.code == "disconnected" and err.step == "squeeze"
    assert "the recording stopped during it: Boost: link lost" in str(err)
