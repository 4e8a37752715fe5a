"""What the signal trackers report, and what sharpens them.

The vocabulary of the signal core (array aliases, :class:`Quality`,
:class:`Thresholds`, the breath sources' ranking) and the breath and pelvic
trackers' records; what the pipeline makes of them per breath cycle and per
chunk (coupling, reps, status, updates) is in :mod:`biofeedback.signal.results`.

These records are the pipeline's public contract: the session store, the live
view, the session engine and calibration code against them. They are plain
frozen dataclasses (arrays inside are never written to after they are
handed out) with ``to_json`` where a record is stored or printed.

Times are seconds on the run's clock, the same clock as :attr:`Chunk.t
<devices.stream.Chunk.t>`. Events are *back-dated*: ``t`` is when the event
happened in the signal, ``t_detected`` the time of the sample at which the
causal detector became sure of it; the difference is the detector's delay.

Codes per sample use the shared vocabulary :class:`devices.vocab.BreathPhase`
and :class:`devices.vocab.PelvicState` (the body model labels its ground truth
with the same codes).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from devices.stream import StreamKind
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "BREATH_SOURCE_PRIORITY",
    "Breath",
    "BreathEvent",
    "BreathOutput",
    "FloatArray",
    "Int8Array",
    "PelvicEvent",
    "PelvicFigures",
    "PelvicOutput",
    "Quality",
    "Thresholds",
    "json_number",
]

FloatArray = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]

#: Breath sources the pipeline can use, best first (belt > chest ACC > the
#: pressure probe's own breathing ripple > a raw ECG's fused modulations >
#: respiratory sinus arrhythmia from beat intervals alone).
BREATH_SOURCE_PRIORITY: tuple[StreamKind, ...] = (
    StreamKind.BREATH_FORCE,
    StreamKind.ACC,
    StreamKind.PRESSURE,
    StreamKind.ECG,
    StreamKind.RR,
)


def json_number(x: float | None) -> float | None:
    """A float for JSON (None for missing or non-finite)."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


class Quality(enum.StrEnum):
    """Signal quality of a stream, as the live view shows it.

    Worst first when several apply: ``probe_moved`` > ``clipped`` > ``flat`` >
    ``noisy`` > ``ok``.
    """

    OK = "ok"
    FLAT = "flat"  # no variation at all: sensor off, stuck, or link silent
    CLIPPED = "clipped"  # samples sit at a rail
    NOISY = "noisy"  # high-frequency noise large against the signal's own variation
    PROBE_MOVED = "probe_moved"  # a step in the baseline far outside physiology


@dataclass(frozen=True)
class Thresholds:
    """Calibrated pelvic thresholds, in the pressure stream's units.

    Every field is optional: what is missing stays adaptive (learned from the
    signal's noise and breathing ripple). Built from a calibration profile by
    the caller; the pipeline never reads files.

    Parameters
    ----------
    rest_level : float or None
        Resting tone. When given, it seeds the slow rest tracker (which still
        follows slow drift while the state is REST and the signal is steady).
    drop_margin : float or None
        How far below rest counts as a drop (positive number).
    contraction_margin : float or None
        How far above rest counts as a contraction (positive number).
    strain_margin : float or None
        How far above rest a rise with a breath hold (or a tip-over-base rise
        on a two-channel probe) counts as strain (positive number).
    unit : str or None
        Unit the numbers are in; when given, the pipeline checks it against the
        pressure stream's unit and refuses a mismatch with ``ValueError``.
    """

    rest_level: float | None = None
    drop_margin: float | None = None
    contraction_margin: float | None = None
    strain_margin: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        for name in ("drop_margin", "contraction_margin", "strain_margin"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, {v!r} is invalid")
        if self.rest_level is not None and not math.isfinite(self.rest_level):
            raise ValueError(f"rest_level must be finite, {self.rest_level!r} is invalid")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Thresholds:
        """Build from the mapping :meth:`to_json` gives (unknown keys ignored)."""
        keys = ("rest_level", "drop_margin", "contraction_margin", "strain_margin")
        kw: dict[str, Any] = {k: (None if d.get(k) is None else float(d[k])) for k in keys}
        unit = d.get("unit")
        return cls(**kw, unit=None if unit is None else str(unit))

    def to_json(self) -> dict[str, Any]:
        return {
            "rest_level": self.rest_level,
            "drop_margin": self.drop_margin,
            "contraction_margin": self.contraction_margin,
            "strain_margin": self.strain_margin,
            "unit": self.unit,
        }


# --------------------------------------------------------------------------- breath


@dataclass(frozen=True)
class BreathEvent:
    """An inhale or exhale onset.

    Parameters
    ----------
    phase : BreathPhase
        ``INHALE`` for an inhale onset, ``EXHALE`` for an exhale onset.
    t : float
        When it happened (back-dated), run's clock.
    t_detected : float
        Time of the sample at which the detector confirmed it.
    level : float
        Value of the cleaned breath signal at ``t`` (inhale = up), source units.
    """

    phase: BreathPhase
    t: float
    t_detected: float
    level: float

    @property
    def delay(self) -> float:
        """Detection delay of this event, seconds."""
        return self.t_detected - self.t

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase.name.lower(),
            "t": self.t,
            "t_detected": self.t_detected,
            "level": json_number(self.level),
        }


