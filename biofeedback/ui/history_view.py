"""The Progress screen: a person's weeks at a glance, as ``biofeedback progress`` gives them.

It draws the ``progress --json`` document
(:func:`~biofeedback.programme.person.progress_for` ``.to_json()``) and
computes nothing of its own: adherence (sessions per calendar week against
the plan's target, the streak), then one small trend per figure -- resting
tone and its variability, drop depth, time back to rest after a contraction,
strain, score, pain before and after -- each with the period's change (first
week to last) and the slope per week. A figure that cannot be computed says
why; rise and recovery times carry the reliability caveat (trends, not verdicts).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from devices.errors import InputError

__all__ = ["ADHERENCE_COLOUR", "PERIODS", "TREND_COLOUR", "DocFn", "ProgressView", "TrendCard",
           "change_text", "num", "progress_loader"]

#: ``(since) -> the progress --json document`` (``since``: ``8w``, ``30d``, a date).
DocFn = Callable[[str], dict[str, Any]]

#: The periods the screen offers (``progress --since``); the first is shown first.
PERIODS = ("8w", "4w", "12w", "26w", "52w")

# Okabe-Ito blue and sky: colour-blind safe; every colour also has words.
TREND_COLOUR = "#0072B2"
ADHERENCE_COLOUR = "#56B4E9"
TARGET_COLOUR = "#D55E00"
_BG, _FG = "#FBFBF8", "#2B2B2B"


def progress_loader(person: str | None, path: Path | None = None) -> DocFn:
    """What the screen shows: the person's progress since ``since``, from the store."""

    def load(since: str) -> dict[str, Any]:
        from biofeedback.paths import store_path
        from biofeedback.programme.person import progress_for
        from biofeedback.store import Store

        with Store(path or store_path()) as store:
            return progress_for(store, person, since, dt.datetime.now(dt.UTC)).to_json()

    return load


def num(x: float | None, nd: int = 2, sign: bool = False) -> str:
    """A figure as the screen (and ``progress``) writes it; ``-`` when missing."""
    if x is None:
        return "-"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def change_text(t: dict[str, Any]) -> str:
    """The period's change of one trend of the document, in words."""
    if not t["n"]:
        return f"cannot be computed: {t['note']}"
    pct = f" ({num(t['change_pct'], 0, True)} %)" if t["change_pct"] is not None else ""
    slope = (f"; {num(t['slope_per_week'], 2, True)} a week"
             if t["slope_per_week"] is not None else "")
    return (f"first week {num(t['first_week'])} → last week {num(t['last_week'])}: "
            f"{num(t['change'], 2, True)}{pct}{slope}")


def _plot(height: int = 120) -> pg.PlotWidget:
    w = pg.PlotWidget(background=_BG, axisItems={"bottom": pg.DateAxisItem()})
    item = w.getPlotItem()
    item.setMouseEnabled(False, False)
    item.setMenuEnabled(False)
    item.hideButtons()
    for name in ("left", "bottom"):
        item.getAxis(name).setPen(pg.mkPen(_FG))
        item.getAxis(name).setTextPen(pg.mkPen(_FG))
    w.setMinimumHeight(height)
    return w


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


