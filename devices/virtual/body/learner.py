"""A person who is still learning the reverse Kegel: skill, mistakes, progress.

A skill level (0 = a first session, 1 = done right every time) sets how often
a beginner's mistakes happen while the floor is asked to drop on each inhale:

* a **shallow drop** -- the floor releases only part of the way;
* a **push** (bearing down, strain) instead of a drop on some inhales;
* a **squeeze** (a contraction) on some exhales, instead of keeping the release;
* a **breath hold** at the top of some inhales before the exhale.

The draws come from the learner's own random stream, so a skill of 1 leaves
every other stream -- and the output of the model -- exactly as without a
learner. :func:`skill_over_sessions` is how skill grows over weeks of
practice, with bad days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from devices.virtual.body.common import DT, FloatArray, Lag
from devices.virtual.body.params import BodyParams

__all__ = ["GuardingTone", "Learner", "RepMistakes", "learner_params", "skill_over_sessions"]

#: A beginner's (skill 0) rates; they fall towards 0 as skill reaches 1.
PUSH_RATE = 0.25
SQUEEZE_RATE = 0.45
HOLD_RATE = 0.35
#: A beginner's drop is this fraction of the person's maximal drop.
SHALLOW_DROP = 0.3
#: A squeeze on the exhale, as a fraction of the maximal contraction.
SQUEEZE_LEVEL = (0.15, 0.35)
#: A beginner's floor is held tighter: resting tone above a skilled one's, and unsteady
#: (an extra wobble over seconds, the resting variability down-training lowers too).
GUARDING_CMH2O = 6.0
GUARDING_SD_CMH2O = 0.2
#: How fast a guarded floor's tone wobbles (s).
GUARDING_TAU_S = 2.0


@dataclass(frozen=True)
class RepMistakes:
    """What goes wrong on one drop-on-inhale breath.

    Parameters
    ----------
    depth : float
        Multiplies the drop's depth (1 = the person's full drop).
    push : bool
        Bears down on the inhale instead of dropping.
    squeeze : float
        Contraction on the following exhale, fraction of the maximum (0: none).
    """

    depth: float = 1.0
    push: bool = False
    squeeze: float = 0.0


class Learner:
    """A skill level and the random stream its mistakes are drawn from.

    Parameters
    ----------
    skill : float
        0..1.
    rng : numpy.random.Generator
        The learner's own stream.
    """

    def __init__(self, skill: float, rng: np.random.Generator) -> None:
        if not 0.0 <= skill <= 1.0:
            raise ValueError(f"skill must be in [0, 1]; {skill!r} is invalid")
        self.skill = float(skill)
        self._rng = rng

    @property
    def novice(self) -> float:
        """1 - skill: how much of a beginner."""
        return 1.0 - self.skill

    def rep(self) -> RepMistakes:
        """The mistakes of one inhale's rep (drawn for every inhale, in order)."""
        b = self.novice
        u = self._rng.random(3)
        z = float(self._rng.standard_normal())
        depth = (SHALLOW_DROP + (1.0 - SHALLOW_DROP) * self.skill) * (1.0 + 0.2 * b * z)
        lo, hi = SQUEEZE_LEVEL
        squeeze = lo + (hi - lo) * float(u[2]) if u[1] < SQUEEZE_RATE * b**1.2 else 0.0
        return RepMistakes(
            depth=min(max(depth, 0.1), 1.2),
            push=bool(u[0] < PUSH_RATE * b**1.5),
            squeeze=squeeze,
        )

    def hold_s(self) -> float:
        """Seconds the breath is held before following an exhale cue (0: none)."""
        u = self._rng.random(2)
        if u[0] < HOLD_RATE * self.novice:
            return 1.5 + 2.0 * float(u[1])
        return 0.0


class GuardingTone:
    """A guarded floor's unsteady resting tone: unit-variance noise low-passed over
    :data:`GUARDING_TAU_S`, times the person's ``guarding_sd_cmH2O``, block by block
    from its own random stream.

    Parameters
    ----------
    sd_cmH2O : float
        Its standard deviation.
    rng : numpy.random.Generator
        Its own stream (the other streams of the body are untouched).
    block_n : int
        Grid samples per block.
    """

    def __init__(self, sd_cmH2O: float, rng: np.random.Generator, block_n: int) -> None:
        a = math.exp(-DT / GUARDING_TAU_S)
        self._sd = float(sd_cmH2O)
        self._rng = rng
        self._n = block_n
        self._lag = Lag(GUARDING_TAU_S, block_n, gain=math.sqrt(1.0 - a * a))
        self._lag.state[:] = rng.standard_normal()  # already wobbling at the start

    def block(self) -> FloatArray:
        """The wobble over the next block, cmH2O."""
        out: FloatArray = self._sd * self._lag(self._rng.standard_normal(self._n))
        return out


def skill_over_sessions(
    n: int,
    seed: int = 0,
    *,
    start: float = 0.1,
    ceiling: float = 0.95,
    sessions_to_learn: float = 8.0,
    bad_day_rate: float = 0.15,
) -> list[float]:
    """Skill at each of ``n`` practice sessions: a learning curve with bad days.

    Skill rises from ``start`` towards ``ceiling`` (``1 - exp(-k / sessions_to_learn)``
    of the way after ``k`` sessions), with a little day-to-day wobble; on a bad
    day (probability ``bad_day_rate``) it falls by 0.15-0.35.

    Returns
    -------
    list of float
        One skill per session, each in [0, 1].
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; {n} is invalid")
    if not sessions_to_learn > 0:
        raise ValueError(f"sessions_to_learn must be positive; {sessions_to_learn!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5C111]))
    out = []
    for k in range(n):
        level = start + (ceiling - start) * (1.0 - math.exp(-k / sessions_to_learn))
        u, z, drop = rng.random(), rng.standard_normal(), rng.random()
        level += 0.04 * float(z)
        if u < bad_day_rate:
            level -= 0.15 + 0.2 * float(drop)
        out.append(min(max(level, 0.0), 1.0))
    return out


def learner_params(skill: float, posture: str = "supine", **kwargs: float) -> BodyParams:
    """A learner's figures: a beginner's floor is guarded (hypertonic) and lets go as
    skill grows -- resting tone ``6 * (1 - skill)`` cmH2O higher and unsteady
    (``0.2 * (1 - skill)`` cmH2O of wobble over seconds): what down-training lowers
    (Glazer 1995: resting tension -68 % over 16 weeks; Cornel 2005: 4.9 -> 1.7 uV).
    The skill of the day carries the bad days (:func:`skill_over_sessions`); the
    slow drift of the tone is the same person's every day, so over the weeks the
    resting tone falls more than it wanders."""
    base = BodyParams()
    b = 1.0 - skill
    return BodyParams(
        skill=skill, posture=posture,
        rest_cmH2O=base.rest_cmH2O + GUARDING_CMH2O * b,
        guarding_sd_cmH2O=GUARDING_SD_CMH2O * b,
        **kwargs,
    )
