"""Session plans: the steps of a protocol, the built-in protocols, fitting one to a duration.

Pure data and arithmetic on a :class:`~biofeedback.protocols.pacer.Pacer`; the
engine (:mod:`biofeedback.protocols.session`) walks these steps on the clock.

Protocols (durations with the default pacer, inhale 4 s / exhale 6 s, one
breath cycle = 10 s; a rep step lasts its breath cycles plus one closing
inhale, the breath that ends the last cycle):

=========  =============================================================  ========
protocol   steps                                                          total
=========  =============================================================  ========
quick      settle 20 s, baseline 30 s, 5 reps (54 s), post 30 s           ~2.2 min
standard   settle 30 s, baseline 60 s, 10 reps (104 s), post 60 s         ~4.2 min
long       settle 30 s, baseline 60 s, 10 reps, rest 60 s, 10 reps,       ~7 min
           post 60 s
=========  =============================================================  ========

A session shorter than its protocol is *fitted* (:meth:`SessionProtocol.fit`):
the reps keep at most :data:`FIT_REPS_FRACTION` of the time (at least one
rep), the settle/baseline/rest steps share the rest in their proportions, so a
short session still has a baseline, reps and a post-baseline. Below one rep's
worth of time the session is cut at its duration instead.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from biofeedback.protocols.pacer import Pacer
from devices.errors import InputError

__all__ = [
    "FIT_REPS_FRACTION",
    "PROTOCOLS",
    "SessionProtocol",
    "Step",
    "StepKind",
    "by_name",
    "closing_s",
    "pacer_from_profile",
]

T = TypeVar("T")

#: Time the reps of a fitted (shortened) session may take at most.
FIT_REPS_FRACTION = 0.6


class StepKind(enum.StrEnum):
    """What a protocol step asks for."""

    SETTLE = "settle"
    BASELINE = "baseline"
    REPS = "reps"
    REST = "rest"  # between sets
    POST = "post"  # post-baseline
    PAUSE = "pause"  # asked for by the person, not planned


@dataclass(frozen=True)
class Step:
    """One protocol step.

    Parameters
    ----------
    kind : StepKind
        What the step asks for.
    duration_s : float
        Length of a timed step. A rep step lasts its breath cycles plus the
        closing inhale unless ``duration_s`` is positive (a replay gives the
        recorded length).
    reps : int
        Breath cycles of a rep step.
    set_index : int
        1-based set number of a rep step (0 otherwise).
    """

    kind: StepKind
    duration_s: float = 0.0
    reps: int = 0
    set_index: int = 0

    @property
    def label(self) -> str:
        if self.kind is StepKind.REPS:
            return f"reps (set {self.set_index})" if self.set_index > 1 else "reps"
        return str(self.kind)

    def length(self, pacer: Pacer) -> float:
        """Seconds this step lasts with ``pacer``."""
        if self.kind is StepKind.REPS and self.duration_s <= 0:
            return self.reps * pacer.period + closing_s(pacer)
        return self.duration_s

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "duration_s": self.duration_s,
            "reps": self.reps,
            "set": self.set_index,
        }


def closing_s(pacer: Pacer) -> float:
    """The closing inhale after the last rep: it ends the last breath cycle."""
    return max(pacer.inhale_s + pacer.hold_s, 3.0)


@dataclass(frozen=True)
class SessionProtocol:
    """A named list of steps.

    Parameters
    ----------
    name : str
        ``quick``, ``standard``, ``long`` (or a test's own).
    steps : tuple of Step
        In order.
    """

    name: str
    steps: tuple[Step, ...]

    @property
    def reps(self) -> int:
        """Reps over all sets."""
        return sum(s.reps for s in self.steps if s.kind is StepKind.REPS)

    def length(self, pacer: Pacer) -> float:
        """Total seconds with ``pacer``."""
        return sum(s.length(pacer) for s in self.steps)

    def fit(self, duration: float, pacer: Pacer) -> tuple[tuple[Step, ...], bool]:
        """The steps shortened to fit ``duration`` seconds.

        Returns
        -------
        steps : tuple of Step
            The protocol's own steps when they fit, else shortened ones.
        fits : bool
            False when not even one rep fits: the caller cuts at ``duration``.
        """
        if self.length(pacer) <= duration + 1e-9:
            return self.steps, True
        rep_steps = [s for s in self.steps if s.kind is StepKind.REPS]
        close = closing_s(pacer)
        if not rep_steps or pacer.period + close > duration:
            return self.steps, False
        # Fill the sets in order (a short session is one set, not two halves).
        budget = FIT_REPS_FRACTION * duration
        per_set: list[int] = []
        for s in rep_steps:
            n = max(0, min(s.reps, math.floor((budget - close) / pacer.period + 1e-9)))
            per_set.append(n)
            budget -= n * pacer.period + (close if n else 0.0)
        if sum(per_set) == 0:
            per_set[0] = 1
        rep_time = sum(per_set) * pacer.period + close * sum(1 for n in per_set if n > 0)
        # Drop sets left without reps, with the rest step before them.
        kept: list[Step] = []
        k = 0
        for s in self.steps:
            if s.kind is StepKind.REPS:
                n = per_set[k]
                k += 1
                if n > 0:
                    kept.append(replace(s, reps=n))
                elif kept and kept[-1].kind is StepKind.REST:
                    kept.pop()
            else:
                kept.append(s)
        planned = sum(s.duration_s for s in kept if s.kind is not StepKind.REPS)
        scale = max(duration - rep_time, 0.0) / planned if planned > 0 else 0.0
        out = [
            s if s.kind is StepKind.REPS else replace(s, duration_s=round(s.duration_s * scale, 3))
            for s in kept
        ]
        return tuple(out), True


def _sets(
    n_sets: int, reps: int, settle: float, baseline: float, rest: float, post: float
) -> tuple[Step, ...]:
    steps: list[Step] = [Step(StepKind.SETTLE, settle), Step(StepKind.BASELINE, baseline)]
    for k in range(1, n_sets + 1):
        if k > 1:
            steps.append(Step(StepKind.REST, rest))
        steps.append(Step(StepKind.REPS, reps=reps, set_index=k))
    steps.append(Step(StepKind.POST, post))
    return tuple(steps)


#: The built-in protocols (see the module docstring for their durations).
PROTOCOLS: dict[str, SessionProtocol] = {
    "quick": SessionProtocol("quick", _sets(1, 5, 20.0, 30.0, 0.0, 30.0)),
    "standard": SessionProtocol("standard", _sets(1, 10, 30.0, 60.0, 0.0, 60.0)),
    "long": SessionProtocol("long", _sets(2, 10, 30.0, 60.0, 60.0, 60.0)),
}


def pacer_from_profile(profile: Mapping[str, Any]) -> Pacer | None:
    """A calibration profile's suggested pacer, if it has one.

    Looks for ``suggested_pacer`` (or ``pacer``) with ``inhale_s``, ``exhale_s``
    and optionally ``hold_s``; returns None when absent or not valid.
    """
    spec = profile.get("suggested_pacer") or profile.get("pacer")
    if not isinstance(spec, Mapping):
        return None
    try:
        return Pacer(
            inhale_s=float(spec["inhale_s"]),
            hold_s=float(spec.get("hold_s", 0.0) or 0.0),
            exhale_s=float(spec["exhale_s"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def by_name(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``, or an :class:`InputError` listing the known names.

    Raises
    ------
    InputError
        When ``name`` is not in ``table`` (``what`` names the kind, e.g. "protocol").
    """
    try:
        return table[name]
    except KeyError:
        raise InputError(f"unknown {what} {name!r} (known: {', '.join(table)})") from None
