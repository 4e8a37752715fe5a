"""The heart: beat times with respiratory sinus arrhythmia, the ECG and the SCG.

The RR interval follows the airflow (shorter on inhale), slow variability, and
shortens when straining or contracting hard. Respiratory sinus arrhythmia has
two paths from the same airflow drive: a direct one (``rsa_ms``, the same at
every breathing rate) and the baroreflex loop, a resonance (a band-pass
filter, peak gain ``resonance_gain`` at the person's own ``resonance_bpm``,
quality factor ``resonance_q``). At resonance both add in phase, so the heart
rhythm swings most when the person breathes at that rate and less on either
side -- what a resonance-breathing assessment looks for. Beat times are kept; the ECG and
the seismocardiogram are sums of Gaussian waves around them, computed at the
query times.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from devices.virtual.body.common import DT, GRID_HZ, FloatArray, Lag
from devices.virtual.body.params import BodyParams

__all__ = ["ECG_WAVES", "SCG_WAVES", "T_WAVE", "Heart"]

# ECG waves relative to the R peak: (centre s, amplitude µV, width s). The T
# wave's centre scales with sqrt(RR) (QT shortens as the heart speeds up).
ECG_WAVES: Final = np.array(
    [
        (-0.20, 120.0, 0.025),  # P
        (-0.035, -110.0, 0.010),  # Q
        (0.0, 1150.0, 0.011),  # R
        (0.038, -260.0, 0.012),  # S
    ]
)
T_WAVE: Final = (0.30, 280.0, 0.050)
# Seismocardiogram on the chest accelerometer (mG): aortic opening/closure.
SCG_WAVES: Final = np.array([(0.07, 7.0, 0.012), (0.12, -5.0, 0.015), (0.36, 3.0, 0.030)])
# Beats that shape the waveform at t: the two before it and the next one.
_BEAT_OFFSETS: Final = np.array([-2, -1, 0])[:, None]


def _peak_ba(f0: float, q: float, fs: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A second-order peak (band-pass) filter at ``f0`` Hz, quality ``q``: ``(b, a)``.

    The closed form of ``scipy.signal.iirpeak`` (same numbers, bit for bit),
    so that building the virtual world does not import scipy (start-up time).
    """
    w0 = 2.0 * f0 / fs * math.pi
    bw = 2.0 * f0 / fs / q * math.pi
    gain = 1.0 / (1.0 + math.tan(bw / 2.0))
    return (1.0 - gain, 0.0, -(1.0 - gain)), (1.0, -2.0 * gain * math.cos(w0), 2.0 * gain - 1.0)


def _biquad(
    ba: tuple[tuple[float, ...], tuple[float, ...]], x: FloatArray, z: tuple[float, float]
) -> tuple[FloatArray, tuple[float, float]]:
    """``scipy.signal.lfilter`` of a second-order filter with state ``z`` (direct form II
    transposed, the same operations in the same order: identical output)."""
    (b0, b1, b2), (_, a1, a2) = ba
    z0, z1 = z
    y = np.empty(x.size)
    for i, xi in enumerate(x.tolist()):
        yi = xi * b0 + z0
        z0 = z1 + xi * b1 - yi * a1
        z1 = xi * b2 - yi * a2
        y[i] = yi
    return y, (z0, z1)


