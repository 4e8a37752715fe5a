"""The window's other screens (calibration, history, sensors) on the offscreen Qt platform."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from ui_window_support import (
    cell,
    distinct_colours,
    make_window,
    pixels_near,
    rgb,
    save,
    show,
)

from biofeedback.paths import store_path
from biofeedback.ui.app import run_window
from biofeedback.ui.window import SessionWindow
from devices.clock import RealClock
from devices.virtual.world import VirtualWorld


@pytest.fixture
def window(qtbot: QtBot) -> SessionWindow:
    return make_window(qtbot)


# ----------------------------------------------------------------------------- other screens


def test_calibration_screen_counts_down(qtbot: QtBot, window: SessionWindow) -> None:
    show(qtbot, window)
    window.show_screen("calibration")
    cal = window.calibration
    cal.show_step("Rest and breathe normally.", 12.3, name="Resting baseline", total_s=30.0)
    assert cal.name_label.text() == "Resting baseline"
    assert cal.countdown_label.text() == "13"
    assert cal.progress.value() == 590
    cal.show_step("Rest and breathe normally.", 0.4)
    assert cal.countdown_label.text() == "1" and cal.progress.value() == 987
    window.offer_calibration(("quick",))  # a run that can calibrate (the demo)
    with qtbot.waitSignal(window.calibrate_requested, timeout=500) as sig:
        cal.quick_button.click()
    assert sig.args == ["quick"]
    arr = save(window, "calibration")
    assert distinct_colours(arr) > 30


def test_history_screen_lists_sessions_and_replays(qtbot: QtBot) -> None:
    rows: list[Mapping[str, Any]] = [
        {"id": i, "started_at": f"2025-03-{i:02d}T08:00:00", "duration_s": 130.0 + i,
         "reps": 5, "score": 50.0 + 6 * i, "complete": i != 3}
        for i in range(1, 7)
    ]
    win = SessionWindow(show_safety_note=False, sessions_fn=lambda: rows)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    show(qtbot, win)
    win.show_screen("history")  # switching reloads
    hist = win.history
    assert hist.table.rowCount() == 6 and not hist.empty_label.isVisible()
    assert cell(hist.table, 2, 4) == "no"
    np.testing.assert_array_equal(hist.trend_curve.yData, [56, 62, 68, 74, 80, 86])
    hist.table.selectRow(4)
    with qtbot.waitSignal(win.replay_requested, timeout=500) as sig:
        hist.replay_button.click()
    assert sig.args == [5]
    arr = save(win, "history")
    assert distinct_colours(arr) > 30
    assert pixels_near(arr, rgb("#0072B2"), tol=10) > 30  # the trend


def test_scan_without_an_event_loop_says_so(qtbot: QtBot, window: SessionWindow) -> None:
    show(qtbot, window)
    assert not window.pairing.start_scan()
    assert "no asyncio event loop" in window.pairing.status.text()
    assert window.pairing.scan_button.isEnabled()


def test_history_without_sessions_is_empty_not_broken(qtbot: QtBot, window: SessionWindow) -> None:
    show(qtbot, window)
    window.show_screen("history")
    assert window.history.table.rowCount() == 0
    assert window.history.empty_label.isVisible()
    assert not store_path().exists()  # looking at the history creates no database


def test_sensors_screen_scans_and_pairs_on_the_virtual_radio(qtbot: QtBot) -> None:
    seen: dict[str, Any] = {}

    async def main(win: SessionWindow) -> None:
        win.resize(1280, 820)
        win.show_screen("sensors")
        async with VirtualWorld(RealClock(), seed=0) as world:
            win.pairing.backend = world.backend  # what a virtual session sets
            # The Scan button starts the scan on the running loop...
            win.pairing.scan_timeout = 1.0
            win.pairing.scan_button.click()
            for _ in range(200):
                if "found" in win.pairing.status.text():
                    break
                await asyncio.sleep(0.05)
            seen["button"] = win.pairing.status.text()
            # ... and awaiting it directly does the same.
            found = await win.pairing.scan(timeout=1.0)
            table = win.pairing.table
            rows = {cell(table, r, 0): [cell(table, r, c) for c in range(5)]
                    for r in range(table.rowCount())}
            seen["rows"] = rows
            seen["shot"] = save(win, "sensors")
            boost = next(f for f in found if f.name == "Boost")
            with qtbot.waitSignal(win.paired, timeout=5000) as sig:
                await win.pairing.pair(boost)
            seen["paired"] = sig.args[0]

    run_window(main, show_safety_note=False)
    rows = seen["rows"]
    assert seen["button"].endswith("devices found.")
    assert len(rows) >= 7
    assert rows["Boost"][2:4] == ["kgoal", "reverse-engineered"]
    assert rows["Boost"][1].endswith("-50 dBm")
    assert rows["GDX-RB 0K2001A7"][2:4] == ["gdx-rb", "vendor-documented"]
    assert seen["paired"]["driver"] == "kgoal" and seen["paired"]["name"] == "Boost"
    from biofeedback.store import Store

    with Store(store_path()) as store:
        assert [d.name for d in store.devices()] == ["Boost"]
    assert distinct_colours(seen["shot"]) > 30
