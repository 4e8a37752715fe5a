"""Replaying an adaptive-pacer session gives the live session's pacer.

The session is recorded in-process (the engine on a simulated clock, the body
model of a person who keeps a paced exhale up 3 s only, the real store's
writer); the replay plays back the recorded ``pacer`` events instead of the
first cycle's pattern, so its pacer phase changes (the breath cues) and the
targets shown are the live ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from biofeedback.cli.replay_cmds import _then_wait, recorded_pacer_plan, replay_engine
from biofeedback.paths import store_path
from biofeedback.protocols.cues import CUES
from biofeedback.protocols.pacer import Pacer, pacer_json
from biofeedback.protocols.session import SessionEngine, SessionProtocol, Step, StepKind
from biofeedback.replay import ReplaySource
from biofeedback.signal.pipeline import Pipeline
from biofeedback.store import SessionMeta, Store
from devices.clock import SimClock
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.virtual.body import BodyModel, BodyParams

pytestmark = pytest.mark.asyncio

STREAMS = (
    StreamSpec("probe/pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", 50.0),
    StreamSpec("belt/force", StreamKind.BREATH_FORCE, ("force",), "N", 20.0),
)
#: Two adaptive sets with a rest between (the second goes on from the first).
PROTOCOL = SessionProtocol("adapt", (
    Step(StepKind.SETTLE, 3.0), Step(StepKind.BASELINE, 10.0),
    Step(StepKind.REPS, reps=8, set_index=1), Step(StepKind.REST, 5.0),
    Step(StepKind.REPS, reps=5, set_index=2), Step(StepKind.POST, 3.0),
))
GOAL = Pacer(inhale_s=4.0, exhale_s=6.0)
PACED = {CUES["inhale"], CUES["exhale"], CUES["hold"], CUES["closing"]}


async def _source(clock: SimClock, body: BodyModel) -> AsyncIterator[Chunk | LinkEvent]:
    t = clock.now()
    yield LinkEvent(LinkKind.CONNECTED, t, "probe")
    while True:  # 0.5 s chunks: a faster test
        await clock.sleep_until(t + 0.5)
        tp = t + np.arange(1, 26) / 50.0
        yield Chunk("probe/pressure", tp, body.pelvic_pressure(tp), "cmH2O", ("base", "tip"))
        tb = t + np.arange(1, 11) / 20.0
        yield Chunk("belt/force", tb, body.belt_force(tb)[:, None], "N", ("force",))
        t += 0.5


async def _record(store: Store) -> tuple[int, SessionEngine]:
    clock = SimClock(speed=None)
    engine = SessionEngine(clock, Pipeline(STREAMS), PROTOCOL, pacer=GOAL, adaptive_pacer=True)
    body = BodyModel(3, intent=engine.intent, t0=clock.now(),
                     params=BodyParams(exhale_limit_s=3.0))
    writer = store.begin_session(SessionMeta(
        person="ada", protocol="adapt", streams=STREAMS,
        devices=[{"name": "probe", "address": "AA", "driver": "perifit"}],
        t0=clock.now(), pacer={**pacer_json(GOAL), "adaptive": True}, virtual=True,
    ))
    engine.writer = writer
    await engine.run(_source(clock, body))
    engine.finish(pain_after=0, note_after=None)
    return writer.session_id, engine


async def test_replayed_adaptive_pacer_gives_the_live_phase_changes() -> None:
    with Store(store_path()) as store:
        sid, live = await _record(store)
        info = store.session(sid)
        plan = recorded_pacer_plan(store, sid)
        assert plan is not None and len({p for _, p in plan}) >= 4  # the target moved
        clock = SimClock(speed=None)
        source = ReplaySource(store, sid, clock, speed=1.0, rebase=True)
        async with source:
            start = clock.now()
            engine, t_first, until = replay_engine(store, sid, clock, start)
            replayed = await engine.run(_then_wait(source.__aiter__(), clock, until),
                                        start_at=t_first)
    shift = start - info.t0
    want = [(c.t, c.text) for c in live.cues if c.text in PACED]
    got = [(c.t - shift, c.text) for c in engine.cues if c.text in PACED]
    assert len(want) == 2 * (8 + 5) + 2  # every cycle's inhale and exhale, two closings
    assert [text for _, text in got] == [text for _, text in want]
    assert np.max(np.abs(np.subtract([t for t, _ in got], [t for t, _ in want]))) < 1e-6
    # The targets shown (as the summary lists them) and the reps are the live ones.
    ap_live, ap_replay = live.summary().adaptive_pacer, replayed.adaptive_pacer
    assert ap_live is not None and ap_replay is not None
    assert ap_replay["changes"] == ap_live["changes"]
    assert info.summary is not None and replayed.reps == info.summary["reps"]
