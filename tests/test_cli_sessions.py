"""``sessions``, ``show``, ``delete``, ``export`` and ``data`` through the real entry point."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import edfio
import numpy as np
import pytest
from click.testing import CliRunner

from biofeedback.cli.main import main
from biofeedback.paths import data_dir, store_path
from biofeedback.store import SessionMeta, Store
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec

PRESSURE = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("pressure",), "count", 50.0)
FORCE = StreamSpec("GDX-RB/force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)


def cli(args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``biofeedback ARGS``: (exit code, stdout, stderr)."""
    with CliRunner().isolation(input=stdin) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue().decode(), err.getvalue().decode()


def record(person: str, reps: int, seconds: float = 5.0, complete: bool = True) -> int:
    with Store(store_path()) as store:
        store.remember_device(address="F1:00:00:00:00:01", name="Boost", driver="kgoal",
                              support="reverse-engineered", virtual=True)
        w = store.begin_session(SessionMeta(
            person=person, protocol="quick", streams=[PRESSURE, FORCE], t0=10.0,
            devices=[{"name": "Boost", "address": "F1:00:00:00:00:01", "driver": "kgoal"}],
            virtual=True, pain_before=2))
        for spec in (PRESSURE, FORCE):
            assert spec.rate_hz is not None
            t = 10.0 + np.arange(int(seconds * spec.rate_hz)) / spec.rate_hz
            for i in range(0, t.size, 10):
                v = np.sin(t[i:i + 10])[:, None] + 3
                w.chunk(Chunk(spec.name, t[i:i + 10], v, spec.unit, spec.channels))
        w.link_event(LinkEvent(LinkKind.CONNECTED, 10.0, "Boost"))
        for k in range(reps):
            w.event(11.0 + k, "rep", f"rep {k + 1}", {"score": 70.0 + k})
        w.finish(summary={"reps": reps, "score": 70.0 + (reps - 1) / 2}, complete=complete)
        return w.session_id


@pytest.fixture
def two_sessions() -> tuple[int, int]:
    return record("ann", 3), record("bo", 1, complete=False)


def test_sessions_empty() -> None:
    assert cli(["sessions", "--json"]) == (0, "[]\n", "")
    code, out, _ = cli(["sessions"])
    assert code == 0 and "No sessions yet" in out


def test_sessions_json_has_exactly_the_design_keys(two_sessions: tuple[int, int]) -> None:
    code, out, err = cli(["sessions", "--json"])
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [list(r) for r in rows] == [["id", "started_at", "duration_s", "person", "devices",
                                        "reps", "score", "complete", "status"]] * 2
    assert [(r["id"], r["person"], r["reps"], r["complete"]) for r in rows] == [
        (1, "ann", 3, True), (2, "bo", 1, False)]
    assert rows[0]["score"] == 71.0 and rows[0]["duration_s"] == 4.98
    assert rows[0]["devices"][0]["name"] == "Boost"
    assert [r["status"] for r in rows] == ["complete", "stopped"]
    code, out, _ = cli(["sessions"])
    assert code == 0 and "ann" in out and "stopped" in out


def test_show(two_sessions: tuple[int, int]) -> None:
    code, out, _ = cli(["show", "1", "--json"])
    d = json.loads(out)
    assert code == 0 and d["id"] == 1 and d["status"] == "complete"
    assert {s["name"]: s["samples"] for s in d["streams"]} == {PRESSURE.name: 250,
                                                               FORCE.name: 50}
    assert d["event_counts"] == {"link": 1, "rep": 3}
    assert d["pain_before"] == 2
    code, out, _ = cli(["show", "1"])
    assert code == 0 and "Session 1: complete" in out and "250 samples" in out


def test_sessions_table_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # 14.6: one line per session within 80 columns, even on a wide terminal.
    monkeypatch.setenv("COLUMNS", "200")
    with Store(store_path()) as store:
        w = store.begin_session(SessionMeta(
            person="Annabelle Longname-Smith", protocol="standard", streams=[], t0=0.0,
            devices=[{"name": n} for n in ("Boost 12345678", "GDX-RB 0K2001A7", "Polar H10")]))
        w.finish(summary={"reps": 12, "ended_by": "duration"}, complete=False)
    record("bo", 1)
    code, out, _ = cli(["sessions"])
    lines = out.rstrip("\n").splitlines()
    assert code == 0 and len(lines) == 4 and max(len(x) for x in lines) <= 80, out
    assert lines[2].split()[-1] == "stopped" and lines[3].split()[-1] == "complete"
    assert "Annabelle" in lines[2] and "Boost, GDX-RB" in lines[2]


