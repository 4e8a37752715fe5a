"""Pelvic-floor state from probe pressure: drop, rest, contraction, strain.

The tracker learns the resting tone and decides, per sample, whether the floor
is below it (a drop: the goal of down-training), near it (rest), above it by a
squeeze (contraction) or pushed up by intra-abdominal pressure (strain:
bearing down, never to be rewarded).

* **Resting tone** is tracked slowly, only over blocks (1 s, at fixed sample
  indices) in which the state stayed REST and the signal was steady, so it
  follows slow drift but never a drop or a contraction.
* **Margins** come from the learned noise and the breathing ripple (the
  pressure rises a little with every belly inhale) when uncalibrated; a
  :class:`~biofeedback.signal.types.Thresholds` object from a calibration
  profile replaces whichever of them it gives.
* **Strain** versus **contraction**: on a two-channel probe (base and tip),
  bearing down raises the tip more than the base, a squeeze the base more than
  the tip. With one channel a rise during a breath hold (told by the caller,
  from the breath detector) is strain; otherwise it counts as a contraction --
  either way it is a rise and never a drop.
* **Hysteresis and dwell**: a state is entered past its margin, left only
  once back inside half of it, and reported after it has lasted the minimum
  dwell; events are back-dated to where the run began.

Causal and chunking-invariant; the hot path is vectorised per chunk (the only
Python loop runs over the 1 s rest-update blocks a chunk spans).
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.filters import (
    BlockMean,
    Ewma,
    FloatArray,
    QualityMonitor,
    RingBuffer,
    SosFilter,
    lowpass_sos,
    phase_delay_s,
)
from biofeedback.signal.types import (
    Int8Array,
    PelvicEvent,
    PelvicOutput,
    Quality,
    Thresholds,
)
from devices.vocab import PelvicState

__all__ = ["PelvicTracker"]

_UNK = np.int8(PelvicState.UNKNOWN)
_DROP = np.int8(PelvicState.DROP)
_REST = np.int8(PelvicState.REST)
_CON = np.int8(PelvicState.CONTRACTION)
_STR = np.int8(PelvicState.STRAIN)

_NOISE_SCALE = 1.0 / (math.sqrt(6.0) * math.sqrt(2.0 / math.pi))

_QUALITY_WEIGHT = {
    Quality.OK: 1.0,
    Quality.NOISY: 0.6,
    Quality.CLIPPED: 0.4,
    Quality.FLAT: 0.0,
    Quality.PROBE_MOVED: 0.0,
}


class PelvicTracker:
    """Pelvic state from one- or two-channel probe pressure.

    Parameters
    ----------
    rate_hz : float
        Stream rate.
    n_channels : int
        1, or 2 for a base/tip probe (``base`` first unless ``tip`` says
        otherwise).
    thresholds : Thresholds or None
        Calibrated figures (stream units); None stays adaptive.
    stream : str
        Stream id (copied into the outputs).
    unit : str
        The stream's unit (checked against ``thresholds.unit``).
    tip : int or None
        Column of the tip sensor on a two-channel probe (default 1).
    settle_s : float
        Signal used to learn the resting tone before the first state.
    dwell_s : float
        Minimum time in a state before it is reported.
    rest_tau_s : float
        Time constant of the resting-tone tracker (while resting).
    """

    def __init__(
        self,
        rate_hz: float,
        n_channels: int = 1,
        *,
        thresholds: Thresholds | None = None,
        stream: str = "",
        unit: str = "",
        tip: int | None = None,
        settle_s: float = 5.0,
        dwell_s: float = 0.25,
        rest_tau_s: float = 20.0,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be a strictly positive number, {rate_hz!r} is invalid")
        if n_channels not in (1, 2) and n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, {n_channels!r} is invalid")
        self.stream = stream
        self.unit = unit
        self.n_in = n_channels
        self.two = n_channels >= 2
        self._tip = (1 if tip is None else tip) if self.two else 0
        self._base = 0 if (self._tip != 0 or not self.two) else 1
        self._dec = BlockMean(max(1, int(rate_hz // 50.0)), n_channels)
        self.fs = rate_hz / self._dec.factor
        lp = min(2.0, 0.4 * self.fs)
        self._sos = lowpass_sos(lp, self.fs, 2)
        self._lp = SosFilter(self._sos, 2 if self.two else 1)
        self._slow = Ewma(4.0, self.fs)  # base's slow part: what is left is the breath ripple
        self._noise_n = max(16, round(5.0 * self.fs))
        self._raw = RingBuffer(self._noise_n, 0)
        self._quality = QualityMonitor(self.fs, n_channels)
        self._lp_noise = math.sqrt(min(1.0, 2.0 * 1.11 * lp / self.fs))
        self.delay_s = phase_delay_s(self._sos, 0.2, self.fs) + dwell_s
        self._dwell_n = max(1, round(dwell_s * self.fs))
        self._block_n = max(2, round(self.fs))
        # settling ends on a block boundary, so it ends at the same sample however chunked
        self._settle_n = self._block_n * max(2, math.ceil(settle_s * self.fs / self._block_n))
        self._alpha = min(1.0, self._block_n / (rest_tau_s * self.fs))
        self._last_in = np.zeros(n_channels)
        self._last_quality = Quality.OK
        self.thresholds: Thresholds | None = None
        self._reset_state()
        self.set_thresholds(thresholds)

    # ------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        self._n = 0  # working samples seen
        self._settling = True
        self._settle_buf: list[FloatArray] = []
        self._rest: float | None = None
        self._rest_tip = 0.0
        self._ripple_var = 0.0
        self._sigma = 0.0
        self._cand = _UNK  # last candidate zone (hysteresis)
        self._run_start_t = 0.0
        self._run_len = 0
        self._run_val = _UNK
        self._state = _UNK
        self._moved_since = -1.0
        self._quiet = 0  # consecutive resting, steady blocks
        self._episode = 0  # -1 a drop, +1 a rise is under way (since the last rest)
        self._excursion = 0.0  # largest distance from rest during it
        self._post = 0  # blocks left in the re-anchoring window after an episode
        self._post_quiet = 0
        self._post_sum = 0.0
        self._post_tip = 0.0
        # block accumulators
        self._b_sum = 0.0
        self._b_tip = 0.0
        self._b_min = math.inf
        self._b_max = -math.inf
        self._b_rsq = 0.0
        self._b_n = 0
        self._b_rest = True

    def reset(self) -> None:
        """A gap: restart the filters; keep the resting tone and margins learned."""
        rest, tip, rv, sg = self._rest, self._rest_tip, self._ripple_var, self._sigma
        self._dec.reset()
        self._lp.reset()
        self._slow.reset()
        self._raw.clear()
        self._quality.reset()
        self._reset_state()
        if rest is not None:
            # keep what was learned and go on without a new settling period
            self._rest, self._rest_tip, self._ripple_var, self._sigma = rest, tip, rv, sg
            self._settling = False
            self._state = self._cand = self._run_val = _REST
            self._run_len = self._dwell_n

    def set_thresholds(self, thresholds: Thresholds | None) -> None:
        """Use calibrated figures (None: back to adaptive margins).

        Raises
        ------
        ValueError
            When the thresholds' unit differs from the stream's.
        """
        if (
            thresholds is not None
            and thresholds.unit is not None
            and self.unit
            and thresholds.unit != self.unit
        ):
            raise ValueError(
                f"thresholds are in {thresholds.unit!r} but the pressure stream is in {self.unit!r}"
            )
        self.thresholds = thresholds
        if thresholds is not None and thresholds.rest_level is not None and self._rest is None:
            self._rest = float(thresholds.rest_level)

    # ------------------------------------------------------------------ figures

    @property
    def rest_level(self) -> float | None:
        """The resting tone now (base channel), stream units."""
        return self._rest

    @property
    def quality(self) -> Quality:
        """Quality after the latest chunk."""
        return self._last_quality

    @property
    def state(self) -> PelvicState:
        return PelvicState(int(self._state))

    def margins(self) -> tuple[float, float, float]:
        """``(drop, contraction, strain)`` margins in use, stream units."""
        # adaptive: beyond the noise (4 sd after smoothing) and the breath ripple
        ripple_pp = 2.0 * math.sqrt(2.0 * max(self._ripple_var, 0.0))
        floor = 1e-6 * max(abs(self._rest or 0.0), 1.0)
        md = max(4.0 * self._sigma, 1.5 * ripple_pp, floor)
        mc = max(6.0 * self._sigma, 2.0 * ripple_pp, floor)
        ms = mc
        th = self.thresholds
        if th is not None:
            md = th.drop_margin if th.drop_margin is not None else md
            mc = th.contraction_margin if th.contraction_margin is not None else mc
            ms = th.strain_margin if th.strain_margin is not None else min(ms, mc)
        return md, mc, ms

    # ------------------------------------------------------------------ processing

    def process(
        self, t: FloatArray, values: FloatArray, *, breath_hold: bool = False
    ) -> PelvicOutput:
        """Process one chunk of probe pressure.

        Parameters
        ----------
        t : ndarray, shape (n,)
            Sample times.
        values : ndarray, shape (n, channels)
            Pressure, stream units.
        breath_hold : bool
            The breath detector sees a hold now (one-channel strain evidence).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, np.newaxis]
        x = self._ffill(values)
        tt, xb = self._dec.process(np.asarray(t, dtype=np.float64), x)
        m = int(tt.shape[0])
        if m == 0:
            return self._output(tt, np.empty(0), np.empty(0), np.empty(0, np.int8), np.empty(0), [])
        cols = [self._base, self._tip] if self.two else [0]
        lp = self._lp.process(xb[:, cols])
        base = lp[:, 0]
        tip = lp[:, 1] if self.two else base
        ripple = base - self._slow.process(base)
        self._raw.append(tt, xb[:, self._base])
        quality = self._quality.process(xb, self._sigma / self._lp_noise)

        state = np.empty(m, dtype=np.int8)
        rel = np.full(m, np.nan)
        conf = np.zeros(m)
        events: list[PelvicEvent] = []
        g0 = self._n
        # segments end at the rest-update block boundaries (global indices)
        first_end = self._block_n - 1 - (g0 % self._block_n)
        ends = list(range(first_end, m, self._block_n))
        if not ends or ends[-1] != m - 1:
            ends.append(m - 1)
        a = 0
        for e in ends:
            b = e + 1
            self._segment(
                tt[a:b],
                base[a:b],
                tip[a:b],
                ripple[a:b],
                g0 + a,
                breath_hold,
                state[a:b],
                rel[a:b],
                conf[a:b],
                events,
            )
            a = b
        self._n += m
        q = self._probe_check(tt, rel, quality)
        if q is not quality:
            quality = q
        conf *= _QUALITY_WEIGHT[quality]
        self._last_quality = quality
        return self._output(tt, base, rel, state, conf, events, quality)

    def _ffill(self, x: FloatArray) -> FloatArray:
        bad = np.isnan(x)
        if not bad.any():
            self._last_in = x[-1].copy()
            return x
        x = x.copy()
        for j in range(x.shape[1]):
            col = x[:, j]
            ok = ~bad[:, j]
            idx = np.where(ok, np.arange(col.shape[0]), -1)
            np.maximum.accumulate(idx, out=idx)
            x[:, j] = np.where(idx >= 0, col[np.maximum(idx, 0)], self._last_in[j])
            if ok.any():
                self._last_in[j] = col[ok][-1]
        return x

    def _noise_now(self) -> float:
        """Noise SD of the smoothed base, from the last seconds of raw samples."""
        r = self._raw.x(max(self._raw.first, self._raw.total - self._noise_n), self._raw.total)
        if r.shape[0] < 3:
            return 0.0
        d2 = r[2:] - 2.0 * r[1:-1] + r[:-2]
        # median |N(0, 6 s^2)| = 0.6745 * sqrt(6) * s
        return float(np.median(np.abs(d2))) / (0.6745 * math.sqrt(6.0)) * self._lp_noise

    def _segment(
        self,
        t: FloatArray,
        base: FloatArray,
        tip: FloatArray,
        ripple: FloatArray,
        g_a: int,
        hold: bool,
        state: Int8Array,
        rel_out: FloatArray,
        conf_out: FloatArray,
        events: list[PelvicEvent],
    ) -> None:
        """States for one stretch inside a rest-update block; update at its end."""
        n = int(t.shape[0])
        g_end = g_a + n  # global index after the stretch
        if self._settling or self._rest is None:
            state[:] = _UNK
            self._settle_buf.append(np.column_stack([base, tip, ripple]))
            if g_end >= self._settle_n:
                self._finish_settle(self._noise_now())
            return
        rest = self._rest
        md, mc, ms = self.margins()
        rel = base - rest
        rel_out[:] = rel
        lo = float(rel.min())
        hi = float(rel.max())
        st = self._state
        if st == self._cand == self._run_val and (
            (st == _REST and lo > -md and hi <= mc) or (st == _DROP and hi <= -0.5 * md)
        ):
            # fast path: no sample leaves the state's zone (plus its hysteresis band)
            state[:] = st
            self._run_len += n
            rep_const: Int8Array | None = None
        else:
            rep_const = self._states(t, rel, tip, hold, md, mc, ms, state, events)
        rep = state
        # episodes: an action that ends by coming most of the way back to rest
        # opens a short window in which a steady level re-anchors the rest
        # (tone drifts during a set; without this a shifted tone would read as
        # a never-ending contraction or drop)
        if self._episode == 0 and rep_const is not None:
            if (rep == _DROP).any():
                self._episode = -1
            elif ((rep == _CON) | (rep == _STR)).any():
                self._episode = 1
        elif self._episode == 0 and st == _DROP:
            self._episode = -1
        if self._episode != 0:
            # the way back: within 30 % of the excursion (drift may have moved rest)
            away = self._episode * rel
            reach = np.maximum.accumulate(away)
            np.maximum(reach, self._excursion, out=reach)
            self._excursion = float(reach[-1])
            # (only once the excursion went past its margin: not the samples before it)
            back = (away < 0.3 * reach) & (reach > (md if self._episode < 0 else mc))
            if back.any():
                if self._post == 0:
                    self._post_quiet = 0
                    self._post_sum = self._post_tip = 0.0
                self._post = 10
                self._episode = 0
        if self._state == _REST and self._post == 0:
            self._excursion = 0.0
        # confidence: 0.5 at the entry threshold, 1 at twice the margin; at rest,
        # 1 on the resting line and 0.5 at the drop threshold
        a = np.abs(rel)
        if rep_const is None:
            c = 1.0 - (0.5 / md) * a if st == _REST else 0.5 + (a - md) * (0.5 / md)
        else:
            mtab = np.array([1.0, md, md, mc, mc])
            mm = mtab[rep]
            c = np.where(rep == _REST, 1.0 - 0.5 * a / mm, 0.5 + (a - mm) / (2.0 * mm))
            c[rep == _UNK] = 0.0
        np.clip(c, 0.0, 1.0, out=conf_out)
        # block accumulators for the rest tracker
        self._b_sum += float(base.sum())
        if self.two:
            self._b_tip += float(tip.sum())
        self._b_min = min(self._b_min, lo + rest)
        self._b_max = max(self._b_max, hi + rest)
        self._b_rsq += float(np.dot(ripple, ripple))
        self._b_n += n
        if self._b_rest:
            self._b_rest = bool(st == _REST) if rep_const is None else bool((rep == _REST).all())
        if g_end % self._block_n == 0:
            # the noise changes slowly: measure it every fifth block
            if (g_end // self._block_n) % 5 == 0 or self._sigma == 0.0:
                self._sigma = self._noise_now()
            self._block_end(self._sigma, md)

    def _states(
        self,
        t: FloatArray,
        rel: FloatArray,
        tip: FloatArray,
        hold: bool,
        md: float,
        mc: float,
        ms: float,
        state: Int8Array,
        events: list[PelvicEvent],
    ) -> Int8Array:
        """The full state machine over a stretch (writes ``state``, appends events)."""
        n = int(rel.shape[0])
        # candidate zones with hysteresis: enter past the margin, leave inside half of it
        z = np.zeros(n, dtype=np.int8)
        z[rel < -md] = _DROP
        z[(rel > -0.5 * md) & (rel < 0.5 * mc)] = _REST
        rise = rel > mc
        if rise.any():
            if self.two:
                dt = (tip - self._rest_tip) - rel  # tip above base: bearing down
                strain = rise & (dt > 0.1 * rel) & (rel > ms)
                squeeze = rise & (dt < -0.1 * rel)
                z[squeeze] = _CON
                z[strain] = _STR
                # in between: hold the previous rise class (or call it a contraction)
                between = rise & ~strain & ~squeeze
                if between.any():
                    z[between] = _STR if self._cand == _STR else _CON
            else:
                # one channel: a rise during a breath hold is bearing down
                z[rise] = _CON
                if hold:
                    z[rise & (rel > ms)] = _STR
        nz = z != 0
        idx = np.where(nz, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        cand = np.where(idx >= 0, z[np.maximum(idx, 0)], self._cand)
        self._cand = np.int8(cand[-1])
        # minimum dwell: a candidate run is reported once it has lasted dwell_n
        change = np.empty(n, dtype=bool)
        change[0] = cand[0] != self._run_val
        change[1:] = cand[1:] != cand[:-1]
        pos = np.arange(n)
        start = np.where(change, pos, -1)
        np.maximum.accumulate(start, out=start)
        run_len = np.where(start >= 0, pos - start + 1, pos + 1 + self._run_len)
        est = run_len >= self._dwell_n
        eidx = np.where(est, pos, -1)
        np.maximum.accumulate(eidx, out=eidx)
        rep = np.where(eidx >= 0, cand[np.maximum(eidx, 0)], self._state)
        state[:] = rep
        # events: where the reported state changes (back-dated to the run's start)
        prev_state = self._state
        ch = np.flatnonzero(rep != np.concatenate(([prev_state], rep[:-1])))
        if ch.size:
            run_t0 = np.where(start >= 0, t[np.maximum(start, 0)], self._run_start_t)
            for i in ch:  # state changes: a few per breath at most
                events.append(PelvicEvent(PelvicState(int(rep[i])), float(run_t0[i]), float(t[i])))
        if start[-1] >= 0:
            self._run_start_t = float(t[start[-1]])
        self._run_len = int(run_len[-1])
        self._run_val = np.int8(cand[-1])
        self._state = np.int8(rep[-1])
        return rep

    def _finish_settle(self, sigma: float) -> None:
        w = np.concatenate(self._settle_buf)
        self._settle_buf = []
        self._settling = False
        self._sigma = sigma
        base, tip, ripple = w[:, 0], w[:, 1], w[:, 2]
        steady_rest = float(np.median(base))
        # ignore the first second: the ripple's own filter is still filling
        r = ripple[min(len(ripple) // 4, round(self.fs)) :]
        self._ripple_var = float(np.mean(r * r)) if r.size else 0.0
        th = self.thresholds
        spread = float(np.percentile(base, 90) - np.percentile(base, 10))
        md = self.margins()[0]
        if th is not None and th.rest_level is not None and spread > 2.0 * md:
            self._rest = float(th.rest_level)  # not steady: trust the calibration
        else:
            self._rest = steady_rest
        self._rest_tip = float(np.median(tip))
        self._state = _REST
        self._cand = _REST
        self._run_val = _REST
        self._run_len = self._dwell_n

    def _block_end(self, sigma: float, md: float) -> None:
        n = self._b_n
        if n > 0 and self._rest is not None:
            self._sigma = sigma
            steady = (self._b_max - self._b_min) < max(md, 4.0 * sigma)
            self._quiet = self._quiet + 1 if (self._b_rest and steady) else 0
            a = self._alpha
            if self._quiet >= 2:
                # resting and steady for two blocks: follow the slow drift of the tone
                self._rest += a * (self._b_sum / n - self._rest)
                self._rest_tip += a * (self._b_tip / n - self._rest_tip)
            if self._post > 0:
                self._post -= 1
                if steady:
                    self._post_quiet += 1
                    self._post_sum += self._b_sum / n
                    self._post_tip += self._b_tip / n
                else:
                    self._post_quiet = 0
                    self._post_sum = self._post_tip = 0.0
                if self._post_quiet >= 3:
                    level = self._post_sum / self._post_quiet
                    bound = max(3.0 * md, min(0.4 * self._excursion, 6.0 * md))
                    if abs(level - self._rest) < bound:
                        self._rest_tip = self._post_tip / self._post_quiet
                        self._rest = level
                    self._post = 0
                if self._post == 0:
                    self._post_quiet = 0
                    self._post_sum = self._post_tip = 0.0
                    self._excursion = 0.0
            if self._quiet >= 8:
                # the ripple filter has forgotten any action by now; one block
                # may move the estimate by a bounded factor only
                v = self._b_rsq / n
                if self._ripple_var > 0:
                    v = min(max(v, 0.25 * self._ripple_var), 4.0 * self._ripple_var)
                self._ripple_var += a * (v - self._ripple_var)
        self._b_sum = self._b_tip = self._b_rsq = 0.0
        self._b_min, self._b_max = math.inf, -math.inf
        self._b_n = 0
        self._b_rest = True

    def _probe_check(self, t: FloatArray, rel: FloatArray, quality: Quality) -> Quality:
        """Far below rest for a second: the probe slipped, not a drop."""
        if self._rest is None or not t.size or np.isnan(rel[-1]):
            return quality
        md = self.margins()[0]
        th = self.thresholds
        limit = 10.0 * md if th is None or th.drop_margin is None else 5.0 * th.drop_margin
        if rel[-1] < -limit:
            if self._moved_since < 0:
                self._moved_since = float(t[-1])
            if t[-1] - self._moved_since >= 1.0:
                return Quality.PROBE_MOVED
        else:
            self._moved_since = -1.0
        return quality

    def _output(
        self,
        t: FloatArray,
        level: FloatArray,
        rel: FloatArray,
        state: Int8Array,
        conf: FloatArray,
        events: list[PelvicEvent],
        quality: Quality | None = None,
    ) -> PelvicOutput:
        return PelvicOutput(
            stream=self.stream,
            t=t,
            level=level,
            relative=rel,
            state=state,
            confidence=conf,
            rest_level=self._rest,
            margins=self.margins(),
            noise=self._sigma,
            quality=self._quality.quality if quality is None else quality,
            events=tuple(events),
            calibrated=self.thresholds is not None,
            delay_s=self.delay_s,
        )
