"""``replay``: a recorded session played back through the pipeline, as if it were live."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import click

from biofeedback.cli.console import say
from biofeedback.cli.live_cmds import print_summary, use_window
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SESSION_ID
from biofeedback.cli.runtime import run
from biofeedback.paths import store_path
from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.session import (
    SessionEngine,
    SessionProtocol,
    SessionSummary,
    Step,
    StepKind,
)
from biofeedback.runtime import attach_window, cue_printer, install_signals
from biofeedback.store import Store
from biofeedback.ui.model import LiveModel
from biofeedback.ui.terminal import TerminalView
from devices.clock import Clock, clock_for_speed
from devices.errors import InputError
from devices.stream import Chunk, LinkEvent

__all__ = ["recorded_pacer_plan", "replay", "replay_engine", "replay_protocol"]


def replay_protocol(
    store: Store, session_id: int
) -> tuple[SessionProtocol, Pacer, float | None]:
    """The steps a recorded session went through, as a protocol to replay.

    Each step lasts as long as it really did (until the next step began, or
    the session ended): a pause or a stop is replayed where it happened.

    Returns
    -------
    protocol : SessionProtocol
        The recorded steps.
    pacer : Pacer
        The session's pacer.
    first : float or None
        Start of the first step relative to the session's ``t0`` (None
        without recorded steps).
    """
    info = store.session(session_id)
    evs = [e for e in store.events(session_id, "step") if e.data and "t_start" in e.data]
    ends = store.events(session_id, "end")
    t_stop = ends[-1].t if ends else None
    steps: list[Step] = []
    pacer_d: Any = info.pacer
    for i, ev in enumerate(evs):
        d = ev.data or {}
        try:
            kind = StepKind(str(d.get("step")))
        except ValueError:
            continue
        start = float(d["t_start"])
        if i + 1 < len(evs):
            end = float((evs[i + 1].data or {})["t_start"])
        elif t_stop is not None:
            end = t_stop
        elif d.get("t_end") is not None:
            end = float(d["t_end"])
        else:
            end = start
        steps.append(Step(kind, max(end - start, 0.0), int(d.get("reps") or 0),
                          int(d.get("set") or 0)))
        if isinstance(d.get("pacer"), dict) and not d["pacer"].get("adaptive"):
            pacer_d = d["pacer"]  # (an adaptive set's is its first cycle, not the goal)
    pacer = Pacer()
    if isinstance(pacer_d, dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            pacer = Pacer(inhale_s=float(pacer_d["inhale_s"]),
                          hold_s=float(pacer_d.get("hold_s") or 0.0),
                          exhale_s=float(pacer_d["exhale_s"]))
    first = float((evs[0].data or {})["t_start"]) - info.t0 if evs else None
    return SessionProtocol(info.protocol or "replay", tuple(steps)), pacer, first


def _pacer_of(d: Any) -> Pacer | None:
    """A recorded pacer pattern (None: not one)."""
    try:
        return Pacer(inhale_s=float(d["inhale_s"]), hold_s=float(d.get("hold_s") or 0.0),
                     exhale_s=float(d["exhale_s"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def recorded_pacer_plan(store: Store, session_id: int) -> tuple[tuple[float, Pacer], ...] | None:
    """The targets an adaptive session's pacer showed, as recorded (None: a fixed pacer).

    Returns
    -------
    tuple of (float, Pacer) or None
        Each ``pacer`` event: when the cycle began (seconds after the
        session's ``t0``) and its pattern (exact where the recording has it).
    """
    info = store.session(session_id)
    steps = store.events(session_id, "step")
    step_pacers = [(e.data or {}).get("pacer") for e in steps]
    adaptive = (isinstance(info.pacer, dict) and bool(info.pacer.get("adaptive"))) or any(
        isinstance(p, dict) and p.get("adaptive") for p in step_pacers)
    if not adaptive:
        return None
    plan: list[tuple[float, Pacer]] = []
    for ev in store.events(session_id, "pacer"):
        d = ev.data or {}
        pattern = _pacer_of(d.get("exact")) or _pacer_of(d)
        if pattern is not None:
            plan.append((ev.t - info.t0, pattern))
    return tuple(sorted(plan, key=lambda x: x[0]))


def replay_engine(
    store: Store, session_id: int, clock: Clock, start: float, *, model: Any = None
) -> tuple[SessionEngine, float, float]:
    """The engine that replays a session whose recorded ``t0`` falls on ``start``.

    An adaptive session's pacer plays back the targets it showed
    (:func:`recorded_pacer_plan`), so the replayed pacer, its cues and the
    reps follow the live cycles rather than the first cycle's pattern.

    Returns
    -------
    engine : SessionEngine
    t_first : float
        Clock time of the first step (give it to ``engine.run(start_at=...)``).
    until : float
        Clock time the replayed steps end.

    Raises
    ------
    InputError
        The session has no recorded steps.
    """
    from biofeedback.signal.pipeline import Pipeline

    protocol, pacer, first = replay_protocol(store, session_id)
    if not protocol.steps:
        raise InputError(f"session {session_id} has no recorded steps to replay")
    plan = recorded_pacer_plan(store, session_id)
    specs = list(store.session(session_id).streams)
    engine = SessionEngine(clock, Pipeline(specs), protocol, pacer=pacer, model=model,
                           adaptive_pacer=plan is not None,
                           pacer_plan=[(start + t, p) for t, p in plan or ()])
    t_first = start + (first or 0.0)
    return engine, t_first, t_first + protocol.length(pacer) + 1.0


async def _then_wait(
    items: AsyncIterator[Chunk | LinkEvent], clock: Clock, until: float
) -> AsyncIterator[Chunk | LinkEvent]:
    """The items, then stay open until ``until`` (the replayed steps end on time)."""
    async for item in items:
        yield item
    await clock.sleep_until(until)


@cli.command(epilog="""\b
Examples:
  biofeedback replay 3                  # session 3 in the window, in real time
  biofeedback replay 3 --headless --speed max --json
""")
@click.argument("session_id", type=SESSION_ID, metavar="ID")
@click.option("--headless", is_flag=True, help="Terminal view instead of the window.")
@command_options()
def replay(app: AppContext, session_id: int, headless: bool) -> None:
    """Play a recorded session back through the pipeline, as if it were live.

    --speed X (or max) plays it faster. Prints the replayed summary; nothing
    is recorded.
    """
    if use_window(headless, app.json):
        from biofeedback.ui.app import run_window

        async def in_window(window: Any) -> tuple[int, SessionSummary, dict[str, Any] | None]:
            return await _replay(app, session_id, quiet=False, window=window)

        shown = run_window(in_window, linger=True,
                           clock=clock_for_speed(app.speed, virtual=True))
        if shown is None:
            return
        sid, summary, recorded = shown
    else:
        sid, summary, recorded = run(_replay(app, session_id, quiet=app.json))
    if app.json:
        emit_json({"session_id": sid, "summary": summary.to_json(), "recorded": recorded})
    else:
        say(f"Replayed session {sid}:")
        print_summary(sid, summary)


async def _replay(
    app: AppContext, session_id: int, *, quiet: bool, window: Any = None
) -> tuple[int, SessionSummary, dict[str, Any] | None]:
    from biofeedback.replay import ReplaySource

    # Like a virtual run: no sensors, any speed (default real time).
    clock = clock_for_speed(app.speed, virtual=True)
    with Store(store_path()) as store:
        info = store.session(session_id)
        source = ReplaySource(store, session_id, clock, speed=1.0, rebase=True)
        model = LiveModel(list(source.streams), clock=clock)
        async with source:
            start = clock.now()  # the source's rebased t0
            engine, t_first, until = replay_engine(store, session_id, clock, start, model=model)
            view = None if quiet or window is not None else TerminalView(model)
            detach = attach_window(window, engine, model, kept="a replay, nothing recorded") \
                if window is not None else None
            feed = _then_wait(source.__aiter__(), clock, until)
            if view is not None:
                if not view.tty:
                    engine.add_marker_listener(cue_printer(say))
                view.start()
            undo = install_signals(engine)
            try:
                summary = await engine.run(feed, start_at=t_first)
            finally:
                undo()
                if detach is not None:
                    detach()
                if view is not None:
                    await view.stop()
    # What the recording says about how it ended stays true of the replay.
    recorded = info.summary or {}
    if recorded.get("ended_by"):
        summary.ended_by = str(recorded["ended_by"])
    summary.complete = summary.complete and info.complete
    return session_id, summary, info.summary
