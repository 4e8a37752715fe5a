"""The session engine on a synthetic source: the body model sampled directly, no radio.

The virtual person follows the engine's own intent (or a twisted copy of it),
the real :class:`~biofeedback.signal.pipeline.Pipeline` analyses the samples,
and an in-memory recorder stands in for the store's session writer.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.session import (
    CUES,
    PAIN_STOP,
    PROTOCOLS,
    PainRefusedError,
    SessionEngine,
    SessionProtocol,
    Step,
    StepKind,
    check_pain,
    pacer_from_profile,
)
from biofeedback.signal.pipeline import Pipeline
from devices.clock import SimClock
from devices.errors import GaveUpError, InputError
from devices.intent import Intent, PelvicAction
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.virtual.body import BodyModel, BodyParams
from devices.vocab import BreathPhase

STREAMS = (
    StreamSpec("pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", 50.0),
    StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", 20.0),
)

#: A short protocol for the tests: 5 s settle, 15 s baseline, 4 reps, 5 s post.
SHORT = SessionProtocol(
    "short",
    (
        Step(StepKind.SETTLE, 5.0),
        Step(StepKind.BASELINE, 15.0),
        Step(StepKind.REPS, reps=4, set_index=1),
        Step(StepKind.POST, 5.0),
    ),
)


class Recorder:
    """Keeps what a session writer would store."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.links: list[LinkEvent] = []
        self.events: list[tuple[float, str, str, Any]] = []
        self.state_samples = 0
        self.finished: dict[str, Any] | None = None

    def chunk(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)

    def link_event(self, ev: LinkEvent) -> None:
        self.links.append(ev)

    def event(self, t: float, kind: str, text: str = "", data: Any = None) -> None:
        self.events.append((t, kind, text, data))

    def states(self, stream: str, t: Any, state: Any) -> None:
        assert stream == "pressure"
        assert len(t) == len(state)
        self.state_samples += len(t)

    def finish(self, **kw: Any) -> None:
        self.finished = kw

    def kinds(self, kind: str) -> list[tuple[float, str, str, Any]]:
        return [e for e in self.events if e[1] == kind]


async def body_source(
    clock: SimClock,
    body: BodyModel,
    *,
    until: float = math.inf,
    extra: Callable[[float], list[LinkEvent]] | None = None,
    fail_at: float | None = None,
    belt: bool = True,
    every: int = 1,
) -> AsyncIterator[Chunk | LinkEvent]:
    """Pressure (50 Hz) and belt (20 Hz) chunks every 0.1 s of the clock (or ``every`` x 0.1 s)."""
    t = clock.now()
    yield LinkEvent(LinkKind.CONNECTED, t, "probe")
    while t < until:
        await clock.sleep_until(t + 0.1 * every)
        if fail_at is not None and t >= fail_at:
            raise GaveUpError("probe: link lost and reconnects failed")
        tp = t + np.arange(1, 5 * every + 1) / 50.0
        yield Chunk("pressure", tp, body.pelvic_pressure(tp), "cmH2O", ("base", "tip"))
        if belt:
            tb = t + np.arange(1, 2 * every + 1) / 20.0
            yield Chunk("force", tb, body.belt_force(tb)[:, None], "N", ("force",))
        t += 0.1 * every
        for ev in extra(t) if extra is not None else []:
            yield ev


def make(
    protocol: SessionProtocol | str = SHORT,
    seed: int = 3,
    streams: Any = STREAMS,
    params: BodyParams | None = None,
    **kw: Any,
) -> tuple[SimClock, SessionEngine, BodyModel, Recorder]:
    clock = SimClock(speed=None)
    rec = Recorder()
    engine = SessionEngine(clock, Pipeline(streams), protocol, writer=rec, **kw)
    body = BodyModel(seed, intent=engine.intent, t0=clock.now(), params=params)
    return clock, engine, body, rec


# --------------------------------------------------------------------------- protocols


