"""Bad input at the store's edges: damaged rows, foreign files, modes, the user's files.

Each case runs the real command in this process and checks the exit code, a
one-line message (no traceback, no "internal error") and that the files are
unchanged where they should be (hashes before and after).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
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
    assert rows[good]["status"] == "complete" and rows[bad]["status"] == "damaged"
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
    assert [r["status"] for r in rows] == ["interrupted", "complete"]
    assert json.loads(clean(cli("show", str(crashed), "--json")).stdout)["status"] == (
        "interrupted")
    assert "Session 1: interrupted" in clean(cli("show", str(crashed))).stdout


# -- 13.5: the user's modes are theirs ---------------------------------------------------


def test_opening_the_store_keeps_the_users_mode(cli: Cli) -> None:
    record()
    store_path().chmod(0o640)
    assert clean(cli("sessions")).returncode == 0
    assert stat.S_IMODE(store_path().stat().st_mode) == 0o640


def test_new_folders_are_private_and_existing_ones_keep_their_mode(
    cli: Cli, tmp_path: Path
) -> None:
    sid = record()
    home = Path(os.environ["BIOFEEDBACK_HOME"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # the root made for us
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "other").write_text("someone else's")
    run = clean(cli("export", str(sid), "--format", "csv", "-o", str(shared), "--force"))
    assert run.returncode == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "events.csv").stat().st_mode) == 0o600
    assert clean(cli("report", str(sid), "-o", str(tmp_path / "a" / "b" / "r.html"))
                 ).returncode == 0
    for d in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    profiles = home / "data" / "profiles" / "ann"
    profiles.mkdir(parents=True)
    (profiles / "p.json").write_text("{}")
    assert clean(cli("data", "export-all", "-o", str(tmp_path / "all"))).returncode == 0
    for d in (tmp_path / "all", tmp_path / "all" / "profiles", tmp_path / "all" / "profiles/ann"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "all/profiles/ann/p.json").stat().st_mode) == 0o600


# -- 13.7, 13.8: existing files, symlinks, write failures --------------------------------


@pytest.mark.parametrize("args", [
    ["report", "{sid}", "-o", "{target}"],
    ["report", "{sid}", "-o", "fresh.html", "--png", "{target}"],
    ["export", "{sid}", "--format", "edf", "-o", "{target}"],
    ["export", "{sid}", "--format", "json", "-o", "{target}"],
])
def test_existing_targets_and_symlinks_are_refused_without_force(
    cli: Cli, tmp_path: Path, args: list[str]
) -> None:
    sid = record()
    mine = tmp_path / "mine.txt"
    mine.write_text("the user's own file")
    link = tmp_path / "link"
    link.symlink_to(mine)
    for target, word in ((mine, "exists"), (link, "symbolic link")):
        before = digest(mine)
        run = clean(cli(*[a.format(sid=sid, target=target) for a in args]))
        assert run.returncode == 1 and word in run.stderr, run
        assert digest(mine) == before and not Path("fresh.html").exists()
    run = clean(cli(*[a.format(sid=sid, target=link) for a in args], "--force"))
    assert run.returncode == 0, run
    assert mine.read_text() == "the user's own file"  # the link was replaced, not followed
    assert not link.is_symlink() and link.stat().st_size > 0
    assert [p.name for p in tmp_path.glob(".*.part")] == []


def test_capture_refuses_an_existing_file_before_connecting(cli: Cli, tmp_path: Path) -> None:
    mine = tmp_path / "cap.jsonl"
    mine.write_text("keep")
    run = clean(cli("capture", "Boost", "-o", str(mine), "--duration", "1", "--virtual"))
    assert run.returncode == 1 and "exists" in run.stderr
    assert mine.read_text() == "keep"


def test_a_failed_write_says_what_and_where_and_leaves_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = record()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    for args, target in ((["report", str(sid), "-o", "r.html", "--png", "r.png"], "r.html"),
                         (["export", str(sid), "--format", "csv", "-o", "csv"], "csv"),
                         (["data", "export-all", "-o", "all"], "all")):
        run = clean(cli(*args))
        assert run.returncode == 1, run
        assert "cannot write" in run.stderr and "No space left" in run.stderr
        assert target in run.stderr
    assert not Path("r.html").exists() and not Path("r.png").exists()
    assert [p.name for p in tmp_path.rglob("*.part")] == []


# -- 13.2: a suspended recording is still a recording -------------------------------------

SUSPENDED_RECORDER = r"""
import sys
from biofeedback.store import Store, SessionMeta
from devices.stream import StreamKind, StreamSpec

