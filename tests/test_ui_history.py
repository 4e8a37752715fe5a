"""The Progress and Plan screens (offscreen): they draw what ``progress --json`` and
``plan --json`` say, over a store filled the way ``demo --weeks`` fills it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import LearnerWeeks
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from biofeedback.programme.progress import FIGURES
from biofeedback.ui.history_view import (
    ADHERENCE_COLOUR,
    TREND_COLOUR,
    ProgressView,
    change_text,
    progress_loader,
)
from biofeedback.ui.plan_view import PlanView, next_text, plan_changer, plan_loader, today_text
from devices.errors import InputError


@pytest.fixture
def home(learner_weeks: LearnerWeeks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy this test may change (plan changes), as BIOFEEDBACK_HOME."""
    copy = tmp_path / "weeks_home"
    shutil.copytree(learner_weeks.home, copy)  # shared: conftest.learner_weeks
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(copy))
    return copy


def _json(cli: Any, *args: str) -> dict[str, Any]:
    r = cli(*args, "--person", "demo", "--json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def _count(img: QImage, colour: str, tol: int = 12) -> int:
    """Pixels of about ``colour`` in ``img``."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    a = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    rgb = a.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).astype(int)
    c = QColor(colour)
    want = np.array([c.red(), c.green(), c.blue()])
    return int(np.count_nonzero(np.abs(rgb - want).max(axis=2) <= tol))


def test_progress_screen_draws_the_progress_document(home: Path, cli: Any,
                                                     qtbot: QtBot) -> None:
    view = ProgressView(progress_loader("demo"))
    qtbot.addWidget(view)
    view.resize(1400, 900)
    view.reload()
    view.show()
    qtbot.waitExposed(view)
    doc = _json(cli, "progress")
    assert view.doc is not None
    shown = view.doc
    # The same computation: every trend and session, the weeks and the streak.
    assert shown["trends"] == doc["trends"] and shown["sessions"] == doc["sessions"]
    assert shown["adherence"]["weeks"] == doc["adherence"]["weeks"]
    assert shown["adherence"]["streak_days"] == doc["adherence"]["streak_days"]
    a = shown["adherence"]
    assert f"{a['per_week']:.1f} sessions a week of {a['target_per_week']} planned" \
        in view.adherence_label.text()
    assert view.bars is not None and list(view.bars.opts["height"]) == \
        [w["sessions"] for w in doc["adherence"]["weeks"]]
    for key in FIGURES:
        t, card = doc["trends"][key], view.cards[key]
        assert card.change.text() == change_text(t)
        assert card.ys.tolist() == [p["value"] for p in t["points"] if p["value"] is not None]
        assert card.plot.isVisible() == bool(t["n"])
    score = doc["trends"]["score"]
    assert score["n"] >= 8 and f"first week {score['first_week']:.2f}" in \
        view.cards["score"].change.text()
    assert "Oleksy" in view.cards["recovery_s"].note.text()  # the caveat beside its trend
    assert "(count)" in view.cards["rest_mean"].title.text()
    # Drawn: the trend's line and the adherence bars are on screen in their colours.
    assert _count(view.cards["score"].plot.grab().toImage(), TREND_COLOUR) > 100
    assert _count(view.adherence_plot.grab().toImage(), ADHERENCE_COLOUR) > 500
    # Another period is progress --since of that period.
    view.period.setCurrentText("4w")
    week = _json(cli, "progress", "--since", "4w")
    assert view.doc["since"][:10] == week["since"][:10] and view.doc["trends"] == week["trends"]
    assert f"since {week['since'][:10]}" in view.heading.text()


def test_progress_screen_with_no_sessions(home: Path, qtbot: QtBot) -> None:
    view = ProgressView(progress_loader("nobody"))
    qtbot.addWidget(view)
    view.reload()
    assert "No practice sessions" in view.adherence_label.text()
    assert not view.adherence_plot.isVisibleTo(view)
    assert view.cards["score"].change.text() == \
        "cannot be computed: no sessions in the period"
    assert view.cards["score"].ys.size == 0


def test_plan_screen_shows_and_changes_the_plan(home: Path, cli: Any, qtbot: QtBot) -> None:
    view = PlanView(plan_loader("demo"), plan_changer("demo"))
    qtbot.addWidget(view)
    view.resize(1000, 900)
    view.reload()
    view.show()
    qtbot.waitExposed(view)
    doc = _json(cli, "plan")
    assert view.doc == doc
    assert view.today_label.text() == today_text(doc) and view.next_label.text() == \
        next_text(doc)
    assert view.rules.rowCount() == len(doc["progress"])
    bar = view.rules.cellWidget(0, 0)
    assert bar.value() == min(doc["progress"][0]["met"], doc["progress"][0]["needed"])
    assert view.steps.rowCount() == len(doc["steps"])
    if doc["steps"]:
        assert view.steps.item(0, 2).text() == doc["steps"][-1]["why"]  # the latest first
    assert view.reps.value() == doc["today"]["reps"]
    assert _count(view.today_label.grab().toImage(), "#000000", tol=90) > 50  # words drawn
    # Change it as 'plan --exhale E --position P' would (both other than today's).
    assert view.status.text() == ""
    view.apply_button.click()
    assert "Nothing to change" in view.status.text()
    exhale = doc["today"]["exhale_s"] + 1.0
    position = "standing" if doc["today"]["position"] != "standing" else "lying"
    view.exhale.setValue(exhale)
    view.position.setCurrentText(position)
    view.apply_button.click()
    after = _json(cli, "plan")
    assert after["today"]["exhale_s"] == exhale and after["today"]["position"] == position
    assert after["steps"][-1]["why"] == "changed by the person"
    assert view.doc == after and position in view.today_label.text()
    assert view.steps.item(0, 2).text() == "changed by the person"


def test_a_refused_change_writes_nothing(home: Path, cli: Any, qtbot: QtBot) -> None:
    before = _json(cli, "plan")
    with pytest.raises(InputError):
        plan_changer("demo")({"reps": 99})

    def refuse(_values: Any) -> dict[str, Any]:
        raise InputError("reps must be 1-30, not 99")

    view = PlanView(plan_loader("demo"), refuse)
    qtbot.addWidget(view)
    view.reload()
    view.reps.setValue(9 if view.reps.value() != 9 else 8)
    view.apply_button.click()
    assert view.status.text() == "Not changed: reps must be 1-30, not 99"
    assert _json(cli, "plan") == before
    assert not (home / "data" / "plans").exists()


def test_the_window_has_plan_and_progress_screens(home: Path, cli: Any, qtbot: QtBot) -> None:
    from biofeedback.ui.window import SessionWindow

    win = SessionWindow(show_safety_note=False, person="demo")
    qtbot.addWidget(win)
    assert win.screen_names[-2:] == ("plan", "progress")
    assert win.progress_view.doc is None  # read when shown, not before
    win.show_screen("progress")
    assert win.current_screen() is win.screens["progress"]
    shown = win.progress_view.doc
    assert shown is not None and shown["trends"] == _json(cli, "progress")["trends"]
    win.show_screen("plan")
    assert win.plan_view.doc == _json(cli, "plan")
    assert win.tabs.tabText(win.tabs.currentIndex()) == "Plan"