def test_protocol_lengths_and_fit() -> None:
    p = Pacer()
    assert PROTOCOLS["quick"].length(p) == pytest.approx(20 + 30 + 5 * 10 + 4 + 30)
    assert PROTOCOLS["standard"].reps == 10
    assert PROTOCOLS["long"].reps == 20
    assert [s.kind for s in PROTOCOLS["long"].steps].count(StepKind.REST) == 1

    steps, fits = PROTOCOLS["quick"].fit(60.0, p)
    assert fits
    kinds = [s.kind for s in steps]
    assert kinds == [StepKind.SETTLE, StepKind.BASELINE, StepKind.REPS, StepKind.POST]
    assert sum(s.length(p) for s in steps) == pytest.approx(60.0, abs=0.01)
    assert 1 <= steps[2].reps <= 5

    # Long fitted into 90 s: one set only, and no rest step left dangling.
    steps, fits = PROTOCOLS["long"].fit(90.0, p)
    assert fits and [s.kind for s in steps].count(StepKind.REST) == 0
    # Fits already: unchanged.
    assert PROTOCOLS["quick"].fit(1000.0, p) == (PROTOCOLS["quick"].steps, True)
    # Not even one rep fits: cut instead.
    assert PROTOCOLS["quick"].fit(8.0, p)[1] is False


def test_pacer_from_profile_and_pain_checks() -> None:
    pacer = pacer_from_profile({"suggested_pacer": {"inhale_s": 5, "exhale_s": 7}})
    assert pacer is not None and (pacer.inhale_s, pacer.hold_s, pacer.exhale_s) == (5, 0, 7)
    assert pacer_from_profile({"suggested_pacer": {"inhale_s": -1, "exhale_s": 7}}) is None
    assert pacer_from_profile({}) is None
    assert check_pain(None) is None
    assert check_pain(3) == 3
    for bad in (-1, 11, 2.5):
        with pytest.raises(InputError):
            check_pain(bad)


def test_pain_before_refuses() -> None:
    with pytest.raises(PainRefusedError, match="Stop and rest"):
        make(pain_before=PAIN_STOP)
    with pytest.raises(InputError):
        make(pain_before=12)


# --------------------------------------------------------------------------- sessions


@pytest.mark.asyncio
async def test_compliant_session_steps_cues_reps_summary() -> None:
    clock, engine, body, rec = make(pain_before=1, note_before="tight today")
    t0 = clock.now()

    # Before it starts the person rests and breathes freely.
    assert engine.intent(t0) == Intent()
    summary = await engine.run(body_source(clock, body))
    final = engine.finish(pain_after=1, note_after="easier")

    assert summary.complete and summary.ended_by == "protocol end"
    steps = [s["kind"] for s in summary.steps]
    assert steps == ["settle", "baseline", "reps", "post"]
    assert summary.duration_s == pytest.approx(SHORT.length(Pacer()), abs=0.2)
    # Reps: every paced cycle counted and scored; the compliant person drops.
    assert summary.reps == 4 and summary.reps_target == 4 and summary.rep_clock == "breath"
    assert summary.mean_score is not None and summary.mean_score > 50
    assert summary.drop_depth is not None and summary.drop_depth > 0
    assert summary.drop_unit == "cmH2O"
    assert summary.drop_on_inhale_pct is not None and summary.drop_on_inhale_pct > 40
    assert summary.strain_count == 0
    assert summary.breath_rate_bpm == pytest.approx(summary.target_rate_bpm, rel=0.15)
    assert summary.link_gaps == 0
    # The breath came from the belt, and the summary says how far it could be trusted.
    assert summary.breath_source == "force"
    assert summary.breath_trust is not None and summary.breath_trust >= 0.75

    texts = [c.text for c in engine.cues]
    assert texts[0] == CUES["safety"]
    assert texts.count(CUES["inhale"]) == 4 and texts.count(CUES["exhale"]) == 4
    assert CUES["closing"] in texts and CUES["well_done"] in texts
    assert CUES["strain"] not in texts
    assert texts[-1] == CUES["done"]
    # Cues come at the pacer's phase changes, in time order.
    inhale_t = [c.t - engine.segments[2].t_start for c in engine.cues
                if c.text == CUES["inhale"]]
    assert inhale_t == pytest.approx([0.0, 10.0, 20.0, 30.0])
    assert all(a.t <= b.t for a, b in zip(engine.cues, engine.cues[1:], strict=False))

    # Recorded: chunks, link events, step/cue/rep events, states, the summary.
    assert len(rec.chunks) > 1000 and rec.links[0].kind is LinkKind.CONNECTED
    assert [e[2] for e in rec.kinds("step")] == ["settle", "baseline", "reps", "post"]
    assert len(rec.kinds("rep")) == 4 and rec.kinds("plan")
    assert rec.state_samples > 0
    assert rec.finished is not None and rec.finished["complete"] is True
    assert rec.finished["pain_after"] == 1 and rec.finished["note_after"] == "easier"
    js = rec.finished["summary"]
    assert js["reps"] == 4 and js["pain_before"] == 1 and js["note_before"] == "tight today"
    assert js["breath_source"] == "force" and js["breath_trust"] >= 0.75
    assert final.advice == []


