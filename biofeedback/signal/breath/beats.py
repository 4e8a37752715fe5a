"""Heart beats from a raw ECG, streaming: R-peak times and what each beat carries of the breath.

A chest strap's ECG (Polar H10: one lead, 130 Hz) carries the breathing three
ways (Charlton et al. 2016, 2018): the beat intervals shorten on inhale
(respiratory sinus arrhythmia, frequency modulation), the QRS amplitude swings
as the chest's impedance and the heart's axis change (amplitude modulation),
and the baseline wanders with the chest (intensity modulation). This module
finds the beats and measures, per beat, its time, its QRS amplitude and the
mean ECG level over the cardiac cycle it closes; :mod:`.edr` turns them into
breath signals.

R-peaks are found in the style of Pan and Tompkins (1985), causally: a
5-18 Hz band-pass (the QRS's energy; P and T waves and the baseline mostly
drop out), its magnitude, and local maxima over the 0.36 s before and the
0.2 s after (a peak is confirmed 0.2 s after it; a T wave, which follows its
R by 0.2-0.36 s and is smaller, is never a maximum) above an adaptive
threshold between the running signal-peak and noise-peak levels (the signal
level sinks while no beat comes, so a QRS that shrinks is found again). A
refractory period of 0.25 s (240 beats/min) backs that up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter1d

from biofeedback.signal.filters import FloatArray, SosFilter, bandpass_sos, ffill_nan, phase_delay_s

__all__ = ["Beats", "RPeakDetector", "local_maxima"]

#: Pass band of the QRS detector (Pan-Tompkins: 5-15 Hz), Hz.
QRS_BAND_HZ = (5.0, 18.0)
#: A peak must be the largest within this many seconds after it (it is confirmed then) ...
PEAK_AHEAD_S = 0.2
#: ... and this many before it: a T wave, 0.2-0.36 s after its R, is never a beat.
PEAK_BACK_S = 0.36
#: No two beats closer than this (240 beats/min).
REFRACTORY_S = 0.25
#: The QRS amplitude is measured as peak-to-trough within this span either side of R.
QRS_HALF_S = 0.06
#: The detector learns its levels over the first seconds of the stream.
LEARN_S = 2.0
#: Where the threshold sits between the noise-peak and signal-peak levels.
THRESHOLD_FRACTION = 0.3
#: Longest cardiac cycle a baseline level is measured over (25 beats/min).
MAX_CYCLE_S = 2.4


@dataclass(frozen=True)
class Beats:
    """Beats confirmed in one chunk.

    Parameters
    ----------
    t : ndarray, shape (k,)
        R-peak times (the stream's sample times).
    amplitude : ndarray, shape (k,)
        QRS peak-to-trough amplitude of each beat (the ECG's unit).
    level : ndarray, shape (k,)
        Mean ECG over the cardiac cycle that ends at each beat (nan for the
        first beat after a start, or after a cycle too long to be one).
    """

    t: FloatArray = field(default_factory=lambda: np.empty(0))
    amplitude: FloatArray = field(default_factory=lambda: np.empty(0))
    level: FloatArray = field(default_factory=lambda: np.empty(0))


def local_maxima(e: FloatArray, back: int, ahead: int, lo: int, hi: int) -> npt.NDArray[np.intp]:
    """Indices ``i`` in ``[lo, hi)`` where ``e[i]`` is the largest of ``e[i-back : i+ahead+1]``.

    Pure: the window is clipped at the array's start (the stream's start);
    callers pass ``hi <= len(e) - ahead`` so no window is cut at the end.
    """
    if hi <= lo:
        return np.empty(0, dtype=np.intp)
    a = max(0, lo - back)
    pad = np.concatenate((np.full(back - (lo - a), -np.inf), e[a : hi + ahead]))
    w = back + ahead + 1
    # a forward window: element k is the largest of pad[k : k + w]
    wmax = maximum_filter1d(pad, w, origin=-(w // 2))[: hi - lo]
    seg = e[lo:hi]
    return np.flatnonzero((seg >= wmax) & (seg > 0.0)) + lo


@dataclass
class _Levels:
    """Running signal-peak and noise-peak levels (Pan-Tompkins SPKI / NPKI)."""

    signal: float = 0.0
    noise: float = 0.0

    def threshold(self) -> float:
        return self.noise + THRESHOLD_FRACTION * (self.signal - self.noise)

    def learn(self, height: float, is_beat: bool) -> None:
        if is_beat:
            # an artefact many times a QRS would lift the threshold above the next beats
            self.signal += 0.125 * (min(height, 2.0 * self.signal) - self.signal)
        else:
            self.noise += 0.125 * (height - self.noise)


class RPeakDetector:
    """Causal R-peak detector with per-beat amplitude and baseline level.

    Chunking does not change its output: the filter keeps its state, peaks
    are judged only once their whole window has arrived, and the
    levels are learned at a fixed sample count from the start.

    Parameters
    ----------
    rate_hz : float
        ECG sample rate (above 40 Hz).
    """

    def __init__(self, rate_hz: float) -> None:
        if not rate_hz > 2.2 * QRS_BAND_HZ[1]:
            need = 2.2 * QRS_BAND_HZ[1]
            raise ValueError(f"an ECG needs a rate above {need} Hz, got {rate_hz!r}")
        self.fs = rate_hz
        sos = bandpass_sos(QRS_BAND_HZ[0], QRS_BAND_HZ[1], rate_hz, 2, 2)
        self._filt = SosFilter(sos, 1)
        # the band-pass delays the QRS: R is sought up to that far before its peak
        self._lag = max(1, round(2.0 * phase_delay_s(sos, 10.0, rate_hz) * rate_hz))
        self._ahead = max(1, round(PEAK_AHEAD_S * rate_hz))
        self._back = max(1, round(PEAK_BACK_S * rate_hz))
        self._qrs = max(1, round(QRS_HALF_S * rate_hz))
        self._refractory = round(REFRACTORY_S * rate_hz)
        self._keep = round(MAX_CYCLE_S * rate_hz) + self._back + self._ahead + self._qrs + self._lag
        self._learn_n = round(LEARN_S * rate_hz)
        self._last = np.zeros(1)
        self._start()

    def _start(self) -> None:
        self._t = np.empty(0)
        self._x = np.empty(0)
        self._e = np.empty(0)
        self._first = 0  # stream index of the buffer's first sample
        self._next = 0  # first stream index not yet judged
        self._levels: _Levels | None = None
        self._last_r = -(10**9)  # stream index of the last beat's R
        self._last_peak = -(10**9)  # stream index of its peak in the band-passed magnitude
        self._cycle = self.fs  # typical beat spacing, samples (60 beats/min to start)

    def reset(self) -> None:
        """A gap: restart (the next sample starts a new stream)."""
        self._filt.reset()
        self._start()

    def process(self, t: FloatArray, x: FloatArray) -> Beats:
        """Beats confirmed by one chunk of ECG samples ``x`` at times ``t``."""
        x = ffill_nan(np.asarray(x, dtype=np.float64).reshape(-1, 1), self._last)[:, 0]
        if x.shape[0] == 0:
            return Beats()
        self._last[0] = x[-1]
        e = np.abs(self._filt.process(x))
        self._t = np.concatenate((self._t, np.asarray(t, dtype=np.float64)))
        self._x = np.concatenate((self._x, x))
        self._e = np.concatenate((self._e, e))
        end = self._first + self._e.shape[0]
        if self._levels is None:
            if end < self._learn_n:
                return Beats()
            learned = self._e[: self._learn_n]
            self._levels = _Levels(signal=0.5 * float(learned.max()), noise=float(learned.mean()))
        beats = self._judge(end - self._ahead)
        self._trim(end)
        return beats

    def _judge(self, stop: int) -> Beats:
        """Judge the candidate peaks at stream indices ``[self._next, stop)``."""
        f = self._first
        idx = local_maxima(self._e, self._back, self._ahead, self._next - f, stop - f) + f
        self._next = max(self._next, stop)
        levels = self._levels
        assert levels is not None
        ts: list[float] = []
        amps: list[float] = []
        lvls: list[float] = []
        for i in idx.tolist():
            h = float(self._e[i - f])
            if i - self._last_peak > min(MAX_CYCLE_S * self.fs, 1.66 * self._cycle):
                # no beat for 1.66 cycles (Pan-Tompkins' search-back): the QRS may have
                # shrunk; lower the signal level until beats pass the threshold again
                levels.signal = max(levels.noise, 0.5 * levels.signal)
            beat = h > levels.threshold() and i - self._last_peak >= self._refractory
            levels.learn(h, beat)
            if not beat:
                continue
            r = self._r_index(i)
            ts.append(float(self._t[r - f]))
            amps.append(self._amplitude(r))
            lvls.append(self._cycle_level(r))
            if 0 < i - self._last_peak < MAX_CYCLE_S * self.fs:
                self._cycle += 0.125 * (i - self._last_peak - self._cycle)
            self._last_peak, self._last_r = i, r
        return Beats(t=np.array(ts), amplitude=np.array(amps), level=np.array(lvls))

    def _r_index(self, peak: int) -> int:
        """Stream index of R: the largest deviation of the ECG in the band-pass's reach
        before the peak (either polarity: a strap may sit the other way round)."""
        f = self._first
        lo = max(0, peak - self._lag - self._qrs - f)
        seg = self._x[lo : peak + 1 - f]
        return lo + f + int(np.argmax(np.abs(seg - seg.mean())))

    def _amplitude(self, r: int) -> float:
        lo = max(0, r - self._qrs - self._first)
        seg = self._x[lo : r + self._qrs + 1 - self._first]
        return float(seg.max() - seg.min())

    def _cycle_level(self, r: int) -> float:
        """Mean ECG over ``(last R, R]``: a mean over a whole cycle cancels the beat's own shape."""
        p = self._last_r
        if p < self._first or r - p > MAX_CYCLE_S * self.fs or r <= p:
            return math.nan
        f = self._first
        # (an exact sum: the same whatever the chunking)
        return math.fsum(self._x[p + 1 - f : r + 1 - f].tolist()) / (r - p)

    def _trim(self, end: int) -> None:
        """Keep what the next judgements can reach back to."""
        cut = max(0, end - self._keep - self._first)
        if cut:
            self._t, self._x = self._t[cut:], self._x[cut:]
            self._e = self._e[cut:]
            self._first += cut
