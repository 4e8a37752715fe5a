"""The Plan screen: today's session, what comes next, the steps so far, and a way to change it.

It draws the ``plan --json`` document
(:func:`~biofeedback.programme.person.plan_to_json`) and changes the plan
through :func:`~biofeedback.programme.person.change_plan` -- the same change
``biofeedback plan --reps 7`` makes, from now on -- then draws the new document.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from biofeedback.programme.person import ACTION_WORDS, LIMITS
from biofeedback.programme.plan import POSITIONS
from devices.errors import InputError

__all__ = ["ChangeFn", "DocFn", "PlanView", "next_text", "plan_changer", "plan_loader",
           "today_text"]

#: ``() -> the plan --json document``.
DocFn = Callable[[], dict[str, Any]]
#: ``(values) -> the new document`` (raises InputError for a refused value).
ChangeFn = Callable[[Mapping[str, Any]], dict[str, Any]]


def _today() -> dt.date:
    return dt.datetime.now().astimezone().date()


def plan_loader(person: str | None, path: Path | None = None) -> DocFn:
    """The person's plan document from the store, on each call."""

    def load() -> dict[str, Any]:
        from biofeedback.paths import store_path
        from biofeedback.programme.person import plan_state, plan_to_json
        from biofeedback.store import Store

        with Store(path or store_path()) as store:
            return plan_to_json(plan_state(store, person), person, _today())

    return load


def plan_changer(person: str | None, path: Path | None = None) -> ChangeFn:
    """Change the person's plan from now on; returns the new document."""

    def change(values: Mapping[str, Any]) -> dict[str, Any]:
        from biofeedback.paths import store_path
        from biofeedback.programme.person import change_plan, plan_to_json
        from biofeedback.store import Store

        with Store(path or store_path()) as store:
            return plan_to_json(change_plan(store, person, values), person, _today())

    return change


def today_text(doc: dict[str, Any]) -> str:
    """Today's session in words (as ``plan`` prints it)."""
    t = doc["today"]
    return (f"Today: {t['position']}, {t['reps']} reps, breathe in {t['inhale_s']:g} s / "
            f"out {t['exhale_s']:g} s. Done today {t['done_today']}; this week "
            f"{t['this_week']['done']} of {t['this_week']['target']}.")


def next_text(doc: dict[str, Any]) -> str:
    """What comes next in words."""
    nxt = doc["next"]
    if nxt is None:
        return "Next: the plan is at its last step; keep practising."
    return (f"Next: {ACTION_WORDS.get(nxt['action'], nxt['action'])} after {nxt['why']} "
            f"({nxt['met']} of {nxt['needed']} so far)")


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.verticalHeader().setVisible(False)
    head = t.horizontalHeader()
    for c in range(len(headers) - 1):
        head.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
    head.setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.Stretch)
    return t


