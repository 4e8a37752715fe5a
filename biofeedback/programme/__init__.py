"""The programme: a plan to follow over weeks, and progress computed from stored sessions.

* :mod:`~biofeedback.programme.plan` -- the plan as data (prescription, rules);
* :mod:`~biofeedback.programme.follow` -- the plan replayed over the sessions;
* :mod:`~biofeedback.programme.changes` -- the person's own changes (a JSON file).
"""

from biofeedback.programme.follow import Change, PlanState, Step, follow
from biofeedback.programme.plan import (
    DEFAULT_PLAN,
    POSITIONS,
    Action,
    Criterion,
    Plan,
    Prescription,
    Rule,
)

__all__ = [
    "DEFAULT_PLAN",
    "POSITIONS",
    "Action",
    "Change",
    "Criterion",
    "Plan",
    "PlanState",
    "Prescription",
    "Rule",
    "Step",
    "follow",
]
