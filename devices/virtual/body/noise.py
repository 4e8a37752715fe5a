"""Random terms that are not behaviour: slow drifts, jitter, sensor noise.

One random stream, drawn in a fixed order per block (slow processes, pressure
jitter, belt noise, accelerometer noise), so a seed gives the same output
however the body is queried.
"""

from __future__ import annotations

import math

import numpy as np

from devices.virtual.body.common import DT, FloatArray, Lag

__all__ = ["Noise"]


class Noise:
    """The body's sensor-independent random terms, block by block.

    Parameters
    ----------
    rng : numpy.random.Generator
        The noise stream.
    block_n : int
        Grid samples per block.
    scale : float
        The body's ``noise`` knob (jitter, tremor, belt/accelerometer noise,
        ECG wander, heart-rate variability besides RSA).
    """

    def __init__(self, rng: np.random.Generator, block_n: int, scale: float) -> None:
        self._rng = rng
        self._n = block_n
        self.scale = scale
        # Slow processes sampled at block edges: tone drift, belt drift, ECG
        # wander, heart-rate level, HRV LF. Each is an OU driver, smoothed by a
        # second first-order stage where tau2 > 0 (drifts wander smoothly over
        # minutes instead of jittering), scaled to unit variance.
        self._tau1 = np.array([120.0, 60.0, 8.0, 60.0, 3.0])
        self._tau2 = np.array([120.0, 60.0, 0.0, 60.0, 0.0])
        self._gain = np.sqrt((self._tau1 + self._tau2) / self._tau1)
        self._slow1 = rng.standard_normal(5)
        self._slow = self._slow1 / self._gain
        a_pn = math.exp(-DT / 0.1)
        self._lag_pn = Lag(0.1, block_n, gain=math.sqrt(1 - a_pn**2), cols=3)  # unit variance

    def slow(self) -> FloatArray:
        """The five slow processes over the next block, rows of unit variance:
        tone drift, belt drift, ECG wander, heart-rate level, HRV LF."""
        B = self._n
        h = B * DT
        a1 = np.exp(-h / self._tau1)
        self._slow1 = a1 * self._slow1 + np.sqrt(1 - a1**2) * self._rng.standard_normal(5)
        a2 = np.exp(-h / np.maximum(self._tau2, 1e-9))
        new = a2 * self._slow + (1 - a2) * self._slow1
        w = (np.arange(B) / B)[None, :]
        out: FloatArray = (self._slow[:, None] * (1 - w) + new[:, None] * w) * self._gain[:, None]
        self._slow = new
        return out

    def pressure(self, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Physiological pressure jitter at the base and the tip (part shared),
        and the tremor of a contraction ``c``; cmH2O."""
        nz = self.scale
        pn = self._lag_pn(self._rng.standard_normal((self._n, 3)))
        jit_b = 0.12 * nz * (0.6 * pn[:, 0] + 0.8 * pn[:, 2])
        jit_t = 0.12 * nz * (0.6 * pn[:, 1] + 0.8 * pn[:, 2])
        tremor = 0.03 * nz * c * pn[:, 0]
        return jit_b, jit_t, tremor

    def belt(self) -> FloatArray:
        """Belt sensor noise, N."""
        out: FloatArray = 0.02 * self.scale * self._rng.standard_normal(self._n)
        return out

    def acc(self) -> FloatArray:
        """Accelerometer noise, mG, shape ``(3, n)``."""
        out: FloatArray = 1.0 * self.scale * self._rng.standard_normal((3, self._n))
        return out
