"""``calibrate`` (guided steps with countdowns) and ``profiles`` (the saved calibrations)."""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

import click

from biofeedback.cli.device_cmds import calibration_on_request  # the demo's; kept importable here
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import refuse_together
from biofeedback.cli.runtime import radio, registry_for, run
from biofeedback.paths import profiles_dir, store_path
from biofeedback.protocols.calibration import CalibrationRunner
from biofeedback.protocols.calibration_plan import ScheduledStep
from biofeedback.protocols.calibration_recording import pick_channel
from biofeedback.runtime import backend_of, twin_counts_factory
from biofeedback.ui.model import LiveModel
from calibration import (
    DEFAULT_PERSON,
    Conversion,
    Profile,
    SensorId,
    check_person,
    conversion_for,
    default_profiles,
    list_profiles,
    save_profile,
)
from devices.ble import BleSource, Found, resolve_device
from devices.clock import Clock
from devices.errors import InputError
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, StreamKind, StreamSpec

__all__ = ["calibrate_cmd", "calibration_on_request", "profiles_cmd", "profiles_dir"]

#: Devices used on the virtual radio when none are named.
VIRTUAL_PRESSURE = "Boost"
VIRTUAL_BREATH = "GDX-RB"

#: Streams drawn as the breath trace on the calibration screen (not a vendor's rate).
BREATH_TRACE_KINDS = (StreamKind.BREATH_FORCE, StreamKind.ACC)

#: What the virtual twins' counts conversion stands in for.
TWIN_SOURCE = "the virtual twin's documented conversion (stands in for a factory calibration)"


def countdown_line(head: str, left: int, columns: int) -> str:
    """One redraw of the countdown: back to the line start, cut to the terminal's
    width (a wrapped line cannot be redrawn in place), and the rest of the line
    erased (a shorter text would leave the end of the longer one behind)."""
    tail = f" ... {left:3d} s"
    room = max(columns - 1 - len(tail), 8)
    if len(head) > room:
        head = head[: room - 3] + "..."
    return f"\r{head}{tail}\x1b[K"


