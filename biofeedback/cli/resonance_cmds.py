"""``biofeedback resonance``: find the breathing rate at which the heart rhythm swings most.

The stepped protocol (6.5, 6.0, 5.5, 5.0, 4.5 breaths/min, 2 minutes each by
default) paced by the same pacer as the sessions, with RR intervals from a
Polar H10 or any Heart Rate Service strap; the figures and the choice come
from :mod:`calibration.resonance`. The chosen rate and why are saved in the
person's profiles (``kind: resonance``) and become their default pacer.

Exit codes: 0 done; 1 bad input or too few beats to compare the rates; 3 no
heart sensor found (the assessment needs RR intervals and says it cannot run
without them) or the link gave up.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import numpy as np

from biofeedback.audio import AudioRenderer, AudioSettings, AudioState
from biofeedback.audio.player import AudioPlayer
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.runtime import radio, registry_for, run
from biofeedback.paths import data_dir
from biofeedback.runtime import backend_of, follow
from calibration.profiles import DEFAULT_PERSON, Profile, SensorId, check_person, save_profile
from calibration.resonance import (
    DEFAULT_RATES,
    ResonanceResult,
    ResonanceStep,
    analyse_resonance,
    resonance_schedule,
)
from devices.ble import BleSource, Found, scan
from devices.clock import Clock
from devices.errors import DeviceError, DeviceNotFoundError, InputError
from devices.intent import Intent
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent

__all__ = ["resonance"]

#: Drivers whose devices give RR intervals over the Heart Rate Service.
HEART_DRIVERS = ("hrs", "polar-h10")
_LEAD_IN_S = 5.0
_SCAN_S = 5.0
NO_HEART = ("no heart sensor found (a Polar H10 or any Heart Rate Service strap): the resonance "
            "assessment needs RR intervals and cannot run without one")


def _say(text: str) -> None:
    click.echo(text, err=True)


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give rates like 6.5,6,5.5") from None
    if len(rates) < 2 or not all(math.isfinite(r) and 3.0 <= r <= 10.0 for r in rates):
        raise click.BadParameter("give at least two rates, each 3-10 breaths/min")
    return rates


def choose_heart(found: Sequence[Found], device: str | None) -> Found:
    """The heart sensor: the one named, else the first strap found.

    Raises
    ------
    DeviceNotFoundError
        None found (or not the one named).
    """
    want = device.strip().lower() if device else None
    for f in found:
        if f.driver is None or f.driver.id not in HEART_DRIVERS:
            continue
        if want is None or want in (f.adv.address.lower(), (f.name or "").lower()):
            return f
    if want is not None:
        raise DeviceNotFoundError(f"heart sensor {device!r} not found; {NO_HEART}")
    raise DeviceNotFoundError(NO_HEART)


def paced_intent(steps: Sequence[ResonanceStep]) -> Callable[[float], Intent]:
    """What the virtual person does: follow each step's pacer, breathe freely around them."""

    def intent(t: float) -> Intent:
        for s in steps:
            if s.t_start <= t < s.t_end:
                return Intent(breath=s.pacer.target(t))
        return Intent()

    return intent


