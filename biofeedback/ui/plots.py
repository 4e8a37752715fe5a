"""Plot building blocks: a calm non-interactive plot, decimation for drawing, frame stats.

Curves are made once and updated with ``setData`` on the samples of the
visible window only (the model's slice is the clip-to-view; raw high-rate
streams are peak-decimated to the pixel width). Nothing is drawn per sample.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from biofeedback.signal.types import FloatArray
from biofeedback.ui.theme import BACKGROUND, FOREGROUND

__all__ = ["FrameStats", "Plot", "peak_decimate", "thin_by_time"]


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


class Plot(pg.PlotWidget):
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
