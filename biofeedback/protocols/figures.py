"""What a session counts from the pipeline's answers: its reps, and figures of the states.

The pipeline decides what a rep is (:mod:`biofeedback.signal.reps`); the
:class:`RepLog` keeps the reps it hands back, set by set. The
:class:`StateFigures` keep what the summary and the report take from the
pelvic and breath states: strain count, time in drop on the pacer's inhales,
the breath rate, the pelvic zones in use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from biofeedback.protocols.timeline import Segment
from biofeedback.signal.results import RepResult, RepSummary
from biofeedback.signal.types import BreathOutput, PelvicOutput
from devices.stream import StreamKind
from devices.vocab import PelvicState

__all__ = ["RepLog", "StateFigures"]


class RepLog:
    """The reps of a session, per set, and each set's summary."""

    def __init__(self) -> None:
        self.reps: list[RepResult] = []
        self.sets: list[dict[str, Any]] = []
        #: What the last set counted by (``"breath"`` or ``"pacer"``; None before a set).
        self.rep_clock: str | None = None
        self._set: list[RepResult] = []

    @property
    def in_set(self) -> int:
        """Reps of the current set so far."""
        return len(self._set)

    def start_set(self, rep_clock: str) -> None:
        """A set begins, counted by ``rep_clock``."""
        self._set = []
        self.rep_clock = rep_clock

    def add(self, rep: RepResult) -> int:
        """A rep of the current set; its number in the set."""
        self._set.append(rep)
        self.reps.append(rep)
        return len(self._set)

    def end_set(self, seg: Segment, t: float, t0: float, result: RepSummary) -> None:
        """The set of rep step ``seg`` ended at ``t``; the pipeline's summary of it."""
        self.sets.append(
            {
                "set": seg.step.set_index,
                "start_s": round(seg.t_start - t0, 3),
                "end_s": round(t - t0, 3),
                "target": seg.step.reps,
                "rep_clock": self.rep_clock,
                "summary": result.to_json(),
                "pipeline_reps": result.reps,
            }
        )


#: The pelvic zones in use: (stream, rest level, (drop, contraction, strain) margins, calibrated).
Zones = tuple[str, float | None, tuple[float, float, float], bool]


class StateFigures:
    """Figures of the pelvic and breath states over a session."""

    def __init__(self) -> None:
        self.strain_count = 0
        self.drop_unit: str | None = None
        self.last_rate: float | None = None
        self.breath_source: str | None = None
        self._trust_sum = 0.0
        self._trust_n = 0
        self.zones: Zones | None = None
        self._inhale_n = 0
        self._inhale_drop_n = 0
        self._rep_windows: list[Segment] = []

    def on_pelvic(self, pel: PelvicOutput, unit_of: Callable[[str], str | None]) -> None:
        """A pelvic output: zones, unit, strain events, drop on the pacer's inhales."""
        self.zones = (pel.stream, pel.rest_level, pel.margins, pel.calibrated)
        if self.drop_unit is None:
            self.drop_unit = unit_of(pel.stream)
        self.strain_count += sum(1 for ev in pel.events if ev.state == PelvicState.STRAIN)
        self._count_inhale_drop(pel.t - pel.delay_s, pel.state)

    def on_breath(self, br: BreathOutput) -> None:
        """A breath output: the rate (the probe's own ripple is no breath rate)."""
        if br.rate_bpm is not None and br.kind is not StreamKind.PRESSURE:
            self.last_rate = br.rate_bpm
        if br.trust is not None and br.t.shape[0]:
            # Weighted by samples: the trust of the breath the session actually had.
            self.breath_source = br.stream
            self._trust_sum += br.trust * br.t.shape[0]
            self._trust_n += br.t.shape[0]

    @property
    def breath_trust(self) -> float | None:
        """Mean trust of the breath source over the session (None: never judged)."""
        return self._trust_sum / self._trust_n if self._trust_n else None

    def open_window(self, seg: Segment) -> None:
        """A rep step began: its pacer's inhales count from now on."""
        self._rep_windows.append(seg)

    def close_window(self, seg: Segment, t: float) -> None:
        """The rep step ``seg`` ended at ``t``."""
        if self._rep_windows and self._rep_windows[-1].t_start == seg.t_start:
            self._rep_windows[-1] = replace(seg, t_end=t)

    @property
    def drop_on_inhale_pct(self) -> float | None:
        """Percent of the rep steps' inhale time spent in drop (None: none seen)."""
        return 100.0 * self._inhale_drop_n / self._inhale_n if self._inhale_n else None

    def zones_json(self, breath_source: str | None) -> dict[str, Any] | None:
        """The zones in use, as the report reads them (None: no pelvic output yet)."""
        if self.zones is None:
            return None
        stream, rest, (drop, con, strain), calibrated = self.zones
        return {
            "stream": stream,
            "rest_level": rest,
            "drop_margin": drop,
            "contraction_margin": con,
            "strain_margin": strain,
            "calibrated": calibrated,
            "unit": self.drop_unit,
            "breath_source": breath_source,
        }

    def _count_inhale_drop(self, t: Any, state: Any) -> None:
        """Time in drop during the pacer's inhales of the rep steps (per sample)."""
        for seg in self._rep_windows[-2:]:
            p = seg.pacer
            if p is None:
                continue
            m = (t >= seg.t_start) & (t < seg.reps_end)
            if not np.any(m):
                continue
            inh = p.in_inhale(t[m])
            known = state[m] != PelvicState.UNKNOWN
            sel = inh & known
            self._inhale_n += int(np.count_nonzero(sel))
            self._inhale_drop_n += int(np.count_nonzero(sel & (state[m] == PelvicState.DROP)))
