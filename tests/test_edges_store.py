"""Bad input at the store's edges: damaged rows, foreign files, modes, the user's files.

Each case runs the real command in this process and checks the exit code, a
one-line message (no traceback, no "internal error") and that the files are
unchanged where they should be (hashes before and after).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from biofeedback.paths import store_path
from biofeedback.store import SessionMeta, Store
from devices.stream import Chunk, StreamKind, StreamSpec
from tests.conftest import Run

PRESSURE = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("pressure",), "count", 50.0)
Cli = Callable[..., Run]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative targets land in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def record(person: str = "ann", seconds: float = 2.0) -> int:
    with Store(store_path()) as store:
        w = store.begin_session(SessionMeta(
            person=person, protocol="quick", streams=[PRESSURE], t0=10.0,
            devices=[{"name": "Boost", "address": "F1:00:00:00:00:01", "driver": "kgoal"}],
            virtual=True))
        t = 10.0 + np.arange(int(seconds * 50)) / 50
        w.chunk(Chunk(PRESSURE.name, t, np.sin(t)[:, None], "count", PRESSURE.channels))
        w.finish(summary={"reps": 0}, complete=True)
        return w.session_id


def damage(sql: str, *args: object) -> None:
    """Change the store behind the program's back (as a bad disk or another tool would)."""
    conn = sqlite3.connect(store_path())
    with conn:
        conn.execute(sql, args)
    conn.close()


def clean(run: Run) -> Run:
    """A refusal or a warning is a line for people, never a crash."""
    for text in (run.stdout, run.stderr):
        assert "Traceback" not in text and "internal error" not in text, text
    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 13.3: one damaged row blocks nothing ---------------------------------------------


@pytest.mark.parametrize("column, value", [
    ("summary", "{not json"), ("devices", "[{"), ("pacer", b"\xff\xfe"),
    ("started_at", "yesterday"), ("summary", "[1, 2]"),
])
def test_damaged_session_is_listed_as_damaged_and_can_be_deleted(
    cli: Cli, column: str, value: object
) -> None:
    good, bad = record("ann"), record("bo")
    damage(f"UPDATE sessions SET {column} = ? WHERE id = ?", value, bad)
    run = clean(cli("sessions", "--json"))
    assert run.returncode == 0
    rows = {r["id"]: r for r in json.loads(run.stdout)}
    assert rows[good]["status"] == "finished" and rows[bad]["status"] == "damaged"
    assert f"session {bad} is damaged" in run.stderr and column in run.stderr
    run = clean(cli("sessions"))
    assert run.returncode == 0 and "damaged" in run.stdout
    assert clean(cli("show", str(bad))).returncode == 0
    assert json.loads(clean(cli("show", str(bad), "--json")).stdout)["status"] == "damaged"
    run = clean(cli("export", str(bad), "--format", "json", "-o", "x.json"))
    assert run.returncode == 1 and "damaged" in run.stderr and not Path("x.json").exists()
    assert clean(cli("data", "--json")).returncode == 0
    run = clean(cli("data", "export-all", "-o", "all"))
    assert run.returncode == 0 and "1 sessions" in run.stdout
    assert clean(cli("delete", str(bad), "--yes")).returncode == 0
    assert [r["id"] for r in json.loads(cli("sessions", "--json").stdout)] == [good]


def test_damaged_store_can_be_wiped(cli: Cli) -> None:
    sid = record()
    damage("UPDATE sessions SET summary = '{' WHERE id = ?", sid)
    run = clean(cli("data", "wipe", "--yes"))
    assert run.returncode == 0 and not store_path().exists()


def test_wrong_size_sample_block_is_a_one_line_error(cli: Cli) -> None:
    sid = record()
    damage("UPDATE blocks SET v = x'0102'")
    for args in (["report", str(sid), "-o", "r.html"],
                 ["export", str(sid), "--format", "csv", "-o", "out"]):
        run = clean(cli(*args))
        assert run.returncode == 1, run
        assert "damaged sample block" in run.stderr
    assert clean(cli("delete", str(sid), "--yes")).returncode == 0


def test_sessions_json_has_a_status(cli: Cli) -> None:
    # 13.16 / 14.6: an interrupted session is told apart in --json.
    crashed = record()
    record()
    # What a crash leaves: never finished, and no writer any more.
    damage("UPDATE sessions SET finished = 0, writer_pid = NULL WHERE id = ?", crashed)
    rows = json.loads(clean(cli("sessions", "--json")).stdout)
    assert [r["status"] for r in rows] == ["interrupted", "finished"]
