"""``live``, ``replay`` and ``report``: a guided session, a recording played back, its report.

``live`` picks the pelvic sensor (``--device``; else the most recently paired
pressure sensor that is advertising; else the first pressure sensor found) and
an optional breath sensor (``--breath``; else the most recently paired breath
sensor that is advertising; else none: the probe's own breathing ripple),
connects them one after another, runs the session engine and records to the
store as it streams. It ends at the protocol's end, at ``--duration``, on a
pain report, or on Ctrl-C / SIGTERM (the recording is kept and marked
incomplete; exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import click

from biofeedback.audio.session import AudioRequest, audio_options
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import (
    BREATH_HOLD_S,
    BREATH_PHASE_S,
    PAIN_0_10,
    SESSION_ID,
    SESSION_S,
)
from biofeedback.cli.runtime import radio, registry_for, run
from biofeedback.paths import store_path
from biofeedback.protocols.pacer import Pacer, adaptive_text
from biofeedback.protocols.session import (
    PAIN_STOP,
    PROTOCOLS,
    PainRefusedError,
    SessionEngine,
    SessionProtocol,
    SessionSummary,
    Step,
    StepKind,
    check_pain,
    pain_advice,
)
from biofeedback.runtime import (
    LiveOptions,
    SessionRun,
    attach_window,
    backend_of,
    cue_printer,
    install_signals,
    run_session,
)
from biofeedback.store import Store
from biofeedback.ui.model import LiveModel
from biofeedback.ui.terminal import TerminalView
from devices.ble import Found, find_devices, scan
from devices.clock import Clock, clock_for_speed
from devices.drivers.base import Driver
from devices.errors import DeviceError, DeviceNotFoundError, InputError
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, StreamKind

__all__ = [
    "choose_devices",
    "live",
    "replay",
    "report",
]

log = logging.getLogger(__name__)

#: Stream kinds that make a device a breath sensor.
BREATH_KINDS = (StreamKind.BREATH_FORCE, StreamKind.ACC, StreamKind.RR)

#: Seconds a scan for the session's devices may take.
SCAN_S = 5.0


def _say(text: str) -> None:
    """Progress for people: stderr, so --json stdout stays clean."""
    click.echo(text, err=True)


# ----------------------------------------------------------------------------- devices


def _kinds(driver: Driver | None) -> set[StreamKind]:
    return set() if driver is None else {s.kind for s in driver.info.streams}


def _is_pelvic(driver: Driver | None) -> bool:
    return StreamKind.PRESSURE in _kinds(driver)


def _is_breath(driver: Driver | None) -> bool:
    kinds = _kinds(driver)
    return bool(kinds & set(BREATH_KINDS)) and StreamKind.PRESSURE not in kinds


def _pick(target: str, found: list[Found], role: str, ok: Callable[[Driver | None], bool]) -> Found:
    matches = find_devices(target, found)
    if not matches:
        raise DeviceNotFoundError(
            f"no device called {target!r} is advertising (is it on, charged and in range?)"
        )
    if len(matches) > 1:
        listing = "; ".join(f"{m.adv.name} [{m.adv.address}]" for m in matches)
        raise InputError(f"{len(matches)} devices match {target!r}: {listing}")
    f = matches[0]
    if f.driver is None:
        raise InputError(
            f"{f.name or f.adv.address} has no driver; describe it in a TOML driver "
            "(see README, 'Adding a sensor') and pass --driver FILE"
        )
    if not ok(f.driver):
        raise InputError(f"{f.name} ({f.driver.id}) is not a {role} sensor")
    return f


def _rank(reg: Registry) -> Callable[[Found], tuple[int, int]]:
    order = {d: i for i, d in enumerate(reg.ids())}

    def key(f: Found) -> tuple[int, int]:
        rssi = f.adv.rssi if f.adv.rssi is not None else -999
        return (-rssi, order.get(f.driver.id if f.driver else "", len(order)))

    return key


def _wanted(
    reg: Registry, known: Sequence[Any], *, device: str | None, breath: str | None
) -> list[str]:
    """What the scan waits for before it ends early (else its whole window): the named
    devices, or for a role nobody named the most recently paired device of that role
    (the one :func:`choose_devices` prefers). Lower case."""
    by_recent = sorted(known, key=lambda d: d.paired_at, reverse=True)

    def latest(ok: Callable[[Driver | None], bool]) -> str | None:
        for k in by_recent:
            with contextlib.suppress(InputError):  # a driver that is gone
                if ok(reg.get(k.driver)):
                    return str(k.address).lower()
        return None

    wanted = [device.strip().lower() if device else latest(_is_pelvic)]
    if breath is None:
        wanted.append(latest(_is_breath))
    elif breath.strip().lower() != "none":
        wanted.append(breath.strip().lower())
    return [w for w in wanted if w]


def choose_devices(
    found: list[Found],
    reg: Registry,
    known: Sequence[Any],
    *,
    device: str | None = None,
    breath: str | None = None,
) -> tuple[Found, Found | None]:
    """The pelvic sensor and the optional breath sensor for a session.

    Parameters
    ----------
    found : list of Found
        What a scan saw.
    reg : Registry
        The drivers.
    known : sequence of KnownDevice
        Paired devices, most recently used first.
    device, breath : str, optional
        What the user asked for (name, part of a name, address or driver id).

    Raises
    ------
    DeviceNotFoundError
        No pressure sensor is advertising (exit 3).
    InputError
        An ambiguous name, or a device of the wrong kind (exit 1).
    """
    by_addr = {f.adv.address.lower(): f for f in found}
    key = _rank(reg)

    def paired(ok: Callable[[Driver | None], bool]) -> Found | None:
        for k in sorted(known, key=lambda d: d.paired_at, reverse=True):
            f = by_addr.get(k.address.lower())
            if f is not None and f.driver is not None and ok(f.driver):
                return f
        return None

    if device is not None:
        pelvic = _pick(device, found, "pelvic pressure", _is_pelvic)
    else:
        chosen = paired(_is_pelvic)
        if chosen is None:
            candidates = sorted((f for f in found if _is_pelvic(f.driver)), key=key)
            if not candidates:
                raise DeviceNotFoundError(
                    "no pelvic pressure sensor is advertising (is it on, charged and in range?)"
                )
            chosen = candidates[0]
        pelvic = chosen
    belt: Found | None
    if breath is not None and breath.strip().lower() == "none":
        belt = None
    elif breath is not None:
        belt = _pick(breath, found, "breath", _is_breath)
    else:
        belt = paired(_is_breath)
    return pelvic, belt


# ----------------------------------------------------------------------------- session


def _fmt(x: float | None, nd: int = 0, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{nd}f}{unit}"


def _install_keyboard(engine: SessionEngine) -> Callable[[], None]:
    """Lines typed in the terminal: ``p`` pause/resume, ``q`` stop, ``0``-``10`` pain."""
    loop = asyncio.get_running_loop()

    def on_line() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin)
            return
        cmd = line.strip().lower()
        if cmd in ("p", "pause", "r", "resume"):
            (engine.resume if engine.paused else engine.pause)()
        elif cmd in ("q", "s", "stop"):
            engine.stop()
        elif cmd.isdigit():
            try:
                if engine.report_pain(int(cmd)):
                    _say(pain_advice(int(cmd), "during"))
            except InputError as exc:
                _say(str(exc))
        elif cmd:
            _say("keys: p = pause/resume, q = stop, 0-10 = report pain (then Enter)")

    try:
        loop.add_reader(sys.stdin, on_line)
    except (NotImplementedError, OSError, ValueError):
        return lambda: None
    _say("keys: p = pause/resume, q = stop, 0-10 = report pain (then Enter)")

    def undo() -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(sys.stdin)

    return undo


def use_window(headless: bool, json_mode: bool) -> bool:
    """The window unless --headless, --json or it cannot open (then the terminal view).

    Qt aborts the process when its platform plugin cannot load or the display
    does not answer, so that is asked first; the one line says why and how to fix it.
    """
    if headless or json_mode:
        return False
    from biofeedback.ui.display import window_problem

    problem = window_problem()
    if problem is not None:
        _say(f"Showing the session in the terminal: {problem}.")
        return False
    return True


def _ask_after(engine: SessionEngine) -> tuple[int | None, str | None]:
    """Ask for pain and a note after the session (terminal only; Enter skips)."""
    pain: int | None = None
    for _ in range(2):
        text = click.prompt(
            "Any discomfort or pain now? 0-10 (Enter to skip)",
            default="", show_default=False, err=True,
        ).strip()
        if not text:
            break
        try:
            pain = check_pain(float(text), "pain")
            break
        except (ValueError, InputError):
            _say("Please give a whole number from 0 to 10.")
    note = click.prompt("A note for this session? (Enter to skip)", default="",
                        show_default=False, err=True).strip()
    return pain, note or None


def _finish(run_: SessionRun, *, ask: bool, pain_after: int | None = None,
            note_after: str | None = None) -> SessionSummary:
    engine = run_.engine
    if ask:
        try:
            pain_after, note_after = _ask_after(engine)
        except (click.Abort, EOFError):
            pain_after, note_after = None, None
    summary = engine.finish(pain_after=pain_after, note_after=note_after)
    return summary


def _print_summary(session_id: int | None, s: SessionSummary) -> None:
    d = s.to_json()
    state = "complete" if s.complete else f"incomplete ({s.ended_by})"
    head = f"Session {session_id}: " if session_id is not None else ""
    click.echo(f"{head}{s.protocol}, {d['duration_s']:.0f} s, {state}")
    click.echo(f"  reps            {s.reps}/{s.reps_target} ({s.good_reps} good)")
    click.echo(f"  mean score      {_fmt(s.mean_score)} (best {_fmt(s.best_score)})")
    unit = f" {s.drop_unit}" if s.drop_unit else ""
    click.echo(f"  drop depth      {_fmt(s.drop_depth, 2)}{unit}")
    click.echo(f"  drop on inhale  {_fmt(s.drop_on_inhale_pct, 0, ' %')}")
    click.echo(f"  strain          {s.strain_count}")
    click.echo(f"  breath rate     {_fmt(s.breath_rate_bpm, 1)}/min "
               f"(target {s.target_rate_bpm:.1f})")
    if s.adaptive_pacer is not None:
        click.echo(f"  pacer           {adaptive_text(s.adaptive_pacer)}")
    click.echo(f"  link gaps       {s.link_gaps} ({s.gap_s:.1f} s)")
    if s.pain_before is not None or s.pain_after is not None:
        click.echo(f"  pain            before {s.pain_before if s.pain_before is not None else '-'}"
                   f", after {s.pain_after if s.pain_after is not None else '-'}")
    for a in s.advice:
        click.echo(f"  ! {a}")


def _pacer(inhale: float | None, hold: float | None, exhale: float | None) -> Pacer:
    try:
        return Pacer(
            inhale_s=4.0 if inhale is None else inhale,
            hold_s=0.0 if hold is None else hold,
            exhale_s=6.0 if exhale is None else exhale,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--inhale/--hold/--exhale") from None


def _refuse_pain(pain_before: int | None) -> None:
    if pain_before is not None and pain_before >= PAIN_STOP:
        raise PainRefusedError(pain_advice(pain_before, "before"))


# ----------------------------------------------------------------------------- live


LIVE_EXAMPLES = """\b
Examples:
  biofeedback live                               # the paired sensors, the window
  biofeedback live --breath none --headless      # the probe alone, in the terminal
  biofeedback live --protocol standard --inhale 5 --exhale 7
  biofeedback live --virtual --speed 4           # virtual sensors, 4x real time