@dataclass(frozen=True)
class Breath:
    """One breath, reported when its exhale onset is confirmed.

    Parameters
    ----------
    inhale_onset, exhale_onset : float
        Back-dated onset times, run's clock.
    amplitude : float
        Peak minus the preceding trough of the cleaned signal, source units.
    depth : float
        ``amplitude`` relative to the typical amplitude of the recent breaths
        (1.0 = typical). NaN until a typical amplitude exists.
    t_detected : float
        When the exhale onset was confirmed.
    peak : float
        The end of inspiration: the top of the breath, back-dated (where an
        annotator marks the breath; before ``exhale_onset`` by a hold at the
        top). NaN when the detector did not place it.
    """

    inhale_onset: float
    exhale_onset: float
    amplitude: float
    depth: float
    t_detected: float
    peak: float = math.nan

    @property
    def inhale_s(self) -> float:
        """Duration of the inhale, seconds."""
        return self.exhale_onset - self.inhale_onset

    def to_json(self) -> dict[str, Any]:
        return {
            "inhale_onset_s": self.inhale_onset,
            "exhale_onset_s": self.exhale_onset,
            "peak_s": json_number(self.peak),
            "depth": json_number(self.depth),
            "amplitude": json_number(self.amplitude),
        }


class BreathOutput(NamedTuple):
    """The breath detector's output for one chunk of its source stream.

    A named tuple, as :class:`~biofeedback.signal.results.PipelineStatus`
    is: one is built for every chunk, and a frozen dataclass of this many
    fields costs about three times as much to build (built with keywords
    all the same; compare outputs by their fields, not with ``==``).

    Parameters
    ----------
    stream : str
        The source stream (``Chunk.stream``).
    kind : StreamKind
        The source's kind (belt, ACC, pressure ripple, RR).
    t : ndarray, shape (n,)
        Times of the output samples: the source's times, block-averaged to a
        working rate of 25-50 Hz (a 50 Hz belt gives 25 Hz, 200 Hz ACC 25 Hz);
        for RR, a 4 Hz grid the intervals were resampled onto.
    signal : ndarray, shape (n,)
        The cleaned breath signal, polarity-corrected (inhale = up), source
        units (for ACC: the projection on the breathing axis).
    phase : ndarray of int8, shape (n,)
        :class:`BreathPhase` code per sample as known causally at that sample
        (it lags the truth by about the filter delay).
    events : tuple of BreathEvent
        Onsets confirmed in this chunk (back-dated, may lie in earlier chunks).
    breaths : tuple of Breath
        Breaths whose exhale onset was confirmed in this chunk.
    rate_bpm : float or None
        Breath rate over the recent breaths, breaths per minute.
    depth : float or None
        Relative depth of the latest breath (1.0 = typical).
    regularity : float or None
        0..1; 1 - coefficient of variation of the recent breath periods.
    polarity : int
        +1 when inhale raises the raw signal, -1 when it lowers it, 0 while
        still undecided.
    delay_s : float
        The detector's typical delay (mean of ``t_detected - t`` over recent
        events; before any event, the filter's group delay).
    quality : Quality
        Quality of the source over this chunk.
    midline : float
        The level taken off this chunk's cleaned signal before the polarity
        (``signal = (cleaned - midline) * sign``): it moves at every breath, so
        a display that keeps history re-centres all of it on the latest one.
    trust : float or None
        0..1: how far the breaths of this source can be trusted now -- the
        source kind's agreement with human breath marks (a belt most, a rate
        from heartbeat intervals least) times what the quality leaves of it.
        None when not assessed.
    """

    stream: str
    kind: StreamKind
    t: FloatArray
    signal: FloatArray
    phase: Int8Array
    events: tuple[BreathEvent, ...]
    breaths: tuple[Breath, ...]
    rate_bpm: float | None
    depth: float | None
    regularity: float | None
    polarity: int
    delay_s: float
    quality: Quality
    midline: float = 0.0
    trust: float | None = None


