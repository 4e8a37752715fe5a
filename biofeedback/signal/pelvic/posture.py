"""Posture changes under a one-channel probe, told by a respiration belt.

When the person shifts (sits up, turns, crosses the legs) the abdominal
pressure on the probe steps to a new level within a second or two and stays
there; with one channel that step reads as a drop or a contraction that never
ends, until the resting tone is learned again. Two channels tell it by both
sensors moving alike (:mod:`~biofeedback.signal.pelvic.rest`); one channel
needs another witness: the belt, whose belly moves with the body.

**The belt leaves its breathing.** A posture change moves the abdominal
pressure and the belly's girth together (upright, both rise); the belt's level
steps with the probe's. A belt sample below the recent troughs (by a fifth of
a usual breath's swing and four times the troughs' own scatter) or
:data:`PEAK_SWINGS` breaths above them is such a step under way (a deeper
breath than usual is not). Once the probe has settled after it (held its level
for :data:`STEADY_S`) and stepped the belt's way, the rest moves with it. The
floor's actions move the two apart (a drop is done as the belly fills, a
contraction draws it in) or hold the breath (a strain: nothing is moved then).
The next trough confirms the step, or takes it back when the baseline has not
moved after all.

**The belt's end-expiratory level.** A trough (an inhale onset the breath
detector confirmed, after an exhale of a breath's size) that stands off the
recent troughs as above is a move of the belt's baseline since the previous
trough, whatever the probe did meanwhile: a slower witness, a breath late at
most, for steps the belt's breathing hid.

**The probe's step** runs from its level at the trough before the move (the
first steady one after it, if it was still coming back from an action there)
to the first level it held after leaving it (not the top of the movement's
swing, :mod:`~biofeedback.signal.pelvic.levels`). Resting before, the rest
goes to where it settled (whatever the rest had missed goes too); in an
action, it moves by the step. No step is taken for a rise with a strain in it,
nor for a fall that may hold a drop begun with the move (a drop read before it
left, or an inhale as it fell: drops are done on the inhale). An action that
follows the move at once hides the level it moved to: once the action has
ended (the probe steady again, back from it towards the rest) the rest goes
there.

**How the probe rides the breath.** Inhaling pushes the diaphragm down and
the abdominal pressure up: a resting floor's pressure rises and falls with the
belt, a drop falls as it rises. For a minute after a witnessed move, a level
that reads as a drop but rides the breath like rest for :data:`RIDE_S` is the
floor resting on the new baseline (an action that overlapped the move has
ended): the rest is re-anchored there. Without a belt move nothing here acts,
so a drop held with no posture change stays a drop.

**Timing and chunking.** The tracker asks the watch at fixed probe sample
indices: at its 1 s block ends, and every ``WATCH_S`` of probe time while the
watch is :attr:`~PostureWatch.busy` following a move
(:mod:`~biofeedback.signal.pelvic.tracker`); the watch uses the belt's
samples and onsets up to :data:`BELT_LAG_S` before the probe's time: the
states are the same however either stream is chunked **as long as the belt's
chunks come at most** :data:`BELT_LAG_S` **later than the probe's**. A belt
later than that is not waited for: its evidence acts when it comes, so the
states may then depend on the chunking.
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
from biofeedback.signal.pelvic.levels import rise, settled_at, steady_from
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
#: A belt sample past the recent troughs (see :data:`TROUGH_FRAC`), or this
#: many usual breaths above them, has left its breathing (a breath deeper
#: than usual is not enough).
PEAK_SWINGS = 2.0
#: The probe has settled when it stayed within the drop margin for this long, s.
STEADY_S = 0.5
#: How long after the belt left its breathing the probe's settled step is
#: waited for, s.
BREACH_WAIT_S = 4.0
#: History kept of either signal, s (longer than the slowest breath watched).
KEEP_S = 40.0
_STRAIN = int(PelvicState.STRAIN)
_DROP = int(PelvicState.DROP)
_REST = int(PelvicState.REST)


@dataclass(frozen=True)
class Breach:
    """The belt left its breathing envelope: a move under way."""

    t: float  # the first belt sample past it
    sign: int  # +1 above the recent breaths, -1 below their troughs
    t_from: float  # the last trough before it (the probe's level there is "before")
    swing: float  # a usual breath's swing then


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
    checked: float = -math.inf  # the belt was looked at for a breach up to here
    armed: bool = True  # a breach may be looked for (again from the next trough)
    breach: Breach | None = None  # waiting for the probe to settle
    held: tuple[float, float] | None = None  # (breach time, step) taken, its trough to come
    unsettled: float = -math.inf  # a witnessed move's level was hidden by an action (then)
    busy: bool = False  # following a move (as of the last time asked)


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
        self._k = max(1, round(STEADY_S * probe_fs))  # (samples in STEADY_S)
        self._belt = RingBuffer(max(16, round(KEEP_S * belt_fs)))
        self._probe = RingBuffer(max(16, round(KEEP_S * probe_fs)), aux=True)
        self.st = WatchState()

    def reset(self) -> None:
        """The belt restarted or went away: its levels are no baseline any more."""
        self._belt.clear()
        self._probe.clear()
        self.st = WatchState(shifts=self.st.shifts)

    @property
    def busy(self) -> bool:
        """A move is being followed (a breach waits for the probe to settle, or
        one was witnessed less than :data:`ARMED_S` ago): ask at every watch
        point, not only at the tracker's block ends. (It changes only when
        asked, so where it is asked does not depend on the chunking.)"""
        return self.st.busy

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
        """At one of the tracker's watch points (its last sample at ``t_now``):
        how far to move the rest (0.0: not at all).

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
            judged, moved = self._onset(st.pending.popleft())
            if judged and st.held is not None:
                # the trough after a step taken at a breach: a moved baseline
                # confirms it; one that did not move takes it back
                if moved is None:
                    out -= st.held[1]
                st.held = None
                continue
            if moved is not None:
                st.settled = max(st.settled, moved[1])  # (at the latest)
                if quiet:
                    out += self._step(moved, rest + out, md, t_now)
        if st.breach is None and st.armed and st.held is None:
            st.breach = self._breach(t_now - self.lag_s)
        st.checked = t_now - self.lag_s
        if st.breach is not None:
            out += self._breach_step(t_now, rest + out, md, quiet=quiet)
        if not out and quiet and t_now - st.unsettled < ARMED_S:
            out = self._action_ended(t_now, rest, md)
        if not out and quiet and t_now - st.settled < ARMED_S:
            out = self._reanchor(t_now, rest, md)
        if out:
            st.shifts += 1
        # (finely while a move is under way or was witnessed in the last
        # minute; at the tracker's block ends otherwise)
        recent = t_now - max(st.settled, st.unsettled) < ARMED_S
        st.busy = st.breach is not None or st.held is not None or recent
        return out

    # ------------------------------------------------------------------ the belt

    def _onset(self, ev: BreathEvent) -> tuple[bool, tuple[float, float] | None]:
        """Take in a confirmed onset: whether it was a trough judged against
        the recent ones, and ``(t_from, t_to)`` when it stood off them (the
        belt's baseline moved between them)."""
        st = self.st
        if st.polarity == 0:
            return False, None
        rb = self._belt
        tb, xb = rb.storage()
        n = rb.total - rb.first
        i, j = np.searchsorted(tb[:n], (ev.t - AT_S, min(ev.t + AT_S, ev.t_detected)), "right")
        if j <= i:
            return False, None
        level = st.polarity * float(np.add.reduce(xb[i:j])) / (j - i)  # (inhale up)
        swing = abs(level - st.last) if st.last is not None else None
        usual_swing = statistics.median(st.swings) if st.swings else None
        if swing is not None:
            st.swings.append(swing)
        st.last = level
        if swing is None or usual_swing is None or swing < 0.5 * usual_swing:
            return False, None  # no breath's exhale (inhale) before it: not a trough (peak)
        if ev.phase is not BreathPhase.INHALE:
            return False, None
        st.armed = True
        tr = st.troughs
        moved = None
        judged = len(tr) >= 2
        if judged:
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
        return judged, moved

    def _breach(self, t_to: float) -> Breach | None:
        """The first belt sample up to ``t_to`` not looked at yet that lies
        below the recent troughs or far above them: the baseline moving under
        the breath."""
        st = self.st
        if len(st.troughs) < 3 or not st.swings:
            return None
        tb, xb = self._belt.storage()
        n = self._belt.total - self._belt.first
        i, j = np.searchsorted(tb[:n], (st.checked, t_to), "right")
        if j <= i:
            return None
        swing = statistics.median(st.swings)
        lows = [lv for _, lv in st.troughs]
        low = statistics.median(lows) - max(
            TROUGH_FRAC * swing, TROUGH_K * statistics.median(np.abs(np.diff(lows)))
        )
        # (above: from the troughs too -- the peaks follow the breath's depth, which wanders)
        high = statistics.median(lows) + PEAK_SWINGS * swing
        lv = st.polarity * xb[i:j]
        out = np.flatnonzero((lv < low) | (lv > high))
        if not out.size:
            return None
        k = int(out[0])
        st.armed = False
        return Breach(
            t=float(tb[i + k]),
            sign=1 if lv[k] > high else -1,
            t_from=st.troughs[-1][0],
            swing=swing,
        )

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
        with the belt (oriented inhale up; 0.0: too short, or either flat).
        ``t1`` is at most the probe's time less the belt's lag: the belt's
        samples up to it are in whatever the chunking."""
        t, x, _ = self._window(t0, t1)
        if t.shape[0] < 10:
            return 0.0
        tb, xb = self._belt.since(t0 - 1.0)
        k = int(np.searchsorted(tb, t1, "left"))
        tb, xb = tb[:k], xb[:k]
        if tb.shape[0] < 2:
            return 0.0
        belt = np.interp(t, tb, xb)
        belt -= belt.mean()
        p = x - x.mean()
        den = math.sqrt(float(np.dot(belt, belt)) * float(np.dot(p, p)))
        return self.st.polarity * float(np.dot(belt, p)) / den if den > 0 else 0.0

    def _inhaled(self, t0: float, t1: float) -> float:
        """How far the belt rose (inhaling) within ``[t0, t1)``."""
        tb, xb = self._belt.since(t0)
        return rise(self.st.polarity * xb[: int(np.searchsorted(tb, t1, "left"))])

    def _breach_step(self, t_now: float, rest: float, md: float, *, quiet: bool) -> float:
        """The probe's step at a breach of the belt, once it has settled: taken
        when it goes the belt's way (0.0: not yet, or no step of the body's).

        A posture change moves the abdominal pressure and the belly under the
        belt together (upright, both rise); the floor's actions move them
        apart (a drop falls as the belly fills, a contraction draws it in) or
        hold the breath (a strain: not quiet). The trough after it confirms
        the step or takes it back (:meth:`shift`).
        """
        st = self.st
        br = st.breach
        assert br is not None
        if not quiet or t_now > br.t + BREACH_WAIT_S:
            st.breach = None
            return 0.0
        got = self._measure(br.t_from, br.t, t_now, rest, md, br.swing)
        if got is None:
            return 0.0  # (not settled yet)
        st.breach = None
        step, t_left, t_set = got
        if math.isnan(step):
            st.unsettled = t_now  # (the level it moved to shows once the action ends)
        if not step or math.isnan(step) or (step > 0) != (br.sign > 0):
            return 0.0
        if t_left < br.t - 2.0 * MOVE_S:
            return 0.0  # it left long before the belt did: the floor acting
        st.held = (br.t, step)
        st.settled = max(st.settled, t_set)
        return step

    def _step(self, moved: tuple[float, float], rest: float, md: float, t_now: float) -> float:
        """How far a move the belt's trough witnessed moves the rest (0.0: not
        at all, see :meth:`_measure`)."""
        st = self.st
        swing = statistics.median(st.swings) if st.swings else 0.0
        got = self._measure(moved[0], moved[1], t_now, rest, md, swing)
        if got is not None and math.isnan(got[0]):
            st.unsettled = t_now  # (the level it moved to shows once the action ends)
        if got is None or not got[0] or math.isnan(got[0]):
            return 0.0
        st.settled = min(st.settled, got[2])
        return got[0]

    def _measure(
        self, t_from: float, t_move: float, t_now: float, rest: float, md: float, swing: float
    ) -> tuple[float, float, float] | None:
        """The probe's step after ``t_from`` (a trough before the move, seen on
        the belt by ``t_move``): how far to move the rest, when it left its
        level and when it settled (step 0.0: no step of the body's; None: not
        settled yet).

        No step: none past the drop margin, a rise with a strain in it, or a
        fall that may hold a drop begun with the move (a drop read before it
        left, or an inhale as it fell: drops are done on the inhale). Resting
        before, the rest goes to where the probe settled (whatever it had
        missed before goes too); in an action, it moves by the step.
        """
        _, x0, _ = self._window(t_from - AT_S, t_from + AT_S)
        _, lead, _ = self._window(t_from - STEADY_S, t_from)
        if not (x0.size and lead.size):
            return 0.0, t_from, t_from
        if float(np.max(lead) - np.min(lead)) > md:
            # not steady at the trough (an action's tail): the first steady
            # level after it, if that came before the belt moved
            anchor = steady_from(*self._window(t_from - AT_S, t_move)[:2], self._k, md)
            if anchor is None:
                return 0.0, t_from, t_from
            _, t_from = anchor
            x0 = np.array([anchor[0]])
        before = float(np.mean(x0))
        t, x, states = self._window(t_from, t_now + 1.0)
        away = np.flatnonzero(np.abs(x - before) > 2.0 * md)
        if not away.size:
            return None
        t_left = float(t[away[0]])
        t_lim = t_left + MOVE_S + 2.0 * STEADY_S
        # where it settled after the move (an action may follow at once)
        tw, xw, _ = self._window(t_left, min(t_lim, t_now + 1.0))
        t_set = settled_at(tw, xw, self._k, before, md)
        if t_set is None:
            # (nan: an action hides the level it moved to -- one followed at once)
            return None if t_now < t_lim else (math.nan, t_left, t_left)
        _, x1, _ = self._window(t_set - STEADY_S, t_set + 1e-9)
        level = float(np.mean(x1))
        step = level - before
        no = (0.0, t_left, t_set)
        if not abs(step) > md:
            return no
        if step > 0:
            return no if bool((states == _STRAIN).any()) else (step, t_left, t_set)
        # (the fall into the level: from where it was last short of it)
        short = t[(t < t_set - STEADY_S) & (x > level + 2.0 * md)]
        if (
            bool((states[: away[0]] == _DROP).any())
            or not short.size
            or self._inhaled(float(short[-1]), min(t_set, t_now - self.lag_s)) > TROUGH_FRAC * swing
        ):
            return no
        _, _, pre = self._window(t_left - 3.0 * STEADY_S, t_left - STEADY_S)
        if pre.size and bool((pre == _REST).all()):
            step = level - rest
        return step, t_left, t_set

    def _action_ended(self, t_now: float, rest: float, md: float) -> float:
        """After a witnessed move whose level an action hid (one followed at
        once): once the action has ended -- the probe steady again, back from
        the action's level towards the rest -- the rest is where it settled."""
        t, x, states = self._window(t_now - 4.0, t_now + 1.0)
        k = int(np.searchsorted(t, t_now - STEADY_S, "left"))
        if k < 1 or k >= t.shape[0]:
            return 0.0
        now = x[k:]
        level = float(np.mean(now))
        if float(np.max(now) - np.min(now)) > md or not abs(level - rest) > md:
            return 0.0
        # the action: read as one, away from the level now (which may read as
        # one too, against the rest before the move)
        acted = np.flatnonzero((states[:k] != _REST) & (np.abs(x[:k] - level) > 3.0 * md))
        if not acted.size:
            return 0.0
        action = float(np.mean(x[acted[-min(acted.size, 10) :]]))  # (its last samples)
        if (action > rest) != (action > level):
            return 0.0  # (not back towards the rest from it: still in it, or deeper)
        self.st.unsettled = -math.inf
        return level - rest

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
        if self._riding(t0 - self.lag_s, t_now - self.lag_s) <= RIDE_CORR:
            return 0.0
        _, last, _ = self._window(t_now - 1.0, t_now + 1.0)
        return float(np.mean(last)) - rest
