"""The session window: live pelvic and breath graphs, pacer, status; pairing, calibration, history.

pyqtgraph on Qt (PySide6), joined to asyncio by ``qasync``: the session runs
as coroutines on the same thread as the GUI, so every Qt object here is
touched from the GUI thread only. One :class:`~PySide6.QtCore.QTimer` (about
60 per second) drives every redraw by reading the :class:`LiveModel`; curves
are made once and updated with ``setData`` on the samples of the visible
window only (the model's slice is the clip-to-view; raw high-rate streams are
peak-decimated to the pixel width). Nothing is drawn per sample.

Colours are the Okabe-Ito colour-blind-safe palette, and every colour comes
with words (band labels, the state label, the link status), never colour alone.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QCloseEvent,
    QColor,
    QFont,
    QPainter,
    QPaintEvent,
    QPen,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from biofeedback.paths import data_dir
from biofeedback.signal.types import FloatArray, Quality
from biofeedback.ui.model import (
    STATE_TEXT,
    LinkStatus,
    LiveModel,
    Snapshot,
    Zones,
    fmt_ago,
    fmt_clock,
)
from devices.clock import Clock
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "BACKGROUND",
    "BAND_ALPHA",
    "OKABE_ITO",
    "SEGMENT_TEXT",
    "STATE_COLOURS",
    "CalibrationView",
    "FrameStats",
    "HistoryView",
    "PacerWidget",
    "PairingView",
    "SafetyNote",
    "SessionView",
    "SessionWindow",
    "dismiss_safety_note",
    "peak_decimate",
    "safety_note_dismissed",
    "thin_by_time",
]

log = logging.getLogger(__name__)

#: Okabe & Ito (2008), "Color Universal Design": safe for the common colour-vision deficiencies.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
BACKGROUND = "#FBFBF8"
FOREGROUND = "#2B2B2B"
REST_LINE = "#5A5A5A"

#: Colour of each pelvic state (curve, band, label).
STATE_COLOURS: dict[PelvicState, str] = {
    PelvicState.UNKNOWN: "#9A9A9A",
    PelvicState.DROP: OKABE_ITO["green"],
    PelvicState.REST: OKABE_ITO["sky"],
    PelvicState.CONTRACTION: OKABE_ITO["orange"],
    PelvicState.STRAIN: OKABE_ITO["vermillion"],
}
#: Curve colour per state (rest's band is light sky blue; its trace is a quiet grey).
CURVE_COLOURS: dict[PelvicState, str] = {**STATE_COLOURS, PelvicState.REST: REST_LINE}
#: Opacity of the zone bands (0..255).
BAND_ALPHA = 46

BAND_TEXT: dict[PelvicState, str] = {
    PelvicState.DROP: "drop - the goal",
    PelvicState.REST: "rest",
    PelvicState.CONTRACTION: "squeeze",
    PelvicState.STRAIN: "strain - no pushing",
}
#: The label of the rise band when contraction and strain share one margin.
MERGED_RISE_TEXT = "squeeze or strain - let go"

QUALITY_TEXT: dict[Quality, str] = {
    Quality.OK: "good",
    Quality.NOISY: "noisy",
    Quality.FLAT: "flat - is the sensor on?",
    Quality.CLIPPED: "at its limit",
    Quality.PROBE_MOVED: "probe moved - re-seat it gently",
}

SAFETY_TEXT = (
    "<b>About this exercise.</b> Reverse Kegel (pelvic-floor drop) training: breathe slowly "
    "into your belly; as you breathe in, let the pelvic floor soften and drop; as you breathe "
    "out, keep it soft. Never push or bear down. Lie with knees bent, or sit.<br>"
    "<b>Ask a clinician first</b> (a pelvic-health physiotherapist or your doctor) if you are "
    "pregnant or have recently given birth, have had pelvic or abdominal surgery, have pelvic "
    "pain that has not been assessed, a prolapse, or unexplained bleeding.<br>"
    "<b>Stop if anything hurts.</b> This is training feedback, not a diagnosis."
)

_UI_STATE = "ui.json"


def _ui_state_path() -> Path:
    return data_dir() / _UI_STATE


def safety_note_dismissed() -> bool:
    """Whether the first-run safety note was dismissed (remembered in the data dir)."""
    try:
        state = json.loads(_ui_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(state, dict) and state.get("safety_note_dismissed"))


def dismiss_safety_note() -> None:
    """Remember that the safety note was read (owner-only file)."""
    path = _ui_state_path()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            state = {}
    except (OSError, ValueError):
        state = {}
    state["safety_note_dismissed"] = True
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", opener=_owner_only) as f:
            json.dump(state, f)
        tmp.replace(path)
    except OSError as exc:  # a read-only home: the note just shows again next time
        log.warning("cannot remember the safety note: %s", exc)


def _owner_only(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)


def peak_decimate(
    x: FloatArray, y: FloatArray, max_points: int
) -> tuple[FloatArray, FloatArray]:
    """Min/max decimation to at most ``max_points`` points (keeps every peak visible).

    Always returns new arrays.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Increasing x and the values.
    max_points : int
        Points wanted (an even number is best: each bin gives its max and min).
    """
    n = int(x.shape[0])
    bins = max(1, max_points // 2)
    if n <= max_points or n < 4:
        # Copies: the inputs may be views into a ring that the next chunk overwrites.
        return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    per = math.ceil(n / bins)
    m = n // per
    cut = m * per
    yb = y[n - cut :].reshape(m, per)
    xb = x[n - cut :].reshape(m, per)
    out_x = np.empty(2 * m)
    out_y = np.empty(2 * m)
    out_x[0::2] = xb[:, 0]
    out_x[1::2] = xb[:, -1]
    out_y[0::2] = np.nanmax(yb, axis=1) if np.isnan(yb).any() else yb.max(axis=1)
    out_y[1::2] = np.nanmin(yb, axis=1) if np.isnan(yb).any() else yb.min(axis=1)
    return out_x, out_y


def thin_by_time(t: FloatArray, bin_s: float) -> npt.NDArray[np.intp]:
    """Indices of the first sample in each ``bin_s`` of absolute time, plus the last sample.

    Bins are fixed in time (not in the window), so the kept samples stay the
    same as the window scrolls: the curve does not shimmer.
    """
    n = int(t.shape[0])
    if n < 3 or not bin_s > 0:
        return np.arange(n)
    b = np.floor(t / bin_s)
    keep = np.empty(n, dtype=bool)
    keep[0] = True
    np.not_equal(b[1:], b[:-1], out=keep[1:])
    keep[-1] = True
    return np.flatnonzero(keep)


def _qcolor(hex_colour: str, alpha: int = 255) -> QColor:
    c = QColor(hex_colour)
    c.setAlpha(alpha)
    return c


def _set_text(label: QLabel, text: str) -> None:
    """Set a label's text only when it changed (no relayout per frame)."""
    if label.text() != text:
        label.setText(text)


