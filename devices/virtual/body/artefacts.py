"""The artefacts of a real session, scheduled from a seed and labelled.

None of them is something the pelvic floor does, so none changes the pelvic
ground truth -- but for the movement of a posture change itself: the trunk
moving, the floor braces with it (its postural activity rises before and
during trunk and limb movements: Hodges, Sapsford & Pengel 2007, Neurourol
Urodyn 26:362; it differs by posture: Sapsford et al. 2001), so for those 1-2 s
the floor is in no voluntary state and the truth is unknown
(:meth:`SessionArtefacts.moving`). :meth:`SessionArtefacts.labels` says where
each one is.

* ``COUGH`` -- a sharp rise of intra-abdominal pressure (0.3-0.5 s, 25-60
  cmH2O; the tip sees it most, as it sees a strain).
* ``TALK`` -- a stretch of speech: small fast pressure fluctuations at
  syllable rate (3-6 Hz, 1-2 cmH2O) on the probe and the belt.
* ``POSTURE`` -- the person shifts: a movement bump, then the baseline of both
  probe channels and of the belt steps (3-8 cmH2O either way) and stays.
* ``SLIP`` -- the probe slips: a sudden offset (within 0.1 s) of both
  channels, 5-15 cmH2O, usually down, that stays.
* ``DRIFT`` -- slow sensor drift over the whole session (up to 2 cmH2O/min).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.virtual.body.common import FloatArray

__all__ = ["Artefact", "ArtefactKind", "SessionArtefacts"]


class ArtefactKind(enum.IntEnum):
    """Artefact label codes (0: none)."""

    NONE = 0
    COUGH = 1
    TALK = 2
    POSTURE = 3
    SLIP = 4
    DRIFT = 5


@dataclass(frozen=True)
class Artefact:
    """One scheduled artefact.

    Parameters
    ----------
    kind : ArtefactKind
        What it is.
    start, dur : float
        When (s) and for how long; a step (posture, slip) takes ``dur`` to
        happen and then stays.
    size : float
        Peak (cough), amplitude (talk), step (posture, slip), cmH2O, or the
        drift rate in cmH2O/min.
    rate_hz : float
        Syllable rate of talking.
    """

    kind: ArtefactKind
    start: float
    dur: float
    size: float
    rate_hz: float = 0.0


def _smoothstep(x: FloatArray) -> FloatArray:
    r = np.clip(x, 0.0, 1.0)
    out: FloatArray = r * r * (3.0 - 2.0 * r)
    return out


class SessionArtefacts:
    """A fixed list of artefacts: probe and belt offsets, and their labels.

    Parameters
    ----------
    events : sequence of Artefact
        The artefacts (any order).
    """

    def __init__(self, events: list[Artefact] | tuple[Artefact, ...]) -> None:
        self.events = tuple(sorted(events, key=lambda e: e.start))

    @classmethod
    def random(
        cls, seed: int, kinds: tuple[ArtefactKind, ...], t_from: float, t_to: float
    ) -> SessionArtefacts:
        """A few of each kind, at random times in ``[t_from, t_to)``, from ``seed``."""
        rng = np.random.default_rng(seed)
        events: list[Artefact] = []
        span = t_to - t_from
        for kind in kinds:
            if kind is ArtefactKind.DRIFT:
                rate = float(rng.uniform(0.5, 2.0)) * (1 if rng.random() < 0.5 else -1)
                events.append(Artefact(kind, t_from, span, rate))
                continue
            n = {ArtefactKind.COUGH: 4, ArtefactKind.TALK: 2}.get(kind, 2)
            starts = t_from + np.sort(rng.uniform(0.0, span, n))
            for s in starts:
                events.append(cls._draw(kind, float(s), rng))
        return cls(events)

    @staticmethod
    def _draw(kind: ArtefactKind, start: float, rng: np.random.Generator) -> Artefact:
        if kind is ArtefactKind.COUGH:
            return Artefact(kind, start, float(rng.uniform(0.3, 0.5)), float(rng.uniform(25, 60)))
        if kind is ArtefactKind.TALK:
            dur, amp = float(rng.uniform(4.0, 10.0)), float(rng.uniform(1.0, 2.0))
            return Artefact(kind, start, dur, amp, float(rng.uniform(3.0, 6.0)))
        if kind is ArtefactKind.POSTURE:
            step = float(rng.uniform(3.0, 8.0)) * (1 if rng.random() < 0.5 else -1)
            return Artefact(kind, start, float(rng.uniform(1.0, 2.0)), step)
        step = float(rng.uniform(5.0, 15.0)) * (1 if rng.random() < 0.2 else -1)
        return Artefact(ArtefactKind.SLIP, start, float(rng.uniform(0.03, 0.1)), step)

    def probe(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Offsets of the base and tip channels (cmH2O) and of the belt (N) at ``t``."""
        base = np.zeros(t.shape)
        tip = np.zeros(t.shape)
        belt = np.zeros(t.shape)
        for e in self.events:
            x = (t - e.start) / e.dur
            if e.kind is ArtefactKind.COUGH:
                inside = (x >= 0) & (x < 1)
                # a fast rise (a fifth of the cough), a slower fall
                shape = np.where(x < 0.2, np.sin(np.pi * x / 0.4), np.cos(np.pi * (x - 0.2) / 1.6))
                spike = np.where(inside, e.size * shape**2, 0.0)
                base += 0.65 * spike
                tip += spike
                belt += 0.03 * spike
            elif e.kind is ArtefactKind.TALK:
                inside = (x >= 0) & (x < 1)
                w = np.where(inside, np.sin(np.pi * np.clip(x, 0, 1)) ** 0.5, 0.0)
                phase = 2 * np.pi * e.rate_hz * (t - e.start)
                syl = e.size * w * np.abs(np.sin(phase)) * (0.6 + 0.4 * np.sin(0.37 * phase))
                base += 0.65 * syl
                tip += syl
                belt += 0.1 * syl
            elif e.kind is ArtefactKind.DRIFT:
                drift = e.size / 60.0 * np.clip(t - e.start, 0.0, e.dur)
                base += drift
                tip += drift
            else:
                step = e.size * _smoothstep(x)
                if e.kind is ArtefactKind.POSTURE:
                    # moving pushes on the probe and the belly before it settles
                    bump = np.where((x >= 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0)
                    step = step + 4.0 * bump
                    belt += 0.3 * step
                base += step
                tip += step
        return base, tip, belt

    def moving(self, t: FloatArray) -> npt.NDArray[np.bool_]:
        """Where the body moves through a posture change (the pelvic truth is
        unknown there: see the module notes)."""
        out = np.zeros(t.shape, dtype=bool)
        for e in self.events:
            if e.kind is ArtefactKind.POSTURE:
                out |= (t >= e.start) & (t < e.start + e.dur)
        return out

    def labels(self, t: FloatArray) -> npt.NDArray[np.int8]:
        """:class:`ArtefactKind` code at each time (a step is labelled while it
        happens; drift is not labelled)."""
        out = np.zeros(t.shape, dtype=np.int8)
        for e in self.events:
            if e.kind is ArtefactKind.DRIFT:
                continue
            out[(t >= e.start) & (t < e.start + e.dur)] = e.kind
        return out
