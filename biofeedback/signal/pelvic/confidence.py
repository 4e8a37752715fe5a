"""Per-sample confidence in the pelvic state: how far past its threshold.

A drop or a rise is 0.5 at its entry threshold (the margin) and 1 at twice
the margin; rest is 1 on the resting line and 0.5 at the drop threshold;
UNKNOWN is 0. Clipped to 0..1.
"""

from __future__ import annotations

import numpy as np

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.pelvic.zones import DROP, REST, UNK, Margins
from biofeedback.signal.types import Int8Array

__all__ = ["confidence", "confidence_reference"]


def _one_state(rel: FloatArray, st: np.int8, md: float, mc: float, out: FloatArray) -> None:
    """A drop's or a rise's formula (unclipped) into ``out``, in place: the
    operations of :func:`confidence_reference`, in its order."""
    np.abs(rel, out=out)
    if st == DROP:
        out -= md
        out *= 0.5 / md
    else:  # contraction or strain
        out -= mc
        out /= 2.0 * mc
    out += 0.5


def confidence(
    rel: FloatArray, state: Int8Array, const: np.int8 | None, m: Margins, out: FloatArray
) -> None:
    """Confidence per sample into ``out``.

    ``const`` is the state when the whole stretch has it (else None): one
    formula instead of a table. The same values as :func:`confidence_reference`.
    """
    md, mc, _ = m
    if const is None:
        c = confidence_reference(rel, state, m)
    elif const == UNK:
        out.fill(0.0)
        return
    elif const == REST:
        # 1 - |rel| / (2 md), in place (never above 1)
        np.abs(rel, out=out)
        out *= -0.5 / md
        out += 1.0
        np.maximum(out, 0.0, out=out)
        return
    else:
        _one_state(rel, const, md, mc, out)
        c = out
    np.maximum(c, 0.0, out=out)
    np.minimum(out, 1.0, out=out)


def confidence_reference(rel: FloatArray, state: Int8Array, m: Margins) -> FloatArray:
    """The plain table form: each sample by its own state's formula (unclipped)."""
    md, mc, _ = m
    a = np.abs(rel)
    mm = np.array([1.0, md, md, mc, mc])[state]
    half = 0.5 / mm
    c: FloatArray = np.where(
        state == REST,
        1.0 - half * a,
        np.where(state == DROP, 0.5 + (a - mm) * half, 0.5 + (a - mm) / (2.0 * mm)),
    )
    c[state == UNK] = 0.0
    return c
