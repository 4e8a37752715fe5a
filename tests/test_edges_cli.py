"""The bad-input sweep: every input a user can type or a file can hold gets a clear answer.

Each case runs the real entry point in this process (``main`` under click's
``CliRunner`` isolation) and checks: the exit code DESIGN.md documents (1 bad
input or refused, 2 usage), one clear line (click's usage errors end in one
``Error:`` line), no traceback, no "internal error", and the user's files
unchanged (hashes of every file under the home and the test folder, before
and after).
"""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from biofeedback.cli import main as cli_main
from biofeedback.cli.main import main
from biofeedback.paths import log_file, store_path
from biofeedback.store import Store


@dataclass
class Run:
    code: int
    out: str
    err: str


def bf(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
    """``biofeedback ARGS`` in this process: exit code, stdout, stderr."""
    with CliRunner().isolation(input=stdin, env=env) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (the user's files, as the test sees them)."""
    found: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


@pytest.fixture
def unchanged(tmp_path: Path) -> Iterator[None]:
    """Fail if the command changed any file under the test's folder (home included)."""
    before = hashes(tmp_path)
    yield
    assert hashes(tmp_path) == before


@pytest.fixture(autouse=True)
def _no_log_file_left() -> Iterator[None]:
    """``-v`` opens the log file of this test's home: close it after the test."""
    yield
    fh = cli_main._handlers.pop("file", None)
    if fh is not None:
        logging.getLogger().removeHandler(fh)
        fh.close()
    logging.getLogger().setLevel(logging.WARNING)


def refused(r: Run, code: int, *needles: str) -> None:
    """A clear refusal: the exit code, the words, one line, no traceback."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    lines = r.err.strip().splitlines()
    if code == 2:
        # click's usage error (its "Error: " paragraph ends the output, a choice list
        # may follow on its lines), or our own one-line usage error ("error: ").
        starts = [i for i, x in enumerate(lines) if x.startswith(("Error: ", "error: "))]
        assert starts, r.err
        assert lines[starts[0]].startswith("error: ") is (len(lines) == 1), r.err
        message = " ".join(lines[starts[0]:])
    else:
        assert len(lines) == 1, r.err
        message = lines[0]
    for needle in needles:
        assert needle in message, (needle, message)


# ---------------------------------------------------------------- issue 13.12: absurd values

PHASE = "1.0<=x<=15.0"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["live", "--inhale", "0.01", "--exhale", "0.01"], PHASE),
        (["live", "--inhale", "1e6"], PHASE),
        (["live", "--exhale", "nan"], "not a finite number"),
        (["live", "--inhale", "inf"], PHASE),
        (["live", "--hold", "60"], "0.0<=x<=10.0"),
        (["live", "--duration", "-5"], "0.0<x<=86400.0"),
        (["live", "--pain-before", "11"], "0<=x<=10"),
        (["live", "--pain-before", "-1"], "0<=x<=10"),
        (["scan", "--timeout", "-1"], "0.0<x<=600.0"),
        (["scan", "--timeout", "nan"], "not a finite number"),
        (["capture", "Boost", "-o", "cap.jsonl", "--duration", "-3"], "0.0<x<=86400.0"),
        (["demo", "--duration", "0"], "0.0<x<=86400.0"),
        (["breaths", "belt.csv", "--column", "0", "--rate", "-10"], "0.0<x<=10000.0"),
        (["breaths", "belt.csv", "--column", "0", "--rate", "0"], "0.0<x<=10000.0"),
        (["calibrate", "--quick", "--assessment"], "--quick and --assessment cannot be used"),
    ],
)
def test_absurd_values_are_usage_errors_with_the_range(
    args: list[str], needle: str, unchanged: None
) -> None:
    r = bf("--virtual", *args)
    refused(r, 2, needle)
    assert not store_path().exists()  # refused before anything started


def test_limits_show_in_help() -> None:
    r = bf("live", "--help")
    assert r.code == 0 and PHASE in r.out and "0<=x<=10" in r.out


def test_usage_error_with_json_is_also_json_on_stdout() -> None:
    r = bf("scan", "--timeout", "-1", "--json")
    refused(r, 2, "--timeout")
    doc = json.loads(r.out)
    assert doc["code"] == 2 and "0.0<x<=600.0" in doc["error"]


def test_answering_no_keeps_everything_and_is_not_an_error(tmp_path: Path) -> None:
    with Store(store_path()):
        pass
    before = hashes(tmp_path)
    r = bf("data", "wipe", stdin="n\n")
    assert r.code == 0, r.err
    assert "Nothing was wiped." in r.err and "internal error" not in r.err
    assert hashes(tmp_path) == before


def test_no_answer_at_all_is_refused_exit_1(tmp_path: Path) -> None:
    with Store(store_path()):
        pass
    before = hashes(tmp_path)
    r = bf("data", "wipe", stdin="")
    refused(r, 1, "nothing was wiped", "--yes")
    assert hashes(tmp_path) == before


# ---------------------------------------------------------------- issue 13.14: -v log file


def test_verbose_writes_the_log_file_its_help_promises() -> None:
    r = bf("-v", "drivers")
    assert r.code == 0, r.err
    path = log_file()
    assert path.is_file()
    text = path.read_text()
    assert "DEBUG" in text and "debug log in" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # logs may hold readings


def test_verbose_after_the_command_name_also_writes_it() -> None:
    assert bf("drivers", "--verbose").code == 0
    assert "DEBUG" in log_file().read_text()


def test_without_verbose_no_log_file() -> None:
    assert bf("drivers").code == 0
    assert not log_file().exists()


# ---------------------------------------------------------------- issue 13.11: decode

KGOAL_PACKET = "00 01 04 00 00 05 d3"  # raw 1491 on the kGoal data characteristic
KGOAL_DATA = "10c2be2d-d2d5-b7a8-5f42-e2468c9ebbf5"


def test_decode_char_that_is_not_a_uuid_is_a_usage_error(unchanged: None) -> None:
    refused(bf("decode", "kgoal", KGOAL_PACKET, "--char", "zzz"), 2, "'zzz' is not a UUID")


def test_decode_binary_file_is_named_and_refused(tmp_path: Path) -> None:
    f = tmp_path / "cap.bin"
    f.write_bytes(bytes(range(256)) * 4)
    before = hashes(tmp_path)
    r = bf("decode", "kgoal", "--file", str(f))
    refused(r, 1, str(f), "is not a text file", "offset 128")
    assert r.out == "" and hashes(tmp_path) == before


def test_decode_missing_or_folder_file_is_one_line(tmp_path: Path) -> None:
    refused(bf("decode", "kgoal", "--file", str(tmp_path / "absent")), 1, "cannot read")
    refused(bf("decode", "kgoal", "--file", str(tmp_path)), 2, "is a directory")


@pytest.mark.parametrize("t_host", ['"nan"', "NaN", "Infinity", '"1.5"', "true", "null"])
def test_decode_capture_time_must_be_a_finite_number(tmp_path: Path, t_host: str) -> None:
    f = tmp_path / "cap.jsonl"
    f.write_text(f'{{"t_host": {t_host}, "char": "{KGOAL_DATA}", "hex": "0001040000 05d3"}}\n'
                 f'{{"t_host": 2.5, "char": "{KGOAL_DATA}", "hex": "000104000005d3"}}\n')
    r = bf("decode", "kgoal", "--file", str(f))
    assert r.code == 1 and "Traceback" not in r.err
    lines = [json.loads(x) for x in r.out.splitlines()]  # standard JSON: no NaN
    assert "NaN" not in r.out and "Infinity" not in r.out
    assert "t_host must be a finite number" in lines[0]["error"]
    assert lines[1] == {"t": 2.5, "channels": {"raw": [1491.0], "calibrated": [0.0]},
                        "unit": {"raw": "count", "calibrated": "count"}}


def test_decode_with_the_wrong_driver_says_nothing_matched(tmp_path: Path) -> None:
    f = tmp_path / "cap.jsonl"
    f.write_text("".join(
        f'{{"t_host": {t}, "char": "{KGOAL_DATA}", "hex": "000104000005d3"}}\n' for t in (1, 2)
    ))
    r = bf("decode", "hrs", "--file", str(f))
    refused(r, 1, "no packet matched the characteristics of driver hrs", "00002a37")
    assert [json.loads(x)["error"] for x in r.out.splitlines()] == [
        f"characteristic {KGOAL_DATA} is not read by hrs"] * 2
    assert '"channels": {}' not in r.out


def test_decode_with_the_right_char_still_decodes() -> None:
    r = bf("decode", "kgoal", KGOAL_PACKET, "--char", KGOAL_DATA.upper())
    assert r.code == 0, r.err
    assert json.loads(r.out)["channels"]["raw"] == [1491.0]


# ---------------------------------------------------------------- issue 13.9: LSL stays here

_SOCKETS = r"""
import json, os, socket, sys
from biofeedback.lsl_out import LslOutlets
from devices.clock import RealClock
from devices.stream import StreamKind, StreamSpec

spec = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("pressure",), "count", 50.0)
out = LslOutlets([spec], RealClock(), **json.loads(sys.argv[1]))
mine = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        mine.add(link[8:-1])
found = []
for proto in ("tcp", "udp", "tcp6", "udp6"):
    for row in open(f"/proc/self/net/{proto}").read().splitlines()[1:]:
        cols = row.split()
        if cols[9] in mine:
            ip, port = cols[1].split(":")
            if len(ip) == 8:
                ip = socket.inet_ntoa(bytes.fromhex(ip)[::-1])
            found.append([proto, ip, int(port, 16)])
out.close()
print(json.dumps(found))
"""


def _lsl_sockets(tmp_path: Path, **kwargs: object) -> list[tuple[str, str, int]]:
    """The sockets a fresh process opens for one outlet (liblsl reads its config once)."""
    import os
    import subprocess
    import sys

    # A user's file that opens everything: the confinement must win over it.
    wide = tmp_path / "wide.cfg"
    wide.write_text("[multicast]\nResolveScope = site\n[ports]\nIPv6 = allow\n")
    proc = subprocess.run(
        [sys.executable, "-c", _SOCKETS, json.dumps(kwargs)], capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "LSLAPICFG": str(wide)},
    )
    assert proc.returncode == 0, proc.stderr
    return [tuple(s) for s in json.loads(proc.stdout)]  # type: ignore[misc]


def test_lsl_outlets_answer_discovery_on_this_machine_only(tmp_path: Path) -> None:
    from biofeedback.lsl_out import CONFINED_CONFIG

    sockets = _lsl_sockets(tmp_path)
    multicast_port = 16571  # liblsl's discovery port (ports.MulticastPort)
    discovery = [s for s in sockets if s[2] == multicast_port]
    assert discovery and all(ip == "127.0.0.1" for _, ip, _ in discovery), sockets
    assert not [s for s in sockets if s[0].endswith("6")], sockets  # no IPv6 at all
    assert "ResolveScope = machine" in CONFINED_CONFIG  # no multicast group joined
    assert "KnownPeers = {127.0.0.1}" in CONFINED_CONFIG  # no other host asked


def test_lsl_help_says_the_network_option_exposes_the_data() -> None:
    r = bf("live", "--help")
    text = " ".join(r.out.split())
    assert "to this machine only" in text
    assert "--lsl-network" in text and "read your health data" in text


# ---------------------------------------------------------------- issue 13.10: TOML drivers

EXAMPLE = Path(__file__).resolve().parents[1] / "devices" / "drivers" / "examples"
GOOD = (EXAMPLE / "generic-force.toml").read_text()
NESTED = 5000

BAD_DRIVERS = {
    "latin1.toml": ("not a UTF-8 text file (byte 0xe9",
                    GOOD.replace('"generic-force"', '"latin"').encode("utf-8")
                    .replace(b"Generic", b"G\xe9n\xe9ric")),
    "rate-inf.toml": ("Expected `float` <= 10000.0 - at `$.streams[0].rate_hz`",
                      GOOD.replace('"generic-force"', '"rate-inf"').replace("rate_hz = 40",
                                                                            "rate_hz = inf")),
    "rate-huge.toml": ("Expected `float` <= 10000.0 - at `$.streams[0].rate_hz`",
                       GOOD.replace('"generic-force"', '"rate-huge"').replace("rate_hz = 40",
                                                                              "rate_hz = 1e300")),
    "scale-nan.toml": ("Expected `float` >= -1000000000000.0 - at `$.streams[0].channels[0].scale`",
                       GOOD.replace('"generic-force"', '"scale-nan"').replace("scale = 0.01",
                                                                              "scale = nan")),
    "scale-inf.toml": ("Expected `float` >= -1000000000000.0 - at `$.streams[0].channels[0].scale`",
                       GOOD.replace('"generic-force"', '"scale-inf"').replace("scale = 0.01",
                                                                              "scale = -inf")),
    "nested.toml": ("nested too deeply", "x = " + "[" * NESTED + "]" * NESTED + "\n"),
    "ansi.toml": ("title must not hold control characters",
                  GOOD.replace('"generic-force"', '"ansi"').replace(
                      'title = "Generic force sensor (example)"',
                      'title = "\\u001b[2J\\u001b[31mGeneric"')),
    "builtin.toml": ("id 'kgoal' is already used by a built-in driver",
                     GOOD.replace('"generic-force"', '"kgoal"')),
}


@pytest.fixture
def drivers_folder(_isolated_home: Path) -> Path:
    """The user's drivers folder: one good driver and every kind of bad one."""
    from biofeedback.paths import config_dir

    folder = config_dir() / "drivers"
    folder.mkdir()
    (folder / "good.toml").write_text(GOOD)
    for name, (_, content) in BAD_DRIVERS.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    assert "scale = 0.01" in GOOD and "rate_hz = 40" in GOOD  # the edits above took
    return folder


def test_bad_driver_files_are_skipped_named_and_listed_as_broken(
    drivers_folder: Path, tmp_path: Path
) -> None:
    before = hashes(tmp_path)
    r = bf("drivers", "--json")
    assert r.code == 0, r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    rows = json.loads(r.out)
    ids = {row["id"] for row in rows}
    assert {"generic-force", "kgoal"} <= ids  # the good file and the built-in still load
    kgoal = next(row for row in rows if row["id"] == "kgoal")
    assert kgoal["support"] == "reverse-engineered"  # not replaced by the TOML file
    broken = {Path(row["file"]).name: row["error"] for row in rows if row["support"] == "broken"}
    assert set(broken) == set(BAD_DRIVERS)
    for name, (reason, _) in BAD_DRIVERS.items():
        assert reason in broken[name], (name, broken[name])
        assert str(drivers_folder / name) in broken[name]
        # and one warning line on stderr names the file and the reason
        assert any(name in line and reason in line for line in r.err.splitlines()), name
    assert "\x1b" not in r.out + r.err
    assert hashes(tmp_path) == before


def test_drivers_table_shows_broken_files(drivers_folder: Path) -> None:
    r = bf("drivers")
    assert r.code == 0, r.err
    assert "broken" in r.out and "generic-force" in r.out and "\x1b[31m" not in r.out


def test_a_bad_driver_file_does_not_block_decode(drivers_folder: Path) -> None:
    packet = "0100" + "e803" + "0000" + "e803" + "0000" + "e803" + "0000" + "e803" + "0000"
    r = bf("decode", "generic-force", packet, "--char", "ffe1")
    assert r.code == 0, r.err
    assert json.loads(r.out)["channels"]["force"] == [10.0] * 4


@pytest.mark.parametrize("name", sorted(BAD_DRIVERS))
def test_a_bad_driver_file_named_on_its_own_is_refused(tmp_path: Path, name: str) -> None:
    reason, content = BAD_DRIVERS[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = hashes(tmp_path)
    refused(bf("drivers", "--driver", str(path)), 1, str(path), reason)
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("command", ["show", "delete", "export", "report", "replay"])
@pytest.mark.parametrize("session_id", ["99999999999999999999", "0", "-3"])
def test_session_id_out_of_range_is_a_usage_error(
    command: str, session_id: str, unchanged: None
) -> None:
    extra = ["--format", "json"] if command == "export" else []
    refused(bf(command, "--", session_id, *extra) if session_id.startswith("-")
            else bf(command, session_id, *extra), 2, "1<=x<=9223372036854775807")


def test_decode_empty_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_text("\n# nothing\n")
    refused(bf("decode", "kgoal", "--file", str(f)), 1, "holds no packets")


# ---------------------------------------------------------------- issue 13.13: faults


@pytest.mark.parametrize("faults", [
    '{"Boost": {"drop_after": "x"}}', '{"Boost": {"refuse_connections": -1}}',
    '{"Boost": {"powered": 3}}', "not json",
])
def test_bad_virtual_faults_are_usage_errors(faults: str, unchanged: None) -> None:
    r = bf("--virtual", "--speed", "max", "scan", "--timeout", "1",
           env={"BIOFEEDBACK_VIRTUAL_FAULTS": faults})
    refused(r, 2, "BIOFEEDBACK_VIRTUAL_FAULTS")


# ---------------------------------------------------------------- issues 13.3/13.4/13.6: the store

def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"my thesis, not a database\n" * 200)


def _folder(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("mine")


def _foreign(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute("INSERT INTO recipes VALUES ('bread')")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    with Store(path):
        pass
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()


BAD_STORES = {
    "not-sqlite": (_not_sqlite, "not a biofeedback store"),
    "folder": (_folder, "is a directory"),
    "foreign": (_foreign, "another application"),
    "newer": (_newer, "newer than this program"),
}
STORE_COMMANDS = [
    ["sessions"], ["sessions", "--json"], ["show", "1"], ["delete", "1", "--yes"],
    ["export", "1", "--format", "json", "-o", "x.json"], ["report", "1", "-o", "r.html"],
    ["replay", "1", "--headless"], ["data"], ["data", "export-all", "-o", "all"],
    ["data", "wipe", "--demo", "--yes"], ["devices"],
]


@pytest.mark.parametrize("bad", sorted(BAD_STORES))
@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_a_bad_store_is_one_line_and_left_untouched(
    bad: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make, needle = BAD_STORES[bad]
    make(store_path())
    before = hashes(tmp_path)
    r = bf(*args)
    refused(r, 1, str(store_path()), needle)
    if "--json" in args:
        assert json.loads(r.out)["code"] == 1
    after = hashes(tmp_path)
    if bad == "newer":  # our own WAL file: SQLite may add its empty sidecars to read it
        for sidecar in ("-wal", "-shm"):
            after.pop(f"{store_path()}{sidecar}", None)
    assert after == before
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- issue 13.7: the user's files


def _one_session() -> None:
    import numpy as np

    from biofeedback.store import SessionMeta
    from devices.stream import Chunk, StreamKind, StreamSpec

    spec = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("pressure",), "count", 50.0)
    with Store(store_path()) as store:
        w = store.begin_session(SessionMeta(person="ann", protocol="quick", streams=[spec],
                                            devices=[], t0=0.0))
        t = np.arange(100) / 50.0
        w.chunk(Chunk(spec.name, t, np.sin(t)[:, None], "count", spec.channels))
        w.finish(summary={"reps": 0}, complete=True)


TARGETS = {
    "existing file": (lambda p: p.write_text("mine"), "exists; pass --force"),
    "symlink": (lambda p: p.symlink_to(p.parent / "elsewhere.txt"), "symbolic link"),
    "missing folder": (lambda p: None, "does not exist"),
}


@pytest.mark.parametrize(("args", "target"), [
    (args, target)
    for args in (["export", "1", "--format", "json"], ["export", "1", "--format", "edf"],
                 ["report", "1"])
    for target in sorted(TARGETS)
    # report makes its parent folders (0700), by design (13.5)
    if not (args[0] == "report" and target == "missing folder")
])
def test_an_existing_or_odd_target_is_refused_and_kept(
    args: list[str], target: str, tmp_path: Path
) -> None:
    _one_session()
    (tmp_path / "elsewhere.txt").write_text("the link's target")
    make, needle = TARGETS[target]
    path = tmp_path / ("no-such-folder/out" if target == "missing folder" else "out")
    make(path)
    before = hashes(tmp_path)
    refused(bf(*args, "-o", str(path)), 1, needle)
    assert hashes(tmp_path) == before


def test_export_csv_into_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    _one_session()
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    before = hashes(tmp_path)
    refused(bf("export", "1", "--format", "csv", "-o", str(out)), 1, "not empty", "--force")
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("args", [["show", "7"], ["export", "7", "--format", "json"],
                                  ["delete", "7", "--yes"], ["report", "7"]], ids=" ".join)
def test_an_unknown_session_is_one_line(args: list[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _one_session()
    before = hashes(tmp_path)
    refused(bf(*args), 1, "no session 7")
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("args", [["show", "abc"], ["export", "1", "--format", "xls"],
                                  ["export", "1"], ["data", "wipe", "--nope"]], ids=" ".join)
def test_malformed_store_commands_are_usage_errors(args: list[str], unchanged: None) -> None:
    refused(bf(*args), 2)