"""


@cli.command(epilog=LIVE_EXAMPLES)
@click.option("--device", metavar="NAME|ADDRESS", help="The pelvic sensor (default: last paired).")
@click.option("--breath", metavar="NAME|ADDRESS",
              help="A breath sensor (belt, chest strap; default: the paired one; 'none').")
@click.option("--person", help="Who trains (a name or code; sessions are grouped by it).")
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default="quick",
              show_default=True, help="quick ~2 min, standard ~4 min, long ~7 min (2 sets).")
@click.option("--plan", "follow_plan", is_flag=True,
              help="Today's session of your plan (reps, pacer, position; see 'plan').")
@click.option("--inhale", type=BREATH_PHASE_S, help="Pacer inhale seconds (default 4).")
@click.option("--hold", type=BREATH_HOLD_S,
              help="Pacer hold seconds after the inhale (default 0).")
@click.option("--exhale", type=BREATH_PHASE_S, help="Pacer exhale seconds (default 6).")
@click.option("--adaptive-pacer", is_flag=True,
              help="Lead towards the pacer only as fast as your breath follows it: when the "
                   "exhale keeps ending early, it eases back, then lengthens step by step.")
@click.option("--duration", type=SESSION_S,
              help="Session seconds (a longer protocol is shortened).")
@click.option("--headless", is_flag=True, help="Terminal view instead of the window.")
@click.option("--lsl", is_flag=True,
              help="Publish the live streams as LSL outlets, to this machine only.")
@click.option("--lsl-network", is_flag=True,
              help="Publish the LSL outlets to the network (implies --lsl): any machine "
                   "there can then find and read your health data.")
@click.option("--pain-before", type=PAIN_0_10, help="Discomfort or pain now, 0-10 (5+ refuses).")
@click.option("--note", help="A note for this session.")
@click.option("--position", type=click.Choice(("lying", "sitting", "standing")),
              help="The position you train in (recorded; the plan progresses by it).")
@click.option("--seed", default=0, show_default=True, help="Virtual only: the person's seed.")
@click.option("--driver", "driver_files", multiple=True,
              type=click.Path(exists=True, dir_okay=True, path_type=Path),
              help="A TOML driver file (or folder of them).")
@audio_options
@command_options()
def live(
    app: AppContext,
    device: str | None,
    breath: str | None,
    person: str | None,
    protocol: str,
    follow_plan: bool,
    inhale: float | None,
    hold: float | None,
    exhale: float | None,
    adaptive_pacer: bool,
    duration: float | None,
    headless: bool,
    lsl: bool,
    lsl_network: bool,
    pain_before: int | None,
    note: str | None,
    position: str | None,
    seed: int,
    driver_files: tuple[Path, ...],
    audio: AudioRequest,
) -> None:
    """A guided down-training session: settle, baseline, reps against the pacer, post-baseline.

    Stop if anything hurts. Ctrl-C stops the session and keeps the recording.
    In a terminal, type p (pause/resume), q (stop) or a pain rating 0-10, then
    Enter; after the session you are asked for pain and a note (Enter skips).
    """
    if duration is not None and not duration > 0:
        raise click.BadParameter("must be positive", param_hint="--duration")
    pain_before = check_pain(pain_before, "--pain-before")
    _refuse_pain(pain_before)
    if lsl or lsl_network:
        from biofeedback.lsl_out import set_lsl_scope

        set_lsl_scope(network=lsl_network)  # before any LSL use in this process
        lsl = True
    # Flags win; without them the calibration profile's pacer, else 4 s / 6 s.
    given = (inhale, hold, exhale) != (None, None, None)
    pacer = _pacer(inhale, hold, exhale) if given else None
    session: str | SessionProtocol = protocol
    if follow_plan:
        from biofeedback.cli.plan_cmds import todays_session

        session, plan_pacer, plan_position = todays_session(person)
        pacer = pacer if given else plan_pacer
        position = position or plan_position
    windowed = use_window(headless, app.json)
    interactive = sys.stdin.isatty() and not app.json and not windowed
    opts = LiveOptions(
        protocol=session, pacer=pacer, adaptive_pacer=adaptive_pacer, duration=duration,
        person=person,
        pain_before=pain_before, note_before=note, lsl=lsl, position=position,
        status_lines=not app.json, say=_say,
        attach=[lambda engine, _model: _install_keyboard(engine)] if interactive else [],
    )
    if audio.wanted(windowed):
        opts.attach.append(audio.attach(opts))
    app.seed = seed
    if windowed:
        from biofeedback.ui.app import run_window

        async def in_window(window: Any) -> SessionRun:
            opts.window = window
            return await _live(app, opts, device, breath, driver_files)

        windowed_result = run_window(
            in_window, linger=lambda r: r.summary.ended_by != "interrupted",
            clock=app.clock(), virtual=app.virtual, person=opts.person)
        if windowed_result is None:
            _say("Window closed: the session was stopped and what was recorded is kept.")
            return
        result = windowed_result
    else:
        result = run(_live(app, opts, device, breath, driver_files))
    summary = _finish(result, ask=interactive)
    failed = result.error if isinstance(result.error, DeviceError) else None
    if not app.json:
        _print_summary(result.session_id, summary)
    elif failed is None:
        emit_json({"session_id": result.session_id, "summary": summary.to_json()})
    if failed is not None:
        # The link gave up: what was recorded is kept; exit 3 says why it ended.
        raise type(failed)(f"{failed} (session {result.session_id} kept, incomplete)")


async def _live(
    app: AppContext,
    opts: LiveOptions,
    device: str | None,
    breath: str | None,
    driver_files: tuple[Path, ...],
) -> SessionRun:
    clock = app.clock()
    reg = registry_for(driver_files)
    with Store(store_path()) as store:
        known = [d for d in store.devices() if d.virtual == app.virtual]
    targets = _wanted(reg, known, device=device, breath=breath)

    def seen_all(f: Found) -> bool:
        seen.add(f.adv.address.lower())
        seen.add((f.name or "").lower())
        return bool(targets) and all(t in seen for t in targets)

    seen: set[str] = set()
    async with radio(app, clock) as world:
        if opts.status_lines:
            _say("Scanning for sensors...")
        found = await scan(reg, clock, timeout=SCAN_S, stop_when=seen_all,
                           backend=backend_of(world))
        pelvic, belt = choose_devices(found, reg, known, device=device, breath=breath)
        chosen = [pelvic, *([belt] if belt is not None else [])]
        if opts.status_lines:
            names = ", ".join(f"{f.name} ({f.driver.id if f.driver else '?'})" for f in chosen)
            _say(f"Connecting {names}...")
            if belt is None:
                _say("No breath sensor: the reps follow the pacer.")
        return await run_session(clock, chosen, opts, world=world, virtual=app.virtual)


# ----------------------------------------------------------------------------- replay


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
        if isinstance(d.get("pacer"), dict):
            pacer_d = d["pacer"]
    pacer = Pacer()
    if isinstance(pacer_d, dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            pacer = Pacer(inhale_s=float(pacer_d["inhale_s"]),
                          hold_s=float(pacer_d.get("hold_s") or 0.0),
                          exhale_s=float(pacer_d["exhale_s"]))
    first = float((evs[0].data or {})["t_start"]) - info.t0 if evs else None
    return SessionProtocol(info.protocol or "replay", tuple(steps)), pacer, first


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
        _say(f"Replayed session {sid}:")
        _print_summary(sid, summary)


async def _replay(
    app: AppContext, session_id: int, *, quiet: bool, window: Any = None
) -> tuple[int, SessionSummary, dict[str, Any] | None]:
    from biofeedback.replay import ReplaySource
    from biofeedback.signal.pipeline import Pipeline

    # Like a virtual run: no sensors, any speed (default real time).
    clock = clock_for_speed(app.speed, virtual=True)
    with Store(store_path()) as store:
        info = store.session(session_id)
        protocol, pacer, first = replay_protocol(store, session_id)
        if not protocol.steps:
            raise InputError(f"session {session_id} has no recorded steps to replay")
        source = ReplaySource(store, session_id, clock, speed=1.0, rebase=True)
        specs = list(source.streams)
        model = LiveModel(specs, clock=clock)
        engine = SessionEngine(clock, Pipeline(specs), protocol, pacer=pacer, model=model)
        view = None if quiet or window is not None else TerminalView(model)
        detach = attach_window(window, engine, model) if window is not None else None
        async with source:
            start = clock.now()
            t_first = start + (first or 0.0)
            feed = _then_wait(source.__aiter__(), clock, t_first + protocol.length(pacer) + 1.0)
            if view is not None:
                if not view.tty:
                    engine.add_marker_listener(cue_printer(_say))
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


# ----------------------------------------------------------------------------- report


@cli.command(epilog="""\b
Examples:
  biofeedback report 3                  # session-3-<date>-report.html here
  biofeedback report 3 -o week1.html --force
  biofeedback report --person ann --since 4w --pdf ann.pdf   # for the physiotherapist