@pytest.mark.asyncio
async def test_probe_alone_reps_follow_the_pacer() -> None:
    clock, engine, body, _ = make(streams=STREAMS[:1])
    summary = await engine.run(body_source(clock, body, belt=False))
    # No breath sensor: the pipeline's breath would be the probe's own ripple,
    # which the drop swamps; the paced cycles are scored instead.
    assert summary.rep_clock == "pacer" and summary.breath_rate_bpm is None
    # The probe's ripple is a breath of medium trust at best, and the summary says so.
    assert summary.breath_source == "pressure"
    assert summary.breath_trust is not None and summary.breath_trust < 0.75
    assert summary.reps == 4 and summary.mean_score is not None and summary.mean_score > 50
    starts = [r.t_start - engine.segments[2].t_start for r in engine.reps]
    assert starts == pytest.approx([0.5, 10.5, 20.5, 30.5])  # PACED_LAG_S after each cue
    assert CUES["well_done"] in [c.text for c in engine.cues]


@pytest.mark.asyncio
async def test_intent_follows_the_plan() -> None:
    clock, engine, body, _ = make()
    task = asyncio.create_task(engine.run(body_source(clock, body)))
    await clock.sleep(1.0)
    t0 = engine.t0
    assert t0 is not None
    st = engine.status()
    assert st["step"] == "settle" and st["left_s"] == pytest.approx(4.0) and st["phase"] is None
    assert engine.intent(t0 + 2.0).pelvic is PelvicAction.REST  # settle
    assert engine.intent(t0 + 12.0).breath is None  # baseline: free breathing
    reps_start = t0 + 20.0
    inh = engine.intent(reps_start + 1.0)  # planned ahead: reps, inhale
    assert inh.pelvic is PelvicAction.DROP and inh.breath is not None
    assert inh.breath.phase == BreathPhase.INHALE
    assert engine.intent(reps_start + 6.0).breath.phase == BreathPhase.EXHALE  # type: ignore[union-attr]
    closing = engine.intent(reps_start + 41.0)  # after 4 cycles: the closing inhale
    assert closing.pelvic is PelvicAction.REST and closing.breath is not None
    assert engine.intent(reps_start + 50.0) == Intent()  # post
    engine.stop()
    await task


@pytest.mark.asyncio
async def test_strain_is_cued_and_never_praised() -> None:
    clock, engine, body, _ = make(seed=5)

    def pusher(t: float) -> Intent:
        it = engine.intent(t)
        if it.pelvic is PelvicAction.DROP and it.breath is not None:
            if it.breath.phase == BreathPhase.INHALE:
                return Intent(breath=None, pelvic=PelvicAction.STRAIN, effort=0.8)
            return Intent(breath=it.breath)
        return it

    body.intent = pusher
    summary = await engine.run(body_source(clock, body))
    texts = [c.text for c in engine.cues]
    assert summary.strain_count > 0
    assert CUES["strain"] in texts
    assert CUES["well_done"] not in texts
    assert summary.mean_score is None or summary.mean_score < 50


@pytest.mark.asyncio
async def test_stop_keeps_the_recording_and_marks_incomplete() -> None:
    clock, engine, body, rec = make()

    async def stopper() -> None:
        await clock.sleep(27.0)  # inside the reps
        engine.stop()

    stop_task = asyncio.create_task(stopper())
    summary = await engine.run(body_source(clock, body))
    await stop_task
    assert not summary.complete and summary.ended_by == "stopped"
    assert summary.duration_s == pytest.approx(27.0, abs=0.2)
    assert [s["kind"] for s in summary.steps] == ["settle", "baseline", "reps"]
    assert rec.chunks and rec.kinds("end")[-1][3] == {"complete": False}
    engine.finish()
    assert rec.finished is not None and rec.finished["complete"] is False


@pytest.mark.asyncio
async def test_pause_and_resume_during_reps() -> None:
    clock, engine, body, _ = make()

    async def control() -> None:
        await clock.sleep(36.0)  # 16 s into the reps: after the first rep
        engine.pause()
        assert engine.paused
        t = clock.now()
        assert engine.intent(t + 1.0) == Intent()  # rest while paused
        await clock.sleep(10.0)
        engine.resume()

    ctl = asyncio.create_task(control())
    summary = await engine.run(body_source(clock, body))
    await ctl
    kinds = [s["kind"] for s in summary.steps]
    assert kinds == ["settle", "baseline", "reps", "pause", "reps", "post"]
    assert summary.complete
    assert summary.reps == 4  # the reps left were done after the pause
    # One rep before the pause, the three left after it with a fresh pacer (the
    # interrupted cycle, 6 s, is breathed again).
    assert [(s["target"], s["summary"]["reps"]) for s in summary.sets] == [(4, 1), (3, 3)]
    assert summary.duration_s == pytest.approx(SHORT.length(Pacer()) + 10.0 + 6.0, abs=0.2)