@dataclass
class FrameStats:
    """What the frame timer measured (for tests and the benchmark)."""

    frames: int = 0
    paints: int = 0
    work_s: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    paint_times: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=5000))

    def fps(self, span_s: float = 2.0) -> float:
        """Paints per second over the last ``span_s`` seconds of paints."""
        if len(self.paint_times) < 2:
            return 0.0
        end = self.paint_times[-1]
        recent = [p for p in self.paint_times if p >= end - span_s]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


class _Plot(pg.PlotWidget):
    """A calm, non-interactive plot that reports when it reached the screen."""

    def __init__(self, parent: QWidget | None = None, *, on_paint: Callable[[], None] | None = None,
                 y_label: str = "", x_label: str | None = None) -> None:
        super().__init__(parent=parent, background=BACKGROUND)
        self._on_paint = on_paint
        item = self.getPlotItem()
        item.setMouseEnabled(False, False)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.disableAutoRange()
        for name in ("left", "bottom"):
            ax = item.getAxis(name)
            ax.setPen(pg.mkPen(FOREGROUND))
            ax.setTextPen(pg.mkPen(FOREGROUND))
        if y_label:
            item.setLabel("left", y_label, color=FOREGROUND)
        if x_label:
            item.setLabel("bottom", x_label, color=FOREGROUND)
        else:
            item.getAxis("bottom").setStyle(showValues=False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.y_range: tuple[float, float] | None = None

    def paintEvent(self, ev: QPaintEvent) -> None:
        super().paintEvent(ev)
        if self._on_paint is not None:
            self._on_paint()

    def ensure_y(self, lo: float, hi: float) -> None:
        """Keep the y range calm: change it only when the data leave it or fill it poorly."""
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            return
        cur = self.y_range
        span = hi - lo
        if cur is not None and cur[0] <= lo and cur[1] >= hi and (cur[1] - cur[0]) < 1.8 * span:
            return
        pad = 0.12 * span
        self.y_range = (lo - pad, hi + pad)
        self.getPlotItem().setYRange(lo - pad, hi + pad, padding=0)


class PacerWidget(QWidget):
    """A large, simple pacer: a circle that grows on the inhale and shrinks on the exhale."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(220, 250)
        self.level: float | None = None
        self.phase: BreathPhase | None = None
        self.words: tuple[str, str] = ("", "")
        self.left_s: float | None = None

    def set_state(
        self, level: float | None, phase: BreathPhase | None, words: tuple[str, str],
        left_s: float | None,
    ) -> None:
        """What to show; repaints only when it visibly changes."""
        secs = None if left_s is None else math.ceil(left_s - 1e-6)
        old_secs = None if self.left_s is None else math.ceil(self.left_s - 1e-6)
        same = (
            phase == self.phase and words == self.words and secs == old_secs
            and ((level is None and self.level is None)
                 or (level is not None and self.level is not None
                     and abs(level - self.level) < 0.002))
        )
        self.level, self.phase, self.words, self.left_s = level, phase, words, left_s
        if not same:
            self.update()

    def paintEvent(self, ev: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        text_h = 64
        cx, cy = w / 2, (h - text_h) / 2
        r_max = max(10.0, min(w, h - text_h) / 2 - 6)
        r_min = 0.35 * r_max
        # The outline of a full breath, so the target size is always visible.
        p.setPen(QPen(_qcolor(OKABE_ITO["blue"], 90), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QRectF(cx - r_max, cy - r_max, 2 * r_max, 2 * r_max))
        if self.level is not None:
            r = r_min + (r_max - r_min) * min(max(self.level, 0.0), 1.0)
            p.setPen(QPen(QColor(OKABE_ITO["blue"]), 3))
            p.setBrush(QBrush(_qcolor(OKABE_ITO["sky"], 120)))
            p.drawEllipse(QRectF(cx - r, cy - r, 2 * r, 2 * r))
            if self.left_s is not None:
                f = QFont(self.font())
                f.setPointSizeF(22)
                p.setFont(f)
                p.setPen(QColor(FOREGROUND))
                p.drawText(QRectF(cx - r_min, cy - r_min, 2 * r_min, 2 * r_min),
                           Qt.AlignmentFlag.AlignCenter, str(math.ceil(self.left_s - 1e-6)))
        first, second = self.words
        f = QFont(self.font())
        f.setPointSizeF(17)
        f.setBold(True)
        p.setFont(f)
        p.setPen(QColor(FOREGROUND))
        p.drawText(QRectF(0, h - text_h, w, 34), Qt.AlignmentFlag.AlignCenter, first)
        f.setBold(False)
        f.setPointSizeF(13)
        p.setFont(f)
        p.drawText(QRectF(0, h - text_h + 32, w, 28), Qt.AlignmentFlag.AlignCenter, second)
        p.end()


class SafetyNote(QFrame):
    """The first-run safety note: non-modal, dismissible, remembered once dismissed."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("safetyNote")
        self.setStyleSheet(
            "#safetyNote { background: #EEF5FB; border: 1px solid #56B4E9; border-radius: 6px; }"
        )
        lay = QHBoxLayout(self)
        self.text = QLabel(SAFETY_TEXT)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.text, 1)
        self.button = QPushButton("Got it")
        self.button.clicked.connect(self._dismiss)
        lay.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)

    def _dismiss(self) -> None:
        dismiss_safety_note()
        self.hide()
        self.dismissed.emit()