class StepPrompter:
    """Where the steps are shown: stderr (a line per step, a countdown on a TTY) and,
    when set, the window's calibration screen (``view``, a ``CalibrationView``)."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total = total
        self.quiet = quiet
        self.view: Any = None
        self.tty = sys.stderr.isatty()
        self._number = 0
        self._seconds = 0.0
        self._shown = ""

    def on_step(self, s: ScheduledStep) -> None:
        self._number = s.number
        self._seconds = s.step.seconds
        if self.view is not None:
            self.view.next_step()
            self.view.set_segment(str(s.step.kind), s.t_start, s.t_end)

    def show_step(self, prompt: str, seconds_left: float) -> None:
        if self.view is not None:
            name = "done" if prompt == "done" else f"step {self._number} of {self.total}"
            self.view.show_step(prompt, seconds_left, name=name, total_s=self._seconds or None)
        if self.quiet:
            return
        left = max(0, math.ceil(seconds_left - 1e-6))
        if prompt == "done":
            if self.tty:
                click.echo("", err=True)
            click.echo("calibration steps done", err=True)
            return
        head = f"[{self._number:2d}/{self.total}] {prompt}"
        if self.tty:
            if self._shown and prompt != self._shown:
                click.echo("", err=True)  # the finished step keeps its line
            click.echo(countdown_line(head, left, shutil.get_terminal_size().columns),
                       err=True, nl=False, color=True)  # (click would strip the erase code)
        elif prompt != self._shown:
            click.echo(f"{head} ({left} s)", err=True)
        self._shown = prompt


def _pressure_driver(reg: Registry, driver_id: str) -> bool:
    try:
        drv = reg.get(driver_id)
    except (KeyError, InputError):
        return False
    return any(s.kind is StreamKind.PRESSURE for s in drv.info.streams)


def _default_device(app: AppContext, reg: Registry) -> str:
    """The pressure sensor to use when ``--device`` is not given."""
    if app.virtual:
        return VIRTUAL_PRESSURE
    from biofeedback.store import Store

    with Store(store_path()) as store:
        known = store.devices()
    for d in known:
        if not d.virtual and _pressure_driver(reg, d.driver):
            return d.address
    raise InputError(
        "no pelvic pressure sensor given: pass --device NAME|ADDRESS (see 'biofeedback scan'), "
        "or pair one first"
    )


def _conversion(
    world: Any, found: Found, unit: str, channel: str
) -> Conversion | None:
    """To cmH2O: a physical unit's factor, or the virtual twin's counts conversion."""
    conv = conversion_for(unit)
    if conv is not None:
        return conv
    factory = twin_counts_factory(world, found.name, channel)
    if factory is not None:
        return conversion_for(unit, factory=factory, source=TWIN_SOURCE)
    return None


def _sensor_id(found: Found, stream: str, channel: str, unit: str, virtual: bool) -> SensorId:
    assert found.driver is not None
    return SensorId(
        driver=found.driver.id,
        address=found.adv.address,
        name=found.name,
        stream=stream,
        channel=channel,
        unit=unit,
        virtual=virtual,
    )


async def run_calibration(
    app: AppContext,
    plan: str,
    person: str,
    device: str | None,
    breath: str | None,
    seed: int | None,
    prompter: StepPrompter,
) -> Profile:
    clock: Clock = app.clock()
    reg = registry_for()
    runner = CalibrationRunner(clock, plan, show_step=prompter.show_step, on_step=prompter.on_step)
    prompter.total = len(runner.plan.steps)
    if breath is None and app.virtual:
        breath = VIRTUAL_BREATH
    if breath is not None and breath.strip().lower() in {"", "none", "no"}:
        breath = None
    async with radio(app, clock, seed=seed, intent=runner.intent) as world:
        target = device or _default_device(app, reg)
        found = await resolve_device(target, reg, clock, backend=backend_of(world))
        if found.driver is None:
            raise InputError(f"{found.name or found.adv.address} has no driver")
        pspec = next((s for s in found.driver.info.streams if s.kind is StreamKind.PRESSURE), None)
        if pspec is None:
            raise InputError(
                f"{found.name} ({found.driver.id}) is not a pelvic pressure sensor: pass the "
                "probe with --device and a belt or chest strap with --breath"
            )
        sources = [BleSource(found.device, found.driver, clock, backend=found.backend)]
        bfound: Found | None = None
        if breath is not None:
            bfound = await resolve_device(breath, reg, clock, backend=found.backend)
            if bfound.driver is None:
                raise InputError(f"{bfound.name or bfound.adv.address} has no driver")
            sources.append(BleSource(bfound.device, bfound.driver, clock, backend=bfound.backend))
        streams = [s for src in sources for s in src.streams]
        if not prompter.quiet:
            click.echo(
                f"{runner.plan.name} calibration for {person}: {runner.plan.total_s / 60:.1f} min "
                f"with {found.name}"
                + (f" and {bfound.name}" if bfound else "")
                + ". Stop if anything hurts.",
                err=True,
            )
        async with merged(sources) as items:
            if prompter.view is not None:
                items = _shown_on(prompter.view, items, streams, clock)
            rec = await runner.record(items, streams)
        channel = pspec.channels[pick_channel(pspec.channels)] if pspec.channels else ""
        conversion = _conversion(world, found, pspec.unit, channel)
    result = runner.compute(rec, conversion=conversion, driver=found.driver.id)
    assert rec.pressure is not None
    sensor = _sensor_id(found, rec.pressure.name, channel, pspec.unit, app.virtual)
    bsensor = None
    if bfound is not None and bfound.driver is not None and rec.breath_source is not None:
        bsrc = rec.breath_source
        bsensor = _sensor_id(bfound, bsrc.name, "", bsrc.unit, app.virtual)
    profile = runner.profile(result, person=person, sensor=sensor, breath_sensor=bsensor)
    return save_profile(profiles_dir(), profile)


class _Shown:
    """The sources' items, each also handed to the live model the calibration screen draws."""

    def __init__(self, items: AsyncIterator[Chunk | LinkEvent], model: LiveModel) -> None:
        self._it = items.__aiter__()
        self.model = model

    def __aiter__(self) -> _Shown:
        return self

    async def __anext__(self) -> Chunk | LinkEvent:
        item = await self._it.__anext__()
        if isinstance(item, Chunk):
            self.model.on_chunk(item)
        else:
            self.model.on_link(item)
        return item


