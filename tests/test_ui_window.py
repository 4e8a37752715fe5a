"""The Session screen on the offscreen Qt platform (pytest-qt): what it draws, from real state.

Screenshots of it go to ``test-artifacts/`` (gitignored) and are checked not to be
blank: several distinct colours, and the zone colours where zones are drawn. The
other screens are in ``test_ui_screens.py``, whole sessions in ``test_ui_window_e2e.py``.
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from ui_window_support import (
    PRESSURE,
    ManualClock,
    band_colour,
    distinct_colours,
    feed,
    image,
    make_window,
    pixels_near,
    rgb,
    save,
    show,
    synthetic_model,
)

from biofeedback.paths import data_dir
from biofeedback.ui.app import has_display
from biofeedback.ui.model import PACER_TEXT, STATE_TEXT, end_words
from biofeedback.ui.session_view import X_LABEL_ENDED, X_LABEL_LIVE
from biofeedback.ui.window import (
    BAND_TEXT,
    CURVE_COLOURS,
    MERGED_RISE_TEXT,
    STATE_COLOURS,
    SessionWindow,
    peak_decimate,
    thin_by_time,
)
from devices.stream import LinkEvent, LinkKind
from devices.vocab import PelvicState


@pytest.fixture
def window(qtbot: QtBot) -> SessionWindow:
    return make_window(qtbot)


# ----------------------------------------------------------------------------- binding


def test_first_paint_with_the_pinned_binding(qtbot: QtBot) -> None:
    """pyqtgraph 0.14.0 crashes on first paint with PySide6 6.12.0 (AxisItem.drawPicture)."""
    import PySide6

    assert pg.Qt.QT_LIB == "PySide6"
    assert PySide6.__version__.startswith("6.11."), (
        f"PySide6 {PySide6.__version__}: pin 6.11.x (6.12.0 + pyqtgraph 0.14.0 crash on paint)"
    )
    w = pg.PlotWidget(background="w")
    w.getPlotItem().setLabel("left", "value")
    w.getPlotItem().setLabel("bottom", "time")
    w.plot(np.arange(50.0), np.sin(np.arange(50.0) / 5.0), pen=pg.mkPen("b", width=2))
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.show()
    qtbot.waitExposed(w)
    qtbot.wait(20)
    arr = image(w)
    assert distinct_colours(arr) >= 8  # axes, tick labels and the curve were painted
    assert pixels_near(arr, rgb("#0000ff"), tol=10) > 50


def test_has_display() -> None:
    assert has_display({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not has_display({}, "linux")
    assert not has_display({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert has_display({"DISPLAY": ":0"}, "linux")
    assert has_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert has_display({}, "darwin") and has_display({}, "win32")


# ----------------------------------------------------------------------------- session screen


def test_session_screen_draws_the_model(qtbot: QtBot, window: SessionWindow) -> None:
    clock = ManualClock(1000.0)
    model, pacer = synthetic_model(clock)
    window.set_model(model)
    show(qtbot, window)
    sv = window.session
    now = clock.t
    assert sv.last_now == now

    # The pelvic trace: one curve per state, each the model's last window, drawn at about
    # one sample per two pixels (samples picked on a grid fixed in time).
    pv = model.pelvic(sv.window_s + 1.0)
    assert pv.t[0] >= now - sv.window_s - 1.0 and pv.t[-1] == pytest.approx(now - 0.02)
    keep = thin_by_time(pv.t, sv.thin_bin_s)
    assert keep[0] == 0 and keep[-1] == pv.t.size - 1  # first and newest samples drawn
    assert np.diff(pv.t[keep]).max() <= sv.thin_bin_s + 1 / 50.0
    assert sv.thin_bin_s < 0.2  # well under the 2 Hz content of the pelvic level
    t_k, rel_k, st_k = pv.t[keep], pv.relative[keep], pv.state[keep]
    seen = set()
    for state, curve in sv.state_curves.items():
        mask = st_k == state
        assert curve.opts["pen"].color().name().lower() == CURVE_COLOURS[state].lower()
        if not mask.any():
            assert curve.xData is None or len(curve.xData) == 0
            continue
        seen.add(state)
        np.testing.assert_allclose(curve.xData, t_k - now)
        np.testing.assert_array_equal(curve.yData[mask], rel_k[mask])
        assert np.isnan(curve.yData[~mask & ~np.r_[False, mask[:-1]]]).all()
    assert seen == {PelvicState.DROP, PelvicState.REST, PelvicState.CONTRACTION,
                    PelvicState.STRAIN}

    # The breath signal and the pacer target ahead of now, scaled to the breath's range.
    bv = model.breath(sv.window_s + 1.0)
    kb = thin_by_time(bv.t, sv.thin_bin_s)
    assert kb.size == bv.t.size  # 10 Hz belt: every sample is drawn
    np.testing.assert_allclose(sv.breath_curve.xData, bv.t - now)
    np.testing.assert_array_equal(sv.breath_curve.yData, bv.signal)
    lo, hi = model.breath_range(20.0) or (0.0, 0.0)
    xa, ya = sv.pacer_ahead.xData, sv.pacer_ahead.yData
    assert xa[0] == 0.0 and xa[-1] == pytest.approx(sv.ahead_s)
    np.testing.assert_allclose(ya, lo + pacer.curve(xa + now) * (hi - lo))

    # The big pacer shows what Pacer.target(now) asks.
    target = pacer.target(now)
    pw = sv.pacer_widget
    assert pw.phase == target.phase and pw.words == PACER_TEXT[target.phase]
    assert pw.level == pytest.approx(float(pacer.curve(np.array([now]))[0]))

    # Zone bands at the given zones, labelled, in their colours.
    zones = model.zones()
    assert zones is not None and zones.source == "profile"
    for state, (lo_z, hi_z) in zones.bands().items():
        band = sv.band_items[state]
        r0, r1 = band.getRegion()
        assert (r0 <= -1e5) if math.isinf(lo_z) else r0 == lo_z
        assert (r1 >= 1e5) if math.isinf(hi_z) else r1 == hi_z
        assert band.isVisible()
        assert sv.band_labels[state].toPlainText() == BAND_TEXT[state]
        assert band.brush.color().name().lower() == STATE_COLOURS[state].lower()

    # Text: state (in colour and words), reps, score, timer, step, links, cue.
    last_state = PelvicState(int(pv.state[-1]))
    assert sv.state_label.text() == f"Pelvic floor: {STATE_TEXT[last_state]}"
    assert STATE_COLOURS[last_state] in sv.state_label.styleSheet()
    assert model.total_reps == 5 and sv.reps_label.text() == "5"
    assert sv.score_label.text() == "last 75/100 - good\naverage 73"
    assert sv.timer_label.text() == "0:45"
    assert sv.step_label.text() == "Reps  (1:20 left)"
    assert "Boost" in sv.links_label.text() and "battery 87%" in sv.links_label.text()
    # Where the breath trace comes from, and how far to trust it.
    assert "Breath from gdx-rb (force): trust high" in sv.quality_label.text()
    assert sv.cue_label.text() == "breathe in, let the floor drop"
    assert sv.pacer_target.text() == "Pacer 6.0/min, in 4.0 s : out 6.0 s"
    assert sv.stop_note.isVisible() and "Stop if it hurts" in sv.stop_note.text()
    assert not sv.link_banner.isVisible() and not sv.stall_banner.isVisible()

    arr = save(window, "session")
    assert distinct_colours(arr) > 200
    for state in (PelvicState.DROP, PelvicState.REST, PelvicState.CONTRACTION,
                  PelvicState.STRAIN):
        assert pixels_near(arr, band_colour(STATE_COLOURS[state])) > 500, state
    for state in (PelvicState.DROP, PelvicState.CONTRACTION, PelvicState.STRAIN):
        assert pixels_near(arr, rgb(CURVE_COLOURS[state]), tol=12) > 20, state


def test_one_rise_band_when_strain_shares_the_contraction_margin(
    qtbot: QtBot, window: SessionWindow
) -> None:
    clock = ManualClock(1000.0)
    model, _ = synthetic_model(clock)
    model.clear_zones()  # the pipeline's own margins: (2.5, 4.0, 4.0)
    window.set_model(model)
    show(qtbot, window)
    sv = window.session
    assert not sv.band_items[PelvicState.CONTRACTION].isVisible()
    assert sv.band_items[PelvicState.STRAIN].getRegion()[0] == 4.0
    assert sv.band_labels[PelvicState.STRAIN].toPlainText() == MERGED_RISE_TEXT
    assert sv.band_items[PelvicState.DROP].getRegion()[1] == -2.5


def test_banners_for_strain_stall_and_link(qtbot: QtBot, window: SessionWindow) -> None:
    clock = ManualClock(1000.0)
    model, _ = synthetic_model(clock)
    window.set_model(model)
    show(qtbot, window)
    sv = window.session
    feed(model, clock, clock.t, clock.t + 1.0, rel_fn=lambda t: np.full_like(t, 9.0))  # push
    window.frame()
    assert sv.strain_banner.isVisible() and "no pushing" in sv.strain_banner.text()
    assert sv.state_label.text() == "Pelvic floor: pushing - soften"
    save(window, "session_strain")

    clock.t += 2.5  # no samples for 2.5 s
    window.frame()
    assert sv.stall_banner.isVisible()
    assert "kgoal.pressure" in sv.stall_banner.text() and "gdx-rb.force" in sv.stall_banner.text()
    assert sv.strain_banner.isVisible()  # held a moment after the push, so it does not flicker
    clock.t += 1.0
    window.frame()
    assert not sv.strain_banner.isVisible() and sv.stall_banner.isVisible()
    feed(model, clock, clock.t, clock.t + 0.4)
    window.frame()
    assert not sv.stall_banner.isVisible()

    model.on_link(LinkEvent(LinkKind.LOST, clock.t, "Boost", "link lost"))
    model.on_link(LinkEvent(LinkKind.RECONNECTING, clock.t, "Boost", "link lost", 1.0))
    clock.t += 4.0
    window.frame()
    assert sv.link_banner.isVisible()
    assert sv.link_banner.text().startswith("Boost: link lost 4 s ago - reconnecting")
    assert "reconnecting" in sv.links_label.text()
    assert not sv.stall_banner.isVisible() or "kgoal" not in sv.stall_banner.text()
    model.on_link(LinkEvent(LinkKind.CONNECTED, clock.t, "Boost", "reconnected", 4.0))
    feed(model, clock, clock.t, clock.t + 0.4)
    window.frame()
    assert not sv.link_banner.isVisible()


def test_buttons_emit_and_stop_asks_nothing(qtbot: QtBot, window: SessionWindow) -> None:
    clock = ManualClock(10.0)
    model, _ = synthetic_model(clock)
    window.set_model(model)
    show(qtbot, window)
    sv = window.session
    assert not sv.start_button.isEnabled() and sv.pause_button.isEnabled()
    with qtbot.waitSignal(window.pause_requested, timeout=500):
        sv.pause_button.click()
    model.set_running("paused")
    window.frame()
    assert sv.start_button.isEnabled() and sv.start_button.text() == "Resume"
    with qtbot.waitSignal(window.start_requested, timeout=500):
        sv.start_button.click()
    with qtbot.waitSignal(window.stop_requested, timeout=500):
        sv.stop_button.click()
    assert QApplication.activeModalWidget() is None  # no "are you sure?"
    model.set_running("stopped")
    window.frame()
    assert not sv.stop_button.isEnabled() and not sv.pause_button.isEnabled()


def test_safety_note_shows_once_and_never_blocks(qtbot: QtBot) -> None:
    first = SessionWindow()
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    note = first.session.safety_note
    assert note.isVisible() and "Ask a clinician first" in note.text.text()
    assert "Stop if anything hurts" in note.text.text()
    assert QApplication.activeModalWidget() is None and not first.isModal()
    assert first.session.start_button.isEnabled()  # usable while the note is up
    note.button.click()
    assert not note.isVisible()
    path = data_dir() / "ui.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = SessionWindow()
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert not second.session.safety_note.isVisible()
    second.session.safety_button.click()  # it can be read again on demand
    assert second.session.safety_note.isVisible()


def test_raw_signals_are_peak_decimated(qtbot: QtBot, window: SessionWindow) -> None:
    clock = ManualClock(100.0)
    model, _ = synthetic_model(clock)
    window.set_model(model)
    window.session.raw_toggle.setChecked(True)
    show(qtbot, window)
    _, curves = window.session.raw_plots[PRESSURE.name]
    t, v = model.raw(PRESSURE.name, window.session.window_s + 1.0)
    x = curves[0].xData
    assert x[-1] == pytest.approx(t[-1] - clock.t)
    assert curves[0].yData.max() == v[:, 0].max() and curves[0].yData.min() == v[:, 0].min()
    save(window, "session_raw")
    # Thinning keeps samples on a grid fixed in time: scrolling does not change them.
    t = 100.0 + np.arange(3000) / 50.0
    a = t[thin_by_time(t, 0.09)]
    b = t[5:][thin_by_time(t[5:], 0.09)]
    assert set(b[1:-1]) <= set(a) and a[-1] == t[-1]
    xs = np.arange(10_000.0)
    ys = np.sin(xs / 50.0)
    ys[1234] = 7.0
    dx, dy = peak_decimate(xs, ys, 400)
    assert dx.size <= 400 and dy.max() == 7.0 and dy.min() == ys.min()


def test_the_graphs_freeze_on_the_last_window_when_the_session_ends(
    qtbot: QtBot, window: SessionWindow
) -> None:
    """At the session's end the window stays on its last 30 s: with the clock 40 s on,
    the curves, the x range and the pixels of the traces are where they were."""
    clock = ManualClock(1000.0)
    model, _ = synthetic_model(clock)
    window.set_model(model)
    show(qtbot, window)
    sv = window.session
    model.set_running("stopped")  # what the engine does as the session ends
    model.set_end_note(end_words(True, "protocol end", "saved as session 7"))
    t_end = clock.t
    window.frame()
    qtbot.wait(20)  # laid out again (the axis label changed)

    def drawn() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        curves = {str(s): c for s, c in sv.state_curves.items()}
        curves |= {"breath": sv.breath_curve, "pacer past": sv.pacer_past}
        return {k: (np.array(c.xData), np.array(c.yData)) for k, c in curves.items()
                if c.xData is not None and len(c.xData)}

    before = drawn()
    x_range = sv.pelvic_plot.getPlotItem().viewRange()[0]
    assert {str(PelvicState.DROP), str(PelvicState.REST), "breath"} <= set(before)
    xs = np.concatenate([x for x, _ in before.values()])
    assert -0.1 <= xs.max() <= 0.0 and xs.min() < -sv.window_s + 1.0  # the whole 30 s
    shot = save(window, "session_ended")
    plots = [image(sv.pelvic_plot), image(sv.breath_plot)]
    clock.t += 40.0  # longer than the window: live, every trace would have left it
    window.frame()
    qtbot.wait(20)
    assert sv.last_now == t_end
    assert sv.pelvic_plot.getPlotItem().viewRange()[0] == x_range
    after = drawn()
    assert after.keys() == before.keys()
    for name, (x, y) in before.items():
        np.testing.assert_array_equal(after[name][0], x, err_msg=name)
        np.testing.assert_array_equal(after[name][1], y, err_msg=name)
    for state in (PelvicState.DROP, PelvicState.CONTRACTION, PelvicState.STRAIN):
        assert pixels_near(shot, rgb(CURVE_COLOURS[state]), tol=12) > 20, state
    # The graphs' pixels are the same 40 s on.
    assert np.array_equal(image(sv.pelvic_plot), plots[0])
    assert np.array_equal(image(sv.breath_plot), plots[1])
    # It says the session ended and what was kept; the timer stopped; nothing to press.
    assert sv.cue_label.text() == "Session complete - saved as session 7."
    assert sv.step_label.text() == "Ended" and sv.timer_label.text() == "0:45"
    assert sv.pelvic_plot.getPlotItem().getAxis("bottom").labelText == X_LABEL_ENDED
    assert not any(b.isEnabled() for b in (sv.start_button, sv.pause_button, sv.stop_button))


def test_a_model_that_runs_again_is_live_again(qtbot: QtBot, window: SessionWindow) -> None:
    clock = ManualClock(1000.0)
    model, _ = synthetic_model(clock)
    window.set_model(model)
    show(qtbot, window)
    model.set_running("stopped")
    clock.t += 5.0
    window.frame()
    assert window.session.last_now == 1045.0 and window.session.cue_label.text() == (
        "Session ended.")  # no note given: the words still say it
    model.set_running("running")  # the same model, a new run (a calibrated follow-up)
    window.frame()
    assert window.session.last_now == clock.t and model.end_note is None
    assert window.session.pelvic_plot.getPlotItem().getAxis("bottom").labelText == X_LABEL_LIVE
