"""The body model: determinism, query independence, physiology and ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from devices.intent import Intent, IntentFn, PelvicAction, Schedule
from devices.pacer import Pacer
from devices.virtual.body import CONTROL_HZ, BodyModel, BodyParams
from devices.vocab import BreathPhase, PelvicState

# A fixed exercise: rest, drop on a paced inhale, rest, contract, rest, strain, rest.
PACER = Pacer(inhale_s=4.5, exhale_s=5.5, t0=20.0)
STEPS = Schedule(
    [
        (0.0, Intent()),
        (20.0, Intent(pelvic=PelvicAction.DROP)),
        (60.0, Intent()),
        (70.0, Intent(pelvic=PelvicAction.CONTRACT)),
        (80.0, Intent()),
        (90.0, Intent(pelvic=PelvicAction.STRAIN)),
        (98.0, Intent()),
    ]
)


def exercise(compliance: float = 1.0, motion: float = 0.0) -> IntentFn:
    def intent(t: float) -> Intent:
        step = STEPS(t)
        return Intent(
            breath=PACER(t) if 20.0 <= t < 60.0 else None,
            pelvic=step.pelvic,
            compliance=compliance,
            motion=motion,
        )

    return intent


def all_signals(body: BodyModel, t0: float, t1: float) -> dict[str, np.ndarray]:
    t50 = np.arange(t0, t1, 1 / 50)
    breath, pelvic = body.labels(t50)
    inh, exh = body.breath_onsets(t0, t1)
    return {
        "pressure": body.pelvic_pressure(t50),
        "belt": body.belt_force(np.arange(t0, t1, 1 / 20)),
        "acc": body.chest_acc(np.arange(t0, t1, 1 / 200)),
        "ecg": body.ecg(np.arange(t0, t1, 1 / 130)),
        "volume": body.lung_volume(t50),
        "beats": body.beat_times(t0, t1),
        "breath": breath,
        "pelvic": pelvic,
        "inhale": inh,
        "exhale": exh,
    }


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --------------------------------------------------------------- determinism


def test_same_seed_identical_and_different_seed_differs() -> None:
    a = all_signals(BodyModel(7, intent=exercise(0.8, 0.5)), 0.0, 110.0)
    b = all_signals(BodyModel(7, intent=exercise(0.8, 0.5)), 0.0, 110.0)
    assert_same(a, b)
    c = all_signals(BodyModel(8, intent=exercise(0.8, 0.5)), 0.0, 110.0)
    for k in ("pressure", "belt", "acc", "ecg", "volume"):
        assert not np.array_equal(a[k], c[k]), k
    assert not np.array_equal(a["inhale"], c["inhale"])


RATES = {"pressure": 50.0, "belt": 20.0, "acc": 200.0, "ecg": 130.0, "labels": 50.0}


def query(body: BodyModel, kind: str, i0: int, i1: int) -> np.ndarray:
    """Samples ``i0 .. i1-1`` of a virtual sensor (times ``i / rate``)."""
    t = np.arange(i0, i1) / RATES[kind]
    if kind == "labels":
        breath, pelvic = body.labels(t)
        return np.stack([breath, pelvic], axis=1)
    fn = {
        "pressure": body.pelvic_pressure,
        "belt": body.belt_force,
        "acc": body.chest_acc,
        "ecg": body.ecg,
    }[kind]
    return fn(t)


def test_query_pattern_does_not_change_output() -> None:
    intent = exercise(0.7, 0.6)
    t1 = 100.0
    n = {k: int(t1 * r) for k, r in RATES.items()}
    # One big query per signal.
    body = BodyModel(3, intent=intent)
    ref = {k: query(body, k, 0, n[k]) for k in RATES}
    ref_onsets = body.breath_onsets(0.0, t1)
    ref_beats = body.beat_times(0.0, t1)

    # Many small uneven chunks, signal after signal at each step.
    body = BodyModel(3, intent=intent)
    rng = np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in RATES}
    pos = dict.fromkeys(RATES, 0)
    while any(pos[k] < n[k] for k in RATES):
        for k in RATES:
            end = min(n[k], pos[k] + int(rng.integers(1, 40)))
            parts[k].append(query(body, k, pos[k], end))
            pos[k] = end
    for k in RATES:
        np.testing.assert_array_equal(ref[k], np.concatenate(parts[k]), err_msg=k)

    # Interleaved sensors lagging each other by up to 50 s, in random order.
    body = BodyModel(3, intent=intent)
    lag = {"pressure": 0.0, "belt": 50.0, "acc": 12.0, "ecg": 31.0, "labels": 3.0}
    parts = {k: [] for k in RATES}
    pos = dict.fromkeys(RATES, 0)
    onsets: list[tuple[np.ndarray, np.ndarray]] = []
    beats: list[np.ndarray] = []
    now = prev = asked = 0.0
    while any(pos[k] < n[k] for k in RATES):
        prev, now = now, now + float(rng.uniform(0.05, 1.5))
        for k in rng.permutation(list(RATES)):
            end = min(n[k], int((now - lag[k]) * RATES[k]))
            if end > pos[k]:
                parts[k].append(query(body, k, pos[k], end))
                pos[k] = end
        if now <= t1:
            # Overlapping windows (a detector re-asking) and one before t0.
            onsets.append(body.breath_onsets(prev - 0.5, now))
            beats.append(body.beat_times(prev - 0.5, now))
            asked = now
    for k in RATES:
        np.testing.assert_array_equal(ref[k], np.concatenate(parts[k]), err_msg=k)
    # Onsets and beats asked for in overlapping windows are the same events.
    for i in (0, 1):
        got = np.unique(np.concatenate([o[i] for o in onsets]))
        np.testing.assert_array_equal(got, ref_onsets[i][ref_onsets[i] < asked])
    np.testing.assert_array_equal(np.unique(np.concatenate(beats)), ref_beats[ref_beats < asked])


def test_intent_evaluated_once_per_tick_in_order() -> None:
    seen: list[float] = []

    def intent(t: float) -> Intent:
        seen.append(t)
        return Intent()

    body = BodyModel(0, intent=intent, t0=1000.0)
    body.pelvic_pressure(np.arange(1000.0, 1003.0, 0.02))
    body.ecg(np.arange(1001.0, 1004.5, 1 / 130))
    body.lung_volume(np.array([1000.5]))  # going back generates nothing
    ticks = np.asarray(seen)
    assert ticks.size == round((body.horizon - 1000.0) * CONTROL_HZ)
    np.testing.assert_array_equal(ticks, 1000.0 + np.arange(ticks.size) / CONTROL_HZ)


def test_intent_can_be_swapped() -> None:
    body = BodyModel(1)
    body.pelvic_pressure(np.arange(0.0, 10.0, 0.02))
    body.intent = Schedule([(0.0, Intent(pelvic=PelvicAction.CONTRACT))])
    _, pelvic = body.labels(np.arange(15.0, 20.0, 0.02))
    assert np.all(pelvic == PelvicState.CONTRACTION)
    body.intent = None  # back to the default: rest, breathe freely
    _, pelvic = body.labels(np.arange(25.0, 30.0, 0.02))
    assert np.all(pelvic == PelvicState.REST)


def test_a_failing_intent_leaves_the_body_untouched() -> None:
    intent = exercise(0.8)
    calls = {"n": 0}

    def flaky(t: float) -> Intent:
        if 30.0 <= t < 30.05 and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("pacer hiccup")
        return intent(t)

    body = BodyModel(4, intent=flaky)
    t = np.arange(0.0, 60.0, 0.02)
    with pytest.raises(RuntimeError, match="hiccup"):
        body.pelvic_pressure(t)
    np.testing.assert_array_equal(
        body.pelvic_pressure(t), BodyModel(4, intent=intent).pelvic_pressure(t)
    )


# ------------------------------------------------------- the fixed exercise


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_and_signals_follow_the_exercise(seed: int) -> None:
    p = BodyParams()
    body = BodyModel(seed, params=p, intent=exercise())
    t = np.arange(0.0, 110.0, 0.02)
    base, tip = body.pelvic_pressure(t).T
    breath, pelvic = body.labels(t)
    # Compare with the resting tone, which drifts slowly.
    drift = body.components(t)["drift"]
    base, tip = base - drift, tip - drift

    def win(a: float, b: float) -> np.ndarray:
        return (t >= a) & (t < b)

    rest = win(5.0, 19.5)
    assert np.all(pelvic[rest] == PelvicState.REST)
    base_rest, tip_rest = base[rest].mean(), tip[rest].mean()

    # Drop on paced inhale, from the first inhale after the cue: the floor
    # falls during each inhale and keeps most of it on the exhale.
    first = body.breath_onsets(20.3, 60.0)[0][0]
    drop = win(first + 2.0, 60.0)
    assert np.mean(pelvic[drop] == PelvicState.DROP) > 0.95
    inh, exh = body.breath_onsets(first, 60.0)
    pairs = min(inh.size, exh.size)
    assert pairs >= 3
    d = body.components(inh[:pairs])["drop"], body.components(exh[:pairs])["drop"]
    assert np.all(d[1] < d[0])
    assert np.mean(d[1] - d[0]) < -0.5 * p.exhale_recoil * p.drop_cmH2O
    assert np.all(d[0][1:] < -0.5 * (1 - p.exhale_recoil) * p.drop_cmH2O)  # the release kept
    # The coupling: lower during inhale than during exhale, below rest throughout.
    inhaling = drop & (breath == BreathPhase.INHALE)
    exhaling = drop & (breath == BreathPhase.EXHALE)
    assert base[inhaling].mean() < base[exhaling].mean() - 0.1
    assert base[exhaling].mean() < base_rest - 0.5 * (1 - p.exhale_recoil) * p.drop_cmH2O
    v = body.lung_volume(t)
    assert np.corrcoef(base[drop], v[drop])[0, 1] < -0.2
    # Resting, the breathing ripple goes the other way: up on inhale.
    assert np.corrcoef(base[rest], v[rest])[0, 1] > 0.3
    # A real drop lowers the base more than the tip.
    assert base_rest - base[drop].mean() > tip_rest - tip[drop].mean()
    assert np.all(pelvic[win(62.0, 69.5)] == PelvicState.REST)

    # Contraction: well above rest, the base rises more than the tip.
    con = win(71.5, 80.0)
    assert np.mean(pelvic[con] == PelvicState.CONTRACTION) > 0.95
    assert base[con].mean() - base_rest > 0.7 * p.mvc_cmH2O
    assert base[con].mean() - base_rest > tip[con].mean() - tip_rest
    assert np.all(pelvic[win(82.0, 89.5)] == PelvicState.REST)

    # Strain: a breath hold, intra-abdominal pressure pushes the tip up most.
    strain = win(92.5, 98.0)
    assert np.mean(pelvic[strain] == PelvicState.STRAIN) > 0.95
    assert np.all(breath[win(92.0, 98.2)] == BreathPhase.PAUSE)
    assert tip[strain].mean() - tip_rest > base[strain].mean() - base_rest > 5.0
    assert np.all(pelvic[win(101.0, 110.0)] == PelvicState.REST)

    # Belt: the belly bulges while straining.
    belt = body.belt_force(t)
    assert belt[strain].mean() > belt[rest].mean()


def test_labels_follow_the_components() -> None:
    body = BodyModel(4, intent=exercise(0.6))
    t = np.arange(0.0, 110.0, 0.05)
    _, pelvic = body.labels(t)
    c = body.components(t)
    strain = (c["strain"] > 2.0) & (c["strain"] >= c["contraction"])
    np.testing.assert_array_equal(pelvic == PelvicState.STRAIN, strain)
    con = ~strain & (c["contraction"] > 2.0)
    np.testing.assert_array_equal(pelvic == PelvicState.CONTRACTION, con)
    drop = ~strain & ~con & (-c["drop"] > np.minimum(0.3 * c["drop_ref"], 1.0))
    np.testing.assert_array_equal(pelvic == PelvicState.DROP, drop)


def test_low_compliance_labels_what_the_body_did() -> None:
    pacer = Pacer(inhale_s=4.0, exhale_s=6.0)
    intent = Schedule([(0.0, Intent(pelvic=PelvicAction.DROP, compliance=0.3))])

    def fn(t: float) -> Intent:
        return Intent(breath=pacer(t), pelvic=intent(t).pelvic, compliance=0.3)

    body = BodyModel(2, intent=fn)
    t = np.arange(5.0, 115.0, 0.05)
    _, pelvic = body.labels(t)
    frac = np.bincount(pelvic, minlength=5) / t.size
    # Some reps missed or pushed instead of dropped, some done.
    assert 0.02 < frac[PelvicState.DROP] < 0.95
    assert frac[PelvicState.REST] + frac[PelvicState.STRAIN] > 0.1
    # Done right, every moment of the same exercise is a drop.
    body = BodyModel(2, intent=lambda t: Intent(breath=pacer(t), pelvic=PelvicAction.DROP))
    assert np.all(body.labels(t)[1] == PelvicState.DROP)


def test_sustained_drop() -> None:
    intent = Schedule([(10.0, Intent(pelvic=PelvicAction.DROP, drop_on_inhale=False))])
    body = BodyModel(5, intent=intent)
    t = np.arange(14.0, 30.0, 0.02)
    _, pelvic = body.labels(t)
    assert np.all(pelvic == PelvicState.DROP)
    # Held, not coupled to the breath (the effort varies a little from try to try).
    drop = body.components(t)["drop"]
    np.testing.assert_allclose(drop, drop.mean(), atol=1e-3)
    np.testing.assert_allclose(drop.mean(), -BodyParams().drop_cmH2O, rtol=0.15)


def test_contraction_dynamics_and_fatigue() -> None:
    p = BodyParams()
    body = BodyModel(6, params=p, intent=Schedule([(10.0, Intent(pelvic=PelvicAction.CONTRACT))]))
    c = body.components(np.arange(0.0, 80.0, 0.01))["contraction"]
    onset = np.flatnonzero(c > 0.05 * p.mvc_cmH2O)[0]
    peak = c[onset : onset + 300].max()
    # About 0.3 s to rise by 63 %.
    t63 = (np.flatnonzero(c[onset:] > 0.63 * peak)[0]) / 100
    assert 0.15 < t63 < 0.6
    assert peak > 0.9 * p.mvc_cmH2O
    # Endurance: a minute's hold loses a good part of it.
    assert c[7500] < 0.8 * peak


# ------------------------------------------------------------------- breath


@pytest.mark.parametrize(("seed", "rate"), [(0, 12.0), (1, 12.0), (2, 8.0), (3, 16.0)])
def test_free_breathing_rate(seed: int, rate: float) -> None:
    body = BodyModel(seed, params=BodyParams(natural_rate_bpm=rate))
    inh, exh = body.breath_onsets(0.0, 120.0)
    measured = 60.0 / np.mean(np.diff(inh))
    assert abs(measured - rate) < 0.1 * rate
    # Irregular, not a metronome; inhale and exhale alternate.
    assert np.std(np.diff(inh)) > 0.02 * 60.0 / rate
    both = np.sort(np.concatenate([inh, exh]))
    kinds = np.isin(both, inh)
    assert np.all(kinds[1:] != kinds[:-1])


def test_breath_labels_match_the_volume() -> None:
    body = BodyModel(9, intent=exercise(0.7))
    t = np.arange(0.0, 110.0, 0.01)
    v = body.lung_volume(t)
    breath, _ = body.labels(t)
    dv = np.diff(v) * 100
    lab = breath[1:]
    inside = breath[1:] == breath[:-1]  # skip the samples at a phase change
    assert np.all(dv[inside & (lab == BreathPhase.INHALE)] > -1e-9)
    assert np.all(dv[inside & (lab == BreathPhase.EXHALE)] < 1e-9)
    assert np.all(np.abs(dv[inside & (lab == BreathPhase.PAUSE)]) < 1e-6)
    assert set(np.unique(breath)) == {BreathPhase.INHALE, BreathPhase.EXHALE, BreathPhase.PAUSE}


def test_pacer_following() -> None:
    pacer = Pacer(inhale_s=4.0, exhale_s=6.0, t0=0.0)
    natural = 15.0

    def fn(c: float) -> IntentFn:
        return lambda t: Intent(breath=pacer(t), compliance=c)

    body = BodyModel(1, params=BodyParams(natural_rate_bpm=natural), intent=fn(1.0))
    inh, exh = body.breath_onsets(15.0, 115.0)
    p_inh, p_exh = pacer.onsets(15.0, 115.0)
    assert inh.size == p_inh.size and exh.size == p_exh.size
    assert np.all(np.abs(inh - p_inh) < 0.6)
    assert np.all(np.abs(exh - p_exh) < 0.6)
    assert 0.05 < np.mean(inh - p_inh) < 0.5  # a human lag, not anticipation

    # Compliance 0 ignores the pacer: back to the natural rate.
    body = BodyModel(1, params=BodyParams(natural_rate_bpm=natural), intent=fn(0.0))
    inh, _ = body.breath_onsets(0.0, 120.0)
    assert abs(60.0 / np.mean(np.diff(inh)) - natural) < 0.15 * natural


def test_strain_interrupts_the_pacer_then_breathing_follows_it_again() -> None:
    pacer = Pacer(inhale_s=4.0, exhale_s=6.0)
    steps = Schedule([(30.0, Intent(pelvic=PelvicAction.STRAIN)), (37.0, Intent())])
    body = BodyModel(5, intent=lambda t: Intent(breath=pacer(t), pelvic=steps(t).pelvic))
    t = np.arange(0.0, 80.0, 0.02)
    breath, pelvic = body.labels(t)
    held = (t > 31.5) & (t < 37.0)
    assert np.all(breath[held] == BreathPhase.PAUSE)
    assert np.mean(pelvic[held] == PelvicState.STRAIN) > 0.9
    inh, _ = body.breath_onsets(45.0, 80.0)
    p_inh, _ = pacer.onsets(45.0, 80.0)
    assert inh.size == p_inh.size and np.all(np.abs(inh - p_inh) < 0.6)


def test_pacer_hold_is_a_pause() -> None:
    pacer = Pacer(inhale_s=4.0, hold_s=3.0, exhale_s=5.0)
    body = BodyModel(2, intent=lambda t: Intent(breath=pacer(t)))
    t = np.arange(24.0, 96.0, 0.02)
    breath, _ = body.labels(t)
    in_hold = ((t % pacer.period) > 4.8) & ((t % pacer.period) < 6.8)
    assert np.mean(breath[in_hold] == BreathPhase.PAUSE) > 0.95


# -------------------------------------------------------------------- heart


def test_rsa_rr_shorter_on_inhale() -> None:
    pacer = Pacer(inhale_s=4.0, exhale_s=6.0)
    # Without RSA (and without other heart-rate variability) there is no difference.
    for rsa, noise, lo, hi in ((60.0, 1.0, 20.0, 70.0), (0.0, 0.0, -1.0, 1.0)):
        body = BodyModel(
            3, params=BodyParams(rsa_ms=rsa), intent=lambda t: Intent(breath=pacer(t)), noise=noise
        )
        bt, rr = body.rr_intervals(10.0, 115.0)
        breath, _ = body.labels(bt)
        diff_ms = 1000 * (
            rr[breath == BreathPhase.EXHALE].mean() - rr[breath == BreathPhase.INHALE].mean()
        )
        assert lo < diff_ms < hi, (rsa, diff_ms)
    assert 60.0 / np.mean(rr) == pytest.approx(64.0, rel=0.08)


def test_ecg_r_peaks_at_beat_times() -> None:
    body = BodyModel(4)
    beats = body.beat_times(5.0, 25.0)
    assert 17 <= beats.size <= 26
    t = np.arange(5.0, 25.0, 1 / 500)
    ecg = body.ecg(t)
    r = body.ecg(beats)
    assert np.all(r > 800.0)
    # The tallest sample of each beat's neighbourhood is its R peak.
    for b in beats[1:-1]:
        m = (t > b - 0.25) & (t < b + 0.25)
        assert abs(t[m][np.argmax(ecg[m])] - b) < 0.01
    assert np.median(ecg) < 100.0


# -------------------------------------------------------- other sensors


@pytest.mark.parametrize(("posture", "axis"), [("supine", 2), ("sitting", 0), ("standing", 0)])
def test_chest_acc_gravity_and_breathing(posture: str, axis: int) -> None:
    body = BodyModel(5, params=BodyParams(posture=posture))
    t = np.arange(0.0, 60.0, 1 / 50)
    acc = body.chest_acc(t)
    norm = np.linalg.norm(acc, axis=1)
    assert np.all(np.abs(norm - 1000.0) < 40.0)
    assert np.argmax(np.abs(acc.mean(axis=0))) == axis
    # Breathing tilts the chest: some axis follows the lung volume closely.
    v = body.lung_volume(t)
    best = max(abs(np.corrcoef(acc[:, i], v)[0, 1]) for i in range(3) if acc[:, i].std() > 1)
    assert best > 0.9


def test_belt_rises_on_inhale() -> None:
    p = BodyParams()
    body = BodyModel(6, params=p, noise=0.0)  # no belt drift
    t = np.arange(0.0, 60.0, 1 / 20)
    belt, v = body.belt_force(t), body.lung_volume(t)
    assert np.corrcoef(belt, v)[0, 1] > 0.95
    np.testing.assert_allclose(belt.min(), p.belt_rest_N, atol=1.0)


def test_motion_artefacts_on_every_sensor() -> None:
    t = np.arange(0.0, 110.0, 1 / 50)
    calm = BodyModel(7, intent=lambda t: Intent(motion=0.0))
    restless = BodyModel(7, intent=lambda t: Intent(motion=1.0))
    # Motion has its own random stream: the difference is the artefact alone.
    art = {
        "acc": np.abs(restless.chest_acc(t) - calm.chest_acc(t)).max(),
        "pressure": np.abs(restless.pelvic_pressure(t) - calm.pelvic_pressure(t)).max(),
        "belt": np.abs(restless.belt_force(t) - calm.belt_force(t)).max(),
        "ecg": np.abs(restless.ecg(t) - calm.ecg(t)).max(),
    }
    assert art["acc"] > 100.0 and art["pressure"] > 2.0
    assert art["belt"] > 0.5 and art["ecg"] > 50.0
    np.testing.assert_array_equal(restless.lung_volume(t), calm.lung_volume(t))
    np.testing.assert_array_equal(restless.labels(t)[0], calm.labels(t)[0])
    # Occasional transients (a posture change may outlast them).
    jolt = np.abs(np.diff(restless.chest_acc(t) - calm.chest_acc(t), axis=0)).max(axis=1) > 2.0
    episodes = np.count_nonzero(np.diff(jolt.astype(int)) == 1)
    assert 2 <= episodes <= 40
    assert jolt.mean() < 0.3


def test_noise_zero_is_smooth_at_rest() -> None:
    body = BodyModel(8, noise=0.0, params=BodyParams(tone_drift_cmH2O=0.0))
    base = body.pelvic_pressure(np.arange(0.0, 60.0, 0.02))[:, 0]
    # Only the breathing ripple is left: small and above rest.
    assert base.min() >= BodyParams().rest_cmH2O - 1e-9
    assert base.max() - base.min() < 1.5 * BodyParams().ripple_cmH2O


# ---------------------------------------------------------- memory & errors


def test_memory_stays_bounded_as_time_goes_on() -> None:
    # What the model keeps depends on retention_s, not on how long it has run: a short
    # retention (20 s) and 20 minutes are sixty retention windows, and every count must
    # stop growing after the first one (a leak grows with time). The two-hour session is
    # a budget (benchmarks), not a test.
    body = BodyModel(9, intent=lambda t: Intent(motion=0.3), block_s=2.0, retention_s=20.0)
    sizes: list[dict[str, int]] = []
    for s in range(0, 1200, 15):
        t = s + np.arange(0.0, 15.0, 0.5)
        body.lung_volume(t)
        body.labels(t)
        body.ecg(t[-4:])
        if s >= 120:
            sizes.append(body.memory_items())
    assert body.horizon >= 1200.0
    grid = {d["grid"] for d in sizes}
    assert len(grid) == 1
    half = len(sizes) // 2
    for key, bound in (("segments", 30), ("beats", 60), ("motion_events", 20)):
        early = max(d[key] for d in sizes[:half])
        late = max(d[key] for d in sizes[half:])
        assert late < bound, key
        assert late <= early + 2, key  # no growth from the first ten minutes to the last
    assert max(d["pending_actions"] for d in sizes) <= 1


def test_retention_and_bad_queries() -> None:
    body = BodyModel(0, t0=100.0, retention_s=30.0)
    for s in range(100, 200, 10):
        body.lung_volume(np.arange(s, s + 10.0, 0.5))
    body.lung_volume(np.array([body.horizon - 30.0]))  # the window is kept
    with pytest.raises(ValueError, match=r"behind the newest generated time.*retention_s"):
        body.pelvic_pressure(np.array([150.0]))
    with pytest.raises(ValueError, match="before the model's start"):
        body.ecg(np.array([99.0]))
    with pytest.raises(ValueError, match="finite"):
        body.lung_volume(np.array([np.nan]))
    with pytest.raises(ValueError, match="posture"):
        BodyParams(posture="upside-down")
    with pytest.raises(ValueError, match="block_s"):
        BodyModel(0, block_s=0.25)
    assert body.lung_volume(np.zeros(0)).shape == (0,)
    assert body.pelvic_pressure(np.zeros(0)).shape == (0, 2)


def test_the_hearts_resonance_filter_is_scipys_bit_for_bit() -> None:
    # The heart filters without scipy (the virtual world starts light); same numbers.
    from scipy import signal

    from devices.virtual.body.heart import _biquad, _peak_ba

    rng = np.random.default_rng(3)
    for f0, q in ((4.5 / 60, 3.0), (6.5 / 60, 1.5), (0.2, 5.0)):
        b, a = signal.iirpeak(f0, q, fs=100.0)
        ba = _peak_ba(f0, q, 100.0)
        assert np.array_equal(b, ba[0]) and np.array_equal(a, ba[1])
        zi, z = np.zeros(2), (0.0, 0.0)
        for _ in range(4):
            x = np.tanh(3.0 * rng.standard_normal(50))
            want, zi = signal.lfilter(b, a, x, zi=zi)
            got, z = _biquad(ba, x, z)
            assert np.array_equal(want, got) and np.array_equal(zi, z)
