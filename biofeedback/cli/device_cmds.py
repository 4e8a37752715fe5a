"""``scan``, ``pair``, ``devices`` and ``demo``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from biofeedback.audio.session import AudioRequest, audio_options
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SCAN_TIMEOUT_S, SESSION_S
from biofeedback.cli.runtime import backend_of, radio, registry_for, run, use_window
from biofeedback.paths import store_path
from biofeedback.protocols.pacer import Pacer
from biofeedback.store import Store
from devices.ble import BleSource, Found, ReconnectPolicy, resolve_device, scan
from devices.clock import Clock
from devices.errors import ConnectionFailedError, InputError
from devices.stream import Chunk

driver_option = click.option(
    "--driver",
    "driver_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=True, path_type=Path),
    help="A TOML driver file (or folder of them) for a sensor nobody coded.",
)


def _say(app: AppContext, text: str) -> None:
    """Progress for people: stderr, so --json stdout stays clean."""
    click.echo(text, err=True)


@cli.command("scan")
@click.option("--timeout", type=SCAN_TIMEOUT_S, default=5.0, show_default=True,
              help="Scan window in seconds.")
@driver_option
@command_options()
def scan_cmd(app: AppContext, timeout: float, driver_files: tuple[Path, ...]) -> None:
    """List advertising devices with their matched driver and support level.

    Rows are printed as devices appear; with --json, one list at the end.
    """
    rows = 0

    def row(f: Found) -> None:
        nonlocal rows
        if rows == 0:
            click.echo(_row(["name", "address", "rssi", "driver", "support"]))
        rows += 1
        d = f.to_json()
        click.echo(_row([str(d["name"] or "?"), d["address"], str(d["rssi"]),
                         d["driver"] or "-", d["support"] or "unsupported"]))

    found = run(_scan(app, timeout, driver_files, on_found=None if app.json else row))
    if app.json:
        emit_json([f.to_json() for f in found])
    elif not found:
        _say(app, "No devices found. Is the sensor on, charged and close by?")
    else:
        _say(app, f"{len(found)} device{'s' if len(found) != 1 else ''} found.")


def _row(cells: list[str]) -> str:
    """One aligned line of the scan listing (printed as each device appears)."""
    widths = (24, 17, 5, 14)
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]


async def _scan(
    app: AppContext,
    timeout: float,
    driver_files: tuple[Path, ...],
    on_found: Callable[[Found], None] | None = None,
) -> list[Found]:
    clock = app.clock()
    reg = registry_for(driver_files)
    async with radio(app, clock) as world:
        return await scan(reg, clock, timeout=timeout, backend=backend_of(world),
                          on_found=on_found)


@cli.command()
@click.argument("target", metavar="NAME|ADDRESS")
@click.option("--timeout", type=SCAN_TIMEOUT_S, default=5.0, show_default=True,
              help="Scan window in seconds.")
@driver_option
@command_options()
def pair(app: AppContext, target: str, timeout: float, driver_files: tuple[Path, ...]) -> None:
    """Connect to a sensor, identify it, and remember it."""
    dev = run(_pair(app, target, timeout, driver_files))
    if app.json:
        emit_json(dev)
    else:
        click.echo(f"Paired {dev['name']} [{dev['address']}] with driver {dev['driver']} "
                   f"({dev['support']}).")


async def _identify(found: Found, clock: Clock, timeout: float = 10.0) -> None:
    """Connect, start the stream, wait for the first samples, disconnect."""
    assert found.driver is not None
    policy = ReconnectPolicy(connect_attempts=2, max_consecutive_failures=1, stall_timeout=None)
    async with BleSource(found.device, found.driver, clock, policy=policy,
                         backend=found.backend) as src:

        async def first_chunk() -> None:
            async for item in src:
                if isinstance(item, Chunk):
                    return
            raise ConnectionFailedError(f"{found.name}: the stream ended before any data")

        try:
            await clock.wait_for(first_chunk(), timeout)
        except TimeoutError:
            raise ConnectionFailedError(
                f"{found.name}: connected but no data within {timeout:g} s"
            ) from None


async def _pair(
    app: AppContext, target: str, timeout: float, driver_files: tuple[Path, ...]
) -> dict[str, Any]:
    clock = app.clock()
    reg = registry_for(driver_files)
    async with radio(app, clock) as world:
        found = await resolve_device(target, reg, clock, timeout=timeout,
                                     backend=backend_of(world))
        if found.driver is None:
            raise InputError(
                f"{found.name or found.adv.address} has no driver; describe it in a TOML "
                "driver (see README, 'Adding a sensor') and pass --driver FILE"
            )
        await _identify(found, clock)
    with Store(store_path()) as store:
        dev = store.remember_device(
            address=found.adv.address,
            name=found.name,
            driver=found.driver.id,
            support=str(found.driver.info.support),
            virtual=app.virtual,
        )
    return dev.to_json()


@cli.command()
@command_options()
def devices(app: AppContext) -> None:
    """Known (paired) devices."""
    with Store(store_path()) as store:
        known = store.devices()
    if app.json:
        emit_json([d.to_json() for d in known])
        return
    if not known:
        click.echo("No known devices yet: pair one with 'biofeedback pair NAME'.")
        return
    for d in known:
        flag = " (virtual)" if d.virtual else ""
        click.echo(f"{d.name:24} {d.address}  {d.driver:12} {d.support}{flag}")


# -- demo ------------------------------------------------------------------------



@cli.command()
@click.option("--headless", is_flag=True, help="Terminal output instead of the window.")
@click.option("--duration", type=SESSION_S, default=60.0, show_default=True,
              help="Simulated seconds of the session (the quick protocol is fitted to it).")
@click.option("--seed", default=0, show_default=True, help="Seed of the virtual person.")
@click.option("--adaptive-pacer", is_flag=True,
              help="The pacer leads only as fast as the virtual person's breath follows it.")
@click.option("--calibrate", is_flag=True,
              help="Calibrate the virtual person first (a 2.5-minute quick calibration); "
                   "without it the session starts at once and the pipeline adapts on its own.")
@click.option("--no-save", is_flag=True,
              help="Record nothing: no session, no paired devices, no profile (by default "
                   "they are kept, marked as the demo's: 'data wipe --demo' removes them).")
@click.option("--skip-calibration", is_flag=True, hidden=True,
              help="The default now (kept so that older scripts still run).")
@click.option("--weeks", type=click.IntRange(1, 52),
              help="Instead: record N weeks of a virtual learner's daily practice (person "
                   "'demo', no radio, as fast as it goes) for plan, progress and report.")
@audio_options
@command_options()
def demo(
    app: AppContext, headless: bool, duration: float, seed: int, calibrate: bool,
    skip_calibration: bool, audio: AudioRequest, weeks: int | None = None,
    no_save: bool = False, adaptive_pacer: bool = False,
) -> None:
    """The whole path on the virtual radio: scan, pair, a paced session recorded to the store.

    Opens on the live session at once (an uncalibrated default profile): breath
    and pelvic traces move within seconds. The session lasts --duration seconds
    of simulated time (60 by default: one minute at --speed 1).

    \b
    Examples:
      biofeedback demo                       # the window, one minute
      biofeedback demo --calibrate           # calibrate the virtual person first
      biofeedback demo --headless --speed max --json
      biofeedback demo --no-save             # leave nothing behind
      biofeedback demo --weeks 6             # six weeks of a learner's practice
    """
    if weeks is not None:
        from biofeedback.cli.progress_cmds import demo_weeks

        demo_weeks(app, weeks, seed)
        return
    calibrate = calibrate and not skip_calibration
    if duration <= 0:
        raise click.BadParameter("must be positive", param_hint="--duration")
    app.virtual = True
    app.seed = seed
    # Nothing of the session stack (scipy) before the window is up: it loads
    # once the sensors stream (biofeedback.runtime.SESSION_STACK).
    if use_window(headless, app.json):
        from biofeedback.ui.app import run_window

        async def in_window(window: Any) -> dict[str, Any]:
            return await calibration_on_request(
                window, lambda cal, attach: _demo(app, duration, seed, quiet=False, window=window,
                                                  calibrate=cal, audio=audio, attach=attach,
                                                  save=not no_save, adaptive=adaptive_pacer),
                calibrate=calibrate)

        shown = run_window(
            in_window, linger=lambda r: r["summary"].get("ended_by") != "interrupted",
            clock=app.clock(), virtual=True, person="demo")
        if shown is None:
            click.echo("Window closed: the demo session was stopped.", err=True)
            return
        result = shown
    else:
        result = run(_demo(app, duration, seed, quiet=app.json, calibrate=calibrate,
                           audio=audio, save=not no_save, adaptive=adaptive_pacer))
    if app.json:
        emit_json(result)
        return
    for name, s in result["streams"].items():
        click.echo(
            f"{name:16} {s['samples']:7d} samples  {s['rate_hz'] or 0:6.1f} Hz  "
            f"gaps {s['gaps']}  reconnects {s['reconnects']}"
        )
    summ = result["summary"]
    sid = result["session_id"]
    click.echo(
        f"session {sid if sid is not None else '(not saved)'}: {summ['reps']} reps, mean score "
        f"{summ['mean_score'] if summ['mean_score'] is not None else '-'}, "
        f"{'complete' if summ['complete'] else 'incomplete (' + summ['ended_by'] + ')'}"
    )


async def _demo(
    app: AppContext,
    duration: float,
    seed: int,
    *,
    quiet: bool,
    window: Any = None,
    calibrate: bool = False,
    audio: AudioRequest | None = None,
    attach: list[Any] | None = None,
    save: bool = True,
    adaptive: bool = False,
) -> dict[str, Any]:
    profile = None
    if calibrate:
        profile = await _demo_calibration(app, seed, quiet=quiet, window=window)
        if save:
            with Store(store_path()) as store:
                store.mark_demo_profile(profile.id, profile.path)
    try:
        return await _demo_session(app, duration, seed, quiet=quiet, window=window,
                                   audio=audio, attach=attach, save=save, profile=profile,
                                   adaptive=adaptive)
    finally:
        if not save and profile is not None and profile.path is not None:
            profile.path.unlink(missing_ok=True)  # the session has read it: leave nothing


async def _demo_session(
    app: AppContext, duration: float, seed: int, *, quiet: bool, window: Any,
    audio: AudioRequest | None, attach: list[Any] | None, save: bool, profile: Any,
    adaptive: bool = False,
) -> dict[str, Any]:
    from biofeedback.runtime import LiveOptions, run_demo_session, stream_stats

    def paired(f: Found) -> None:
        if not quiet:
            _say(app, f"paired {f.name} [{f.adv.address}] -> {f.driver.id if f.driver else '?'}")

    opts = LiveOptions(protocol="quick", pacer=Pacer(4.0, 0.0, 6.0), adaptive_pacer=adaptive,
                       duration=duration, person="demo", status_lines=not quiet, window=window,
                       say=lambda t: _say(app, t), demo=True, save=save,
                       raw_first=window is not None)  # the window draws while it loads
    if audio is not None and audio.wanted(window is not None):
        opts.attach.append(audio.attach(opts))
    opts.attach.extend(attach or [])
    result = await run_demo_session(app.clock(), registry_for(), opts, seed=seed,
                                    on_paired=paired, via=app.via)
    summary = result.engine.finish()
    if result.error is not None:
        raise result.error
    out: dict[str, Any] = {"streams": stream_stats(result.sources),
                           "session_id": result.session_id, "summary": summary.to_json()}
    if profile is not None:
        out["calibration"] = {"profile": profile.id, "thresholds": profile.thresholds}
    return out


async def _demo_calibration(app: AppContext, seed: int, *, quiet: bool, window: Any) -> Any:
    """The quick calibration of the virtual person, saved as person "demo"'s profile."""
    from biofeedback.cli.calibrate_cmds import StepPrompter, run_calibration
    from biofeedback.runtime import DEMO_DEVICES

    prompter = StepPrompter(0, quiet=quiet)
    if window is not None:
        prompter.view = window.calibration
        window.show_screen("calibration")
    try:
        return await run_calibration(app, "quick", "demo", DEMO_DEVICES[0], DEMO_DEVICES[1], seed,
                                prompter)
    finally:
        prompter.view = None
        if window is not None:
            window.show_screen("session")