@pytest.mark.asyncio
async def test_pain_during_and_after() -> None:
    clock, engine, body, rec = make()

    async def hurt() -> None:
        await clock.sleep(25.0)
        assert engine.report_pain(2) is False
        await clock.sleep(2.0)
        assert engine.report_pain(6, "sharp") is True

    h = asyncio.create_task(hurt())
    summary = await engine.run(body_source(clock, body))
    await h
    assert summary.ended_by == "pain" and not summary.complete
    assert summary.pain_during == 6
    assert any("Stop and rest" in a for a in summary.advice)
    final = engine.finish(pain_after=7)
    assert len(final.advice) == 2 and final.pain_after == 7
    assert [e[3]["when"] for e in rec.kinds("pain")] == ["during", "during", "after"]


@pytest.mark.asyncio
async def test_fitted_duration_and_link_gaps() -> None:
    def flaky(t: float) -> list[LinkEvent]:
        if abs(t - 10.0) < 0.05:
            return [LinkEvent(LinkKind.LOST, t, "probe", "link lost")]
        if abs(t - 12.0) < 0.05:
            return [LinkEvent(LinkKind.CONNECTED, t, "probe", "reconnected", 2.0)]
        return []

    clock, engine, body, rec = make("quick", duration=60.0)
    summary = await engine.run(body_source(clock, body, extra=flaky))
    assert summary.fitted and summary.complete
    assert summary.duration_s == pytest.approx(60.0, abs=0.2)
    assert summary.reps == summary.reps_target >= 1
    assert summary.link_gaps == 1 and summary.gap_s == pytest.approx(2.0)
    assert [e.kind for e in rec.links].count(LinkKind.LOST) == 1


@pytest.mark.asyncio
async def test_source_failure_and_end() -> None:
    clock, engine, body, _ = make()
    summary = await engine.run(body_source(clock, body, fail_at=8.0))
    assert summary.ended_by == "link" and not summary.complete
    assert isinstance(engine.error, GaveUpError)

    clock, engine, body, _ = make()
    summary = await engine.run(body_source(clock, body, until=clock.now() + 12.0))
    assert summary.ended_by == "source ended" and not summary.complete
    assert summary.duration_s == pytest.approx(12.0, abs=0.3)


@pytest.mark.asyncio
async def test_cut_at_duration_when_nothing_fits() -> None:
    clock, engine, body, _ = make("quick", duration=8.0)
    summary = await engine.run(body_source(clock, body))
    assert summary.ended_by == "duration" and not summary.complete
    assert summary.duration_s == pytest.approx(8.0, abs=0.01)


def test_the_free_breath_under_way_at_the_first_cue_is_no_rep() -> None:
    """Seen in a real-time demo: a free inhale that ended 20 ms after the rep
    step began was taken as rep 1 (and scored 0 for "no drop on inhale").
    A cycle whose inhale runs well into the paced inhale still is rep 1."""
    from biofeedback.signal.reps import RepWindow, is_paced_cycle
    from biofeedback.signal.results import CouplingResult

    window = RepWindow(100.0, 3, Pacer(4.0, 0.0, 6.0, t0=100.0))

    def rep(inhale: float, exhale: float, end: float) -> CouplingResult:
        return CouplingResult(
            inhale, exhale, end, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, False, 0.0, ()
        )

    assert not is_paced_cycle(rep(97.8, 100.02, 110.5), window)  # the free breath
    assert is_paced_cycle(rep(98.5, 103.9, 110.2), window)  # carried on into the paced inhale
    assert is_paced_cycle(rep(100.3, 104.1, 110.1), window)  # on the cue
    assert not is_paced_cycle(rep(90.0, 94.0, 99.0), window)  # before the step


