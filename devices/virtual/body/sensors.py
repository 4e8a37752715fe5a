"""What each sensor measures, from the body's components over one block.

Probe: ``base = rest + drift + d + c + 0.65 (s + ripple)`` and ``tip = rest +
tip_offset + drift + 0.5 d + 0.55 c + (s + ripple)``, plus tremor, jitter and
artefacts; ``ripple`` is the small rise of intra-abdominal pressure on a belly
inhale. The belt follows the belly (and bulges when straining); the chest
accelerometer sees gravity tilted by breathing and posture changes.
"""

from __future__ import annotations

import math

import numpy as np

from devices.virtual.body.common import FloatArray
from devices.virtual.body.params import POSTURES, BodyParams

__all__ = ["belt_force", "chest_gravity", "probe_pressure"]

# Channel gains of the two-channel probe: a contraction squeezes the base
# (introitus) most, intra-abdominal pressure pushes on the tip (deep) most, a
# real drop lowers the base most.
_BASE_C, _TIP_C = 1.0, 0.55
_BASE_S, _TIP_S = 0.65, 1.0
_BASE_D, _TIP_D = 1.0, 0.5


def probe_pressure(
    p: BodyParams,
    tone: FloatArray,
    d: FloatArray,
    c: FloatArray,
    iap: FloatArray,
    jitter: tuple[FloatArray, FloatArray, FloatArray],
    artefact: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Base and tip pressure, cmH2O.

    ``tone`` is the resting tone with its drift, ``iap`` the intra-abdominal
    pressure (strain plus breathing ripple), ``jitter`` the base and tip
    jitter and the tremor, ``artefact`` what moves the probe from outside
    (motion; seen at 0.8 by the tip).
    """
    jit_b, jit_t, tremor = jitter
    pb = tone + _BASE_D * d + _BASE_C * c + _BASE_S * iap + tremor + jit_b + artefact
    pt = (
        tone
        + p.tip_offset_cmH2O
        + _TIP_D * d
        + _TIP_C * c
        + _TIP_S * iap
        + 0.5 * tremor
        + jit_t
        + 0.8 * artefact
    )
    return pb, pt


def belt_force(
    p: BodyParams,
    v: FloatArray,
    s: FloatArray,
    c: FloatArray,
    drift: FloatArray,
    artefact: FloatArray,
    noise: FloatArray,
) -> FloatArray:
    """Belt force, N: the belly moves with the diaphragm, bulges when straining,
    and draws in a little with a contraction's abdominal co-activation.

    ``drift`` is already scaled (N), as are ``artefact`` and ``noise``.
    """
    tidal = p.tidal_depth
    v_abd = v + 0.35 * tidal * s / max(p.strain_cmH2O, 1e-9) - 0.05 * tidal * c / p.mvc_cmH2O
    out: FloatArray = p.belt_rest_N + p.belt_gain_N * v_abd + drift + artefact + noise
    return out


def chest_gravity(p: BodyParams, v: FloatArray, tilt: FloatArray) -> FloatArray:
    """Gravity on the chest accelerometer, mG, shape ``(3, n)``.

    Rotated by the breathing tilt (pitch, and a third of it as roll) and the
    posture's own tilt ``(pitch, roll)`` in rad.
    """
    tilt_r = math.radians(p.tilt_deg) / p.tidal_depth
    pitch = tilt_r * v + tilt[0]
    roll = 0.35 * tilt_r * v + tilt[1]
    ux, uy, uz = POSTURES[p.posture]
    ca, sa = np.cos(roll), np.sin(roll)
    cb, sb = np.cos(pitch), np.sin(pitch)
    y1 = uy * ca - uz * sa
    z1 = uy * sa + uz * ca
    acc = np.empty((3, v.size))
    acc[0] = 1000.0 * (ux * cb + z1 * sb)
    acc[1] = 1000.0 * y1
    acc[2] = 1000.0 * (-ux * sb + z1 * cb)
    return acc
