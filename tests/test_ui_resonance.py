"""The window's Resonance screen on the virtual radio at --speed max: the body model's
heart (its RSA peaks at the seeded resonance rate) measured through the virtual strap,
the screen's pacer, heart rate, figures and choice checked on screen, and the same rate
as ``biofeedback resonance`` finds for the same seed, saved in the profile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

import numpy as np
import pytest
from ui_window_support import image

from biofeedback.cli.main import AppContext
from biofeedback.cli.resonance_cmds import assess_options
from biofeedback.cli.runtime import registry_for
from biofeedback.paths import data_dir
from biofeedback.resonance import NO_HEART
from biofeedback.ui.app import run_window
from biofeedback.ui.resonance_view import assess_on_screen
from biofeedback.ui.theme import OKABE_ITO
from biofeedback.ui.window import SessionWindow
from calibration.profiles import latest_resonance
from calibration.resonance import resonance_schedule
from devices.errors import DeviceNotFoundError

ARGS = ("--virtual", "--speed", "max", "--step-s", "30", "--rates", "6,5", "--seed", "3")


def near(pixels: np.ndarray, hex_colour: str, tol: float = 40.0) -> int:
    h = hex_colour.lstrip("#")
    rgb = np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=float)
    return int((np.abs(pixels.astype(float) - rgb).max(axis=-1) <= tol).sum())


def _on_screen(device: str | None = None) -> dict[str, Any]:
    """One assessment on the window's Resonance screen, as ``resonance --window`` runs it."""
    app = AppContext(virtual=True, speed=None, seed=3)
    opts = assess_options(app, device, 30.0, (6.0, 5.0), quiet=True)
    clock = app.clock()
    seen: dict[str, Any] = {}

    async def main(win: SessionWindow) -> None:
        win.resize(1280, 900)
        win.show_screen("resonance")
        view = win.resonance
        win.timer.stop()  # frames drawn by hand
        real_begin = view.begin

        def begin(*a: Any) -> None:  # a frame mid-run: the first step under way
            real_begin(*a)
            seen["steps"] = view.steps

        view.begin = begin  # type: ignore[method-assign]
        try:
            done = await assess_on_screen(view, clock, registry_for(), opts, person="ann",
                                          save=True)
            seen["rate"] = done.result.rate_bpm
            seen["saved"] = view.saved_id
        except DeviceNotFoundError as exc:
            seen["error"] = str(exc)
        win.frame()
        seen["table"] = view.figures_shown()
        seen["result"] = view.result_label.text()
        seen["message"] = view.message_label.text()
        seen["heart"] = view.heart_label.text()
        seen["curve"] = view.heart_curve.yData
        seen["shot"] = image(view.heart_plot)
        seen["screen"] = win.current_screen()

    run_window(main, show_safety_note=False)
    return seen


def test_resonance_screen_finds_the_clis_rate_and_saves_it(cli: Any) -> None:
    seen = _on_screen()
    assert seen["screen"].name == "resonance"
    assert [s.rate_bpm for s in seen["steps"]] == [6.0, 5.0]
    # Every step's figures on screen, the chosen one marked, the choice and why said.
    rows = seen["table"]
    assert [r[0].split()[0] for r in rows] == ["6", "5"]
    assert all(r[1].endswith("bpm") and r[2].endswith("ms²") and r[3].endswith("%")
               for r in rows)
    chosen = [r for r in rows if "(chosen)" in r[0]]
    assert len(chosen) == 1 and float(chosen[0][0].split()[0]) == seen["rate"]
    assert f"Your resonance rate: {seen['rate']:g} breaths/min" in seen["result"]
    assert "Why: the heart rhythm swung most" in seen["result"]
    assert seen["saved"] and seen["saved"] in seen["result"]
    # The live heart rate from the strap's RR intervals, drawn in its colour.
    assert seen["heart"].startswith("Heart rate: ") and "RR" in seen["heart"]
    hr = np.asarray(seen["curve"])
    assert hr.size > 20 and 40.0 < float(np.median(hr)) < 100.0
    assert near(seen["shot"], OKABE_ITO["vermillion"]) > 200
    # In the profile: the default pacer from now on.
    saved = latest_resonance(data_dir() / "profiles", "ann")
    assert saved is not None and saved["rate_bpm"] == seen["rate"]
    # The terminal command on the same seed finds the same rate.
    proc = cli("resonance", *ARGS, "--json", "--no-save")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rate_bpm"] == seen["rate"]


