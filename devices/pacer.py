"""The breath pacer: inhale / hold / exhale targets as a function of time.

One pacer for the whole project: the session engine and the live view ask it
what to show, the virtual body follows the :class:`~devices.intent.BreathTarget`
it gives.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from devices.intent import BreathTarget
from devices.vocab import BreathPhase

__all__ = ["PLAN_SNAP_S", "AdaptivePacer", "BreathSeen", "Pacer", "PacerLike", "same_pattern"]

#: A planned cycle this close to a recorded cycle start begins there (s): the
#: recorded patterns are rounded to 10 ms.
PLAN_SNAP_S = 0.25

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Pacer:
    """A fixed breathing pattern: inhale, hold (may be 0), exhale, repeated.

    The cycle is periodic in both directions, so a pacer can be handed over at
    any time (before ``t0`` it is already running).

    Parameters
    ----------
    inhale_s, hold_s, exhale_s : float
        Phase durations; relaxing (inhale with the drop) and keeping the
        release (exhale) are both long and slow by default. The hold follows
        the inhale.
    t0 : float
        Clock time of an inhale onset.
    depth : float
        Relative depth asked for (1 = the person's natural depth).
    """

    inhale_s: float = 4.0
    hold_s: float = 0.0
    exhale_s: float = 6.0
    t0: float = 0.0
    depth: float = 1.0

    def __post_init__(self) -> None:
        if not (self.inhale_s > 0 and self.exhale_s > 0 and self.hold_s >= 0):
            raise ValueError(
                "inhale and exhale must be positive and hold non-negative, got "
                f"{self.inhale_s}/{self.hold_s}/{self.exhale_s} s"
            )
        if not (math.isfinite(self.t0) and self.depth > 0):
            raise ValueError(f"t0 must be finite and depth positive, got {self.t0}, {self.depth}")

    @property
    def period(self) -> float:
        """Length of one cycle, s."""
        return self.inhale_s + self.hold_s + self.exhale_s

    @property
    def rate_bpm(self) -> float:
        """Breaths per minute asked for."""
        return 60.0 / self.period

    def cycle(self, t: float) -> int:
        """Index of the breath cycle at ``t`` (negative before ``t0``)."""
        return math.floor((t - self.t0) / self.period)

    def target(self, t: float) -> BreathTarget:
        """What the pacer asks for at ``t``."""
        pos = (t - self.t0) % self.period
        if pos < self.inhale_s:
            phase, progress = BreathPhase.INHALE, pos / self.inhale_s
        elif pos < self.inhale_s + self.hold_s:
            phase, progress = BreathPhase.PAUSE, (pos - self.inhale_s) / self.hold_s
        else:
            phase = BreathPhase.EXHALE
            progress = (pos - self.inhale_s - self.hold_s) / self.exhale_s
        return BreathTarget(
            phase=phase,
            progress=progress,
            inhale_s=self.inhale_s,
            hold_s=self.hold_s,
            exhale_s=self.exhale_s,
            depth=self.depth,
        )

    __call__ = target

    def onsets(self, t_from: float, t_to: float) -> tuple[FloatArray, FloatArray]:
        """Inhale and exhale onsets the pacer gives in ``[t_from, t_to)``."""
        p = self.period
        k = np.arange(math.floor((t_from - self.t0) / p) - 1, math.ceil((t_to - self.t0) / p))
        inh = (self.t0 + k * p).astype(np.float64)
        exh = inh + (self.inhale_s + self.hold_s)
        return (
            inh[(inh >= t_from) & (inh < t_to)],
            exh[(exh >= t_from) & (exh < t_to)],
        )

    def curve(self, t: npt.ArrayLike) -> FloatArray:
        """The target breath shape 0..1 (0 = empty, 1 = full) at times ``t``.

        Raised-cosine ramps, the curve the live view draws ahead of "now".
        """
        pos = np.mod(np.asarray(t, dtype=np.float64) - self.t0, self.period)
        up = 0.5 - 0.5 * np.cos(np.pi * np.clip(pos / self.inhale_s, 0.0, 1.0))
        down_pos = np.clip((pos - self.inhale_s - self.hold_s) / self.exhale_s, 0.0, 1.0)
        down = 0.5 + 0.5 * np.cos(np.pi * down_pos)
        out: FloatArray = np.where(pos < self.inhale_s + self.hold_s, up, down)
        return out

    # The schedule interface it shares with :class:`AdaptivePacer`.

    @property
    def first(self) -> Pacer:
        """The first cycle (this pacer)."""
        return self

    def cycle_at(self, t: float) -> Pacer:
        """The cycle holding ``t``, as a pacer whose ``t0`` is that cycle's start."""
        return replace(self, t0=self.t0 + self.cycle(t) * self.period)

    def start_of(self, k: int) -> float:
        """Start of cycle ``k`` (0: ``t0``)."""
        return self.t0 + k * self.period

    def pattern_of(self, k: int) -> Pacer:
        """The pattern of cycle ``k`` (the same for every cycle)."""
        return self

    def restart(self, t0: float) -> Pacer:
        """The same pattern, its first inhale at ``t0``."""
        return replace(self, t0=t0)

    def in_inhale(self, t: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each time falls in an inhale of the pacer."""
        pos = np.mod(np.asarray(t, dtype=np.float64) - self.t0, self.period)
        out: npt.NDArray[np.bool_] = pos < self.inhale_s
        return out


def same_pattern(a: Pacer | None, b: Pacer | None) -> bool:
    """Same phase durations and depth (``t0`` aside)."""
    if a is None or b is None:
        return a is b
    return (a.inhale_s, a.hold_s, a.exhale_s, a.depth) == (b.inhale_s, b.hold_s, b.exhale_s,
                                                           b.depth)


@dataclass(frozen=True)
class BreathSeen:
    """One breath the person took, as judged against the pacer cycle it belongs to.

    Parameters
    ----------
    inhale_onset, exhale_onset, end : float
        When the person began to breathe in, to breathe out, and the next inhale.
    cycle_start : float
        Start of the paced cycle it belongs to.
    lag_s : float
        Inhale onset minus the paced inhale onset (positive: late).
    exhale_share : float
        The exhale's length as a share of the paced exhale (below 1: cut short).
    trouble : bool
        Lagging (late by more than :attr:`AdaptivePacer.lag_share` of the
        inhale) or cutting the exhale short (below
        :attr:`AdaptivePacer.exhale_share`).
    """

    inhale_onset: float
    exhale_onset: float
    end: float
    cycle_start: float
    lag_s: float
    exhale_share: float
    trouble: bool


@dataclass
class AdaptivePacer:
    """A pacer that leads towards a goal only as fast as the person follows.

    Each cycle is planned when it is first asked for and then fixed (the body
    model asks a little ahead of time). After a breath the person followed, the
    next cycles move ``step`` of the way to ``goal`` (at most ``max_step_s``
    per phase and cycle); after a breath that lagged or cut the exhale short,
    the pattern holds; after ``strikes`` such breaths in a row it eases back
    half-way towards what the person did, then leads on again. The exhale thus
    lengthens gradually towards the goal instead of holding a rate the person
    cannot follow. :attr:`current` is the target to show now.

    Parameters
    ----------
    goal : Pacer
        Where to lead (its ``t0`` is ignored).
    start : Pacer, optional
        The first cycles' pattern (e.g. the person's comfortable breath);
        default the goal.
    t0 : float
        Clock time of the first inhale.
    step : float
        Share of the remaining way covered per followed breath (0: a fixed pacer).
    max_step_s : float
        Largest change of a phase per cycle, s.
    lag_share, exhale_share : float
        Trouble thresholds (see :class:`BreathSeen`).
    strikes : int
        Breaths in trouble in a row before easing back.
    plan : tuple of (float, Pacer)
        Targets as recorded (clock time a cycle began, its pattern), in time
        order: the cycles follow them instead of adapting (a replay gives the
        live session's pacer). A cycle due within :data:`PLAN_SNAP_S` of a
        recorded start begins exactly there.
    """

    goal: Pacer
    start: Pacer | None = None
    t0: float = 0.0
    step: float = 0.25
    max_step_s: float = 0.5
    lag_share: float = 0.3
    exhale_share: float = 0.85
    strikes: int = 2
    seen: list[BreathSeen] = field(default_factory=list)
    plan: tuple[tuple[float, Pacer], ...] = ()

    def __post_init__(self) -> None:
        if not (0.0 <= self.step <= 1.0 and self.max_step_s > 0 and self.strikes >= 1):
            raise ValueError("step must be 0..1, max_step_s positive and strikes >= 1")
        _, planned = self._planned(self.t0)
        first = replace(planned or self.start or self.goal, t0=self.t0)
        self._cycles: list[Pacer] = [first]  # one Pacer per cycle, t0 = its start
        self._next = first
        self._in_trouble = 0

    @property
    def current(self) -> Pacer:
        """The pattern of the latest planned cycle: the target to show now."""
        return self._cycles[-1]

    @property
    def cycles(self) -> tuple[Pacer, ...]:
        """Every planned cycle, in order (``t0`` = its start)."""
        return tuple(self._cycles)

    @property
    def first(self) -> Pacer:
        """The first cycle (``t0`` = its start)."""
        return self._cycles[0]

    @property
    def upcoming(self) -> Pacer:
        """The pattern the next cycle to be planned gets (``t0`` meaningless)."""
        return self._next

    def start_of(self, k: int) -> float:
        """Start of cycle ``k``: planned, or foreseen at :attr:`upcoming` (plans nothing)."""
        if k < len(self._cycles):
            return self._cycles[k].t0
        last = self._cycles[-1]
        return last.t0 + last.period + (k - len(self._cycles)) * self._next.period

    def pattern_of(self, k: int) -> Pacer:
        """Cycle ``k``: planned, or foreseen at :attr:`upcoming` (plans nothing)."""
        if k < len(self._cycles):
            return self._cycles[k]
        return replace(self._next, t0=self.start_of(k))

    def restart(self, t0: float) -> AdaptivePacer:
        """A pacer going on from here (the upcoming pattern, the same goal and history),
        its first inhale at ``t0``: the next set of a session."""
        return AdaptivePacer(self.goal, start=self._next, t0=t0, step=self.step,
                             max_step_s=self.max_step_s, lag_share=self.lag_share,
                             exhale_share=self.exhale_share, strikes=self.strikes, seen=self.seen,
                             plan=self.plan)

    def in_inhale(self, t: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each time falls in an inhale of its cycle (plans nothing: beyond the
        planned cycles the last one repeats)."""
        ta = np.asarray(t, dtype=np.float64)
        starts = np.array([c.t0 for c in self._cycles])
        periods = np.array([c.period for c in self._cycles])
        inhales = np.array([c.inhale_s for c in self._cycles])
        k = np.clip(np.searchsorted(starts, ta, side="right") - 1, 0, starts.size - 1)
        pos = ta - starts[k]
        wrap = (k == starts.size - 1) | (pos < 0)  # before the first, after the last: periodic
        pos = np.where(wrap, np.mod(pos, periods[k]), pos)
        out: npt.NDArray[np.bool_] = pos < inhales[k]
        return out

    def describe(self) -> str:
        """The current target in words (for the live view)."""
        c, g = self.current, self.goal
        return (f"now {c.rate_bpm:.1f}/min (in {c.inhale_s:.1f} s, out {c.exhale_s:.1f} s), "
                f"leading to {g.rate_bpm:.1f}/min")

    def cycle_at(self, t: float) -> Pacer:
        """The cycle holding ``t`` (planning the cycles up to it)."""
        while t >= self._cycles[-1].t0 + self._cycles[-1].period:
            last = self._cycles[-1]
            start, planned = self._planned(last.t0 + last.period)
            self._cycles.append(replace(planned or self._next, t0=start))
        if t < self._cycles[0].t0:
            return self._cycles[0]  # before the start: the first cycle, run backwards
        k = self._index(t)
        return self._cycles[k]

    def target(self, t: float) -> BreathTarget:
        """What the pacer asks for at ``t``."""
        return self.cycle_at(t).target(t)

    __call__ = target

    def onsets(self, t_from: float, t_to: float) -> tuple[FloatArray, FloatArray]:
        """Paced inhale and exhale onsets in ``[t_from, t_to)`` (planned cycles only)."""
        if t_to > t_from:
            self.cycle_at(t_to)
        inh = np.array([c.t0 for c in self._cycles])
        exh = np.array([c.t0 + c.inhale_s + c.hold_s for c in self._cycles])
        return (inh[(inh >= t_from) & (inh < t_to)], exh[(exh >= t_from) & (exh < t_to)])

    def curve(self, t: npt.ArrayLike) -> FloatArray:
        """The target breath shape 0..1 at times ``t`` (each in its own cycle)."""
        ta = np.asarray(t, dtype=np.float64)
        out = np.empty(ta.shape)
        for i, x in np.ndenumerate(ta):
            out[i] = self.cycle_at(float(x)).curve(np.array([x]))[0]
        return out

    def observe(self, inhale_onset: float, exhale_onset: float, end: float) -> BreathSeen:
        """A breath the person finished (inhale onset, exhale onset, next inhale onset).

        Judged against the cycle whose inhale onset is nearest; the cycles not
        yet planned follow from it.
        """
        cyc = self._cycles[self._nearest(inhale_onset)]
        lag = inhale_onset - cyc.t0
        share = (end - exhale_onset) / cyc.exhale_s
        trouble = lag > self.lag_share * cyc.inhale_s or share < self.exhale_share
        seen = BreathSeen(inhale_onset=inhale_onset, exhale_onset=exhale_onset, end=end,
                          cycle_start=cyc.t0, lag_s=lag, exhale_share=share, trouble=trouble)
        self.seen.append(seen)
        if self.step > 0 and not self.plan:
            self._adapt(seen)
        return seen

    # ----------------------------------------------------------------- inside

    def _planned(self, start: float) -> tuple[float, Pacer | None]:
        """A cycle due at ``start``: its start and pattern as recorded (None: no plan)."""
        times = [t for t, _ in self.plan]
        k = bisect.bisect_right(times, start + PLAN_SNAP_S) - 1
        if k < 0:
            return start, None
        t, pattern = self.plan[k]
        return (t if abs(t - start) <= PLAN_SNAP_S else start), pattern

    def _adapt(self, seen: BreathSeen) -> None:
        # From the latest planned cycle, so several breaths seen before the next
        # cycle is planned (short breaths) still make one step, not several.
        nxt = self._cycles[-1]
        if not seen.trouble:
            self._in_trouble = 0
            self._next = replace(
                nxt,
                inhale_s=self._toward(nxt.inhale_s, self.goal.inhale_s),
                hold_s=self._toward(nxt.hold_s, self.goal.hold_s) if self.goal.hold_s
                or nxt.hold_s else 0.0,
                exhale_s=self._toward(nxt.exhale_s, self.goal.exhale_s),
            )
            return
        self._in_trouble += 1
        if self._in_trouble >= self.strikes:
            # Ease back half-way to what the person did, then lead on from there.
            # Never longer: an inhale begun early (out of breath) is no reason
            # to ask for a longer one.
            done_in = max(seen.exhale_onset - seen.inhale_onset, 0.5)
            done_out = max(seen.end - seen.exhale_onset, 0.5)
            self._next = replace(nxt, inhale_s=min(nxt.inhale_s, 0.5 * (nxt.inhale_s + done_in)),
                                 exhale_s=min(nxt.exhale_s, 0.5 * (nxt.exhale_s + done_out)))
            self._in_trouble = 0

    def _toward(self, now: float, goal: float) -> float:
        change = self.step * (goal - now)
        return now + max(-self.max_step_s, min(self.max_step_s, change))

    def _index(self, t: float) -> int:
        starts = [c.t0 for c in self._cycles]
        return max(0, int(np.searchsorted(starts, t, side="right")) - 1)

    def _nearest(self, t: float) -> int:
        starts = np.array([c.t0 for c in self._cycles])
        return int(np.argmin(np.abs(starts - t)))


#: What a rep step's pacer may be: a fixed one, or one that adapts cycle by cycle.
PacerLike = Pacer | AdaptivePacer
