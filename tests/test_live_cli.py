"""``live`` and ``demo`` end to end on the virtual radio.

The virtual twins stream over the virtual BLE radio, the engine runs the
protocol, the store records the session. The command runs through ``main`` in
this process (the ``cli`` fixture); SIGINT needs a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from conftest import Run

from biofeedback.cli.sensor_choice import choose_devices
from biofeedback.paths import data_dir, store_path
from biofeedback.protocols.pacer import Pacer
from biofeedback.runtime import LiveOptions, apply_profile, profile_for
from biofeedback.store import KnownDevice, Store
from biofeedback.ui.model import LiveModel
from calibration.profiles import Profile, SensorId, save_profile
from devices.ble import Found
from devices.drivers.base import Advertisement
from devices.errors import DeviceNotFoundError, InputError
from devices.registry import Registry

ENTRY = "from biofeedback.cli.main import main; main()"


# --------------------------------------------------------------------------- in-process


def _found(reg: Registry, name: str, address: str, driver: str | None, rssi: int = -50) -> Found:
    adv = Advertisement(name, address, rssi)
    return Found(BLEDevice(address, name, {}), adv, reg.get(driver) if driver else None)


def _known(address: str, driver: str, paired_at: str) -> KnownDevice:
    return KnownDevice(address, "x", driver, "reverse-engineered", True, paired_at, paired_at)


def test_choose_devices() -> None:
    reg = Registry.builtin()
    found = [
        _found(reg, "Perifit_o)", "AA:00", "perifit", -60),
        _found(reg, "Boost", "BB:00", "kgoal", -60),
        _found(reg, "GDX-RB 0K2001A7", "CC:00", "gdx-rb"),
        _found(reg, "Polar H10 A1", "DD:00", "polar-h10"),
        _found(reg, "Mystery", "EE:00", None),
    ]
    # Nothing paired: the strongest pressure sensor, ties in registry order; no breath.
    pelvic, belt = choose_devices(found, reg, [])
    assert pelvic.name == "Boost" and belt is None
    # The most recently paired pressure and breath sensors that are advertising.
    known = [_known("AA:00", "perifit", "2026-01-02"), _known("BB:00", "kgoal", "2026-01-01"),
             _known("DD:00", "polar-h10", "2026-01-03"), _known("FF:00", "kgoal", "2026-02-01")]
    pelvic, belt = choose_devices(found, reg, known)
    assert pelvic.name == "Perifit_o)" and belt is not None and belt.name == "Polar H10 A1"
    # Explicit choices win; "none" means no breath sensor.
    pelvic, belt = choose_devices(found, reg, known, device="boost", breath="gdx")
    assert pelvic.name == "Boost" and belt is not None and belt.adv.address == "CC:00"
    assert choose_devices(found, reg, known, breath="none")[1] is None
    with pytest.raises(InputError, match="not a pelvic pressure sensor"):
        choose_devices(found, reg, [], device="GDX-RB 0K2001A7")
    with pytest.raises(InputError, match="not a breath sensor"):
        choose_devices(found, reg, [], breath="Boost")
    with pytest.raises(InputError, match="no driver"):
        choose_devices(found, reg, [], device="Mystery")
    with pytest.raises(DeviceNotFoundError):
        choose_devices(found, reg, [], device="Elvie")
    with pytest.raises(DeviceNotFoundError, match="no pelvic pressure sensor"):
        choose_devices(found[2:4], reg, [])


def test_calibration_profile_sets_thresholds_pacer_and_zones() -> None:
    reg = Registry.builtin()
    boost = _found(reg, "Boost", "BB:00", "kgoal")
    specs = [s for s in reg.get("kgoal").info.streams]
    model = LiveModel(specs)
    # No profile: adaptive pipeline, default pacer (or the flags').
    assert profile_for("ada", boost) is None
    pipe, pacer = apply_profile(None, specs, model, LiveOptions())
    assert pacer == Pacer() and pipe.pelvic is not None and pipe.pelvic.thresholds is None
    profile = save_profile(data_dir() / "profiles", Profile(
        person="ada", kind="quick",
        sensor=SensorId("kgoal", "BB:00", "Boost", "kgoal.pressure", "raw", "count"),
        thresholds={"rest_level": 660.0, "drop_margin": 10.0, "contraction_margin": 40.0,
                    "strain_margin": 40.0, "unit": "count"},
        figures={"unit": "count"},
        suggested_pacer={"inhale_s": 3.0, "hold_s": 0.5, "exhale_s": 5.0},
    ))
    found = profile_for("ada", boost)
    assert found is not None and found.id == profile.id
    assert profile_for("bob", boost) is None
    pipe, pacer = apply_profile(found, specs, model, LiveOptions())
    assert (pacer.inhale_s, pacer.hold_s, pacer.exhale_s) == (3.0, 0.5, 5.0)
    assert pipe.pelvic is not None and pipe.pelvic.thresholds is not None
    assert pipe.pelvic.thresholds.drop_margin == 10.0
    zones = model.zones()
    assert zones is not None and zones.source == "profile" and zones.drop_margin == 10.0
    # Pacer flags win over the profile's.
    _, pacer = apply_profile(found, specs, model, LiveOptions(pacer=Pacer(5.0, 0.0, 5.0)))
    assert pacer.inhale_s == 5.0


def test_pain_and_note_asked_after_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    from biofeedback.cli import live_cmds
    from biofeedback.protocols.session import SessionEngine
    from biofeedback.signal.pipeline import Pipeline
    from devices.clock import SimClock

    reg = Registry.builtin()
    engine = SessionEngine(SimClock(), Pipeline(list(reg.get("kgoal").info.streams)), "quick")
    run_ = live_cmds.SessionRun(1, engine, engine.summary(), None)
    answers = iter(["eleven", "6", "sore afterwards"])  # a bad rating is asked again
    monkeypatch.setattr(live_cmds.click, "prompt", lambda *a, **k: next(answers))
    summary = live_cmds._finish(run_, ask=True)
    assert summary.pain_after == 6 and summary.note_after == "sore afterwards"
    assert any("Stop and rest" in a for a in summary.advice)
    # Enter skips both.
    answers = iter(["", ""])
    summary = live_cmds._finish(live_cmds.SessionRun(1, engine, engine.summary(), None),
                                ask=True)
    assert summary.pain_after is None and summary.note_after is None


# --------------------------------------------------------------------------- subprocess


Cli = Callable[..., Run]


def _json(proc: Run) -> Any:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def test_live_virtual_session_is_recorded_and_scored(cli: Cli) -> None:
    proc = cli("live", "--virtual", "--headless", "--speed", "max", "--duration", "60",
               "--person", "ada", "--pain-before", "2", "--note", "calm day", "--lsl", "--json")
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    assert set(out) == {"session_id", "summary"}
    s = out["summary"]
    # A compliant virtual person: every paced rep counted and scored.
    assert s["complete"] and s["ended_by"] == "protocol end" and s["fitted"]
    assert s["duration_s"] == pytest.approx(60.0, abs=0.5)
    assert s["reps"] == s["reps_target"] >= 2
    assert s["mean_score"] > 50 and s["drop_depth"] > 0
    assert s["drop_on_inhale_pct"] > 40 and s["strain_count"] == 0
    assert s["rep_clock"] == "pacer"  # the probe alone: reps follow the pacer
    assert s["pain_before"] == 2 and s["note_before"] == "calm day"

    with Store(store_path()) as store:
        info = store.session(out["session_id"])
        assert info.status == "finished" and info.complete and info.virtual
        assert info.person == "ada" and info.pain_before == 2 and info.reps == s["reps"]
        assert info.score == pytest.approx(s["mean_score"], abs=0.05)
        assert [d["driver"] for d in info.devices] == ["kgoal"]
        stats = store.stream_stats(out["session_id"])
        pressure = next(v for k, v in stats.items() if k.endswith("kgoal.pressure"))
        assert pressure.samples > 2500  # 50 Hz for 60 s, recorded as it streamed
        kinds = {e.kind for e in store.events(out["session_id"])}
        assert {"step", "cue", "rep", "plan", "end", "link", "zones"} <= kinds
        assert store.states(out["session_id"])


def test_pain_before_refuses_without_recording(cli: Cli) -> None:
    proc = cli("live", "--virtual", "--headless", "--speed", "max", "--pain-before", "6",
               "--json")
    assert proc.returncode == 1
    err = _json(proc)
    assert err["code"] == 1 and "Stop and rest" in err["error"]
    with Store(store_path()) as store:
        assert store.sessions() == []


def test_sigint_stops_and_keeps_the_recording() -> None:
    proc = subprocess.Popen(
        # --duration 60: the protocol fitted to a minute reaches its first exhale cue
        # at ~20 s, not ~54 s, and still has ~40 s to go when the signal lands.
        [sys.executable, "-c", ENTRY, "live", "--virtual", "--headless", "--speed", "8",
         "--breath", "GDX-RB", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    try:
        # Wait for the first exhale cue: the session has recorded the baseline
        # and a whole inhale from both sensors (an event, not a sleep).
        for line in proc.stderr:
            if "breathe out" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30.0)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "incomplete (interrupted)" in out
    with Store(store_path()) as store:
        (info,) = store.sessions()
        assert info.status == "finished" and not info.complete
        assert info.summary is not None and info.summary["ended_by"] == "interrupted"
        assert [d["driver"] for d in info.devices] == ["kgoal", "gdx-rb"]
        assert all(st.samples > 0 for st in store.stream_stats(info.id).values())


def test_demo_runs_a_recorded_session(
    tmp_path: Path, cli: Cli, tiny_calibration: Any
) -> None:
    proc = cli("demo", "--headless", "--speed", "max", "--duration", "30", "--json",
               "--calibrate")
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    # The existing keys stay; the session's and the calibration's are added.
    assert set(out) == {"streams", "session_id", "summary", "calibration"}
    th = out["calibration"]["thresholds"]
    assert th["unit"] == "count" and th["drop_margin"] > 0
    assert set(out["streams"]) == {"kgoal.pressure", "gdx-rb.force", "gdx-rb.rate"}
    for st in out["streams"].values():
        assert set(st) == {"samples", "rate_hz", "gaps", "reconnects"} and st["samples"] > 0
    s = out["summary"]
    assert s["complete"] and s["reps"] >= 1 and s["mean_score"] > 0
    assert s["rep_clock"] == "breath"  # the belt gives the breath
    with Store(store_path()) as store:
        info = store.session(out["session_id"])
        assert info.person == "demo"
        assert info.profile == out["calibration"]["profile"]  # the session used it
        # The demo's marks: its session, its devices (not among the user's), its profile.
        assert info.demo
        assert store.devices() == []
        assert {d.name.split()[0] for d in store.devices(include_demo=True)} == {"Boost", "GDX-RB"}
        marks = store.demo_marks()
        assert marks.sessions == [info.id] and len(marks.profiles) == 1
    profiles = list((data_dir() / "profiles").rglob("*.json"))
    assert profiles == marks.profiles
    wiped = cli("data", "wipe", "--demo", "--yes")
    assert wiped.returncode == 0, wiped.stderr
    with Store(store_path()) as store:
        assert store.sessions() == [] and store.devices(include_demo=True) == []
    assert not list((data_dir() / "profiles").rglob("*.json"))


def test_demo_with_the_adaptive_pacer_records_how_the_target_went(cli: Cli) -> None:
    proc = cli("demo", "--headless", "--speed", "max", "--duration", "40", "--json",
               "--adaptive-pacer")
    assert proc.returncode == 0, proc.stderr
    s = _json(proc)["summary"]
    a = s["adaptive_pacer"]
    # The virtual person follows well: the pacer judged their breaths and kept its rate.
    assert a["goal"] == a["start"] == {"rate_bpm": 6.0, "inhale_s": 4.0, "hold_s": 0.0,
                                       "exhale_s": 6.0}
    assert a["end"]["rate_bpm"] == pytest.approx(6.0, abs=0.3) and a["changes"]
    with Store(store_path()) as store:
        info = store.session(_json(proc)["session_id"])
        assert info.pacer is not None and info.pacer["adaptive"] is True
        assert info.summary is not None and info.summary["adaptive_pacer"] == a
        assert "pacer" in {e.kind for e in store.events(info.id)}
    shown = cli("show", str(info.id))
    assert shown.returncode == 0, shown.stderr
    assert "exhale 6 s, adaptive)" in shown.stdout and "pacer      adaptive, 6/min" in shown.stdout


def test_demo_no_save_records_nothing(cli: Cli, tiny_calibration: Any) -> None:
    proc = cli("demo", "--headless", "--speed", "max", "--duration", "20", "--json",
               "--calibrate", "--no-save")
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    assert out["session_id"] is None and out["summary"]["duration_s"] > 0
    assert out["calibration"]["profile"]  # the session used the calibration...
    with Store(store_path()) as store:  # ... and nothing was kept
        assert store.sessions() == [] and store.devices(include_demo=True) == []
        assert store.demo_marks().profiles == []
    assert not list((data_dir() / "profiles").rglob("*.json"))
