"""The pelvic floor: how the person's actions become drop, contraction and strain.

Actions start after a reaction lag. Below compliance 1 an action may be missed,
its effort is off, and a drop may come out as a push (bearing down: the common
mistake). A drop on inhale goes rep by rep: the floor descends with each inhale
(in step with its volume curve), recoils by ``exhale_recoil`` of its depth as
the exhale starts and keeps the rest; a sustained drop just holds. A
contraction rises and relaxes with muscle time constants and fatigues over
long holds. A strain raises intra-abdominal pressure during the breath hold
while the floor itself is pushed down.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from devices.intent import Intent, PelvicAction
from devices.virtual.body.breathing import EXHALE, HOLD, INHALE, Seg
from devices.virtual.body.common import DO, DT, MISS, PUSH, SPT, TICK, FloatArray, Lag
from devices.virtual.body.params import BodyParams
from devices.vocab import PelvicState

__all__ = ["FloorBlock", "PelvicFloor", "pelvic_labels"]

_ACTION_CODE: Final = {
    PelvicAction.REST: 0,
    PelvicAction.DROP: 1,
    PelvicAction.CONTRACT: 2,
    PelvicAction.STRAIN: 3,
}
_A_DROP: Final = 1
_A_CONTRACT: Final = 2
_A_STRAIN: Final = 3


@dataclass(frozen=True)
class FloorBlock:
    """The pelvic components over one block, cmH2O.

    ``d`` tone change (<= 0 for a drop), ``c`` contraction, ``s`` strain
    (intra-abdominal pressure), ``dref`` the current drop target.
    """

    d: FloatArray
    c: FloatArray
    s: FloatArray
    dref: FloatArray


def pelvic_labels(
    d: FloatArray, c: FloatArray, s: FloatArray, dref: FloatArray, params: BodyParams
) -> npt.NDArray[np.int8]:
    """Ground-truth pelvic state from the components (see the package notes)."""
    out = np.full(d.shape, PelvicState.REST, dtype=np.int8)
    strain = (s > 2.0) & (s >= c)
    con = ~strain & (c > min(0.1 * params.mvc_cmH2O, 2.0))
    drop = ~strain & ~con & (-d > np.minimum(0.3 * dref, 1.0))
    out[drop] = PelvicState.DROP
    out[con] = PelvicState.CONTRACTION
    out[strain] = PelvicState.STRAIN
    return out


def _inhale_fraction(seg: Seg, t: FloatArray) -> FloatArray:
    """How far through its inhale a segment's volume curve is, 0..1."""
    x = np.clip((t - seg.start) / seg.dur, 0.0, 1.0)
    if seg.shape is not None:
        out: FloatArray = np.interp(x, np.linspace(0.0, 1.0, seg.shape.size), seg.shape)
        return out
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _drop_depth(seg: Seg, t: FloatArray, recoil: float, tidal: float) -> FloatArray:
    """Drop depth (fraction of the maximal drop) over a segment, done right.

    The floor descends with the inhale, holds at the top, recoils by ``recoil``
    of its depth as the exhale starts and keeps the rest.
    """
    d0 = seg.d0 or 0.0
    if seg.kind == INHALE:
        # Deeper breaths take it a little deeper (sub-proportionally), never shallower.
        goal = max(seg.gain * math.sqrt(min(max(seg.v1 / tidal, 0.0), 1.44)), d0)
        return d0 + (goal - d0) * _inhale_fraction(seg, t)
    if seg.kind == EXHALE:
        return np.full(t.shape, (1.0 - recoil) * d0)
    return np.full(t.shape, d0)