@pytest.mark.asyncio
async def test_the_view_is_handed_the_reps_the_engine_records() -> None:
    """One rep authority: the pipeline's updates carry exactly the reps the engine records."""
    from biofeedback.ui.model import LiveModel

    class Seen(LiveModel):
        def __init__(self) -> None:
            super().__init__(STREAMS)
            self.seen: list[Any] = []

        def on_update(self, update: Any) -> None:
            self.seen += update.reps
            super().on_update(update)

    model = Seen()
    clock, engine, body, _ = make(model=model)
    summary = await engine.run(body_source(clock, body))
    assert summary.reps == 4 and model.seen == engine.reps and model.total_reps == 4


# --------------------------------------------------------------------------- the engine's parts


def test_link_gap_tracker_counts_open_and_closed_gaps() -> None:
    from biofeedback.protocols.links import LinkGapTracker

    gaps = LinkGapTracker()
    gaps.on_event(LinkEvent(LinkKind.LOST, 10.0, "probe"))
    gaps.on_event(LinkEvent(LinkKind.CONNECTED, 13.0, "probe"))  # no value: the events' times
    gaps.on_event(LinkEvent(LinkKind.LOST, 20.0, "belt"))
    gaps.on_event(LinkEvent(LinkKind.CONNECTED, 21.0, "belt", "", 0.5))  # the source's own gap
    gaps.on_event(LinkEvent(LinkKind.LOST, 30.0, "probe"))  # still away at the end
    assert gaps.gaps == 3
    assert gaps.gap_s(34.0) == pytest.approx(3.0 + 0.5 + 4.0)


def test_timeline_pause_keeps_what_is_left_of_the_step() -> None:
    from biofeedback.protocols.timeline import SessionTimeline

    tl = SessionTimeline(SHORT.steps, Pacer(), cut_after=None)
    tl.start(0.0)
    seg = tl.take_next(0.0)
    assert seg is not None and seg.step.kind is StepKind.SETTLE and seg.t_end == 5.0
    tl.enter(seg)
    pause = tl.hold(seg, 2.0, reps_done=0)
    tl.leave(seg, 2.0)
    tl.enter(pause)
    assert tl.paused and tl.segment_at(100.0) is pause  # a pause has no planned end
    tl.unhold(7.0)
    tl.leave(pause, 7.0)
    rest = tl.take_next(7.0)
    assert rest is not None and rest.step.kind is StepKind.SETTLE
    assert rest.t_end == pytest.approx(10.0)  # the 3 s left of the settle step


def test_protocol_names_are_looked_up_with_the_known_ones_listed() -> None:
    from biofeedback.protocols.plan import by_name

    assert by_name(PROTOCOLS, "quick", "protocol") is PROTOCOLS["quick"]
    known = r"unknown protocol 'slow' \(known: quick, standard, long\)"
    with pytest.raises(InputError, match=known):
        make("slow")


# --------------------------------------------------------------------------- adaptive pacer

#: One long set: time for the adaptive pacer to ease back and lead on.
ADAPT = SessionProtocol(
    "adapt",
    (
        Step(StepKind.SETTLE, 5.0),
        Step(StepKind.BASELINE, 10.0),
        Step(StepKind.REPS, reps=24, set_index=1),
        Step(StepKind.POST, 5.0),
    ),
)


