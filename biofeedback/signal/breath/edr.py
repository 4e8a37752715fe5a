"""ECG-derived breath: three respiratory modulations of the ECG, fused by how regular each is.

The breath front end for a chest strap's raw ECG (Polar H10). From the beats
of :mod:`.beats` it forms, per beat (Charlton et al. 2016, 2018):

* **RIFV** -- the beat interval (respiratory sinus arrhythmia: inhaling speeds
  the heart). Strong in the young and fit, often weak in the old and the ill;
* **RIAV** -- the log of the QRS amplitude (the chest's impedance and the
  heart's electrical axis change with lung volume); the log makes it a
  relative swing, whatever the lead's gain;
* **RIIV** -- the mean ECG over each cardiac cycle (baseline wander with the
  chest's movement; a whole-cycle mean cancels the beat's own shape).

Beats off the rhythm (ectopic or missed: an interval more than 30 % from the
running typical one) are dropped from all three, as an ectopic beat also
changes the QRS. Each series is resampled onto a 4 Hz grid and band-passed
(0.05-0.6 Hz, 3-36 breaths/min). Every 2 s, from the last 32 s, each
modulation's *respiratory quality* is the height of its first
autocorrelation peak at a breath's lag (1.5-15 s): near 1 for a regular
breathing rhythm, near 0 for noise or beat-to-beat scatter (an
autocorrelation quality index, as in Birrenkott et al. 2018). The fused breath
signal is the sum of the unit-RMS modulations weighted by their quality to
the fourth power (the most regular one leads; two good ones share), each
with the sign that agrees with the fused signal so far. The first sign comes
from the interval's physiology: inhale shortens the interval, so the fused
signal rises on inhale when the sinus arrhythmia leads at the start.

Causal and chunk-invariant: the weights change only at fixed grid indices,
from past samples. The leading modulation's quality also says how far the
breath can be trusted now (:func:`trust_from_quality`): on the ICU records, a
32 s window's rate was within +-2 breaths/min of the marks 0.2-0.3 of the
time below quality 0.4 and 0.93 above 0.7.
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.breath.beats import Beats, RPeakDetector
from biofeedback.signal.breath.frontends import FrontEnd, FrontOut
from biofeedback.signal.filters import (
    FloatArray,
    GridResampler,
    SosFilter,
    bandpass_sos,
    highpass_sos,
    lowpass_sos,
)

__all__ = [
    "MODULATIONS",
    "TRUST_BY_QUALITY",
    "BeatGrid",
    "BeatScreen",
    "EcgFrontEnd",
    "ModulationFusion",
    "acf_qualities",
    "acf_quality",
    "trust_from_quality",
    "weighted_rows",
]

#: The modulations, in the order of the fused channels.
MODULATIONS = ("interval", "amplitude", "baseline")
#: Grid the beat series are resampled onto, Hz.
GRID_HZ = 4.0
#: Breathing band of the modulations, Hz (3-36 breaths/min).
BAND_HZ = (0.05, 0.6)
#: Window the quality, scale and sign of each modulation are judged over, s.
FUSION_WINDOW_S = 32.0
#: How often the weights are updated, s (they follow a 32 s window: slowly).
FUSION_STEP_S = 2.0
#: History needed before the first weights (a couple of breaths), s.
FUSION_MIN_S = 8.0
#: Weight = quality ** this: the most regular modulation leads, two good ones share.
WEIGHT_POWER = 4.0
#: How far a breath from the heart can be trusted, by the respiratory quality
#: of the signal it is detected on (:func:`acf_qualities`): the share of 32 s
#: windows whose rate lay within +-2 breaths/min of human marks on 52 ICU
#: records -- about 0.2-0.3 below quality 0.4, 0.5 at 0.5-0.6, 0.8 at 0.6-0.7,
#: 0.93 above 0.7, for the fused ECG modulations and for beat intervals alone
#: alike, and in either half of the records -- as a curve through these points.
TRUST_BY_QUALITY = ((0.3, 0.2), (0.5, 0.45), (0.75, 0.93))


def trust_from_quality(quality: float | None) -> float:
    """The :data:`TRUST_BY_QUALITY` curve at ``quality`` (its lowest figure for None)."""
    qs, ts = zip(*TRUST_BY_QUALITY, strict=True)
    return ts[0] if quality is None else float(np.interp(quality, qs, ts))
#: A beat interval further than this fraction from the running typical one is off the rhythm.
ECTOPIC_FRACTION = 0.3
#: After this many beats off the rhythm in a row, the rhythm itself has changed.
RHYTHM_CHANGE_BEATS = 5


def acf_qualities(h: FloatArray, fs: float, lo_s: float = 1.5, hi_s: float = 15.0) -> FloatArray:
    """Respiratory quality of each column of ``h``: its first autocorrelation peak
    at a breath's lag.

    The normalised (unbiased) autocorrelation's largest value at lags
    ``lo_s``..``hi_s`` after its first zero crossing: near 1 for a regular
    rhythm in that range, near 0 for noise; 0 for a flat or too short column.
    """
    n, k = h.shape
    lo, hi = round(lo_s * fs), min(round(hi_s * fs), n - max(8, round(2.0 * fs)))
    if hi <= lo:
        return np.zeros(k)
    d = h - h.mean(axis=0)
    e = np.einsum("ij,ij->j", d, d)
    nfft = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(d, nfft, axis=0)
    r = np.fft.irfft(spec * spec.conj(), nfft, axis=0)[: hi + 1]
    r *= (n / (n - np.arange(hi + 1)))[:, np.newaxis]
    with np.errstate(divide="ignore", invalid="ignore"):
        r /= e
    neg = r < 0.0
    start = np.maximum(lo, np.where(neg.any(axis=0), neg.argmax(axis=0), hi + 1))
    r[np.arange(hi + 1)[:, np.newaxis] < start] = -np.inf
    q = np.max(r, axis=0)
    return np.where((e > 0.0) & np.isfinite(q), np.clip(q, 0.0, 1.0), 0.0)


def acf_quality(x: FloatArray, fs: float, lo_s: float = 1.5, hi_s: float = 15.0) -> float:
    """:func:`acf_qualities` of one signal."""
    return float(acf_qualities(x[:, np.newaxis], fs, lo_s, hi_s)[0])


def weighted_rows(x: FloatArray, coefs: FloatArray) -> FloatArray:
    """``sum_j x[:, j] * coefs[..., j]``, column by column: the same bits whatever the
    number of rows (a matrix product may sum in another order for other sizes)."""
    if coefs.ndim == 1:
        c = coefs.tolist()
        out = x[:, 0] * c[0]
        for j in range(1, x.shape[1]):
            out += x[:, j] * c[j]
        return out
    out = x[:, 0] * coefs[:, 0]
    for j in range(1, x.shape[1]):
        out += x[:, j] * coefs[:, j]
    return out


class BeatScreen:
    """Per-beat features of the beats that keep the rhythm (streaming, per beat)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev: float | None = None  # the previous beat's time
        self._ref: float | None = None  # running typical interval
        self._off = 0  # beats off the rhythm in a row

    def process(self, beats: Beats) -> tuple[FloatArray, FloatArray]:
        """``(t, features)``: times and ``(interval, log amplitude, level)`` of the kept beats."""
        ts: list[float] = []
        rows: list[tuple[float, float, float]] = []
        for t, amp, lvl in zip(
            beats.t.tolist(), beats.amplitude.tolist(), beats.level.tolist(), strict=True
        ):
            prev, self._prev = self._prev, t
            if prev is None:
                continue
            rr = t - prev
            if not self._on_rhythm(rr) or not (amp > 0.0 and math.isfinite(lvl)):
                continue
            ts.append(t)
            rows.append((rr, math.log(amp), lvl))
        return np.array(ts), np.array(rows).reshape(-1, 3)

    def _on_rhythm(self, rr: float) -> bool:
        if not 0.25 < rr < 2.5:
            return False
        ref = self._ref
        if ref is None or abs(rr - ref) < ECTOPIC_FRACTION * ref:
            self._ref = rr if ref is None else ref + 0.1 * (rr - ref)
            self._off = 0
            return True
        self._off += 1
        if self._off >= RHYTHM_CHANGE_BEATS:  # a new rhythm, not ectopic beats: follow it
            self._ref, self._off = rr, 0
        return False