def _banner(style: str) -> QLabel:
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setStyleSheet(style)
    lab.setVisible(False)
    return lab


class SessionView(QWidget):
    """The live session: graphs, pacer, reps, score, timer, step, links, warnings, buttons.

    Parameters
    ----------
    window_s : float
        Seconds of history shown.
    ahead_s : float
        Seconds of pacer target shown ahead of now.
    """

    start_requested = Signal()
    pause_requested = Signal()
    stop_requested = Signal()

    def __init__(
        self, parent: QWidget | None = None, *, window_s: float = 30.0, ahead_s: float = 10.0,
        on_pelvic_paint: Callable[[], None] | None = None, show_safety_note: bool | None = None,
    ) -> None:
        super().__init__(parent)
        self.model: LiveModel | None = None
        self.window_s = window_s
        self.ahead_s = ahead_s
        self._zones: Zones | None = None
        self._view_w = 900
        #: The "now" of the last frame (x = 0 on the graphs).
        self.last_now: float | None = None
        self._range: tuple[float, float] | None = None
        self._range_age = 0

        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        self.safety_note = SafetyNote()
        show_note = not safety_note_dismissed() if show_safety_note is None else show_safety_note
        self.safety_note.setVisible(show_note)
        outer.addWidget(self.safety_note)

        self.strain_banner = _banner(
            "background: #D55E00; color: white; font-size: 20px; font-weight: bold; "
            "padding: 8px; border-radius: 6px;"
        )
        self.strain_banner.setText("Soften - no pushing.  Let the breath go, stop if it hurts.")
        self.link_banner = _banner(
            "background: #FBE7C2; color: #2B2B2B; font-size: 14px; padding: 6px; "
            "border: 1px solid #E69F00; border-radius: 6px;"
        )
        self.stall_banner = _banner(
            "background: #FFF6BF; color: #2B2B2B; font-size: 14px; padding: 6px; "
            "border: 1px solid #E6C700; border-radius: 6px;"
        )
        for b in (self.strain_banner, self.link_banner, self.stall_banner):
            outer.addWidget(b)

        body = QHBoxLayout()
        outer.addLayout(body, 1)

        self._build_graphs(body, window_s, ahead_s, on_pelvic_paint)
        self._build_side_panel(body)
        self._last_run_state: str | None = "?"

    def _build_graphs(
        self, body: QHBoxLayout, window_s: float, ahead_s: float,
        on_pelvic_paint: Callable[[], None] | None,
    ) -> None:
        """The breath graph (with the pacer), the pelvic graph (zones, state curves), raw box."""
        graphs = QVBoxLayout()
        body.addLayout(graphs, 1)
        self.breath_plot = _Plot(y_label="breath (in = up)")
        self.pelvic_plot = _Plot(
            on_paint=on_pelvic_paint, y_label="pelvic floor vs rest", x_label="seconds (0 = now)"
        )
        graphs.addWidget(self.breath_plot, 2)
        graphs.addWidget(self.pelvic_plot, 3)
        for plot in (self.breath_plot, self.pelvic_plot):
            plot.getPlotItem().setXRange(-window_s, ahead_s, padding=0)
            plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#9A9A9A", width=1)))
        self.breath_plot.getPlotItem().getViewBox().setXLink(self.pelvic_plot.getPlotItem())

        self.breath_curve = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["blue"], width=2),
                                            antialias=True)
        # Thin solid pens take Qt's fast path; wide or dashed antialiased ones cost ~10x more.
        self.pacer_past = pg.PlotDataItem(pen=pg.mkPen(_qcolor(OKABE_ITO["purple"], 170), width=1),
                                          antialias=True)
        self.pacer_ahead = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["purple"], width=3),
                                           antialias=True)
        for it in (self.pacer_past, self.pacer_ahead, self.breath_curve):
            self.breath_plot.addItem(it)
        self.pacer_label = pg.TextItem("pacer", color=OKABE_ITO["purple"], anchor=(1, 1))
        self.pacer_label.setPos(ahead_s - 0.2, 0)
        self.breath_plot.addItem(self.pacer_label)

        self.band_items: dict[PelvicState, pg.LinearRegionItem] = {}
        self.band_labels: dict[PelvicState, pg.TextItem] = {}
        for state, text in BAND_TEXT.items():
            band = pg.LinearRegionItem(
                values=(0.0, 1.0), orientation="horizontal", movable=False,
                brush=pg.mkBrush(_qcolor(STATE_COLOURS[state], BAND_ALPHA)),
                pen=pg.mkPen(None),
            )
            band.setZValue(-10)
            band.setVisible(False)
            self.pelvic_plot.addItem(band)
            self.band_items[state] = band
            label = pg.TextItem(text, color=_darker(STATE_COLOURS[state]), anchor=(0, 0.5))
            label.setVisible(False)
            self.pelvic_plot.addItem(label)
            self.band_labels[state] = label
        self.rest_line = pg.InfiniteLine(0.0, angle=0, pen=pg.mkPen(REST_LINE, width=1,
                                                                    style=Qt.PenStyle.DotLine))
        self.pelvic_plot.addItem(self.rest_line)
        self.state_curves: dict[PelvicState, pg.PlotDataItem] = {}
        for state in (PelvicState.UNKNOWN, PelvicState.REST, PelvicState.DROP,
                      PelvicState.CONTRACTION, PelvicState.STRAIN):
            c = pg.PlotDataItem(pen=pg.mkPen(CURVE_COLOURS[state], width=2.5), connect="finite",
                                antialias=True)
            self.pelvic_plot.addItem(c)
            self.state_curves[state] = c
        # The newest sample: a fixed-size dot moved with setPos (cheaper than a scatter plot).
        self.now_dot = QGraphicsEllipseItem(-7.0, -7.0, 14.0, 14.0)
        self.now_dot.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.now_dot.setPen(QPen(QColor("white"), 1.5))
        self.now_dot.setZValue(10)
        self.now_dot.setVisible(False)
        self._dot_state: PelvicState | None = None
        self.pelvic_plot.addItem(self.now_dot)
        self.settling_text = pg.TextItem("learning your resting tone...", color=FOREGROUND,
                                         anchor=(0.5, 0.5))
        self.settling_text.setPos(-window_s / 2, 0)
        self.pelvic_plot.addItem(self.settling_text)

        self.raw_toggle = QCheckBox("Show raw sensor signals")
        self.raw_toggle.toggled.connect(self._toggle_raw)
        graphs.addWidget(self.raw_toggle)
        self.raw_box = QWidget()
        self.raw_layout = QVBoxLayout(self.raw_box)
        self.raw_layout.setContentsMargins(0, 0, 0, 0)
        self.raw_box.setVisible(False)
        graphs.addWidget(self.raw_box, 3)
        self.raw_plots: dict[str, tuple[_Plot, list[pg.PlotDataItem]]] = {}

    def _build_side_panel(self, body: QHBoxLayout) -> None:
        """The pacer, state, cue, timer/step/reps/score, links, sound switch and buttons."""
        side = QVBoxLayout()
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(330)
        body.addWidget(side_w)
        self.pacer_widget = PacerWidget()
        side.addWidget(self.pacer_widget, 3)
        self.state_label = QLabel()
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.state_label.setMinimumHeight(38)
        self.state_label.setWordWrap(True)
        side.addWidget(self.state_label)
        self.cue_label = QLabel()
        self.cue_label.setWordWrap(True)
        self.cue_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cue_label.setStyleSheet("font-size: 15px; font-style: italic;")
        side.addWidget(self.cue_label)
        grid = QGridLayout()
        side.addLayout(grid)
        self.timer_label = QLabel()
        self.step_label = QLabel()
        self.reps_label = QLabel()
        self.score_label = QLabel()
        self.score_label.setWordWrap(True)
        big = "font-size: 17px; font-weight: bold;"
        self.timer_label.setStyleSheet(big)
        self.reps_label.setStyleSheet(big)
        grid.addWidget(QLabel("Session"), 0, 0)
        grid.addWidget(self.timer_label, 0, 1)
        grid.addWidget(QLabel("Step"), 1, 0)
        grid.addWidget(self.step_label, 1, 1)
        grid.addWidget(QLabel("Reps"), 2, 0)
        grid.addWidget(self.reps_label, 2, 1)
        grid.addWidget(QLabel("Score"), 3, 0)
        grid.addWidget(self.score_label, 3, 1)
        self.links_label = QLabel()
        self.links_label.setTextFormat(Qt.TextFormat.RichText)
        self.links_label.setWordWrap(True)
        side.addWidget(self.links_label)
        self.quality_label = QLabel()
        self.quality_label.setWordWrap(True)
        side.addWidget(self.quality_label)
        self.stop_note = QLabel("Stop if it hurts. No pushing, no straining.")
        self.stop_note.setStyleSheet("color: #A34700; font-weight: bold;")
        self.stop_note.setWordWrap(True)
        side.addWidget(self.stop_note)
        # Sound for eyes-closed practice (biofeedback.audio wires it to the player).
        self.sound_switch = QCheckBox("Sound (for eyes-closed practice)")
        # The side panel is 330 px wide: the long explanation goes in the tooltip.
        self.sound_switch.setToolTip(
            "A soft tone that sinks as the floor drops, and chimes at each pacer phase.")
        side.addWidget(self.sound_switch)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        for button in (self.start_button, self.pause_button, self.stop_button):
            button.setMinimumHeight(34)
            buttons.addWidget(button)
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        side.addLayout(buttons)
        # Offered by runs that can calibrate on the spot (the demo), hidden otherwise.
        self.calibrate_button = QPushButton("Calibrate now")
        self.calibrate_button.setToolTip(
            "A 2.5-minute guided calibration: rest, squeezes, drops, free breathing. "
            "This session stops (it is kept) and a calibrated one follows.")
        self.calibrate_button.setMinimumHeight(34)
        self.calibrate_button.setVisible(False)
        side.addWidget(self.calibrate_button)
        self.safety_button = QPushButton("About this exercise")
        self.safety_button.setFlat(True)
        self.safety_button.clicked.connect(lambda: self.safety_note.setVisible(True))
        side.addWidget(self.safety_button)

    # ------------------------------------------------------------------ model
    def set_model(self, model: LiveModel | None) -> None:
        """Show ``model`` (the raw plots follow its streams)."""
        self.model = model
        self._zones = None
        self._range = None
        for plot, _ in self.raw_plots.values():
            plot.setParent(None)
            plot.deleteLater()
        self.raw_plots.clear()
        if model is None:
            return
        for name in model.stream_names:
            spec = model.specs[name]
            plot = _Plot(y_label=f"{name} ({spec.unit})")
            plot.setMinimumHeight(70)
            plot.getPlotItem().setXRange(-self.window_s, self.ahead_s, padding=0)
            plot.getPlotItem().getViewBox().setXLink(self.pelvic_plot.getPlotItem())
            colours = [OKABE_ITO[k] for k in ("blue", "orange", "green", "purple", "vermillion")]
            curves = []
            for i, _ch in enumerate(spec.channels or ("value",)):
                c = pg.PlotDataItem(pen=pg.mkPen(colours[i % len(colours)], width=1))
                plot.addItem(c)
                curves.append(c)
            self.raw_layout.addWidget(plot)
            self.raw_plots[name] = (plot, curves)

    def _toggle_raw(self, on: bool) -> None:
        self.raw_box.setVisible(on)

    # ------------------------------------------------------------------ frame
    def refresh(self) -> None:
        """Redraw from the model (called by the window's frame timer)."""
        m = self.model
        if m is None:
            return
        now = m.now()
        self.last_now = now
        self._view_w = max(200, self.pelvic_plot.width())
        snap = m.snapshot(now)
        self._update_text(snap)
        self._update_zones(m.zones())
        self._update_pelvic(m, now, snap)
        self._update_breath(m, now, snap)
        if self.raw_box.isVisible():
            self._update_raw(m, now)

    def _update_text(self, s: Snapshot) -> None:
        active = s.pacer is not None and self._pacer_active(s)
        words = s.pacer_words if active else ("Breathe easy", "rest and breathe normally")
        self.pacer_widget.set_state(
            s.pacer_level if active else None, s.pacer.phase if active and s.pacer else None,
            words, s.pacer_left_s if active else None,
        )
        state = s.pelvic_state
        colour = STATE_COLOURS[state]
        fg = "black" if state in (PelvicState.CONTRACTION, PelvicState.REST) else "white"
        text = "settling" if s.settling else STATE_TEXT[state]
        style = (f"background: {colour}; color: {fg}; font-size: 18px; font-weight: bold; "
                 "border-radius: 6px; padding: 4px;")
        if self.state_label.styleSheet() != style:
            self.state_label.setStyleSheet(style)
        _set_text(self.state_label, f"Pelvic floor: {text}")
        _set_text(self.cue_label, s.cue or "")
        _set_text(self.timer_label, fmt_clock(s.elapsed_s))
        step = ""
        if s.step is not None:
            step = s.step.name.capitalize()
            if s.step_left_s is not None and math.isfinite(s.step_left_s):
                step += f"  ({fmt_clock(s.step_left_s)} left)"
        _set_text(self.step_label, step or "-")
        reps = str(s.reps) if s.total_reps <= s.reps else f"{s.reps}  (total {s.total_reps})"
        _set_text(self.reps_label, reps)
        score = "-"
        if s.last_rep is not None:
            r = s.last_rep
            verdict = "good" if r.good else (", ".join(r.reasons) or "keep going")
            score = f"last {r.score:.0f}/100 - {verdict}"
            if s.mean_score is not None:
                score += f"\naverage {s.mean_score:.0f}"
        _set_text(self.score_label, score)
        _set_text(self.links_label, "<br>".join(_link_html(st, s.now) for st in s.links))
        q = [f"{name.split('.')[-1]}: {QUALITY_TEXT[qv]}" for name, qv in s.quality.items()]
        _set_text(self.quality_label, ("Signal - " + ", ".join(q)) if q else "")
        alerts = list(s.link_alerts)
        if alerts:
            _set_text(self.link_banner, "  ".join(alerts)
                      + "  The session goes on when the sensor is back.")
        if self.link_banner.isHidden() == bool(alerts):
            self.link_banner.setVisible(bool(alerts))
        if s.stalled:
            names = ", ".join(s.stalled)
            _set_text(self.stall_banner, f"No new data from {names} for more than 2 s - "
                      "check the sensor is on, charged and close by.")
        if self.stall_banner.isHidden() == bool(s.stalled):
            self.stall_banner.setVisible(bool(s.stalled))
        if self.strain_banner.isHidden() == s.strain:
            self.strain_banner.setVisible(s.strain)
        if s.run_state != self._last_run_state:
            self._last_run_state = s.run_state
            running = s.run_state == "running"
            self.start_button.setText("Resume" if s.run_state == "paused" else "Start")
            self.start_button.setEnabled(not running)
            self.pause_button.setEnabled(running)
            self.stop_button.setEnabled(s.run_state != "stopped")

    def _pacer_active(self, s: Snapshot) -> bool:
        """The pacer belongs to the current step (set at or after the step began)."""
        m = self.model
        if m is None or m.pacer is None:
            return False
        if s.step is None:
            return True
        return m.pacer.t0 >= s.step.t_start - 1e-6

    def _update_zones(self, zones: Zones | None) -> None:
        if zones == self._zones:
            return
        self._zones = zones
        for state, band in self.band_items.items():
            band.setVisible(zones is not None)
            self.band_labels[state].setVisible(zones is not None)
        if zones is None:
            return
        big = 1e6 * max(zones.drop_margin, zones.contraction_margin, zones.strain_margin)
        # One rise band when strain starts where contraction does (a one-channel probe
        # tells them apart only by a breath hold): say both, in the calmer colour.
        merged = zones.strain_margin <= zones.contraction_margin
        top = self.band_items[PelvicState.STRAIN]
        top.setBrush(pg.mkBrush(_qcolor(
            STATE_COLOURS[PelvicState.CONTRACTION if merged else PelvicState.STRAIN], BAND_ALPHA)))
        label = self.band_labels[PelvicState.STRAIN]
        label.setText(MERGED_RISE_TEXT if merged else BAND_TEXT[PelvicState.STRAIN])
        label.setColor(_darker(
            STATE_COLOURS[PelvicState.CONTRACTION if merged else PelvicState.STRAIN]))
        for state, (lo, hi) in zones.bands().items():
            lo = -big if math.isinf(lo) else lo
            hi = big if math.isinf(hi) else hi
            band = self.band_items[state]
            band.setRegion((lo, hi))
            band.setVisible(hi > lo)
        self._place_band_labels()

    def _place_band_labels(self) -> None:
        zones = self._zones
        yr = self.pelvic_plot.y_range
        if zones is None or yr is None:
            return
        for state, (lo, hi) in zones.bands().items():
            vis_lo, vis_hi = max(lo, yr[0]), min(hi, yr[1])
            label = self.band_labels[state]
            label.setVisible(vis_hi > vis_lo)
            label.setPos(-self.window_s + 0.3, (vis_lo + vis_hi) / 2)

    @property
    def thin_bin_s(self) -> float:
        """Time per drawn point of the main curves (about two pixels)."""
        return (self.window_s + self.ahead_s) / (self._view_w / 2.0)

    def _update_pelvic(self, m: LiveModel, now: float, s: Snapshot) -> None:
        pv = m.pelvic(self.window_s + 1.0)
        # Wide antialiased strokes cost per segment: draw about one point per two pixels.
        keep = thin_by_time(pv.t, self.thin_bin_s)
        n = keep.shape[0]
        x = pv.t[keep] - now
        y = pv.relative[keep]  # fancy indexing copies: safe from the next chunk
        states = pv.state[keep]
        for state, curve in self.state_curves.items():
            mask = states == float(state)
            if not mask.any():
                if curve.xData is not None and len(curve.xData):
                    curve.setData([], [])
                continue
            # Each run also takes the next sample, so runs of different states join.
            ext = mask.copy()
            ext[1:] |= mask[:-1]
            curve.setData(x, np.where(ext, y, np.nan))
        if n and math.isfinite(y[-1]):
            self.now_dot.setPos(float(x[-1]), float(y[-1]))
            if self._dot_state != s.pelvic_state:
                self._dot_state = s.pelvic_state
                self.now_dot.setBrush(QBrush(QColor(CURVE_COLOURS[s.pelvic_state])))
            if not self.now_dot.isVisible():
                self.now_dot.setVisible(True)
        elif self.now_dot.isVisible():
            self.now_dot.setVisible(False)
        self.settling_text.setVisible(s.settling)
        z = self._zones
        lo, hi = (-1.0, 1.0) if z is None else (
            -2.0 * z.drop_margin, 1.3 * max(z.strain_margin, z.contraction_margin))
        fin = y[np.isfinite(y)]
        if fin.size:
            lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
        before = self.pelvic_plot.y_range
        self.pelvic_plot.ensure_y(lo, hi)
        if self.pelvic_plot.y_range != before:
            self._place_band_labels()
            self.settling_text.setPos(-self.window_s / 2, sum(self.pelvic_plot.y_range or (0, 0))
                                      / 2)

    def pacer_points(self, now: float, lo: float, hi: float) -> tuple[FloatArray, FloatArray]:
        """The pacer target over ``now .. now + ahead_s``, scaled to ``lo .. hi``."""
        assert self.model is not None and self.model.pacer is not None
        ta = now + np.linspace(0.0, self.ahead_s, int(self.ahead_s * 12) + 1)
        return ta - now, lo + self.model.pacer.curve(ta) * (hi - lo)

    def _update_breath(self, m: LiveModel, now: float, s: Snapshot) -> None:
        bv = m.breath(self.window_s + 1.0)
        keep = thin_by_time(bv.t, self.thin_bin_s)
        y = bv.signal[keep]
        self.breath_curve.setData(bv.t[keep] - now, y)
        # The breath's range moves slowly: a fresh percentile every few frames is plenty.
        self._range_age += 1
        if self._range is None or self._range_age >= 6:
            self._range, self._range_age = m.breath_range(20.0), 0
        lo, hi = self._range if self._range is not None else (-1.0, 1.0)
        if m.pacer is not None and self._pacer_active(s):
            xa, ya = self.pacer_points(now, lo, hi)
            self.pacer_ahead.setData(xa, ya)
            tp = now + np.linspace(-self.window_s, 0.0, int(self.window_s * 6) + 1)
            self.pacer_past.setData(tp - now, lo + m.pacer.curve(tp) * (hi - lo))
            self.pacer_label.setVisible(True)
            self.pacer_label.setPos(self.ahead_s - 0.2, hi)
        else:
            if self.pacer_ahead.xData is not None and len(self.pacer_ahead.xData):
                self.pacer_ahead.setData([], [])
                self.pacer_past.setData([], [])
            self.pacer_label.setVisible(False)
        fin = y[np.isfinite(y)]
        if fin.size:
            lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
        self.breath_plot.ensure_y(lo, hi)

    def _update_raw(self, m: LiveModel, now: float) -> None:
        width = self._view_w
        for name, (plot, curves) in self.raw_plots.items():
            t, v = m.raw(name, self.window_s + 1.0)
            x = t - now
            lo, hi = math.inf, -math.inf
            for i, c in enumerate(curves):
                if i >= v.shape[1]:
                    break
                xd, yd = peak_decimate(x, v[:, i], width)  # a min/max pair per 2 px
                c.setData(xd, yd)
                fin = yd[np.isfinite(yd)]
                if fin.size:
                    lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
            if math.isfinite(lo):
                plot.ensure_y(lo, hi if hi > lo else lo + 1.0)


