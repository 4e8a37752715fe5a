"""Restlessness: random motion artefacts at a rate set by ``Intent.motion``.

Each is a bump on every sensor, may reseat the probe (a shift that settles
back) and tilts the chest a little (a small posture change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from devices.virtual.body.common import TICK, FloatArray

__all__ = ["Motion", "MotionBlock"]

_STEP_TAU_S: Final = 8.0  # a reseated probe settles back over this time


class _Event:
    """One motion artefact: a bump on every sensor, a probe shift, a posture change."""

    __slots__ = ("a_acc", "a_belt", "a_ecg", "a_p", "dur", "start", "step_p", "tilt")

    def __init__(self, start: float, rng: np.random.Generator, level: float) -> None:
        z = rng.standard_normal(9)
        u = rng.random(3)
        self.start = start
        self.dur = 0.3 + 1.2 * u[0]
        scale = 0.5 + level
        # Movement squeezes the probe (mostly a positive spike) and may reseat it.
        self.a_p = scale * (3.0 + 10.0 * u[1]) * (1.0 if u[2] < 0.8 else -0.5)
        self.step_p = 1.5 * z[0]
        self.a_belt = scale * 2.0 * z[1]
        self.a_acc = scale * 150.0 * z[2:5]
        self.tilt = np.radians(3.0) * z[5:7]
        self.a_ecg = scale * 250.0 * z[7]

    @property
    def until(self) -> float:
        return self.start + self.dur + _STEP_TAU_S * 6.0


@dataclass(frozen=True)
class MotionBlock:
    """Motion over one block: probe (cmH2O), belt (N), accelerometer (mG,
    ``(3, n)``), ECG (µV) and chest tilt (rad, ``(2, n)``: pitch, roll)."""

    p: FloatArray
    belt: FloatArray
    acc: FloatArray
    ecg: FloatArray
    tilt: FloatArray


class Motion:
    """Motion artefacts drawn per control tick, rendered per block."""

    def __init__(self, rng: np.random.Generator, rate_hz: float) -> None:
        self._rng = rng
        self.rate_hz = rate_hz
        self.events: list[_Event] = []
        self._tilt = np.zeros(2)

    def tick(self, tk: float, motion: float) -> None:
        """Maybe start an artefact in the tick at ``tk`` (``motion`` 0..1)."""
        level = min(max(float(motion), 0.0), 1.0)
        rm = self._rng
        if rm.random() < level * self.rate_hz * TICK:
            self.events.append(_Event(tk + TICK * float(rm.random()), rm, level))

    def block(self, tg: FloatArray, tb1: float) -> MotionBlock:
        """The artefacts over grid times ``tg`` (the block ends at ``tb1``)."""
        B = tg.size
        mot = MotionBlock(
            p=np.zeros(B),
            belt=np.zeros(B),
            acc=np.zeros((3, B)),
            ecg=np.zeros(B),
            tilt=np.repeat(self._tilt[:, None], B, axis=1),
        )
        keep = []
        for ev in self.events:
            x = (tg - ev.start) / ev.dur
            ramp = np.clip(x, 0.0, 1.0)
            bump = 0.5 - 0.5 * np.cos(2 * np.pi * ramp)  # zero outside the event
            ramp = ramp * ramp * (3 - 2 * ramp)
            after = np.maximum(tg - ev.start - ev.dur, 0.0)
            mot.p[:] += ev.a_p * bump + ev.step_p * ramp * np.exp(-after / _STEP_TAU_S)
            mot.belt[:] += ev.a_belt * bump
            mot.acc[:] += ev.a_acc[:, None] * bump[None, :]
            mot.ecg[:] += ev.a_ecg * bump
            mot.tilt[:] += ev.tilt[:, None] * ramp[None, :]
            if ev.start + ev.dur <= tb1:
                # The posture change is complete: later blocks take it as the base.
                self._tilt = self._tilt + ev.tilt
                ev.tilt = np.zeros(2)
            if ev.until > tb1:
                keep.append(ev)
        self.events = keep
        return mot
