"""Colours, words and small Qt helpers shared by every screen of the window.

Colours are the Okabe-Ito colour-blind-safe palette, and every colour comes
with words (band labels, the state label, the link status), never colour alone.
"""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from biofeedback.signal.types import Quality
from devices.vocab import PelvicState

__all__ = [
    "BACKGROUND",
    "BAND_ALPHA",
    "BAND_TEXT",
    "CURVE_COLOURS",
    "FOREGROUND",
    "MERGED_RISE_TEXT",
    "OKABE_ITO",
    "QUALITY_TEXT",
    "REST_LINE",
    "STATE_COLOURS",
    "darker",
    "esc",
    "qcolor",
    "set_text",
]

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


def qcolor(hex_colour: str, alpha: int = 255) -> QColor:
    """``hex_colour`` with opacity ``alpha`` (0..255)."""
    c = QColor(hex_colour)
    c.setAlpha(alpha)
    return c


def set_text(label: QLabel, text: str) -> None:
    """Set a label's text only when it changed (no relayout per frame)."""
    if label.text() != text:
        label.setText(text)



def darker(hex_colour: str) -> QColor:
    """A darker shade of ``hex_colour`` (readable text on its light band)."""
    return QColor(hex_colour).darker(150)


def esc(s: str) -> str:
    """Escape ``s`` for a rich-text label."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