spec = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("pressure",), "count", 50.0)
w = Store(sys.argv[1]).begin_session(SessionMeta(
    person="ann", protocol="quick", streams=[spec], devices=[], t0=0.0))
w.flush()
print(w.session_id, flush=True)
sys.stdin.read()  # until the test ends it
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGSTOP")
def test_a_suspended_recording_is_not_taken_for_an_interrupted_one(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SUSPENDED_RECORDER, str(store_path())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        sid = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGSTOP)  # Ctrl-Z
        # Every heartbeat counts as stale, as after 10 s of SIGSTOP: no waiting needed.
        monkeypatch.setattr("biofeedback.store.liveness._HEARTBEAT_STALE_S", 0.0)
        with Store(store_path()) as store:
            assert store.session(sid).status == "recording"
        before = digest(store_path())
        for args in (["data", "wipe", "--yes"], ["delete", str(sid), "--yes"]):
            run = clean(cli(*args))
            assert run.returncode == 1 and "recorded" in run.stderr, run
        assert store_path().exists() and digest(store_path()) == before
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(store_path()) as store:
        assert store.session(sid).status == "interrupted"  # the OS let go of its lock
    assert clean(cli("delete", str(sid), "--yes")).returncode == 0


# -- 13.4, 13.6: foreign, damaged, read-only and misplaced stores -------------------------

FOREIGN_WAL = r"""
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE notes (t TEXT)")
c.execute("INSERT INTO notes VALUES ('not yours')")
os._exit(0)  # leave the -wal as a live application would
"""


def test_a_foreign_wal_database_is_really_left_untouched(cli: Cli) -> None:
    sp = store_path()  # (its folder is made by looking it up)
    subprocess.run([sys.executable, "-c", FOREIGN_WAL, str(sp)], check=True)
    wal = Path(f"{sp}-wal")
    assert wal.exists()
    before = (digest(sp), digest(wal))
    for args in (["sessions"], ["data"], ["show", "1"]):
        run = clean(cli(*args))
        assert run.returncode == 1 and "another application" in run.stderr, run
    assert wal.exists() and (digest(sp), digest(wal)) == before  # not checkpointed


def test_a_directory_at_the_store_path(cli: Cli) -> None:
    store_path().mkdir()
    run = clean(cli("sessions"))
    assert run.returncode == 1 and "is a directory" in run.stderr and run.stderr.count("\n") == 1


def test_bit_flips_are_named_and_the_store_can_still_be_wiped(cli: Cli) -> None:
    record()
    sp = store_path()
    data = bytearray(sp.read_bytes())
    for k in range(4096 + 200, len(data), 97):  # schema and rows, not the header
        data[k] ^= 0x55
    sp.write_bytes(bytes(data))
    before = digest(sp)
    for args in (["sessions"], ["show", "1"], ["data"], ["export", "1", "--format", "json"]):
        run = clean(cli(*args))
        assert run.returncode == 1 and str(sp) in run.stderr, run
        assert "damaged" in run.stderr or "corrupt" in run.stderr
    assert digest(sp) == before
    run = clean(cli("data", "wipe", "--yes"))
    assert run.returncode == 0 and not sp.exists()


def _chattr(flag: str, path: Path) -> None:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not available here: {done.stderr!r}")


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_commands_work_on_a_read_only_store(cli: Cli, what: str) -> None:
    # Immutable even for root: the honest way to test a read-only store in CI. Recorded
    # by another process, as a user's store is (SQLite keeps per-process state of files
    # this process has written).
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", "from tests.test_edges_store import record; record()"],
                   check=True, cwd=root)
    sid = 1
    sp = store_path()
    target = sp if what == "file" else sp.parent
    _chattr("+i", target)
    try:
        before = digest(sp)
        run = clean(cli("sessions", "--json"))
        assert run.returncode == 0, run
        assert json.loads(run.stdout)[0]["id"] == sid
        assert clean(cli("show", str(sid))).returncode == 0
        assert clean(cli("data")).returncode == 0
        run = clean(cli("delete", str(sid), "--yes"))
        assert run.returncode == 1 and "read-only" in run.stderr, run
        assert digest(sp) == before
    finally:
        _chattr("-i", target)
