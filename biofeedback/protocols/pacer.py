"""The breath pacer: inhale / hold / exhale targets as a function of time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.virtual.intent import BreathTarget
from devices.vocab import BreathPhase

__all__ = ["Pacer"]


@dataclass(frozen=True)
class Pacer:
    """A fixed breathing pattern starting at ``t0``.

    Parameters
    ----------
    inhale_s, hold_s, exhale_s : float
        Phase durations; relaxing (inhale with the drop) and keeping the
        release (exhale) are both long and slow by default.
    t0 : float
        Clock time of the first inhale onset.
    """

    inhale_s: float = 4.0
    hold_s: float = 0.0
    exhale_s: float = 6.0
    t0: float = 0.0

    def __post_init__(self) -> None:
        if self.inhale_s <= 0 or self.exhale_s <= 0 or self.hold_s < 0:
            raise ValueError(
                "inhale and exhale must be positive and hold non-negative, got "
                f"{self.inhale_s}/{self.hold_s}/{self.exhale_s} s"
            )

    @property
    def period(self) -> float:
        return self.inhale_s + self.hold_s + self.exhale_s

    @property
    def rate_bpm(self) -> float:
        return 60.0 / self.period

    def cycle(self, t: float) -> int:
        """Index of the breath cycle at ``t`` (negative before ``t0``)."""
        return int(np.floor((t - self.t0) / self.period))

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
        return BreathTarget(phase, progress, self.inhale_s, self.hold_s, self.exhale_s)

    def curve(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The target breath shape 0..1 (0 = empty, 1 = full) at times ``t``.

        Raised-cosine ramps, the curve the live view draws ahead of "now".
        """
        pos = np.mod(np.asarray(t, dtype=np.float64) - self.t0, self.period)
        up = 0.5 - 0.5 * np.cos(np.pi * np.clip(pos / self.inhale_s, 0.0, 1.0))
        down_pos = np.clip((pos - self.inhale_s - self.hold_s) / self.exhale_s, 0.0, 1.0)
        down = 0.5 + 0.5 * np.cos(np.pi * down_pos)
        return np.where(pos < self.inhale_s + self.hold_s, up, down)
