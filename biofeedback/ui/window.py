"""The application window: one :class:`SessionWindow` with named screens (tabs).

pyqtgraph on Qt (PySide6), joined to asyncio by ``qasync``: the session runs
as coroutines on the same thread as the GUI, so every Qt object is touched
from the GUI thread only. One :class:`~PySide6.QtCore.QTimer` (about 60 per
second) drives every redraw: it calls the ``refresh`` of the screen shown.

Modules of the window (all under ``biofeedback.ui``):

=====================  ==========================================================
``window``             this module: the main window, its screens and frame timer
``session_view``       the Session screen: breath and pelvic graphs, raw plots
``session_panel``      the Session screen's side panel and the pacer circle
``banners``            the first-run safety note, strain / link / stall banners
``calibration_view``   the Calibration screen (guided steps over live traces)
``pairing_view``       the Sensors screen (scan, pair)
``past_sessions``      the past-sessions screen (scores, trend, replay)
``plan_view``          the Plan screen (today's session, what comes next, change it)
``history_view``       the Progress screen (adherence and the weeks' trends)
``resonance_view``     the Resonance screen (the stepped resonance-breathing assessment)
``plots``              the calm plot widget, decimation, frame statistics
``theme``              the Okabe-Ito palette, words for states, small Qt helpers
=====================  ==========================================================

Adding a screen
---------------
Every screen is a named :class:`Screen`: a widget, its tab title, and two optional
hooks — ``refresh`` (called by the frame timer while the screen is shown) and
``on_show`` (called when the person switches to it). A new screen (Plan and
Progress are two) is a few lines in :meth:`SessionWindow._add_screens`, or from the
code that made the window::

    self.resonance = ResonanceView()
    self.add_screen("resonance", self.resonance, "Resonance", on_show=self.resonance.reload)

after which ``window.show_screen("resonance")`` switches to it and
``window.screen_names`` lists it. Nothing else in the window needs to change.

Colours are the Okabe-Ito colour-blind-safe palette, and every colour comes
with words (band labels, the state label, the link status), never colour alone.
The names this module exported before the split are re-exported from here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from biofeedback.ui.banners import (
    SAFETY_TEXT,
    SafetyNote,
    dismiss_safety_note,
    safety_note_dismissed,
)
from biofeedback.ui.calibration_view import (
    CALIBRATION_FPS,
    SEGMENT_ALPHA,
    SEGMENT_TEXT,
    CalibrationView,
)
from biofeedback.ui.history_view import ProgressView, progress_loader
from biofeedback.ui.model import LiveModel
from biofeedback.ui.pairing_view import PairFn, PairingView, Tasks
from biofeedback.ui.past_sessions import HistoryView, SessionsFn, history_rows
from biofeedback.ui.plan_view import PlanView, plan_changer, plan_loader
from biofeedback.ui.plots import FrameStats, peak_decimate, thin_by_time
from biofeedback.ui.resonance_view import ResonanceView
from biofeedback.ui.session_panel import PacerWidget
from biofeedback.ui.session_view import SessionView
from biofeedback.ui.theme import (
    BACKGROUND,
    BAND_ALPHA,
    BAND_TEXT,
    CURVE_COLOURS,
    FOREGROUND,
    MERGED_RISE_TEXT,
    OKABE_ITO,
    QUALITY_TEXT,
    REST_LINE,
    STATE_COLOURS,
)
from devices.clock import Clock

__all__ = [
    "BACKGROUND",
    "BAND_ALPHA",
    "BAND_TEXT",
    "CALIBRATION_FPS",
    "CURVE_COLOURS",
    "FOREGROUND",
    "MERGED_RISE_TEXT",
    "OKABE_ITO",
    "QUALITY_TEXT",
    "REST_LINE",
    "SAFETY_TEXT",
    "SEGMENT_ALPHA",
    "SEGMENT_TEXT",
    "STATE_COLOURS",
    "CalibrationView",
    "FrameStats",
    "HistoryView",
    "PacerWidget",
    "PairingView",
    "ResonanceView",
    "SafetyNote",
    "Screen",
    "SessionView",
    "SessionWindow",
    "dismiss_safety_note",
    "history_rows",
    "peak_decimate",
    "safety_note_dismissed",
    "thin_by_time",
]


@dataclass(frozen=True)
class Screen:
    """One screen of the window: a named tab.

    Attributes
    ----------
    name : str
        The key for :meth:`SessionWindow.show_screen`.
    title : str
        The tab's text.
    widget : QWidget
        What the screen shows.
    refresh : callable, optional
        Called by the frame timer while the screen is shown (redraw from live data).
    on_show : callable, optional
        Called when the person switches to the screen (e.g. reload from the store).
    """

    name: str
    title: str
    widget: QWidget
    refresh: Callable[[], None] | None = None
    on_show: Callable[[], object] | None = None


class SessionWindow(QMainWindow):
    """The application window: Session, Sensors, Calibration and History screens (and more).

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
    person : str, optional
        Whose plan and progress the Plan and Progress screens show (None: the
        sessions recorded without a person).
    """

    start_requested = Signal()
    pause_requested = Signal()
    stop_requested = Signal()
    replay_requested = Signal(object)
    calibrate_requested = Signal(str)
    paired = Signal(object)
    closed = Signal()

    #: The screens every window has (others are added with :meth:`add_screen`).
    SCREENS = ("session", "sensors", "calibration", "history", "resonance", "plan", "progress")

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
        person: str | None = None,
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
        self.plan_view = PlanView(plan_loader(person), plan_changer(person))
        self.progress_view = ProgressView(progress_loader(person))
        self.resonance = ResonanceView()
        self._resonance_runner: Callable[[float], Awaitable[Any]] | None = None
        self._tasks = Tasks()
        self.resonance.start_requested.connect(self._start_resonance)
        self.screens: dict[str, Screen] = {}
        self._add_screens()
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

    def offer_resonance(self, runner: Callable[[float], Awaitable[Any]] | None) -> None:
        """Let the person start the resonance assessment from its screen: ``runner(step_s)``
        runs it (e.g. :func:`~biofeedback.ui.resonance_view.assess_on_screen`). None: not
        offered (the screen says how to run it)."""
        self._resonance_runner = runner
        self.resonance.offer(runner is not None)

    def _start_resonance(self, step_s: float) -> None:
        if self._resonance_runner is not None:
            self.resonance.offer(False)
            self._tasks.spawn(self._resonance_runner(step_s),
                              lambda exc: self.resonance.cannot(str(exc)))

    # ------------------------------------------------------------------ screens
    def _add_screens(self) -> None:
        """The built-in screens, in tab order (add a new screen here, or call add_screen)."""
        self.add_screen("session", self.session, "Session", refresh=self._refresh_session)
        self.add_screen("sensors", self.pairing, "Sensors")
        self.add_screen("calibration", self.calibration, "Calibration",
                        refresh=self.calibration.refresh)
        self.add_screen("history", self.history, "History", on_show=self.history.reload)
        self.add_screen("resonance", self.resonance, "Resonance", refresh=self.resonance.refresh)
        self.add_screen("plan", self.plan_view, "Plan", on_show=self.plan_view.reload)
        self.add_screen("progress", self.progress_view, "Progress",
                        on_show=self.progress_view.reload)

    def add_screen(
        self, name: str, widget: QWidget, title: str, *,
        refresh: Callable[[], None] | None = None, on_show: Callable[[], object] | None = None,
    ) -> Screen:
        """Add a screen as the last tab.

        Parameters
        ----------
        name : str
            Its key for :meth:`show_screen` (unique).
        widget : QWidget
            What it shows.
        title : str
            The tab's text.
        refresh : callable, optional
            Called on every frame while the screen is shown.
        on_show : callable, optional
            Called each time the person switches to it.
        """
        if name in self.screens:
            raise ValueError(f"the window already has a screen named {name!r}")
        screen = Screen(name=name, title=title, widget=widget, refresh=refresh, on_show=on_show)
        self.screens[name] = screen
        self.tabs.addTab(widget, title)
        return screen

    @property
    def screen_names(self) -> tuple[str, ...]:
        """The screens' names in tab order."""
        return tuple(self.screens)

    def show_screen(self, name: str) -> None:
        """Switch to the screen ``name`` (``session``, ``sensors``, ``calibration``, ...)."""
        if name not in self.screens:
            raise ValueError(f"no screen {name!r}; the window has {', '.join(self.screens)}")
        self.tabs.setCurrentWidget(self.screens[name].widget)

    def current_screen(self) -> Screen | None:
        """The screen shown."""
        widget = self.tabs.currentWidget()
        return next((s for s in self.screens.values() if s.widget is widget), None)

    def _tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        for screen in self.screens.values():
            if screen.widget is widget and screen.on_show is not None:
                screen.on_show()

    # ------------------------------------------------------------------ frames
    def frame(self) -> None:
        """One frame: redraw the visible screen from live data (the timer calls this)."""
        t0 = time.perf_counter()
        screen = self.current_screen()
        if screen is not None and screen.refresh is not None:
            screen.refresh()
        self.stats.frames += 1
        self.stats.work_s.append(time.perf_counter() - t0)

    def _refresh_session(self) -> None:
        model = self.session.model
        if model is None:
            return
        p = model.take_pending()
        if p is not None and self._pending is None:
            self._pending = p
        self.session.refresh()

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
