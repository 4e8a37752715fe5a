"""The calibration screen: live traces under the countdown, the measured step highlighted;
the demo's window offers calibration instead of imposing it (offscreen Qt, real pixels)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from pytestqt.qtbot import QtBot
from ui_window_support import ARTIFACTS, BELT, PRESSURE, ManualClock, image, rgb

from biofeedback.cli.calibrate_cmds import StepPrompter, calibration_on_request, run_calibration
from biofeedback.cli.main import AppContext
from biofeedback.protocols.calibration_plan import PLANS, CalibrationPlan, PlanStep
from biofeedback.ui import calibration_view
from biofeedback.ui.app import run_window
from biofeedback.ui.model import LiveModel
from biofeedback.ui.window import (
    BACKGROUND,
    OKABE_ITO,
    SEGMENT_ALPHA,
    SEGMENT_TEXT,
    SessionWindow,
)
from calibration import StepKind
from devices.stream import Chunk


def tinted(hex_colour: str) -> np.ndarray:
    a = SEGMENT_ALPHA / 255.0
    return rgb(BACKGROUND) * (1 - a) + rgb(hex_colour) * a


def column(plot: Any, x: float) -> int:
    """The pixel column of data x on a plot widget."""
    vb = plot.getPlotItem().getViewBox()
    return int(plot.mapFromScene(vb.mapViewToScene(QPointF(x, 0.0))).x())


def near(pixels: np.ndarray, colour: np.ndarray, tol: float = 6.0) -> int:
    return int((np.abs(pixels.astype(float) - colour).max(axis=-1) <= tol).sum())


def test_calibration_screen_draws_live_traces_with_the_measured_segment(qtbot: QtBot) -> None:
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    win.show()
    qtbot.waitExposed(win)
    win.timer.stop()  # frames drawn by hand, at known times
    clock = ManualClock()
    model = LiveModel([PRESSURE, BELT], clock=clock)
    for a in np.arange(0.0, 40.0, 0.2):
        tp = a + np.arange(10) / 50.0
        squeeze = np.where((tp > 34.0), 60.0, 0.0)  # the squeeze starts at 34 s
        raw = 600.0 + 3.0 * np.sin(2 * np.pi * tp / 5.0) + squeeze
        model.on_chunk(Chunk(PRESSURE.name, tp, np.column_stack((raw, raw - 590.0)), "count",
                             PRESSURE.channels))
        tb = a + np.arange(2) / 10.0
        force = 12.0 + np.sin(2 * np.pi * tb / 5.0)
        model.on_chunk(Chunk(BELT.name, tb, force[:, None], "N", BELT.channels))
        clock.t = float(a) + 0.2
    cal = win.calibration
    cal.set_traces(model, PRESSURE.name, channel=0, breath=BELT.name)
    cal.set_segment(str(StepKind.SQUEEZE), 34.0, 39.0 + 6.0)  # 6 s of it still to come
    cal.show_step("squeeze as hard as you comfortably can (1)", 6.0, name="step 3 of 12",
                  total_s=11.0)
    win.show_screen("calibration")
    win.frame()
    qtbot.wait(10)
    ARTIFACTS.mkdir(exist_ok=True)
    win.grab().save(str(ARTIFACTS / "calibration_traces.png"))

    # The curves are the model's samples of the last 31 s (peak-decimated to the
    # width: every peak kept), x = 0 at now.
    now = clock.t
    t, v = model.raw(PRESSURE.name, cal.window_s + 1.0)
    x, y = cal.pressure_curve.xData, cal.pressure_curve.yData
    assert 0 < len(x) <= cal.pressure_plot.width() + 2
    assert x[0] == pytest.approx(t[0] - now, abs=0.1) and x[-1] == pytest.approx(t[-1] - now)
    assert y.max() == v[:, 0].max() and y.min() == v[:, 0].min()
    bt, _ = model.raw(BELT.name, cal.window_s + 1.0)
    assert cal.breath_curve.xData[-1] == pytest.approx(bt[-1] - now)
    assert not cal.no_breath_text.isVisible()
    # The segment is highlighted from its start to its end, on both graphs, and named.
    for region in cal.regions:
        assert region.isVisible()
        assert region.getRegion() == pytest.approx((34.0 - now, 45.0 - now))
    assert cal.segment_label.toPlainText() == SEGMENT_TEXT["squeeze"][0]
    assert cal.countdown_label.text() == "6" and cal.progress.value() == 455

    # Pixels: inside the segment the background is tinted orange; before it, it is not.
    arr = image(cal.breath_plot)
    rows = arr[arr.shape[0] // 4 : arr.shape[0] // 2]
    inside = rows[:, column(cal.breath_plot, 2.5)]  # ahead of now, still in the step
    outside = rows[:, column(cal.breath_plot, -20.0)]
    orange = tinted(OKABE_ITO["orange"])
    assert near(inside, orange) > 0.6 * len(inside)
    assert near(outside, orange) == 0 and near(outside, rgb(BACKGROUND)) > 0.5 * len(outside)
    # The squeeze shows as a rise of the pressure trace inside the segment.
    yr = cal.pressure_plot.y_range
    assert yr is not None and yr[1] > 660.0 and yr[0] < 600.0


def test_without_a_breath_sensor_the_screen_says_so(qtbot: QtBot) -> None:
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    model = LiveModel([PRESSURE], clock=ManualClock(1.0))
    win.calibration.set_traces(model, PRESSURE.name)
    win.show_screen("calibration")
    win.show()
    qtbot.waitExposed(win)
    win.frame()
    assert win.calibration.no_breath_text.isVisible()
    xb = win.calibration.breath_curve.xData
    assert xb is None or len(xb) == 0


def test_calibration_is_offered_only_when_a_run_can_start_it(qtbot: QtBot) -> None:
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    cal, sv = win.calibration, win.session
    assert not cal.quick_button.isEnabled() and not cal.assess_button.isEnabled()
    assert sv.calibrate_button.isHidden()
    win.offer_calibration(("quick",))
    assert cal.quick_button.isEnabled() and not cal.assess_button.isEnabled()
    assert not sv.calibrate_button.isHidden()
    with qtbot.waitSignal(win.calibrate_requested, timeout=500) as sig:
        sv.calibrate_button.click()
    assert sig.args == ["quick"]


class FakeEngine:
    def __init__(self) -> None:
        self.stopped = asyncio.Event()
        self.reason = ""

    def stop(self, reason: str = "stopped") -> None:
        self.reason = reason
        self.stopped.set()


def test_the_demo_window_calibrates_on_request(qtbot: QtBot) -> None:
    """The button stops the running session (kept) and runs the calibration, then a session."""
    runs: list[tuple[bool, str]] = []

    async def main(win: SessionWindow) -> dict[str, Any]:
        async def run(calibrate: bool, attach: list[Any]) -> dict[str, Any]:
            engine = FakeEngine()
            for a in attach:
                a(engine, None)
            if calibrate:
                runs.append((True, ""))
                return {"summary": {"ended_by": "protocol end"}, "calibration": {}}
            assert not win.session.calibrate_button.isHidden()  # offered while it runs
            win.session.calibrate_button.click()
            await asyncio.wait_for(engine.stopped.wait(), 5.0)
            runs.append((False, engine.reason))
            return {"summary": {"ended_by": engine.reason}}

        return await calibration_on_request(win, run, calibrate=False)

    result = run_window(main, show_safety_note=False)
    assert runs == [(False, "stopped to calibrate"), (True, "")]
    assert result is not None and "calibration" in result


def test_demo_calibrate_first_offers_nothing(qtbot: QtBot) -> None:
    seen: list[bool] = []

    async def main(win: SessionWindow) -> dict[str, Any]:
        async def run(calibrate: bool, attach: list[Any]) -> dict[str, Any]:
            seen.append(calibrate)
            assert win.session.calibrate_button.isHidden()
            return {"summary": {}}

        return await calibration_on_request(win, run, calibrate=True)

    assert run_window(main, show_safety_note=False) == {"summary": {}}
    assert seen == [True]


def test_a_real_calibration_draws_its_traces(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Virtual radio -> calibration runner, with the window's calibration screen watching.

    Looked at once the probe's samples are on screen during the rest step (an
    event: however long connecting takes), then the calibration is cancelled.
    """
    plan = CalibrationPlan("quick", (PlanStep(StepKind.READY, 0.5),
                                     PlanStep(StepKind.REST, 120.0)))
    monkeypatch.setitem(PLANS, "quick", plan)
    # The test's own frame draws what is there: no redraw throttle (a frame timer may have
    # drawn the step's first samples a moment before; the throttle would keep them).
    monkeypatch.setattr(calibration_view, "CALIBRATION_FPS", math.inf)
    app = AppContext(virtual=True, speed=1.0)
    seen: dict[str, Any] = {}

    async def main(win: SessionWindow) -> None:
        win.resize(1280, 820)
        win.show_screen("calibration")
        cal = win.calibration
        shown = asyncio.Event()
        set_traces = cal.set_traces

        def traces(model: LiveModel, pressure: str = "", **kw: Any) -> None:
            set_traces(model, pressure, **kw)
            on_chunk = model.on_chunk

            def chunk(c: Chunk) -> None:
                on_chunk(c)
                if len(model.raw(pressure)[0]) >= 10 and cal.segment is not None \
                        and cal.segment[0] == "rest":
                    shown.set()

            monkeypatch.setattr(model, "on_chunk", chunk)

        monkeypatch.setattr(cal, "set_traces", traces)
        prompter = StepPrompter(0, quiet=True)
        prompter.view = cal
        task = asyncio.ensure_future(
            run_calibration(app, "quick", "demo", "Boost", "GDX-RB", 0, prompter))
        done, _ = await asyncio.wait({task, asyncio.ensure_future(shown.wait())},
                                     return_when=asyncio.FIRST_COMPLETED)
        assert task not in done, task.exception()
        win.frame()
        assert cal.traces is not None
        seen["now"] = cal.traces.model.now()
        seen["segment"] = cal.segment
        seen["pressure"] = cal.pressure_curve.xData
        seen["regions"] = [r.getRegion() for r in cal.regions]
        seen["label"] = cal.segment_label.toPlainText()
        seen["shot"] = image(win)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run_window(main, show_safety_note=False)
    kind, a, b = seen["segment"]
    assert kind == "rest" and b - a == pytest.approx(120.0)
    assert seen["label"] == SEGMENT_TEXT["rest"][0]
    # The probe's samples, up to about now.
    assert len(seen["pressure"]) >= 10
    assert -5.0 < seen["pressure"][-1] <= 0.0  # a busy machine lags a little
    now = seen["now"]
    # Placed at the last redraw (new data or a new step): within a moment of now.
    for lo, hi in seen["regions"]:
        assert hi - lo == pytest.approx(120.0) and lo == pytest.approx(a - now, abs=0.5)
    assert near(seen["shot"], tinted(OKABE_ITO["sky"])) > 10_000  # the rest step, tinted
