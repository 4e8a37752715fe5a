"""What a person is asked to do, and tries to do: the pacing vocabulary.

Shared by the app (the session engine's steps, the calibration prompts, the
live view's pacer) and the virtual body, which follows an *intent function*
``t -> Intent`` and knows no exercise. It lives outside ``devices.virtual`` so
that production code never imports the simulator to speak about breath targets
and pelvic actions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devices.vocab import BreathPhase

__all__ = [
    "BreathTarget",
    "Intent",
    "IntentFn",
    "PelvicAction",
    "Schedule",
    "free_breathing",
]


class PelvicAction(enum.StrEnum):
    """What the person tries to do with the pelvic floor."""

    REST = "rest"
    DROP = "drop"  # reverse Kegel: let the floor soften and descend
    CONTRACT = "contract"  # Kegel: squeeze and lift
    STRAIN = "strain"  # bear down / push, with a breath hold


@dataclass(frozen=True)
class BreathTarget:
    """A pacer's instruction at one moment.

    Parameters
    ----------
    phase : BreathPhase
        What the pacer asks for now (INHALE, EXHALE or PAUSE for a hold).
    progress : float
        0..1, how far into that phase the pacer is.
    inhale_s, hold_s, exhale_s : float
        Durations of the current cycle.
    depth : float
        Relative depth asked for (1 = the person's natural depth).
    """

    phase: BreathPhase
    progress: float
    inhale_s: float
    hold_s: float
    exhale_s: float
    depth: float = 1.0


@dataclass(frozen=True)
class Intent:
    """What the virtual person is trying to do at one moment.

    Parameters
    ----------
    breath : BreathTarget or None
        A pacer to follow; None means breathe freely at the natural rate.
    pelvic : PelvicAction
        The pelvic-floor action.
    effort : float
        0..1, fraction of the person's maximum (contraction, drop or strain).
    compliance : float
        0..1, how closely the person follows the pacer and the action
        (1 = exactly; lower values add timing error and missed actions).
    drop_on_inhale : bool
        For ``DROP``: couple the drop to inhalation (the reverse Kegel done
        right: drop on inhale, keep most of the release on exhale) rather than
        holding a sustained drop.
    motion : float
        0..1, how restless the person is (motion artefacts on every sensor).
    """

    breath: BreathTarget | None = None
    pelvic: PelvicAction = PelvicAction.REST
    effort: float = 1.0
    compliance: float = 1.0
    drop_on_inhale: bool = True
    motion: float = 0.0


IntentFn = Callable[[float], Intent]


def free_breathing(t: float) -> Intent:
    """Rest and breathe freely (the default intent)."""
    return Intent()


@dataclass(frozen=True)
class Schedule:
    """A fixed timeline of intents, for tests and scripted demos.

    Parameters
    ----------
    steps : sequence of (start_s, Intent)
        Each intent holds from its start until the next one; times are on the
        run's clock. Before the first step the person rests.
    """

    steps: Sequence[tuple[float, Intent]]

    def __call__(self, t: float) -> Intent:
        current = Intent()
        for start, intent in self.steps:
            if t >= start:
                current = intent
            else:
                break
        return current