class Heart:
    """Beats generated block by block; waveforms on demand.

    Parameters
    ----------
    params : BodyParams
        The person.
    t0 : float
        Start time.
    rng : numpy.random.Generator
        The first beat's phase and the R amplitude's beat-to-beat jitter; a
        child of it draws the resonance rate when ``params`` leaves it open.
    block_n : int
        Grid samples per block.
    """

    def __init__(
        self, params: BodyParams, t0: float, rng: np.random.Generator, block_n: int
    ) -> None:
        self.params = params
        self._rng = rng
        self._ph = float(rng.random())  # phase within the first beat
        self._last_beat = t0 - 60.0 / params.heart_rate_bpm * (self._ph + 1e-3)
        self._lag_drive = Lag(0.5, block_n)  # RSA follows airflow with a short lag
        self._lag_phase = Lag(0.5, block_n)
        # A child stream, so the beats of a seed stay as they were without it.
        drawn = float(rng.spawn(1)[0].uniform(4.5, 6.5))
        self.resonance_bpm = params.resonance_bpm if params.resonance_bpm is not None else drawn
        self._res_ba = _peak_ba(self.resonance_bpm / 60.0, params.resonance_q, GRID_HZ)
        self._res_zi = (0.0, 0.0)
        self._v_prev = 0.0
        self.beats_t = np.zeros(0)
        self.beats_rr = np.zeros(0)
        self.beats_amp = np.zeros(0)

    def block(
        self,
        tg: FloatArray,
        v: FloatArray,
        s: FloatArray,
        c: FloatArray,
        slow: tuple[FloatArray, FloatArray],
        noise: float,
    ) -> None:
        """Beats over the block: volume ``v``, strain ``s``, contraction ``c``.

        ``slow`` is the heart-rate level and the HRV low-frequency wander (unit
        variance), ``noise`` the scale of the random terms.
        """
        p = self.params
        tidal = p.tidal_depth
        hr_level, hrv_lf = slow
        flow = np.diff(np.concatenate(([self._v_prev], v))) * GRID_HZ
        self._v_prev = float(v[-1])
        drive = self._lag_drive(np.tanh(flow / (0.15 * tidal)))
        # The baroreflex loop is driven by the breath's phase (inhale or exhale:
        # a nearly square wave whose fundamental does not depend on the rate, so
        # the swing peaks at the resonance itself), in phase with the direct path.
        phase = self._lag_phase(np.tanh(flow / (0.02 * tidal)))
        res, self._res_zi = _biquad(self._res_ba, phase, self._res_zi)
        rr0 = 60.0 / p.heart_rate_bpm
        rr = (
            rr0 * (1.0 + 0.03 * noise * hr_level)
            - 0.5e-3 * p.rsa_ms * (drive + p.resonance_gain * res)
            + 0.025 * noise * hrv_lf
            - 0.12 * rr0 * s / max(p.strain_cmH2O, 1e-9)
            - 0.04 * rr0 * c / p.mvc_cmH2O
        )
        rr = np.maximum(rr, 0.3)
        ph = self._ph + np.cumsum(DT / rr)
        n_beats = math.floor(ph[-1])
        if n_beats > 0:
            ph_prev = np.concatenate(([self._ph], ph[:-1]))
            cross = np.flatnonzero(np.floor(ph) > np.floor(ph_prev))
            level = np.floor(ph[cross])
            frac = (level - ph_prev[cross]) / (ph[cross] - ph_prev[cross])
            t_b = tg[cross] + frac * DT  # ph[i] is the phase at tg[i] + DT
            rr_b = np.diff(np.concatenate(([self._last_beat], t_b)))
            self._last_beat = float(t_b[-1])
            # Respiration modulates the R amplitude (electrical axis moves).
            vn = np.clip(v[cross] / tidal, 0.0, 1.2)
            amp_b = 1.0 + 0.08 * (vn - 0.5) + 0.02 * noise * self._rng.standard_normal(cross.size)
            self.beats_t = np.concatenate((self.beats_t, t_b))
            self.beats_rr = np.concatenate((self.beats_rr, rr_b))
            self.beats_amp = np.concatenate((self.beats_amp, amp_b))
        self._ph = float(ph[-1] - n_beats)

    def waveform(
        self,
        t: FloatArray,
        waves: FloatArray,
        t_wave: tuple[float, float, float] | None,
    ) -> FloatArray:
        """Sum of Gaussian waves around the two previous beats and the next one."""
        bt = self.beats_t
        nb = bt.size
        if nb == 0 or t.size == 0:
            return np.zeros(t.shape)
        k = np.searchsorted(bt, t)[None, :] + _BEAT_OFFSETS  # (3, n)
        valid = (k >= 0) & (k < nb)
        kk = np.minimum(np.maximum(k, 0), nb - 1)
        dt = t[None, :] - bt[kk]
        # Beats more than ECG_LOOKAHEAD_S ahead may not exist yet: never use them,
        # so the output cannot depend on how far generation has run.
        amp = np.where(valid & (dt > -0.3), self.beats_amp[kk], 0.0)
        mu, a, sig = waves[:, 0, None, None], waves[:, 1, None, None], waves[:, 2, None, None]
        acc = (a * np.exp(-0.5 * ((dt[None] - mu) / sig) ** 2)).sum(axis=0)
        if t_wave is not None:
            mu_t = t_wave[0] * np.sqrt(self.beats_rr[kk])
            acc += t_wave[1] * np.exp(-0.5 * ((dt - mu_t) / t_wave[2]) ** 2)
        out: FloatArray = (amp * acc).sum(axis=0)
        return out

    def between(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """Beat times in ``[t0, t1)`` and the RR interval ending at each."""
        m = (self.beats_t >= t0) & (self.beats_t < t1)
        return self.beats_t[m].copy(), self.beats_rr[m].copy()

    def trim(self, oldest: float) -> None:
        """Forget beats well before ``oldest`` (the waveform looks 3 s back at most)."""
        if self.beats_t.size and self.beats_t[0] < oldest - 3.0:
            keep = self.beats_t >= oldest - 3.0
            self.beats_t = self.beats_t[keep]
            self.beats_rr = self.beats_rr[keep]
            self.beats_amp = self.beats_amp[keep]
