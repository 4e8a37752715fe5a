"""Steady levels of a one-channel probe around a posture step (pure functions).

A body movement moves the probe's level at muscle speed and swings it on the
way; the level it moved to is the first one it holds afterwards. These find
such levels in the probe's recent samples for
:class:`~biofeedback.signal.pelvic.posture.PostureWatch`.
"""

from __future__ import annotations

import numpy as np

from biofeedback.signal.filters import FloatArray

__all__ = ["rise", "settled_at", "steady_from"]


def _steady(x: FloatArray, k: int, tol: float) -> tuple[FloatArray, np.ndarray]:
    """Windows of ``k + 1`` samples: their means and the indices of those
    that stayed within ``tol``."""
    w = np.lib.stride_tricks.sliding_window_view(x, k + 1)
    ok = np.flatnonzero(w.max(axis=1) - w.min(axis=1) < tol)
    return w, ok


def steady_from(t: FloatArray, x: FloatArray, k: int, tol: float) -> tuple[float, float] | None:
    """The first stretch of ``k + 1`` samples that stayed within ``tol``: its
    mean and its last sample's time (None: none)."""
    if t.shape[0] <= k:
        return None
    w, ok = _steady(x, k, tol)
    return (float(np.mean(w[ok[0]])), float(t[ok[0] + k])) if ok.size else None


def settled_at(t: FloatArray, x: FloatArray, k: int, before: float, tol: float) -> float | None:
    """The end of the first stretch of ``k + 1`` samples that stayed within
    ``tol`` and that the probe did not then leave towards ``before`` by more
    than ``tol`` over the next ``k`` samples (the top of a movement's
    swing is no level); None: none yet."""
    h = k
    if t.shape[0] <= k + h or k < 1:
        return None
    w, ok = _steady(x, k, tol)
    for i in ok[ok + k + h < t.shape[0]]:
        level = float(np.mean(w[i]))
        sign = 1.0 if level > before else -1.0
        if float(np.min(sign * (x[i + k : i + k + h + 1] - level))) > -tol:
            return float(t[i + k])
    return None


def rise(x: FloatArray) -> float:
    """How far ``x`` rose above its lowest value so far, at most (0.0: empty)."""
    return float(np.max(x - np.minimum.accumulate(x))) if x.size else 0.0
