"""The Resonance screen: the stepped resonance-breathing assessment, live.

The pacer of the step under way, the heart rate from the strap's RR intervals
(with the pacer's rhythm drawn under it, so the swing is visible), and a table
that fills as each step ends: the heart-rate swing (peak-trough per breath), the
low-frequency power and how well the heart rhythm followed the pacer. At the end
it shows the chosen rate and why, and that it was saved as the default pacer.
Without a heart strap it says it cannot run, and why.

:func:`assess_on_screen` runs the same assessment as ``biofeedback resonance``
(:func:`biofeedback.resonance.assess`) with this screen watching; the window's
frame timer redraws it (:meth:`ResonanceView.refresh`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from biofeedback.ui.plots import Plot
from biofeedback.ui.session_panel import PacerWidget
from biofeedback.ui.theme import OKABE_ITO, qcolor, set_text
from biofeedback.ui.words import PACER_TEXT, fmt_clock
from calibration.resonance import ResonanceResult, ResonanceStep, StepFigures, step_figures
from devices.vocab import BreathPhase

if TYPE_CHECKING:
    from biofeedback.resonance import Assessment, AssessOptions
    from devices.clock import Clock
    from devices.registry import Registry

__all__ = [
    "HEART_WINDOW_S",
    "STEP_CHOICES",
    "ResonanceView",
    "assess_on_screen",
    "in_worker_thread",
]

T = TypeVar("T")
#: Seconds a cancelled run has to close its links.
WORKER_CLOSE_S = 5.0

#: Seconds of heart rate shown.
HEART_WINDOW_S = 60.0
#: The step lengths offered (label, seconds): the protocol's 2 minutes, or shorter.
STEP_CHOICES: tuple[tuple[str, float], ...] = (
    ("2 min at each rate (the protocol)", 120.0),
    ("1 min at each rate (quicker, less certain)", 60.0),
    ("30 s at each rate (a quick look)", 30.0),
)
COLUMNS = ("Rate /min", "Heart-rate swing", "LF power", "Followed", "Paced swing")
INTRO = (
    "<h2>Resonance breathing</h2>Breathe with the pacer at 6.5, 6, 5.5, 5 and 4.5 breaths "
    "a minute. A heart strap (Polar H10 or any Heart Rate Service strap) measures how much "
    "your heart rate swings with each breath; the rate where it swings most becomes your "
    "pacer. Breathe gently, never deeper than is comfortable; stop if you feel dizzy."
)


def _ok_beats(beats: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The beats the analysis keeps (ectopics and gaps out, as :func:`analyse_resonance`)."""
    ok = np.isfinite(beats) & np.isfinite(rr) & (rr > 0.25) & (rr < 2.5)
    return beats[ok], rr[ok]


