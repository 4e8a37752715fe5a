"""Progress over weeks: recomputed here from the stored sessions of ``demo --weeks``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import LearnerWeeks

from biofeedback.programme.follow import counts
from biofeedback.programme.progress import (
    Progress,
    SessionFigures,
    parse_since,
    progress,
    trend,
)
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.store import Store
from devices.errors import InputError

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


def _progress(weeks: LearnerWeeks) -> Progress:
    """Progress over the shared two weeks of practice (conftest.learner_weeks)."""
    with Store(weeks.store) as store:
        return progress(store, "demo", weeks.now - dt.timedelta(weeks=8), weeks.now)


def test_figures_match_the_stored_sessions(learner_weeks: LearnerWeeks) -> None:
    p = _progress(learner_weeks)
    with Store(learner_weeks.store) as store:
        infos = [s for s in store.sessions() if s.person == "demo" and counts(s)]
        assert len(p.sessions) == len(infos) >= 8
        for f, info in zip(p.sessions, infos, strict=True):
            summ = info.summary or {}
            assert f.id == info.id and f.position == info.position and f.unit == "count"
            assert f.score == pytest.approx(info.score, abs=0.051)  # stored rounded to 0.1
            assert f.strain == summ["strain_count"]
            assert f.drop_depth == pytest.approx(summ["drop_depth"], abs=1e-3)
            assert (f.pain_before, f.pain_after) == (info.pain_before, info.pain_after)
            # Resting tone: the baseline step as the summary's step list has it.
            base = next(s for s in summ["steps"] if s["kind"] == "baseline")
            spec = info.streams[0]
            t, v = store.read_stream(info.id, spec.name)
            level = v[:, pressure_channels(spec.channels)[0]]
            m = (t - info.t0 >= base["start_s"] - 1e-3) & (t - info.t0 < base["end_s"] - 1e-3)
            assert f.rest_mean == pytest.approx(float(np.mean(level[m])), rel=1e-4)
            assert f.rest_sd == pytest.approx(float(np.std(level[m])), rel=1e-2)
            runs = [r for r in store.states(info.id, spec.name) if r.name == "contraction"]
            assert f.contractions == len(runs)
            if not runs:
                assert f.recovery_s is None  # nothing to return from
            elif f.recovery_s is not None:
                assert 0.0 <= f.recovery_s < max(r.duration for r in runs) + 60.0


def test_trends_and_adherence(learner_weeks: LearnerWeeks) -> None:
    p = _progress(learner_weeks)
    doc = p.to_json()
    score = doc["trends"]["score"]
    first = [f.score for f in p.sessions if f.start < p.sessions[0].start + dt.timedelta(days=7)]
    last = [f.score for f in p.sessions if f.start > p.sessions[-1].start - dt.timedelta(days=7)]
    assert score["first_week"] == pytest.approx(np.mean(first), abs=1e-3)
    assert score["change"] == pytest.approx(np.mean(last) - np.mean(first), abs=2e-3)
    assert score["change"] > 0  # the learner learns
    a = doc["adherence"]
    assert sum(w["sessions"] for w in a["weeks"]) == a["sessions"] == len(p.sessions)
    days = sorted({f.start.astimezone().date() for f in p.sessions})
    assert 1 <= a["streak_days"]["longest"] <= len(days)
    assert doc["trends"]["recovery_s"]["caveat"].startswith("a trend, not a verdict")


def _fig(i: int, **kw: Any) -> SessionFigures:
    base: dict[str, Any] = {
        "id": i, "start": NOW + dt.timedelta(days=i), "position": "lying", "unit": "count",
        "reps": 5, "good_reps": 5, "rest_mean": 10.0 - i, "rest_sd": 1.0, "drop_depth": 2.0,
        "recovery_s": None, "contractions": 0, "strain": 0, "score": 50.0 + i,
        "pain_before": None, "pain_after": None}
    base.update(kw)
    return SessionFigures(**base)


def test_trend_maths_and_what_cannot_be_computed() -> None:
    figs = [_fig(i) for i in range(15)]
    t = trend("rest_mean", figs)
    assert t.first == pytest.approx(np.mean([10.0 - i for i in range(7)]))
    assert t.last == pytest.approx(np.mean([10.0 - i for i in range(8, 15)]))
    assert t.slope_per_week == pytest.approx(-7.0)
    assert trend("recovery_s", figs).note == (
        "no contraction in these sessions: there is nothing to return from")
    assert trend("pain_after", figs).note == "pain was not recorded in these sessions"
    few = trend("score", figs[:2])
    assert few.slope_per_week is None and few.note is not None and "no trend yet" in few.note


def test_parse_since() -> None:
    assert parse_since("8w", NOW) == NOW - dt.timedelta(weeks=8)
    assert parse_since("30d", NOW) == NOW - dt.timedelta(days=30)
    assert parse_since("2026-10-01", NOW).date() == dt.date(2026, 10, 1)
    for bad in ("soon", "0w", "-3d"):
        with pytest.raises(InputError, match="--since"):
            parse_since(bad, NOW)


def test_progress_command(learner_weeks: LearnerWeeks, cli: Any, tmp_path: Path) -> None:
    home = tmp_path / "copy"
    shutil.copytree(learner_weeks.home, home)
    env = {"BIOFEEDBACK_HOME": str(home)}
    r = cli("progress", "--person", "demo", "--since", "2026-10-01", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["adherence"]["sessions"] == len(_progress(learner_weeks).sessions)
    r = cli("progress", "--person", "demo", "--since", "2026-10-01", env=env)
    assert "Adherence:" in r.stdout and "resting tone (count)" in r.stdout
    r = cli("progress", "--person", "nobody", env=env)
    assert r.returncode == 0 and "No practice sessions" in r.stdout
    r = cli("progress", "--since", "later", env=env)
    assert r.returncode == 1 and "--since" in r.stderr


def test_demo_weeks_fills_the_store(cli: Any) -> None:
    r = cli("demo", "--weeks", "1", "--seed", "4", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    from biofeedback.paths import store_path

    with Store(store_path()) as store:
        stored = [s for s in store.sessions() if s.person == "demo"]
    assert [s.id for s in stored] == doc["session_ids"] and 4 <= doc["sessions"] <= 7
    assert all(s.virtual and s.demo and s.position == "lying" and s.protocol == "plan"
               for s in stored)
    assert len({s.start.date() for s in stored}) == len(stored)  # one a day, back-dated
    assert doc["plan_today"]["position"] == "lying"
    # The first day's assessment: a real assessment profile, the demo's to wipe.
    from biofeedback.paths import data_dir

    with Store(store_path()) as store:
        marked = store.demo_marks().profiles
    files = list((data_dir() / "profiles" / "demo").glob("*.json"))
    assert doc["assessments"] == 1 and len(files) == 1
    assert [p.resolve() for p in marked] == [files[0].resolve()]
    assert json.loads(files[0].read_text())["kind"] == "assessment"
    r = cli("data", "wipe", "--demo", "--yes")
    assert r.returncode == 0, r.stderr
    assert not files[0].exists()