def test_show_says_the_summary_in_words(two_sessions: tuple[int, int]) -> None:
    # 14.6: a readable summary; JSON only with --json.
    with Store(store_path()) as store:
        store.conn.execute("UPDATE sessions SET summary = ? WHERE id = 1", (json.dumps({
            "reps": 3, "reps_target": 5, "good_reps": 2, "mean_score": 71.0, "best_score": 80.0,
            "drop_depth": 28.75, "drop_unit": "count", "link_gaps": 1, "gap_s": 2.5,
            "ended_by": "protocol end", "advice": ["Keep the release on the exhale."],
            "breath_source": "gdx-rb.force", "breath_trust": 0.93}),))
    code, out, _ = cli(["show", "1"])
    assert code == 0 and "{" not in out
    for line in ("reps       3 of 5, 2 good", "score      71 (best 80)",
                 "drop depth 28.75 count", "link gaps  1 (2.5 s)", "ended by   protocol end",
                 "breath via gdx-rb (force), trust high",
                 "advice     Keep the release on the exhale."):
        assert f"  {line}\n" in out, out
    assert json.loads(cli(["show", "1", "--json"])[1])["summary"]["drop_depth"] == 28.75


def test_one_unit_policy_in_show_edf_and_csv(tmp_path: Path) -> None:
    # 13.18: where the profile calibrated the probe (cmH2O), show, EDF+ and CSV say so;
    # the drop depth is not "28.75 count" while the calibration printed cmH2O.
    from calibration import conversion_for
    from calibration.profiles import Profile, SensorId, save_profile

    conv = conversion_for("count", factory=(12.0, 300.0), source="test")
    assert conv is not None
    prof = save_profile(data_dir() / "profiles", Profile(
        person="ann", kind="quick", thresholds={}, figures={}, conversion=conv.to_json(),
        sensor=SensorId(driver="kgoal", address="F1", name="Boost", stream="pressure",
                        channel="pressure", unit="count")))
    sid = record("ann", 1)
    with Store(store_path()) as store:
        store.conn.execute("UPDATE sessions SET profile = ?, summary = ? WHERE id = ?", (
            prof.id, json.dumps({"reps": 1, "drop_depth": 28.8, "drop_unit": "count"}), sid))
    code, out, _ = cli(["show", str(sid)])
    assert code == 0 and "drop depth 2.4 cmH2O (28.8 count)" in out, out
    assert "pressure in cmH2O" in out
    assert cli(["export", str(sid), "--format", "edf", "-o", str(tmp_path / "s.edf")])[0] == 0
    edf = edfio.read_edf(tmp_path / "s.edf")
    sig = edf.get_signal("Pressure")
    assert sig.physical_dimension == "cmH2O"
    # sin(t) + 3 counts, through (x - 300) / 12
    assert np.nanmax(sig.data) == pytest.approx((4.0 - 300.0) / 12.0, abs=0.01)
    assert edf.get_signal("Resp force").physical_dimension == "N"
    assert cli(["export", str(sid), "--format", "csv", "-o", str(tmp_path / "c")])[0] == 0
    meta = json.loads((tmp_path / "c" / "session.json").read_text())
    calibrated = {s["name"]: s["calibrated"] for s in meta["streams"]}
    assert calibrated[PRESSURE.name]["pressure"]["unit"] == "cmH2O"
    assert calibrated[FORCE.name] == {}


def test_unknown_session_is_one_line_exit_1() -> None:
    assert cli(["show", "9"]) == (1, "", "error: no session 9\n")
    code, out, _ = cli(["show", "9", "--json"])
    assert code == 1 and json.loads(out) == {"error": "no session 9", "code": 1}
    assert cli(["delete", "9", "--yes"])[0] == 1
    assert cli(["export", "9", "--format", "json"])[0] == 1


def test_delete_asks_first(two_sessions: tuple[int, int]) -> None:
    code, _, err = cli(["delete", "1"], stdin="n\n")
    assert code == 0 and "Delete session 1" in err and "not deleted" in err
    assert [r["id"] for r in json.loads(cli(["sessions", "--json"])[1])] == [1, 2]
    assert cli(["delete", "1"], stdin="y\n")[0] == 0
    code, out, _ = cli(["delete", "2", "--yes", "--json"])
    assert code == 0 and json.loads(out) == {"deleted": 2}
    assert json.loads(cli(["sessions", "--json"])[1]) == []