class ResonanceView(QWidget):
    """The assessment's screen: pacer, live heart rate, per-step figures, the choice."""

    start_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: tuple[ResonanceStep, ...] = ()
        self.figures: dict[int, StepFigures | None] = {}
        self.result: ResonanceResult | None = None
        #: The profile the chosen rate was saved in (None: not saved).
        self.saved_id: str | None = None
        self._now: Callable[[], float] | None = None
        self._beats: list[np.ndarray] = []
        self._rr: list[np.ndarray] = []
        lay = QVBoxLayout(self)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        lay.addLayout(self._build_controls())
        top = QHBoxLayout()
        self.pacer_widget = PacerWidget()
        top.addWidget(self.pacer_widget, 0)
        top.addLayout(self._build_status(), 1)
        lay.addLayout(top, 3)
        self._build_heart_plot()
        lay.addWidget(self.heart_plot, 3)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table, 2)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setStyleSheet("font-size: 16px;")
        lay.addWidget(self.result_label)
        self.offer(False)

    def _build_controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.length_box = QComboBox()
        for label, seconds in STEP_CHOICES:
            self.length_box.addItem(label, seconds)
        self.start_button = QPushButton("Start the assessment")
        self.start_button.setMinimumHeight(34)
        self.start_button.clicked.connect(
            lambda: self.start_requested.emit(float(self.length_box.currentData())))
        row.addWidget(self.length_box)
        row.addWidget(self.start_button)
        row.addStretch(1)
        return row

    def _build_status(self) -> QVBoxLayout:
        col = QVBoxLayout()
        self.step_label = QLabel("Not started")
        self.step_label.setStyleSheet("font-size: 22px; font-weight: bold;")
        self.countdown_label = QLabel("")
        self.countdown_label.setStyleSheet("font-size: 18px;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.heart_label = QLabel("Heart rate: -")
        self.heart_label.setStyleSheet("font-size: 20px; color: #D55E00; font-weight: bold;")
        self.sensor_label = QLabel("")
        self.sensor_label.setWordWrap(True)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #A34700; font-weight: bold; font-size: 15px;")
        for w in (self.step_label, self.countdown_label, self.progress, self.heart_label,
                  self.sensor_label, self.message_label):
            col.addWidget(w)
        col.addStretch(1)
        return col

    def _build_heart_plot(self) -> None:
        self.heart_plot = Plot(y_label="heart rate (beats/min)", x_label="seconds (0 = now)")
        self.heart_plot.setMinimumHeight(150)
        self.heart_plot.getPlotItem().setXRange(-HEART_WINDOW_S, 0.0, padding=0)
        # The pacer's rhythm under the heart rate: in-breath up (purple, thin).
        self.pacer_curve = pg.PlotDataItem(pen=pg.mkPen(qcolor(OKABE_ITO["purple"], 150), width=1))
        self.heart_curve = pg.PlotDataItem(pen=pg.mkPen(OKABE_ITO["vermillion"], width=2),
                                           antialias=True)
        self.heart_plot.addItem(self.pacer_curve)
        self.heart_plot.addItem(self.heart_curve)
        self.pacer_note = pg.TextItem("pacer (breathe in = up)", color=OKABE_ITO["purple"],
                                      anchor=(0, 1))
        self.pacer_note.setVisible(False)
        self.heart_plot.addItem(self.pacer_note)

    # ------------------------------------------------------------------ driving
    def offer(self, on: bool) -> None:
        """Enable the Start button (a run can start the assessment from the window) or not."""
        self.start_button.setEnabled(on)
        self.length_box.setEnabled(on)
        self.start_button.setToolTip(
            "" if on else "Run 'biofeedback resonance --window' with a heart strap on.")

    def begin(self, heart: str, steps: Sequence[ResonanceStep], now: Callable[[], float]) -> None:
        """The assessment starts: the strap ``heart``, the ``steps``, the run's clock."""
        self.steps, self._now = tuple(steps), now
        self.figures, self.result, self.saved_id = {}, None, None
        self._beats, self._rr = [], []
        self.table.setRowCount(len(self.steps))
        for i, s in enumerate(self.steps):
            self._set_row(i, [f"{s.rate_bpm:g}", "waiting", "", "", ""])
        set_text(self.sensor_label, f"Heart sensor: {heart}")
        if self.steps:  # the step length this run uses
            i = self.length_box.findData(self.steps[0].t_end - self.steps[0].t_start)
            if i >= 0:
                self.length_box.setCurrentIndex(i)
        set_text(self.message_label, "")
        set_text(self.result_label, "")
        self.offer(False)

    def add_beats(self, t: np.ndarray, rr: np.ndarray) -> None:
        """New beats from the strap: their times and RR intervals (s)."""
        self._beats.append(np.asarray(t, dtype=np.float64))
        self._rr.append(np.asarray(rr, dtype=np.float64).reshape(-1))

    def beats(self) -> tuple[np.ndarray, np.ndarray]:
        """All beats so far (times, RR intervals in s)."""
        if not self._beats:
            return np.empty(0), np.empty(0)
        return np.concatenate(self._beats), np.concatenate(self._rr)

    def cannot(self, reason: str) -> None:
        """Say the assessment cannot run (or stopped), and why."""
        set_text(self.message_label, f"The assessment cannot run: {reason}.")
        set_text(self.step_label, "Not assessed")
        set_text(self.countdown_label, "")
        self.pacer_widget.set_state(None, None, ("", ""), None)

    def finish(self, result: ResonanceResult, saved: str | None) -> None:
        """Show every step's figures, the chosen rate and why (and where it was saved)."""
        self.result, self.saved_id = result, saved
        if self._now is not None:
            self._update_heart(self._now())  # the last beats stay on screen
        by_rate = {f.rate_bpm: f for f in result.steps}
        for i, s in enumerate(self.steps):
            self.figures[i] = by_rate.get(s.rate_bpm)
            self._show_figures(i)
        p = result.pacer()
        chosen = ("Saved as your default pacer: <i>live</i> paces at this rate from now on "
                  f"({saved})." if saved else "Not saved (--no-save).")
        set_text(self.result_label,
                 f"<b>Your resonance rate: {result.rate_bpm:g} breaths/min</b> (in "
                 f"{p.inhale_s:.1f} s, out {p.exhale_s:.1f} s).<br>Why: {result.why}.<br>{chosen}")
        set_text(self.step_label, "Done")
        set_text(self.countdown_label, "")
        self.progress.setValue(1000)
        self.pacer_widget.set_state(None, None, ("Done", "breathe normally"), None)

    # ------------------------------------------------------------------ frames
    def current_step(self, now: float) -> int | None:
        """Index of the step under way at ``now`` (None: before, between or after)."""
        return next((i for i, s in enumerate(self.steps) if s.t_start <= now < s.t_end), None)

    def refresh(self) -> None:
        """Redraw: pacer, step, countdown, heart rate; figures of steps just ended."""
        if self._now is None or not self.steps or self.result is not None:
            return
        now = self._now()
        self._update_step(now)
        self._update_heart(now)
        for i, s in enumerate(self.steps):
            if i not in self.figures and now >= s.t_end:
                b, r = _ok_beats(*self.beats())
                self.figures[i] = step_figures(b, r, s)
                self._show_figures(i)

    def _update_step(self, now: float) -> None:
        k = self.current_step(now)
        first, last = self.steps[0], self.steps[-1]
        if k is None:
            ready = now < first.t_start
            words = ("Get ready", "breathe normally") if ready else ("Breathe easy", "")
            self.pacer_widget.set_state(None, None, words, None)
            set_text(self.step_label, "Get ready" if ready else "Finishing")
            left = first.t_start - now if ready else 0.0
            set_text(self.countdown_label, f"first step in {math.ceil(max(left, 0.0))} s")
            return
        step = self.steps[k]
        target = step.pacer.target(now)
        dur = {BreathPhase.INHALE: target.inhale_s, BreathPhase.PAUSE: target.hold_s,
               BreathPhase.EXHALE: target.exhale_s}.get(target.phase, 0.0)
        level = float(step.pacer.curve(now))
        self.pacer_widget.set_state(level, target.phase, PACER_TEXT[target.phase],
                                    (1.0 - target.progress) * dur)
        set_text(self.step_label,
                 f"Step {k + 1} of {len(self.steps)}: {step.rate_bpm:g} breaths/min")
        set_text(self.countdown_label, f"{fmt_clock(step.t_end - now)} left at this rate")
        span = last.t_end - first.t_start
        self.progress.setValue(round(1000 * min(max((now - first.t_start) / span, 0.0), 1.0)))
        row = self.table.item(k, 1)
        if row is not None and row.text() == "waiting":
            self._set_row(k, [f"{step.rate_bpm:g}", "measuring...", "", "", ""])

    def _update_heart(self, now: float) -> None:
        b, r = self.beats()
        keep = b >= now - HEART_WINDOW_S - 2.0
        b, r = b[keep], r[keep]
        if b.size:
            hr = 60.0 / r
            self.heart_curve.setData(b - now, hr)
            set_text(self.heart_label,
                     f"Heart rate: {hr[-1]:.0f} beats/min  \u00b7  RR {1000 * r[-1]:.0f} ms")
            lo, hi = float(hr.min()), float(hr.max())
            self.heart_plot.ensure_y(lo, hi if hi > lo + 4.0 else lo + 4.0)
        yr = self.heart_plot.y_range
        k = self.current_step(now)
        if yr is not None and k is not None:
            tp = now + np.linspace(-HEART_WINDOW_S, 0.0, 361)
            step = self.steps[k]
            inside = tp >= step.t_start
            curve = np.where(inside, step.pacer.curve(tp), np.nan)
            self.pacer_curve.setData(tp - now, yr[0] + curve * (yr[1] - yr[0]) * 0.25,
                                     connect="finite")
            self.pacer_note.setPos(-HEART_WINDOW_S + 0.5, yr[0] + 0.3 * (yr[1] - yr[0]))
            self.pacer_note.setVisible(True)

    def _show_figures(self, i: int) -> None:
        f = self.figures.get(i)
        rate = f"{self.steps[i].rate_bpm:g}"
        if f is None:
            self._set_row(i, [rate, "too few beats", "-", "-", "-"])
            return
        chosen = self.result is not None and self.result.rate_bpm == f.rate_bpm
        self._set_row(i, [rate + (" (chosen)" if chosen else ""), f"{f.swing_bpm:.1f} bpm",
                          f"{f.lf_power_ms2:.0f} ms\u00b2", f"{100 * f.following:.0f} %",
                          f"{f.paced_ms:.0f} ms"])

    def _set_row(self, row: int, cells: Sequence[str]) -> None:
        for col, text in enumerate(cells):
            self.table.setItem(row, col, QTableWidgetItem(text))

    def figures_shown(self) -> list[list[str]]:
        """The table as text, row by row (what the person reads)."""
        out = []
        for r in range(self.table.rowCount()):
            cells = [self.table.item(r, c) for c in range(self.table.columnCount())]
            out.append([c.text() if c is not None else "" for c in cells])
        return out


class _Worker(Generic[T]):
    """A coroutine on its own event loop in a worker thread; cancellable from the GUI."""

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run(self) -> None:
        if not self.result.set_running_or_notify_cancel():
            return
        try:
            self.result.set_result(asyncio.run(self._main()))
        except BaseException as exc:  # handed to the awaiting GUI coroutine
            self.result.set_exception(exc)

    async def _main(self) -> T:
        with self._lock:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        if self._cancelled.is_set():
            raise asyncio.CancelledError
        return await self._make()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)


