"""The state machine: zones past the margins, hysteresis, minimum dwell.

Each sample's *zone* is the state its level relative to rest calls for: below
the drop margin a drop, past the contraction margin a rise (contraction or
strain), inside half of either margin rest; in between it keeps the zone it
had (hysteresis). A zone becomes the reported *state* once it has lasted the
minimum dwell; events are back-dated to where the run began.

Rise class: on a two-channel probe, bearing down raises the tip more than the
base, a squeeze the base more than the tip, and both moved alike is the probe
or the tone shifting, not the floor (rest). With one channel a rise during a
breath hold is strain, else a contraction: either way never a drop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.pelvic.hold import BoolArray
from biofeedback.signal.pelvic.rest import COMMON_FRAC, Learned
from biofeedback.signal.types import Int8Array, PelvicEvent, Thresholds
from devices.vocab import PelvicState

__all__ = [
    "RISE_MARGIN_FRAC",
    "Margins",
    "RunState",
    "Zones",
    "common_lead",
    "margins_for",
]

UNK = np.int8(PelvicState.UNKNOWN)
DROP = np.int8(PelvicState.DROP)
REST = np.int8(PelvicState.REST)
CON = np.int8(PelvicState.CONTRACTION)
STR = np.int8(PelvicState.STRAIN)

#: ``(drop, contraction, strain)`` margins, stream units.
Margins = tuple[float, float, float]


def common_lead(rel: FloatArray, md: float) -> FloatArray:
    """How far the tip may part from the base and the change still be common to
    both: a fraction of the change, up to a few drop margins (a drop during a
    large shift still parts them by half the drop)."""
    out: FloatArray = COMMON_FRAC * np.minimum(np.abs(rel), 3.0 * md)
    return out


#: Uncalibrated contraction margin, as a fraction of the largest recent rise.
RISE_MARGIN_FRAC = 0.2


def margins_for(lr: Learned, thresholds: Thresholds | None) -> Margins:
    """``(drop, contraction, strain)`` margins from what was learned and the calibration."""
    # adaptive: beyond the noise (4 sd after smoothing) and the breath ripple
    ripple_pp = 2.0 * math.sqrt(2.0 * max(lr.ripple_var, 0.0))
    floor = 1e-6 * max(abs(lr.rest or 0.0), 1.0)
    md = max(4.0 * lr.sigma, 1.5 * ripple_pp, floor)
    # a rise counts once past the noise and the ripple, and past a fifth of
    # the person's recent contractions: what is left of a contraction as it
    # relaxes (under a tenth of it, half the margin) is rest again, as an
    # MVC-based calibrated margin would have it
    mc = max(6.0 * lr.sigma, 2.0 * ripple_pp, floor, RISE_MARGIN_FRAC * lr.rise_peak)
    ms = mc
    th = thresholds
    if th is not None:
        # calibrated margins (drop- and MVC-based), never below what today's
        # noise, ripple and contractions allow: a margin inside the noise
        # reads drift and ripple as drops
        if th.drop_margin is not None:
            md = max(th.drop_margin, md)
        if th.contraction_margin is not None:
            mc = max(th.contraction_margin, mc)
        ms = max(th.strain_margin, ms) if th.strain_margin is not None else min(ms, mc)
    return md, mc, ms


@dataclass
class RunState:
    """Where the state machine stands between stretches."""

    cand: np.int8 = UNK  # last candidate zone (hysteresis)
    cand_block: np.int8 = UNK  # the candidate zone when the current block began
    run_start_t: float = 0.0  # when the current candidate run began
    run_len: int = 0  # its length so far, samples
    run_val: np.int8 = UNK  # its zone
    state: np.int8 = UNK  # the reported state

    def settled(self, dwell_n: int) -> None:
        """Resting, as if for the dwell already (after settling or a gap)."""
        self.state = self.cand = self.run_val = REST
        self.run_len = dwell_n


class Zones:
    """Zones, dwell and events over stretches of relative level.

    Parameters
    ----------
    two : bool
        A two-channel (base and tip) probe.
    dwell_n : int
        Minimum run, samples, before a zone is reported.
    """

    def __init__(self, two: bool, dwell_n: int) -> None:
        self.two = two
        self.dwell_n = dwell_n
        self.run = RunState()

    def held(
        self,
        rel: FloatArray,
        tip_dev: FloatArray | None,
        hold: bool | BoolArray,
        m: Margins,
        span: tuple[float, float] | None = None,
    ) -> bool:
        """No sample of the stretch can change the state: what :meth:`step`
        would find, without it (``tip_dev``: the tip's level relative to its
        rest, two channels; ``span``: ``rel``'s lowest and highest value, NaN
        if it has one, when the caller has them)."""
        r = self.run
        st = r.state
        if not (st == r.cand == r.run_val):
            return False
        md, mc, _ = m
        lo, hi = (float(rel.min()), float(rel.max())) if span is None else span
        if st == REST:
            return lo > -md and hi <= mc
        if st == DROP:
            return hi <= -0.5 * md and self._drop_holds(rel, tip_dev, md)
        if st >= CON:
            return lo >= 0.5 * mc and self._rise_holds(st, rel, tip_dev, hold, m)
        return False

    def _drop_holds(self, rel: FloatArray, tip_dev: FloatArray | None, md: float) -> bool:
        """No sample below the drop margin moved both sensors alike."""
        if tip_dev is None:
            return True
        dt = tip_dev - rel
        return not np.count_nonzero((rel < -md) & (np.abs(dt) <= common_lead(rel, md)))

    def _rise_holds(
        self,
        st: np.int8,
        rel: FloatArray,
        tip_dev: FloatArray | None,
        hold: bool | BoolArray,
        m: Margins,
    ) -> bool:
        """Every sample half a contraction margin up keeps the rise class ``st``:
        a rise (past ``mc``) unless the tip/base split or the breath hold says
        the other class, or the hysteresis band."""
        md, mc, ms = m
        rise = rel > mc
        if tip_dev is not None:
            dt = tip_dev - rel
            lead = common_lead(rel, md)
            strain = dt > lead
            # a contraction holds while the base leads (no strain, no common
            # shift), a strain while the tip leads
            bad = rise & ~(dt < -lead) & (~strain | (rel > ms)) if st == CON else rise & ~strain
            return not np.count_nonzero(bad)
        # (``hold`` per sample, or one bool for the stretch)
        if isinstance(hold, bool):
            if st == CON:
                return not hold or not np.count_nonzero(rise & (rel > ms))
            return not np.count_nonzero(rise & ~(rel > ms) if hold else rise)
        strain = (rel > ms) & hold
        return not np.count_nonzero(rise & strain if st == CON else rise & ~strain)

    def zone(
        self, rel: FloatArray, tip_dev: FloatArray | None, hold: bool | BoolArray, m: Margins
    ) -> Int8Array:
        """Each sample's zone (0: inside the hysteresis band, keeps the last one)."""
        md, mc, ms = m
        z = np.zeros(rel.shape[0], dtype=np.int8)
        z[rel < -md] = DROP
        z[(rel > -0.5 * md) & (rel < 0.5 * mc)] = REST
        rise = rel > mc
        if tip_dev is not None:
            dt = tip_dev - rel  # tip above base: bearing down
            lead = common_lead(rel, md)
            if rise.any():
                strain = rise & (dt > lead) & (rel > ms)
                z[rise & (dt < -lead)] = CON
                z[strain] = STR
                # tip ahead but under the strain margin: hold the previous rise class
                between = rise & (dt > lead) & ~strain
                if between.any():
                    # (the class as the block began: the same however chunks split it)
                    z[between] = STR if self.run.cand_block == STR else CON
            # both sensors moved alike: the probe or the tone shifted, not the floor
            z[((rel < -md) | rise) & (np.abs(dt) <= lead)] = REST
        elif rise.any():
            z[rise] = CON
            # one channel: a rise during a breath hold is bearing down
            if isinstance(hold, bool):
                if hold:
                    z[rise & (rel > ms)] = STR
            else:
                z[rise & (rel > ms) & hold] = STR
        return z

    def step(
        self,
        t: FloatArray,
        rel: FloatArray,
        tip_dev: FloatArray | None,
        hold: bool | BoolArray,
        m: Margins,
        state: Int8Array,
        events: list[PelvicEvent],
    ) -> None:
        """The full state machine over a stretch (writes ``state``, appends events)."""
        r = self.run
        n = int(rel.shape[0])
        z = self.zone(rel, tip_dev, hold, m)
        pos = np.arange(n)
        idx = np.where(z != 0, pos, -1)
        np.maximum.accumulate(idx, out=idx)
        cand = np.where(idx >= 0, z[np.maximum(idx, 0)], r.cand)
        # minimum dwell: a candidate run is reported once it has lasted dwell_n
        change = np.empty(n, dtype=bool)
        change[0] = cand[0] != r.run_val
        change[1:] = cand[1:] != cand[:-1]
        start = np.where(change, pos, -1)
        np.maximum.accumulate(start, out=start)
        run_len = np.where(start >= 0, pos - start + 1, pos + 1 + r.run_len)
        eidx = np.where(run_len >= self.dwell_n, pos, -1)
        np.maximum.accumulate(eidx, out=eidx)
        state[:] = np.where(eidx >= 0, cand[np.maximum(eidx, 0)], r.state)
        # events: where the reported state changes (back-dated to the run's start)
        ch = np.flatnonzero(state != np.concatenate(([r.state], state[:-1])))
        if ch.size:
            run_t0 = np.where(start >= 0, t[np.maximum(start, 0)], r.run_start_t)
            for i in ch:  # state changes: a few per breath at most
                events.append(
                    PelvicEvent(
                        state=PelvicState(int(state[i])),
                        t=float(run_t0[i]),
                        t_detected=float(t[i]),
                    )
                )
        if start[-1] >= 0:
            r.run_start_t = float(t[start[-1]])
        r.cand = np.int8(cand[-1])
        r.run_len = int(run_len[-1])
        r.run_val = np.int8(cand[-1])
        r.state = np.int8(state[-1])
