"""What the pipeline makes of the trackers' outputs: scores, reps, status, updates.

:class:`CouplingResult` scores one breath cycle, :class:`RepResult` and
:class:`RepSummary` are the reps of a set, :class:`PipelineStatus` the latest
figures and :class:`PipelineUpdate` what one chunk produced;
:class:`PipelineAPI` is the pipeline's signature. The trackers' own records
and the shared vocabulary are in :mod:`biofeedback.signal.types`; the same
conventions hold (frozen records, back-dated times, ``to_json`` where stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from biofeedback.signal.types import (
    BreathOutput,
    PelvicOutput,
    Quality,
    Thresholds,
    json_number,
)
from devices.stream import Chunk, LinkEvent, StreamSpec
from devices.vocab import BreathPhase, PelvicState

if TYPE_CHECKING:
    from devices.pacer import Pacer

__all__ = [
    "CouplingResult",
    "PipelineAPI",
    "PipelineStatus",
    "PipelineUpdate",
    "RepResult",
    "RepSummary",
]


# --------------------------------------------------------------------------- coupling, reps


@dataclass(frozen=True)
class CouplingResult:
    """How the pelvic floor moved with one breath cycle.

    Done right: the floor drops below rest on the inhale, keeps most of the
    release on the exhale, and never strains. A pressure rise is never
    rewarded.

    Parameters
    ----------
    inhale_onset, exhale_onset, end : float
        The cycle: inhale onset, exhale onset, next inhale onset.
    rest_level : float
        Resting tone used, stream units.
    inhale_level, exhale_level : float
        Mean pelvic level relative to rest during the inhale / the exhale
        (negative = below rest), stream units.
    drop : float
        How far below rest the floor went during the inhale (>= 0), stream units.
    drop_ratio : float
        ``drop`` over the drop margin (1.0 = just a drop).
    release_kept : float
        0..1, fraction of the inhale's drop still held through the exhale.
    strain : bool
        Strain was seen during the cycle.
    contracted : bool
        A contraction was seen during the cycle.
    score : float
        0..100.
    reasons : tuple of str
        Why points were lost (empty for a perfect cycle), e.g.
        ``"drop too small"``, ``"contracted on exhale"``, ``"strain"``.
    """

    inhale_onset: float
    exhale_onset: float
    end: float
    rest_level: float
    inhale_level: float
    exhale_level: float
    drop: float
    drop_ratio: float
    release_kept: float
    strain: bool
    contracted: bool
    score: float
    reasons: tuple[str, ...]

    @property
    def good(self) -> bool:
        """A cycle done right (score >= 70, no strain, no contraction)."""
        return self.score >= 70.0 and not self.strain and not self.contracted

    def to_json(self) -> dict[str, Any]:
        return {
            "inhale_onset": self.inhale_onset,
            "exhale_onset": self.exhale_onset,
            "end": self.end,
            "rest_level": json_number(self.rest_level),
            "inhale_level": json_number(self.inhale_level),
            "exhale_level": json_number(self.exhale_level),
            "drop": json_number(self.drop),
            "drop_ratio": json_number(self.drop_ratio),
            "release_kept": json_number(self.release_kept),
            "strain": self.strain,
            "contracted": self.contracted,
            "score": json_number(self.score),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class RepResult:
    """One rep: one guided breath cycle, counted and scored.

    Parameters
    ----------
    index : int
        1-based rep number within the set.
    coupling : CouplingResult
        The breath cycle's coupling figures.
    score : float
        0..100 (the coupling score).
    good : bool
        Done right (see :attr:`CouplingResult.good`).
    reasons : tuple of str
        Why points were lost.
    """

    index: int
    coupling: CouplingResult
    score: float
    good: bool
    reasons: tuple[str, ...]

    @property
    def t_start(self) -> float:
        return self.coupling.inhale_onset

    @property
    def t_end(self) -> float:
        return self.coupling.end

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "score": json_number(self.score),
            "good": self.good,
            "reasons": list(self.reasons),
            "coupling": self.coupling.to_json(),
        }


@dataclass(frozen=True)
class RepSummary:
    """Summary figures of a set of reps.

    Parameters
    ----------
    reps : int
        Reps counted.
    good : int
        Reps done right.
    strain : int
        Reps with strain.
    contracted : int
        Reps with a contraction.
    mean_score, best_score : float or None
        Scores 0..100 (None without reps).
    mean_drop : float or None
        Mean drop below rest during the inhales, stream units.
    mean_release_kept : float or None
        Mean fraction of the release kept through the exhales.
    mean_cycle_s : float or None
        Mean breath-cycle length, seconds.
    reasons : dict of str to int
        How often each reason came up.
    """

    reps: int
    good: int
    strain: int
    contracted: int
    mean_score: float | None
    best_score: float | None
    mean_drop: float | None
    mean_release_kept: float | None
    mean_cycle_s: float | None
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "reps": self.reps,
            "good": self.good,
            "strain": self.strain,
            "contracted": self.contracted,
            "mean_score": json_number(self.mean_score),
            "best_score": json_number(self.best_score),
            "mean_drop": json_number(self.mean_drop),
            "mean_release_kept": json_number(self.mean_release_kept),
            "mean_cycle_s": json_number(self.mean_cycle_s),
            "reasons": dict(self.reasons),
        }


# --------------------------------------------------------------------------- pipeline


class PipelineStatus(NamedTuple):
    """The latest scalar figures, for a UI that reads at its own frame rate.

    A named tuple, not a frozen dataclass like the other records: one is built
    for every chunk, and a tuple is built several times faster (with keywords
    all the same: the cost is in the class, not in naming the fields).

    Parameters
    ----------
    t : float
        Time of the newest sample processed (any stream), run's clock.
    breath_source : str or None
        The stream the breath comes from (None without one).
    breath_phase : BreathPhase
        Phase at the newest breath sample.
    rate_bpm, depth, regularity : float or None
        As in :class:`BreathOutput`.
    breath_delay_s : float or None
        The breath detector's delay.
    pelvic_state : PelvicState
        State at the newest pressure sample.
    pelvic_confidence : float
        0..1.
    pelvic_quality : Quality or None
        None without a pressure stream.
    rest_level : float or None
        Resting tone, pressure units.
    reps : int
        Reps counted in the current set.
    reps_active : bool
        Whether a set is being counted.
    breath_trust : float or None
        0..1, how far the breath source's breaths can be trusted now
        (:attr:`BreathOutput.trust`); None before it is judged or without a source.
    """

    t: float
    breath_source: str | None
    breath_phase: BreathPhase
    rate_bpm: float | None
    depth: float | None
    regularity: float | None
    breath_delay_s: float | None
    pelvic_state: PelvicState
    pelvic_confidence: float
    pelvic_quality: Quality | None
    rest_level: float | None
    reps: int
    reps_active: bool
    breath_trust: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "breath_source": self.breath_source,
            "breath_phase": self.breath_phase.name.lower(),
            "rate_bpm": json_number(self.rate_bpm),
            "depth": json_number(self.depth),
            "regularity": json_number(self.regularity),
            "breath_delay_s": json_number(self.breath_delay_s),
            "pelvic_state": self.pelvic_state.name.lower(),
            "pelvic_confidence": self.pelvic_confidence,
            "pelvic_quality": None if self.pelvic_quality is None else str(self.pelvic_quality),
            "rest_level": json_number(self.rest_level),
            "reps": self.reps,
            "reps_active": self.reps_active,
            "breath_trust": json_number(self.breath_trust),
        }


class PipelineUpdate(NamedTuple):
    """What one :meth:`Pipeline.process` call produced (a named tuple, as
    :class:`PipelineStatus` is: one per chunk).

    Parameters
    ----------
    stream : str
        The chunk's stream.
    breath : BreathOutput or None
        Set when the chunk was the breath source (for a pressure stream that is
        also the breath source, both ``breath`` and ``pelvic`` are set).
    pelvic : PelvicOutput or None
        Set when the chunk was the pelvic pressure stream.
    coupling : tuple of CouplingResult
        Breath cycles completed by this chunk.
    reps : tuple of RepResult
        Reps counted by this chunk (only while a set is active).
    status : PipelineStatus
        The latest figures over all streams.
    """

    stream: str
    breath: BreathOutput | None
    pelvic: PelvicOutput | None
    coupling: tuple[CouplingResult, ...]
    reps: tuple[RepResult, ...]
    status: PipelineStatus


class PipelineAPI(Protocol):
    """The signature of :class:`biofeedback.signal.pipeline.Pipeline`.

    ``Pipeline(streams: Sequence[StreamSpec], thresholds: Thresholds | None =
    None)``; chunks of streams not in ``streams`` (or not used) give an update
    with neither ``breath`` nor ``pelvic``. Chunk stream ids match a spec by
    its name or by ``"<device>/<name>"``.
    """

    def process(self, chunk: Chunk) -> PipelineUpdate:
        """Feed one chunk (causal; chunks of each stream in time order)."""
        ...

    def on_link_event(self, ev: LinkEvent) -> None:
        """A link was lost or came back: filters restart after the gap."""
        ...

    def set_thresholds(self, thresholds: Thresholds | None) -> None:
        """Switch to calibrated thresholds (None: back to adaptive)."""
        ...

    def start_reps(
        self,
        target: int | None = None,
        *,
        pacer: Pacer | None = None,
        t_start: float | None = None,
        clock: Literal["auto", "breath", "pacer"] = "auto",
    ) -> str:
        """Start counting a set (the rep policy of :mod:`biofeedback.signal.reps`);
        returns the rep clock used, ``"breath"`` or ``"pacer"``."""
        ...

    def stop_reps(self) -> RepSummary:
        """Stop counting; the set's summary."""
        ...

    @property
    def status(self) -> PipelineStatus:
        """The latest figures."""
        ...

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The stream specs given at construction."""
        ...
