"""The shared vocabulary of what a body does: breath phases and pelvic states.

The body model labels its ground truth with these codes and the pipeline
reports its estimates with the same codes, so they compare directly.
"""

from __future__ import annotations

import enum

__all__ = ["BreathPhase", "PelvicState"]


class BreathPhase(enum.IntEnum):
    """Phase of breathing at a sample."""

    UNKNOWN = 0
    INHALE = 1
    EXHALE = 2
    PAUSE = 3  # end-expiratory pause or a breath hold


class PelvicState(enum.IntEnum):
    """What the pelvic floor is doing at a sample.

    ``DROP`` is the goal of the exercise (below resting tone); ``STRAIN`` is
    bearing down (a pressure rise from intra-abdominal pressure) and must never
    be counted as a drop or rewarded.
    """

    UNKNOWN = 0
    DROP = 1
    REST = 2
    CONTRACTION = 3
    STRAIN = 4