class BeatGrid:
    """Per-beat feature rows onto a regular grid, streaming (linear interpolation).

    One :class:`~biofeedback.signal.buffers.GridResampler` runs on the beats'
    running count; the rows are interpolated at the fractional counts it
    gives (the same as interpolating each column in time).
    """

    def __init__(self, rate_hz: float, n: int) -> None:
        self._counts = GridResampler(rate_hz, max_gap_s=3.0)
        self._n = n
        self.reset()

    def reset(self) -> None:
        self._counts.reset()
        self._count = 0  # beats seen
        self._last = np.zeros((0, self._n))  # the previous beat's row

    def process(self, t: FloatArray, rows: FloatArray) -> tuple[FloatArray, FloatArray, bool]:
        """``(grid times, grid rows, restarted)`` for the new beats ``t`` with their ``rows``."""
        k = t.shape[0]
        base = self._count - self._last.shape[0]  # count of the first row below
        tg, u, restarted = self._counts.process(t, np.arange(self._count, self._count + k, 1.0))
        table = np.concatenate((self._last, rows))
        self._count += k
        self._last = table[-1:]
        if tg.shape[0] == 0:
            return tg, np.empty((0, self._n)), restarted
        u = u - base
        i = np.minimum(np.floor(u).astype(np.intp), table.shape[0] - 2)
        i = np.maximum(i, 0)
        frac = (u - i)[:, np.newaxis]
        if table.shape[0] == 1:
            return tg, np.repeat(table, tg.shape[0], axis=0), restarted
        return tg, table[i] + frac * (table[i + 1] - table[i]), restarted