async def in_worker_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Await ``make()`` run on its own event loop in a worker thread.

    The GUI's loop (``qasync``) stays free to draw, and a simulated clock at
    ``--speed max`` advances exactly as it does in the terminal (its advancer
    needs a plain asyncio loop). Cancelling this cancels the worker's coroutine.
    """
    worker = _Worker(make)
    thread = threading.Thread(target=worker.run, name="resonance", daemon=True)
    thread.start()
    done = asyncio.wrap_future(worker.result)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        worker.cancel()
        # Let the run close its links (the strap, the virtual radio) before going on.
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(WORKER_CLOSE_S):
                await done
        raise


async def assess_on_screen(
    view: ResonanceView, clock: Clock, reg: Registry, opts: AssessOptions, *,
    person: str, save: bool,
) -> Assessment:
    """Run the assessment with ``view`` watching; save the rate in ``person``'s profiles.

    Raises
    ------
    DeviceError, InputError
        It could not run (no heart strap, the link gave up, too few beats); the
        screen says so first.
    """
    from biofeedback.resonance import assess, save_resonance
    from devices.errors import DeviceError, InputError

    gui = asyncio.get_running_loop()
    # The run is on a worker thread: it hands the screen its news through the GUI's loop
    # (Qt objects are touched on the GUI thread only).
    opts.on_schedule = lambda heart, steps: gui.call_soon_threadsafe(
        view.begin, f"{heart.name} [{heart.adv.address}]", steps, clock.now)
    opts.on_beats = lambda t, rr: gui.call_soon_threadsafe(view.add_beats, t.copy(), rr.copy())
    try:
        done = await in_worker_thread(lambda: assess(clock, reg, opts))
    except (DeviceError, InputError) as exc:
        view.cannot(str(exc))
        raise
    saved = save_resonance(person, done.heart, done.result, opts.virtual) if save else None
    view.finish(done.result, None if saved is None else saved.id)
    return done

