"""Which way inhale moves the breath signal: evidence from whole cycles, and the vote.

A belt stretches on inhale, but an impedance or pressure trace may be wired
either way; the detector decides from the cycles it confirms
(:func:`polarity_evidence`) by a running vote (:class:`PolarityVote`).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from biofeedback.signal.filters import FloatArray

__all__ = ["PRIOR_FLIP", "PolarityVote", "polarity_evidence"]


def polarity_evidence(y: FloatArray) -> float | None:
    """Evidence (-1..1) that inhale raises the signal, from one whole cycle ``y``.

    The end-expiratory pause sits at the bottom: ``log(time near bottom /
    time near top)``. (Inhale being shorter than exhale is no evidence: on
    real people -- 35 of 52 ICU impedance records, BIDMC -- the fall is
    often the shorter, and it outvoted the pause.) None when the cycle is too
    short or flat to say.
    """
    # (argmax/argmin and a read: a fraction of max/min's fixed cost; a NaN wins both alike)
    hi, lo = y.item(int(y.argmax())), y.item(int(y.argmin()))
    amp = hi - lo
    if y.shape[0] < 4 or not amp > 0:
        return None
    bottom = np.count_nonzero(y < lo + 0.2 * amp) / y.shape[0]
    top = np.count_nonzero(y > hi - 0.2 * amp) / y.shape[0]
    e = math.log((bottom + 0.05) / (top + 0.05))
    return max(-1.0, min(1.0, e))


#: How clearly contrary the running evidence must be to overturn the polarity
#: a source's physics sets (a belt stretches on inhale): a trace held at the
#: top (an inspiratory hold, a clipped rail) reads like a pause there.
PRIOR_FLIP = 0.6


@dataclass(slots=True)
class PolarityVote:
    """The polarity decided from the evidence of recent cycles.

    Undecided (``prior`` 0), the median of the last few cycles decides. Once
    decided, or from a source whose physics sets it (a belt stretches on
    inhale), it flips only when the running mean of the evidence over about
    ``memory`` cycles is clearly contrary: one cycle's shape can mislead (a
    rail-clipped top reads like a pause at the bottom), a run of them cannot.
    """

    polarity: int = 0
    prior: int = 0
    memory: int = 16
    history: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    lean: float = 0.0  # running mean of the evidence
    n: int = 0

    def add(self, evidence: float) -> int:
        self.history.append(evidence)
        self.n += 1
        self.lean += (evidence - self.lean) / min(self.n, self.memory)
        if self.polarity == 0:
            med = float(statistics.median(self.history))
            k = len(self.history)
            if (k >= 2 and abs(med) > 0.4) or (k >= 3 and abs(med) > 0.15):
                self.polarity = 1 if med > 0 else -1
        else:
            need_n, need_e = (5, 0.3) if self.prior == 0 else (8, PRIOR_FLIP)
            if self.n >= need_n and self.lean * self.polarity < -need_e:
                self.polarity = -self.polarity
        return self.polarity