def test_export_formats(
    two_sessions: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(["export", "1", "--format", "edf"])
    edf = Path(out.strip())
    assert code == 0 and edf.parent == tmp_path and edf.suffix == ".edf"
    assert edf.name.startswith("session-1-")
    assert stat.S_IMODE(edf.stat().st_mode) == 0o600
    code, _, err = cli(["export", "1", "--format", "edf"])
    assert code == 1 and "--force" in err
    assert cli(["export", "1", "--format", "edf", "--force"])[0] == 0
    code, out, _ = cli(["export", "1", "--format", "json", "-o", "a.json", "--json"])
    assert code == 0 and json.loads(out) == {"id": 1, "format": "json",
                                             "path": "a.json"}
    assert json.loads(Path("a.json").read_text())["session"]["id"] == 1
    code, out, _ = cli(["export", "2", "--format", "csv", "-o", "csvdir"])
    assert code == 0
    assert sorted(p.name for p in Path("csvdir").iterdir()) == [
        "Boost_pressure.csv", "GDX-RB_force.csv", "events.csv", "session.json"]
    assert cli(["export", "1", "--format", "xls"])[0] == 2


def test_data_export_all_and_wipe(two_sessions: tuple[int, int], tmp_path: Path) -> None:
    profiles = data_dir() / "profiles"
    profiles.mkdir()
    (profiles / "ann-kgoal.json").write_text('{"schema": 1}')
    code, out, _ = cli(["data", "--json"])
    info = json.loads(out)
    assert code == 0 and info["store"]["sessions"] == 2 and info["store"]["devices"] == 1
    assert info["profiles"] == {"path": str(profiles), "count": 1}
    assert info["store"]["path"] == str(store_path())

    dest = tmp_path / "all"
    code, out, _ = cli(["data", "export-all", "-o", str(dest), "--edf", "--json"])
    res = json.loads(out)
    assert code == 0 and res["sessions"] == [1, 2] and res["profiles"] == 1
    assert res["devices"] == 1 and res["skipped"] == []
    names = sorted(p.name for p in (dest / "sessions").iterdir())
    assert len(names) == 6 and sum(n.endswith(".edf") for n in names) == 2
    assert json.loads((dest / "profiles" / "ann-kgoal.json").read_text()) == {"schema": 1}
    assert json.loads((dest / "devices.json").read_text())[0]["name"] == "Boost"
    with Store(dest / "biofeedback.sqlite") as copy:
        assert [s.id for s in copy.sessions()] == [1, 2]
    assert cli(["data", "export-all", "-o", str(dest)])[0] == 1  # not empty

    code, _, err = cli(["data", "wipe"], stdin="n\n")
    assert code == 0 and "nothing was wiped" in err.lower()  # a "no" is not an error
    assert store_path().exists() and profiles.exists()
    code, out, _ = cli(["data", "wipe", "--yes", "--json"])
    assert code == 0 and str(store_path()) in json.loads(out)["removed"]
    assert not store_path().exists() and not profiles.exists()
    assert json.loads(cli(["sessions", "--json"])[1]) == []
    assert cli(["data", "wipe", "--yes"])[0] == 0  # nothing left: fine


def test_data_wipe_demo_removes_only_the_demos(two_sessions: tuple[int, int]) -> None:
    # 14.7: the demo's sessions, devices and profile are marked and wiped on their own.
    profiles = data_dir() / "profiles"
    profiles.mkdir()
    mine, demos = profiles / "ann-kgoal.json", profiles / "demo-kgoal.json"
    mine.write_text('{"schema": 1}')
    demos.write_text('{"schema": 1}')
    with Store(store_path()) as store:
        store.remember_device(address="D0:00:00:00:00:01", name="Demo Boost", driver="kgoal",
                              support="reverse-engineered", virtual=True, demo=True)
        w = store.begin_session(SessionMeta(person="demo", protocol="quick", streams=[PRESSURE],
                                            devices=[], t0=0.0, virtual=True, demo=True))
        w.finish(summary={}, complete=True)
        store.mark_demo_profile("demo-kgoal", demos)
    assert json.loads(cli(["show", "3", "--json"])[1])["demo"] is True
    assert "Demo Boost" not in cli(["devices"])[1] and "Boost" in cli(["devices"])[1]
    code, _, err = cli(["data", "wipe", "--demo"], stdin="n\n")
    assert code == 0 and "nothing was wiped" in err.lower() and demos.exists()
    code, out, _ = cli(["data", "wipe", "--demo", "--yes", "--json"])
    assert code == 0 and json.loads(out)["removed_demo"] == {
        "sessions": [3], "devices": ["D0:00:00:00:00:01"], "profiles": [str(demos)]}
    assert [r["id"] for r in json.loads(cli(["sessions", "--json"])[1])] == [1, 2]
    assert mine.exists() and not demos.exists()
    with Store(store_path()) as store:
        assert [d.name for d in store.devices(include_demo=True)] == ["Boost"]
    code, out, _ = cli(["data", "wipe", "--demo", "--yes"])
    assert code == 0 and "Nothing of the demo's" in out


def test_foreign_or_damaged_store_is_one_line_exit_1() -> None:
    path = store_path()
    path.write_bytes(b"my notes, not a database\n" * 100)
    code, out, err = cli(["sessions", "--json"])
    assert code == 1 and err.count("\n") == 1 and "not a biofeedback store" in err
    assert json.loads(out)["code"] == 1
    assert path.read_bytes() == b"my notes, not a database\n" * 100
    path.unlink()
    record("ann", 1, seconds=120.0)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16384] = b"\xa5" * 16384  # pages in the middle of the sample blocks
    path.write_bytes(bytes(data))
    code, _, err = cli(["export", "1", "--format", "csv", "-o", str(path.parent / "x")])
    assert code == 1 and err.count("\n") == 1
    assert "is damaged: database disk image is malformed" in err
