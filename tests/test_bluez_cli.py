"""``--via bluez``: the commands a person runs, through bleak's own BlueZ backend.

The virtual world serves the BlueZ double on a private D-Bus for the run, so
``demo`` and ``scan`` go through bleak's Linux code paths end to end (issue 18).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from conftest import Run

from devices.virtual.bluez import dbus_daemon

pytestmark = pytest.mark.skipif(
    dbus_daemon() is None, reason="needs dbus-daemon (apt install dbus)"
)

Cli = Callable[..., Run]


def test_demo_via_bluez_runs_a_session_end_to_end(cli: Cli) -> None:
    before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    r = cli("demo", "--via", "bluez", "--headless", "--duration", "6", "--seed", "3",
            "--speed", "max", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    streams = out["streams"]
    assert {"kgoal.pressure", "gdx-rb.force"} <= set(streams)
    assert streams["kgoal.pressure"]["samples"] >= 6 * 50 * 0.95
    assert all(s["gaps"] == 0 and s["reconnects"] == 0 for s in streams.values())
    assert out["summary"]["ended_by"] == "duration"  # shorter than the quick protocol
    # The run's bus is gone and bleak points where it pointed before.
    assert os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") == before


def test_the_environment_variable_chooses_bluez_too(cli: Cli) -> None:
    r = cli("scan", "--json", "--speed", "max", env={"BIOFEEDBACK_VIRTUAL": "bluez"})
    assert r.returncode == 0, r.stderr
    found = {d["driver"] for d in json.loads(r.stdout)}
    assert {"kgoal", "gdx-rb", "polar-h10"} <= found


def test_an_unknown_path_is_a_usage_error(cli: Cli) -> None:
    r = cli("scan", "--via", "carrier-pigeon")
    assert r.returncode == 2
    assert "carrier-pigeon" in r.stderr and "Traceback" not in r.stderr
