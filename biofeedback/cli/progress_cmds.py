"""``progress``: the weeks at a glance; and ``demo --weeks N``, weeks of a learner's practice."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.paths import store_path
from biofeedback.programme.changes import DEFAULT_PERSON
from biofeedback.programme.person import plan_state, progress_for
from biofeedback.store import Store

__all__ = ["clinician_report", "demo_weeks", "progress_cmd", "progress_for"]


def _num(x: float | None, nd: int = 1, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def _print(p: dict[str, Any]) -> None:
    who = p["person"] or DEFAULT_PERSON
    a = p["adherence"]
    since = p["since"][:10]
    click.echo(f"Progress of {who} since {since}: {a['sessions']} sessions")
    if not a["sessions"]:
        click.echo("No practice sessions in this period (finished sessions with reps count).")
        return
    st = a["streak_days"]
    click.echo(f"Adherence: {a['per_week']:.1f} sessions a week of {a['target_per_week']} "
               f"planned ({a['of_target_pct']:.0f} %); streak {st['current']} days "
               f"(longest {st['longest']})")
    click.echo("  weeks: " + "  ".join(f"{w['week_start'][5:]} {w['sessions']}/{w['target']}"
                                       for w in a["weeks"]))
    unit = p["pressure_unit"] or ""
    click.echo(f"{'figure':46} {'first week':>11} {'last week':>10} {'change':>16} "
               f"{'per week':>9}")
    missing = []
    for t in p["trends"].values():
        u = unit if t["unit"] == "pressure" else t["unit"]
        label = f"{t['label']} ({u})"
        if not t["n"]:
            missing.append(f"{t['label']}: {t['note']}")
            continue
        pct = f" ({_num(t['change_pct'], 0, True)} %)" if t["change_pct"] is not None else ""
        click.echo(f"{label:46} {_num(t['first_week'], 2):>11} {_num(t['last_week'], 2):>10} "
                   f"{_num(t['change'], 2, True) + pct:>16} "
                   f"{_num(t['slope_per_week'], 2, True):>9}")
        if t["caveat"]:
            click.echo(f"  ({t['caveat']})")
        elif t["note"]:
            click.echo(f"  ({t['note']})")
    for m in missing:
        click.echo(f"Cannot be computed -- {m}")
    notes = [(s["started_at"][:10], n) for s in p["sessions"] for n in s["notes"]]
    if notes:
        click.echo("Notes: " + "; ".join(f"{d} {n!r}" for d, n in notes[-6:]))


@cli.command("progress", epilog="""\b
Examples:
  biofeedback progress --person ann                  # the last 8 weeks
  biofeedback progress --person ann --since 30d --json
""")
@click.option("--person", help="Whose sessions (default: those recorded without a person).")
@click.option("--since", default="8w", show_default=True,
              help="The period: weeks (8w), days (30d) or a date (2026-10-01).")
@command_options()
def progress_cmd(app: AppContext, person: str | None, since: str) -> None:
    """Progress over weeks, from the stored sessions: adherence, resting tone and its
    variability, drop depth, time back to rest after a contraction, strain, score
    and pain -- each as a trend with the period's change (first week to last)."""
    now = dt.datetime.now(dt.UTC)
    with Store(store_path()) as store:
        doc = progress_for(store, person, since, now).to_json()
    if app.json:
        emit_json(doc)
    else:
        _print(doc)


def demo_weeks(app: AppContext, weeks: int, seed: int) -> None:
    """``demo --weeks N``: N weeks of a virtual learner's practice, recorded as person "demo"."""
    from biofeedback.paths import profiles_dir
    from biofeedback.programme.practice import practise_weeks
    from biofeedback.runtime import (
        direct_counts_factory,
        direct_virtual_source,
        virtual_learner_skills,
    )

    t = time.perf_counter()

    def said(d: Any) -> None:
        if not app.json:
            click.echo(f"session {d.session_id}  {d.start.astimezone():%Y-%m-%d}  "
                       f"{d.prescription.position:8} {d.prescription.reps:2d} reps  "
                       f"score {_num(d.score, 0):>3}", err=True)

    days = practise_weeks(store_path(), weeks, seed=seed, person="demo",
                          source=direct_virtual_source, skills_for=virtual_learner_skills,
                          on_session=said, profiles=profiles_dir(),
                          counts_factory=direct_counts_factory())
    seconds = time.perf_counter() - t
    with Store(store_path()) as store:
        today = plan_state(store, "demo").current.to_json()
    from calibration.profiles import list_profiles

    assessed = [p for p in list_profiles(profiles_dir(), "demo") if p.kind == "assessment"
                and p.created_at >= days[0].start - dt.timedelta(days=1)] if days else []
    doc = {"weeks": weeks, "person": "demo", "sessions": len(days),
           "session_ids": [d.session_id for d in days], "seconds": round(seconds, 1),
           "plan_today": today, "assessments": len(assessed)}
    if app.json:
        emit_json(doc)
        return
    click.echo(f"{len(days)} sessions and {len(assessed)} assessments over {weeks} weeks "
               "recorded for person 'demo' in "
               f"{seconds:.1f} s. See: biofeedback plan --person demo; biofeedback progress "
               "--person demo; biofeedback report --person demo --since 4w --pdf demo.pdf")


def clinician_report(app: AppContext, session_id: int | None, person: str | None, since: str,
                     pdf: Path | None, html: Path | None, force: bool) -> None:
    """``report --person P --since 4w --pdf FILE [--html FILE]``: the clinician's page."""
    from biofeedback.report_pdf import load_clinician, write_clinician_page

    if session_id is not None:
        raise click.UsageError("--person, --pdf and --html make the clinician's page of a "
                               "person's weeks: give them without a session ID")
    if pdf is None and html is None:
        raise click.UsageError("the clinician's page needs --pdf FILE and/or --html FILE "
                               "(or give a session ID for a session's report)")
    if pdf is not None and html is not None and pdf.absolute() == html.absolute():
        raise click.UsageError("the PDF and the HTML need two different file names")
    t = time.perf_counter()
    with Store(store_path()) as store:
        data = load_clinician(store, person, since, dt.datetime.now(dt.UTC))
    written = write_clinician_page(data, pdf=pdf, html=html, force=force)
    if app.json:
        emit_json({"person": person, "since": data.progress.since.isoformat(timespec="seconds"),
                   "sessions": len(data.progress.sessions),
                   "pdf": None if pdf is None else str(pdf),
                   "html": None if html is None else str(html)})
    else:
        click.echo(f"Wrote {' and '.join(str(p) for p in written)} "
                   f"({len(data.progress.sessions)} sessions, "
                   f"{time.perf_counter() - t:.1f} s).", err=True)
