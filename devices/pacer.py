"""The breath pacer: inhale / hold / exhale targets as a function of time.

One pacer for the whole project: the session engine and the live view ask it
what to show, the virtual body follows the :class:`~devices.intent.BreathTarget`
it gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.intent import BreathTarget
from devices.vocab import BreathPhase

__all__ = ["Pacer"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Pacer:
    """A fixed breathing pattern: inhale, hold (may be 0), exhale, repeated.

    The cycle is periodic in both directions, so a pacer can be handed over at
    any time (before ``t0`` it is already running).

    Parameters
    ----------
    inhale_s, hold_s, exhale_s : float
        Phase durations; relaxing (inhale with the drop) and keeping the
        release (exhale) are both long and slow by default. The hold follows
        the inhale.
    t0 : float
        Clock time of an inhale onset.
    depth : float
        Relative depth asked for (1 = the person's natural depth).
    """

    inhale_s: float = 4.0
    hold_s: float = 0.0
    exhale_s: float = 6.0
    t0: float = 0.0
    depth: float = 1.0

    def __post_init__(self) -> None:
        if not (self.inhale_s > 0 and self.exhale_s > 0 and self.hold_s >= 0):
            raise ValueError(
                "inhale and exhale must be positive and hold non-negative, got "
                f"{self.inhale_s}/{self.hold_s}/{self.exhale_s} s"
            )
        if not (math.isfinite(self.t0) and self.depth > 0):
            raise ValueError(f"t0 must be finite and depth positive, got {self.t0}, {self.depth}")

    @property
    def period(self) -> float:
        """Length of one cycle, s."""
        return self.inhale_s + self.hold_s + self.exhale_s

    @property
    def rate_bpm(self) -> float:
        """Breaths per minute asked for."""
        return 60.0 / self.period

    def cycle(self, t: float) -> int:
        """Index of the breath cycle at ``t`` (negative before ``t0``)."""
        return math.floor((t - self.t0) / self.period)

    def target(self, t: float) -> BreathTarget:
        """What the pacer asks for at ``t``."""
        pos = (t - self.t0) % self.period
        if pos < self.inhale_s:
            phase, progress = BreathPhase.INHALE, pos / self.inhale_s
        elif pos < self.inhale_s + self.hold_s:
            phase, progress = BreathPhase.PAUSE, (pos - self.inhale_s) / self.hold_s
        else:
            phase = BreathPhase.EXHALE
            progress = (pos - self.inhale_s - self.hold_s) / self.exhale_s
        return BreathTarget(
            phase=phase,
            progress=progress,
            inhale_s=self.inhale_s,
            hold_s=self.hold_s,
            exhale_s=self.exhale_s,
            depth=self.depth,
        )

    __call__ = target

    def onsets(self, t_from: float, t_to: float) -> tuple[FloatArray, FloatArray]:
        """Inhale and exhale onsets the pacer gives in ``[t_from, t_to)``."""
        p = self.period
        k = np.arange(math.floor((t_from - self.t0) / p) - 1, math.ceil((t_to - self.t0) / p))
        inh = (self.t0 + k * p).astype(np.float64)
        exh = inh + (self.inhale_s + self.hold_s)
        return (
            inh[(inh >= t_from) & (inh < t_to)],
            exh[(exh >= t_from) & (exh < t_to)],
        )

    def curve(self, t: npt.ArrayLike) -> FloatArray:
        """The target breath shape 0..1 (0 = empty, 1 = full) at times ``t``.

        Raised-cosine ramps, the curve the live view draws ahead of "now".
        """
        pos = np.mod(np.asarray(t, dtype=np.float64) - self.t0, self.period)
        up = 0.5 - 0.5 * np.cos(np.pi * np.clip(pos / self.inhale_s, 0.0, 1.0))
        down_pos = np.clip((pos - self.inhale_s - self.hold_s) / self.exhale_s, 0.0, 1.0)
        down = 0.5 + 0.5 * np.cos(np.pi * down_pos)
        out: FloatArray = np.where(pos < self.inhale_s + self.hold_s, up, down)
        return out
