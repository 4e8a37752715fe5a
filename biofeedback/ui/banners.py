"""Notes and banners: the first-run safety note and the strain, link and stall banners."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from biofeedback.paths import data_dir
from biofeedback.ui.snapshot import Snapshot
from biofeedback.ui.theme import set_text

__all__ = [
    "SAFETY_TEXT",
    "AlertBanners",
    "SafetyNote",
    "banner",
    "dismiss_safety_note",
    "safety_note_dismissed",
]

log = logging.getLogger(__name__)

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
    return os.open(path, flags, 0o600)


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


def banner(style: str) -> QLabel:
    """A hidden, word-wrapped label styled with ``style``."""
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setStyleSheet(style)
    lab.setVisible(False)
    return lab



class AlertBanners:
    """The three session banners: strain (stop pushing), a lost link, a stalled stream.

    Each is a hidden :class:`QLabel` shown while its condition holds; words, not
    colour alone, say what is wrong and what to do.
    """

    def __init__(self) -> None:
        self.strain = banner(
            "background: #D55E00; color: white; font-size: 20px; font-weight: bold; "
            "padding: 8px; border-radius: 6px;"
        )
        self.strain.setText("Soften - no pushing.  Let the breath go, stop if it hurts.")
        self.link = banner(
            "background: #FBE7C2; color: #2B2B2B; font-size: 14px; padding: 6px; "
            "border: 1px solid #E69F00; border-radius: 6px;"
        )
        self.stall = banner(
            "background: #FFF6BF; color: #2B2B2B; font-size: 14px; padding: 6px; "
            "border: 1px solid #E6C700; border-radius: 6px;"
        )

    def labels(self) -> tuple[QLabel, QLabel, QLabel]:
        """The banners, top to bottom."""
        return self.strain, self.link, self.stall

    def update(self, s: Snapshot) -> None:
        """Show or hide each banner for the snapshot ``s`` (touches Qt only on a change)."""
        alerts = list(s.link_alerts)
        if alerts:
            set_text(self.link, "  ".join(alerts)
                     + "  The session goes on when the sensor is back.")
        if self.link.isHidden() == bool(alerts):
            self.link.setVisible(bool(alerts))
        if s.stalled:
            names = ", ".join(s.stalled)
            set_text(self.stall, f"No new data from {names} for more than 2 s - "
                     "check the sensor is on, charged and close by.")
        if self.stall.isHidden() == bool(s.stalled):
            self.stall.setVisible(bool(s.stalled))
        if self.strain.isHidden() == s.strain:
            self.strain.setVisible(s.strain)
