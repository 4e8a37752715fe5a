"""``biofeedback resonance``: find the breathing rate at which the heart rhythm swings most.

The stepped protocol (6.5, 6.0, 5.5, 5.0, 4.5 breaths/min, 2 minutes each by
default) paced by the same pacer as the sessions, with RR intervals from a
Polar H10 or any Heart Rate Service strap; the run is
:func:`biofeedback.resonance.assess` (shared with the window's Resonance screen,
``--window``); the figures and the choice come from :mod:`calibration.resonance`.
The chosen rate and why are saved in the person's profiles (``kind: resonance``)
and become their default pacer.

Exit codes: 0 done; 1 bad input or too few beats to compare the rates; 3 no
heart sensor found (the assessment needs RR intervals and says it cannot run
without them) or the link gave up.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from biofeedback.audio import AudioRenderer, AudioSettings, AudioState
from biofeedback.audio.player import AudioPlayer
from biofeedback.cli.console import say
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.runtime import registry_for, run
from biofeedback.resonance import (
    NO_HEART,
    Assessment,
    AssessOptions,
    assess,
    choose_heart,
    paced_intent,
    save_resonance,
)
from calibration.profiles import DEFAULT_PERSON, check_person
from calibration.resonance import DEFAULT_RATES, ResonanceResult, ResonanceStep
from devices.clock import Clock
from devices.errors import DeviceError, InputError

__all__ = ["NO_HEART", "choose_heart", "paced_intent", "resonance"]


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give rates like 6.5,6,5.5") from None
    if len(rates) < 2 or not all(math.isfinite(r) and 3.0 <= r <= 10.0 for r in rates):
        raise click.BadParameter("give at least two rates, each 3-10 breaths/min")
    return rates


class _PacerSound:
    """The pacer's chimes on the sound card, so the assessment works with eyes closed."""

    def __init__(self, clock: Clock, volume: float) -> None:
        self.state = AudioState()
        settings = AudioSettings(volume=volume)
        self.player = AudioPlayer(lambda: self.state, clock.now, AudioRenderer(settings),
                                  say=say)
        self.player.set_enabled(True)

    def step(self, step: ResonanceStep) -> None:
        self.state = AudioState(pacer=step.pacer, pacer_from=step.t_start)


def assess_options(app: AppContext, device: str | None, step_s: float,
                   rates: Sequence[float], *, quiet: bool) -> AssessOptions:
    """The run's options as ``resonance`` gives them (the window uses the same)."""
    return AssessOptions(step_s=step_s, rates=tuple(rates), device=device,
                         virtual=app.virtual, seed=app.seed or 0, via=app.via,
                         say=None if quiet else say)


async def _assess(app: AppContext, opts: AssessOptions, sound: float | None) -> Assessment:
    clock = app.clock()
    chimes = _PacerSound(clock, sound) if sound is not None else None
    if chimes is not None:
        opts.on_step = chimes.step
    try:
        return await assess(clock, registry_for(), opts)
    finally:
        if chimes is not None:
            chimes.player.stop()


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
@click.option("--window", "in_window", is_flag=True,
              help="Show the assessment on the window's Resonance screen (the pacer, the live "
                   "heart rate, each rate's figures, the choice).")
@command_options()
def resonance(
    app: AppContext, device: str | None, person: str | None, step_s: float, rates: str,
    seed: int, no_save: bool, audio: bool, volume: float, in_window: bool,
) -> None:
    """Resonance breathing: pace 6.5 to 4.5 breaths/min and find where the heart swings most.

    Needs RR intervals from a heart strap (Polar H10 or any Heart Rate Service
    strap); without one it says so and exits with code 3. The chosen rate is
    saved in the person's profile and becomes their default pacer for `live`
    (--inhale/--exhale still win). With --window the window's Resonance screen
    shows it as it runs. Exit codes: 0 done, 1 too few beats to compare, 3 no
    heart sensor or the link gave up.
    """
    rate_list = _rates(rates)
    who = check_person(person) if person is not None else DEFAULT_PERSON
    app.seed = seed
    quiet = app.json
    opts = assess_options(app, device, step_s, rate_list, quiet=quiet)
    sound = volume if audio else None
    if in_window:
        done = _in_window(app, opts, sound, who, save=not no_save)
        saved_id = done.saved
        result = done.assessment.result
    else:
        assessment = run(_assess(app, opts, sound))
        result = assessment.result
        saved = None if no_save else save_resonance(who, assessment.heart, result, app.virtual)
        saved_id = None if saved is None else saved.id
    if app.json:
        out: dict[str, Any] = {"person": who, **result.to_json(), "profile": saved_id}
        emit_json(out)
        return
    _print(result)
    if saved_id is not None:
        click.echo(f"Saved as {saved_id}: `live` paces at this rate from now on.")
    sys.stdout.flush()


@dataclass(frozen=True)
class _Shown:
    assessment: Assessment
    saved: str | None


def _in_window(app: AppContext, opts: AssessOptions, sound: float | None, person: str, *,
               save: bool) -> _Shown:
    """The assessment on the window's Resonance screen (progress also on stderr)."""
    from biofeedback.ui.display import window_problem

    problem = window_problem()
    if problem is not None:
        raise InputError(f"cannot show the window: {problem}; run without --window")
    from biofeedback.ui.app import run_window
    from biofeedback.ui.resonance_view import assess_on_screen

    clock = app.clock()
    chimes = _PacerSound(clock, sound) if sound is not None else None
    if chimes is not None:
        opts.on_step = chimes.step

    async def main(window: Any) -> _Shown | Exception:
        window.show_screen("resonance")
        try:
            done = await assess_on_screen(window.resonance, clock, registry_for(), opts,
                                          person=person, save=save)
        except (DeviceError, InputError) as exc:
            return exc  # the screen says why; it stays open until closed
        finally:
            if chimes is not None:
                chimes.player.stop()
        return _Shown(done, window.resonance.saved_id)

    shown = run_window(main, virtual=app.virtual, linger=not app.json)
    if shown is None:
        raise InputError("resonance assessment stopped: the window was closed before it ended")
    if isinstance(shown, Exception):
        raise shown
    return shown