# --------------------------------------------------------------------------- pelvic


@dataclass(frozen=True)
class PelvicEvent:
    """A change of pelvic state.

    Parameters
    ----------
    state : PelvicState
        The new state.
    t : float
        When the signal entered it (back-dated to the threshold crossing).
    t_detected : float
        When the change was confirmed (after the minimum dwell).
    """

    state: PelvicState
    t: float
    t_detected: float

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.name.lower(), "t": self.t, "t_detected": self.t_detected}


@dataclass(frozen=True)
class PelvicFigures:
    """The pelvic tracker's figures from a sample on (they change at its
    rest-update block ends only, so the same samples get the same figures
    however the stream is chunked).

    Parameters
    ----------
    t_from : float
        Time of the first sample they apply to.
    rest_level : float
        The resting tone (base channel), stream units.
    margins : tuple of float
        ``(drop, contraction, strain)`` margins, stream units.
    """

    t_from: float
    rest_level: float
    margins: tuple[float, float, float]


class PelvicOutput(NamedTuple):
    """The pelvic state tracker's output for one chunk of the pressure stream
    (a named tuple, one per chunk: see :class:`BreathOutput`).

    Parameters
    ----------
    stream : str
        The pressure stream.
    t : ndarray, shape (n,)
        Sample times.
    level : ndarray, shape (n,)
        Smoothed pressure of the base channel (the only one on a one-channel
        probe), stream units.
    relative : ndarray, shape (n,)
        ``level`` minus the resting tone (negative = below rest); NaN while no
        resting tone is known yet.
    state : ndarray of int8, shape (n,)
        :class:`PelvicState` code per sample (UNKNOWN while settling).
    confidence : ndarray, shape (n,)
        0..1 per sample: how far past its threshold the signal is, scaled by
        quality.
    rest_level : float or None
        The resting tone now (base channel), stream units.
    margins : tuple of float
        ``(drop, contraction, strain)`` margins in use now, stream units.
    noise : float
        The learned noise level (standard deviation), stream units.
    quality : Quality
        Quality over this chunk (worst of the channels).
    events : tuple of PelvicEvent
        State changes confirmed in this chunk.
    calibrated : bool
        True when a :class:`Thresholds` object is in use.
    delay_s : float
        Reporting lag of a state change (filter delay plus minimum dwell).
    figures : tuple of PelvicFigures
        The figures that took effect in this chunk, oldest first (empty: the
        ones in effect before still hold); what a breath cycle is scored
        against.
    """

    stream: str
    t: FloatArray
    level: FloatArray
    relative: FloatArray
    state: Int8Array
    confidence: FloatArray
    rest_level: float | None
    margins: tuple[float, float, float]
    noise: float
    quality: Quality
    events: tuple[PelvicEvent, ...]
    calibrated: bool
    delay_s: float
    figures: tuple[PelvicFigures, ...] = ()
