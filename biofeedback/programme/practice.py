"""Weeks of practice by a virtual learner, recorded to the store (``demo --weeks N``).

Day by day over ``N`` weeks ending today, the learner practises on most days
(a seeded adherence with lapses), always today's session of the plan
(:func:`~biofeedback.programme.follow.follow` over what is stored so far, so
the plan's steps happen as they would for a person). Each session runs the
real pipeline and session engine on the learner's body at its skill of the
day (:func:`~devices.virtual.body.learner.skill_over_sessions`, a little lower
in a newer, harder position), with no radio in between, and is stored with a
back-dated start, its position, a pain rating before and after and, now and
then, a note. Given a profiles folder, the learner also does a Glazer-style
assessment on the first day and every two weeks
(:func:`~biofeedback.programme.assess.assess`) -- the same body each time, at
the skill of that day, so its resting tone falls as the guarding lets go --
saved as a real one is and marked as the demo's. Everything is seeded: the same seed gives the same
store content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biofeedback.programme.assess import ASSESS_EVERY_DAYS, assess
from biofeedback.programme.changes import load_changes
from biofeedback.programme.follow import follow
from biofeedback.programme.plan import DEFAULT_PLAN, POSITIONS, Prescription
from biofeedback.protocols.pacer import Pacer
from biofeedback.protocols.session import SessionEngine, SessionProtocol, Step, StepKind
from biofeedback.signal.pipeline import Pipeline
from biofeedback.store import SessionMeta, Store
from devices.clock import SimClock
from devices.errors import InputError

__all__ = ["PROTOCOL", "PracticeDay", "plan_protocol", "practise_weeks"]

#: The protocol name of a plan session.
PROTOCOL = "plan"

_POSTURE = {"lying": "supine", "sitting": "sitting", "standing": "standing"}
_NOTES_BEFORE = ("tired today", "busy day, short on time", "slept badly", "feeling calm")
_NOTES_AFTER = ("the drop felt easier today", "hard to keep the release on the exhale",
                "caught myself pushing once", "felt relaxed afterwards")


def plan_protocol(p: Prescription) -> SessionProtocol:
    """Today's session: settle, a 30 s baseline, one set of the plan's reps, a 30 s
    post-baseline (the resting figures before and after)."""
    return SessionProtocol(PROTOCOL, (
        Step(StepKind.SETTLE, 15.0), Step(StepKind.BASELINE, 30.0),
        Step(StepKind.REPS, reps=p.reps, set_index=1), Step(StepKind.POST, 30.0),
    ))


@dataclass(frozen=True)
class PracticeDay:
    """One simulated session."""

    session_id: int
    start: dt.datetime
    skill: float
    prescription: Prescription
    score: float | None


def _practice_days(weeks: int, rng: np.random.Generator) -> list[int]:
    """Days (0-based) the learner practises: most days, with a lapse now and then."""
    days = []
    lapse = 0
    for d in range(7 * weeks):
        if lapse > 0:
            lapse -= 1
            continue
        if rng.random() < 0.03:
            lapse = int(rng.integers(1, 4))  # a few days off (travel, illness)
            continue
        if rng.random() < 0.92:
            days.append(d)
    return days


def _pain(week: float, weeks: int, rng: np.random.Generator) -> int:
    """Pain before a session: about 4/10 at the start, easing over the weeks."""
    level = 4.0 - 2.5 * week / max(weeks, 1) + 0.7 * float(rng.standard_normal())
    return int(min(max(round(level), 0), 4))


@dataclass(frozen=True)
class _Day:
    """What the learner brings to one session."""

    seed: int
    skill: float
    prescription: Prescription
    start: dt.datetime
    pain_before: int
    note_before: str | None
    note_after: str | None


async def _one(store: Path, person: str, day: _Day, source: Callable[..., Any]
               ) -> tuple[int, float | None]:
    """Run and store one session; the pain after follows how it went."""
    p = day.prescription
    clock = SimClock(None)
    src = source(clock, day.seed, skill=day.skill, posture=_POSTURE[p.position])
    specs = list(src.streams)
    engine = SessionEngine(clock, Pipeline(specs), plan_protocol(p),
                           pacer=Pacer(p.inhale_s, 0.0, p.exhale_s),
                           pain_before=day.pain_before, note_before=day.note_before)
    with Store(store) as st:
        engine.writer = st.begin_session(SessionMeta(
            person=person, protocol=PROTOCOL, streams=specs, devices=list(src.devices),
            t0=clock.now(),
            pacer={"inhale_s": p.inhale_s, "hold_s": 0.0, "exhale_s": p.exhale_s},
            virtual=True, pain_before=day.pain_before, note_before=day.note_before,
            position=p.position, started_at=day.start.isoformat(timespec="milliseconds"),
            demo=True))  # 'data wipe --demo' removes them
    src.body.intent = engine.intent
    summary = await engine.run(src.chunks())
    eased = summary.mean_score is not None and summary.mean_score >= 70 \
        and summary.strain_count == 0
    pain_after = max(day.pain_before - (1 if eased else 0)
                     + (1 if summary.strain_count > 2 else 0), 0)
    engine.finish(pain_after=min(pain_after, 4), note_after=day.note_after)
    assert engine.writer is not None
    return engine.writer.session_id, summary.mean_score


def practise_weeks(
    store: Path,
    weeks: int,
    *,
    seed: int = 0,
    person: str = "demo",
    now: dt.datetime | None = None,
    source: Callable[..., Any],
    skills_for: Callable[[int, int], list[float]],
    on_session: Callable[[PracticeDay], None] | None = None,
    profiles: Path | None = None,
    counts_factory: tuple[float, float] | None = None,
    assess_every: int = ASSESS_EVERY_DAYS,
) -> list[PracticeDay]:
    """Record ``weeks`` weeks of a learner's practice ending today; returns the sessions.

    Parameters
    ----------
    store : Path
        The store file.
    weeks : int
        How many weeks (1-52).
    seed : int
        Seeds the learner (skill curve, adherence, pain, notes, body).
    person : str
        Whose sessions they are.
    now : datetime, optional
        The end of the practice (default: now).
    source : callable
        ``(clock, seed, skill=, posture=) -> source`` of the learner's sensors
        (:func:`biofeedback.runtime.direct_virtual_source`).
    skills_for : callable
        ``(n, seed) -> skills``, the learner's skill curve
        (:func:`biofeedback.runtime.virtual_learner_skills`).
    on_session : callable, optional
        Called after each session (progress lines).
    profiles : Path, optional
        The profiles folder: with it, an assessment on the first practice day
        and then every ``assess_every`` days (default
        :data:`~biofeedback.programme.assess.ASSESS_EVERY_DAYS`).
    counts_factory : (gain, offset), optional
        The pressure sensor's counts conversion (the assessments' cmH2O figures).
    """
    if not 1 <= weeks <= 52:
        raise InputError(f"--weeks must be 1-52, not {weeks}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x3EE45]))
    end = (now or dt.datetime.now(dt.UTC)).astimezone()
    first_day = (end - dt.timedelta(days=7 * weeks)).replace(hour=7, minute=30, second=0,
                                                              microsecond=0)
    days = [d for d in _practice_days(weeks, rng)
            if first_day + dt.timedelta(days=d, hours=3) <= end]
    skills = skills_for(len(days), seed)
    out: list[PracticeDay] = []
    assessed = 0
    for k, d in enumerate(days):
        with Store(store) as st:
            sessions = [s for s in st.sessions() if s.person == person]
        p = follow(DEFAULT_PLAN, sessions, load_changes(person)).current
        day = _Day(
            seed=seed * 1000 + k,
            # A newer position is harder: the same person drops less surely standing.
            skill=max(skills[k] - 0.12 * POSITIONS.index(p.position), 0.0),
            prescription=p,
            start=first_day + dt.timedelta(days=d, minutes=int(rng.integers(0, 180))),
            pain_before=_pain(d / 7.0, weeks, rng),
            note_before=_note(_NOTES_BEFORE, rng),
            note_after=_note(_NOTES_AFTER, rng),
        )
        if profiles is not None and (not out or d - assessed >= assess_every):
            assessed = d
            # The same person every time (one body seed), as on the same sensor each
            # morning: what changes between assessments is the skill of the day.
            _assess(store, profiles, person, day, skills[k], seed * 1000 + 500_000, source,
                    counts_factory)
        sid, score = asyncio.run(_one(store, person, day, source))
        done = PracticeDay(sid, day.start, day.skill, p, score)
        out.append(done)
        if on_session is not None:
            on_session(done)
    return out


def _assess(store: Path, profiles: Path, person: str, day: _Day, skill: float, seed: int,
            source: Callable[..., Any], counts_factory: tuple[float, float] | None) -> None:
    """The morning's assessment (lying, before the session), marked as the demo's."""
    at = day.start.replace(hour=7, minute=0, second=0, microsecond=0)
    profile = assess(profiles, person, min(at, day.start), skill=skill, seed=seed,
                     source=source, counts_factory=counts_factory)
    if profile is not None and profile.path is not None:
        with Store(store) as st:
            st.mark_demo_profile(profile.id, profile.path)


def _note(choices: tuple[str, ...], rng: np.random.Generator) -> str | None:
    """Now and then a note (about one session in seven)."""
    k = int(rng.integers(len(choices)))
    return choices[k] if rng.random() < 0.15 else None