class ModulationFusion:
    """Per-sample weights that fuse the modulations into one breath signal.

    Parameters
    ----------
    fs : float
        Rate of the modulation signals.
    first_signs : sequence of float
        Sign of each modulation before any evidence (+1: rises on inhale;
        0: unknown, aligned with the leading modulation).
    """

    def __init__(self, fs: float, first_signs: tuple[float, ...]) -> None:
        self.fs = fs
        self.n = len(first_signs)
        self._first_signs = np.array(first_signs, dtype=np.float64)
        self._window = round(FUSION_WINDOW_S * fs)
        self._step = max(1, round(FUSION_STEP_S * fs))
        self._min = round(FUSION_MIN_S * fs)
        self.coef = np.zeros(self.n)  # weight * sign / scale, per modulation
        self.quality = np.zeros(self.n)
        self.signs: FloatArray | None = None
        self._count = 0  # samples seen (global index of the next one)
        self.reset()

    def reset(self) -> None:
        """A gap: the history restarts (the weights in use stay until new ones are judged)."""
        self._hist = np.empty((0, self.n))
        self._fused = np.empty(0)

    def process(self, x: FloatArray) -> FloatArray:
        """Per-sample coefficients (shape (m, n)) for ``x`` (shape (m, n): the band-passed
        modulations); the fused signal is ``(x * coefficients).sum(axis=1)``."""
        m = x.shape[0]
        coefs = np.empty((m, self.n))
        pos = 0
        while pos < m:
            # the weights change after global indices step-1, 2*step-1, ...
            upto = min(m, pos + self._step - self._count % self._step)
            seg = x[pos:upto]
            coefs[pos:upto] = self.coef
            self._remember(seg, weighted_rows(seg, self.coef))
            self._count += upto - pos
            if self._count % self._step == 0 and self._hist.shape[0] >= self._min:
                self._judge()
            pos = upto
        return coefs

    def _remember(self, seg: FloatArray, fused: FloatArray) -> None:
        w = self._window
        self._hist = np.concatenate((self._hist, seg))[-w:]
        self._fused = np.concatenate((self._fused, fused))[-w:]

    def _judge(self) -> None:
        h = self._hist
        scale = np.sqrt(np.einsum("ij,ij->j", h, h) / h.shape[0])
        if not (scale > 0.0).all():
            return
        q = acf_qualities(h, self.fs)
        self.quality = q
        self.signs = self._signs(h, q)
        w = q**WEIGHT_POWER
        total = float(w.sum())
        w = w / total if total > 0.0 else np.full(self.n, 1.0 / self.n)
        self.coef = w * self.signs / scale

    def _signs(self, h: FloatArray, q: FloatArray) -> FloatArray:
        """Each modulation's sign: agreeing with the fused signal so far (continuity)."""
        f = self._fused
        if self.signs is not None and float(f @ f) > 0.0:
            c = h.T @ f
            return np.where(c > 0.0, 1.0, np.where(c < 0.0, -1.0, self.signs))
        # the first judgement: the leader's sign from physiology where known, the others follow it
        lead = int(np.argmax(q))
        lead_sign = self._first_signs[lead]
        if lead_sign == 0.0:
            known = np.flatnonzero(self._first_signs)
            agree = h[:, lead] @ (h[:, known] @ self._first_signs[known]) if known.size else 1.0
            lead_sign = -1.0 if float(agree) < 0.0 else 1.0
        c = h.T @ h[:, lead]
        return np.where(c < 0.0, -lead_sign, lead_sign)


