"""The pipeline facade: chunks in, breath, pelvic state, coupling and reps out.

::

    pipe = Pipeline(source.streams, thresholds=None)
    async for item in source:
        if isinstance(item, Chunk):
            update = pipe.process(item)
        else:
            pipe.on_link_event(item)

The breath source is picked by stream kind, best first: a respiration belt,
a chest accelerometer, the pressure probe's own breathing ripple, a raw ECG
(its respiratory modulations), then RR intervals (respiratory sinus
arrhythmia). If the source's device gives up, the next one takes over. The
pelvic state comes from the first pressure stream.

Pure computation: no I/O, no clock of its own (times come with the chunks),
never blocks. What is stored or shown (states, events, cycle scores, reps) is
the same however the streams are chunked, one call per stream or notification
by notification, as long as each stream's chunks come in time order and a
completed breath cycle is scored within the pelvic history (90 s); a cycle is
scored against the pelvic figures in effect at its end. A one-channel probe's
strain evidence, the breath hold, is judged per pressure sample from the
breath source's own timeline (:mod:`~biofeedback.signal.pelvic.hold`): the
same however chunked as long as the breath stream's chunks come no later than
the pressure's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from biofeedback.signal.breath import BreathTracker
from biofeedback.signal.coupling import CouplingScorer
from biofeedback.signal.pelvic import PelvicTracker, pressure_channels
from biofeedback.signal.pelvic.hold import BreathHold
from biofeedback.signal.pelvic.posture import PostureWatch
from biofeedback.signal.reps import RepClock, RepPolicy, RepWindow
from biofeedback.signal.results import (
    CouplingResult,
    PipelineStatus,
    PipelineUpdate,
    RepResult,
    RepSummary,
)
from biofeedback.signal.types import (
    BREATH_SOURCE_PRIORITY,
    BreathOutput,
    PelvicOutput,
    Thresholds,
)
from devices.pacer import Pacer
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamResolver, StreamSpec
from devices.vocab import BreathPhase, PelvicState

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

# code -> member, a list lookup instead of an enum call per chunk
_PELVIC_STATES = [PelvicState(i) for i in range(max(PelvicState) + 1)]
_BREATH_PHASES = [BreathPhase(i) for i in range(max(BreathPhase) + 1)]


class Pipeline:
    """Streaming breath and pelvic analysis over the streams of a session.

    Parameters
    ----------
    streams : sequence of StreamSpec
        Every stream that may arrive (from one or several sources).
    thresholds : Thresholds or None
        Calibrated pelvic thresholds (pressure units); None stays adaptive.

    Raises
    ------
    ValueError
        When ``thresholds`` are in another unit than the pressure stream.
    """

    def __init__(self, streams: Sequence[StreamSpec], thresholds: Thresholds | None = None) -> None:
        self._streams = tuple(streams)
        self._resolver = StreamResolver(self._streams)
        self._pelvic_spec = next(
            (s for s in self._streams if s.kind is StreamKind.PRESSURE and s.rate_hz), None
        )
        self.pelvic: PelvicTracker | None = None
        # the columns the tracker reads, main channel first (then the tip of a
        # two-sensor probe); None: the stream's own columns, as they are
        self._pelvic_cols: slice | list[int] | None = None
        if self._pelvic_spec is not None:
            spec = self._pelvic_spec
            main, tip = pressure_channels(spec.channels)
            cols = [main] if tip is None else [main, tip]
            if cols != list(range(max(1, len(spec.channels)))):
                contiguous = cols == list(range(cols[0], cols[0] + len(cols)))
                self._pelvic_cols = slice(cols[0], cols[0] + len(cols)) if contiguous else cols
            self.pelvic = PelvicTracker(
                float(spec.rate_hz or 0.0),
                len(cols),
                thresholds=thresholds,
                stream=spec.name,
                unit=spec.unit,
                tip=None if tip is None else 1,
            )
        self._candidates = [
            s
            for kind in BREATH_SOURCE_PRIORITY
            for s in self._streams
            if s.kind is kind and (kind is StreamKind.RR or s.rate_hz)
        ]
        self._pelvic_name = None if self._pelvic_spec is None else self._pelvic_spec.name
        self._given_up: set[str] = set()
        self.breath: BreathTracker | None = None
        self._hold: BreathHold | None = None  # the breath held, per sample
        self._posture: PostureWatch | None = None  # one channel + belt: posture steps
        self._breath_spec: StreamSpec | None = None
        self._breath_name: str | None = None
        # the status record, kept until a figure it shows changes (None: rebuild)
        self._status: PipelineStatus | None = None
        self._pick_breath()
        fs = float(self._pelvic_spec.rate_hz or 50.0) if self._pelvic_spec else 50.0
        self._scorer = CouplingScorer(fs_hint=min(fs, 50.0))
        self._reps = RepPolicy(fs_hint=min(fs, 50.0))
        self._t = -math.inf
        self._phase = BreathPhase.UNKNOWN
        self._pstate = PelvicState.UNKNOWN
        self._pconf = 0.0
        self._pquality = None if self.pelvic is None else self.pelvic.quality

    # ------------------------------------------------------------------ setup

    def _pick_breath(self) -> None:
        self._choose_breath()
        self._note_breath_figures()

    def _note_breath_figures(self) -> None:
        """Keep the breath figures the status shows (they change only when the
        breath tracker processes a chunk or is replaced or reset)."""
        b = self.breath
        self._status = None
        # (trust: None until the source's first chunk has been judged)
        self._bfig: tuple[float | None, float | None, float | None, float | None, float | None] = (
            (None, None, None, None, None)
            if b is None
            else (b.rate_bpm, b.depth, b.detector.regularity, b.delay_s, None)
        )

    def _choose_breath(self) -> None:
        for spec in self._candidates:
            if spec.name in self._given_up:
                continue
            if spec is self._breath_spec:
                return
            self._breath_spec = spec
            self._breath_name = spec.name
            self.breath = BreathTracker(
                spec.kind, spec.rate_hz, stream=spec.name, n_channels=max(1, len(spec.channels))
            )
            # (strain evidence for a one-channel probe only: two tell by the tip)
            one = self.pelvic is not None and not self.pelvic.two
            self._hold = BreathHold(self.breath.front.fs) if one else None
            # a belt's end-expiratory level tells a one-channel probe's posture steps
            belt = one and spec.kind is StreamKind.BREATH_FORCE and self.pelvic is not None
            self._posture = (
                PostureWatch(float(spec.rate_hz or 0.0), self.pelvic.fs)
                if belt and self.pelvic is not None
                else None
            )
            log.debug("breath source: %s (%s)", spec.name, spec.kind)
            return
        self._breath_spec = None
        self._breath_name = None
        self.breath = None
        self._hold = None
        self._posture = None

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The stream specs given at construction."""
        return self._streams

    @property
    def breath_source(self) -> str | None:
        """Name of the stream the breath comes from."""
        return None if self._breath_spec is None else self._breath_spec.name

    def set_thresholds(self, thresholds: Thresholds | None) -> None:
        """Switch to calibrated thresholds (None: back to adaptive)."""
        if self.pelvic is not None:
            self.pelvic.set_thresholds(thresholds)
            self._status = None  # (the rest level may come from them)

    # ------------------------------------------------------------------ reps

    def start_reps(
        self,
        target: int | None = None,
        *,
        pacer: Pacer | None = None,
        t_start: float | None = None,
        clock: RepClock = "auto",
    ) -> str:
        """Start counting a set (see :mod:`biofeedback.signal.reps` for what a rep is).

        Parameters
        ----------
        target : int, optional
            Reps at most.
        pacer : Pacer, optional
            The pacer the set follows (its ``t0`` the first inhale).
        t_start : float, optional
            When the set starts (default: the newest sample time seen).
        clock : {"auto", "breath", "pacer"}
            What a rep is: a detected breath cycle, or a paced cycle; ``auto``
            takes the pacer when there is no breath sensor (the probe's own
            breathing ripple is swamped by the drop being trained).

        Returns
        -------
        str
            The rep clock used: ``"breath"`` or ``"pacer"``.
        """
        if clock not in ("auto", "breath", "pacer"):
            raise ValueError(f"clock must be auto, breath or pacer, not {clock!r}")
        paced = clock == "pacer" or (clock == "auto" and pacer is not None and self._no_breath())
        window = RepWindow(self._t if t_start is None else t_start, target, pacer)
        self._reps.start(window, paced=paced)
        self._status = None
        return "pacer" if paced else "breath"

    def _no_breath(self) -> bool:
        """No breath sensor of its own: no breath source, or the probe's ripple."""
        spec = self._breath_spec
        return spec is None or spec.kind is StreamKind.PRESSURE

    def stop_reps(self) -> RepSummary:
        """Stop counting; the set's summary."""
        self._status = None
        return self._reps.stop()

    @property
    def reps(self) -> Sequence[RepResult]:
        """Reps of the current (or last) set."""
        return tuple(self._reps.reps)

    # ------------------------------------------------------------------ data

    def process(self, chunk: Chunk) -> PipelineUpdate:
        """Feed one chunk (causal; chunks of each stream in time order)."""
        sid = chunk.stream
        name = self._resolver.name(sid)
        breath_out: BreathOutput | None = None
        pelvic_out: PelvicOutput | None = None
        coupling: tuple[CouplingResult, ...] = ()
        reps: tuple[RepResult, ...] = ()
        t = chunk.t
        n = t.shape[0]
        if name is not None and n:
            t_end = t.item(n - 1)
            if name == self._pelvic_name:
                assert self.pelvic is not None
                values = chunk.values
                cols = self._pelvic_cols
                if cols is not None:
                    values = values[:, cols]
                pelvic_out = self.pelvic.process(
                    t, values, breath_hold=self._hold or False, posture=self._posture
                )
                self._scorer.add_pelvic(pelvic_out)
                self._reps.add_pelvic(pelvic_out)
                if pelvic_out.t.shape[0]:
                    self._pstate = _PELVIC_STATES[pelvic_out.state.item(-1)]
                    self._pconf = pelvic_out.confidence.item(-1)
                self._pquality = pelvic_out.quality
                self._status = None  # (the confidence moves with every sample)
            if name == self._breath_name:
                assert self.breath is not None
                breath_out = self.breath.process(t, chunk.values)
                if self._hold is not None:
                    self._hold.add(breath_out)
                if self._posture is not None:
                    self._posture.add_belt(t, chunk.values, breath_out.events, breath_out.polarity)
                self._note_breath(breath_out)
            if self._scorer.pending:
                coupling = tuple(self._scorer.ready())
            if self._reps.active and (coupling or self._reps.clock == "pacer"):
                reps = self._reps.offer(coupling)
                if reps:
                    self._status = None
            if t_end > self._t:
                self._t = t_end
                self._status = None
        # (positional: the field order of PipelineUpdate)
        return PipelineUpdate(sid, breath_out, pelvic_out, coupling, reps, self.status)

    def _note_breath(self, out: BreathOutput) -> None:
        """The figures and phase a breath chunk leaves; its onsets to the scorer."""
        fig = (out.rate_bpm, out.depth, out.regularity, out.delay_s, out.trust)
        if fig != self._bfig:
            self._bfig = fig
            self._status = None
        if out.events:
            self._scorer.add_breath(out.events)
        if out.phase.shape[0]:
            phase = _BREATH_PHASES[out.phase.item(-1)]
            if phase is not self._phase:
                self._phase = phase
                self._status = None

    def on_link_event(self, ev: LinkEvent) -> None:
        """A link was lost or came back: filters restart after the gap.

        ``given_up`` on the breath source's device hands the breath over to
        the next available source.
        """
        if ev.kind not in (LinkKind.LOST, LinkKind.CONNECTED, LinkKind.GIVEN_UP):
            return
        self._link_event(ev)
        self._note_breath_figures()  # a reset or a new source changes them

    def _link_event(self, ev: LinkEvent) -> None:
        affected = self._streams_of(ev.device)
        if ev.kind is LinkKind.GIVEN_UP:
            self._given_up |= affected
            if self._breath_spec is not None and self._breath_spec.name in affected:
                self._pick_breath()
                self._scorer.reset_breath()
            return
        if ev.kind is LinkKind.LOST:
            if (
                self.pelvic is not None
                and self._pelvic_spec is not None
                and self._pelvic_spec.name in affected
            ):
                self.pelvic.reset()
            if (
                self.breath is not None
                and self._breath_spec is not None
                and self._breath_spec.name in affected
            ):
                self.breath.reset()
                self._scorer.reset_breath()
                if self._hold is not None:
                    self._hold.reset()
                if self._posture is not None:
                    self._posture.reset()
        elif ev.kind is LinkKind.CONNECTED:
            # a device that comes back is usable again
            self._given_up -= affected
            if self._breath_spec is None or self._candidate_rank(affected) < self._candidate_rank(
                {self._breath_spec.name}
            ):
                self._breath_spec = None
                self._breath_name = None
                self._pick_breath()
                self._scorer.reset_breath()

    def _candidate_rank(self, names: set[str]) -> int:
        for i, spec in enumerate(self._candidates):
            if spec.name in names:
                return i
        return len(self._candidates)

    def _streams_of(self, device: str) -> set[str]:
        """Spec names of the streams that belong to ``device``."""
        return self._resolver.streams_of(device)

    # ------------------------------------------------------------------ status

    @property
    def status(self) -> PipelineStatus:
        """The latest figures (one record, kept while none of them changes)."""
        st = self._status
        if st is None:
            st = self._status = self._make_status()
        return st

    def _make_status(self) -> PipelineStatus:
        p = self.pelvic
        rate, depth, regularity, delay, trust = self._bfig
        return PipelineStatus(
            t=self._t,
            breath_source=self._breath_name,
            breath_phase=self._phase,
            rate_bpm=rate,
            depth=depth,
            regularity=regularity,
            breath_delay_s=delay,
            pelvic_state=self._pstate,
            pelvic_confidence=self._pconf,
            pelvic_quality=self._pquality,
            rest_level=None if p is None else p.rest_level,
            reps=len(self._reps.reps),
            reps_active=self._reps.active,
            breath_trust=trust,
        )
