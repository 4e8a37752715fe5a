"""The breath pacer, as the app's protocols name it, and how a session adapts it.

The classes themselves live in :mod:`devices.pacer`, shared with the virtual
body that follows them; this module keeps the app's import path, writes the
pacer's timing as recorded, and holds :class:`PacerFollow`, the part of a
session that feeds the person's breaths to an adaptive pacer and says when the
target shown changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from devices.pacer import AdaptivePacer, Pacer, PacerLike, same_pattern

if TYPE_CHECKING:
    from biofeedback.protocols.timeline import Segment
    from biofeedback.signal.types import Breath

__all__ = ["AdaptivePacer", "Pacer", "PacerFollow", "PacerLike", "adaptive_text", "pacer_json",
           "target_json", "target_text"]


def pacer_json(pacer: Pacer) -> dict[str, float]:
    """The pacer's timing as recorded (plan, summary, session metadata)."""
    return {"inhale_s": pacer.inhale_s, "hold_s": pacer.hold_s, "exhale_s": pacer.exhale_s}


def target_json(pacer: Pacer) -> dict[str, float]:
    """The pacer's timing and rate, rounded, as a summary lists a target."""
    return {"rate_bpm": round(pacer.rate_bpm, 2), "inhale_s": round(pacer.inhale_s, 2),
            "hold_s": round(pacer.hold_s, 2), "exhale_s": round(pacer.exhale_s, 2)}


def target_text(pacer: Pacer) -> str:
    """The target in words: ``6.0/min, in 4.0 s : out 6.0 s`` (a hold when there is one)."""
    hold = f" hold {pacer.hold_s:.1f} s :" if pacer.hold_s > 0 else ""
    return f"{pacer.rate_bpm:.1f}/min, in {pacer.inhale_s:.1f} s :{hold} out {pacer.exhale_s:.1f} s"


def adaptive_text(a: dict[str, Any]) -> str:
    """A summary's ``adaptive_pacer`` in words: start, end, goal, how often it eased back."""

    def t(d: dict[str, Any]) -> str:
        return f"{d['rate_bpm']:g}/min (in {d['inhale_s']:g} s, out {d['exhale_s']:g} s)"

    eased = f", eased back {a['eased_back']}x" if a.get("eased_back") else ""
    return (f"adaptive, {t(a['start'])} -> {t(a['end'])}, goal {a['goal']['rate_bpm']:g}/min"
            f"{eased}; {a['breaths_in_trouble']} of {a['breaths_judged']} breaths hard to follow")


class PacerFollow:
    """Feeds the breaths of rep steps to their adaptive pacer; keeps the targets shown.

    A breath is whole when the next one's inhale onset is seen: then the
    pacer judges it (lagging? exhale cut short?) and plans the cycles not yet
    planned from what it saw (:meth:`devices.pacer.AdaptivePacer.observe`).
    Breaths of the free breathing before a set and after its last rep cycle
    are not judged.

    Parameters
    ----------
    goal : Pacer
        Where the pacer leads (the session's pacer).
    """

    def __init__(self, goal: Pacer) -> None:
        self.goal = goal
        #: ``(t, cycle)`` each time the target shown changed (the first of each set too).
        self.changes: list[tuple[float, Pacer]] = []
        self.shown: Pacer | None = None
        self._pacers: list[AdaptivePacer] = []
        self._prev: Breath | None = None

    def start(self, seg: Segment) -> Pacer | None:
        """A rep step begins; with an adaptive pacer, its first cycle to show (else None)."""
        if not isinstance(seg.pacer, AdaptivePacer):
            return None
        self._pacers.append(seg.pacer)
        self._prev = None
        self.shown = None
        return self.to_show(seg, seg.t_start)

    def to_show(self, seg: Segment, t: float) -> Pacer | None:
        """The cycle running at ``t`` when its pattern differs from the one shown, else None."""
        if not isinstance(seg.pacer, AdaptivePacer):
            return None
        cycle = seg.pacer.cycle_at(t)
        if same_pattern(cycle, self.shown):
            return None
        self.shown = cycle
        self.changes.append((t, cycle))
        return cycle

    def on_breaths(self, seg: Segment, breaths: Sequence[Breath]) -> None:
        """The breaths the detector confirmed (a real breath sensor's, during ``seg``)."""
        pacer = seg.pacer
        if not isinstance(pacer, AdaptivePacer):
            return
        for b in breaths:
            prev, self._prev = self._prev, b
            if prev is None or b.inhale_onset <= prev.exhale_onset:
                continue
            # As the rep policy has it: a breath whose exhale began before the first
            # paced inhale was well under way is the free breathing before the set.
            first = pacer.first
            answered = prev.exhale_onset > seg.t_start + 0.25 * first.inhale_s
            if answered and seg.t_start - 0.5 * first.period <= prev.inhale_onset < seg.reps_end:
                pacer.observe(prev.inhale_onset, prev.exhale_onset, b.inhale_onset)

    def to_json(self, t0: float) -> dict[str, Any] | None:
        """How the target changed over the session (None: no adaptive set ran)."""
        if not self.changes:
            return None
        seen = self._pacers[-1].seen if self._pacers else []
        exhales = [c.exhale_s for _, c in self.changes]
        return {
            "goal": target_json(self.goal),
            "start": target_json(self.changes[0][1]),
            "end": target_json(self.changes[-1][1]),
            "breaths_judged": len(seen),
            "breaths_in_trouble": sum(1 for s in seen if s.trouble),
            "eased_back": sum(1 for a, b in itertools.pairwise(exhales) if b < a),
            "changes": [{"t_s": round(t - t0, 2), **target_json(c)} for t, c in self.changes],
        }