class PlanView(QWidget):
    """The Plan screen.

    Parameters
    ----------
    load : callable, optional
        ``() -> document`` (:func:`plan_loader`); :meth:`reload` calls it.
    change : callable, optional
        ``(values) -> document`` (:func:`plan_changer`); without it the plan is read-only.
    """

    def __init__(self, load: DocFn | None = None, change: ChangeFn | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._load, self._change = load, change
        self.doc: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        self.heading = QLabel("<h2>Plan</h2>")
        self.today_label = QLabel()
        self.today_label.setStyleSheet("font-size: 15px; font-weight: bold")
        self.next_label = QLabel()
        self.next_label.setWordWrap(True)
        self.rules = _table(["how far", "rule", "why it would be taken"])
        self.steps = _table(["date", "what changed", "why it was taken"])
        for w in (self.heading, self.today_label, self.next_label, QLabel("Rules, each on "
                  "its own count of sessions:"), self.rules, QLabel("Steps so far:"),
                  self.steps):
            lay.addWidget(w)
        lay.addWidget(self._build_form())
        lay.addWidget(QLabel("Stop if anything hurts; never push."))

    def _build_form(self) -> QGroupBox:
        box = QGroupBox("Change the plan from now on")
        form = QFormLayout(box)
        self.position = QComboBox()
        self.position.addItems(list(POSITIONS))
        self.reps = QSpinBox()
        self.per_week = QSpinBox()
        self.inhale = QDoubleSpinBox()
        self.exhale = QDoubleSpinBox()
        for key, spin in (("reps", self.reps), ("per_week", self.per_week),
                          ("inhale_s", self.inhale), ("exhale_s", self.exhale)):
            lo, hi = LIMITS[key]
            spin.setRange(lo, hi)  # type: ignore[arg-type]
            if isinstance(spin, QDoubleSpinBox):
                spin.setSingleStep(0.5)
                spin.setDecimals(1)
        self.apply_button = QPushButton("Change")
        self.apply_button.clicked.connect(self.apply_change)
        self.apply_button.setEnabled(self._change is not None)
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.apply_button)
        row.addWidget(self.status, 1)
        for label, w in (("position", self.position), ("reps", self.reps),
                         ("breathe in (s)", self.inhale), ("breathe out (s)", self.exhale),
                         ("sessions a week", self.per_week)):
            form.addRow(label, w)
        form.addRow(row)
        return box

    def reload(self) -> None:
        """Read the document again (when the screen is shown); a store or plan file
        that cannot be read is said on the screen."""
        if self._load is None:
            return
        try:
            doc = self._load()
        except InputError as exc:
            self.heading.setText(f"<h2>Plan</h2>{html.escape(str(exc))}")
            return
        self.show_doc(doc)

    def show_doc(self, doc: dict[str, Any]) -> None:
        """Draw a ``plan --json`` document and set the form to today's session."""
        self.doc = doc
        who = doc["person"] or "default"
        self.heading.setText(f"<h2>Plan '{doc['plan']['name']}' for {who}</h2>"
                             f"{doc['sessions_counted']} sessions so far")
        self.today_label.setText(today_text(doc))
        self.next_label.setText(next_text(doc))
        self._fill_rules(doc["progress"])
        self._fill_steps(doc["steps"])
        t = doc["today"]
        self.position.setCurrentText(t["position"])
        self.reps.setValue(int(t["reps"]))
        self.per_week.setValue(int(t["per_week"]))
        self.inhale.setValue(float(t["inhale_s"]))
        self.exhale.setValue(float(t["exhale_s"]))

    def _fill_rules(self, rules: list[dict[str, Any]]) -> None:
        self.rules.setRowCount(len(rules))
        for i, r in enumerate(rules):
            bar = QProgressBar()
            bar.setRange(0, int(r["needed"]))
            bar.setValue(min(int(r["met"]), int(r["needed"])))
            bar.setFormat(f"{r['met']} of {r['needed']}")
            self.rules.setCellWidget(i, 0, bar)
            what = ACTION_WORDS.get(r["action"], r["action"])
            if not r["possible"]:
                what += " (not possible now)"
            self.rules.setItem(i, 1, QTableWidgetItem(what))
            self.rules.setItem(i, 2, QTableWidgetItem(r["why"]))

    def _fill_steps(self, steps: list[dict[str, Any]]) -> None:
        self.steps.setRowCount(len(steps))
        for i, s in enumerate(reversed(steps)):  # the latest first
            day = dt.datetime.fromisoformat(s["at"]).astimezone().strftime("%Y-%m-%d")
            what = ", ".join(f"{k} {v}" for k, v in s["changed"].items()) or "count restarted"
            if s["session_id"] is not None:
                what += f" (after session {s['session_id']})"
            for c, text in enumerate((day, what, s["why"])):
                self.steps.setItem(i, c, QTableWidgetItem(text))

    def form_values(self) -> dict[str, Any]:
        """The form's settings that differ from today's session."""
        if self.doc is None:
            return {}
        t = self.doc["today"]
        now = {"position": self.position.currentText(), "reps": self.reps.value(),
               "inhale_s": round(self.inhale.value(), 1),
               "exhale_s": round(self.exhale.value(), 1), "per_week": self.per_week.value()}
        return {k: v for k, v in now.items() if v != t[k]}

    def apply_change(self) -> None:
        """Change the plan as the form says (the same change ``plan`` makes)."""
        values = self.form_values()
        if self._change is None:
            return
        if not values:
            self.status.setText("Nothing to change: the form is today's session.")
            return
        try:
            doc = self._change(values)
        except InputError as exc:
            self.status.setText(f"Not changed: {exc}")
            return
        self.show_doc(doc)
        self.status.setText("Changed from now on: " + ", ".join(f"{k} {v}"
                                                                for k, v in values.items()))