def _darker(hex_colour: str) -> QColor:
    return QColor(hex_colour).darker(150)


def _link_html(st: LinkStatus, now: float) -> str:
    colours = {
        "connected": OKABE_ITO["green"],
        "connecting": "#8C8C8C",
        "reconnecting": OKABE_ITO["orange"],
        "lost": OKABE_ITO["vermillion"],
        "given_up": OKABE_ITO["vermillion"],
        "stopped": "#8C8C8C",
    }
    dot = f"<span style='color:{colours.get(st.state, '#8C8C8C')}'>&#9679;</span>"
    text = st.state.replace("_", " ")
    if st.state in ("lost", "reconnecting", "given_up"):
        text += f" (lost {fmt_ago(now - st.since)}"
        text += f", attempt {st.attempt})" if st.attempt and st.state != "given_up" else ")"
    if st.battery is not None:
        low = " - charge soon" if st.battery < 15 else ""
        text += f" &middot; battery {st.battery:.0f}%{low}"
    return f"{dot} <b>{_esc(st.device)}</b>: {text}"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bars(rssi: int | None) -> str:
    if rssi is None:
        return "?"
    n = 4 if rssi >= -60 else 3 if rssi >= -70 else 2 if rssi >= -80 else 1
    return "▂▄▆█"[:n].ljust(4, " ") + f" {rssi} dBm"


