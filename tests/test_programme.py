"""The programme: rules as data replayed over sessions, the person's changes, ``plan``."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from biofeedback.paths import store_path
from biofeedback.programme import DEFAULT_PLAN, Change, Prescription, follow
from biofeedback.programme.changes import add_change, load_changes, plan_file
from biofeedback.store import SessionInfo, SessionMeta, Store
from biofeedback.store.schema import MIGRATIONS
from devices.errors import InputError
from devices.stream import StreamKind, StreamSpec

DAY0 = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)


def session(i: int, *, reps: int = 5, good: int = 5, strain: int = 0, score: float = 90.0,
            release: float = 0.8, pain_after: int | None = None, position: str | None = None,
            status: str = "finished") -> SessionInfo:
    """Session ``i`` on day ``i``."""
    summary = {"reps": reps, "good_reps": good, "strain_count": strain, "mean_score": score,
               "release_kept": release}
    return SessionInfo(
        id=i, started_at=(DAY0 + dt.timedelta(days=i)).isoformat(), t0=0.0, duration_s=130.0,
        person="ann", protocol="quick", pacer=None, profile=None, devices=[], virtual=True,
        complete=True, status=status, summary=summary, pain_before=None, pain_after=pain_after,
        note_before=None, note_after=None, reps=reps, score=score, position=position,
    )


def test_three_good_sessions_add_a_rep_and_say_why() -> None:
    state = follow(DEFAULT_PLAN, [session(i) for i in range(3)])
    assert state.current.reps == 6
    (step,) = state.steps
    assert step.rule == "more-reps" and step.session_id == 2
    assert step.why == "3 sessions in a row with ≥ 80 % good reps and no strain"
    assert step.to_json()["changed"] == {"reps": 6}


def test_a_strained_session_restarts_the_count() -> None:
    sessions = [session(0), session(1, strain=1), session(2), session(3)]
    state = follow(DEFAULT_PLAN, sessions)
    assert state.current.reps == 5 and not state.steps
    assert [p.met for p in state.progress() if p.rule.id == "more-reps"] == [2]


def test_each_rule_counts_on_its_own() -> None:
    sessions: list[SessionInfo] = []
    for i in range(16):  # a learner who does the prescribed reps, all good
        reps = follow(DEFAULT_PLAN, sessions).current.reps
        sessions.append(session(i, reps=reps, good=reps, score=95))
    state = follow(DEFAULT_PLAN, sessions)
    # One more rep (3 sessions) and a longer exhale do not restart the count towards
    # sitting (5 in a row with >= 80 % good reps and no strain); a new position
    # restarts every count.
    assert [(s.rule, s.session_id) for s in state.steps] == [
        ("more-reps", 2), ("longer-exhale", 3), ("next-position", 4), ("more-reps", 7),
        ("longer-exhale", 8), ("next-position", 9), ("more-reps", 12), ("more-reps", 15)]
    sit = state.steps[2]
    assert sit.why == ("5 sessions in a row with ≥ 80 % good reps and no strain: "
                       "the drop is reliable")
    assert sit.before.reps == 6 and sit.after.position == "sitting"
    assert state.current == Prescription(position="standing", reps=9, exhale_s=8.0)
    assert {p.rule.id: p.met for p in state.progress()} == {
        "pain": 0, "ease": 0, "next-position": 5, "more-reps": 0, "longer-exhale": 3}


def test_sessions_in_another_position_are_no_evidence() -> None:
    sessions = [session(i, position="standing") for i in range(5)]
    state = follow(DEFAULT_PLAN, sessions)
    assert state.current.reps == 5 and len(state.sessions) == 5 and not state.window


def test_strain_eases_and_pain_holds() -> None:
    start = [session(i) for i in range(3)]  # -> 6 reps
    strained = [session(3 + i, reps=6, good=2, strain=3, score=30) for i in range(2)]
    state = follow(DEFAULT_PLAN, start + strained)
    assert [s.rule for s in state.steps] == ["more-reps", "ease"]
    assert state.current.reps == 5
    hurt = follow(DEFAULT_PLAN, [session(0), session(1), session(2, pain_after=6)])
    assert [s.rule for s in hurt.steps] == ["pain"] and hurt.current.reps == 5
    assert "physiotherapist" in hurt.steps[0].why


def test_unfinished_sessions_do_not_count() -> None:
    state = follow(DEFAULT_PLAN, [session(i, status="interrupted") for i in range(3)])
    assert not state.sessions and state.current == DEFAULT_PLAN.start


def test_a_change_applies_from_its_date() -> None:
    change = Change(DAY0 + dt.timedelta(days=1, hours=1), {"reps": 8, "exhale_s": 7.0})
    state = follow(DEFAULT_PLAN, [session(i) for i in range(4)], [change])
    assert state.current.reps == 8 and state.current.exhale_s == 7.0
    assert [s.rule for s in state.steps] == ["changed"]  # the count restarted at the change
    with pytest.raises(ValueError, match="position"):
        Prescription().changed({"position": "upside down"})


def test_next_step_is_one_the_prescription_allows() -> None:
    state = follow(DEFAULT_PLAN, [session(0)])
    nxt = state.next_step()
    assert nxt is not None and nxt.rule.id == "more-reps" and nxt.met == 1


def test_plan_file_round_trip(tmp_path: Path) -> None:
    add_change("ann/../x", {"reps": 7}, folder=tmp_path)
    path = plan_file("ann/../x", tmp_path)
    assert path.parent == tmp_path and path.stat().st_mode & 0o777 == 0o600
    (c,) = load_changes("ann/../x", tmp_path)
    assert c.values == {"reps": 7}
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read the plan"):
        load_changes("ann/../x", tmp_path)


def _meta(**kw: Any) -> SessionMeta:
    base: dict[str, Any] = {
        "person": "ann", "protocol": "quick", "devices": [], "t0": 0.0,
        "streams": [StreamSpec("p", StreamKind.PRESSURE, ("p",), "count", 50.0)]}
    base.update(kw)
    return SessionMeta(**base)


def test_sessions_record_their_position(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(_meta(position="sitting",
                                      started_at="2026-10-02T08:00:00+00:00"))
        w.finish(summary={"reps": 5}, complete=True)
        info = store.session(w.session_id)
    assert info.position == "sitting" and info.started_at.startswith("2026-10-02")
    assert info.to_detail_json()["position"] == "sitting"


def test_a_version_2_store_gains_the_position_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        con.executescript(script)
    con.execute("INSERT INTO sessions (started_at, t0, t_last, protocol) VALUES "
                "('2026-10-01T08:00:00+00:00', 0, 0, 'quick')")
    con.execute("PRAGMA application_id = 1112100678")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 3
        assert store.session(1).position is None


def test_plan_command(cli: Any) -> None:
    with Store(store_path()) as store:
        for i in range(3):
            w = store.begin_session(_meta(started_at=(DAY0 + dt.timedelta(days=i)).isoformat()))
            w.finish(summary={"reps": 5, "good_reps": 5, "strain_count": 0, "mean_score": 90},
                     complete=True)
    r = cli("plan", "--person", "ann", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["today"]["reps"] == 6 and doc["sessions_counted"] == 3
    assert doc["steps"][0]["why"].startswith("3 sessions in a row")
    r = cli("plan", "--person", "ann", "--position", "sitting", "--exhale", "7")
    assert r.returncode == 0, r.stderr
    assert "Today: sitting, 6 reps, breathe in 4 s / out 7 s" in r.stdout
    assert "changed by the person" in r.stdout
    r = cli("plan", "--person", "ann", "--reps", "0")
    assert r.returncode == 2


def test_live_follows_todays_plan(cli: Any) -> None:
    r = cli("plan", "--person", "bo", "--reps", "1", "--exhale", "5")
    assert r.returncode == 0, r.stderr
    r = cli("live", "--virtual", "--headless", "--speed", "max", "--breath", "none",
            "--person", "bo", "--plan", "--duration", "30", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)["summary"]
    assert s["protocol"] == "plan" and s["reps_target"] == 1
    assert [x["kind"] for x in s["steps"]] == ["settle", "baseline", "reps", "post"]
    assert s["pacer"] == {"inhale_s": 4.0, "hold_s": 0.0, "exhale_s": 5.0}
    with Store(store_path()) as store:
        info = store.session(json.loads(r.stdout)["session_id"])
    assert info.position == "lying" and info.protocol == "plan"
