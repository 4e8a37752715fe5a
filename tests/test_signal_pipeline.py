"""The pipeline facade: source choice, streams by id, link events, coupling and reps end to end."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from biofeedback.signal import Pipeline, PipelineAPI, PipelineUpdate, Thresholds
from biofeedback.signal.breath import BreathTracker
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.signal.pelvic.hold import BreathHold
from devices.intent import Intent, PelvicAction
from devices.pacer import Pacer
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.virtual.body import BodyModel
from devices.vocab import BreathPhase, PelvicState

PACER = Pacer(inhale_s=4.5, exhale_s=5.5)
PRESSURE = StreamSpec("pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", 50.0)
PRESSURE1 = StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "cmH2O", 50.0)
BELT = StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", 50.0)
ACC = StreamSpec("acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0)
RR = StreamSpec("rr", StreamKind.RR, ("rr",), "s", None)


def session(t: float) -> Intent:
    b = PACER(t)
    if t < 20:
        return Intent()
    if t < 80:  # a set of reverse Kegels, done right
        return Intent(breath=b, pelvic=PelvicAction.DROP)
    if t < 100:
        return Intent()
    if t < 130:  # the mistake: bearing down
        on = (t - 100) % 15 < 7
        return Intent(pelvic=PelvicAction.STRAIN if on else PelvicAction.REST, effort=0.5)
    return Intent()


@functools.cache
def recording(seed: int = 1, dur: int = 140) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    body = BodyModel(seed, intent=session, noise=1.0)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        k: [] for k in ("pressure", "force", "acc", "rr", "label")
    }
    for s in range(dur):
        tp = s + np.arange(50) / 50.0
        ta = s + np.arange(200) / 200.0
        parts["pressure"].append((tp, body.pelvic_pressure(tp)))
        parts["force"].append((tp, body.belt_force(tp)[:, None]))
        parts["acc"].append((ta, body.chest_acc(ta)))
        bt, rr = body.rr_intervals(s, s + 1)
        parts["rr"].append((bt, rr[:, None]))
        parts["label"].append((tp, body.labels(tp)[1][:, None].astype(float)))
    return {
        k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v]))
        for k, v in parts.items()
    }


def chunks(
    rec: dict[str, tuple[np.ndarray, np.ndarray]],
    names: tuple[str, ...],
    chunk_s: float = 1.0,
    prefix: dict[str, str] | None = None,
    channels: int = 2,
) -> list[Chunk]:
    """Chunks of the chosen streams in arrival order."""
    items = []
    for name in names:
        t, v = rec[name]
        if name == "pressure":
            v = v[:, :channels]
        sid = f"{prefix[name]}/{name}" if prefix else name
        edges = np.arange(0.0, t[-1] + chunk_s, chunk_s)
        idx = np.searchsorted(t, edges)
        for a, b in itertools.pairwise(idx):
            if b > a:
                items.append((t[b - 1], Chunk(sid, t[a:b], v[a:b], "u")))
    items.sort(key=lambda x: x[0])
    return [c for _, c in items]


def feed(pipe: Pipeline, cs: list[Chunk], reps_at: float | None = None) -> list[PipelineUpdate]:
    out = []
    started = False
    for c in cs:
        if reps_at is not None and not started and c.t[0] >= reps_at:
            pipe.start_reps(target=5)
            started = True
        out.append(pipe.process(c))
    return out


def test_a_session_end_to_end_counts_and_scores_reps() -> None:
    rec = recording()
    pipe = Pipeline([PRESSURE, BELT, ACC])
    assert pipe.breath_source == "force"  # belt outranks the accelerometer
    ups = feed(pipe, chunks(rec, ("pressure", "force", "acc")), reps_at=30.0)
    reps = [r for u in ups for r in u.reps]
    assert [r.index for r in reps] == [1, 2, 3, 4, 5]
    assert all(r.good for r in reps) and np.mean([r.score for r in reps]) >= 85
    assert all(30 <= r.t_start < 85 for r in reps)
    summary = pipe.stop_reps()
    assert summary.reps == 5 and summary.good == 5
    # the strain set: every cycle in it scores zero with the reason
    strained = [c for u in ups for c in u.coupling if 100 < c.inhale_onset < 128 and c.strain]
    assert strained and all(c.score == 0 and "strain" in c.reasons for c in strained)
    # pelvic state against the truth
    st = np.concatenate([u.pelvic.state for u in ups if u.pelvic is not None])
    lab = rec["label"][1][:, 0].astype(int)
    lag = round(pipe.pelvic.delay_s * 50) if pipe.pelvic else 0
    m = rec["label"][0][: st.size - lag] > 10
    assert np.mean(st[lag:][m] == lab[: st.size - lag][m]) >= 0.9
    assert not np.any((lab == PelvicState.STRAIN) & (st == PelvicState.DROP))
    s = pipe.status
    assert s.breath_source == "force" and s.rate_bpm is not None and 4 < s.rate_bpm < 20
    assert s.pelvic_quality is not None and s.rest_level is not None
    assert set(s.to_json()) >= {"breath_phase", "pelvic_state", "rate_bpm", "reps"}


@pytest.mark.parametrize("seed", [1, 2])
def test_one_channel_probe_tells_strain_from_the_breath_hold(seed: int) -> None:
    rec = recording(seed)
    pipe = Pipeline([PRESSURE1, BELT])
    ups = feed(pipe, chunks(rec, ("pressure", "force"), channels=1))
    st = np.concatenate([u.pelvic.state for u in ups if u.pelvic is not None])
    lab = rec["label"][1][:, 0].astype(int)
    strain = lab == PelvicState.STRAIN
    assert not np.any(strain & (st == PelvicState.DROP))
    assert np.mean(st[strain] == PelvicState.STRAIN) > 0.5
    # and the state as a whole (a single-channel probe, the breath hold from the belt)
    lag = round(pipe.pelvic.delay_s * 50) if pipe.pelvic else 0
    m = rec["label"][0][: st.size - lag] > 10
    assert np.mean(st[lag:][m] == lab[: st.size - lag][m]) >= 0.9


@pytest.mark.parametrize(
    ("specs", "source"),
    [
        ([PRESSURE, BELT, ACC, RR], "force"),
        ([RR, ACC, PRESSURE], "acc"),
        ([RR, PRESSURE], "pressure"),
        ([RR], "rr"),
        ([PRESSURE1], "pressure"),
    ],
)
def test_breath_source_priority(specs: list[StreamSpec], source: str) -> None:
    assert Pipeline(specs).breath_source == source


def test_the_pressure_ripple_alone_gives_breath_and_pelvic_from_one_stream() -> None:
    rec = recording()
    pipe = Pipeline([PRESSURE])
    ups = feed(pipe, chunks(rec, ("pressure",)))
    both = [u for u in ups if u.breath is not None and u.pelvic is not None]
    assert len(both) == len(ups)
    assert sum(len(u.breath.breaths) for u in both if u.breath) >= 8


def test_streams_are_matched_by_device_prefix_and_link_events_switch_sources() -> None:
    rec = recording()
    prefix = {"pressure": "kgoal", "force": "belt", "acc": "polar", "rr": "polar"}
    pipe = Pipeline([PRESSURE, BELT, ACC, RR])
    cs = chunks(rec, ("pressure", "force", "acc", "rr"), prefix=prefix)
    first, rest = cs[:40], cs[40:]
    ups = feed(pipe, first)
    assert any(u.breath is not None for u in ups if u.stream == "belt/force")
    assert pipe.process(Chunk("other/thing", np.zeros(1), np.zeros((1, 1)), "u")).pelvic is None
    # the belt gives up: the chest accelerometer takes over
    pipe.on_link_event(LinkEvent(LinkKind.GIVEN_UP, 12.0, "belt"))
    assert pipe.breath_source == "acc"
    ups = feed(pipe, [c for c in rest if not c.stream.startswith("belt/")])
    assert sum(len(u.breath.breaths) for u in ups if u.breath is not None) >= 5
    # it comes back: the belt outranks the accelerometer again
    pipe.on_link_event(LinkEvent(LinkKind.CONNECTED, 100.0, "belt", value=88.0))
    assert pipe.breath_source == "force"
    # a lost probe link restarts its filters but keeps the resting tone
    rest_before = pipe.status.rest_level
    pipe.on_link_event(LinkEvent(LinkKind.LOST, 100.0, "kgoal"))
    u = pipe.process(
        cs[-1]
        if cs[-1].stream == "kgoal/pressure"
        else next(c for c in reversed(cs) if c.stream == "kgoal/pressure")
    )
    assert u.pelvic is not None and u.pelvic.state[-1] != PelvicState.UNKNOWN
    assert pipe.status.rest_level == pytest.approx(rest_before, abs=2.0)


def test_thresholds_reach_the_pelvic_tracker_and_units_are_checked() -> None:
    th = Thresholds(drop_margin=1.5, contraction_margin=3.0, unit="cmH2O")
    pipe = Pipeline([PRESSURE, BELT], thresholds=th)
    assert pipe.pelvic is not None and pipe.pelvic.margins()[:2] == (1.5, 3.0)
    pipe.set_thresholds(None)
    assert pipe.pelvic.thresholds is None
    with pytest.raises(ValueError, match="cmH2O"):
        Pipeline([StreamSpec("p", StreamKind.PRESSURE, ("p",), "count", 20.0)], thresholds=th)


def test_without_streams_the_pipeline_reports_nothing() -> None:
    pipe: PipelineAPI = Pipeline([])  # the facade implements the published signature
    u = pipe.process(Chunk("x", np.arange(3.0), np.zeros((3, 1)), "u"))
    assert u.breath is None and u.pelvic is None and u.coupling == ()
    assert pipe.status.breath_phase is BreathPhase.UNKNOWN and pipe.stop_reps().reps == 0


def test_pressure_channels_rule() -> None:
    """A tip channel makes a two-sensor probe; otherwise one channel is read."""
    assert pressure_channels(("base", "tip")) == (0, 1)
    assert pressure_channels(("tip", "base")) == (1, 0)
    assert pressure_channels(("raw", "calibrated")) == (0, None)
    assert pressure_channels(("calibrated", "raw")) == (1, None)
    assert pressure_channels(("pressure",)) == (0, None)
    assert pressure_channels(("a", "b")) == (0, None)


def test_kgoal_calibrated_channel_is_not_read_as_a_tip() -> None:
    """kGoal streams (raw, calibrated): the calibrated copy clips at 0 below
    its calibration point; the pelvic state must come from the raw channel
    alone and be the same as for a one-channel stream of it."""

    def intent(t: float) -> Intent:
        return Intent(pelvic=PelvicAction.DROP) if t % 60 > 30 else Intent()

    body = BodyModel(4, intent=intent, retention_s=400.0)
    t = np.arange(0, 180, 1 / 50.0)
    raw = 1000.0 + 40.0 * body.pelvic_pressure(t)[:, 0]
    calibrated = np.maximum(raw - float(np.median(raw[:500])), 0.0)
    kgoal = StreamSpec("pressure", StreamKind.PRESSURE, ("raw", "calibrated"), "count", 50.0)
    two = Pipeline([kgoal])
    one = Pipeline([StreamSpec("pressure", StreamKind.PRESSURE, ("raw",), "count", 50.0)])
    assert two.pelvic is not None and two.pelvic.n_in == 1
    s2, s1 = [], []
    for i in range(0, t.size, 50):
        sl = slice(i, i + 50)
        both = np.column_stack([raw[sl], calibrated[sl]])
        u2 = two.process(Chunk("pressure", t[sl], both, "count"))
        u1 = one.process(Chunk("pressure", t[sl], raw[sl, None], "count"))
        assert u2.pelvic is not None and u1.pelvic is not None
        s2.append(u2.pelvic.state)
        s1.append(u1.pelvic.state)
    a2, a1 = np.concatenate(s2), np.concatenate(s1)
    assert np.array_equal(a2, a1)
    assert (a1 == PelvicState.DROP).mean() > 0.2


@pytest.mark.parametrize("seed", [1, 3])
def test_slow_paced_breathing_is_not_a_breath_hold(seed: int) -> None:
    """Contractions while breathing with a slow pacer (10 s breaths) stay
    contractions on a one-channel probe: the long exhales are no hold."""
    pacer = Pacer(inhale_s=4.5, exhale_s=5.5)

    def intent(t: float) -> Intent:
        if t < 30:
            return Intent(breath=pacer(t))
        on = (t - 30) % 12 < 5
        action = PelvicAction.CONTRACT if on else PelvicAction.REST
        return Intent(breath=pacer(t), pelvic=action, effort=0.6)

    body = BodyModel(seed, intent=intent, noise=1.0, retention_s=400.0)
    t = np.arange(0, 150, 1 / 50.0)
    p, f, lab = body.pelvic_pressure(t), body.belt_force(t)[:, None], body.labels(t)[1]
    pipe = Pipeline([PRESSURE1, BELT])
    st = []
    for i in range(0, t.size, 50):
        pipe.process(Chunk("force", t[i : i + 50], f[i : i + 50], "N"))
        u = pipe.process(Chunk("pressure", t[i : i + 50], p[i : i + 50, :1], "cmH2O"))
        assert u.pelvic is not None
        st.append(u.pelvic.state)
    state = np.concatenate(st)
    con = lab == PelvicState.CONTRACTION
    assert np.mean(state[con] == PelvicState.STRAIN) < 0.01
    assert np.mean(state[con] == PelvicState.CONTRACTION) > 0.9


def test_a_tip_first_probe_is_read_like_a_base_first_one() -> None:
    """The column order of a two-sensor probe does not change its states."""
    rec = recording()
    t, p = rec["pressure"]
    swapped = StreamSpec("pressure", StreamKind.PRESSURE, ("tip", "base"), "cmH2O", 50.0)
    a, b = Pipeline([PRESSURE]), Pipeline([swapped])
    sa, sb = [], []
    for i in range(0, t.size, 50):
        ua = a.process(Chunk("pressure", t[i : i + 50], p[i : i + 50], "cmH2O"))
        ub = b.process(Chunk("pressure", t[i : i + 50], p[i : i + 50, ::-1], "cmH2O"))
        assert ua.pelvic is not None and ub.pelvic is not None
        sa.append(ua.pelvic.state)
        sb.append(ub.pelvic.state)
    np.testing.assert_array_equal(np.concatenate(sb), np.concatenate(sa))
    assert PelvicState.STRAIN in np.concatenate(sa)


def _arrival(
    rec: dict[str, tuple[np.ndarray, np.ndarray]],
    names: tuple[str, ...],
    chunk_s: float | None,
    channels: int = 2,
) -> list[Chunk]:
    """Chunks of ``chunk_s`` seconds (None: the whole stream in one), in the order a
    live session delivers them: by their last sample's time, the breath streams
    first on a tie (``names`` order)."""
    items = []
    for k, name in enumerate(names):
        t, v = rec[name]
        v = v[:, :channels] if name == "pressure" else v
        n = t.size if chunk_s is None else round(chunk_s * (200 if name == "acc" else 50))
        for a in range(0, t.size, n):
            b = min(a + n, t.size)
            items.append((t[b - 1], k, Chunk(name, t[a:b], v[a:b], "u")))
    items.sort(key=lambda x: (x[0], x[1]))
    return [c for *_, c in items]


def _stored(pipe: Pipeline, cs: list[Chunk]) -> dict[str, object]:
    """What a session stores or shows, gathered over the updates."""
    ups = [pipe.process(c) for c in cs]
    pel = [u.pelvic for u in ups if u.pelvic is not None]
    return {
        "state": np.concatenate([p.state for p in pel]),
        "relative": np.concatenate([p.relative for p in pel]),
        "confidence": np.concatenate([p.confidence for p in pel]),
        "pelvic events": [e for p in pel for e in p.events],
        "breath events": [e for u in ups if u.breath is not None for e in u.breath.events],
        "cycles": [c for u in ups for c in u.coupling],
        "reps": [r for u in ups for r in u.reps],
        "summary": pipe.stop_reps(),
    }


@pytest.mark.parametrize("clock", ["breath", "pacer"])
def test_stored_results_do_not_depend_on_chunking(clock: str) -> None:
    """One call per stream, 1 s chunks and 0.1 s (notification) chunks, the
    streams interleaved by time: the same states, events, cycle scores, strain
    flags, reps and set summary (a cycle is scored against the pelvic figures
    in effect at its end, not those of the latest chunk)."""
    rec = recording()
    names = ("force", "pressure")
    runs = []
    for chunk_s in (None, 1.0, 0.1):
        pipe = Pipeline([PRESSURE, BELT])
        pacer = Pacer(inhale_s=4.5, exhale_s=5.5, t0=20.0)
        pipe.start_reps(target=5, pacer=pacer, t_start=20.0, clock=clock)  # type: ignore[arg-type]
        runs.append(_stored(pipe, _arrival(rec, names, chunk_s)))
    whole = runs[0]
    cycles = whole["cycles"]
    assert isinstance(cycles, list) and len(cycles) >= 12
    assert any(c.strain for c in cycles) and len(whole["reps"]) == 5  # type: ignore[arg-type]
    for other in runs[1:]:
        assert other.keys() == whole.keys()
        for key in ("state", "relative", "confidence"):
            np.testing.assert_array_equal(other[key], whole[key], err_msg=key)  # type: ignore[arg-type]
        for key in ("pelvic events", "breath events", "cycles", "reps", "summary"):
            assert other[key] == whole[key], key


def test_one_channel_states_do_not_depend_on_chunking() -> None:
    """One channel and a belt: the breath hold (strain evidence) is judged per
    pressure sample on the breath's own timeline, so 1 s and 0.1 s chunks give
    the same states (the belt's chunks arriving first on a tie, as live)."""
    rec = recording()
    states = []
    for chunk_s in (1.0, 0.1):
        pipe = Pipeline([PRESSURE1, BELT])
        ups = [pipe.process(c) for c in _arrival(rec, ("force", "pressure"), chunk_s, 1)]
        states.append(np.concatenate([u.pelvic.state for u in ups if u.pelvic is not None]))
    np.testing.assert_array_equal(states[1], states[0])


def test_the_breath_hold_is_judged_per_sample_on_the_breaths_own_timeline() -> None:
    """:class:`BreathHold`: a belt that stops at the end of an exhale for 10 s
    is a held breath from 2.5 s into the stillness until breathing resumes,
    never while breathing; the evidence at every time is the same however the
    belt is chunked (a sample, a notification, a second, the whole stream)."""
    fs = 50.0
    t = np.arange(0.0, 60.0, 1.0 / fs)
    belt = 12.0 - 2.0 * np.cos(2.0 * np.pi * t / 4.0)  # troughs at 0, 4, 8, ... s
    still = (t >= 32.0) & (t < 42.0)
    belt[still] = 10.0  # held at the trough from 32 s to 42 s
    tq = np.arange(0.0, 60.0, 0.02) + 0.013
    seen = []
    for n in (1, 5, 50, t.size):
        tracker = BreathTracker(StreamKind.BREATH_FORCE, fs)
        hold = BreathHold(tracker.front.fs)
        for a in range(0, t.size, n):
            hold.add(tracker.process(t[a : a + n], belt[a : a + n, None]))
        seen.append(hold.holding(tq))
    for other in seen[1:]:
        np.testing.assert_array_equal(other, seen[0])
    held = seen[0]
    assert held[(tq > 35.0) & (tq < 42.0)].all()
    assert not held[(tq > 12.0) & (tq < 33.0)].any()
    assert not held[tq > 46.0].any()  # breathing again


def test_the_status_kept_between_chunks_is_the_status_now() -> None:
    """The status record is rebuilt only when a figure it shows changed: after
    every chunk, link event, set start and stop it reads as one built afresh,
    and a chunk that changed nothing hands on the same record."""
    rec = recording()
    pipe = Pipeline([PRESSURE, BELT, ACC])
    cs = chunks(rec, ("pressure", "force", "acc"), chunk_s=0.2)

    def check() -> None:  # (repr: a NaN figure reads the same)
        assert repr(pipe.status) == repr(pipe._make_status())

    kept = 0
    for i, c in enumerate(cs):
        before = pipe.status
        u = pipe.process(c)
        kept += u.status is before
        check()
        if i == 150:
            pipe.start_reps(target=3)
            check()
        if i == 300:
            pipe.on_link_event(LinkEvent(LinkKind.LOST, float(c.t[-1]), "force"))
            check()
        if i == 350:
            pipe.set_thresholds(Thresholds(drop_margin=1.5, rest_level=30.0, unit="cmH2O"))
            check()
        if i == 450:
            pipe.stop_reps()
            check()
    assert kept > len(cs) // 10
