"""``live``: a guided session (``replay`` and ``report`` live in their own modules).

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from biofeedback.audio.session import AudioRequest, audio_options
from biofeedback.cli.console import say
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import (
    BREATH_HOLD_S,
    BREATH_PHASE_S,
    PAIN_0_10,
    SESSION_S,
)
from biofeedback.cli.runtime import radio, registry_for, run, use_window
from biofeedback.cli.sensor_choice import choose_devices, scan_targets
from biofeedback.paths import store_path
from biofeedback.protocols.pacer import Pacer, adaptive_text
from biofeedback.protocols.pain import PAIN_STOP, PainRefusedError, check_pain, pain_advice
from biofeedback.protocols.plan import PROTOCOLS, SessionProtocol
from biofeedback.runtime import (
    LiveOptions,
    SessionRun,
    backend_of,
    run_session,
)
from biofeedback.store import Store
from biofeedback.ui.words import source_name, trust_word
from devices.ble import Found, scan
from devices.errors import DeviceError, InputError

if TYPE_CHECKING:  # the engine (and scipy) load while the sensors stream: LiveOptions.raw_first
    from biofeedback.protocols.session import SessionEngine, SessionSummary

__all__ = [
    "choose_devices",
    "live",
    "print_summary",
    "say",
    "use_window",
]

log = logging.getLogger(__name__)

#: Seconds a scan for the session's devices may take.
SCAN_S = 5.0


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
                    say(pain_advice(int(cmd), "during"))
            except InputError as exc:
                say(str(exc))
        elif cmd:
            say("keys: p = pause/resume, q = stop, 0-10 = report pain (then Enter)")

    try:
        loop.add_reader(sys.stdin, on_line)
    except (NotImplementedError, OSError, ValueError):
        return lambda: None
    say("keys: p = pause/resume, q = stop, 0-10 = report pain (then Enter)")

    def undo() -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(sys.stdin)

    return undo


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
            say("Please give a whole number from 0 to 10.")
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


def print_summary(session_id: int | None, s: SessionSummary) -> None:
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
    if s.breath_source is not None:
        click.echo(f"  breath via      {source_name(s.breath_source)}, "
                   f"trust {trust_word(s.breath_trust)}")
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
    session, pacer, position = _session_and_pacer(
        person, protocol, follow_plan=follow_plan, phases=(inhale, hold, exhale),
        position=position)
    windowed = use_window(headless, app.json)
    interactive = sys.stdin.isatty() and not app.json and not windowed
    opts = LiveOptions(
        protocol=session, pacer=pacer, adaptive_pacer=adaptive_pacer, duration=duration,
        person=person, pain_before=pain_before, note_before=note, lsl=lsl, position=position,
        status_lines=not app.json, say=say, raw_first=True,
        attach=[lambda engine, _model: _install_keyboard(engine)] if interactive else [],
    )
    if audio.wanted(windowed):
        opts.attach.append(audio.attach(opts))
    app.seed = seed
    result = _run_live(app, opts, (device, breath, driver_files), windowed=windowed)
    if result is None:
        say("Window closed: the session was stopped and what was recorded is kept.")
        return
    # In the window the recording was finished before it closed (nothing to ask).
    summary = result.summary if windowed else _finish(result, ask=interactive)
    failed = result.error if isinstance(result.error, DeviceError) else None
    if not app.json:
        print_summary(result.session_id, summary)
    elif failed is None:
        emit_json({"session_id": result.session_id, "summary": summary.to_json()})
    if failed is not None:
        # The link gave up: what was recorded is kept; exit 3 says why it ended.
        raise type(failed)(f"{failed} (session {result.session_id} kept, incomplete)")


def _session_and_pacer(
    person: str | None,
    protocol: str,
    *,
    follow_plan: bool,
    phases: tuple[float | None, float | None, float | None],
    position: str | None,
) -> tuple[str | SessionProtocol, Pacer | None, str | None]:
    """The session to run, its pacer and the position.

    The pacer flags (``phases``: inhale, hold, exhale) win; then today's plan
    (``--plan``); None leaves it to the session: the person's resonance rate,
    else their calibration's suggested pacer, else 4 s / 6 s.
    """
    given = phases != (None, None, None)
    pacer = _pacer(*phases) if given else None
    if not follow_plan:
        return protocol, pacer, position
    from biofeedback.cli.plan_cmds import todays_session

    session, plan_pacer, plan_position = todays_session(person)
    return session, pacer if given else plan_pacer, position or plan_position


def _run_live(
    app: AppContext,
    opts: LiveOptions,
    sensors: tuple[str | None, str | None, tuple[Path, ...]],
    *,
    windowed: bool,
) -> SessionRun | None:
    """Run the session in the window or the terminal (None: the window was closed first).

    ``sensors`` are the ``--device``, ``--breath`` and ``--driver`` choices.
    """
    if not windowed:
        return run(_live(app, opts, *sensors))
    from biofeedback.ui.app import run_window

    async def in_window(window: Any) -> SessionRun:
        opts.window = window
        result = await _live(app, opts, *sensors)
        # Finished here, while the window has the signals: a SIGTERM from now on
        # closes it, and the recording is complete whatever comes after.
        result.summary = _finish(result, ask=False)
        return result

    result: SessionRun | None = run_window(
        in_window, linger=lambda r: r.summary.ended_by != "interrupted",
        clock=app.clock(), virtual=app.virtual, person=opts.person)
    return result


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
    targets = scan_targets(reg, known, device=device, breath=breath)

    def seen_all(f: Found) -> bool:
        seen.add(f.adv.address.lower())
        seen.add((f.name or "").lower())
        return bool(targets) and all(t in seen for t in targets)

    seen: set[str] = set()
    async with radio(app, clock) as world:
        if opts.status_lines:
            say("Scanning for sensors...")
        found = await scan(reg, clock, timeout=SCAN_S, stop_when=seen_all,
                           backend=backend_of(world))
        pelvic, belt = choose_devices(found, reg, known, device=device, breath=breath)
        chosen = [pelvic, *([belt] if belt is not None else [])]
        if opts.status_lines:
            names = ", ".join(f"{f.name} ({f.driver.id if f.driver else '?'})" for f in chosen)
            say(f"Connecting {names}...")
            if belt is None:
                holds = " (the adaptive pacer holds its rate)" if opts.adaptive_pacer else ""
                say(f"No breath sensor: the reps follow the pacer{holds}.")
        return await run_session(clock, chosen, opts, world=world, virtual=app.virtual)


