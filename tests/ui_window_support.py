"""What the window tests share: a synthetic session model fed by hand, screenshots, pixels.

Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.results import (
    CouplingResult,
    PipelineStatus,
    PipelineUpdate,
    RepResult,
)
from biofeedback.signal.types import (
    BreathOutput,
    PelvicOutput,
    Quality,
)
from biofeedback.ui.model import LiveModel
from biofeedback.ui.window import (
    BACKGROUND,
    BAND_ALPHA,
    SessionWindow,
)
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import BreathPhase, PelvicState

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

PRESSURE = StreamSpec("kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"), "count", 50.0)
BELT = StreamSpec("gdx-rb.force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
ZONES = (100.0, 2.0, 3.0, 5.0)  # rest, drop, contraction, strain margins


class ManualClock:
    """A clock the test moves by hand (the model only reads ``now()``)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


# ----------------------------------------------------------------------------- helpers


def image(widget: QWidget) -> np.ndarray:
    """The widget as an (h, w, 3) uint8 array."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def save(widget: QWidget, name: str) -> np.ndarray:
    ARTIFACTS.mkdir(exist_ok=True)
    assert widget.grab().save(str(ARTIFACTS / f"{name}.png"))
    return image(widget)


def cell(table: QTableWidget, row: int, col: int) -> str:
    item = table.item(row, col)
    assert item is not None
    return item.text()


def distinct_colours(arr: np.ndarray) -> int:
    packed = arr.reshape(-1, 3).astype(np.uint32)
    return int(np.unique(packed[:, 0] << 16 | packed[:, 1] << 8 | packed[:, 2]).size)


def rgb(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=float)


def pixels_near(arr: np.ndarray, colour: np.ndarray, tol: float = 4.0) -> int:
    return int((np.abs(arr.astype(float) - colour).max(axis=2) <= tol).sum())


def band_colour(hex_colour: str) -> np.ndarray:
    """A zone colour as it looks painted at BAND_ALPHA over the background."""
    a = BAND_ALPHA / 255.0
    return rgb(BACKGROUND) * (1 - a) + rgb(hex_colour) * a


def status(t: float, state: PelvicState, reps: int) -> PipelineStatus:
    return PipelineStatus(t, BELT.name, BreathPhase.INHALE, 6.0, 1.0, 0.9, 0.5, state, 0.8,
                          Quality.OK, 100.0, reps, True, breath_trust=0.9)


def rep(index: int, score: float) -> RepResult:
    c = CouplingResult(0.0, 4.0, 10.0, 100.0, -3.0, -2.0, 3.0, 1.5, 0.7, False, False, score, ())
    return RepResult(index, c, score, score >= 70, ())


def state_of(rel: np.ndarray) -> np.ndarray:
    _, d, c, s = ZONES
    out = np.full(rel.shape, PelvicState.REST, dtype=np.int8)
    out[rel < -d] = PelvicState.DROP
    out[rel > c] = PelvicState.CONTRACTION
    out[rel > s] = PelvicState.STRAIN
    return out


def feed(
    model: LiveModel, clock: ManualClock, t0: float, t1: float, *, rel_fn: Any = None
) -> None:
    """Stream [t0, t1) of pressure, belt and pipeline outputs in 0.2 s chunks; the clock follows."""
    if rel_fn is None:
        def rel_fn(t: np.ndarray) -> np.ndarray:
            m = np.mod(t, 30.0)  # a squeeze, then a push, every 30 s
            bump = np.where((m > 20) & (m < 23), 6.0, 0.0) + np.where(m >= 23, 9.5, 0.0)
            return -3.0 + 2.5 * np.sin(2 * np.pi * t / 10.0) + bump * (m < 26)
    reps = 0
    for a in np.arange(t0, t1, 0.2):
        clock.t = float(a) + 0.2
        tp = a + np.arange(10) / 50.0
        rel = rel_fn(tp)
        model.on_chunk(Chunk(PRESSURE.name, tp, np.column_stack((rel + 100, rel + 100)),
                             "count", PRESSURE.channels))
        st = state_of(rel)
        new_reps: tuple[RepResult, ...] = ()
        if round(a * 5) % 50 == 0:
            reps += 1
            new_reps = (rep(reps, 70.0 + reps),)
        pel = PelvicOutput(PRESSURE.name, tp, rel + 100.0, rel, st, np.ones_like(tp), 100.0,
                           (2.5, 4.0, 4.0), 0.1, Quality.OK, (), False, 0.3)
        model.on_update(PipelineUpdate(PRESSURE.name, None, pel, (), new_reps,
                                       status(float(tp[-1]), PelvicState(int(st[-1])), reps)))
        tb = a + np.arange(2) / 10.0
        sig = np.sin(2 * np.pi * tb / 10.0)
        model.on_chunk(Chunk(BELT.name, tb, sig[:, None] + 20.0, "N", BELT.channels))
        br = BreathOutput(BELT.name, StreamKind.BREATH_FORCE, tb, sig,
                          np.full(2, BreathPhase.INHALE, np.int8), (), (), 6.0, 1.0, 0.9, 1, 0.4,
                          Quality.OK)
        model.on_update(PipelineUpdate(BELT.name, br, None, (), (),
                                       status(float(tb[-1]), PelvicState(int(st[-1])), reps)))


def synthetic_model(clock: ManualClock) -> tuple[LiveModel, Pacer]:
    model = LiveModel([PRESSURE, BELT], clock=clock,
                      device_of={PRESSURE.name: "Boost", BELT.name: "GDX-RB"})
    model.set_running("running")
    for dev in ("Boost", "GDX-RB"):
        model.on_link(LinkEvent(LinkKind.CONNECTED, clock.t, dev))
    model.on_link(LinkEvent(LinkKind.BATTERY, clock.t, "Boost", "87 %", 87.0))
    pacer = Pacer(4.0, 0.0, 6.0, t0=clock.t + 5.0)
    model.set_step("reps", clock.t + 5.0, clock.t + 125.0)
    model.set_pacer(pacer)
    model.set_zones(*ZONES)
    t0 = clock.t
    feed(model, clock, t0, t0 + 45.0)
    model.on_cue("breathe in, let the floor drop", t0 + 44.0)
    clock.t = t0 + 45.0
    return model, pacer



def make_window(qtbot: QtBot) -> SessionWindow:
    """A window without the first-run note, at the size the screenshots use."""
    win = SessionWindow(show_safety_note=False)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    return win


def show(qtbot: QtBot, win: SessionWindow) -> None:
    win.show()
    qtbot.waitExposed(win)
    win.timer.stop()  # the tests draw frames themselves, at known times
    win.frame()
    qtbot.wait(20)

