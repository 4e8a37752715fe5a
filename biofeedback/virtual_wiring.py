"""The one application module that wires the virtual radio and the virtual person.

``--virtual`` puts the commands on :mod:`devices.virtual`'s world (the twins
and the body model). Everything the app does with the simulator goes through
here: building the world, handing the body an intent to follow, the twins'
counts conversions and the direct (radio-less) learner of ``demo --weeks``.
The rest of ``biofeedback`` and ``calibration`` never imports
``devices.virtual`` (``tests/test_layering.py``).

This module is light on purpose: it imports the simulator only inside its
functions, and nothing of the session stack (no pipeline, no scipy), so
``scan``, ``pair`` and ``live`` reach the radio quickly (start-up budget:
first sample within 1.5 s, ``benchmarks/bench_startup.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from devices.clock import Clock
from devices.intent import Intent

__all__ = [
    "direct_counts_factory",
    "direct_virtual_source",
    "follow",
    "twin_counts_factory",
    "virtual_learner_skills",
    "virtual_world",
]


@contextlib.asynccontextmanager
async def virtual_world(
    virtual: bool, clock: Clock, *, seed: int = 0, skill: float | None = None,
    **world_kwargs: Any,
) -> AsyncIterator[Any]:
    """The virtual radio with its body model when ``virtual``, else nothing (the OS stack).

    ``skill`` (0..1), when given, is how well the virtual person already does
    the reverse Kegel. Yields the :class:`~devices.virtual.world.VirtualWorld`
    or None.
    """
    if not virtual:
        yield None
        return
    from devices.virtual.world import VirtualWorld

    if skill is not None:
        from devices.virtual.body import BodyParams

        world_kwargs["params"] = BodyParams(skill=skill)
    async with VirtualWorld(clock, seed=seed, **world_kwargs) as world:
        yield world


def follow(world: Any, intent: Callable[[float], Intent]) -> None:
    """On the virtual radio, the body model follows ``intent`` from now on.

    The engine, the calibration runner and the resonance assessment hand their
    pacer and prompts to the virtual person through this (nothing without a world).
    """
    if world is not None:
        world.body.intent = intent


def twin_counts_factory(world: Any, device: str, channel: str) -> tuple[float, float] | None:
    """``(gain, offset)`` with which the virtual twin ``device`` turns cmH2O into counts.

    A two-channel twin converts per channel (``base_conversion``); None without
    a world, for a device that is no twin, or a twin that reports no counts.
    """
    if world is None:
        return None
    from devices.virtual.twins import CountsConversion

    twin = world.peripherals.get(device)
    cc = getattr(twin, f"{channel}_conversion", None) or getattr(twin, "conversion", None)
    if not isinstance(cc, CountsConversion):
        return None
    return float(cc.gain), float(cc.offset)


def direct_virtual_source(clock: Clock, seed: int, *, skill: float = 1.0,
                          posture: str = "supine") -> Any:
    """The demo's two sensors on a virtual learner, without the radio (weeks of practice).

    Returns a :class:`~devices.virtual.direct.DirectSource`.
    """
    from devices.virtual.body.learner import learner_params
    from devices.virtual.direct import DirectSource

    return DirectSource(clock, seed, params=learner_params(skill, posture))


def direct_counts_factory() -> tuple[float, float]:
    """``(gain, offset)``: how :func:`direct_virtual_source`'s probe turns cmH2O into counts."""
    from devices.virtual.twins.kgoal import KGOAL_CONVERSION

    return float(KGOAL_CONVERSION.gain), float(KGOAL_CONVERSION.offset)


def virtual_learner_skills(n: int, seed: int) -> list[float]:
    """The virtual learner's skill at each of ``n`` practice sessions (rising, bad days)."""
    from devices.virtual.body.learner import skill_over_sessions

    return skill_over_sessions(n, seed)
