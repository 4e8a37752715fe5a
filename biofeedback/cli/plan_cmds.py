"""``plan``: today's session of the programme, what comes next, and the steps so far."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.paths import store_path
from biofeedback.programme import POSITIONS
from biofeedback.programme.changes import DEFAULT_PERSON
from biofeedback.programme.person import (
    ACTION_WORDS,
    change_plan,
    plan_state,
    plan_to_json,
)
from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.session import SessionProtocol
from biofeedback.store import Store

__all__ = ["plan", "plan_state", "plan_to_json", "todays_session"]


def todays_session(person: str | None) -> tuple[SessionProtocol, Pacer, str]:
    """What ``live --plan`` runs: the plan's session, its pacer and its position."""
    from biofeedback.programme.practice import plan_protocol

    with Store(store_path()) as store:
        p = plan_state(store, person).current
    return plan_protocol(p), Pacer(p.inhale_s, 0.0, p.exhale_s), p.position


def _print(doc: dict[str, Any]) -> None:
    t = doc["today"]
    who = doc["person"] or DEFAULT_PERSON
    click.echo(f"Plan '{doc['plan']['name']}' for {who} ({doc['sessions_counted']} sessions so "
               "far)")
    click.echo(f"Today: {t['position']}, {t['reps']} reps, breathe in {t['inhale_s']:g} s / "
               f"out {t['exhale_s']:g} s")
    click.echo(f"  done today {t['done_today']}; this week {t['this_week']['done']} of "
               f"{t['this_week']['target']}")
    nxt = doc["next"]
    if nxt is None:
        click.echo("Next: the plan is at its last step; keep practising.")
    else:
        click.echo(f"Next: {ACTION_WORDS.get(nxt['action'], nxt['action'])} after "
                   f"{nxt['why']} ({nxt['met']} of {nxt['needed']} so far)")
    if doc["steps"]:
        click.echo("Steps so far:")
    for s in doc["steps"]:
        day = dt.datetime.fromisoformat(s["at"]).astimezone().strftime("%Y-%m-%d")
        what = ", ".join(f"{k} {v}" for k, v in s["changed"].items()) or "count restarted"
        src = f" (after session {s['session_id']})" if s["session_id"] is not None else ""
        click.echo(f"  {day}  {what}{src}: {s['why']}")
    click.echo("Stop if anything hurts; never push.")


@cli.command(epilog="""\b
Examples:
  biofeedback plan --person ann             # today's session and what comes next
  biofeedback plan --person ann --exhale 7  # change it from now on
  biofeedback live --person ann --plan      # run today's session
""")
@click.option("--person", help="Whose plan (default: sessions recorded without a person).")
@click.option("--position", type=click.Choice(POSITIONS), help="Change: the position.")
@click.option("--reps", type=click.IntRange(1, 30), help="Change: reps per session.")
@click.option("--inhale", type=click.FloatRange(2.0, 15.0), help="Change: inhale seconds.")
@click.option("--exhale", type=click.FloatRange(2.0, 20.0), help="Change: exhale seconds.")
@click.option("--per-week", type=click.IntRange(1, 14), help="Change: sessions per week.")
@command_options()
def plan(app: AppContext, person: str | None, position: str | None, reps: int | None,
         inhale: float | None, exhale: float | None, per_week: int | None) -> None:
    """Today's session of the down-training programme and what comes next.

    The plan starts lying down with 5 reps a day; its rules add reps, lengthen
    the exhale and move on to sitting, then standing, when the drop is reliable
    and strain-free, each step saying why. Options change the plan from now on.
    """
    given = {"position": position, "reps": reps, "inhale_s": inhale, "exhale_s": exhale,
             "per_week": per_week}
    values = {k: v for k, v in given.items() if v is not None}
    with Store(store_path()) as store:
        state = change_plan(store, person, values)
    doc = plan_to_json(state, person, dt.datetime.now().astimezone().date())
    if app.json:
        emit_json(doc)
    else:
        _print(doc)
