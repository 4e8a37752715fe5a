"""A person's plan and progress, as ``plan``, ``progress`` and the window show them.

One place computes what the commands print and the window's Plan and Progress
screens draw: :func:`plan_state` / :func:`plan_to_json` (the ``plan --json``
document), :func:`change_plan` (what ``plan --reps 7`` and the Plan screen's
"Change" do) and :func:`progress_for` (the ``progress --json`` document is its
``to_json()``). The screens take these documents, so a figure on screen is the
figure ``--json`` gives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from biofeedback.programme.changes import add_change, load_changes
from biofeedback.programme.follow import PlanState, follow
from biofeedback.programme.plan import DEFAULT_PLAN
from biofeedback.programme.progress import Progress, parse_since, progress
from biofeedback.store import Store
from devices.errors import InputError

__all__ = ["ACTION_WORDS", "LIMITS", "change_plan", "plan_state", "plan_to_json",
           "progress_for"]

#: A rule's action in words.
ACTION_WORDS: Final = {
    "next_position": "next position",
    "more_reps": "one more rep",
    "longer_exhale": "a longer exhale",
    "fewer_reps": "one rep fewer",
    "hold": "no progression",
}

#: The settings a person may change, with their bounds (as the prescription checks them).
LIMITS: Final[dict[str, tuple[float, float]]] = {
    "reps": (1, 30), "inhale_s": (2.0, 15.0), "exhale_s": (2.0, 20.0), "per_week": (1, 14),
}


def plan_state(store: Store, person: str | None) -> PlanState:
    """The default plan replayed over a person's stored sessions and changes."""
    sessions = [s for s in store.sessions() if s.person == person]
    return follow(DEFAULT_PLAN, sessions, load_changes(person))


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def plan_to_json(state: PlanState, person: str | None, today: dt.date) -> dict[str, Any]:
    """The ``plan --json`` document."""
    week = _week_start(today)
    this_week = sum(1 for s in state.sessions if s.start.astimezone().date() >= week)
    nxt = state.next_step()
    return {
        "person": person,
        "plan": state.plan.to_json(),
        "today": {**state.current.to_json(), "date": today.isoformat(),
                  "done_today": state.done_on(today),
                  "this_week": {"done": this_week, "target": state.current.per_week}},
        "next": None if nxt is None else nxt.to_json(),
        "progress": [p.to_json() for p in state.progress()],
        "steps": [s.to_json() for s in state.steps],
        "sessions_counted": len(state.sessions),
    }


def change_plan(store: Store, person: str | None, values: Mapping[str, Any]) -> PlanState:
    """Change the plan from now on (``values``: keys of the prescription); the new state.

    Raises
    ------
    InputError
        For a value the prescription refuses (nothing is written then).
    """
    if values:
        try:
            plan_state(store, person).current.changed(values)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc)) from None
        add_change(person, values)
    return plan_state(store, person)


def progress_for(store: Store, person: str | None, since: str, now: dt.datetime) -> Progress:
    """A person's progress since ``since`` (``8w``, ``30d``, a date), against their plan."""
    start = parse_since(since, now)
    target = plan_state(store, person).current.per_week
    return progress(store, person, start, now, per_week_target=target)
