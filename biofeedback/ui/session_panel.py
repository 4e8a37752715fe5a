"""The session screen's side panel: the pacer, the pelvic state, cue, timer, reps, score,
links, signal quality, the sound switch and the session buttons."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from biofeedback.ui.links import LinkStatus
from biofeedback.ui.snapshot import Snapshot
from biofeedback.ui.theme import (
    FOREGROUND,
    OKABE_ITO,
    QUALITY_TEXT,
    STATE_COLOURS,
    esc,
    qcolor,
    set_text,
)
from biofeedback.ui.words import STATE_TEXT, breath_source_text, fmt_ago, fmt_clock
from devices.vocab import BreathPhase, PelvicState

__all__ = ["PacerWidget", "SidePanel", "link_html"]


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
        p.setPen(QPen(qcolor(OKABE_ITO["blue"], 90), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QRectF(cx - r_max, cy - r_max, 2 * r_max, 2 * r_max))
        if self.level is not None:
            r = r_min + (r_max - r_min) * min(max(self.level, 0.0), 1.0)
            p.setPen(QPen(QColor(OKABE_ITO["blue"]), 3))
            p.setBrush(QBrush(qcolor(OKABE_ITO["sky"], 120)))
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


class SidePanel(QWidget):
    """The column beside the graphs (330 px wide); :meth:`show_snapshot` fills it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        side = QVBoxLayout(self)
        self.setFixedWidth(330)
        self.pacer_widget = PacerWidget()
        side.addWidget(self.pacer_widget, 3)
        # The pacer's current target (rate, inhale : exhale; where an adaptive one leads).
        self.pacer_target = QLabel()
        self.pacer_target.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pacer_target.setWordWrap(True)
        side.addWidget(self.pacer_target)
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
        side.addWidget(self.safety_button)
        self._last_run_state: str | None = "?"

    def show_snapshot(self, s: Snapshot, pacer_active: bool) -> None:
        """Show ``s``; the pacer only when ``pacer_active`` (it belongs to the current step)."""
        active = s.pacer is not None and pacer_active
        words = s.pacer_words if active else ("Breathe easy", "rest and breathe normally")
        self.pacer_widget.set_state(
            s.pacer_level if active else None, s.pacer.phase if active and s.pacer else None,
            words, s.pacer_left_s if active else None,
        )
        set_text(self.pacer_target, f"Pacer {s.pacer_label}" if active and s.pacer_label else "")
        state = s.pelvic_state
        colour = STATE_COLOURS[state]
        fg = "black" if state in (PelvicState.CONTRACTION, PelvicState.REST) else "white"
        text = "settling" if s.settling else STATE_TEXT[state]
        style = (f"background: {colour}; color: {fg}; font-size: 18px; font-weight: bold; "
                 "border-radius: 6px; padding: 4px;")
        if self.state_label.styleSheet() != style:
            self.state_label.setStyleSheet(style)
        set_text(self.state_label, f"Pelvic floor: {text}")
        set_text(self.cue_label, s.ended or s.cue or "")  # the end stays said
        set_text(self.timer_label, fmt_clock(s.elapsed_s))
        step = ""
        if s.step is not None:
            step = s.step.name.capitalize()
            if s.step_left_s is not None and math.isfinite(s.step_left_s):
                step += f"  ({fmt_clock(s.step_left_s)} left)"
        set_text(self.step_label, "Ended" if s.ended else step or "-")
        reps = str(s.reps) if s.total_reps <= s.reps else f"{s.reps}  (total {s.total_reps})"
        set_text(self.reps_label, reps)
        score = "-"
        if s.last_rep is not None:
            r = s.last_rep
            verdict = "good" if r.good else (", ".join(r.reasons) or "keep going")
            score = f"last {r.score:.0f}/100 - {verdict}"
            if s.mean_score is not None:
                score += f"\naverage {s.mean_score:.0f}"
        set_text(self.score_label, score)
        set_text(self.links_label, "<br>".join(link_html(st, s.now) for st in s.links))
        q = [f"{name.split('.')[-1]}: {QUALITY_TEXT[qv]}" for name, qv in s.quality.items()]
        lines = [("Signal - " + ", ".join(q))] if q else []
        if s.breath_source is not None:
            lines.append(breath_source_text(s.breath_source, s.breath_trust))
        set_text(self.quality_label, "\n".join(lines))
        if s.run_state != self._last_run_state:
            self._last_run_state = s.run_state
            running = s.run_state == "running"
            self.start_button.setText("Resume" if s.run_state == "paused" else "Start")
            self.start_button.setEnabled(s.run_state not in ("running", "stopped"))
            self.pause_button.setEnabled(running)
            self.stop_button.setEnabled(s.run_state != "stopped")


def link_html(st: LinkStatus, now: float) -> str:
    """One line of the links label: a coloured dot, the device and its state, in words."""
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
    return f"{dot} <b>{esc(st.device)}</b>: {text}"
