"""The programme as data: a prescription, progression rules, and the default plan.

A *prescription* is what a session should be (position, reps, pacer, how many
sessions a week). A *rule* is a record: when the last sessions of its own
count meet its criteria, its action changes the prescription, and its ``why``
says so in words. Each rule counts on its own: taking a step restarts the
count of the rule that took it, or every count when the rule says so
(``restarts="all"``: a new position, a step back, a pause for pain), so one
more rep does not throw away the sessions that show the drop is reliable.
Rules are tried in order after every session; the first one that applies
(and can still change something) is taken. Nothing here reads the store:
:mod:`biofeedback.programme.follow` walks the sessions.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

__all__ = [
    "DEFAULT_PLAN",
    "POSITIONS",
    "Action",
    "Criterion",
    "Plan",
    "Prescription",
    "Rule",
]

#: The positions, easiest first (the floor works against less gravity lying down).
POSITIONS: Final = ("lying", "sitting", "standing")

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt,
}


class Action(enum.StrEnum):
    """What a rule does to the prescription."""

    NEXT_POSITION = "next_position"
    MORE_REPS = "more_reps"
    LONGER_EXHALE = "longer_exhale"
    FEWER_REPS = "fewer_reps"
    HOLD = "hold"  # no progression; the count starts again


#: Whose counts start again when a rule takes a step.
RESTARTS: Final = ("own", "all")


@dataclass(frozen=True)
class Prescription:
    """What today's session should be.

    Parameters
    ----------
    position : str
        One of :data:`POSITIONS`.
    reps : int
        Breath cycles of the set (5-10).
    inhale_s, exhale_s : float
        The pacer.
    per_week : int
        Sessions a week the plan asks for (7: daily).
    """

    position: str = "lying"
    reps: int = 5
    inhale_s: float = 4.0
    exhale_s: float = 6.0
    per_week: int = 7

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}, "
                             f"not {self.position!r}")
        if not 1 <= self.reps <= 30:
            raise ValueError(f"reps must be 1-30, not {self.reps}")
        if not (2.0 <= self.inhale_s <= 15.0 and 2.0 <= self.exhale_s <= 20.0):
            raise ValueError("inhale must be 2-15 s and exhale 2-20 s")
        if not 1 <= self.per_week <= 14:
            raise ValueError(f"sessions per week must be 1-14, not {self.per_week}")

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "reps": self.reps, "inhale_s": self.inhale_s,
                "exhale_s": self.exhale_s, "per_week": self.per_week}

    def changed(self, values: Mapping[str, Any]) -> Prescription:
        """A copy with ``values`` (keys of :meth:`to_json`) set."""
        known = set(self.to_json())
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown plan settings: {', '.join(sorted(unknown))}")
        return replace(self, **dict(values))


@dataclass(frozen=True)
class Criterion:
    """One test on a session's figures, e.g. ``good_reps >= 8``.

    ``metric`` names a :class:`~biofeedback.programme.follow.SessionFacts`
    field; a session without that figure does not meet the criterion.
    """

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {', '.join(_OPS)}, not {self.op!r}")

    def met(self, facts: Mapping[str, float | None]) -> bool:
        x = facts.get(self.metric)
        return x is not None and _OPS[self.op](float(x), self.value)


@dataclass(frozen=True)
class Rule:
    """A progression rule: ``of`` of the last ``sessions`` sessions meet every criterion.

    Parameters
    ----------
    id : str
        Short name (``sit``, ``more-reps``...).
    action : Action
        What it does.
    sessions : int
        How many of the latest sessions of its own count it looks at.
    need : tuple of Criterion
        What each counted session must meet (all of them).
    why : str
        The reason in words, shown with every step it takes.
    of : int or None
        How many of those must meet it (None: all -- "in a row").
    restarts : {"own", "all"}
        Whose counts start again when it takes a step: its own only (the other
        rules keep their sessions), or every rule's.
    """

    id: str
    action: Action
    sessions: int
    need: tuple[Criterion, ...]
    why: str
    of: int | None = None
    restarts: str = "own"

    def __post_init__(self) -> None:
        if self.restarts not in RESTARTS:
            raise ValueError(f"restarts must be one of {', '.join(RESTARTS)}, "
                             f"not {self.restarts!r}")

    @property
    def required(self) -> int:
        return self.sessions if self.of is None else self.of

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": str(self.action), "sessions": self.sessions,
                "of": self.required,
                "need": [f"{c.metric} {c.op} {c.value:g}" for c in self.need], "why": self.why,
                "restarts": self.restarts}


@dataclass(frozen=True)
class Plan:
    """A programme: where it starts, its rules, and its limits.

    Parameters
    ----------
    name : str
        The plan's name.
    start : Prescription
        The first prescription.
    rules : tuple of Rule
        Tried in order after every session.
    min_reps, max_reps : int
        Bounds of :attr:`Prescription.reps` that rules keep to.
    max_exhale_s, exhale_step_s : float
        How far and by how much the exhale is lengthened.
    """

    name: str
    start: Prescription
    rules: tuple[Rule, ...]
    min_reps: int = 5
    max_reps: int = 10
    max_exhale_s: float = 8.0
    exhale_step_s: float = 1.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def apply(self, action: Action, p: Prescription) -> Prescription | None:
        """The prescription after ``action``; None when it cannot change anything."""
        if action is Action.NEXT_POSITION:
            i = POSITIONS.index(p.position)
            return replace(p, position=POSITIONS[i + 1]) if i + 1 < len(POSITIONS) else None
        if action is Action.MORE_REPS:
            return replace(p, reps=p.reps + 1) if p.reps < self.max_reps else None
        if action is Action.FEWER_REPS:
            return replace(p, reps=p.reps - 1) if p.reps > self.min_reps else None
        if action is Action.LONGER_EXHALE:
            if p.exhale_s + self.exhale_step_s > self.max_exhale_s + 1e-9:
                return None
            return replace(p, exhale_s=p.exhale_s + self.exhale_step_s)
        return p  # HOLD: the same prescription, a fresh count

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start.to_json(),
                "rules": [r.to_json() for r in self.rules],
                "limits": {"reps": [self.min_reps, self.max_reps],
                           "max_exhale_s": self.max_exhale_s,
                           "exhale_step_s": self.exhale_step_s},
                "notes": list(self.notes)}


def _c(metric: str, op: str, value: float) -> Criterion:
    return Criterion(metric, op, value)


#: The default down-training plan: short daily sessions, lying first; more reps
#: and a longer exhale as they come, and the next position once the drop is
#: reliable and strain-free -- each counted on its own, so adding a rep does not
#: restart the count towards sitting; a step back on strain; no progression
#: after pain. A new position, a step back or a pause restart every count.
DEFAULT_PLAN: Final = Plan(
    name="down-training",
    start=Prescription(position="lying", reps=5, inhale_s=4.0, exhale_s=6.0, per_week=7),
    rules=(
        Rule("pain", Action.HOLD, 1, (_c("pain_after", ">=", 5),),
             "pain 5/10 or more after the last session: no progression; stop if it hurts "
             "and see a pelvic health physiotherapist if it persists", restarts="all"),
        Rule("ease", Action.FEWER_REPS, 3, (_c("strain", ">=", 2),),
             "strain (bearing down) 2 or more times in 2 of the last 3 sessions: one rep "
             "fewer, softer drops", of=2, restarts="all"),
        Rule("next-position", Action.NEXT_POSITION, 5,
             (_c("good_fraction", ">=", 0.8), _c("strain", "==", 0)),
             "5 sessions in a row with ≥ 80 % good reps and no strain: the drop is reliable",
             restarts="all"),
        Rule("more-reps", Action.MORE_REPS, 3,
             (_c("good_fraction", ">=", 0.8), _c("strain", "==", 0)),
             "3 sessions in a row with ≥ 80 % good reps and no strain"),
        Rule("longer-exhale", Action.LONGER_EXHALE, 3,
             (_c("score", ">=", 80), _c("release_kept", ">=", 0.7), _c("strain", "==", 0)),
             "3 sessions in a row scoring ≥ 80 with ≥ 70 % of the release kept through the "
             "exhale"),
    ),
    notes=(
        "Daily sessions of 5-10 reps; consistency beats duration.",
        "Positions progress lying → sitting → standing when the drop is reliable and "
        "strain-free.",
        "Stop on pain or discomfort; never push.",
    ),
)