def test_resonance_screen_without_a_heart_sensor_says_it_cannot() -> None:
    seen = _on_screen(device="No Such Strap")
    assert NO_HEART in seen["error"]
    assert seen["message"].startswith("The assessment cannot run: ")
    assert "needs RR intervals" in seen["message"]
    assert latest_resonance(data_dir() / "profiles", "ann") is None


def test_the_screen_draws_the_pacer_of_the_step_under_way(qtbot: Any) -> None:
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    view = win.resonance
    t = [0.0]
    steps = resonance_schedule(5.0, 30.0, (6.0, 5.0))
    view.begin("Polar H10 test", steps, lambda: t[0])
    beats = np.cumsum(np.full(40, 0.9)) + 3.0
    view.add_beats(beats, np.full(40, 0.9))
    t[0] = 1.0
    view.refresh()
    assert view.step_label.text() == "Get ready" and view.pacer_widget.level is None
    t[0] = 36.0  # 1 s into step 2 (5/min: inhale 4.8 s)
    view.refresh()
    assert view.step_label.text() == "Step 2 of 2: 5 breaths/min"
    assert view.pacer_widget.words[0] == "Breathe in"
    assert view.pacer_widget.left_s == pytest.approx(3.8)
    assert view.figures_shown()[1][1] == "measuring..."
    assert view.figures_shown()[0][1] == "0.0 bpm"  # step 1 ended: a steady heart, no swing
    assert view.heart_label.text() == "Heart rate: 67 beats/min  ·  RR 900 ms"


def test_the_window_offers_the_assessment_on_its_screen(qtbot: Any) -> None:
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    assert "resonance" in win.screen_names
    assert not win.resonance.start_button.isEnabled()  # nothing to run it with
    asked: list[float] = []

    async def runner(step_s: float) -> None:
        asked.append(step_s)

    win.offer_resonance(runner)
    assert win.resonance.start_button.isEnabled()
    win.resonance.length_box.setCurrentIndex(2)
    with qtbot.waitSignal(win.resonance.start_requested) as got:
        win.resonance.start_button.click()
    assert got.args == [30.0]


def test_closing_the_window_mid_run_stops_the_worker_cleanly() -> None:
    app = AppContext(virtual=True, speed=None, seed=3)
    opts = assess_options(app, None, 30.0, (6.0, 5.0), quiet=True)
    clock = app.clock()
    seen: dict[str, Any] = {}

    async def main(win: SessionWindow) -> None:
        view = win.resonance
        started = asyncio.Event()
        real_begin = view.begin

        def begin(*a: Any) -> None:
            real_begin(*a)
            started.set()

        view.begin = begin  # type: ignore[method-assign]
        task = asyncio.ensure_future(assess_on_screen(view, clock, registry_for(), opts,
                                                      person="ann", save=True))
        await started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        seen["cancelled"] = task.cancelled()
        seen["workers"] = [t for t in threading.enumerate() if t.name == "resonance"]

    run_window(main, show_safety_note=False)
    assert seen["cancelled"]
    for t in seen["workers"]:  # its result is handed over just before the thread returns
        t.join(timeout=5.0)
    assert not any(t.is_alive() for t in seen["workers"])  # it closed its links and ended
    assert latest_resonance(data_dir() / "profiles", "ann") is None