__all__ = ["demo", "devices", "pair", "scan_cmd"]


DemoRun = Callable[[bool, list[Any]], Awaitable[dict[str, Any]]]


async def calibration_on_request(window: Any, run: DemoRun, *, calibrate: bool) -> dict[str, Any]:
    """The demo in the window, calibration offered rather than imposed.

    The session starts at once; the session screen's "Calibrate now" (or the
    calibration screen's quick button) stops it -- it is kept, incomplete --
    and runs the quick calibration on the calibration screen, with the live
    traces, then a new session that uses the profile. With ``calibrate`` the
    calibration comes first and nothing is offered.

    Returns
    -------
    The last run's result (with ``"calibration"`` once calibrated).
    """
    requested = asyncio.Event()
    engines: list[Any] = []

    def on_request(_plan: str) -> None:
        if requested.is_set():
            return
        requested.set()
        window.offer_calibration(())
        if engines:
            engines[-1].stop("stopped to calibrate")

    def grab(engine: Any, _model: Any) -> None:
        engines.append(engine)
        if requested.is_set():
            engine.stop("stopped to calibrate")

    window.calibrate_requested.connect(on_request)
    try:
        window.offer_calibration(() if calibrate else ("quick",))
        result = await run(calibrate, [grab])
        if requested.is_set() and not calibrate:
            result = await run(True, [])
        return result
    finally:
        window.offer_calibration(())
        with contextlib.suppress(RuntimeError, TypeError):
            window.calibrate_requested.disconnect(on_request)
