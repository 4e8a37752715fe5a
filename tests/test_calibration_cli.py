"""``calibrate`` and ``profiles`` end to end on the virtual radio (in-process, --speed max).

The virtual person follows the runner's prompts through the body model's
intent; the probe and the belt are the byte-exact virtual kGoal and GDX-RB
over the virtual BLE stack. ``BIOFEEDBACK_HOME`` is isolated per test
(tests/conftest.py), so profiles land in a fresh directory.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Run

from biofeedback.protocols.calibration import thresholds_from_profile
from biofeedback.protocols.calibration_plan import PLANS, CalibrationPlan
from calibration import load_profile

Cli = Callable[..., Run]


def calibrate(cli: Cli, *args: str) -> dict[str, Any]:
    r = cli("calibrate", "--virtual", "--speed", "max", "--json", *args)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)  # stdout holds the profile only
    assert "breathe in slowly and let the floor drop" in r.stderr  # prompts on stderr
    return doc


def listing(cli: Cli, *args: str) -> list[dict[str, Any]]:
    r = cli("profiles", "--json", *args)
    assert r.returncode == 0, r.stderr
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


@pytest.mark.slow
def test_quick_calibration_saved_listed_reloaded_replaced(
    _isolated_home: Path, cli: Cli, short_calibration: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = calibrate(cli, "--quick", "--person", "Ann", "--seed", "3")
    assert first["kind"] == "quick" and first["person"] == "Ann"
    assert first["sensor"]["driver"] == "kgoal" and first["sensor"]["channel"] == "raw"
    assert first["breath_sensor"]["driver"] == "gdx-rb"
    assert "virtual twin" in first["units"]["conversion"]["source"]
    fig = first["figures_common"]
    assert fig["unit"] == "cmH2O"
    assert 27.0 < fig["rest"]["mean"] < 33.0  # the model rests at 30 cmH2O
    assert 31.5 < fig["mvc"] < 38.5  # MVC 35
    assert 3.2 < fig["drop_depth_corrected"] < 4.8  # drop 4
    assert first["thresholds"]["unit"] == "count"
    path = Path(first["path"])
    assert path.is_file() and path.is_relative_to(_isolated_home / "data" / "profiles")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    rows = listing(cli)
    assert [r["id"] for r in rows] == [first["id"]] and rows[0]["default"] is True
    reloaded = load_profile(path)
    assert reloaded.to_json()["thresholds"] == first["thresholds"]
    th = thresholds_from_profile(reloaded)
    assert th.unit == "count" and th.rest_level == pytest.approx(first["thresholds"]["rest_level"])

    # a second calibration of the same person and sensor becomes the default (its figures
    # are not looked at: one squeeze and one drop; rest and free breathing keep their
    # length, the probe's ripple alone gives the breaths)
    plan = short_calibration["quick"]
    once = [s for s in plan.steps if s.index <= 1]
    monkeypatch.setitem(PLANS, "quick", CalibrationPlan("quick", tuple(once)))
    second = calibrate(cli, "--person", "ann", "--seed", "4", "--breath", "none")
    assert second["breath_sensor"] is None
    rows = listing(cli, "--person", "ANN")
    assert [r["id"] for r in rows] == [first["id"], second["id"]]
    assert [r["default"] for r in rows] == [False, True]
    assert listing(cli, "--person", "Bo") == []
    text = cli("profiles")
    assert text.returncode == 0 and "* ann/" in text.stdout


@pytest.mark.slow
def test_assessment_saved_listed_reloaded(cli: Cli, short_calibration: dict[str, Any]) -> None:
    doc = calibrate(cli, "--assessment", "--person", "Cy", "--seed", "5")
    assert doc["kind"] == "assessment"
    a = doc["figures_common"]["assessment"]
    # as many of each as the plan asks (the fixture's shorter plan: 3 flicks, 3 holds, 2 drops)
    kinds = [str(s.kind) for s in short_calibration["assessment"].steps]
    assert a["phasic"]["n"] == kinds.count("flick") == 3
    assert a["tonic"]["n"] == kinds.count("hold") == 3
    assert a["drops"]["n"] == kinds.count("drop") == 2
    assert a["endurance"]["slope_per_s"] < 0
    assert 27.0 < a["pre_baseline"]["mean"] < 33.0
    rows = listing(cli, "--person", "Cy")
    assert len(rows) == 1 and rows[0]["kind"] == "assessment" and rows[0]["default"]
    assert load_profile(Path(doc["path"])).figures == doc["figures"]


@pytest.mark.slow
def test_refused_calibration_exits_1_with_the_step(cli: Cli, tiny_calibration: Any) -> None:
    # The probe goes silent after 2 s on every connection: most of the rest step is missing.
    faults = json.dumps({"Boost": {"silent_after": 100}})
    r = cli(
        "calibrate",
        "--virtual",
        "--speed",
        "max",
        "--json",
        "--breath",
        "none",
        env={"BIOFEEDBACK_VIRTUAL_FAULTS": faults},
    )
    assert r.returncode == 1
    err = json.loads(r.stdout)
    assert err["code"] == 1
    assert err["error"].startswith("calibration refused: repeat the rest step: ")
    assert "error: calibration refused" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(cli("profiles", "--json").stdout) == []  # nothing saved


@pytest.mark.slow
def test_a_breath_sensor_is_not_a_probe(cli: Cli) -> None:
    r = cli("calibrate", "--virtual", "--speed", "max", "--device", "GDX-RB")
    assert r.returncode == 1
    assert "is not a pelvic pressure sensor" in r.stderr
    r = cli("calibrate", "--virtual", "--speed", "max", "--person", "")
    assert r.returncode == 1 and "person must be" in r.stderr
    empty = cli("profiles")
    assert empty.returncode == 0 and "No calibration profiles yet" in empty.stdout


def test_steps_reach_the_window_calibration_screen(qtbot: Any) -> None:
    # The prompter forwards each step to the window's CalibrationView (what the
    # command does without --headless), besides the terminal.
    from biofeedback.cli.calibrate_cmds import StepPrompter
    from biofeedback.protocols.calibration import CalibrationRunner
    from biofeedback.ui.window import CalibrationView
    from devices.clock import SimClock

    view = CalibrationView()
    qtbot.addWidget(view)
    runner = CalibrationRunner(SimClock(), "quick")
    sched = runner.start(0.0)
    prompter = StepPrompter(len(sched), quiet=True)
    prompter.view = view
    prompter.on_step(sched[1])
    prompter.show_step(sched[1].step.text, 30.0)
    prompter.show_step(sched[1].step.text, 12.0)
    assert view.name_label.text() == f"step 2 of {len(sched)}"
    assert view.prompt_label.text() == "rest: breathe normally and let everything go"
    assert view.countdown_label.text() == "12"
    assert view.progress.value() == 600  # 18 of 30 s done
    prompter.on_step(sched[2])
    prompter.show_step(sched[2].step.text, 5.0)
    assert view.prompt_label.text() == "squeeze as hard as you comfortably can (1)"
    assert view.progress.value() == 0


def test_terminal_countdown_clears_its_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: "\r" alone left the end of a longer text behind ("...   1 s s ce").
    import os

    from biofeedback.cli.calibrate_cmds import StepPrompter, countdown_line

    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((60, 24)))
    prompter = StepPrompter(9)
    prompter.tty = True
    prompter._number = 1
    prompter.show_step("squeeze as hard as you comfortably can, then let go fully", 12.0)
    prompter.show_step("squeeze as hard as you comfortably can, then let go fully", 1.0)
    prompter._number = 2
    prompter.show_step("rest", 5.0)
    err = capsys.readouterr().err
    draws = [d for d in err.split("\r") if d.strip()]
    assert all(d.rstrip("\n").endswith("\x1b[K") for d in draws)  # the rest of the line erased
    assert all(len(d.rstrip("\n").removesuffix("\x1b[K")) < 60 for d in draws)  # never wraps
    assert err.count("\n") == 1  # the finished step keeps its own line
    assert countdown_line("[ 2/9] rest", 5, 80) == "\r[ 2/9] rest ...   5 s\x1b[K"
