"""The pelvic state tracker: stages from probe pressure to state per sample.

Per chunk: fill gaps, decimate to the working rate, take out what is faster
than a muscle (:class:`~biofeedback.signal.jumps.JumpGate`), smooth; then per
stretch inside a 1 s rest-update block: level relative to rest, the state
machine (:mod:`~biofeedback.signal.pelvic.zones`), the episode under way,
confidence; at each block's end the rest update
(:mod:`~biofeedback.signal.pelvic.rest`).
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.filters import (
    BlockMean,
    FloatArray,
    QualityMonitor,
    RingBuffer,
    SosFilter,
    ffill_nan,
    lowpass_sos,
    noise_sd,
    phase_delay_s,
)
from biofeedback.signal.jumps import CommonShift, JumpGate
from biofeedback.signal.pelvic.confidence import confidence
from biofeedback.signal.pelvic.hold import BoolArray, HoldEvidence, split_hold
from biofeedback.signal.pelvic.posture import PostureWatch
from biofeedback.signal.pelvic.rest import (
    COMMON_FRAC,
    Block,
    Learned,
    RestModel,
    RestTrend,
    Ripple,
)
from biofeedback.signal.pelvic.zones import CON, DROP, REST, STR, UNK, Margins, Zones, margins_for
from biofeedback.signal.types import (
    Int8Array,
    PelvicEvent,
    PelvicFigures,
    PelvicOutput,
    Quality,
    Thresholds,
)
from devices.vocab import PelvicState

__all__ = ["PelvicTracker", "margins_for"]

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
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, {n_channels!r} is invalid")
        self.stream = stream
        self.unit = unit
        self.n_in = n_channels
        self.two = n_channels >= 2
        self._tip = (1 if tip is None else tip) if self.two else 0
        self._base = 0 if (self._tip != 0 or not self.two) else 1
        self._cols = [self._base, self._tip] if self.two else [0]
        self._cols_identity = self._cols == list(range(n_channels))
        self._dec = BlockMean(max(1, int(rate_hz // 50.0)), n_channels)
        self.fs = rate_hz / self._dec.factor
        # (two channels: a step the probe took moves both sensors alike)
        tip_col = self._tip if self.two else None
        self._gate = JumpGate(self.fs, n_channels, main=self._base, tip=tip_col, frac=COMMON_FRAC)
        lp = min(2.0, 0.4 * self.fs)
        sos = lowpass_sos(lp, self.fs, 2)
        self._lp = SosFilter(sos, 2 if self.two else 1)
        self._lp_noise = math.sqrt(min(1.0, 2.0 * 1.11 * lp / self.fs))
        self._ripple = Ripple(self.fs)  # the base less its slow part: the breath ripple
        self._common = CommonShift(max(1, round(0.2 * self.fs)), COMMON_FRAC)
        self._noise_n = max(16, round(5.0 * self.fs))
        self._raw = RingBuffer(self._noise_n, 0)
        self._quality = QualityMonitor(self.fs, n_channels)
        self.delay_s = phase_delay_s(sos, 0.2, self.fs) + dwell_s
        self._dwell_n = max(1, round(dwell_s * self.fs))
        self._block_n = max(2, round(self.fs))
        # settling ends on a block boundary, so it ends at the same sample however chunked
        self._settle_n = self._block_n * max(2, math.ceil(settle_s * self.fs / self._block_n))
        self._alpha = min(1.0, self._block_n / (rest_tau_s * self.fs))
        # the recent-contraction scale halves over ~3 minutes without one
        self._peak_decay = 0.5 ** (self._block_n / (180.0 * self.fs))
        self._last_in = np.zeros(n_channels)
        self._last_quality = Quality.OK
        self._watch: PostureWatch | None = None  # (the chunk's, see process)
        self.thresholds: Thresholds | None = None
        self._m_key: tuple[float, float, float | None, int, float] | None = None
        self._m_val: Margins = (0.0, 0.0, 0.0)
        # figure changes not yet reported, and the last one reported
        self._figs: list[PelvicFigures] = []
        self._fig_last: tuple[float, Margins] | None = None
        self._reset_state()
        self.set_thresholds(thresholds)

    # ------------------------------------------------------------------ state

    def _reset_state(self, learned: Learned | None = None) -> None:
        self._n = 0  # working samples seen
        self._settling = True
        self._settle_buf: list[FloatArray] = []
        self._zones = Zones(self.two, self._dwell_n)
        self._model = RestModel(
            two=self.two,
            alpha=self._alpha,
            peak_decay=self._peak_decay,
            trend=RestTrend(self._block_n / self.fs),
            learned=learned if learned is not None else Learned(),
        )
        self._lr = self._model.learned  # (read many times per chunk)
        self._block = Block(buf=np.zeros((2, self._block_n)))
        self._moved_since = -1.0
        self._back = 0.0  # the block began after an action: the re-anchoring bound

    def reset(self) -> None:
        """A gap: restart the filters; keep the resting tone and margins learned."""
        lr = self._lr
        for f in (self._dec, self._gate, self._lp, self._ripple, self._common, self._quality):
            f.reset()
        self._raw.clear()
        if lr.rest is None:
            self._reset_state()
            return
        # keep what was learned and go on without a new settling period
        self._reset_state(
            Learned(
                rest=lr.rest,
                rest_tip=lr.rest_tip,
                ripple_var=lr.ripple_var,
                sigma=lr.sigma,
                rise_peak=lr.rise_peak,
            )
        )
        self._settling = False
        self._zones.run.settled(self._dwell_n)

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
        if thresholds is not None and thresholds.rest_level is not None and self._lr.rest is None:
            self._lr.rest = float(thresholds.rest_level)

    # ------------------------------------------------------------------ figures

    @property
    def rest_level(self) -> float | None:
        """The resting tone now (base channel), stream units."""
        return self._lr.rest

    @property
    def quality(self) -> Quality:
        """Quality after the latest chunk."""
        return self._last_quality

    @property
    def state(self) -> PelvicState:
        return PelvicState(int(self._zones.run.state))

    def margins(self) -> Margins:
        """``(drop, contraction, strain)`` margins in use, stream units."""
        lr = self._lr
        key = (lr.sigma, lr.ripple_var, lr.rest, id(self.thresholds), lr.rise_peak)
        if key != self._m_key:
            self._m_key = key
            self._m_val = margins_for(lr, self.thresholds)
        return self._m_val

    # ------------------------------------------------------------------ processing

    def process(
        self,
        t: FloatArray,
        values: FloatArray,
        *,
        breath_hold: bool | HoldEvidence = False,
        posture: PostureWatch | None = None,
    ) -> PelvicOutput:
        """Process one chunk of probe pressure.

        Parameters
        ----------
        t : ndarray, shape (n,)
            Sample times.
        values : ndarray, shape (n, channels)
            Pressure, stream units.
        breath_hold : bool or HoldEvidence
            One-channel strain evidence: the breath held over the whole chunk,
            or per sample (:class:`~biofeedback.signal.pelvic.hold.BreathHold`).
        posture : PostureWatch or None
            One channel: a belt's witness of posture steps
            (:mod:`~biofeedback.signal.pelvic.posture`).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, np.newaxis]
        t = np.asarray(t, dtype=np.float64)
        tt, xr = self._dec.process(t, ffill_nan(values, self._last_in))
        m = int(tt.shape[0])
        if m == 0:
            empty = np.empty(0)
            return self._output(tt, empty, empty, np.empty(0, np.int8), empty, [], None)
        xb = self._gate.process(xr)  # a cough's spike, a probe's slip: not the floor
        lp = self._lp.process(xb if self._cols_identity else xb[:, self._cols])
        base = lp[:, 0]
        tip = lp[:, 1] if self.two else base
        self._raw.append(tt, xr[:, self._base])
        quality = self._quality.process(xr, self._lr.sigma / self._lp_noise)
        hold = breath_hold if isinstance(breath_hold, bool) else breath_hold.holding(tt)
        self._watch = posture
        state = np.empty(m, dtype=np.int8)
        rel = np.empty(m)  # (a settling stretch fills in NaN)
        conf = np.empty(m)
        events: list[PelvicEvent] = []
        # stretches end at the rest-update block boundaries (global indices)
        a = 0
        while a < m:
            b = min(m, a + self._block_n - (self._n + a) % self._block_n)
            if b == m and a == 0:  # (the usual case: one stretch, no views to take)
                h = hold if isinstance(hold, bool) else split_hold(hold)
                self._stretch(tt, (base, tip), self._n, h, (state, rel, conf), events)
                break
            sig = (base[a:b], tip[a:b])
            out = (state[a:b], rel[a:b], conf[a:b])
            h = hold if isinstance(hold, bool) else split_hold(hold[a:b])
            self._stretch(tt[a:b], sig, self._n + a, h, out, events)
            a = b
        self._n += m
        quality = self._probe_check(tt, rel, quality)
        w = _QUALITY_WEIGHT[quality]
        if w != 1.0:
            conf *= w
        self._last_quality = quality
        return self._output(tt, base, rel, state, conf, events, quality)

    def _noise_now(self) -> float:
        """Noise SD of the smoothed base, from the last seconds of raw samples."""
        r = self._raw.x(max(self._raw.first, self._raw.total - self._noise_n), self._raw.total)
        return noise_sd(r) * self._lp_noise

    def _stretch(
        self,
        t: FloatArray,
        sig: tuple[FloatArray, FloatArray],
        g_a: int,
        hold: bool | BoolArray,
        out: tuple[Int8Array, FloatArray, FloatArray],
        events: list[PelvicEvent],
    ) -> None:
        """States for one stretch inside a rest-update block, starting at
        working sample ``g_a`` (``sig``: base, tip; ``out``: state,
        relative level, confidence); the rest update at the block's end."""
        base, tip = sig
        state, rel, conf = out
        n = int(t.shape[0])
        g_end = g_a + n
        if self._settling or self._lr.rest is None:
            self._ripple.add(base)
            ripple = self._ripple.newest(n)
            self._settle_stretch(np.column_stack([base, tip, ripple]), g_end, out)
            return
        run = self._zones.run
        if g_a % self._block_n == 0:
            run.cand_block = run.cand
            # (fixed for the block: the same however chunks split it)
            back = self._model.episode.post > 0 and not self.two
            self._back = self._back_bound() if back else 0.0
        m = self.margins()
        rest = self._lr.rest
        if (rest, m) != self._fig_last:  # (at a block's start: see PelvicFigures)
            self._fig_last = (rest, m)
            self._figs.append(PelvicFigures(t_from=float(t[0]), rest_level=rest, margins=m))
        # one channel, coming back from an action: the tone may have drifted
        # during it (two channels tell by the tip), so a rise within the distance
        # the rest may still be re-anchored by is no contraction
        mz = (m[0], max(m[1], self._back), max(m[2], self._back)) if self._back else m
        self._ripple.add(base)  # (worked out at the block's end, if needed)
        if self.two:
            # (per stretch: the margin changes at block ends only)
            base, tip = self._common.process(base, tip, m[0])
        np.subtract(base, self._lr.rest, out=rel)
        tip_dev = tip - self._lr.rest_tip if self.two else None
        # (argmin and a lookup: cheaper than min; NaN wins, as in min)
        lo, hi = float(rel[rel.argmin()]), float(rel[rel.argmax()])
        if self._zones.held(rel, tip_dev, hold, mz, (lo, hi)):
            state[:] = run.state
            run.run_len += n
            const: np.int8 | None = run.state
        else:
            self._zones.step(t, rel, tip_dev, hold, mz, state, events)
            const = None
        # what the stretch held: from the constant state, else from the samples
        any_drop = bool(const == DROP) if const is not None else bool((state == DROP).any())
        any_rise = bool(const >= CON) if const is not None else bool((state >= CON).any())
        all_rest = bool(const == REST) if const is not None else bool((state == REST).all())
        self._follow_episode(rel, (lo, hi), any_drop, any_rise, m)
        confidence(rel, state, const, mz, conf)
        blk = self._block
        blk.add(base, tip if self.two else None)
        blk.lo = min(blk.lo, lo + self._lr.rest)
        blk.hi = max(blk.hi, hi + self._lr.rest)
        blk.rest = blk.rest and all_rest
        blk.rise = blk.rise or any_rise
        if self._watch is not None:
            self._watch.add_probe(t, base, state)
        if g_end % self._block_n == 0:
            self._end_block(g_end, m[0])
            if self._watch is not None:
                self._posture_step(float(t[-1]), hold)

    def _back_bound(self) -> float:
        """After an action: how far from rest a steady level may re-anchor it."""
        return self._model.anchor_bound(self.margins()[0])

    def _follow_episode(
        self,
        rel: FloatArray,
        span: tuple[float, float],
        any_drop: bool,
        any_rise: bool,
        m: Margins,
    ) -> None:
        """Episodes: an action that ends by coming most of the way back to rest
        opens a short window in which a steady level re-anchors the rest (tone
        drifts during a set; without this a shifted tone would read as a
        never-ending contraction or drop)."""
        ep = self._model.episode
        if ep.sign == 0:
            if any_drop:
                ep.sign = -1
            elif any_rise:  # contraction or strain
                ep.sign = 1
        if ep.sign != 0:
            # the way back: within 30 % of the excursion (drift may have moved rest)
            lo, hi = span if ep.sign > 0 else (-span[1], -span[0])  # (of the distance away)
            exc = ep.excursion
            top = hi if (hi >= exc or hi != hi) else exc  # np.maximum's pick
            if lo >= 0.3 * top:
                # every sample still at least 30 % of the way out (the running
                # excursion never exceeds `top`): no way back in this stretch
                ep.excursion = top
            else:
                away = rel if ep.sign > 0 else -rel
                reach = np.maximum.accumulate(away)
                np.maximum(reach, exc, out=reach)
                ep.excursion = float(reach[-1])
                # (only once the excursion went past its margin: not the samples before it)
                back = (away < 0.3 * reach) & (reach > (m[0] if ep.sign < 0 else m[1]))
                if np.any(back):
                    ep.open_window()
        if self._zones.run.state == REST and ep.post == 0:
            ep.excursion = 0.0

    def _settle_stretch(
        self, w: FloatArray, g_end: int, out: tuple[Int8Array, FloatArray, FloatArray]
    ) -> None:
        """Learning the resting tone: no state yet (``w``: base, tip, ripple columns)."""
        state, rel, conf = out
        state[:] = UNK
        rel.fill(np.nan)
        conf.fill(0.0)
        self._settle_buf.append(w)
        if g_end >= self._settle_n:
            self._finish_settle(self._noise_now())

    def _finish_settle(self, sigma: float) -> None:
        w = np.concatenate(self._settle_buf)
        self._settle_buf = []
        self._settling = False
        lr = self._lr
        lr.sigma = sigma
        base, tip, ripple = w[:, 0], w[:, 1], w[:, 2]
        # ignore the first second: the ripple's own filter is still filling
        r = ripple[min(len(ripple) // 4, round(self.fs)) :]
        lr.ripple_var = float(np.mean(r * r)) if r.size else 0.0
        th = self.thresholds
        spread = float(np.percentile(base, 90) - np.percentile(base, 10))
        md = self.margins()[0]
        if th is not None and th.rest_level is not None and spread > 2.0 * md:
            lr.rest = float(th.rest_level)  # not steady: trust the calibration
        else:
            lr.rest = float(np.median(base))
        lr.rest_tip = float(np.median(tip))
        self._zones.run.settled(self._dwell_n)

    def _end_block(self, g_end: int, md: float) -> None:
        """A rest-update block is complete: the noise now and then, the rest."""
        lr = self._lr
        # the noise changes slowly: measure it every fifth block
        if (g_end // self._block_n) % 5 == 0 or lr.sigma == 0.0:
            lr.sigma = self._noise_now()
        self._model.end_block(self._block, lr.sigma, md, self._ripple.newest)
        self._block.clear()
        self._ripple.trim()

    def _posture_step(self, t_end: float, hold: bool | BoolArray) -> None:
        """A block ended: a posture step the belt witnessed moves the rest."""
        assert self._watch is not None and self._lr.rest is not None
        # (the block's last sample: the same however chunks split the block)
        held = hold if isinstance(hold, bool) else bool(hold[-1])
        quiet = not held and self._zones.run.state != STR
        step = self._watch.shift(t_end, self._lr.rest, self.margins()[0], quiet=quiet)
        if step:
            self._model.shift_rest(step)

    def _probe_check(self, t: FloatArray, rel: FloatArray, quality: Quality) -> Quality:
        """Far below rest for a second, or a sudden step taken out in the last
        10 s: the probe slipped, not a drop."""
        moved = self._gate.moved_at
        recent = moved >= 0 and self._n - moved < 10.0 * self.fs
        if recent and quality in (Quality.OK, Quality.NOISY):
            return Quality.PROBE_MOVED
        if self._lr.rest is None or not t.shape[0] or math.isnan(rel.item(-1)):
            return quality
        md = self.margins()[0]
        th = self.thresholds
        limit = 10.0 * md if th is None or th.drop_margin is None else 5.0 * th.drop_margin
        if rel.item(-1) < -limit:
            t_last = t.item(-1)
            if self._moved_since < 0:
                self._moved_since = t_last
            if t_last - self._moved_since >= 1.0:
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
        quality: Quality | None,
    ) -> PelvicOutput:
        figs = tuple(self._figs)
        self._figs.clear()
        return PelvicOutput(
            stream=self.stream,
            t=t,
            level=level,
            relative=rel,
            state=state,
            confidence=conf,
            rest_level=self._lr.rest,
            margins=self.margins(),
            noise=self._lr.sigma,
            quality=self._quality.quality if quality is None else quality,
            events=tuple(events),
            calibrated=self.thresholds is not None,
            delay_s=self.delay_s,
            figures=figs,
        )
