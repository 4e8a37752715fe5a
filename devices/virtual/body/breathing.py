"""Breathing: a chain of volume segments planned tick by tick.

Inhale: raised cosine; exhale: faster early, passive recoil; pause/hold: flat.
Free breaths come from a :class:`BreathSource` (drawn at random, or taken from
a recorded trace); with a pacer each new pacer phase is a cue the person
follows after a reaction lag; a strain takes a quick breath and holds it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from devices.intent import Intent
from devices.virtual.body.common import DO, DT, MISS, PUSH, FloatArray
from devices.virtual.body.learner import Learner
from devices.virtual.body.params import BodyParams
from devices.vocab import BreathPhase

__all__ = ["EXHALE", "HOLD", "INHALE", "PAUSE", "BreathSource", "Breathing", "FreeBreath", "Seg"]

# Segment kinds (HOLD is the Valsalva breath hold of a strain).
INHALE: Final = 1
EXHALE: Final = 2
PAUSE: Final = 3
HOLD: Final = 4
KIND_TO_PHASE = np.array(
    [
        BreathPhase.UNKNOWN,
        BreathPhase.INHALE,
        BreathPhase.EXHALE,
        BreathPhase.PAUSE,
        BreathPhase.PAUSE,
    ],
    dtype=np.int8,
)

SegArrays = tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]


class Seg:
    """One breathing segment: a smooth monotone (or flat) volume curve.

    ``shape`` (optional) is a recorded breath's own monotone profile, 0 to 1
    on an even grid over the segment, used instead of the cosine ramp.
    """

    __slots__ = (
        "d0",
        "dur",
        "end",
        "gain",
        "kind",
        "prev_kind",
        "rep",
        "shape",
        "squeeze",
        "start",
        "v0",
        "v1",
    )

    def __init__(
        self,
        start: float,
        dur: float,
        kind: int,
        v0: float,
        v1: float,
        prev_kind: int,
        rep: int,
        gain: float,
        shape: FloatArray | None = None,
        squeeze: float = 0.0,
    ) -> None:
        self.start = start
        self.dur = dur
        self.end = start + dur  # moved earlier when the segment is cut short
        self.kind = kind
        self.v0 = v0
        self.v1 = v1
        self.prev_kind = prev_kind
        self.rep = rep  # outcome of the drop rep this breath carries
        self.gain = gain
        self.shape = shape
        # A learner's squeeze on the exhale of this rep (fraction of the maximum).
        self.squeeze = squeeze
        # Drop depth (fraction of the maximal drop) when the segment starts; set
        # once, when the segment is first generated (by the pelvic floor).
        self.d0: float | None = None

    def value(self, t: float) -> float:
        """The volume at one time (scalar maths: the planner calls this often)."""
        if self.kind not in (INHALE, EXHALE):
            return self.v0
        x = min(max((t - self.start) / self.dur, 0.0), 1.0)
        if self.shape is not None:
            s = float(np.interp(x, np.linspace(0.0, 1.0, self.shape.size), self.shape))
        elif self.kind == INHALE:
            s = 0.5 - 0.5 * math.cos(math.pi * x)
        else:
            s = 0.5 - 0.5 * math.cos(math.pi * x**0.7)
        return self.v0 + (self.v1 - self.v0) * s

    def values(self, t: FloatArray) -> FloatArray:
        if self.kind not in (INHALE, EXHALE):
            return np.full(t.shape, self.v0)
        x = np.clip((t - self.start) / self.dur, 0.0, 1.0)
        if self.shape is not None:
            s = np.interp(x, np.linspace(0.0, 1.0, self.shape.size), self.shape)
        elif self.kind == INHALE:
            s = 0.5 - 0.5 * np.cos(np.pi * x)
        else:
            # Passive recoil: faster early, slow tail (still smooth at both ends).
            s = 0.5 - 0.5 * np.cos(np.pi * x**0.7)
        out: FloatArray = self.v0 + (self.v1 - self.v0) * s
        return out


@dataclass(frozen=True)
class FreeBreath:
    """One breath taken on the person's own rhythm.

    Parameters
    ----------
    inhale_s, exhale_s, pause_s : float
        Durations; the pause is end-expiratory (0: none).
    depth : float
        Tidal volume of the breath (relative units).
    level : float
        End-expiratory volume it starts from.
    inhale_shape, exhale_shape : ndarray or None
        Monotone 0..1 profiles of a recorded breath (None: the cosine ramps).
    """

    inhale_s: float
    exhale_s: float
    pause_s: float
    depth: float
    level: float
    inhale_shape: FloatArray | None = None
    exhale_shape: FloatArray | None = None


class BreathSource(Protocol):
    """Where free breaths come from: ``next_breath(level) -> FreeBreath``."""

    def next_breath(self, level: float) -> FreeBreath: ...


class SyntheticBreaths:
    """Free breaths drawn at random: AR(1) periods, pauses about half the time, sighs."""

    def __init__(self, params: BodyParams, rng: np.random.Generator) -> None:
        self.params = params
        self.rng = rng
        self._z_period = 0.0

    def next_breath(self, level: float) -> FreeBreath:
        p = self.params
        z = self.rng.standard_normal(5)
        u = self.rng.random(2)
        k = p.breath_irregularity / 0.1
        phi = 0.3  # breath-to-breath correlation of the period
        self._z_period = phi * self._z_period + math.sqrt(1 - phi * phi) * z[0]
        t0 = 60.0 / p.natural_rate_bpm
        period = t0 * min(max(1.0 + p.breath_irregularity * self._z_period, 0.5), 2.0)
        fi = min(max(0.4 + 0.03 * k * z[1], 0.28), 0.52)
        fp = min(max(0.12 + 0.06 * k * z[2], 0.0), 0.3) if u[0] < 0.55 else 0.0
        depth = p.tidal_depth * min(max(1.0 + p.breath_irregularity * z[3], 0.3), 2.5)
        if u[1] < 0.02:
            depth *= 2.0  # a sigh
        return FreeBreath(
            inhale_s=period * fi,
            exhale_s=period * (1.0 - fi - fp),
            pause_s=period * fp,
            depth=depth,
            level=0.6 * level + 0.05 * p.tidal_depth * k * z[4],
        )


# A pending switch to a new segment: (time, kind, duration, target volume).
_Switch = tuple[float, int, float, float | None]


class Breathing:
    """The breathing controller: plans segments tick by tick, gives the volume.

    Parameters
    ----------
    params : BodyParams
        The person.
    t0 : float
        Start time (a short pause first).
    rng_breath, rng_rep : numpy.random.Generator
        Breathing decisions; the drop-rep outcome each inhale carries.
    source : BreathSource or None
        Free breaths; None draws them with ``rng_breath``.
    learner : Learner or None
        A beginner's mistakes (None: a skilled person).
    """

    def __init__(
        self,
        params: BodyParams,
        t0: float,
        rng_breath: np.random.Generator,
        rng_rep: np.random.Generator,
        source: BreathSource | None = None,
        *,
        learner: Learner | None = None,
    ) -> None:
        self.params = params
        self.learner = learner
        self._rng = rng_breath
        self._rng_rep = rng_rep
        self.level = 0.0  # end-expiratory volume (drifts a little)
        self._plan = FreeBreath(
            inhale_s=0.0,
            exhale_s=60.0 / params.natural_rate_bpm * 0.45,
            pause_s=0.0,
            depth=params.tidal_depth,
            level=0.0,
        )
        self._pause_left = 0.0
        first = Seg(t0, 0.3 + 1.5 * float(rng_breath.random()), PAUSE, 0.0, 0.0, 0, MISS, 1.0)
        self.segs: deque[Seg] = deque([first])
        self._source = source if source is not None else SyntheticBreaths(params, rng_breath)
        self._cache: SegArrays | None = None
        self._pending: _Switch | None = None
        self._last_cue: tuple[int, float] | None = None
        self._next_cue_est = -math.inf
        self._valsalva = False
        self._comp = 1.0
        # A person short of breath on long exhales (params.exhale_limit_s).
        self.exhale_limit = params.exhale_limit_s or math.inf
        self._air_hunger = False

    # -------------------------------------------------------------- per tick

    def tick(self, tk: float, tend: float, it: Intent, valsalva: bool) -> None:
        """Take the intent at tick ``tk`` and plan the breathing up to ``tend``."""
        tidal = self.params.tidal_depth
        self._comp = min(max(float(it.compliance), 0.0), 1.0)
        if valsalva != self._valsalva:
            self._valsalva = valsalva
            self._last_cue = None
            cur = self.segs[-1]
            if valsalva:
                # Take a breath, then hold it and push (Valsalva).
                target = self.level + 0.7 * tidal
                if cur.value(tk) < target - 0.1 * tidal:
                    self._pending = (tk, INHALE, 0.9, target)
                else:
                    self._pending = (tk, HOLD, 60.0, None)
            else:
                self._pending = (tk, EXHALE, 1.6, self.level)
                # Finish the release first: only the pacer's next phase is a cue.
                self._pacer_cue(tk, it, follow=False)
        elif not valsalva:
            self._pacer_cue(tk, it)
        self._advance(tend, it, valsalva)

    def _pacer_cue(self, tk: float, it: Intent, follow: bool = True) -> None:
        bt = it.breath
        miss = 1.0 - self._comp
        if bt is None or self._comp <= 0.0 or bt.phase == BreathPhase.UNKNOWN:
            self._last_cue = None
            return
        phase = int(bt.phase)
        dur_p = {
            BreathPhase.INHALE: bt.inhale_s,
            BreathPhase.EXHALE: bt.exhale_s,
            BreathPhase.PAUSE: bt.hold_s,
        }[bt.phase]
        onset = tk - min(max(bt.progress, 0.0), 1.0) * max(dur_p, 0.0)
        last = self._last_cue
        if last is not None and last[0] == phase and abs(last[1] - onset) < 0.25:
            return
        self._last_cue = (phase, onset)
        self._next_cue_est = onset + dur_p
        if not follow:
            return
        u = float(self._rng.random())
        z = self._rng.standard_normal(3)
        if u < 0.6 * miss + 0.4 * miss**4:
            return  # did not follow this cue
        lag = max(0.05, 0.2 + 0.5 * miss + (0.07 + 0.6 * miss) * z[0])
        if self.learner is not None and bt.phase == BreathPhase.EXHALE:
            lag += self.learner.hold_s()  # a beginner holds the breath at the top
        t_sw = max(tk, onset + lag)
        rem = max(0.3, onset + dur_p - t_sw)
        dur = max(0.4, rem * (1.0 + (0.04 + 0.3 * miss) * z[1]))
        tidal = self.params.tidal_depth
        target: float | None
        if bt.phase == BreathPhase.INHALE:
            sd = max(0.05, 0.5 * self.params.breath_irregularity) + 0.4 * miss
            target = self.level + tidal * max(0.2, bt.depth * (1.0 + sd * z[2]))
            kind = INHALE
        elif bt.phase == BreathPhase.EXHALE:
            target = self.level + tidal * 0.25 * miss * abs(z[2])
            kind = EXHALE
            dur = self._within_reach(bt.exhale_s, dur)
        else:
            target, kind = None, PAUSE
        self._pending = (t_sw, kind, dur, target)

    def _within_reach(self, asked_s: float, dur: float) -> float:
        """A paced exhale's length for a person short of breath (``exhale_limit_s``)."""
        limit = self.exhale_limit
        if not math.isfinite(limit):
            return dur
        if asked_s <= 1.3 * limit:  # within reach: practice lengthens it
            self.exhale_limit += self.params.exhale_training * max(asked_s - limit, 0.0)
        self._air_hunger = dur > limit
        return min(dur, limit)

    def _advance(self, tend: float, it: Intent, valsalva: bool) -> None:
        """Run the plan up to ``tend`` (cut segments at pending switches)."""
        while True:
            cur = self.segs[-1]
            pend = self._pending
            if pend is not None and pend[0] <= min(cur.end, tend):
                self._pending = None
                self._switch(*pend)
                continue
            if cur.end <= tend:
                self._plan_next(cur.end, it, valsalva)
                continue
            return

    def _switch(self, t: float, kind: int, dur: float, target: float | None) -> None:
        segs = self.segs
        cur = segs[-1]
        v = cur.value(t)
        if t <= cur.start + 1e-9 and len(segs) > 1:
            # The segment has not started yet (nothing generated): replace it.
            segs.pop()
        else:
            cur.end = max(t, cur.start)
        self._start(t, kind, dur, v, target)

    def _start(
        self,
        t: float,
        kind: int,
        dur: float,
        v0: float,
        target: float | None,
        shape: FloatArray | None = None,
    ) -> None:
        tidal = self.params.tidal_depth
        v1 = v0 if target is None else target
        # A "move" too small to be one is a pause; volume curves stay monotone.
        if (kind == INHALE and v1 < v0 + 0.05 * tidal) or (
            kind == EXHALE and v1 > v0 - 0.05 * tidal
        ):
            kind, v1 = PAUSE, v0
        if kind in (PAUSE, HOLD):
            v1 = v0
        prev = self.segs[-1] if self.segs else None
        prev_kind = prev.kind if prev is not None else 0
        squeeze = 0.0
        if kind == INHALE:
            rep, gain = self._draw_rep()
            if self.learner is not None:
                m = self.learner.rep()
                gain *= m.depth
                squeeze = m.squeeze
                if m.push and rep == DO:
                    rep = PUSH
        elif prev is not None:
            rep, gain, squeeze = prev.rep, prev.gain, prev.squeeze
        else:
            rep, gain = MISS, 1.0
        self.segs.append(Seg(t, max(dur, 1e-3), kind, v0, v1, prev_kind, rep, gain, shape,
                             squeeze))
        self._cache = None

    def _draw_rep(self) -> tuple[int, float]:
        """Outcome of a drop-on-inhale rep (drawn for every inhale, used if dropping)."""
        u = self._rng_rep.random(2)
        z = float(self._rng_rep.standard_normal())
        miss = 1.0 - self._comp
        rep = DO
        if u[0] < 0.5 * miss + 0.5 * miss**4:
            rep = MISS
        elif u[1] < 0.25 * miss:
            rep = PUSH
        gain = min(max(1.0 + (0.04 + 0.25 * miss) * z, 0.3), 1.3)
        return rep, gain

    def _plan_next(self, t: float, it: Intent, valsalva: bool) -> None:
        prev = self.segs[-1]
        tidal = self.params.tidal_depth
        v = prev.value(t)
        if valsalva:
            if prev.kind == INHALE:
                self._start(t, HOLD, 60.0, v, None)
            elif prev.kind == HOLD:
                self._start(t, EXHALE, 1.6, v, self.level)
            else:
                self._start(t, INHALE, 0.9, v, self.level + 0.7 * tidal)
            return
        if it.breath is not None and self._comp > 0.0 and prev.kind in (INHALE, EXHALE):
            if prev.kind == EXHALE and self._air_hunger:
                # Out of breath before the pacer's inhale: breathe in now.
                self._air_hunger = False
                self._start(t, INHALE, max(it.breath.inhale_s, 0.8), v, self.level + tidal)
                return
            # Reached the end of the move before the pacer: wait for its cue.
            wait = max(0.3, self._next_cue_est - t) + 1.0 + 0.6 * (1.0 - self._comp)
            self._start(t, PAUSE, wait, v, None)
            return
        # Free breathing (also the way out of a wait whose cue never came).
        plan = self._plan
        high = v > self.level + 0.35 * tidal
        if prev.kind == INHALE or (prev.kind in (PAUSE, HOLD) and high):
            self._start(t, EXHALE, max(plan.exhale_s, 0.8), v, self.level, plan.exhale_shape)
        elif prev.kind == EXHALE and self._pause_left > 0.05:
            self._start(t, PAUSE, self._pause_left, v, None)
            self._pause_left = 0.0
        else:
            plan = self._plan = self._source.next_breath(self.level)
            self._pause_left = plan.pause_s
            self.level = plan.level
            self._start(t, INHALE, plan.inhale_s, v, self.level + plan.depth, plan.inhale_shape)

    # -------------------------------------------------------------- per block

    def block(self, tg: FloatArray) -> tuple[list[Seg], list[tuple[int, int]], FloatArray]:
        """The segments over grid times ``tg``, their index spans, and the volume."""
        tb0, tb1 = float(tg[0]), float(tg[-1]) + DT
        overlapping: list[Seg] = []
        for seg in reversed(self.segs):
            if seg.end <= tb0:
                break
            if seg.start < tb1:
                overlapping.append(seg)
        overlapping.reverse()
        v = np.empty(tg.size)
        spans = []
        for seg in overlapping:
            a = int(np.searchsorted(tg, seg.start, "left"))
            b = int(np.searchsorted(tg, seg.end, "left"))
            spans.append((a, b))
            v[a:b] = seg.values(tg[a:b])
        return overlapping, spans, v

    def seg_arrays(self) -> SegArrays:
        """Start times, kinds and previous kinds of the kept segments."""
        if self._cache is None:
            segs = self.segs
            self._cache = (
                np.fromiter((s.start for s in segs), np.float64, len(segs)),
                np.fromiter((s.kind for s in segs), np.int64, len(segs)),
                np.fromiter((s.prev_kind for s in segs), np.int64, len(segs)),
            )
        return self._cache

    def phases(self, t: FloatArray) -> npt.NDArray[np.int8]:
        """Breath phase codes at times ``t`` (the segment each lies in)."""
        starts, kinds, _ = self.seg_arrays()
        idx = np.searchsorted(starts, t, side="right") - 1
        out: npt.NDArray[np.int8] = KIND_TO_PHASE[kinds[np.maximum(idx, 0)]]
        return out

    def onsets(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """Inhale and exhale onsets in ``[t0, t1)`` (a new kind after another)."""
        starts, kinds, prev = self.seg_arrays()
        inside = (starts >= t0) & (starts < t1) & (kinds != prev)
        return (
            starts[inside & (kinds == INHALE)].copy(),
            starts[inside & (kinds == EXHALE)].copy(),
        )

    def trim(self, oldest: float) -> None:
        """Forget segments that ended well before ``oldest``."""
        changed = False
        while len(self.segs) > 1 and self.segs[0].end < oldest - 1.0:
            self.segs.popleft()
            changed = True
        if changed:
            self._cache = None
