"""The past-sessions screen: the sessions with their scores, the score trend, a replay button."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from biofeedback.ui.plots import Plot
from biofeedback.ui.theme import OKABE_ITO
from biofeedback.ui.words import fmt_clock

__all__ = ["HistoryView", "SessionHistory", "SessionRecord", "SessionsFn", "history_rows"]

log = logging.getLogger(__name__)


SessionsFn = Callable[[], Sequence[Mapping[str, Any]]]


class SessionRecord(Protocol):
    """A past session as the History screen reads it (a store ``SessionInfo``)."""

    def to_json(self) -> dict[str, Any]: ...


class SessionHistory(Protocol):
    """What the History screen needs of the store (``biofeedback.store.Store``)."""

    def sessions(self) -> Sequence[SessionRecord]: ...


def history_rows(history: SessionHistory) -> list[Mapping[str, Any]]:
    """The past sessions of ``history``, oldest first, as ``sessions --json`` records."""
    return [r.to_json() for r in history.sessions()]


def _store_sessions() -> list[Mapping[str, Any]]:
    """Past sessions from the store (empty when the store does not exist yet)."""
    from biofeedback.paths import store_path

    path = store_path()
    if not path.exists():
        return []
    from biofeedback.store import Store

    with Store(path) as store:
        return history_rows(store)


class HistoryView(QWidget):
    """Past sessions with their scores, the score trend, and a replay button."""

    replay_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, sessions_fn: SessionsFn | None = None
                 ) -> None:
        super().__init__(parent)
        self._sessions_fn = sessions_fn or _store_sessions
        self.rows: list[Mapping[str, Any]] = []
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<h2>History</h2>Short daily sessions beat long ones; "
                             "the trend over weeks is what counts."))
        self.trend = Plot(y_label="score", x_label="session")
        self.trend.getAxis("bottom").setStyle(showValues=True)
        self.trend.setMinimumHeight(160)
        self.trend_curve = pg.PlotDataItem(
            pen=pg.mkPen(OKABE_ITO["blue"], width=2), symbol="o", symbolSize=8,
            symbolBrush=OKABE_ITO["blue"], antialias=True,
        )
        self.trend.addItem(self.trend_curve)
        lay.addWidget(self.trend, 2)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Started", "Duration", "Reps", "Score",
                                              "Complete", "Id"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table, 3)
        self.empty_label = QLabel("No sessions yet. Your sessions appear here after you train.")
        lay.addWidget(self.empty_label)
        row = QHBoxLayout()
        self.reload_button = QPushButton("Reload")
        self.replay_button = QPushButton("Replay selected")
        self.replay_button.setEnabled(False)
        row.addWidget(self.reload_button)
        row.addWidget(self.replay_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.reload_button.clicked.connect(lambda: self.reload())
        self.replay_button.clicked.connect(self._replay)
        self.table.itemSelectionChanged.connect(
            lambda: self.replay_button.setEnabled(bool(self.table.selectedItems()))
        )

    def reload(self) -> int:
        """Read the sessions again; returns how many there are."""
        try:
            rows = list(self._sessions_fn())
        except Exception as exc:  # a store another version wrote must not break the window
            log.warning("cannot read the sessions: %s", exc)
            rows = []
        rows.sort(key=lambda r: str(r.get("started_at") or ""))
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            score = r.get("score")
            cells = [
                str(r.get("started_at") or "")[:16].replace("T", " "),
                fmt_clock(float(r.get("duration_s") or 0.0)),
                str(r.get("reps") if r.get("reps") is not None else "-"),
                "-" if score is None else f"{float(score):.0f}",
                "yes" if r.get("complete") else "no",
                str(r.get("id")),
            ]
            for col, text in enumerate(cells):
                self.table.setItem(i, col, QTableWidgetItem(text))
        scores = [(i + 1, float(r["score"])) for i, r in enumerate(rows)
                  if r.get("score") is not None]
        if scores:
            xs, ys = zip(*scores, strict=True)
            self.trend_curve.setData(list(xs), list(ys))
            self.trend.getPlotItem().setXRange(0.5, len(rows) + 0.5, padding=0)
            step = max(1, math.ceil(len(rows) / 10))
            self.trend.getAxis("bottom").setTickSpacing(step, step)  # whole sessions
            self.trend.ensure_y(0.0, 100.0)
        else:
            self.trend_curve.setData([], [])
        self.empty_label.setVisible(not rows)
        return len(rows)

    def _replay(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            self.replay_requested.emit(self.rows[min(rows)].get("id"))