class _Tasks:
    """Strong references to the asyncio tasks a view starts (they are not garbage-collected)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], on_error: Callable[[BaseException], None]) -> bool:
        try:
            loop = asyncio.get_running_loop()  # qasync runs Qt's slots inside the loop
        except RuntimeError:
            on_error(RuntimeError("no asyncio event loop (start the window with run_window)"))
            if inspect.iscoroutine(coro):
                coro.close()
            return False
        task = loop.create_task(_wrap(coro, on_error))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True


async def _wrap(coro: Awaitable[Any], on_error: Callable[[BaseException], None]) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        on_error(exc)


PairFn = Callable[[Any], Awaitable[Mapping[str, Any]]]


class PairingView(QWidget):
    """Scan for sensors (signal strength, matched driver, support level) and pair one.

    Scanning and pairing run on the asyncio loop (``qasync``) through
    :func:`devices.ble.scan` and :func:`devices.ble.resolve_device`; pairing
    remembers the device in the store (or calls ``pair_fn``).
    """

    paired = Signal(object)

    def __init__(
        self, parent: QWidget | None = None, *, clock: Clock | None = None,
        registry: Any = None, pair_fn: PairFn | None = None, virtual: bool = False,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._registry = registry
        self._pair_fn = pair_fn
        self.virtual = virtual
        #: The bleak backend scans go through (a ``devices.ble.BleBackend``; None: the OS
        #: stack). A virtual session sets its radio's.
        self.backend: Any = None
        #: Seconds a scan started by the Scan button listens.
        self.scan_timeout = 4.0
        self.found: list[Any] = []
        self._tasks = _Tasks()
        lay = QVBoxLayout(self)
        title = QLabel("<h2>Sensors</h2>Turn the sensor on and keep it close. "
                       "Do not pair it in the system's Bluetooth settings.")
        title.setWordWrap(True)
        lay.addWidget(title)
        row = QHBoxLayout()
        self.scan_button = QPushButton("Scan")
        self.pair_button = QPushButton("Pair selected")
        self.pair_button.setEnabled(False)
        row.addWidget(self.scan_button)
        row.addWidget(self.pair_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Name", "Signal", "Driver", "Support", "Address"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.scan_button.clicked.connect(lambda: self.start_scan())
        self.pair_button.clicked.connect(lambda: self.start_pair())
        self.table.itemSelectionChanged.connect(
            lambda: self.pair_button.setEnabled(bool(self.table.selectedItems()))
        )

    def _clock_now(self) -> Clock:
        if self._clock is None:
            from devices.clock import RealClock

            self._clock = RealClock()
        return self._clock

    def _reg(self) -> Any:
        if self._registry is None:
            from biofeedback.paths import config_dir
            from devices.registry import default_registry

            self._registry = default_registry([config_dir() / "drivers"])
        return self._registry

    def _error(self, exc: BaseException) -> None:
        self.status.setText(f"Could not finish: {exc}")
        self.scan_button.setEnabled(True)

    def start_scan(self, timeout: float | None = None) -> bool:
        """Start a scan on the event loop (returns False without a loop)."""
        self.scan_button.setEnabled(False)
        self.status.setText("Scanning...")
        return self._tasks.spawn(self.scan(timeout or self.scan_timeout), self._error)

    async def scan(self, timeout: float = 4.0) -> list[Any]:
        """Scan and fill the table (strongest first)."""
        from devices.ble import PLATFORM, scan

        try:
            found = await scan(self._reg(), self._clock_now(), timeout=timeout,
                               backend=self.backend or PLATFORM)
        finally:
            self.scan_button.setEnabled(True)
        self.found = found
        self.table.setRowCount(len(found))
        for row, f in enumerate(found):
            d = f.to_json()
            cells = [d["name"] or "(no name)", _bars(d["rssi"]), d["driver"] or "no driver",
                     d["support"] or "unsupported", d["address"]]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(str(text)))
        n = len(found)
        self.status.setText(f"{n} device{'s' if n != 1 else ''} found." if n else
                            "No devices found. Is the sensor on, charged and close by?")
        return found

    def start_pair(self) -> bool:
        rows = {i.row() for i in self.table.selectedItems()}
        if not rows:
            return False
        f = self.found[min(rows)]
        self.status.setText(f"Pairing {f.name}...")
        return self._tasks.spawn(self.pair(f), self._error)

    async def pair(self, found: Any) -> Mapping[str, Any]:
        """Pair ``found`` (a :class:`devices.ble.Found`): confirm, remember, emit ``paired``."""
        if found.driver is None:
            raise ValueError(f"{found.name or found.adv.address} has no driver; describe it "
                             "in a TOML driver file")
        if self._pair_fn is not None:
            dev = dict(await self._pair_fn(found))
        else:
            from biofeedback.paths import store_path
            from biofeedback.store import Store
            from devices.ble import resolve_device

            confirmed = await resolve_device(found.adv.address, self._reg(), self._clock_now(),
                                             backend=found.backend)
            with Store(store_path()) as store:
                known = store.remember_device(
                    address=confirmed.adv.address, name=confirmed.name,
                    driver=found.driver.id, support=str(found.driver.info.support),
                    virtual=self.virtual,
                )
            dev = known.to_json()
        self.status.setText(f"Paired {dev.get('name')} [{dev.get('address')}] with driver "
                            f"{dev.get('driver')} ({dev.get('support')}).")
        self.paired.emit(dev)
        return dev


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
        self.pressure_plot = _Plot(y_label="pelvic pressure")
        self.breath_plot = _Plot(y_label="breath (in = up)", x_label="seconds (0 = now)")
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
            _set_text(self.name_label, name)
        if total_s is not None:
            self._total = total_s
        elif self._total is None or seconds_left > self._total:
            self._total = seconds_left
        _set_text(self.prompt_label, prompt)
        left = max(0.0, seconds_left)
        _set_text(self.countdown_label, str(math.ceil(left - 1e-9)))
        total = self._total or 0.0
        frac = 1.0 - left / total if total > 0 else 1.0
        self.progress.setValue(round(1000 * min(max(frac, 0.0), 1.0)))

    def next_step(self) -> None:
        """Forget the current step's length (the next :meth:`show_step` starts a new bar)."""
        self._total = None

    def show_message(self, text: str) -> None:
        """A result or a reason to repeat a step."""
        _set_text(self.message_label, text)

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
            region.setBrush(pg.mkBrush(_qcolor(colour, SEGMENT_ALPHA)))
            region.setVisible(True)
        self.segment_label.setText(text)
        self.segment_label.setColor(_darker(colour))

    def refresh(self) -> None:
        """Redraw the traces and the highlighted segment (called by the window's frame timer)."""
        tr = self.traces
        if tr is None:
            return
        # Redraw only on new data or a new step: the frame timer shares the GUI thread
        # (and, through qasync, the event loop) with the sensors it draws.
        key = (tr.model.version, self.segment)
        wall = time.perf_counter()
        if key == self._drawn or wall - self._drawn_at < 1.0 / CALIBRATION_FPS:
            return
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
    def _draw(plot: _Plot, curve: pg.PlotDataItem, x: FloatArray, y: FloatArray,
              width: int) -> None:
        xd, yd = peak_decimate(x, y, width)
        curve.setData(xd, yd)
        fin = yd[np.isfinite(yd)]
        if fin.size:
            lo, hi = float(fin.min()), float(fin.max())
            plot.ensure_y(lo, hi if hi > lo else lo + 1.0)


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
        self.trend = _Plot(y_label="score", x_label="session")
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