""")
@click.argument("session_id", type=SESSION_ID, metavar="[ID]", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file (default: session-<id>-<date>-report.html here).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the plots as one PNG image.")
@click.option("--person", help="The clinician's page: whose weeks (no ID).")
@click.option("--since", default="4w", show_default=True,
              help="The clinician's page: the period (4w, 30d or a date).")
@click.option("--pdf", type=click.Path(dir_okay=False, path_type=Path),
              help="The clinician's page as one printable PDF page.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              help="The clinician's page as HTML.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@command_options()
def report(app: AppContext, session_id: int | None, output: Path | None, png: Path | None,
           person: str | None, since: str, pdf: Path | None, html_out: Path | None,
           force: bool) -> None:
    """A session's HTML report (ID), or the clinician's one-page summary of a person's
    weeks (--person P --since 4w --pdf FILE and/or --html FILE)."""
    from biofeedback.report import write_report

    if session_id is None or pdf or html_out or person:
        from biofeedback.cli.progress_cmds import clinician_report

        clinician_report(app, session_id, person, since, pdf, html_out, force)
        return
    t = time.perf_counter()
    with Store(store_path()) as store:
        info = store.session(session_id)
        out = output or Path.cwd() / f"{info.file_stem}-report.html"
        written = write_report(store, session_id, out, png=png, force=force)
    if app.json:
        emit_json({"session_id": session_id, "html": str(written.html),
                   "png": None if written.png is None else str(written.png),
                   "figures": written.figures})
    else:
        extra = f" and {written.png}" if written.png else ""
        _say(f"Wrote {written.html}{extra} ({time.perf_counter() - t:.1f} s).")
