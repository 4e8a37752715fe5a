"""Episodes: an action under way and the re-anchoring window after it.

An action that ends by coming most of the way back to rest opens a short
window in which a steady level re-anchors the rest (tone drifts during a set;
without this a shifted tone would read as a never-ending contraction or drop).
:class:`~biofeedback.signal.pelvic.rest.Episode` holds the state;
:class:`~biofeedback.signal.pelvic.rest.RestModel` uses the window.
"""

from __future__ import annotations

import numpy as np

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.pelvic.rest import Episode
from biofeedback.signal.pelvic.zones import Margins

__all__ = ["follow_episode", "forget_move"]


def follow_episode(
    ep: Episode,
    rel: FloatArray,
    span: tuple[float, float],
    seen: tuple[bool, bool, bool],
    m: Margins,
) -> None:
    """Follow the episode over a stretch of level relative to rest (``span``:
    its lowest and highest value; ``seen``: a drop in it, a rise in it, and
    resting at its end)."""
    any_drop, any_rise, resting = seen
    if ep.sign == 0:
        if any_drop:
            ep.sign = -1
        elif any_rise:  # contraction or strain
            ep.sign = 1
    if ep.sign != 0:
        # the way back: within 30 % of the excursion (drift may have moved rest)
        lo, hi = span if ep.sign > 0 else (-span[1], -span[0])  # (of the distance away)
        exc = ep.excursion
        top = hi if (hi >= exc or hi != hi) else exc  # np.maximum's pick
        if lo >= 0.3 * top:
            # every sample still at least 30 % of the way out (the running
            # excursion never exceeds `top`): no way back in this stretch
            ep.excursion = top
        else:
            away = rel if ep.sign > 0 else -rel
            reach = np.maximum.accumulate(away)
            np.maximum(reach, exc, out=reach)
            ep.excursion = float(reach[-1])
            # (only once the excursion went past its margin: not the samples before it)
            back = (away < 0.3 * reach) & (reach > (m[0] if ep.sign < 0 else m[1]))
            if np.any(back):
                ep.open_window()
    if resting and ep.post == 0:
        ep.excursion = 0.0


def forget_move(ep: Episode, step: float) -> None:
    """The body moved the baseline by ``step``: an excursion the step's way
    was the move, not an action (coming back from it must not re-anchor the
    rest), and a re-anchoring window open is of levels before it."""
    if ep.sign * step > 0:
        ep.sign = 0
        ep.excursion = 0.0
    if ep.post > 0:
        ep.post = 0
        ep.clear_window()
