"""The resonance-breathing assessment as a run: find a heart strap, pace, collect, choose.

Shared by ``biofeedback resonance`` (terminal) and the window's Resonance screen:
both call :func:`assess` with the same :class:`AssessOptions`, so the same seed
on the virtual radio gives the same beats and the same rate. The figures and the
choice are pure (:mod:`calibration.resonance`); this module is the I/O around
them -- the scan, the strap's RR intervals, the virtual person following the
pacer, and saving the result in the person's profiles (``kind: resonance``),
where it becomes their default pacer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biofeedback.paths import data_dir
from biofeedback.runtime import backend_of, follow, virtual_world
from calibration.profiles import Profile, SensorId, save_profile
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

__all__ = [
    "HEART_DRIVERS",
    "LEAD_IN_S",
    "NO_HEART",
    "AssessOptions",
    "Assessment",
    "assess",
    "choose_heart",
    "collect_rr",
    "paced_intent",
    "save_resonance",
]

#: Drivers whose devices give RR intervals over the Heart Rate Service.
HEART_DRIVERS = ("hrs", "polar-h10")
#: Seconds between finding the strap and the first paced step.
LEAD_IN_S = 5.0
_SCAN_S = 5.0
NO_HEART = ("no heart sensor found (a Polar H10 or any Heart Rate Service strap): the resonance "
            "assessment needs RR intervals and cannot run without one")

BeatsFn = Callable[[np.ndarray, np.ndarray], object]


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


@dataclass
class AssessOptions:
    """How to run one assessment, and who hears about its progress.

    Parameters
    ----------
    step_s : float
        Seconds at each rate.
    rates : sequence of float
        The rates to try, breaths/min.
    device : str, optional
        The strap's name or address (default: the first found).
    virtual, seed, via :
        The virtual radio (``--virtual``), its person's seed, and its transport.
    say : callable, optional
        Progress in words (the terminal's stderr).
    on_schedule : callable, optional
        Told the strap found and the steps, once they are fixed.
    on_step : callable, optional
        Told each step a moment before it begins (the sound's pacer follows it).
    on_beats : callable, optional
        Told each packet of beats: beat times and RR intervals (s).
    """

    step_s: float = 120.0
    rates: Sequence[float] = DEFAULT_RATES
    device: str | None = None
    virtual: bool = False
    seed: int = 0
    via: str = "radio"
    say: Callable[[str], None] | None = None
    on_schedule: Callable[[Found, Sequence[ResonanceStep]], object] | None = None
    on_step: Callable[[ResonanceStep], None] | None = None
    on_beats: BeatsFn | None = None
    world_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """A finished assessment: the result, the strap, the schedule and the beats."""

    result: ResonanceResult
    heart: Found
    steps: tuple[ResonanceStep, ...]
    beats: np.ndarray
    rr: np.ndarray


def _say(opts: AssessOptions, text: str) -> None:
    if opts.say is not None:
        opts.say(text)


async def collect_rr(
    clock: Clock, source: BleSource, steps: Sequence[ResonanceStep], opts: AssessOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Beat times and RR intervals until the last step ends (progress through ``opts``)."""
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
                if opts.on_beats is not None:
                    opts.on_beats(beats[-1], rr[-1])
            k = next((i for i, s in enumerate(steps) if s.t_start <= now < s.t_end), None)
            # The sound switches a little ahead (RR packets come about once a second), so
            # the new step's first chime is not missed.
            ahead = next((s for s in steps if s.t_start - 1.5 <= now < s.t_end - 1.5), None)
            if opts.on_step is not None and ahead is not None and ahead is not cued:
                opts.on_step(ahead)
                cued = ahead
            if k is not None and k != shown:
                p = steps[k].pacer
                _say(opts, f"  step {k + 1}/{len(steps)}: {steps[k].rate_bpm:g} breaths/min -- "
                     f"in {p.inhale_s:.1f} s, out {p.exhale_s:.1f} s, for "
                     f"{steps[k].t_end - steps[k].t_start:.0f} s")
            shown = k if k is not None else shown
            if now >= end:
                break
    if not beats:
        return np.empty(0), np.empty(0)
    return np.concatenate(beats), np.concatenate(rr)


async def _find_heart(reg: Registry, clock: Clock, world: Any, opts: AssessOptions) -> Found:
    _say(opts, "Scanning for a heart sensor...")
    found = await scan(reg, clock, timeout=_SCAN_S,
                       stop_when=lambda f: f.driver is not None
                       and f.driver.id in HEART_DRIVERS and opts.device is None,
                       backend=backend_of(world))
    return choose_heart(found, opts.device)


async def assess(clock: Clock, reg: Registry, opts: AssessOptions) -> Assessment:
    """Run the stepped protocol and choose the rate.

    Raises
    ------
    DeviceNotFoundError
        No heart strap (the assessment needs RR intervals).
    DeviceError
        The strap's link gave up.
    InputError
        Too few beats to compare the rates.
    """
    async with virtual_world(opts.virtual, clock, seed=opts.seed, via=opts.via,
                             **opts.world_kwargs) as world:
        heart = await _find_heart(reg, clock, world, opts)
        # A Polar H10 also serves the Heart Rate Service: RR intervals from there.
        source = BleSource(heart.device, reg.get("hrs"), clock, prefix="heart.",
                           backend=heart.backend)
        steps = resonance_schedule(clock.now() + LEAD_IN_S, opts.step_s, opts.rates)
        follow(world, paced_intent(steps))
        if opts.on_schedule is not None:
            opts.on_schedule(heart, steps)
        _say(opts, f"Using {heart.name} [{heart.adv.address}]. Breathe with the pacer, slowly "
             "and gently through the nose, into the belly; stop if you feel dizzy.")
        beats, rr = await collect_rr(clock, source, steps, opts)
    try:
        result = analyse_resonance(beats, rr, steps)
    except ValueError as exc:
        raise InputError(f"resonance assessment refused: {exc}") from None
    return Assessment(result=result, heart=heart, steps=steps, beats=beats, rr=rr)


def save_resonance(person: str, heart: Found, result: ResonanceResult, virtual: bool) -> Profile:
    """Save ``result`` in ``person``'s profiles: their default pacer from now on."""
    sensor = SensorId(driver="hrs", address=heart.adv.address, name=heart.name or "",
                      stream="rr", channel="rr", unit="s", virtual=virtual)
    prof = Profile(person=person, kind="resonance", sensor=sensor, thresholds={}, figures={},
                   suggested_pacer=dict(result.to_json()["pacer"]),
                   resonance=result.to_json())
    return save_profile(data_dir() / "profiles", prof)
