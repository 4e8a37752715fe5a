"""Posture changes under a one-channel probe, told by a respiration belt.

When the person shifts (sits up, turns, crosses the legs) the pressure on the
probe steps to a new level and stays there; with one channel that step reads
as a drop or a contraction that never ends, until the resting tone is learned
again. Two channels tell it by both sensors moving alike
(:mod:`~biofeedback.signal.pelvic.rest`); one channel needs other witnesses.

**The belt's end-expiratory level.** Moving the body moves the belly under
the belt, so the level the belt's breaths come back to steps at the same
time. Nothing the floor does moves it much: a drop or a squeeze leaves the
belly's resting girth where it was (a contraction draws it in by a small
fraction of a breath), and bearing down, which bulges it, holds the breath
(the tracker's strain evidence), which is checked. A trough (an inhale onset
the breath detector confirmed, after an exhale of a breath's size) that stands
off the recent troughs by more than a fifth of a breath's swing and four times
their own scatter is a move of the belt's baseline since the previous trough.
The probe's step over it is its level where it had settled
(:data:`MOVE_S` after it left its level) minus its level at the previous trough.

**How the probe rides the breath.** Inhaling pushes the diaphragm down and
the abdominal pressure up: a resting (or squeezing) floor's pressure rises
and falls with the belt. A drop is done on the inhale -- the floor descends
as the belly fills -- so the probe falls as the belt rises. The sign of the
probe's correlation with the belt tells a drop from an offset that only looks
like one:

* a move after which the probe rides the breath like a drop, when it did not
  before, is a drop begun with the move: the step is not all the body's and
  the rest is not moved (the drop stays a drop);
* for a minute after a witnessed move, a level that reads as a drop but rides
  the breath like rest for :data:`RIDE_S` is the floor resting on the new
  baseline (an action that overlapped the move has ended): the rest is
  re-anchored there.

Without a belt move nothing here acts, so a drop held with no posture change
stays a drop however it rides the breath.

The evidence is one breath late at most (the first trough after the move),
plus the detector's confirmation and :data:`BELT_LAG_S`. Decisions are taken
at the pressure tracker's rest-update block ends from the belt data confirmed
:data:`BELT_LAG_S` before, so they are the same however either stream is
chunked, as long as the belt's chunks come at most that much later than the
probe's.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.filters import FloatArray
from biofeedback.signal.types import BreathEvent, Int8Array
from devices.vocab import BreathPhase, PelvicState

__all__ = ["BELT_LAG_S", "MOVE_S", "RIDE_S", "PostureWatch"]

#: A belt onset is used this long after its confirmation (the belt's chunks
#: may come this much later than the probe's).
BELT_LAG_S = 1.0
#: A trough off the recent ones by more than this fraction of a breath's swing ...
TROUGH_FRAC = 0.2
#: ... and this many times their usual trough-to-trough change is a moved baseline.
TROUGH_K = 4.0
#: Half-width of the stretch a level at a trough is the mean of, s.
AT_S = 0.25
#: A body movement has settled this long after the probe left its level, s.
MOVE_S = 2.5
#: The stretch the probe's riding of the breath is judged over, s.
RIDE_S = 5.0
#: Correlation with the belt past which the probe rides it like rest (or,
#: negative, like a drop).
RIDE_CORR = 0.5
#: How long after a witnessed move a drop that rides like rest re-anchors, s.
ARMED_S = 60.0
#: History kept of either signal, s (longer than the slowest breath watched).
KEEP_S = 40.0
_STRAIN = int(PelvicState.STRAIN)


@dataclass
class WatchState:
    """What the watch knows of the belt and the last move it witnessed."""

    pending: deque[BreathEvent] = field(default_factory=deque)  # onsets not yet used
    troughs: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=5))
    swings: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    last: float | None = None  # belt level at the last onset of either kind
    polarity: int = 0  # +1: inhale raises the belt's raw signal
    settled: float = -math.inf  # when the last witnessed move had settled
    shifts: int = 0  # rest moves made


class PostureWatch:
    """Posture steps of a one-channel probe, witnessed by a respiration belt.

    Parameters
    ----------
    belt_fs : float
        The belt's sample rate.
    probe_fs : float
        The probe's working rate.
    lag_s : float
        How long after its confirmation a belt onset is used.
    """

    def __init__(self, belt_fs: float, probe_fs: float, lag_s: float = BELT_LAG_S) -> None:
        self.lag_s = lag_s
        self._belt = RingBuffer(max(16, round(KEEP_S * belt_fs)))
        self._probe = RingBuffer(max(16, round(KEEP_S * probe_fs)), aux=True)
        self.st = WatchState()

    def reset(self) -> None:
        """The belt restarted or went away: its levels are no baseline any more."""
        self._belt.clear()
        self._probe.clear()
        self.st = WatchState(shifts=self.st.shifts)

    @property
    def shifts(self) -> int:
        """Rest moves made so far."""
        return self.st.shifts

    def add_belt(
        self, t: FloatArray, x: FloatArray, events: Iterable[BreathEvent], polarity: int
    ) -> None:
        """The belt's raw samples (first column), the onsets confirmed on it and
        its polarity (+1: inhale raises it; 0: not known yet)."""
        st = self.st
        if polarity != st.polarity:
            st.troughs.clear()
            st.swings.clear()
            st.last = None
            st.polarity = polarity
        self._belt.append(t, x[:, 0] if x.ndim == 2 else x)
        st.pending.extend(events)

    def add_probe(self, t: FloatArray, level: FloatArray, state: Int8Array) -> None:
        """The probe's smoothed level and reported state over a stretch."""
        # (the int8 states go into the float series as they are copied in)
        self._probe.append(t, level, aux=cast(FloatArray, state))

    def shift(self, t_now: float, rest: float, md: float, *, quiet: bool) -> float:
        """At a rest-update block's end (its last sample at ``t_now``): how far
        to move the rest (0.0: not at all).

        Parameters
        ----------
        t_now : float
            The probe's newest sample time.
        rest : float
            The resting tone now.
        md : float
            The drop margin: a smaller step is no step.
        quiet : bool
            The breath is not held and the floor not straining now.
        """
        st = self.st
        out = 0.0
        while st.pending and st.pending[0].t_detected <= t_now - self.lag_s:
            moved = self._onset(st.pending.popleft())
            if moved is not None:
                st.settled = max(st.settled, moved[1])  # (at the latest)
                if quiet:
                    out += self._step(moved, rest + out, md, t_now)
        if not out and quiet and t_now - st.settled < ARMED_S:
            out = self._reanchor(t_now, rest, md)
        if out:
            st.shifts += 1
        return out

    # ------------------------------------------------------------------ the belt

    def _onset(self, ev: BreathEvent) -> tuple[float, float] | None:
        """Take in a confirmed onset; ``(t_from, t_to)`` when it is a trough
        off the recent ones (the belt's baseline moved between them)."""
        st = self.st
        if st.polarity == 0:
            return None
        rb = self._belt
        tb, xb = rb.storage()
        n = rb.total - rb.first
        i, j = np.searchsorted(tb[:n], (ev.t - AT_S, min(ev.t + AT_S, ev.t_detected)), "right")
        if j <= i:
            return None
        level = st.polarity * float(np.add.reduce(xb[i:j])) / (j - i)  # (inhale up)
        swing = abs(level - st.last) if st.last is not None else None
        usual_swing = statistics.median(st.swings) if st.swings else None
        if swing is not None:
            st.swings.append(swing)
        st.last = level
        if ev.phase is not BreathPhase.INHALE or swing is None or usual_swing is None:
            return None  # (an inhale starts at the trough)
        if swing < 0.5 * usual_swing:
            return None  # no breath's exhale before it: not a trough to judge by
        tr = st.troughs
        moved = None
        if len(tr) >= 2:
            levels = [lv for _, lv in tr]
            ref = statistics.median(levels)
            usual = statistics.median(abs(q - p) for p, q in itertools.pairwise(levels))
            if abs(level - ref) > max(TROUGH_FRAC * usual_swing, TROUGH_K * usual):
                moved = (tr[-1][0], ev.t)
                # the troughs before, on the new baseline: a next move is judged as well
                kept = [(t, lv + level - ref) for t, lv in tr]
                tr.clear()
                tr.extend(kept)
        tr.append((ev.t, level))
        return moved

    # ------------------------------------------------------------------ the probe

    def _window(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The probe's times, levels and states in ``[t0, t1)``."""
        rb = self._probe
        n = rb.total - rb.first
        t, x = rb.storage()
        i, j = np.searchsorted(t[:n], (t0, t1), side="left")
        return t[i:j], x[i:j], rb.aux_storage()[i:j]

    def _riding(self, t0: float, t1: float) -> float:
        """How the probe rides the breath over ``[t0, t1)``: its correlation
        with the belt (oriented inhale up; 0.0: too short, or either flat)."""
        t, x, _ = self._window(t0, t1)
        if t.shape[0] < 10:
            return 0.0
        tb, xb = self._belt.since(t0 - 1.0)
        if tb.shape[0] < 2:
            return 0.0
        belt = np.interp(t, tb, xb)
        belt -= belt.mean()
        p = x - x.mean()
        den = math.sqrt(float(np.dot(belt, belt)) * float(np.dot(p, p)))
        return self.st.polarity * float(np.dot(belt, p)) / den if den > 0 else 0.0

    def _step(self, moved: tuple[float, float], rest: float, md: float, t_now: float) -> float:
        """How far a move of the belt moves the rest: by the probe's step over
        it; a step down, to the probe's level now if the floor rests there
        (0.0: no step, the floor strained, or a drop may have begun with it)."""
        t_from, t_to = moved
        _, x0, _ = self._window(t_from - AT_S, t_from + AT_S)
        t, x, states = self._window(t_from, t_to + AT_S)
        if not (x0.size and x.size) or bool((states == _STRAIN).any()):
            return 0.0
        before = float(np.mean(x0))
        away = np.flatnonzero(np.abs(x - before) > 2.0 * md)
        if not away.size:
            return 0.0
        t_left = float(t[away[0]])
        t_at = min(t_left + MOVE_S, t_to)
        _, x1, _ = self._window(t_at - AT_S, t_at + AT_S)
        step = float(np.mean(x1)) - before
        if not abs(step) > md:
            return 0.0
        self.st.settled = min(self.st.settled, t_at)
        if step > 0:
            return step  # (a rise rides the breath as rest does: the step it is)
        # a step down may hold a drop begun with the move: only where the probe
        # has ridden the breath like rest since is the floor resting there (else
        # it is re-anchored once it does)
        if self._riding(t_at, t_now) <= RIDE_CORR:
            return 0.0
        _, last, _ = self._window(t_now - 1.0, t_now + 1.0)
        return float(np.mean(last)) - rest

    def _reanchor(self, t_now: float, rest: float, md: float) -> float:
        """After a witnessed move: a steady level that has read as a drop for
        :data:`RIDE_S` while riding the breath like rest is the new rest."""
        t0 = t_now - RIDE_S
        rb = self._probe
        # (cheap checks first: reading a drop now, long enough after the move)
        if (
            t0 < self.st.settled
            or rb.total == rb.first
            or rb.aux_storage()[rb.total - rb.first - 1] != int(PelvicState.DROP)
        ):
            return 0.0
        _, x, _ = self._window(t0, t_now + 1.0)
        if not x.size or float(x.max()) - rest >= -md:
            return 0.0
        if float(x.max()) - float(x.min()) > 2.0 * md:
            return 0.0  # not steady: moving, or the floor acting
        if self._riding(t0, t_now + 1.0) <= RIDE_CORR:
            return 0.0
        _, last, _ = self._window(t_now - 1.0, t_now + 1.0)
        return float(np.mean(last)) - rest
