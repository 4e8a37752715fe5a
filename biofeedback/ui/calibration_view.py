"""The Calibration screen: guided steps with a countdown over the live traces.

The calibration runner drives it (:meth:`CalibrationView.show_step`,
:meth:`CalibrationView.set_segment`); the window's frame timer redraws it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from biofeedback.signal.types import FloatArray
from biofeedback.ui.model import LiveModel
from biofeedback.ui.plots import Plot, peak_decimate
from biofeedback.ui.theme import FOREGROUND, OKABE_ITO, darker, qcolor, set_text

__all__ = ["CALIBRATION_FPS", "SEGMENT_ALPHA", "SEGMENT_TEXT", "CalibrationView"]

#: What a calibration step measures (the words on its highlighted segment) and its colour.
SEGMENT_TEXT: dict[str, tuple[str, str]] = {
    "ready": ("getting ready - not measured", "#9A9A9A"),
    "rest": ("measuring your resting tone", OKABE_ITO["sky"]),
    "pre-baseline": ("measuring your resting tone", OKABE_ITO["sky"]),
    "post-baseline": ("measuring your resting tone again", OKABE_ITO["sky"]),
    "squeeze": ("measuring your squeeze", OKABE_ITO["orange"]),
    "flick": ("measuring a quick squeeze", OKABE_ITO["orange"]),
    "hold": ("measuring a held squeeze", OKABE_ITO["orange"]),
    "endurance": ("measuring how long a squeeze holds", OKABE_ITO["orange"]),
    "relax": ("measuring how you let go", "#9A9A9A"),
    "drop": ("measuring the drop on the inhale", OKABE_ITO["green"]),
    "recover": ("measuring the exhale", "#9A9A9A"),
    "breathe": ("measuring your natural breathing", OKABE_ITO["blue"]),
}
#: Redraws per second of the calibration screen (its countdown moves once a second).
CALIBRATION_FPS = 20.0
#: Opacity of the highlighted segment (0..255).
SEGMENT_ALPHA = 60


@dataclass(frozen=True)
class _Traces:
    """Which streams the calibration screen draws."""

    model: LiveModel
    pressure: str
    channel: int
    breath: str | None


class CalibrationView(QWidget):
    """Guided calibration steps: a step name, a prompt, a countdown, and the live traces.

    The calibration runner drives it with :meth:`show_step` (call it as time
    passes, e.g. on every chunk or every second) and :meth:`set_segment` at
    each step; :meth:`set_traces` hands it the live model, whose pressure and
    breath it draws under the countdown with the step being measured
    highlighted (the window's frame timer calls :meth:`refresh`).

    Parameters
    ----------
    window_s, ahead_s : float
        Seconds of history shown, and of the step's remaining time ahead of now.
    """

    calibrate_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, window_s: float = 30.0,
                 ahead_s: float = 12.0) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.ahead_s = ahead_s
        self.traces: _Traces | None = None
        self.segment: tuple[str, float, float] | None = None
        self._drawn: tuple[int, tuple[str, float, float] | None] | None = None
        self._drawn_at = -math.inf
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<h2>Calibration</h2>A few guided steps: rest, breathe, "
                             "a gentle squeeze, a gentle drop. Stop if anything hurts."))
        top = QHBoxLayout()
        words = QVBoxLayout()
        self.name_label = QLabel("Not started")
        self.name_label.setStyleSheet("font-size: 22px; font-weight: bold;")
        self.prompt_label = QLabel("Press start when you are lying or sitting comfortably.")
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setStyleSheet("font-size: 18px;")
        words.addWidget(self.name_label)
        words.addWidget(self.prompt_label)
        top.addLayout(words, 1)
        self.countdown_label = QLabel("")
        self.countdown_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.countdown_label.setMinimumWidth(150)
        self.countdown_label.setStyleSheet("font-size: 72px; font-weight: bold; color: #0072B2;")
        top.addWidget(self.countdown_label)
        lay.addLayout(top)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        lay.addWidget(self.progress)
        self.pressure_plot = Plot(y_label="pelvic pressure")
        self.breath_plot = Plot(y_label="breath (in = up)", x_label="seconds (0 = now)")
        self.breath_plot.getPlotItem().getViewBox().setXLink(self.pressure_plot.getPlotItem())
        self.regions: list[pg.LinearRegionItem] = []
        for plot in (self.pressure_plot, self.breath_plot):
            plot.setMinimumHeight(120)
            plot.getPlotItem().setXRange(-window_s, ahead_s, padding=0)
            plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#9A9A9A", width=1)))
            region = pg.LinearRegionItem(values=(0.0, 1.0), orientation="vertical",
                                         movable=False, pen=pg.mkPen(None))
            region.setZValue(-10)
            region.setVisible(False)
            plot.addItem(region)
            self.regions.append(region)
        # Thin solid pens without antialiasing: Qt's fast path (this screen shares the
        # event loop with the sensors it draws).
        self.pressure_curve = pg.PlotDataItem(pen=pg.mkPen(FOREGROUND, width=1))
        self.breath_curve = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["blue"], width=1))
        self.pressure_plot.addItem(self.pressure_curve)
        self.breath_plot.addItem(self.breath_curve)
        self.segment_label = pg.TextItem("", color=FOREGROUND, anchor=(0, 0))
        self.segment_label.setZValue(5)
        self.pressure_plot.addItem(self.segment_label)
        self.no_breath_text = pg.TextItem("no breath sensor: the probe's own ripple is used",
                                          color=FOREGROUND, anchor=(0.5, 0.5))
        self.no_breath_text.setPos(-window_s / 2, 0.0)
        self.no_breath_text.setVisible(False)
        self.breath_plot.addItem(self.no_breath_text)
        lay.addWidget(self.pressure_plot, 3)
        lay.addWidget(self.breath_plot, 2)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        lay.addWidget(self.message_label)
        row = QHBoxLayout()
        self.quick_button = QPushButton("Quick calibration")
        self.assess_button = QPushButton("Assessment")
        self.quick_button.clicked.connect(lambda: self.calibrate_requested.emit("quick"))
        self.assess_button.clicked.connect(lambda: self.calibrate_requested.emit("assessment"))
        row.addWidget(self.quick_button)
        row.addWidget(self.assess_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.offer(())
        self._total: float | None = None

    def offer(self, plans: Sequence[str]) -> None:
        """Enable the buttons of the calibrations this run can start (none: both disabled)."""
        for plan, button in (("quick", self.quick_button), ("assessment", self.assess_button)):
            button.setEnabled(plan in plans)
            button.setToolTip("" if plan in plans else
                              "Run 'biofeedback calibrate' to calibrate (the demo offers it too).")

    def show_step(
        self, prompt: str, seconds_left: float, *, name: str | None = None,
        total_s: float | None = None,
    ) -> None:
        """Show a step's prompt and its countdown (``name`` and ``total_s`` optional)."""
        if name is not None:
            set_text(self.name_label, name)
        if total_s is not None:
            self._total = total_s
        elif self._total is None or seconds_left > self._total:
            self._total = seconds_left
        set_text(self.prompt_label, prompt)
        left = max(0.0, seconds_left)
        set_text(self.countdown_label, str(math.ceil(left - 1e-9)))
        total = self._total or 0.0
        frac = 1.0 - left / total if total > 0 else 1.0
        self.progress.setValue(round(1000 * min(max(frac, 0.0), 1.0)))

    def next_step(self) -> None:
        """Forget the current step's length (the next :meth:`show_step` starts a new bar)."""
        self._total = None

    def show_message(self, text: str) -> None:
        """A result or a reason to repeat a step."""
        set_text(self.message_label, text)

    # ------------------------------------------------------------------ traces
    def set_traces(
        self, model: LiveModel | None, pressure: str = "", *, channel: int = 0,
        breath: str | None = None,
    ) -> None:
        """Draw ``model``'s ``pressure`` stream (its ``channel``) and ``breath`` stream."""
        self.traces = None if model is None else _Traces(model, pressure, channel, breath)
        self._drawn = None
        self.no_breath_text.setVisible(model is not None and breath is None)
        if model is None:
            self.pressure_curve.setData([], [])
            self.breath_curve.setData([], [])

    def set_segment(self, kind: str, t_start: float, t_end: float) -> None:
        """The step now measured: ``kind`` (a calibration step kind) over ``t_start..t_end``."""
        self.segment = (kind, t_start, t_end)
        text, colour = SEGMENT_TEXT.get(kind, (kind, "#9A9A9A"))
        for region in self.regions:
            region.setBrush(pg.mkBrush(qcolor(colour, SEGMENT_ALPHA)))
            region.setVisible(True)
        self.segment_label.setText(text)
        self.segment_label.setColor(darker(colour))

    def refresh(self) -> None:
        """Redraw the traces and the highlighted segment (called by the window's frame timer)."""
        tr = self.traces
        if tr is None:
            return
        # Redraw only on new data or a new step: the frame timer shares the GUI thread
        # (and, through qasync, the event loop) with the sensors it draws.
        key = (tr.model.version, self.segment)
        wall = time.perf_counter()
        if key == self._drawn:
            return
        new_step = self._drawn is None or self._drawn[1] != self.segment
        if not new_step and wall - self._drawn_at < 1.0 / CALIBRATION_FPS:
            return  # new data only: at most CALIBRATION_FPS redraws; a new step at once
        self._drawn, self._drawn_at = key, wall
        now = tr.model.now()
        # About one point per four pixels (a min/max pair per bin): every peak stays
        # visible, and a stroke costs per segment.
        width = max(100, self.pressure_plot.width() // 2)
        t, v = tr.model.raw(tr.pressure, self.window_s + 1.0)
        col = v[:, min(tr.channel, v.shape[1] - 1)] if v.size else np.zeros(0)
        self._draw(self.pressure_plot, self.pressure_curve, t - now, col, width)
        if tr.breath is not None:
            bt, bv = tr.model.raw(tr.breath, self.window_s + 1.0)
            if bv.size:
                bcol = bv[:, int(np.argmax(np.ptp(bv, axis=0)))]  # e.g. a chest strap's axis
                self._draw(self.breath_plot, self.breath_curve, bt - now, bcol, width)
        if self.segment is not None:
            _, a, b = self.segment
            for region in self.regions:
                region.setRegion((a - now, b - now))
            yr = self.pressure_plot.y_range
            if yr is not None:
                x = min(max(a - now, -self.window_s), self.ahead_s - 4.0)
                self.segment_label.setPos(x + 0.2, yr[1])

    @staticmethod
    def _draw(plot: Plot, curve: pg.PlotDataItem, x: FloatArray, y: FloatArray,
              width: int) -> None:
        xd, yd = peak_decimate(x, y, width)
        curve.setData(xd, yd)
        fin = yd[np.isfinite(yd)]
        if fin.size:
            lo, hi = float(fin.min()), float(fin.max())
            plot.ensure_y(lo, hi if hi > lo else lo + 1.0)