async def collect_rr(
    clock: Clock, source: BleSource, steps: Sequence[ResonanceStep], *, quiet: bool,
    on_step: Callable[[ResonanceStep], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Beat times and RR intervals until the last step ends (progress on stderr).

    ``on_step`` is told each step as it begins (the sound's pacer follows it).
    """
    beats: list[np.ndarray] = []
    rr: list[np.ndarray] = []
    shown = -1
    cued: ResonanceStep | None = None
    end = steps[-1].t_end
    async with merged([source]) as items:
        async for item in items:
            now = clock.now()
            if isinstance(item, LinkEvent) and item.kind == "given_up":
                raise DeviceError(f"{source.name}: the link gave up ({item.detail})")
            if isinstance(item, Chunk) and item.stream.endswith(".rr") and item.t.size:
                beats.append(np.asarray(item.t, dtype=np.float64))
                rr.append(np.asarray(item.values, dtype=np.float64).reshape(-1))
            k = next((i for i, s in enumerate(steps) if s.t_start <= now < s.t_end), None)
            # The sound switches a little ahead (RR packets come about once a second), so
            # the new step's first chime is not missed.
            ahead = next((s for s in steps if s.t_start - 1.5 <= now < s.t_end - 1.5), None)
            if on_step is not None and ahead is not None and ahead is not cued:
                on_step(ahead)
                cued = ahead
            if k is not None and k != shown and not quiet:
                p = steps[k].pacer
                _say(f"  step {k + 1}/{len(steps)}: {steps[k].rate_bpm:g} breaths/min -- "
                     f"in {p.inhale_s:.1f} s, out {p.exhale_s:.1f} s, for "
                     f"{steps[k].t_end - steps[k].t_start:.0f} s")
            shown = k if k is not None else shown
            if now >= end:
                break
    if not beats:
        return np.empty(0), np.empty(0)
    return np.concatenate(beats), np.concatenate(rr)


class _PacerSound:
    """The pacer's chimes on the sound card, so the assessment works with eyes closed."""

    def __init__(self, clock: Clock, volume: float) -> None:
        self.state = AudioState()
        settings = AudioSettings(volume=volume)
        self.player = AudioPlayer(lambda: self.state, clock.now, AudioRenderer(settings),
                                  say=_say)
        self.player.set_enabled(True)

    def step(self, step: ResonanceStep) -> None:
        self.state = AudioState(pacer=step.pacer, pacer_from=step.t_start)


async def _assess(
    app: AppContext, device: str | None, step_s: float, rates: Sequence[float], *, quiet: bool,
    sound: float | None = None,
) -> tuple[ResonanceResult, Found, list[ResonanceStep]]:
    clock = app.clock()
    reg: Registry = registry_for()
    async with radio(app, clock) as world:
        if not quiet:
            _say("Scanning for a heart sensor...")
        found = await scan(reg, clock, timeout=_SCAN_S,
                           stop_when=lambda f: f.driver is not None
                           and f.driver.id in HEART_DRIVERS and device is None,
                           backend=backend_of(world))
        heart = choose_heart(found, device)
        # A Polar H10 also serves the Heart Rate Service: RR intervals from there.
        source = BleSource(heart.device, reg.get("hrs"), clock, prefix="heart.",
                           backend=heart.backend)
        steps = list(resonance_schedule(clock.now() + _LEAD_IN_S, step_s, rates))
        follow(world, paced_intent(steps))
        if not quiet:
            _say(f"Using {heart.name} [{heart.adv.address}]. Breathe with the pacer, slowly "
                 "and gently through the nose, into the belly; stop if you feel dizzy.")
        chimes = _PacerSound(clock, sound) if sound is not None else None
        try:
            beats, rr = await collect_rr(clock, source, steps, quiet=quiet,
                                         on_step=None if chimes is None else chimes.step)
        finally:
            if chimes is not None:
                chimes.player.stop()
    try:
        result = analyse_resonance(beats, rr, steps)
    except ValueError as exc:
        raise InputError(f"resonance assessment refused: {exc}") from None
    return result, heart, steps


def _save(person: str, heart: Found, result: ResonanceResult, virtual: bool) -> Profile:
    sensor = SensorId(driver="hrs", address=heart.adv.address, name=heart.name or "",
                      stream="rr", channel="rr", unit="s", virtual=virtual)
    prof = Profile(person=person, kind="resonance", sensor=sensor, thresholds={}, figures={},
                   suggested_pacer=dict(result.to_json()["pacer"]),
                   resonance=result.to_json())
    return save_profile(data_dir() / "profiles", prof)


def _print(result: ResonanceResult) -> None:
    click.echo("rate/min  paced swing ms  HR swing bpm  LF power ms²  following")
    for s in result.steps:
        mark = "*" if s.rate_bpm == result.rate_bpm else " "
        click.echo(f"{mark} {s.rate_bpm:5.1f}  {s.paced_ms:14.0f}  {s.swing_bpm:12.1f}  "
                   f"{s.lf_power_ms2:12.0f}  {s.following:9.2f}")
    p = result.pacer()
    click.echo(f"Your resonance rate: {result.rate_bpm:g} breaths/min (in {p.inhale_s:.1f} s, "
               f"out {p.exhale_s:.1f} s). Why: {result.why}.")


@cli.command()
@click.option("--device", metavar="NAME|ADDRESS",
              help="The heart sensor (Polar H10 or a Heart Rate Service strap; default: the "
                   "first found).")
@click.option("--person", help="Whose rate it is (saved in their profile).")
@click.option("--step-s", type=click.FloatRange(30.0, 600.0), default=120.0, show_default=True,
              help="Seconds at each rate (shorter: quicker, less certain).")
@click.option("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES), show_default=True,
              help="The rates to try, breaths/min, comma-separated.")
@click.option("--seed", default=0, show_default=True, help="Virtual only: the person's seed.")
@click.option("--no-save", is_flag=True, help="Show the result without saving it.")
@click.option("--audio", is_flag=True,
              help="Chime the pacer's changes (higher: breathe in, lower: out) to follow it "
                   "with eyes closed.")
@click.option("--volume", type=click.FloatRange(0.0, 1.0), default=0.6, show_default=True,
              help="Volume of the chimes, 0-1.")
@command_options()
def resonance(
    app: AppContext, device: str | None, person: str | None, step_s: float, rates: str,
    seed: int, no_save: bool, audio: bool, volume: float,
) -> None:
    """Resonance breathing: pace 6.5 to 4.5 breaths/min and find where the heart swings most.

    Needs RR intervals from a heart strap (Polar H10 or any Heart Rate Service
    strap); without one it says so and exits with code 3. The chosen rate is
    saved in the person's profile and becomes their default pacer for `live`
    (--inhale/--exhale still win). Exit codes: 0 done, 1 too few beats to
    compare, 3 no heart sensor or the link gave up.
    """
    rate_list = _rates(rates)
    who = check_person(person) if person is not None else DEFAULT_PERSON
    app.seed = seed
    quiet = app.json
    result, heart, _steps = run(_assess(app, device, step_s, rate_list, quiet=quiet,
                                        sound=volume if audio else None))
    saved = None if no_save else _save(who, heart, result, app.virtual)
    if app.json:
        out: dict[str, Any] = {"person": who, **result.to_json(),
                               "profile": None if saved is None else saved.id}
        emit_json(out)
        return
    _print(result)
    if saved is not None:
        click.echo(f"Saved as {saved.id}: `live` paces at this rate from now on.")
    sys.stdout.flush()
