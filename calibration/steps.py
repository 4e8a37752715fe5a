"""What a calibration is computed from: recorded step segments and detected breaths.

The caller (the guided runner in ``biofeedback``) records one segment per step
it prompted -- the times and the pressure values of that step, in the sensor's
own units, one channel -- and passes the breaths the pipeline's breath
detector found over the whole recording. Nothing here knows how they were
recorded.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACTION_KINDS",
    "BASELINE_KINDS",
    "BREATHING_KINDS",
    "CONTRACTION_KINDS",
    "BreathData",
    "BreathMark",
    "FloatArray",
    "StepKind",
    "StepSegment",
]

FloatArray = npt.NDArray[np.float64]


class StepKind(enum.StrEnum):
    """What the person was asked to do during a step."""

    READY = "ready"  # getting into position: not analysed
    REST = "rest"  # resting baseline (quick calibration)
    SQUEEZE = "squeeze"  # maximal voluntary contraction
    RELAX = "relax"  # rest between squeezes, flicks or holds
    DROP = "drop"  # slow inhale, letting the floor drop (reverse Kegel)
    RECOVER = "recover"  # the exhale after a drop: let it come back
    BREATHE = "breathe"  # free breathing: natural rate and depth
    PRE_BASELINE = "pre-baseline"  # assessment: 60 s rest before
    FLICK = "flick"  # assessment: quick (phasic) contraction
    HOLD = "hold"  # assessment: 10 s (tonic) contraction
    ENDURANCE = "endurance"  # assessment: 60 s sustained contraction
    POST_BASELINE = "post-baseline"  # assessment: 60 s rest after


#: Steps whose pressure is the resting tone (the first one present is used).
BASELINE_KINDS: tuple[StepKind, ...] = (StepKind.REST, StepKind.PRE_BASELINE)
#: Steps asking for a maximal contraction (MVC = best of them).
CONTRACTION_KINDS: tuple[StepKind, ...] = (StepKind.SQUEEZE, StepKind.FLICK, StepKind.HOLD)
#: Steps in which the person breathes freely (natural rate and depth).
BREATHING_KINDS: tuple[StepKind, ...] = (
    StepKind.REST,
    StepKind.BREATHE,
    StepKind.PRE_BASELINE,
    StepKind.POST_BASELINE,
)
#: Steps asking for an action (everything but rest and getting ready).
ACTION_KINDS: tuple[StepKind, ...] = (*CONTRACTION_KINDS, StepKind.ENDURANCE, StepKind.DROP)


@dataclass(frozen=True, eq=False)
class StepSegment:
    """The recording of one step: pressure of one channel, sensor units.

    Parameters
    ----------
    kind : StepKind
        What was asked.
    index : int
        1-based repetition number among the steps of this kind.
    t : ndarray, shape (n,)
        Sample times (seconds on the run's clock, increasing).
    values : ndarray, shape (n,)
        Pressure, the sensor's units (NaN for a missing sample).
    t_start, t_end : float, optional
        When the step was prompted and when it ended (default: the first and
        last sample). A step may hold few or no samples (a lost link): the
        planned times say how many there should have been.
    """

    kind: StepKind
    index: int
    t: FloatArray
    values: FloatArray
    t_start: float = math.nan
    t_end: float = math.nan

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1:
            v = v.reshape(v.shape[0], -1)[:, 0] if v.size else v.reshape(-1)
        if t.shape != v.shape:
            raise ValueError(f"t and values must have the same length, got {t.shape} and {v.shape}")
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise ValueError("t must be increasing")
        object.__setattr__(self, "kind", StepKind(self.kind))
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "values", v)
        if math.isnan(self.t_start):
            object.__setattr__(self, "t_start", float(t[0]) if t.size else math.nan)
        if math.isnan(self.t_end):
            object.__setattr__(self, "t_end", float(t[-1]) if t.size else math.nan)
        if not (math.isfinite(self.t_start) and math.isfinite(self.t_end)):
            raise ValueError("a step without samples needs its planned t_start and t_end")
        if self.t_end < self.t_start:
            raise ValueError(f"t_end {self.t_end} is before t_start {self.t_start}")

    @property
    def duration(self) -> float:
        """Planned length of the step, seconds."""
        return self.t_end - self.t_start

    @property
    def label(self) -> str:
        """``"squeeze 2"``: how a message names this step."""
        return f"{self.kind} {self.index}" if self.index > 0 else str(self.kind)


@dataclass(frozen=True)
class BreathMark:
    """One breath the caller's detector found.

    Parameters
    ----------
    inhale_onset, exhale_onset : float
        Onset times (back-dated), the run's clock.
    amplitude : float
        Peak minus the preceding trough, the breath source's units.
    """

    inhale_onset: float
    exhale_onset: float
    amplitude: float


@dataclass(frozen=True, eq=False)
class BreathData:
    """The breaths over the whole recording, and the signal they came from.

    Parameters
    ----------
    breaths : sequence of BreathMark
        In time order.
    source : str
        Which stream the breath came from (``"gdx-rb.force"``, or the pressure
        probe's own ripple).
    unit : str
        Unit of the amplitudes.
    t, values : ndarray, optional
        The raw breath signal (to tell a flat or absent sensor from a person
        holding still).
    from_pressure : bool
        The breath was taken from the pressure probe's ripple (no breath
        sensor): "no breathing" then names the probe, not a belt.
    """

    breaths: Sequence[BreathMark] = field(default_factory=tuple)
    source: str = ""
    unit: str = ""
    t: FloatArray | None = None
    values: FloatArray | None = None
    from_pressure: bool = False