class PelvicFloor:
    """Pelvic actions per control tick, components per block.

    Parameters
    ----------
    params : BodyParams
        The person.
    rng : numpy.random.Generator
        Lags, misses and effort errors of the actions.
    block_n : int
        Grid samples per generation block.
    """

    def __init__(self, params: BodyParams, rng: np.random.Generator, block_n: int) -> None:
        self.params = params
        self._rng = rng
        self._last_sig: tuple[PelvicAction, float, bool] | None = None
        self.pending: deque[tuple[float, int, float, bool, int]] = deque()
        self._act, self._eff, self._doi, self._outcome = 0, 0.0, True, DO
        self._c = 0.0
        self._fatigue = 0.0
        self._depth_seg: Seg | None = None  # last segment given a drop depth
        self._run_last = False  # dropping on inhale at the end of the last block
        self._lag_d = Lag(params.drop_tau_s, block_n)
        self._lag_s = Lag(params.strain_tau_s, block_n)
        self._lag_sq = Lag(params.contract_rise_s, block_n)  # a learner's exhale squeeze
        self._ticks: list[tuple[int, float, bool, int, float, float, float]] = []

    @property
    def valsalva(self) -> bool:
        """Straining now (the breath is held)."""
        return self._act == _A_STRAIN and self._outcome == DO

    def tick(self, tk: float, it: Intent) -> None:
        """Take the intent at tick ``tk``; the tick's state is kept for the block."""
        self._take_intent(tk, it)
        law = self._contraction_tick()
        self._ticks.append((self._act, self._eff, self._doi, self._outcome, *law))

    def _take_intent(self, tk: float, it: Intent) -> None:
        sig = (it.pelvic, float(it.effort), bool(it.drop_on_inhale))
        if sig != self._last_sig:
            self._last_sig = sig
            miss = 1.0 - min(max(float(it.compliance), 0.0), 1.0)
            u = self._rng.random(2)
            z = self._rng.standard_normal(2)
            outcome = DO
            if it.pelvic is PelvicAction.REST:
                lag = 0.15 + 0.35 * miss + 0.05 * abs(z[0])
            else:
                lag = 0.3 + 0.8 * miss + (0.08 + 0.4 * miss) * abs(z[0])
                if u[0] < 0.5 * miss + 0.5 * miss**4:
                    outcome = MISS
                elif it.pelvic is PelvicAction.DROP and u[1] < 0.25 * miss:
                    outcome = PUSH
            effort = min(max(float(it.effort), 0.0), 1.0)
            if effort > 0:
                effort = min(max(effort * (1.0 + (0.03 + 0.25 * miss) * z[1]), 0.05), 1.0)
            t_apply = tk + lag
            if self.pending:
                t_apply = max(t_apply, self.pending[-1][0])
            self.pending.append(
                (t_apply, _ACTION_CODE[it.pelvic], effort, bool(it.drop_on_inhale), outcome)
            )
        while self.pending and self.pending[0][0] <= tk + 1e-9:
            _, self._act, self._eff, self._doi, self._outcome = self.pending.popleft()

    def _contraction_tick(self) -> tuple[float, float, float]:
        """Exact first-order muscle response over one tick; returns its law."""
        p = self.params
        c0 = self._c
        tgt = 0.0
        if self._act == _A_CONTRACT and self._outcome == DO:
            tgt = p.mvc_cmH2O * self._eff * (1.0 - p.fatigue_depth * self._fatigue)
        tau = p.contract_rise_s if tgt > c0 else p.contract_relax_s
        self._c = tgt + (c0 - tgt) * math.exp(-TICK / tau)
        load = c0 / p.mvc_cmH2O
        if load > 0.05:
            self._fatigue += TICK * load * (1.0 - self._fatigue) / p.fatigue_tau_s
        else:
            self._fatigue -= TICK * self._fatigue / p.fatigue_recovery_s
        return c0, tgt, tau

    def block(
        self, tg: FloatArray, segs: list[Seg], spans: list[tuple[int, int]], vn: FloatArray
    ) -> FloorBlock:
        """Components over the block's grid ``tg`` from this block's ticks."""
        ticks = np.array(self._ticks, dtype=np.float64).T
        self._ticks = []
        act, eff, doi, outc = (np.repeat(ticks[i], SPT) for i in range(4))
        act_i, outc_i, doi_b = act.astype(np.int8), outc.astype(np.int8), doi.astype(bool)
        kind = np.empty(tg.size, dtype=np.int8)
        rep = np.empty(tg.size, dtype=np.int8)
        squeeze = np.zeros(tg.size)
        for seg, (a, b) in zip(segs, spans, strict=True):
            kind[a:b] = seg.kind
            rep[a:b] = seg.rep
            squeeze[a:b] = seg.squeeze
        dropping = act_i == _A_DROP
        run = dropping & doi_b & (rep == DO)
        depth = self._drop_depths(tg, segs, spans, run)
        d_amp = self.params.drop_cmH2O * eff
        d_tgt = np.where(run, -d_amp * depth, 0.0)
        d_tgt = np.where(dropping & ~doi_b & (outc_i == DO), -d_amp, d_tgt)
        doing = dropping & (doi_b | (outc_i != MISS))
        dref = np.where(doing, d_amp, self.params.drop_cmH2O)
        s = self._lag_s(self._strain_target(act_i, eff, doi_b, outc_i, kind, rep, vn))
        p = self.params
        # The floor is pushed down while straining (sEMG falls below rest).
        d = self._lag_d(d_tgt) - 0.5 * p.drop_cmH2O * s / max(p.strain_cmH2O, 1e-9)
        # Contraction: exact per-tick exponentials.
        c_start, c_tgt, c_tau = ticks[4], ticks[5], ticks[6]
        jt = np.arange(SPT) * DT
        c = c_tgt[:, None] + (c_start - c_tgt)[:, None] * np.exp(-jt[None, :] / c_tau[:, None])
        c = c.reshape(-1)
        if np.any(squeeze) or np.any(self._lag_sq.state):
            # A beginner squeezes on some exhales of a drop-on-inhale set.
            sq = np.where(dropping & doi_b & (kind == EXHALE), squeeze * p.mvc_cmH2O, 0.0)
            c = c + self._lag_sq(sq)
        return FloorBlock(d=d, c=c, s=s, dref=dref)

    def _drop_depths(
        self,
        tg: FloatArray,
        segs: list[Seg],
        spans: list[tuple[int, int]],
        run: npt.NDArray[np.bool_],
    ) -> FloatArray:
        """Drop on inhale, rep by rep: depth chained from segment to segment."""
        r, tidal = self.params.exhale_recoil, self.params.tidal_depth
        depth = np.zeros(tg.size)
        for seg, (a, b) in zip(segs, spans, strict=True):
            if seg.d0 is None:
                was = bool(run[a - 1]) if a > 0 else self._run_last
                prev = self._depth_seg
                end = np.array([prev.end]) if prev is not None else None
                seg.d0 = (
                    float(_drop_depth(prev, end, r, tidal)[0])
                    if (was and prev is not None and end is not None)
                    else 0.0
                )
                self._depth_seg = seg
            if b > a:
                depth[a:b] = _drop_depth(seg, tg[a:b], r, tidal)
        self._run_last = bool(run[-1])
        return depth

    def _strain_target(
        self,
        act: npt.NDArray[np.int8],
        eff: FloatArray,
        doi: npt.NDArray[np.bool_],
        outc: npt.NDArray[np.int8],
        kind: npt.NDArray[np.int8],
        rep: npt.NDArray[np.int8],
        vn: FloatArray,
    ) -> FloatArray:
        """Intra-abdominal pressure during the breath hold of a strain, or a push
        with the breath instead of a drop (the mistake)."""
        p = self.params
        s_full = p.strain_cmH2O * eff
        s_tgt = np.where((act == _A_STRAIN) & (outc == DO) & (kind == HOLD), s_full, 0.0)
        dropping = act == _A_DROP
        push = dropping & ((doi & (rep == PUSH)) | (~doi & (outc == PUSH)))
        out: FloatArray = np.where(push, p.push_fraction * s_full * np.where(doi, vn, 1.0), s_tgt)
        return out
