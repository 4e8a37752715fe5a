"""Causal breath detection from a belt, chest acceleration, RR intervals or a pressure ripple.

Named stages, in the spirit of NeuroKit2's ``rsp_clean`` / ``rsp_peaks`` /
``rsp_rate`` but causal (nothing looks ahead; NeuroKit2's cleaning is
zero-phase and offline):

* clean -- :mod:`~biofeedback.signal.breath.frontends`: one front end per
  source kind, a causal band-limit with kept state;
* candidates and validation -- :mod:`~biofeedback.signal.breath.stages`: the
  signal about its midline, a hysteresis scaled to the recent breaths, and
  extrema confirmed by a crossing of the midline;
* phase, rate and depth -- :mod:`~biofeedback.signal.breath.figures`;
* :mod:`~biofeedback.signal.breath.detector` runs them over a stream and
  :mod:`~biofeedback.signal.breath.tracker` gives the two entry points:
  :class:`BreathTracker` (live, chunk by chunk) and :func:`detect_breaths`
  (a whole recording); both give the same output.
"""

from biofeedback.signal.breath.detector import BreathDetector
from biofeedback.signal.breath.frontends import (
    AccFrontEnd,
    BeltFrontEnd,
    FrontEnd,
    RippleFrontEnd,
)
from biofeedback.signal.breath.rr import RrFrontEnd
from biofeedback.signal.breath.sources import front_end_for
from biofeedback.signal.breath.tracker import SOURCE_TRUST, BreathTracker, detect_breaths
from biofeedback.signal.filters import noise_sd

__all__ = [
    "SOURCE_TRUST",
    "AccFrontEnd",
    "BeltFrontEnd",
    "BreathDetector",
    "BreathTracker",
    "FrontEnd",
    "RippleFrontEnd",
    "RrFrontEnd",
    "detect_breaths",
    "front_end_for",
    "noise_sd",
]
