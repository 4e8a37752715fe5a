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
* **Common shifts** (two channels): a posture change, a probe shift or sensor
  drift moves both sensors alike, the floor does not (a muscle moves the base
  about twice as much as the tip, bearing down the reverse). Fast common
  changes are taken out (:class:`~biofeedback.signal.jumps.CommonShift`), a
  level away from rest with both sensors moved alike is rest (re-anchored at
  the block's end), and the rest is re-anchored after an action only when the
  two sensors agree the floor is back.
* **Hysteresis and dwell**: a state is entered past its margin, left only
  once back inside half of it, and reported after it has lasted the minimum
  dwell; events are back-dated to where the run began.

Causal and chunking-invariant; the hot path is vectorised per chunk (the only
Python loop runs over the 1 s rest-update blocks a chunk spans).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from biofeedback.signal.filters import (
    BlockMean,
    Ewma,
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
from biofeedback.signal.types import (
    Int8Array,
    PelvicEvent,
    PelvicOutput,
    Quality,
    Thresholds,
)
from devices.vocab import PelvicState

__all__ = ["PelvicTracker", "pressure_channels"]

_UNK = np.int8(PelvicState.UNKNOWN)
_DROP = np.int8(PelvicState.DROP)
_REST = np.int8(PelvicState.REST)
_CON = np.int8(PelvicState.CONTRACTION)
_STR = np.int8(PelvicState.STRAIN)

_add_reduce = np.add.reduce
_subtract = np.subtract
_max_acc = np.maximum.accumulate
_count_nonzero = np.count_nonzero

#: Uncalibrated contraction margin, as a fraction of the largest recent rise.
RISE_MARGIN_FRAC = 0.2

#: Two-channel probe: a change that moves the tip by the base's amount, within
#: this fraction of it, is common to both sensors (posture, probe shift, drift);
#: a muscle moves the base about twice as much as the tip, bearing down the tip
#: about one and a half times as much as the base.
COMMON_FRAC = 0.25

_NOISE_SCALE = 1.0 / (math.sqrt(6.0) * math.sqrt(2.0 / math.pi))


def _lead(rel: FloatArray, md: float) -> FloatArray:
    """How far the tip may part from the base and the change still be common to
    both: a fraction of the change, up to a few drop margins (a drop during a
    large shift still parts them by half the drop)."""
    out: FloatArray = COMMON_FRAC * np.minimum(np.abs(rel), 3.0 * md)
    return out


_QUALITY_WEIGHT = {
    Quality.OK: 1.0,
    Quality.NOISY: 0.6,
    Quality.CLIPPED: 0.4,
    Quality.FLAT: 0.0,
    Quality.PROBE_MOVED: 0.0,
}


def pressure_channels(channels: Sequence[str]) -> tuple[int, int | None]:
    """Which columns of a pressure stream the pelvic state reads: ``(main, tip)``.

    A probe with a ``tip`` channel is a two-sensor probe: ``main`` is its
    ``base`` (else the other first column) and ``tip`` the tip. Otherwise
    ``tip`` is None and ``main`` the one channel to use: ``raw`` (a kGoal's
    second, "calibrated" channel is the same sensor shifted and clipped at 0:
    it cannot show a drop below its calibration point), else ``base``, else
    ``pressure``, else the first.
    """
    names = [c.lower() for c in channels]
    if "tip" in names and len(names) >= 2:
        tip = names.index("tip")
        main = names.index("base") if "base" in names else (1 if tip == 0 else 0)
        return main, tip
    for want in ("raw", "base", "pressure"):
        if want in names:
            return names.index(want), None
    return 0, None


class RestTrend:
    """The resting tone's drift per block, from the recent resting blocks.

    A sensor drifts steadily (up to a few cmH2O a minute); the rest follows it
    while the floor rests, but not during a set of drops or a contraction, and
    after a 40 s set the tone may have moved past the drop margin. The slope of
    the last resting blocks' levels (a line through up to 40 of them, over at
    least 8), where it stands out of their scatter, carries the rest on through
    such a stretch, for a minute at most.

    Parameters
    ----------
    block_s : float
        Block length, s.
    max_rate : float
        The largest drift believed, stream units per minute.
    """

    def __init__(self, block_s: float, max_rate: float = 3.0) -> None:
        self._cap = max_rate * block_s / 60.0
        self._skip_max = round(60.0 / block_s)
        self._i = 0  # blocks seen
        self._pts: deque[tuple[int, float]] = deque(maxlen=40)
        self._slope = 0.0
        self._since = 0  # blocks since the last resting one

    def add(self, level: float) -> float:
        """A resting block's level; the drift expected over this block."""
        self._i += 1
        self._since = 0
        pts = self._pts
        while pts and self._i - pts[0][0] > 80:  # only the last 80 blocks' levels
            pts.popleft()
        pts.append((self._i, level))
        if len(pts) >= 8 and pts[-1][0] - pts[0][0] >= 8:
            x = np.array([p[0] for p in pts], dtype=np.float64)
            y = np.array([p[1] for p in pts])
            x -= x.mean()
            y -= y.mean()
            sxx = float(np.dot(x, x))
            slope = float(np.dot(x, y)) / sxx
            # a drift only where the line stands out of the levels' scatter (3 SE)
            res = y - slope * x
            se = math.sqrt(float(np.dot(res, res)) / (len(pts) - 2) / sxx)
            slope = slope if abs(slope) > 3.0 * se else 0.0
            self._slope = min(max(slope, -self._cap), self._cap)
        else:
            self._slope = 0.0
        return self._slope

    def skip(self) -> float:
        """A block that was not resting: the drift expected over it."""
        self._i += 1
        self._since += 1
        return self._slope if self._since <= self._skip_max else 0.0


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
        self._gate = JumpGate(self.fs, n_channels, main=self._base)
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
        # the recent-contraction scale halves over ~3 minutes without one
        self._peak_decay = 0.5 ** (self._block_n / (180.0 * self.fs))
        # the current rest-update block: base, tip, ripple (rows)
        self._bbuf = np.zeros((3, self._block_n))
        self._last_in = np.zeros(n_channels)
        self._last_quality = Quality.OK
        self.thresholds: Thresholds | None = None
        self._m_key: tuple[float, float, float | None, int, float] | None = None
        self._m_val = (0.0, 0.0, 0.0)
        self._cols = [self._base, self._tip] if self.two else [0]
        self._cols_identity = self._cols == list(range(n_channels))
        self._common = CommonShift(max(1, round(0.2 * self.fs)), COMMON_FRAC)
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
        self._cand_block = _UNK  # the candidate zone when the current block began
        self._run_start_t = 0.0
        self._run_len = 0
        self._run_val = _UNK
        self._state = _UNK
        self._moved_since = -1.0
        self._quiet = 0  # consecutive resting, steady blocks
        self._episode = 0  # -1 a drop, +1 a rise is under way (since the last rest)
        self._excursion = 0.0  # largest distance from rest during it
        self._post = 0  # blocks left in the re-anchoring window after an episode
        self._trend = RestTrend(self._block_n / self.fs)
        self._post_quiet = 0
        self._post_sum = 0.0
        self._post_tip = 0.0
        # block accumulators
        self._b_sum = 0.0
        self._b_tip = 0.0
        self._b_min = math.inf
        self._b_max = -math.inf
        self._b_rsq = 0.0
        self._b_n = 0  # samples of the current block in _bbuf
        self._b_rest = True
        self._b_rise = False  # the block had a contraction or strain sample
        self._rise_peak = 0.0  # the largest recent rise above rest (decays)

    def reset(self) -> None:
        """A gap: restart the filters; keep the resting tone and margins learned."""
        rest, tip, rv, sg = self._rest, self._rest_tip, self._ripple_var, self._sigma
        peak = self._rise_peak
        self._dec.reset()
        self._gate.reset()
        self._lp.reset()
        self._slow.reset()
        self._common.reset()
        self._raw.clear()
        self._quality.reset()
        self._reset_state()
        if rest is not None:
            # keep what was learned and go on without a new settling period
            self._rest, self._rest_tip, self._ripple_var, self._sigma = rest, tip, rv, sg
            self._rise_peak = peak
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
        key = (self._sigma, self._ripple_var, self._rest, id(self.thresholds), self._rise_peak)
        if key != self._m_key:
            self._m_key = key
            self._m_val = self._margins()
        return self._m_val

    def _margins(self) -> tuple[float, float, float]:
        # adaptive: beyond the noise (4 sd after smoothing) and the breath ripple
        ripple_pp = 2.0 * math.sqrt(2.0 * max(self._ripple_var, 0.0))
        floor = 1e-6 * max(abs(self._rest or 0.0), 1.0)
        md = max(4.0 * self._sigma, 1.5 * ripple_pp, floor)
        # a rise counts once past the noise and the ripple, and past a fifth of
        # the person's recent contractions: what is left of a contraction as it
        # relaxes (under a tenth of it, half the margin) is rest again, as an
        # MVC-based calibrated margin would have it
        mc = max(6.0 * self._sigma, 2.0 * ripple_pp, floor, RISE_MARGIN_FRAC * self._rise_peak)
        ms = mc
        th = self.thresholds
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
        if type(values) is not np.ndarray or values.dtype != np.float64:
            values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, np.newaxis]
        if type(t) is not np.ndarray or t.dtype != np.float64:
            t = np.asarray(t, dtype=np.float64)
        x = ffill_nan(values, self._last_in)
        tt, xb = self._dec.process(t, x)
        xr = xb  # the sensor's own samples, for its quality
        if xb.shape[0]:
            xb = self._gate.process(xb)  # a cough's spike, a probe's slip: not the floor
        m = int(tt.shape[0])
        if m == 0:
            return self._output(tt, np.empty(0), np.empty(0), np.empty(0, np.int8), np.empty(0), [])
        lp = self._lp.process(xb if self._cols_identity else xb[:, self._cols])
        base = lp[:, 0]
        tip = lp[:, 1] if self.two else base
        ripple = base - self._slow.process(base)
        self._raw.append(tt, xr[:, self._base])
        quality = self._quality.process(xr, self._sigma / self._lp_noise)

        state = np.empty(m, dtype=np.int8)
        rel = np.empty(m)  # (a settling stretch fills in NaN)
        conf = np.empty(m)
        events: list[PelvicEvent] = []
        g0 = self._n
        # segments end at the rest-update block boundaries (global indices)
        first_end = self._block_n - 1 - (g0 % self._block_n)
        if first_end >= m - 1:  # the chunk ends inside (or at the end of) one block
            ends = [m - 1]
        else:
            ends = list(range(first_end, m, self._block_n))
            if ends[-1] != m - 1:
                ends.append(m - 1)
        if len(ends) == 1:  # the usual case: the chunk lies within one block
            self._segment(tt, base, tip, ripple, g0, breath_hold, state, rel, conf, events)
        else:
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
        w = _QUALITY_WEIGHT[quality]
        if w != 1.0:  # (times 1.0 changes nothing)
            conf *= w
        self._last_quality = quality
        return self._output(tt, base, rel, state, conf, events, quality)

    def _noise_now(self) -> float:
        """Noise SD of the smoothed base, from the last seconds of raw samples."""
        r = self._raw.x(max(self._raw.first, self._raw.total - self._noise_n), self._raw.total)
        return noise_sd(r) * self._lp_noise

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
            rel_out.fill(np.nan)
            conf_out.fill(0.0)
            self._settle_buf.append(np.column_stack([base, tip, ripple]))
            if g_end >= self._settle_n:
                self._finish_settle(self._noise_now())
            return
        if g_a % self._block_n == 0:
            self._cand_block = self._cand
        rest = self._rest
        md, mc, ms = self.margins()
        if self.two:
            # (per stretch: the margin changes at block ends only)
            base, tip = self._common.process(base, tip, md)
        rel = _subtract(base, rest, out=rel_out)
        # (argmin/argmax and a lookup: cheaper than min/max on short stretches;
        # a NaN wins both, as it does min and max)
        lo = float(rel[rel.argmin()])
        hi = float(rel[rel.argmax()])
        st = self._state
        if st == self._cand == self._run_val and (
            (st == _REST and lo > -md and hi <= mc)
            or (st == _DROP and hi <= -0.5 * md and self._drop_holds(rel, tip, md))
        ):
            # fast path: no sample leaves the state's zone (plus its hysteresis band)
            state[:] = st
            self._run_len += n
            rep_const: Int8Array | None = None
            rise_const = False
        elif (
            st >= _CON
            and st == self._cand == self._run_val
            and lo >= 0.5 * mc
            and self._rise_holds(st, rel, tip, hold, (md, mc, ms))
        ):
            # a held contraction or strain: what _states would find, without it
            state[:] = st
            self._run_len += n
            rep_const = None
            rise_const = True
        else:
            rep_const = self._states(t, rel, tip, hold, md, mc, ms, state, events)
            rise_const = False
        rep = state
        # episodes: an action that ends by coming most of the way back to rest
        # opens a short window in which a steady level re-anchors the rest
        # (tone drifts during a set; without this a shifted tone would read as
        # a never-ending contraction or drop)
        if self._episode == 0 and rep_const is not None:
            if _count_nonzero(rep == _DROP):
                self._episode = -1
            elif _count_nonzero(rep >= _CON):  # contraction or strain
                self._episode = 1
        elif self._episode == 0 and st == _DROP:
            self._episode = -1
        elif self._episode == 0 and rise_const:
            self._episode = 1
        ep = self._episode
        if ep != 0:
            # the way back: within 30 % of the excursion (drift may have moved rest)
            a_lo, a_hi = (lo, hi) if ep > 0 else (-hi, -lo)  # extremes of `away` below
            exc = self._excursion
            top = a_hi if (a_hi >= exc or a_hi != a_hi) else exc  # np.maximum's pick
            if a_lo >= 0.3 * top:
                # every sample still at least 30 % of the way out (the running
                # excursion never exceeds `top`): no way back in this stretch
                self._excursion = top
            else:
                away = rel if ep > 0 else -rel
                reach = _max_acc(away)
                np.maximum(reach, exc, out=reach)
                self._excursion = float(reach[-1])
                # (only once the excursion went past its margin: not the samples before it)
                back = (away < 0.3 * reach) & (reach > (md if ep < 0 else mc))
                if _count_nonzero(back):
                    if self._post == 0:
                        self._post_quiet = 0
                        self._post_sum = self._post_tip = 0.0
                    self._post = 10
                    self._episode = 0
        if self._state == _REST and self._post == 0:
            self._excursion = 0.0
        # confidence: 0.5 at the entry threshold, 1 at twice the margin; at rest,
        # 1 on the resting line and 0.5 at the drop threshold. Where the stretch's
        # extremes show it needs no clipping to 0..1 (each formula is monotone in
        # |rel|), it is computed in place; else clipped (c is never -0.0, so the
        # sign of a zero cannot differ from np.clip's).
        if rep_const is None and lo == lo:
            if rise_const:  # rel >= mc / 2 > 0 throughout
                k = 2.0 * mc
                if 0.5 + (lo - mc) / k >= 0.0 and 0.5 + (hi - mc) / k <= 1.0:
                    np.subtract(rel, mc, out=conf_out)
                    conf_out /= k
                    conf_out += 0.5
                    c = None
                else:
                    c = 0.5 + (np.abs(rel) - mc) / k
            elif st == _REST:
                k = 0.5 / md
                if 1.0 - k * max(-lo, hi) >= 0.0:
                    np.abs(rel, out=conf_out)
                    conf_out *= k
                    np.subtract(1.0, conf_out, out=conf_out)
                    c = None
                else:
                    c = 1.0 - k * np.abs(rel)
            else:  # DROP: rel <= -md / 2 < 0 throughout
                k = 0.5 / md
                if 0.5 + (-hi - md) * k >= 0.0 and 0.5 + (-lo - md) * k <= 1.0:
                    np.negative(rel, out=conf_out)
                    conf_out -= md
                    conf_out *= k
                    conf_out += 0.5
                    c = None
                else:
                    c = 0.5 + (np.abs(rel) - md) * k
        else:
            a = np.abs(rel)
            if rise_const:
                c = 0.5 + (a - mc) / (2.0 * mc)  # (as _states' table gives it)
            elif rep_const is None:
                c = 1.0 - (0.5 / md) * a if st == _REST else 0.5 + (a - md) * (0.5 / md)
            else:
                # (each state's formula exactly as its constant-state path computes
                # it: the same sample gets the same confidence however chunked)
                mtab = np.array([1.0, md, md, mc, mc])
                mm = mtab[rep]
                half = 0.5 / mm
                c = np.where(
                    rep == _REST,
                    1.0 - half * a,
                    np.where(rep == _DROP, 0.5 + (a - mm) * half, 0.5 + (a - mm) / (2.0 * mm)),
                )
                c[rep == _UNK] = 0.0
        if c is not None:
            np.maximum(c, 0.0, out=conf_out)
            np.minimum(conf_out, 1.0, out=conf_out)
        # the block's samples for the rest tracker: summed once the block is
        # complete, so the sums (and the resting tone) do not depend on where
        # chunks happen to split a block
        bb, pos = self._bbuf, self._b_n
        bb[0, pos : pos + n] = base
        if self.two:
            bb[1, pos : pos + n] = tip
        bb[2, pos : pos + n] = ripple
        self._b_min = min(self._b_min, lo + rest)
        self._b_max = max(self._b_max, hi + rest)
        self._b_n = pos + n
        if self._b_rest:
            self._b_rest = (
                bool(st == _REST) if rep_const is None else _count_nonzero(rep == _REST) == n
            )
        if not self._b_rise:
            self._b_rise = (
                bool(st >= _CON) if rep_const is None else bool(_count_nonzero(rep >= _CON))
            )
        if g_end % self._block_n == 0:
            # the noise changes slowly: measure it every fifth block
            if (g_end // self._block_n) % 5 == 0 or self._sigma == 0.0:
                self._sigma = self._noise_now()
            self._block_end(self._sigma, md)

    def _drop_holds(self, rel: FloatArray, tip: FloatArray, md: float) -> bool:
        """No sample of a stretch below the drop margin moved both sensors alike
        (two channels; one channel cannot tell). Mirrors :meth:`_states`."""
        if not self.two:
            return True
        dt = (tip - self._rest_tip) - rel
        return not _count_nonzero((rel < -md) & (np.abs(dt) <= _lead(rel, md)))

    def _rise_holds(
        self,
        st: np.int8,
        rel: FloatArray,
        tip: FloatArray,
        hold: bool,
        margins: tuple[float, float, float],
    ) -> bool:
        """No sample of a stretch at least half a contraction margin up changes the rise class.

        Every such sample is a rise (past ``mc``) or in the hysteresis band
        (holds the class); a rise keeps the class ``st`` unless the tip/base
        split (two channels) or the breath hold (one channel) says the other
        one. Mirrors the classification in :meth:`_states`.
        """
        md, mc, ms = margins
        rise = rel > mc
        if self.two:
            dt = (tip - self._rest_tip) - rel
            lead = _lead(rel, md)
            strain = dt > lead
            # a contraction holds while the base leads (no strain, no common
            # shift), a strain while the tip leads
            bad = rise & ~(dt < -lead) & (~strain | (rel > ms)) if st == _CON else rise & ~strain
            return not _count_nonzero(bad)
        if st == _CON:
            return not hold or not _count_nonzero(rise & (rel > ms))
        return not _count_nonzero(rise & ~(rel > ms) if hold else rise)

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
        if self.two:
            dt = (tip - self._rest_tip) - rel  # tip above base: bearing down
            lead = _lead(rel, md)
            if rise.any():
                strain = rise & (dt > lead) & (rel > ms)
                squeeze = rise & (dt < -lead)
                z[squeeze] = _CON
                z[strain] = _STR
                # tip ahead but under the strain margin: hold the previous rise class
                between = rise & (dt > lead) & ~strain
                if between.any():
                    # (the class as the block began: the same however chunks split it)
                    z[between] = _STR if self._cand_block == _STR else _CON
            # both sensors moved alike: the probe or the tone shifted, not the floor
            z[((rel < -md) | rise) & (np.abs(dt) <= lead)] = _REST
        elif rise.any():
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
        if n > 0:
            bb = self._bbuf
            self._b_sum = 0.0 + float(_add_reduce(bb[0, :n]))
            if self.two:
                self._b_tip = 0.0 + float(_add_reduce(bb[1, :n]))
            r = bb[2, :n]
            self._b_rsq = 0.0 + float(np.dot(r, r))
        if n > 0 and self._rest is not None:
            self._sigma = sigma
            steady = (self._b_max - self._b_min) < max(md, 4.0 * sigma)
            self._quiet = self._quiet + 1 if (self._b_rest and steady) else 0
            a = self._alpha
            if self._b_rise:
                self._rise_peak = max(self._rise_peak, self._b_max - self._rest)
            else:
                self._rise_peak *= self._peak_decay
            if self._common_shift(n, md):
                # both sensors moved alike while the floor rested: the probe or the
                # tone shifted (posture, slip, drift); the rest is where it is now
                self._rest = self._b_sum / n
                self._rest_tip = self._b_tip / n
            elif self._quiet >= 2:
                # resting and steady for two blocks: follow the slow drift of the tone
                step = self._trend.add(self._b_sum / n)
                self._rest += step + a * (self._b_sum / n - self._rest - step)
                self._rest_tip += step + a * (self._b_tip / n - self._rest_tip - step)
            else:
                # an action or an unsteady block: the rest goes on drifting as it did
                step = self._trend.skip()
                self._rest += step
                self._rest_tip += step
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
                    tip_level = self._post_tip / self._post_quiet
                    if abs(level - self._rest) < bound and self._floor_rests(level, tip_level, md):
                        self._rest_tip = tip_level
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
        self._b_rise = False

    def _common_shift(self, n: int, md: float) -> bool:
        """The block (two channels) rested while both sensors stood shifted alike."""
        if not (self.two and self._b_rest and self._rest is not None):
            return False
        shift = self._b_sum / n - self._rest
        return abs(shift) > md and self._floor_rests(self._b_sum / n, self._b_tip / n, md)

    def _floor_rests(self, base: float, tip: float, md: float) -> bool:
        """Levels away from rest are the floor's own rest moved (one channel
        cannot tell: yes); two channels: both moved alike."""
        if not self.two or self._rest is None:
            return True
        shift = base - self._rest
        dt = (tip - self._rest_tip) - shift
        return abs(dt) <= COMMON_FRAC * min(abs(shift), 3.0 * md) + 0.125 * md

    def _probe_check(self, t: FloatArray, rel: FloatArray, quality: Quality) -> Quality:
        """Far below rest for a second, or a sudden step taken out in the last
        10 s: the probe slipped, not a drop."""
        moved = self._gate.moved_at
        recent = moved >= 0 and self._n - moved < 10.0 * self.fs
        if recent and quality in (Quality.OK, Quality.NOISY):
            return Quality.PROBE_MOVED
        if self._rest is None or not t.shape[0] or math.isnan(rel.item(-1)):
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
        # (positional: PelvicOutput's field order; a keyword call costs more per chunk)
        return PelvicOutput(
            self.stream,
            t,
            level,
            rel,  # relative
            state,
            conf,  # confidence
            self._rest,  # rest_level
            self.margins(),
            self._sigma,  # noise
            self._quality.quality if quality is None else quality,
            tuple(events),
            self.thresholds is not None,  # calibrated
            self.delay_s,
        )
