"""Following a plan over the stored sessions: today's prescription and the steps taken.

Pure: it takes the person's sessions (:class:`~biofeedback.store.SessionInfo`)
and the changes the person made, and replays the plan's rules over them in
time order, so the answer is always what the stored sessions say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from biofeedback.programme.plan import Plan, Prescription, Rule
from biofeedback.store import SessionInfo

__all__ = ["Change", "PlanState", "RuleProgress", "SessionFacts", "Step", "facts", "follow"]


@dataclass(frozen=True)
class SessionFacts:
    """The figures of one session the rules look at (None: not known)."""

    id: int
    start: dt.datetime
    position: str | None
    reps: int
    good_reps: int | None
    strain: int | None
    score: float | None
    release_kept: float | None
    pain_after: int | None

    def metrics(self) -> dict[str, float | None]:
        good = self.good_reps
        return {
            "reps": self.reps,
            "good_reps": good,
            "good_fraction": None if good is None or self.reps <= 0 else good / self.reps,
            "strain": self.strain,
            "score": self.score,
            "release_kept": self.release_kept,
            "pain_after": self.pain_after,
        }


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def facts(info: SessionInfo) -> SessionFacts:
    """What a stored session says, from its stored summary."""
    s = info.summary or {}
    return SessionFacts(
        id=info.id, start=info.start, position=info.position, reps=info.reps,
        good_reps=_int(s.get("good_reps")), strain=_int(s.get("strain_count")),
        score=info.score, release_kept=_float(s.get("release_kept")),
        pain_after=info.pain_after,
    )


def counts(info: SessionInfo) -> bool:
    """A practice session: finished, with reps (not a calibration)."""
    return info.status == "finished" and info.reps > 0 and info.protocol != "calibration"


@dataclass(frozen=True)
class Change:
    """A change the person made to the plan, from ``at`` on."""

    at: dt.datetime
    values: Mapping[str, Any]
    why: str = "changed by the person"

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(timespec="seconds"), "set": dict(self.values),
                "why": self.why}


@dataclass(frozen=True)
class Step:
    """A change of prescription: by a rule after a session, or by the person."""

    at: dt.datetime
    rule: str
    why: str
    before: Prescription
    after: Prescription
    session_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        changed = {k: v for k, v in self.after.to_json().items() if self.before.to_json()[k] != v}
        return {"at": self.at.isoformat(timespec="seconds"), "rule": self.rule, "why": self.why,
                "session_id": self.session_id, "changed": changed}


@dataclass(frozen=True)
class RuleProgress:
    """How far the latest sessions are towards a rule."""

    rule: Rule
    met: int  # sessions meeting it (in a row, for an in-a-row rule)
    possible: bool  # whether its action can still change the prescription

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule.id, "action": str(self.rule.action), "why": self.rule.why,
                "met": self.met, "needed": self.rule.required, "possible": self.possible}


@dataclass
class PlanState:
    """Where a person is in the plan."""

    plan: Plan
    current: Prescription
    steps: list[Step] = field(default_factory=list)
    window: list[SessionFacts] = field(default_factory=list)  # since the last step
    sessions: list[SessionFacts] = field(default_factory=list)  # every counted one
    #: Each rule's own count: the sessions in this position since its count restarted.
    runs: dict[str, list[SessionFacts]] = field(default_factory=dict)

    def run(self, rule: Rule) -> list[SessionFacts]:
        """The sessions ``rule`` counts now."""
        return self.runs.get(rule.id, [])

    def restart(self, rule: Rule | None = None) -> None:
        """Start ``rule``'s count again (None: every rule's)."""
        if rule is None or rule.restarts == "all":
            self.runs.clear()
        else:
            self.runs.pop(rule.id, None)

    def progress(self) -> list[RuleProgress]:
        """Each rule's progress on the sessions it counts."""
        return [
            RuleProgress(r, _progress(r, self.run(r)), self.plan.apply(r.action, self.current)
                         is not None)
            for r in self.plan.rules
        ]

    def next_step(self) -> RuleProgress | None:
        """The progression the person is closest to (forward rules the prescription allows)."""
        forward = [p for p in self.progress() if p.possible and p.rule.action in
                   ("next_position", "more_reps", "longer_exhale")
                   and _reachable(p.rule, self.current)]
        if not forward:
            return None
        return max(forward, key=lambda p: (p.met / p.rule.required, -self.plan.rules.index(
            p.rule)))

    def done_on(self, day: dt.date, tz: dt.tzinfo | None = None) -> int:
        """Counted sessions on a (local) day."""
        return sum(1 for s in self.sessions if s.start.astimezone(tz).date() == day)


def _reachable(rule: Rule, p: Prescription) -> bool:
    """False when the prescription itself rules it out (8 good reps of 6)."""
    return not any(c.metric in ("reps", "good_reps") and c.op in (">=", ">", "==")
                   and c.value > p.reps for c in rule.need)


def _meets(rule: Rule, f: SessionFacts) -> bool:
    m = f.metrics()
    return all(c.met(m) for c in rule.need)


def _progress(rule: Rule, window: Sequence[SessionFacts]) -> int:
    last = list(window[-rule.sessions:])
    if rule.of is not None:
        return sum(1 for f in last if _meets(rule, f))
    streak = 0
    for f in reversed(last):
        if not _meets(rule, f):
            break
        streak += 1
    return streak


def _fires(rule: Rule, window: Sequence[SessionFacts]) -> bool:
    # "k of the last n" may fire before n sessions; "n in a row" needs n.
    enough = rule.of is not None or len(window) >= rule.sessions
    return enough and _progress(rule, window) >= rule.required


def follow(plan: Plan, sessions: Sequence[SessionInfo], changes: Sequence[Change] = ()
           ) -> PlanState:
    """Replay ``plan`` over a person's sessions and changes, in time order.

    A session counts when it is finished and has reps; a rule looks only at
    the counted sessions of its own count (since it last took a step, or since
    a step that restarts every count: see :attr:`Rule.restarts`, and the
    person's changes) that were done in the current position (or did not say).
    At most one rule is taken per session.
    """
    state = PlanState(plan, plan.start)
    items: list[tuple[dt.datetime, int, Any]] = [
        (s.start, 1, s) for s in sessions if counts(s)
    ] + [(c.at, 0, c) for c in changes]
    for at, _, item in sorted(items, key=lambda x: (x[0], x[1])):
        if isinstance(item, Change):
            changed = state.current.changed(item.values)
            state.steps.append(Step(at, "changed", item.why, state.current, changed))
            state.current, state.window = changed, []
            state.restart()
            continue
        f = facts(item)
        state.sessions.append(f)
        if f.position not in (None, state.current.position):
            continue  # done in another position: not evidence for this one
        state.window.append(f)
        for rule in plan.rules:
            state.runs.setdefault(rule.id, []).append(f)
        for rule in plan.rules:
            if not _fires(rule, state.run(rule)):
                continue
            after = plan.apply(rule.action, state.current)
            if after is None:
                continue
            state.steps.append(Step(at, rule.id, rule.why, state.current, after, f.id))
            state.current, state.window = after, []
            state.restart(rule)
            break
    return state