class TrendCard(QWidget):
    """One figure: its name and unit, the period's change in words, and its trend."""

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold")
        self.change = QLabel()
        self.change.setWordWrap(True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #52606d; font-size: 10px")
        self.plot = _plot()
        self.curve = self.plot.plot([], [], pen=pg.mkPen(TREND_COLOUR, width=2),
                                    symbol="o", symbolSize=5, symbolBrush=TREND_COLOUR,
                                    symbolPen=None)
        for w in (self.title, self.change, self.plot, self.note):
            lay.addWidget(w)
        self.xs = np.zeros(0)
        self.ys = np.zeros(0)

    def show_trend(self, t: dict[str, Any], unit: str | None) -> None:
        """Draw one trend of the ``progress --json`` document."""
        u = (unit or "") if t["unit"] == "pressure" else t["unit"]
        self.title.setText(f"{t['label']} ({u})" if u else t["label"])
        self.change.setText(change_text(t))
        self.note.setText(t["caveat"] or (t["note"] if t["n"] else "") or "")
        self.note.setVisible(bool(self.note.text()))
        pts = [p for p in t["points"] if p["value"] is not None]
        self.xs = np.array([_epoch(p["date"]) for p in pts], dtype=float)
        self.ys = np.array([p["value"] for p in pts], dtype=float)
        self.curve.setData(self.xs, self.ys)
        self.plot.setVisible(bool(pts))
        if pts:
            self.plot.getPlotItem().enableAutoRange()


class ProgressView(QWidget):
    """The Progress screen.

    Parameters
    ----------
    load : callable, optional
        ``(since) -> document`` (:func:`progress_loader`); :meth:`reload` calls it
        with the period chosen on the screen.
    """

    COLUMNS = 4

    def __init__(self, load: DocFn | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._load = load
        self.doc: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        self.heading = QLabel("<h2>Progress</h2>")
        self.adherence_label = QLabel()
        self.adherence_label.setWordWrap(True)
        self.adherence_plot = _plot(110)
        self.adherence_plot.getPlotItem().setAxisItems({"bottom": pg.AxisItem("bottom")})
        self.adherence_plot.getPlotItem().setLabel("left", "sessions", color=_FG)
        self.bars: pg.BarGraphItem | None = None
        self.target_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(TARGET_COLOUR, width=2,
                                                                 style=Qt.PenStyle.DashLine))
        self.adherence_plot.addItem(self.target_line)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        grid = QGridLayout()
        from biofeedback.programme.progress import FIGURES

        self.cards: dict[str, TrendCard] = {}
        for i, key in enumerate(FIGURES):
            card = TrendCard(key)
            self.cards[key] = card
            grid.addWidget(card, i // self.COLUMNS, i % self.COLUMNS)
        self.period = QComboBox()
        self.period.addItems(list(PERIODS))
        self.period.setToolTip("The period, as progress --since takes it: weeks back from today")
        self.period.currentTextChanged.connect(lambda _text: self.reload())
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(QLabel("period"))
        top.addWidget(self.period)
        lay.addLayout(top)
        for w in (self.adherence_label, self.adherence_plot):
            lay.addWidget(w)
        lay.addLayout(grid, 1)
        lay.addWidget(self.notes_label)

    def reload(self) -> None:
        """Read the document again (when the screen is shown); a store or plan file
        that cannot be read is said on the screen."""
        if self._load is None:
            return
        try:
            doc = self._load(self.period.currentText())
        except InputError as exc:
            self.heading.setText(f"<h2>Progress</h2>{html.escape(str(exc))}")
            return
        self.show_doc(doc)

    def show_doc(self, doc: dict[str, Any]) -> None:
        """Draw a ``progress --json`` document."""
        self.doc = doc
        a = doc["adherence"]
        who = doc["person"] or "default"
        self.heading.setText(f"<h2>Progress of {who} since {doc['since'][:10]}</h2>")
        self._adherence(a)
        for key, card in self.cards.items():
            card.show_trend(doc["trends"][key], doc["pressure_unit"])
        notes = [(s["started_at"][:10], n) for s in doc["sessions"] for n in s["notes"]]
        self.notes_label.setText("Notes: " + "; ".join(f"{d} “{n}”" for d, n in notes[-4:])
                             if notes else "")

    def _adherence(self, a: dict[str, Any]) -> None:
        if self.bars is not None:
            self.adherence_plot.removeItem(self.bars)
            self.bars = None
        if not a["sessions"]:
            self.adherence_label.setText("No practice sessions in this period (finished "
                                         "sessions with reps count).")
            self.adherence_plot.setVisible(False)
            return
        st = a["streak_days"]
        self.adherence_label.setText(
            f"Adherence: {a['per_week']:.1f} sessions a week of {a['target_per_week']} planned "
            f"({a['of_target_pct']:.0f} %); streak {st['current']} days (longest "
            f"{st['longest']}). Bars: sessions each week; dashed line: the plan's target.")
        weeks = a["weeks"]
        height = [w["sessions"] for w in weeks]
        self.bars = pg.BarGraphItem(x=np.arange(len(weeks)), height=height, width=0.7,
                                    brush=ADHERENCE_COLOUR, pen=pg.mkPen(None))
        self.adherence_plot.addItem(self.bars)
        self.target_line.setValue(a["target_per_week"])
        ticks = [(i, w["week_start"][5:]) for i, w in enumerate(weeks)]
        self.adherence_plot.getPlotItem().getAxis("bottom").setTicks([ticks])
        top = max([*height, a["target_per_week"]]) + 1
        self.adherence_plot.getPlotItem().setRange(xRange=(-0.6, len(weeks) - 0.4),
                                                   yRange=(0, top), padding=0)
        self.adherence_plot.setVisible(True)
