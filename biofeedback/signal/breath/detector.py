"""The breath detector: the stages of :mod:`.stages` and :mod:`.figures`, run causally.

Per chunk of the cleaned breath signal ``y``: the detection signal ``d`` (``y``
about its midline) and its hysteresis; then, stretch by stretch, the next
sample that confirms an extremum (the kernel), the extreme of ``y`` in the
stretch, the phase labels of the stretch, and at each confirmation the event:
its onset (the foot, back-dated by the cleaning's delay), polarity evidence,
figures and the breath record. State lives in small objects that change per
sample through kept filter state or at events only, so any chunking gives the
same output.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from biofeedback.signal.breath.figures import BreathFigures, PhaseLabeller, slope_threshold
from biofeedback.signal.breath.polarity import PolarityVote, polarity_evidence
from biofeedback.signal.breath.stages import (
    TURN_S,
    DetectionSignal,
    RecentSwings,
    Search,
    band_delay_s,
    onset_time,
    scan_swing,
)
from biofeedback.signal.filters import FloatArray, RingBuffer, noise_sd
from biofeedback.signal.types import Breath, BreathEvent, Int8Array
from devices.vocab import BreathPhase

__all__ = ["BreathDetector", "Extremum"]


@dataclass(frozen=True, slots=True)
class Extremum:
    """A confirmed peak or trough of the cleaned signal (raw orientation)."""

    kind: int  # +1 peak, -1 trough
    idx: int  # global index of the extreme sample
    value: float
    t: float  # its onset, back-dated
    phase: BreathPhase  # the onset it was reported as


@dataclass(slots=True)
class Boot:
    """Learning the signal's size before the first detection."""

    at: int  # global index of the next check
    started: bool = False
    amplitude: float = math.nan  # p5-p95 range of the boot window


@dataclass(slots=True)
class Timing:
    """Back-dating: the cleaning's delay at the current breath frequency."""

    delay: Callable[[float], float] | None
    band_delay: Callable[[float], float]  # the detection band's, on top of the cleaning's
    period: float = -1.0  # the period ``comp`` is for
    comp: float = 0.0
    comp_band: float = 0.0
    t_first: float = -math.inf  # the stream's first sample
    events: deque[Extremum] = field(default_factory=lambda: deque(maxlen=4))

    def compensation(self, period: float, *, band: bool = False) -> float:
        """The delay to take off an event found on the cleaned signal (``band``: on ``d``)."""
        if period != self.period and not (math.isnan(period) and math.isnan(self.period)):
            self.period = period
            f = 1.0 / period if math.isfinite(period) and period > 0 else 0.25
            self.comp = self.delay(f) if self.delay is not None else 0.0
            self.comp_band = self.comp + self.band_delay(f)
        return self.comp_band if band else self.comp