def _shown_on(
    view: Any, items: AsyncIterator[Chunk | LinkEvent], streams: list[StreamSpec], clock: Clock,
) -> AsyncIterator[Chunk | LinkEvent]:
    """Give the calibration screen a live model of the streams; the items pass through.

    It draws the first pressure stream (the one calibrated) and the breath sensor's
    force or motion stream."""
    model = LiveModel(streams, clock=clock)
    pspec = next((s for s in streams if s.kind is StreamKind.PRESSURE), None)
    if pspec is None:  # the runner refuses this recording, with a message
        return items
    breath = next((s.name for s in streams if s.kind in BREATH_TRACE_KINDS), None)
    view.set_traces(model, pspec.name, channel=pick_channel(pspec.channels), breath=breath)
    return _Shown(items, model)


def _print_profile(p: Profile) -> None:
    f = p.figures_common or p.figures
    unit = f.get("unit", "")
    th = f.get("thresholds", {})
    lines = [
        f"saved {p.kind} calibration {p.id}",
        f"  rest          {th.get('rest_level')} {unit} (sd {f['rest']['sd']})",
        f"  contraction   MVC {f['mvc']} {unit} above rest (best of {len(f['mvc_attempts'])})",
        f"  drop          {f['drop_depth']} {unit} below rest "
        f"({f['drop_snr']} x the resting variability)",
        f"  zones         drop below -{th.get('drop_margin')}, contraction above "
        f"+{th.get('contraction_margin')} {unit}",
    ]
    if p.figures_normalised:
        n = p.figures_normalised
        lines.append(f"  normalised    drop {n['drop_depth']} %MVC")
    rate = p.breathing.get("rate_bpm")
    sp = p.suggested_pacer
    lines.append(
        f"  breathing     {rate if rate is not None else '?'} /min natural; pacer "
        f"in {sp.get('inhale_s')} s / out {sp.get('exhale_s')} s ({sp.get('rate_bpm')} /min)"
    )
    for w in p.warnings:
        lines.append(f"  note: {w}")
    click.echo("\n".join(lines))


@cli.command("calibrate", epilog="""\b
Examples:
  biofeedback calibrate --person ann               # quick, the paired probe and belt
  biofeedback calibrate --assessment --breath none
  biofeedback calibrate --virtual --speed max --headless --json
""")
@click.option("--quick", is_flag=True, help="Quick calibration (~2.5 min; the default).")
@click.option(
    "--assessment",
    is_flag=True,
    help="Glazer-style assessment adapted to pressure (~7 min; not with --quick).",
)
@click.option("--person", default=DEFAULT_PERSON, show_default=True, help="Whose calibration.")
@click.option(
    "--device",
    default=None,
    metavar="NAME|ADDRESS",
    help="The pelvic pressure sensor (default: the paired one; virtual: Boost).",
)
@click.option(
    "--breath",
    default=None,
    metavar="NAME|ADDRESS",
    help="A breath sensor (belt or chest strap; virtual default: GDX-RB; 'none' for none).",
)
@click.option(
    "--headless", is_flag=True, help="Steps in the terminal only (no window's calibration screen)."
)
@click.option("--seed", type=int, default=None, help="Virtual only: seed of the virtual person.")
@command_options()
def calibrate_cmd(
    app: AppContext,
    quick: bool,
    assessment: bool,
    person: str,
    device: str | None,
    breath: str | None,
    headless: bool,
    seed: int | None,
) -> None:
    """Guided calibration: timed steps with prompts; saves the person's profile.

    Steps run by themselves (no keypress): rest, squeeze, slow inhales letting
    the floor drop, free breathing. The steps and countdowns are shown in the
    window's calibration screen and on stderr (only on stderr with
    --headless or without a display). A calibration that cannot be trusted is
    refused (exit 1) with the step to repeat and why. Stop if anything hurts.
    """
    refuse_together(click.get_current_context(), "quick", "assessment")
    plan = "assessment" if assessment else "quick"
    person = check_person(person)
    prompter = StepPrompter(0)
    fast = app.virtual and app.speed != 1.0
    problem = None if headless or fast else _window_problem()
    if headless or fast or problem is not None:
        if not headless:
            why = problem or "the window runs in real time (--speed 1)"
            click.echo(f"Showing the steps in the terminal: {why}.", err=True)
        profile = run(run_calibration(app, plan, person, device, breath, seed, prompter))
    else:
        profile = _in_window(app, plan, person, device, breath, seed, prompter)
    if app.json:
        doc = profile.to_json()
        doc["path"] = str(profile.path) if profile.path else None
        emit_json(doc)
    else:
        _print_profile(profile)


