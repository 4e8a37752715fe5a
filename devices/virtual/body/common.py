"""What every part of the body shares: the time grid, outcome codes, one filter."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONTROL_HZ",
    "DO",
    "DT",
    "ECG_LOOKAHEAD_S",
    "GRID_HZ",
    "MISS",
    "PUSH",
    "SPT",
    "TICK",
    "FloatArray",
    "Lag",
]

FloatArray = npt.NDArray[np.float64]

#: Internal grid rate (Hz): every continuous signal is generated on it.
GRID_HZ: Final = 100
#: Control rate (Hz): the intent is evaluated once per tick.
CONTROL_HZ: Final = 10
#: How far past a query the beats must be known (the next beat's P wave).
ECG_LOOKAHEAD_S: Final = 0.35

SPT: Final = GRID_HZ // CONTROL_HZ  # grid samples per control tick
DT: Final = 1.0 / GRID_HZ
TICK: Final = 1.0 / CONTROL_HZ

# Outcome of an attempted pelvic action (compliance below 1 adds mistakes),
# for a whole action and for each drop-on-inhale rep a breath carries.
DO: Final = 0
MISS: Final = 1
PUSH: Final = 2  # bears down instead of dropping: the common mistake


class Lag:
    """First-order low-pass ``y[n] = a y[n-1] + g x[n]`` over fixed-size blocks.

    One small matrix product per block instead of a filter call: the block
    length is fixed, so the impulse response matrix is built once.
    """

    __slots__ = ("m", "p", "state")

    def __init__(self, tau: float, n: int, gain: float | None = None, cols: int = 1) -> None:
        a = math.exp(-DT / tau)
        g = 1.0 - a if gain is None else gain
        k = np.arange(n)
        lag = k[:, None] - k[None, :]
        self.m = np.where(lag >= 0, g * a ** np.maximum(lag, 0), 0.0)
        self.p = a ** (k + 1.0)
        self.state = np.zeros(cols)

    def __call__(self, x: FloatArray) -> FloatArray:
        y: FloatArray = self.m @ x
        if x.ndim == 1:
            y += self.p * self.state[0]
            self.state = y[-1:].copy()
        else:
            y += self.p[:, None] * self.state[None, :]
            self.state = y[-1].copy()
        return y
