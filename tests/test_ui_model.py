"""The live model (pure: no Qt) and the terminal view that reads it."""

from __future__ import annotations

import asyncio
import io
import math
import tracemalloc

import numpy as np
import pytest

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.results import (
    CouplingResult,
    PipelineStatus,
    PipelineUpdate,
    RepResult,
)
from biofeedback.signal.types import (
    BreathOutput,
    PelvicOutput,
    Quality,
)
from biofeedback.ui.model import (
    HISTORY,
    PACER_TEXT,
    STALL_S,
    STRAIN_HOLD_S,
    LiveModel,
    Ring,
    fmt_ago,
    fmt_clock,
)
from biofeedback.ui.terminal import TerminalView
from biofeedback.ui.words import breath_source_text, source_name, trust_word
from devices.clock import SimClock
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import BreathPhase, PelvicState

PRESSURE = StreamSpec("kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"), "count", 50.0)
BELT = StreamSpec("gdx-rb.force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
ACC = StreamSpec("polar-h10.acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0)
ECG = StreamSpec("polar-h10.ecg", StreamKind.ECG, ("ecg",), "uV", 130.0)
ALL = (PRESSURE, BELT, ACC, ECG)


class ManualClock:
    """A clock the test moves by hand (the model only reads ``now()``)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def chunk(spec: StreamSpec, t0: float, n: int, rng: np.random.Generator | None = None) -> Chunk:
    assert spec.rate_hz is not None
    t = t0 + np.arange(n) / spec.rate_hz
    k = len(spec.channels)
    values = (rng.normal(size=(n, k)) if rng is not None
              else np.tile(t[:, None], (1, k)) * np.arange(1, k + 1))
    return Chunk(spec.name, t, values, spec.unit, spec.channels)


def status(t: float, state: PelvicState = PelvicState.REST, reps: int = 0) -> PipelineStatus:
    return PipelineStatus(t, BELT.name, BreathPhase.INHALE, 6.0, 1.0, 0.9, 0.5, state, 0.8,
                          Quality.OK, 100.0, reps, True, breath_trust=0.3)


def pelvic_update(
    t: np.ndarray, rel: np.ndarray, state: np.ndarray, *, rest: float = 100.0,
    margins: tuple[float, float, float] = (2.0, 3.0, 5.0), reps: tuple[RepResult, ...] = (),
) -> PipelineUpdate:
    st = state.astype(np.int8)
    out = PelvicOutput(PRESSURE.name, t, rel + rest, rel, st, np.ones_like(t), rest, margins,
                       0.1, Quality.OK, (), False, 0.3)
    return PipelineUpdate(PRESSURE.name, None, out, (), reps,
                          status(float(t[-1]), PelvicState(int(st[-1])), len(reps)))


def breath_update(t: np.ndarray, sig: np.ndarray) -> PipelineUpdate:
    phase = np.where(np.gradient(sig) > 0, BreathPhase.INHALE, BreathPhase.EXHALE).astype(np.int8)
    out = BreathOutput(BELT.name, StreamKind.BREATH_FORCE, t, sig, phase, (), (), 6.0, 1.0, 0.9,
                       1, 0.4, Quality.NOISY)
    return PipelineUpdate(BELT.name, out, None, (), (), status(float(t[-1])))


def rep(index: int, score: float) -> RepResult:
    c = CouplingResult(0.0, 4.0, 10.0, 100.0, -3.0, -2.0, 3.0, 1.5, 0.7, False, False, score, ())
    return RepResult(index, c, score, score >= 70, ())


# ----------------------------------------------------------------------------- ring


def test_ring_keeps_the_newest_rows_contiguous_across_wraps() -> None:
    ring = Ring(10, 2)
    ref_t: list[float] = []
    k = 0
    for n in (3, 4, 7, 1, 10, 13, 2, 9):
        t = np.arange(k, k + n, dtype=float)
        ring.append(t, np.column_stack((t, -t)))
        ref_t.extend(t)
        k += n
        want = np.array(ref_t[-10:])
        got_t, got_v = ring.last()
        np.testing.assert_array_equal(got_t, want)
        np.testing.assert_array_equal(got_v[:, 1], -want)
        for m in (0, 1, 5, 10, 25):
            np.testing.assert_array_equal(ring.last(m)[0], want[len(want) - min(m, len(want)):])
        assert ring.last_t == ref_t[-1]
    t, _ = ring.since(ref_t[-1] - 3.5)
    np.testing.assert_array_equal(t, np.array(ref_t[-4:]))
    assert ring.total == len(ref_t) and len(ring) == 10
    assert not t.flags.writeable
    with pytest.raises(ValueError):
        t[0] = 1.0  # read-only view: a reader cannot write into the ring by mistake


def test_ring_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring(0, 1)
    ring = Ring(4, 2)
    with pytest.raises(ValueError, match="2 channel"):
        ring.append(np.arange(3.0), np.zeros((3, 3)))


# ----------------------------------------------------------------------------- streams


def test_raw_window_is_exactly_the_last_seconds_of_samples() -> None:
    clock = ManualClock()
    model = LiveModel(ALL, window_s=30.0, clock=clock)
    t0 = 1000.0
    sent_t: list[np.ndarray] = []
    sent_v: list[np.ndarray] = []
    # 60 s of pressure in notification-sized chunks (7 samples), one named "<device>/<name>".
    for i in range(0, 3000, 7):
        c = chunk(PRESSURE, t0 + i / 50.0, min(7, 3000 - i))
        if i == 7:
            c = Chunk("Boost/kgoal.pressure", c.t, c.values, c.unit, c.channels)
        model.on_chunk(c)
        sent_t.append(c.t)
        sent_v.append(c.values)
    clock.t = t0 + 60.0
    all_t, all_v = np.concatenate(sent_t), np.concatenate(sent_v)
    for secs in (1.0, 10.0, 30.0):
        t, v = model.raw(PRESSURE.name, secs)
        keep = all_t >= clock.t - secs
        np.testing.assert_array_equal(t, all_t[keep])
        np.testing.assert_array_equal(v, all_v[keep])
    assert model.raw("Boost/kgoal.pressure", 5.0)[0].shape[0] == 250
    with pytest.raises(KeyError):
        model.raw("nope")
    assert model.t_origin == t0


def test_unknown_stream_is_kept_too() -> None:
    model = LiveModel([PRESSURE])
    c = Chunk("lsl.thing", np.arange(5.0), np.ones((5, 1)), "a.u.", ("v",))
    model.on_chunk(c)
    t, v = model.raw("lsl.thing")
    assert t.shape == (5,) and v.shape == (5, 1)


def test_memory_is_flat_over_a_two_hour_session() -> None:
    clock = ManualClock()
    model = LiveModel(ALL, window_s=30.0, clock=clock)
    rng = np.random.default_rng(1)
    step = 10  # seconds per block of chunks (tracemalloc makes many small calls slow)
    blocks = {s.name: rng.normal(size=(int(s.rate_hz or 1) * step, len(s.channels)))
              for s in ALL}

    def feed(sec: int) -> None:
        for s in ALL:
            n = int(s.rate_hz or 1) * step
            t = sec + np.arange(n) / (s.rate_hz or 1)
            model.on_chunk(Chunk(s.name, t, blocks[s.name], s.unit, s.channels))
        t50 = sec + np.arange(50 * step) / 50.0
        state = np.where(np.sin(t50) < 0, PelvicState.DROP, PelvicState.REST)
        model.on_update(pelvic_update(t50, np.sin(t50), state, reps=(rep(sec // step, 80.0),)))
        t10 = sec + np.arange(10 * step) / 10.0
        model.on_update(breath_update(t10, np.sin(t10)))
        model.on_link(LinkEvent(LinkKind.BATTERY, float(sec), "Boost", "", 80.0))
        clock.t = sec + step

    tracemalloc.start()
    try:
        for sec in range(0, 600, step):
            feed(sec)
        model.snapshot()
        nbytes_10min = model.nbytes
        mem_10min, _ = tracemalloc.get_traced_memory()
        for sec in range(600, 7200, step):
            feed(sec)
        model.snapshot()
        mem_2h, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.nbytes == nbytes_10min  # the buffers never grow
    assert mem_2h - mem_10min < 256 * 1024, f"grew {mem_2h - mem_10min} bytes"
    assert len(model.reps) == HISTORY and model.total_reps == 720
    # The views still show exactly the last 30 s.
    t, _ = model.raw(ACC.name, 30.0)
    assert t[0] >= clock.t - 30.0 and t[-1] == pytest.approx(7199.995)


# ----------------------------------------------------------------------------- pipeline


def test_pelvic_and_breath_views_and_zones() -> None:
    clock = ManualClock(20.0)
    model = LiveModel([PRESSURE, BELT], clock=clock, window_s=30.0)
    assert model.zones() is None
    t = np.arange(0, 20, 0.02)
    rel = np.sin(t)
    state = np.where(rel < -0.5, PelvicState.DROP, PelvicState.REST)
    for i in range(0, t.size, 25):
        model.on_update(pelvic_update(t[i:i + 25], rel[i:i + 25], state[i:i + 25]))
    tb = np.arange(0, 20, 0.1)
    model.on_update(breath_update(tb, np.cos(tb)))
    pv = model.pelvic(5.0)
    keep = t >= 15.0
    np.testing.assert_array_equal(pv.t, t[keep])
    np.testing.assert_array_equal(pv.relative, rel[keep])
    np.testing.assert_array_equal(pv.level, rel[keep] + 100.0)
    np.testing.assert_array_equal(pv.state, state[keep].astype(float))
    bv = model.breath(5.0)
    np.testing.assert_array_equal(bv.signal, np.cos(tb[tb >= 15.0]))
    lo, hi = model.breath_range(20.0) or (0.0, 0.0)
    assert lo == pytest.approx(np.percentile(np.cos(tb), 5))
    assert hi == pytest.approx(np.percentile(np.cos(tb), 95))
    z = model.zones()
    assert z is not None and z.source == "pipeline"
    assert (z.rest, z.drop_margin, z.contraction_margin, z.strain_margin) == (100.0, 2.0, 3.0, 5.0)
    assert model.quality == {PRESSURE.name: Quality.OK, BELT.name: Quality.NOISY}
    model.set_zones(95.0, 1.0, 4.0, 8.0)
    z = model.zones()
    assert z is not None and z.source == "profile" and z.rest == 95.0
    assert z.bands() == {
        PelvicState.DROP: (-math.inf, -1.0),
        PelvicState.REST: (-1.0, 4.0),
        PelvicState.CONTRACTION: (4.0, 8.0),
        PelvicState.STRAIN: (8.0, math.inf),
    }
    with pytest.raises(ValueError, match="strain_margin"):
        model.set_zones(95.0, 1.0, 4.0, 0.0)
    model.clear_zones()
    assert model.zones() is not None and model.zones().source == "pipeline"  # type: ignore[union-attr]
    snap = model.snapshot()
    assert snap.pelvic_relative == pytest.approx(rel[-1]) and not snap.settling


def test_strain_warning_holds_for_a_while_then_goes() -> None:
    clock = ManualClock()
    model = LiveModel([PRESSURE], clock=clock)
    t = np.arange(0, 12, 0.02)
    state = np.where((t >= 9) & (t < 10), PelvicState.STRAIN, PelvicState.REST)
    model.on_update(pelvic_update(t, np.zeros_like(t), state))
    clock.t = 9.5
    assert model.strain_warning()
    clock.t = 10.0 + STRAIN_HOLD_S - 0.1
    assert model.strain_warning() and model.snapshot().strain
    clock.t = 10.0 + STRAIN_HOLD_S + 0.1
    assert not model.strain_warning()


def test_reps_are_counted_scored_and_bounded() -> None:
    model = LiveModel([PRESSURE])
    t = np.arange(0.0, 1.0, 0.02)
    for i in range(HISTORY + 50):
        model.on_update(pelvic_update(t + i, np.zeros_like(t), np.full(t.size, 2),
                                      reps=(rep(i + 1, 60.0 + (i % 2) * 20.0),)))
    assert model.total_reps == HISTORY + 50
    assert len(model.reps) == HISTORY and model.reps[-1].index == HISTORY + 50
    assert model.mean_score == pytest.approx(70.0)
    assert model.snapshot().last_rep is model.reps[-1]


# ----------------------------------------------------------------------------- links, stalls, time


def test_link_status_through_a_drop_and_a_reconnect() -> None:
    clock = ManualClock()
    model = LiveModel([PRESSURE], clock=clock)
    for ev in (
        LinkEvent(LinkKind.CONNECTING, 0.0, "Boost"),
        LinkEvent(LinkKind.CONNECTED, 1.0, "Boost"),
        LinkEvent(LinkKind.BATTERY, 1.1, "Boost", "87 %", 87.0),
    ):
        model.on_link(ev)
    st = model.links["Boost"]
    assert (st.state, st.battery, st.problem) == ("connected", 87.0, False)
    model.on_link(LinkEvent(LinkKind.LOST, 10.0, "Boost", "link lost"))
    model.on_link(LinkEvent(LinkKind.RECONNECTING, 10.0, "Boost", "link lost", 1.0))
    model.on_link(LinkEvent(LinkKind.RECONNECTING, 11.0, "Boost", "not advertising", 2.0))
    clock.t = 15.0
    st = model.links["Boost"]
    assert (st.state, st.since, st.attempt, st.problem) == ("reconnecting", 10.0, 2, True)
    assert model.link_alerts() == ["Boost: link lost 5 s ago - reconnecting, attempt 2"]
    model.on_link(LinkEvent(LinkKind.CONNECTED, 16.0, "Boost", "reconnected", 6.0))
    st = model.links["Boost"]
    assert (st.state, st.last_gap_s, st.problem, st.battery) == ("connected", 6.0, False, 87.0)
    assert model.link_alerts() == []
    model.on_link(LinkEvent(LinkKind.GIVEN_UP, 30.0, "Boost", "gave up", 6.0))
    assert "gave up" in model.link_alerts()[0]
    # A device that never connected and keeps retrying is not (yet) a lost link.
    model.on_link(LinkEvent(LinkKind.RECONNECTING, 1.0, "GDX-RB", "refused", 1.0))
    assert not model.links["GDX-RB"].problem


def test_stall_is_reported_after_two_seconds_without_samples() -> None:
    clock = ManualClock(100.0)
    model = LiveModel([PRESSURE, BELT], clock=clock,
                      device_of={PRESSURE.name: "Boost", BELT.name: "GDX-RB"})
    model.set_running("running")
    assert model.stalled() == []  # nothing arrived yet: not stalled, just waiting
    model.on_chunk(chunk(PRESSURE, 100.0, 5))
    model.on_chunk(chunk(BELT, 100.0, 1))
    clock.t += STALL_S - 0.1
    assert model.stalled() == []
    model.on_chunk(chunk(BELT, clock.t, 1))
    clock.t += 0.3
    assert model.stalled() == [PRESSURE.name]
    assert model.snapshot().stalled == (PRESSURE.name,)
    model.on_chunk(chunk(PRESSURE, clock.t, 5))
    assert model.stalled() == []
    clock.t += 5.0
    assert sorted(model.stalled()) == sorted([PRESSURE.name, BELT.name])
    model.on_link(LinkEvent(LinkKind.LOST, clock.t, "Boost"))
    assert model.stalled() == [BELT.name]  # the link banner speaks for Boost
    model.set_running("paused")
    assert model.stalled() == []


def test_timer_counts_running_time_only() -> None:
    clock = ManualClock(50.0)
    model = LiveModel([PRESSURE], clock=clock)
    model.set_running("running")
    clock.t = 60.0
    model.set_running("paused")
    clock.t = 65.0
    assert model.elapsed() == pytest.approx(10.0)
    model.set_running("running")
    clock.t = 70.0
    assert model.elapsed() == pytest.approx(15.0)
    model.set_running("stopped")
    clock.t = 90.0
    assert model.snapshot().elapsed_s == pytest.approx(15.0)
    with pytest.raises(ValueError):
        model.set_running("exploded")  # type: ignore[arg-type]
    assert fmt_clock(3725) == "1:02:05" and fmt_clock(65.9) == "1:05"
    assert (fmt_ago(0.4), fmt_ago(12.7), fmt_ago(65)) == ("just now", "12 s ago", "1:05 ago")


def test_snapshot_pacer_step_and_cue() -> None:
    clock = ManualClock(0.0)
    model = LiveModel([PRESSURE], clock=clock)
    pacer = Pacer(4.0, 1.0, 5.0, t0=3.0)
    model.set_pacer(pacer)
    model.set_step("reps", 3.0, 53.0)
    model.on_cue("breathe in, let the floor drop", 3.0)
    for now in (3.5, 6.0, 7.5, 9.0, 12.99):
        clock.t = now
        s = model.snapshot()
        assert s.pacer == pacer.target(now)
        assert s.pacer_level == pytest.approx(float(pacer.curve(np.array([now]))[0]))
        assert s.pacer_words == PACER_TEXT[pacer.target(now).phase]
        assert s.step is not None and s.step_left_s == pytest.approx(53.0 - now)
        assert s.cue == "breathe in, let the floor drop"
    clock.t = 3.0 + 2.0
    assert model.snapshot().pacer_left_s == pytest.approx(2.0)
    assert model.snapshot().pacer_words == ("Breathe in", "let go")
    clock.t = 100.0
    assert model.snapshot().cue is None  # old cues fade
    assert model.snapshot().pacer_label == "6.0/min, in 4.0 s : hold 1.0 s : out 5.0 s"
    model.set_pacer(None)
    assert model.snapshot().pacer is None and model.snapshot().pacer_label is None


def test_the_label_says_where_an_adaptive_pacer_leads() -> None:
    model = LiveModel([PRESSURE], clock=ManualClock(0.0))
    model.pacer_goal = Pacer(4.0, 0.0, 6.0)
    model.set_pacer(Pacer(4.0, 0.0, 4.5, t0=0.0))  # eased back: 7.1/min for now
    assert model.snapshot().pacer_label == "7.1/min, in 4.0 s : out 4.5 s -> 6.0/min"
    model.set_pacer(Pacer(4.0, 0.0, 6.0, t0=30.0))  # at the goal: nothing more to say
    assert model.snapshot().pacer_label == "6.0/min, in 4.0 s : out 6.0 s"


# ----------------------------------------------------------------------------- terminal view


def _busy_model() -> tuple[LiveModel, ManualClock]:
    clock = ManualClock(10.0)
    model = LiveModel([PRESSURE, BELT], clock=clock)
    model.set_running("running")
    clock.t = 20.0
    model.set_pacer(Pacer(4.0, 0.0, 6.0, t0=10.0))
    model.set_step("reps", 10.0, 60.0)
    model.on_link(LinkEvent(LinkKind.CONNECTED, 1.0, "Boost"))
    model.on_link(LinkEvent(LinkKind.BATTERY, 1.0, "Boost", "", 87.0))
    model.on_link(LinkEvent(LinkKind.CONNECTED, 1.0, "GDX-RB"))
    model.on_link(LinkEvent(LinkKind.LOST, 15.0, "GDX-RB"))
    t = np.arange(10.0, 20.0, 0.02)
    state = np.where(t > 18.5, PelvicState.STRAIN, PelvicState.DROP)
    model.on_update(pelvic_update(t, np.full_like(t, -3.2), state, reps=(rep(3, 82.0),)))
    return model, clock


def test_terminal_view_plain_lines_without_a_terminal() -> None:
    model, _ = _busy_model()
    out = io.StringIO()
    clock = SimClock(speed=None)
    view = TerminalView(model, file=out, clock=clock)
    assert not view.tty and view.period == 1.0
    line = view.line()
    assert "0:10" in line and "reps 0:40 left" in line
    assert "breathe in - let go" in line and "(pacer 6.0/min, in 4.0 s : out 6.0 s)" in line
    assert "pelvic pushing - soften -3.2" in line
    assert "reps 1 last 82 avg 82" in line
    assert "Boost: connected 87%" in line and "GDX-RB: lost (lost 5 s ago)" in line
    assert "WARNING Soften - no pushing" in line and "GDX-RB: link lost 5 s ago" in line
    # A breath source of low trust says so (here a status that judged it 0.3).
    assert "Breath from gdx-rb (force): trust low - follow the pacer more than the trace" in line

    async def briefly() -> None:
        async with view:
            await clock.sleep(0.05)  # simulated: exactly one period's first line

    asyncio.run(briefly())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all("pelvic" in ln for ln in lines)  # first line, then the last
    assert "\x1b[" not in out.getvalue()  # plain text: no escape codes in a log


def test_terminal_view_redraws_in_place_on_a_terminal() -> None:
    model, _ = _busy_model()
    out = io.StringIO()
    clock = SimClock(speed=None)
    view = TerminalView(model, file=out, tty=True, refresh_hz=50.0, clock=clock)

    async def briefly() -> None:
        async with view:
            await clock.sleep(0.2)  # simulated: 10 redraws

    asyncio.run(briefly())
    text = out.getvalue()
    assert view.lines_written >= 3
    assert "\x1b[" in text  # rich's cursor movement: the lines are redrawn in place
    assert "Stop if it hurts." in text and "Soften - no pushing" in text
    assert "Breathe in" in text and "pushing - soften" in text
    assert "pacer 6.0/min, in 4.0 s : out 6.0 s" in text  # the current target
    with pytest.raises(ValueError):
        TerminalView(model, refresh_hz=0.0)


def test_the_headless_views_do_not_import_qt() -> None:
    import subprocess
    import sys

    code = ("import sys, biofeedback.ui; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'pyqtgraph', 'qasync')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_displayed_breath_has_no_step_larger_than_the_signal_own() -> None:
    """The detector re-centres each chunk on the latest breath (its first midline comes
    with the second event, ~10 s in; the polarity is decided then too); the model keeps
    the history continuous instead of stepping the old trace (issue 14 item 4)."""
    from biofeedback.signal.pipeline import Pipeline

    rng = np.random.default_rng(3)
    clock = ManualClock()
    model = LiveModel([BELT], clock=clock)
    pipeline = Pipeline([BELT])
    levels: list[np.ndarray] = []
    t_all = np.arange(0.0, 60.0, 0.1)
    # Inhale lowers the force (a belt worn the other way), on a 20 N offset that drifts.
    x = 20.0 + 0.02 * t_all - 2.0 * np.sin(2 * np.pi * t_all / 10.0)
    x += rng.normal(0.0, 0.02, t_all.size)
    for i in range(0, t_all.size, 5):
        t = t_all[i:i + 5]
        upd = pipeline.process(Chunk(BELT.name, t, x[i:i + 5, None], "N", BELT.channels))
        clock.t = float(t[-1])
        model.on_update(upd)
        br = upd.breath
        if br is not None and br.t.size:
            sign = -1.0 if br.polarity < 0 else 1.0
            levels.append(br.signal * sign + br.midline)
    own = float(np.max(np.abs(np.diff(np.concatenate(levels)))))
    shown = model.breath().signal
    assert shown.size > 200
    assert float(np.max(np.abs(np.diff(shown)))) <= own * (1 + 1e-9)
    assert np.ptp(shown[-100:]) > 1.0  # it still breathes on screen
    mid = 0.5 * (shown[-100:].max() + shown[-100:].min())
    assert abs(mid) < 0.5  # centred on the latest breaths


def test_trust_in_words_bands_and_sources() -> None:
    assert [trust_word(x) for x in (1.0, 0.75, 0.6, 0.45, 0.2, 0.0)] == [
        "high", "high", "medium", "medium",
        "low - follow the pacer more than the trace", "low - follow the pacer more than the trace"]
    assert trust_word(None) == trust_word(math.nan) == "being judged"
    assert breath_source_text("polar-h10.ecg", 0.5) == "Breath from polar-h10 (ecg): trust medium"
    assert source_name("GDX-RB 0K2001A7/gdx-rb.force") == "GDX-RB 0K2001A7 (force)"
    assert source_name("force") == "force"
    assert breath_source_text(None, None) == "No breath sensor: follow the pacer"


def test_a_stopped_session_keeps_its_moment() -> None:
    """Once stopped, "now" stays at the end: the views keep the last window, the timer and
    the cues stop where they were, whatever time the clock says; running again goes live."""
    clock = ManualClock(100.0)
    model = LiveModel([PRESSURE], clock=clock, window_s=30.0)
    model.set_running("running")
    for k in range(200):  # 40 s of 50 Hz pressure
        model.on_chunk(chunk(PRESSURE, 100.0 + k * 0.2, 10))
        clock.t = 100.0 + (k + 1) * 0.2
    model.on_cue("well done", clock.t - 1.0)
    model.set_running("stopped")
    end = clock.t
    t_end, _ = model.raw(PRESSURE.name)
    t_end = t_end.copy()
    clock.t += 3600.0
    model.set_running("stopped")  # said twice (engine, then window): the first moment counts
    assert model.now() == end == model.ended_at
    t, _ = model.raw(PRESSURE.name)
    np.testing.assert_array_equal(t, t_end)
    assert t[0] >= end - 30.0 - 1e-9 and t[-1] == pytest.approx(end - 0.02)
    snap = model.snapshot()
    assert snap.elapsed_s == pytest.approx(40.0) and snap.cue == "well done"
    assert snap.ended == "Session ended."
    model.set_end_note("Session complete - saved as session 2.")
    assert model.snapshot().ended == "Session complete - saved as session 2."
    model.set_running("running")
    assert model.now() == clock.t and model.snapshot().ended is None