class BreathDetector:
    """Causal breath onset detector on a cleaned breath signal.

    Parameters
    ----------
    fs : float
        Rate of the cleaned signal.
    polarity : int or None
        +1 (inhale rises) or -1 (inhale falls) to fix it; None to detect it.
    prior : int
        Polarity assumed while undecided (0 labels as +1 but decides freely;
        +1 or -1 need stronger contrary evidence to flip).
    delay : callable, optional
        ``f_hz -> seconds``: the cleaning's delay at the breath frequency,
        subtracted from event times (back-dating).
    boot_s : float
        Signal needed before the first detection (to learn its size).
    history_s : float
        Signal kept for back-dating and the polarity evidence.
    noise_gain : float
        Factor from the raw signal's white noise to the cleaned signal's.
    """

    def __init__(
        self,
        fs: float,
        *,
        polarity: int | None = None,
        prior: int = 0,
        delay: Callable[[float], float] | None = None,
        boot_s: float = 1.5,
        history_s: float = 60.0,
        noise_gain: float = 1.0,
    ) -> None:
        if not fs > 0:
            raise ValueError(f"fs must be a strictly positive number, {fs!r} is invalid")
        if polarity not in (None, 1, -1):
            raise ValueError(f"polarity must be +1, -1 or None, {polarity!r} is invalid")
        self.fs = fs
        self._fixed = polarity
        self._boot_n = max(8, round(boot_s * fs))
        self._ring = RingBuffer(max(round(history_s * fs), 2 * self._boot_n), aux=True)
        self._d_ring = RingBuffer(self._ring.capacity)  # the detection signal, same samples
        self._noise_gain = noise_gain
        self._noise_n = max(16, round(10.0 * fs))  # raw samples the noise is measured on
        self._window = max(64, round(8.0 * fs))  # samples the search looks at per step
        self.figures = BreathFigures()
        self.swings = RecentSwings()
        self.vote = PolarityVote(polarity if polarity is not None else prior, prior)
        self.labeller = PhaseLabeller(fs)
        self._timing = Timing(delay, band_delay_s(fs))
        self._start()

    def _start(self) -> None:
        """(Re)start the per-run state; learned figures are kept."""
        self._signal = DetectionSignal(self.fs)
        self._search = Search(turn_n=max(1, round(TURN_S * self.fs)))
        self._boot = Boot(at=self._ring.total + self._boot_n - 1)
        self._timing.events.clear()
        self._timing.t_first = -math.inf
        self.labeller.reset()
        self._n_events = 0
        self.last_event_t = -math.inf  # when the last onset was confirmed
        self.last_move_t = -math.inf  # when the signal last moved like breathing

    def reset(self) -> None:
        """A gap in the signal: start over, keeping what was learned about the person."""
        self._ring.clear()
        self._d_ring.clear()
        self._start()

    # ------------------------------------------------------------------ figures

    @property
    def polarity(self) -> int:
        """+1 inhale rises, -1 falls, 0 undecided."""
        return self.vote.polarity

    @property
    def sign(self) -> int:
        """+1 or -1: how to turn the raw signal so inhale is up."""
        return -1 if self.vote.polarity < 0 else 1

    @property
    def period_s(self) -> float:
        return self.figures.period_s

    @property
    def amplitude(self) -> float:
        a = self.figures.amplitude
        return a if math.isfinite(a) else self._boot.amplitude

    @property
    def delay_s(self) -> float:
        return self.figures.delay_s

    @property
    def regularity(self) -> float | None:
        return self.figures.regularity

    def rate_bpm(self, now: float) -> float | None:
        return self.figures.rate_bpm(now)

    @property
    def midline(self) -> float:
        """Level halfway between the last trough and peak (display centre).

        Before the first trough and peak, halfway between the lowest and the
        highest level since the start (0 before any sample): a centre of 0
        would show the uncentred level for the first breath, and the whole
        trace would jump when the first midline came (issue 14.4).
        """
        ev = self._timing.events
        if len(ev) >= 2:
            return 0.5 * (ev[-1].value + ev[-2].value)
        _, y = self._ring.last()
        return 0.5 * (float(y.min()) + float(y.max())) if y.shape[0] else 0.0

    @property
    def noise_raw(self) -> float:
        """Noise SD of the raw signal (0 before it was measured)."""
        return self.swings.noise / self._noise_gain if self._noise_gain > 0 else 0.0

    # ------------------------------------------------------------------ processing

    def process(
        self, t: FloatArray, y: FloatArray, raw: FloatArray
    ) -> tuple[list[BreathEvent], list[Breath], Int8Array]:
        """Detect in one chunk of the cleaned signal.

        Parameters
        ----------
        t, y : ndarray, shape (n,)
            Times and cleaned breath signal.
        raw : ndarray, shape (n,)
            The signal before cleaning, at the same rate (its noise is
            measured at events and scaled by ``noise_gain``).

        Returns
        -------
        events : list of BreathEvent
            Onsets confirmed in this chunk (back-dated).
        breaths : list of Breath
            Breaths completed (exhale onset confirmed) in this chunk.
        phase : ndarray of int8, shape (n,)
            Phase per sample.
        """
        events: list[BreathEvent] = []
        breaths: list[Breath] = []
        piece = self._ring.capacity // 2  # the history must hold a whole piece
        if 0 < t.shape[0] <= piece:  # (a live chunk: one piece)
            return events, breaths, self._piece(t, y, raw, events, breaths)
        phases = [
            self._piece(t[i : i + piece], y[i : i + piece], raw[i : i + piece], events, breaths)
            for i in range(0, t.shape[0], piece)
        ]
        return events, breaths, np.concatenate(phases) if phases else np.empty(0, np.int8)

    def _piece(
        self,
        t: FloatArray,
        y: FloatArray,
        raw: FloatArray,
        events: list[BreathEvent],
        breaths: list[Breath],
    ) -> Int8Array:
        n = t.shape[0]
        if self._timing.t_first == -math.inf:
            self._timing.t_first = float(t[0])
        g0 = self._ring.total
        self._ring.append(t, y, raw)
        d, level = self._signal.process(y)
        self._d_ring.append(t, d)
        start = 0 if self._boot.started else self._try_boot(g0, n)
        phase = np.empty(n, dtype=np.int8)
        if start > 0:
            phase[:start] = self.labeller.label(y[:start], known=False)
        p = start
        if p < n and self._search.mode == 0:  # detection starts: on this side of the midline
            self._search.restart(1 if d[p] >= 0 else -1, g0 + p, float(y[p]), float(d[p]))
            self._search.fresh = True
        while p < n:
            q = min(n, p + self._window)
            mode = self._search.mode
            bounds = self.swings.bounds()
            c, h_c = scan_swing(self._search, d[p:q], y[p:q], level[p:q], g0 + p, bounds)
            end = p + c + 1 if c >= 0 else q
            phase[p:end] = self.labeller.label(y[p:end])
            if self.labeller.last_move >= 0:
                self.last_move_t = float(t[p + self.labeller.last_move])
            if c >= 0:
                if self._search.fresh and abs(self._search.top_d) < h_c:
                    # the first swing never went past the hysteresis: no extreme yet
                    self._search.restart(-mode, g0 + p + c, float(y[p + c]), float(d[p + c]))
                else:
                    self._confirm(g0 + p + c, float(y[p + c]), float(d[p + c]), events, breaths)
            p = end
        return phase

    def _try_boot(self, g0: int, n: int) -> int:
        """Boot checks due in this piece; the local index detection starts at (n: not yet)."""
        boot = self._boot
        while boot.at < g0 + n:
            w = self._ring.x(max(self._ring.first, boot.at - self._boot_n + 1), boot.at + 1)
            p5, p95 = np.percentile(w, [5.0, 95.0])
            rng = float(p95 - p5)
            sigma = self._noise_at(boot.at)
            if rng > 0 and rng > 8.0 * sigma:
                boot.started, boot.amplitude = True, rng
                self.swings.noise = sigma
                self._set_labels()
                return boot.at + 1 - g0
            boot.at += self._boot_n // 2
        return n

    def _noise_at(self, g: int) -> float:
        """Noise SD of the cleaned signal, measured on the raw samples up to global ``g``."""
        lo = max(self._ring.first, g + 1 - self._noise_n)
        r = self._ring.aux_storage()[lo - self._ring.first : g + 1 - self._ring.first]
        return noise_sd(r) * self._noise_gain

    def _set_labels(self) -> None:
        p = self.labeller.params
        amp = self.amplitude
        p.theta = slope_threshold(amp, self.figures.period_s, self.labeller.slope_dt)
        p.band = 0.2 * amp
        p.sign = self.sign

    def _confirm(
        self, g: int, y_g: float, d_g: float, events: list[BreathEvent], breaths: list[Breath]
    ) -> None:
        """Sample ``g`` confirmed the extremum sought."""
        search = self._search
        kind = search.mode
        if self._n_events % 8 == 0:  # the noise changes slowly: every eighth event
            self.swings.noise = self._noise_at(g)
        self._n_events += 1
        self.swings.add(search.swing)
        if search.turned:
            self._turn_extreme(search)
        ext = self._event(kind, search.ext_i, search.ext_v, g, events, breaths)
        self._timing.events.append(ext)
        self._set_labels()
        if ext.phase is BreathPhase.EXHALE:
            self.labeller.exhale_onset()
        turned, since = search.turned, search.ext_i + 1
        search.restart(-kind, g, y_g, d_g)
        if turned:  # confirmed at the next extreme: it lies behind us, take it in
            lo = max(since, self._ring.first)
            search.extend(self._ring.x(lo, g + 1), self._d_ring.x(lo, g + 1), lo)
            search.swing, search.start_i = abs(search.top_d), lo

    def _turn_extreme(self, search: Search) -> None:
        """A turn's extreme: the extreme of ``y`` before the turn.

        The turn is seen on the detection signal, which lags ``y``; by the
        time it has turned again, ``y`` may have run past the level of the
        extreme it turned from (a shallow breath after a deep one, on a
        sinking baseline), and the running extreme would be the next one.
        """
        lo = max(search.start_i, self._ring.first)
        w = self._ring.x(lo, search.back_i + 1)
        if w.shape[0]:
            j = int(w.argmax()) if search.mode > 0 else int(w.argmin())
            search.ext_i, search.ext_v = lo + j, float(w[j])

    def _event(
        self,
        kind: int,
        i_ext: int,
        v_ext: float,
        g: int,
        events: list[BreathEvent],
        breaths: list[Breath],
    ) -> Extremum:
        """The event for the extreme at ``i_ext`` confirmed at ``g``: onset, figures, records."""
        ring, fig, timing = self._ring, self.figures, self._timing
        t_conf = float(ring.t(g, g + 1)[0])
        prev = timing.events[-1] if timing.events else None
        a = timing.events[-2] if len(timing.events) >= 2 else None
        if a is not None and a.kind != kind:
            a = None
        if self._fixed is None and a is not None and prev is not None and a.idx >= ring.first:
            self._vote(a, i_ext)
        inhale = kind == (-1 if self.vote.polarity >= 0 else 1)
        t_ev = max(self._onset_time(kind, i_ext, g), timing.t_first)
        if prev is not None:
            t_ev = max(t_ev, prev.t + 1e-3)  # onsets in order
            fig.add_swing(abs(v_ext - prev.value))
        if a is not None:
            fig.add_period(t_ev - a.t)
        ph = BreathPhase.INHALE if inhale else BreathPhase.EXHALE
        fig.add_delay(t_conf - t_ev)
        self.last_event_t = t_conf
        level = -v_ext if self.vote.polarity < 0 else v_ext
        events.append(BreathEvent(phase=ph, t=t_ev, t_detected=t_conf, level=level))
        if inhale:
            fig.add_inhale_onset(t_ev)
        elif prev is not None and prev.phase is BreathPhase.INHALE:
            size = abs(v_ext - prev.value)
            breaths.append(
                Breath(
                    inhale_onset=prev.t,
                    exhale_onset=t_ev,
                    peak=min(max(self._top_time(), prev.t), t_ev),
                    amplitude=size,
                    depth=fig.depth(size),
                    t_detected=t_conf,
                )
            )
        return Extremum(kind=kind, idx=i_ext, value=v_ext, t=t_ev, phase=ph)

    def _onset_time(self, kind: int, i_ext: int, g: int) -> float:
        """When the signal left the extreme at ``i_ext``: the foot, back-dated.

        The end of a pause or a hold; for a smooth extremum, a little after its vertex.
        """
        ring = self._ring
        foot = onset_time(ring.t(i_ext, g + 1), ring.x(i_ext, g + 1), kind)
        return foot - self._timing.compensation(self.figures.period_s)

    def _top_time(self) -> float:
        """The end of inspiration: the top of the breath just confirmed, back-dated.

        Where clinicians and annotators mark a breath (the start of a hold at
        the top, unlike the exhale onset, which is its end): the extreme of
        the detection band -- which the heartbeat and the flat rail of a
        clipped trace move less than the cleaned signal's -- less that band's
        delay on top of the cleaning's.
        """
        ring = self._ring
        i_top = max(self._search.top_i, ring.first)
        comp = self._timing.compensation(self.figures.period_s, band=True)
        return float(ring.t(i_top, i_top + 1)[0]) - comp

    def _vote(self, a: Extremum, i_ext: int) -> None:
        """Polarity evidence from the whole cycle ``a`` -> this extreme (of ``a``'s kind)."""
        e = polarity_evidence(self._ring.x(a.idx, i_ext + 1))
        if e is not None:
            self.vote.add(e)