def _window_problem() -> str | None:
    """Why the window cannot open (Qt would abort), or None."""
    from biofeedback.ui.display import window_problem

    return window_problem()


def _in_window(
    app: AppContext,
    plan: str,
    person: str,
    device: str | None,
    breath: str | None,
    seed: int | None,
    prompter: StepPrompter,
) -> Profile:
    """The same steps on the window's calibration screen (and in the terminal)."""
    from biofeedback.ui.app import run_window

    async def main(window: Any) -> Profile:
        view = window.calibration
        window.show_screen("calibration")
        prompter.view = view
        try:
            profile = await run_calibration(app, plan, person, device, breath, seed, prompter)
        except InputError as exc:
            view.show_message(str(exc))
            raise
        finally:
            prompter.view = None
        view.show_message(f"Saved {profile.kind} calibration {profile.id}.")
        return profile

    result = run_window(main, virtual=app.virtual)
    if result is None:
        raise InputError("calibration stopped: the window was closed before it ended")
    return result


#: ``run(calibrate, attach)``: one demo run (a calibration first when asked, then a
#: session); ``attach`` are front ends for its session (see ``LiveOptions.attach``).
def _row(p: Profile, default: bool) -> dict[str, Any]:
    f = p.figures_common or p.figures
    return {
        "id": p.id,
        "person": p.person,
        "created_at": p.to_json()["created_at"],
        "kind": p.kind,
        "sensor": {"driver": p.sensor.driver, "address": p.sensor.address, "name": p.sensor.name},
        "unit": f.get("unit"),
        "rest": (f.get("rest") or {}).get("mean"),
        "mvc": f.get("mvc"),
        "drop_depth": f.get("drop_depth"),
        "thresholds": dict(p.thresholds),
        "default": default,
        "path": str(p.path) if p.path else None,
    }


@cli.command("profiles", epilog="""\b
Examples:
  biofeedback profiles --person ann
  biofeedback profiles --json
""")
@click.option("--person", default=None, help="Only this person's profiles.")
@command_options()
def profiles_cmd(app: AppContext, person: str | None) -> None:
    """Saved calibration profiles, oldest first; the newest per person and sensor is the default."""
    if person is not None:
        person = check_person(person)
    profs = list_profiles(profiles_dir(), person)
    defaults = {id(p) for p in default_profiles(profs).values()}
    rows = [_row(p, id(p) in defaults) for p in profs]
    if app.json:
        emit_json(rows)
        return
    if not rows:
        who = f" for {person}" if person else ""
        click.echo(f"No calibration profiles{who} yet: run 'biofeedback calibrate'.")
        return
    for r in rows:
        mark = "*" if r["default"] else " "
        click.echo(
            f"{mark} {r['id']:48} {r['kind']:10} {r['sensor']['name'] or r['sensor']['driver']:16}"
            f" rest {r['rest']} mvc {r['mvc']} drop {r['drop_depth']} {r['unit']}"
        )
    click.echo("(* = default: the newest per person and sensor)")
