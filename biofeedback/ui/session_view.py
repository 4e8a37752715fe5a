"""The Session screen: the live breath and pelvic graphs beside the side panel.

The window's frame timer calls :meth:`SessionView.refresh`, which reads the
:class:`~biofeedback.ui.model.LiveModel` once and redraws: curves are made once
and updated with ``setData`` on the visible window only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from biofeedback.signal.types import FloatArray
from biofeedback.ui.banners import AlertBanners, SafetyNote, safety_note_dismissed
from biofeedback.ui.model import LiveModel
from biofeedback.ui.plots import Plot, peak_decimate, thin_by_time
from biofeedback.ui.session_panel import SidePanel
from biofeedback.ui.snapshot import BreathView, PelvicView, Snapshot, Zones
from biofeedback.ui.theme import (
    BAND_ALPHA,
    BAND_TEXT,
    CURVE_COLOURS,
    FOREGROUND,
    MERGED_RISE_TEXT,
    OKABE_ITO,
    REST_LINE,
    STATE_COLOURS,
    darker,
    qcolor,
)
from devices.stream import StreamKind
from devices.vocab import PelvicState

__all__ = ["X_LABEL_ENDED", "X_LABEL_LIVE", "SessionView"]

#: The time axis while the session runs, and once it has ended (the view stays there).
X_LABEL_LIVE = "seconds (0 = now)"
X_LABEL_ENDED = "seconds (0 = end of the session)"


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
        self.banners = AlertBanners()
        self.strain_banner, self.link_banner, self.stall_banner = self.banners.labels()
        for b in self.banners.labels():
            outer.addWidget(b)

        body = QHBoxLayout()
        outer.addLayout(body, 1)

        self._build_graphs(body, window_s, ahead_s, on_pelvic_paint)
        self.panel = SidePanel()
        body.addWidget(self.panel)
        self._alias_panel(self.panel)

    def _build_graphs(
        self, body: QHBoxLayout, window_s: float, ahead_s: float,
        on_pelvic_paint: Callable[[], None] | None,
    ) -> None:
        """The breath graph (with the pacer), the pelvic graph (zones, state curves), raw box."""
        graphs = QVBoxLayout()
        body.addLayout(graphs, 1)
        self.breath_plot = Plot(y_label="breath (in = up)")
        self.pelvic_plot = Plot(
            on_paint=on_pelvic_paint, y_label="pelvic floor vs rest", x_label=X_LABEL_LIVE
        )
        self._x_label = X_LABEL_LIVE
        graphs.addWidget(self.breath_plot, 2)
        graphs.addWidget(self.pelvic_plot, 3)
        for plot in (self.breath_plot, self.pelvic_plot):
            plot.getPlotItem().setXRange(-window_s, ahead_s, padding=0)
            plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#9A9A9A", width=1)))
        self.breath_plot.getPlotItem().getViewBox().setXLink(self.pelvic_plot.getPlotItem())

        self.breath_curve = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["blue"], width=2),
                                            antialias=True)
        # Thin solid pens take Qt's fast path; wide or dashed antialiased ones cost ~10x more.
        self.pacer_past = pg.PlotDataItem(pen=pg.mkPen(qcolor(OKABE_ITO["purple"], 170), width=1),
                                          antialias=True)
        self.pacer_ahead = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["purple"], width=3),
                                           antialias=True)
        for it in (self.pacer_past, self.pacer_ahead, self.breath_curve):
            self.breath_plot.addItem(it)
        self.pacer_label = pg.TextItem("pacer", color=OKABE_ITO["purple"], anchor=(1, 1))
        self.pacer_label.setPos(ahead_s - 0.2, 0)
        self.breath_plot.addItem(self.pacer_label)

        self._build_pelvic_items(window_s)

        self.raw_toggle = QCheckBox("Show raw sensor signals")
        self.raw_toggle.toggled.connect(self._toggle_raw)
        graphs.addWidget(self.raw_toggle)
        self.raw_box = QWidget()
        self.raw_layout = QVBoxLayout(self.raw_box)
        self.raw_layout.setContentsMargins(0, 0, 0, 0)
        self.raw_box.setVisible(False)
        graphs.addWidget(self.raw_box, 3)
        self.raw_plots: dict[str, tuple[Plot, list[pg.PlotDataItem]]] = {}

    def _build_pelvic_items(self, window_s: float) -> None:
        """The zone bands and their words, the rest line, a curve per state, the now dot."""
        self.band_items: dict[PelvicState, pg.LinearRegionItem] = {}
        self.band_labels: dict[PelvicState, pg.TextItem] = {}
        for state, text in BAND_TEXT.items():
            band = pg.LinearRegionItem(
                values=(0.0, 1.0), orientation="horizontal", movable=False,
                brush=pg.mkBrush(qcolor(STATE_COLOURS[state], BAND_ALPHA)),
                pen=pg.mkPen(None),
            )
            band.setZValue(-10)
            band.setVisible(False)
            self.pelvic_plot.addItem(band)
            self.band_items[state] = band
            label = pg.TextItem(text, color=darker(STATE_COLOURS[state]), anchor=(0, 0.5))
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

    def _alias_panel(self, p: SidePanel) -> None:
        """The side panel's widgets as attributes of the view (tests and callers use them)."""
        self.pacer_widget, self.state_label, self.cue_label = (
            p.pacer_widget, p.state_label, p.cue_label)
        self.timer_label, self.step_label, self.reps_label, self.score_label = (
            p.timer_label, p.step_label, p.reps_label, p.score_label)
        self.links_label, self.quality_label, self.stop_note = (
            p.links_label, p.quality_label, p.stop_note)
        self.sound_switch, self.pacer_target = p.sound_switch, p.pacer_target
        self.start_button, self.pause_button, self.stop_button = (
            p.start_button, p.pause_button, p.stop_button)
        self.calibrate_button, self.safety_button = p.calibrate_button, p.safety_button
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.safety_button.clicked.connect(lambda: self.safety_note.setVisible(True))
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
            plot = Plot(y_label=f"{name} ({spec.unit})")
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
        now = m.now()  # stays at the session's end once it has ended: the graphs freeze
        self.last_now = now
        self._view_w = max(200, self.pelvic_plot.width())
        snap = m.snapshot(now)
        x_label = X_LABEL_ENDED if m.ended_at is not None else X_LABEL_LIVE
        if x_label != self._x_label:
            self._x_label = x_label
            self.pelvic_plot.getPlotItem().setLabel("bottom", x_label, color=FOREGROUND)
        self._update_text(snap)
        self._update_zones(m.zones())
        self._update_pelvic(m, now, snap)
        self._update_breath(m, now, snap)
        if self.raw_box.isVisible():
            self._update_raw(m, now)

    def _update_text(self, s: Snapshot) -> None:
        self.panel.show_snapshot(s, self._pacer_active(s))
        self.banners.update(s)

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
        top.setBrush(pg.mkBrush(qcolor(
            STATE_COLOURS[PelvicState.CONTRACTION if merged else PelvicState.STRAIN], BAND_ALPHA)))
        label = self.band_labels[PelvicState.STRAIN]
        label.setText(MERGED_RISE_TEXT if merged else BAND_TEXT[PelvicState.STRAIN])
        label.setColor(darker(
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
        if not pv.t.size and (raw := raw_first(m, StreamKind.PRESSURE, self.window_s)):
            t, y = raw  # no state yet: drawn as unknown
            pv = PelvicView(t, y, y, np.full(t.size, float(PelvicState.UNKNOWN)), y * 0.0)
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
        if not bv.t.size and (raw := raw_first(m, StreamKind.BREATH_FORCE, self.window_s)):
            bv = BreathView(raw[0], raw[1], raw[1] * 0.0)
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


def raw_first(
    m: LiveModel, kind: StreamKind, seconds: float
) -> tuple[FloatArray, FloatArray] | None:
    """Before the pipeline's first output: the first ``kind`` stream's first channel, less
    its median (the raw trace is drawn as soon as chunks arrive, the derived one when it comes).

    None without such a stream or with fewer than two samples of it.
    """
    name = next((n for n, spec in m.specs.items() if spec.kind is kind), None)
    if name is None:
        return None
    t, v = m.raw(name, seconds)
    if t.size < 2:
        return None
    y = np.asarray(v[:, 0], dtype=float)
    fin = y[np.isfinite(y)]
    return t, y - (float(np.median(fin)) if fin.size else 0.0)