@pytest.mark.asyncio
async def test_adaptive_pacer_eases_back_then_leads_a_short_breather_to_the_goal() -> None:
    goal = Pacer(inhale_s=4.0, exhale_s=6.0)  # 6/min
    # This person keeps a paced exhale up for 3 s only (comfortable at 60/(4+3) = 8.6/min):
    # asked for 6 s they breathe in early. Exhales asked for within their reach train them.
    params = BodyParams(exhale_limit_s=3.0)
    clock, engine, body, rec = make(ADAPT, params=params, pacer=goal, adaptive_pacer=True)
    s = await engine.run(body_source(clock, body, every=5))  # 0.5 s chunks: a faster test
    assert s.complete and s.target_rate_bpm == pytest.approx(6.0)
    ap = s.adaptive_pacer
    assert ap is not None and ap["goal"]["rate_bpm"] == 6.0 and ap["start"]["rate_bpm"] == 6.0
    changes = ap["changes"]
    rate = {c["t_s"]: c["rate_bpm"] for c in changes}
    # It eased back towards what the person could follow within the first 1.5 minutes...
    fastest = max(rate, key=lambda t: rate[t])
    assert rate[fastest] > 7.5 and fastest < 90.0 and ap["eased_back"] >= 2
    assert ap["breaths_in_trouble"] >= 3
    # ...then lengthened the exhale gradually (at most 0.5 s a cycle), the inhale kept...
    exh = [c["exhale_s"] for c in changes if c["t_s"] >= fastest]
    assert all(b - a <= 0.5 + 1e-6 for a, b in itertools.pairwise(exh))
    assert sum(b > a for a, b in itertools.pairwise(exh)) >= 10
    assert {c["inhale_s"] for c in changes} == {4.0}
    # ...to the goal: within 0.3/min after 3 minutes, 0.1/min at the end of the set.
    assert all(r < 6.3 for t, r in rate.items() if t > 15.0 + 180.0)
    assert ap["end"]["rate_bpm"] == pytest.approx(6.0, abs=0.1)
    # The cues and the step follow the cycles as they were planned and shown.
    seg = next(g for g in engine.segments if g.step.kind is StepKind.REPS)
    pacer = seg.pacer
    assert pacer is not None and not isinstance(pacer, Pacer)
    inhales = [c.t for c in engine.cues if c.text == CUES["inhale"]]
    assert inhales == pytest.approx([pacer.start_of(k) for k in range(24)])
    exhales = [c.t for c in engine.cues if c.text == CUES["exhale"]]
    assert exhales == pytest.approx([c.t0 + c.inhale_s for c in pacer.cycles[:24]])
    assert seg.t_end == pytest.approx(pacer.start_of(24) + 4.0)  # the closing inhale
    shown = rec.kinds("pacer")
    starts = [e[0] - seg.t_start + 15.0 for e in shown]
    assert starts == pytest.approx([c["t_s"] for c in changes], abs=0.01)
    assert all(e[3]["goal_bpm"] == 6.0 for e in shown) and shown[0][2].startswith("6.0/min")
    assert s.to_json()["adaptive_pacer"] == ap


@pytest.mark.asyncio
async def test_adaptive_pacer_keeps_the_rate_of_a_person_who_follows() -> None:
    clock, engine, body, rec = make(pacer=Pacer(inhale_s=4.0, exhale_s=6.0), adaptive_pacer=True)
    s = await engine.run(body_source(clock, body))
    ap = s.adaptive_pacer
    assert s.complete and ap is not None and ap["breaths_judged"] >= 3
    assert ap["breaths_in_trouble"] == 0 and ap["eased_back"] == 0
    assert len(ap["changes"]) == 1 and ap["end"] == ap["goal"]
    plan = rec.kinds("plan")[0][3]
    step = next(e[3] for e in rec.kinds("step") if e[3]["step"] == "reps")
    assert step["pacer"]["adaptive"] is True and plan["steps"][2]["reps"] == 4


def test_adaptive_timeline_foresees_the_step_end_and_goes_on_in_the_next_set() -> None:
    from biofeedback.protocols.timeline import SessionTimeline
    from devices.pacer import AdaptivePacer

    steps = (
        Step(StepKind.REPS, reps=3, set_index=1),
        Step(StepKind.REST, 10.0),
        Step(StepKind.REPS, reps=3, set_index=2),
    )
    tl = SessionTimeline(steps, AdaptivePacer(Pacer(4.0, 0.0, 6.0), start=Pacer(3.0, 0.0, 3.0)))
    tl.start(0.0)
    seg = tl.take_next(0.0)
    assert seg is not None and isinstance(seg.pacer, AdaptivePacer)
    tl.enter(seg)
    assert seg.t_end == pytest.approx(3 * 6.0 + 3.0)  # 3 cycles at 3 s / 3 s, closing inhale
    assert not tl.refresh()
    seg.pacer.observe(0.1, 3.1, 6.0)  # followed: the cycles not yet planned lengthen
    assert tl.refresh() and tl.current is not None and tl.current.t_end > seg.t_end
    upcoming = seg.pacer.upcoming
    assert (upcoming.inhale_s, upcoming.exhale_s) == pytest.approx((3.25, 3.5))
    assert seg.reps_end == pytest.approx(6.0 + 2 * 6.75)
    later = tl.segment_at(tl.current.t_end + 20.0)  # looking ahead plans nothing
    assert later is not None and later.step.set_index == 2 and seg.pacer.upcoming is upcoming
    tl.leave(tl.current, tl.current.t_end)
    rest = tl.take_next(tl.segments[-1].t_end)
    assert rest is not None and rest.pacer is None
    tl.enter(rest)
    tl.leave(rest, rest.t_end)
    second = tl.take_next(rest.t_end)
    assert second is not None and second.pacer is not None
    # The next set starts where the last left off, its first inhale at its start.
    assert second.pacer.first.exhale_s == pytest.approx(3.5) and second.pacer.t0 == rest.t_end