class SessionWindow(QMainWindow):
    """The application window: Session, Sensors, Calibration and History screens.

    Parameters
    ----------
    model : LiveModel, optional
        The live model to show (or :meth:`set_model` later).
    clock : Clock, optional
        Clock for scans on the Sensors screen.
    registry : Registry, optional
        Drivers for scans (default: built-ins plus the user's TOML drivers).
    fps : float
        Frame rate of the redraw timer.
    window_s, ahead_s : float
        Seconds of history shown, and of pacer target ahead of now.
    sessions_fn : callable, optional
        Past sessions for the History screen (default: the store).
    pair_fn : callable, optional
        How the Sensors screen pairs a found device (default: confirm and remember).
    show_safety_note : bool, optional
        Force the first-run safety note on or off (default: until dismissed).
    """

    start_requested = Signal()
    pause_requested = Signal()
    stop_requested = Signal()
    replay_requested = Signal(object)
    calibrate_requested = Signal(str)
    paired = Signal(object)
    closed = Signal()

    SCREENS = ("session", "sensors", "calibration", "history")

    def __init__(
        self,
        model: LiveModel | None = None,
        *,
        clock: Clock | None = None,
        registry: Any = None,
        fps: float = 60.0,
        window_s: float | None = None,
        ahead_s: float = 10.0,
        sessions_fn: SessionsFn | None = None,
        pair_fn: PairFn | None = None,
        show_safety_note: bool | None = None,
        virtual: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("biofeedback - pelvic floor down-training")
        self.resize(1280, 820)
        self.stats = FrameStats()
        self._pending: float | None = None
        self.tabs = QTabWidget()
        self.setCentralWidget(self.tabs)
        self.session = SessionView(
            window_s=window_s or (model.window_s if model is not None else 30.0),
            ahead_s=ahead_s, on_pelvic_paint=self._painted, show_safety_note=show_safety_note,
        )
        self.pairing = PairingView(clock=clock, registry=registry, pair_fn=pair_fn,
                                   virtual=virtual)
        self.calibration = CalibrationView()
        self.history = HistoryView(sessions_fn=sessions_fn)
        self.tabs.addTab(self.session, "Session")
        self.tabs.addTab(self.pairing, "Sensors")
        self.tabs.addTab(self.calibration, "Calibration")
        self.tabs.addTab(self.history, "History")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.session.start_requested.connect(self.start_requested)
        self.session.pause_requested.connect(self.pause_requested)
        self.session.stop_requested.connect(self.stop_requested)
        self.history.replay_requested.connect(self.replay_requested)
        self.calibration.calibrate_requested.connect(self.calibrate_requested)
        self.session.calibrate_button.clicked.connect(
            lambda: self.calibrate_requested.emit("quick"))
        self.pairing.paired.connect(self.paired)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(max(1, int(1000.0 / fps)))  # 16 ms: at least 60 frames/s
        self.timer.timeout.connect(self.frame)
        if model is not None:
            self.set_model(model)

    @property
    def model(self) -> LiveModel | None:
        return self.session.model

    def set_model(self, model: LiveModel | None) -> None:
        """Show ``model`` on the Session screen."""
        self.session.set_model(model)

    def offer_calibration(self, plans: Sequence[str]) -> None:
        """Let the person start these calibrations (``quick``, ``assessment``) from the
        window: the calibration screen's buttons and, for ``quick``, the session
        screen's "Calibrate now" (they emit :attr:`calibrate_requested`). Empty: none."""
        self.calibration.offer(plans)
        self.session.calibrate_button.setVisible("quick" in plans)

    def show_screen(self, name: str) -> None:
        """Switch to ``session``, ``sensors``, ``calibration`` or ``history``."""
        self.tabs.setCurrentIndex(self.SCREENS.index(name))

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history:
            self.history.reload()

    def frame(self) -> None:
        """One frame: redraw the visible screen from the model (the timer calls this)."""
        t0 = time.perf_counter()
        if self.tabs.currentWidget() is self.session and self.session.model is not None:
            p = self.session.model.take_pending()
            if p is not None and self._pending is None:
                self._pending = p
            self.session.refresh()
        elif self.tabs.currentWidget() is self.calibration:
            self.calibration.refresh()
        self.stats.frames += 1
        self.stats.work_s.append(time.perf_counter() - t0)

    def _painted(self) -> None:
        now = time.perf_counter()
        self.stats.paints += 1
        self.stats.paint_times.append(now)
        if self._pending is not None:
            self.stats.latency_s.append(now - self._pending)
            self._pending = None

    def showEvent(self, ev: QShowEvent) -> None:
        super().showEvent(ev)
        if not self.timer.isActive():
            self.timer.start()

    def closeEvent(self, ev: QCloseEvent) -> None:
        self.timer.stop()
        self.closed.emit()
        super().closeEvent(ev)