class EcgFrontEnd(FrontEnd):
    """Breath from a raw ECG: beats, three respiratory modulations, fused.

    Parameters
    ----------
    rate_hz : float
        ECG sample rate (Polar H10: 130 Hz).
    channel : int
        The ECG column.
    """

    prior = 1  # the fused signal rises on inhale when its sign is known

    def __init__(self, rate_hz: float, channel: int = 0) -> None:
        self.fs = GRID_HZ
        self._lp_hz = BAND_HZ[1]
        self.sos = bandpass_sos(BAND_HZ[0], BAND_HZ[1], GRID_HZ, 1, 2)
        self.channel = channel
        self.beats = RPeakDetector(rate_hz)
        self._screen = BeatScreen()
        self._grid = BeatGrid(GRID_HZ, len(MODULATIONS))
        n = len(MODULATIONS)
        # split band-pass: the high-pass output is the "raw" signal whose noise is measured
        self._hp = SosFilter(highpass_sos(BAND_HZ[0], GRID_HZ, 1), n)
        self._lp = SosFilter(lowpass_sos(BAND_HZ[1], GRID_HZ, 2), n)
        # inhale shortens the interval; the amplitude's and baseline's signs depend on the lead
        self.fusion = ModulationFusion(GRID_HZ, (-1.0, 0.0, 0.0))

    def trust(self, kind_trust: float) -> float:
        """0..1: how far the breaths can be trusted now, from the leading modulation's
        respiratory quality (:func:`trust_from_quality`)."""
        f = self.fusion
        return trust_from_quality(None if f.signs is None else float(f.quality.max()))

    def reset(self) -> None:
        self.beats.reset()
        self._screen.reset()
        self._grid.reset()
        self._hp.reset()
        self._lp.reset()
        self.fusion.reset()

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        beats = self.beats.process(t, values[:, self.channel])
        tb, feats = self._screen.process(beats)
        if tb.shape[0] == 0:
            return np.empty(0), np.empty(0), np.empty(0)
        tg, v, restarted = self._grid.process(tb, feats)
        if restarted:  # the first beats, or a gap: the grid restarted
            self._hp.reset()
            self._lp.reset()
            self.fusion.reset()
        if tg.shape[0] == 0:
            return tg, np.empty(0), np.empty(0)
        raw = self._hp.process(v)
        clean = self._lp.process(raw)
        coefs = self.fusion.process(clean)
        return tg, weighted_rows(clean, coefs), weighted_rows(raw, coefs)
