"""The records the live views read: trace windows, zones, the step, the text snapshot.

Frozen (or plain) records built by :class:`~biofeedback.ui.model.LiveModel`;
the window, its side panel and the terminal view only read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.results import RepResult
from biofeedback.signal.types import FloatArray, Quality
from biofeedback.ui.links import LinkStatus
from biofeedback.ui.words import PACER_TEXT
from devices.intent import BreathTarget
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "BreathView",
    "PelvicView",
    "RunState",
    "Snapshot",
    "StepInfo",
    "Zones",
    "pacer_position",
]

#: Whether the session runs (None in the model: start/pause/stop never used).
RunState = Literal["running", "paused", "stopped"]


class PelvicView(NamedTuple):
    """The pelvic trace over a window (views)."""

    t: FloatArray
    level: FloatArray
    relative: FloatArray
    state: FloatArray  # PelvicState codes as float
    confidence: FloatArray


class BreathView(NamedTuple):
    """The breath trace over a window (views)."""

    t: FloatArray
    signal: FloatArray
    phase: FloatArray  # BreathPhase codes as float


@dataclass(frozen=True)
class Zones:
    """Pelvic zones around the resting tone, in the pressure stream's units.

    Bands relative to rest: drop ``(-inf, -drop]`` (the goal), rest
    ``(-drop, contraction)``, contraction ``[contraction, strain)``, strain
    ``[strain, +inf)`` (when ``strain <= contraction`` the contraction band
    is empty: any rise that high is drawn as strain).
    """

    rest: float | None
    drop_margin: float
    contraction_margin: float
    strain_margin: float
    source: Literal["profile", "pipeline"]

    def bands(self) -> dict[PelvicState, tuple[float, float]]:
        """Each state's band ``(low, high)`` relative to rest (``±inf`` for open ends)."""
        c = self.contraction_margin
        s = max(self.strain_margin, c)
        return {
            PelvicState.DROP: (-math.inf, -self.drop_margin),
            PelvicState.REST: (-self.drop_margin, c),
            PelvicState.CONTRACTION: (c, s),
            PelvicState.STRAIN: (s, math.inf),
        }

    @classmethod
    def from_profile(
        cls, rest: float | None, drop_margin: float, contraction_margin: float,
        strain_margin: float,
    ) -> Zones:
        """Zones from a calibration profile's margins.

        Parameters
        ----------
        rest : float or None
            The profile's resting tone (None: the pipeline's is used).
        drop_margin, contraction_margin, strain_margin : float
            The margins around rest.

        Returns
        -------
        Zones
            With ``source="profile"``.

        Raises
        ------
        ValueError
            When a margin is not a positive finite number.
        """
        for label, v in (
            ("drop_margin", drop_margin),
            ("contraction_margin", contraction_margin),
            ("strain_margin", strain_margin),
        ):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{label} must be a positive number, {v!r} is invalid")
        return cls(
            rest, float(drop_margin), float(contraction_margin), float(strain_margin), "profile"
        )


@dataclass(frozen=True)
class StepInfo:
    """The protocol step now running."""

    name: str
    t_start: float
    t_end: float | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the views show as text, at one moment (see :meth:`LiveModel.snapshot`)."""

    now: float
    elapsed_s: float
    run_state: RunState | None
    step: StepInfo | None
    step_left_s: float | None
    pacer: BreathTarget | None
    pacer_level: float | None
    pacer_left_s: float | None
    cue: str | None
    pelvic_state: PelvicState
    pelvic_relative: float | None
    rest_level: float | None
    settling: bool
    breath_phase: BreathPhase
    rate_bpm: float | None
    reps: int
    total_reps: int
    last_rep: RepResult | None
    mean_score: float | None
    links: tuple[LinkStatus, ...]
    link_alerts: tuple[str, ...]
    stalled: tuple[str, ...]
    strain: bool
    quality: dict[str, Quality] = field(default_factory=dict)
    #: The pacer's current target in words (rate, inhale : exhale; where an
    #: adaptive pacer leads), None without a pacer.
    pacer_label: str | None = None
    #: The stream the breath comes from, and how far it can be trusted (0..1;
    #: None before it is judged).
    breath_source: str | None = None
    breath_trust: float | None = None
    #: The session has ended: how, and what was kept, in words (None while it runs).
    ended: str | None = None

    @property
    def pacer_words(self) -> tuple[str, str]:
        """The pacer's two lines: the action and how the floor should feel."""
        phase = self.pacer.phase if self.pacer is not None else BreathPhase.UNKNOWN
        return PACER_TEXT[phase]


def pacer_position(
    pacer: Pacer | None, t: float
) -> tuple[BreathTarget | None, float | None, float | None]:
    """Where the pacer is at ``t``: its target, its curve's level, seconds left in the phase.

    Parameters
    ----------
    pacer : Pacer or None
        The pacer shown (None: all three are None).
    t : float
        The time.

    Returns
    -------
    tuple
        ``(target, level, left_s)``.
    """
    if pacer is None:
        return None, None, None
    target = pacer.target(t)
    level = float(pacer.curve(np.array([t]))[0])
    dur = {
        BreathPhase.INHALE: target.inhale_s,
        BreathPhase.PAUSE: target.hold_s,
        BreathPhase.EXHALE: target.exhale_s,
    }.get(target.phase, 0.0)
    return target, level, max(0.0, (1.0 - target.progress) * dur)
