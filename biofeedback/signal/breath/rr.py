"""Breath front end for beat-to-beat (RR) intervals: respiratory sinus arrhythmia.

The Heart Rate Service fallback (any strap that sends RR intervals, the Polar
H10 among them): the tachogram is cleaned of implausible beats, resampled onto
a regular grid and band-passed, for the breath detector.
"""

from __future__ import annotations

import numpy as np

from biofeedback.signal.breath.edr import ModulationFusion, trust_from_quality
from biofeedback.signal.breath.frontends import FrontEnd, FrontOut
from biofeedback.signal.filters import FloatArray, GridResampler, SosFilter, bandpass_sos

__all__ = ["RrFrontEnd"]


class RrFrontEnd(FrontEnd):
    """Respiratory sinus arrhythmia from beat-to-beat intervals.

    RR chunks have beat times as ``t`` and intervals (seconds) as values. The
    tachogram is cleaned of implausible beats, resampled onto a 4 Hz grid and
    band-passed; its respiratory quality, judged every 2 s over 32 s, says how
    far the breaths can be trusted now. Inhaling speeds the heart, so inhale is a *fall* of the RR
    interval (fixed polarity -1). The heart's response lags the breath by a
    fraction of a second, so RR onsets are the least precise.
    """

    fixed_polarity = -1
    prior = -1

    def __init__(self, grid_hz: float = 4.0, lp_hz: float = 0.6) -> None:
        self.fs = grid_hz
        self._lp_hz = lp_hz
        self.sos = bandpass_sos(0.05, lp_hz, grid_hz, 1, 2)
        self._filt = SosFilter(self.sos, 1)
        self._grid = GridResampler(grid_hz, max_gap_s=3.0)
        self._ref: float | None = None  # running typical RR for outlier rejection
        # judges the cleaned tachogram's respiratory quality (for the trust figure)
        self.judge = ModulationFusion(grid_hz, (-1.0,))

    def reset(self) -> None:
        self._grid.reset()
        self._filt.reset()
        self.judge.reset()

    def trust(self, kind_trust: float) -> float:
        """0..1: how far the breaths can be trusted now, from the sinus arrhythmia's
        respiratory quality (:func:`~biofeedback.signal.breath.edr.trust_from_quality`)."""
        j = self.judge
        return trust_from_quality(None if j.signs is None else float(j.quality[0]))

    def process(self, t: FloatArray, values: FloatArray) -> FrontOut:
        rr = np.asarray(values[:, 0], dtype=np.float64)
        ok = np.isfinite(rr) & (rr > 0.25) & (rr < 2.5)
        if self._ref is not None:
            # ectopic or missed beats: more than 30 % off the running typical interval
            ok &= np.abs(rr - self._ref) < 0.3 * self._ref
        t, rr = t[ok], rr[ok]
        if rr.size:
            self._ref = float(np.median(rr)) if self._ref is None else self._ref
            # a slow update per accepted beat (vectorised geometric weights)
            w = 0.9 ** np.arange(rr.size, 0, -1)
            self._ref = float(self._ref * 0.9**rr.size + 0.1 * np.dot(w / 0.9, rr))
        tg, vg, restarted = self._grid.process(t, rr)
        if restarted:
            self._filt.reset()
        if tg.size == 0:
            return tg, np.empty(0), np.empty(0)
        y = self._filt.process(vg)
        self.judge.process(y[:, np.newaxis])
        return tg, y, vg
