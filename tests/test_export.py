"""Exports: EDF+ (read back with edfio AND pyedflib), CSV folder, JSON summary."""

from __future__ import annotations

import csv
import datetime as dt
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import edfio
import numpy as np
import pyedflib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from biofeedback.export import default_path, export_csv, export_edf, export_json, export_session
from biofeedback.export.common import begin_export
from biofeedback.export.edf_grid import edf_bound, physical_range, plan_rates, resample_to_grid
from biofeedback.export.edf_labels import transducer, unique_labels
from biofeedback.store import SessionMeta, Store
from devices.errors import InputError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import PelvicState

T0 = 1000.0
DURATION = 40.0
GAP = (20.0, 23.0)  # seconds from the start with no pressure samples (a lost link)
STARTED_AT = "2025-03-04T10:20:30.000+00:00"

PRESSURE = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0)
FORCE = StreamSpec("GDX-RB/force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
RATE = StreamSpec("GDX-RB/rate", StreamKind.BREATH_RATE, ("rate",), "bpm", 10.0)
ECG = StreamSpec("H10/ecg", StreamKind.ECG, ("ecg",), "uV", 130.0)


def _stream(spec: StreamSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    assert spec.rate_hz is not None
    n = int(DURATION * spec.rate_hz)
    t = T0 + np.arange(n) / spec.rate_hz  # on the export grid: resampling is exact
    k = np.arange(n)
    if spec is PRESSURE:
        v = np.column_stack([30000 + 800 * np.sin(k / 40), rng.integers(0, 65536, n)])
        v = np.round(v)
        keep = ~((t - T0 >= GAP[0]) & (t - T0 < GAP[1]))
        return t[keep], v[keep]
    if spec is ECG:  # an int24 source using its whole range
        v = rng.integers(-(2**23), 2**23, n).astype(float)
        v[0], v[1] = -(2**23), 2**23 - 1
        return t, v[:, None]
    if spec is FORCE:
        return t, (2.0 + np.sin(k / 15)).astype(np.float32).astype(float)[:, None]
    return t, np.full((n, 1), 6.0)  # constant breath rate


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[Store, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    rng = np.random.default_rng(7)
    store = Store(tmp_path / "s.sqlite")
    specs = [PRESSURE, FORCE, RATE, ECG]
    data = {s.name: _stream(s, rng) for s in specs}
    w = store.begin_session(SessionMeta(
        person="Zoë Q", protocol="quick", streams=specs, t0=T0,
        devices=[{"name": "Boost", "address": "A1", "driver": "kgoal"},
                 {"name": "GDX-RB 0K1", "address": "A2", "driver": "gdx-rb"}],
        pacer={"inhale_s": 4.0, "exhale_s": 6.0}, pain_before=4))
    for s in specs:
        t, v = data[s.name]
        for i in range(0, t.size, 13):
            w.chunk(Chunk(s.name, t[i:i + 13], v[i:i + 13], s.unit, s.channels))
    w.link_event(LinkEvent(LinkKind.LOST, T0 + GAP[0], "Boost", "timeout"))
    w.link_event(LinkEvent(LinkKind.CONNECTED, T0 + GAP[1], "Boost", "reconnected", 3.0))
    w.event(T0 + 5.0, "cue", "breathe in, let go")
    w.event(T0 + 15.0, "rep", "rep 1", {"score": 82.0, "good": True})
    w.event(T0 + 25.0, "step", "post-baseline")
    tp = T0 + np.arange(500) / 50.0
    w.states(PRESSURE.name, tp, np.repeat([PelvicState.REST, PelvicState.DROP], 250))
    w.finish(summary={"reps": 1, "score": 82.0}, complete=True, pain_after=2)
    store.annotate(1, 30.0, "hip ache", duration_s=2.0)
    # A whole-second start, so the EDF grid falls on the recorded samples.
    store.conn.execute("UPDATE sessions SET started_at = ?", (STARTED_AT,))
    yield store, data
    store.close()


# --------------------------------------------------------------------------- pure parts


def test_plan_rates() -> None:
    assert plan_rates([50.0, 10.0, 200.0, 130.0]) == (1, [50, 10, 200, 130])
    assert plan_rates([12.5, 50.0]) == (2, [25, 100])
    assert plan_rates([0.2, 10.0]) == (5, [1, 50])
    # No record length up to 10 s fits: round the rate up, never down.
    assert plan_rates([97.65625, 10.0]) == (1, [98, 10])
    with pytest.raises(ValueError):
        plan_rates([0.0])


@given(st.floats(min_value=-9_999_999, max_value=99_999_999, allow_nan=False), st.booleans())
def test_edf_bound_fits_the_header_and_bounds(x: float, up: bool) -> None:
    b = edf_bound(x, up=up)
    text = f"{b:.8f}".rstrip("0").rstrip(".")
    assert len(text) <= 8 or len(f"{b:g}") <= 8
    assert (b >= x) if up else (b <= x)
    assert "e" not in repr(b) or b == 0.0 or abs(b) >= 1e-4
    assert abs(b - x) <= max(1.0, abs(x) * 1e-6) + 1e-4


def test_edf_bound_refuses_what_no_header_holds() -> None:
    with pytest.raises(InputError, match="CSV"):
        edf_bound(-1e7, up=False)
    with pytest.raises(InputError):
        edf_bound(float("nan"), up=True)


def test_physical_range_never_clips_int24() -> None:
    lo, hi = physical_range(np.array([-(2.0**23), 2.0**23 - 1]))
    assert lo <= -(2**23) and hi >= 2**23 - 1
    lo, hi = physical_range(np.array([6.0, 6.0]))  # constant: still a valid range
    assert lo < 6.0 < hi


def test_resample_holds_across_gaps() -> None:
    t = np.array([0.0, 0.1, 0.2, 1.5, 1.6])
    v = np.array([[0.0], [1.0], [2.0], [5.0], [6.0]])
    got = resample_to_grid(t, v, 0.0, 10.0, 30, gap_s=0.5)
    out = got.values
    assert got.gaps == [(0.2, 1.5), (1.6, 2.9)] and got.no_value == []
    np.testing.assert_allclose(out[:3, 0], [0, 1, 2])
    np.testing.assert_allclose(out[3:15, 0], 2.0)  # held through the gap, not ramped
    np.testing.assert_allclose(out[15:17, 0], [5.0, 6.0])
    np.testing.assert_allclose(out[17:, 0], 6.0)


def test_resample_tells_no_value_from_no_samples() -> None:
    # 13.17: samples that came without a value (NaN) are not a gap.
    t = np.arange(0.0, 10.0, 0.1)
    v = np.where(t < 3.0, np.nan, t)[:, None]
    v[70:80] = np.nan  # a second stretch without a value, samples still coming
    keep = (t < 5.0) | (t >= 6.0)  # and a real hole: no samples at all
    got = resample_to_grid(t[keep], v[keep], 0.0, 10.0, 100, gap_s=0.5, expected=(0.0, 9.9))
    assert got.gaps == [(pytest.approx(4.9), pytest.approx(6.0))]
    assert got.no_value == [(0.0, pytest.approx(3.0)), (pytest.approx(6.9), pytest.approx(8.0))]
    np.testing.assert_allclose(got.values[:30, 0], 3.0)  # the first value, held back
    assert np.isfinite(got.values).all()


def test_labels_are_short_unique_and_fit() -> None:
    def labels(*specs: StreamSpec) -> list[str]:
        return unique_labels([(s, c) for s in specs for c in s.channels])

    live = StreamSpec("Boost/kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"),
                      "count", 50.0)
    force = StreamSpec("GDX-RB 0K1/gdx-rb.force", StreamKind.BREATH_FORCE, ("force",), "N",
                       10.0)
    # 13.18: not cut at 16 characters ("pressure calibra"): type + short specification.
    assert labels(live, force) == ["Pressure raw", "Pressure cal", "Resp force"]
    assert transducer(live, "calibrated") == (
        "Boost (kgoal) pelvic pressure probe, calibrated; stream Boost/kgoal.pressure")
    assert transducer(force, "force").startswith("GDX-RB 0K1 (gdx-rb) respiration belt, force;")
    a = StreamSpec("A/kgoal.pressure", StreamKind.PRESSURE, ("raw",), "count", 50.0)
    b = StreamSpec("B/perifit.pressure", StreamKind.PRESSURE, ("raw",), "count", 50.0)
    assert labels(a, b) == ["Pressure raw A", "Pressure raw B"]
    twins = [StreamSpec(f"Boost {n}/kgoal.pressure", StreamKind.PRESSURE, ("raw",), "count",
                        50.0) for n in ("One", "Two")]
    got = labels(*twins)
    assert len(set(got)) == 2 and all(len(x) <= 16 for x in got)


# --------------------------------------------------------------------------- EDF+


def _expect_signal(read: np.ndarray, spec: StreamSpec, ch: int, data: dict, step: float) -> None:
    """Within EDF's resolution wherever there were samples; held in the gap."""
    t, v = data[spec.name]
    assert spec.rate_hz is not None
    idx = np.round((t - T0) * spec.rate_hz).astype(int)
    assert read.size == int(DURATION * spec.rate_hz)
    np.testing.assert_allclose(read[idx], v[:, ch], atol=step / 2 + 1e-9 * np.abs(v[:, ch]).max())


def test_edf_opens_in_edfio(session: tuple[Store, dict], tmp_path: Path) -> None:
    store, data = session
    path = export_session(store, 1, "edf", tmp_path / "s.edf")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    edf = edfio.read_edf(path)
    assert edf.reserved == "EDF+C"
    assert edf.data_record_duration == 1.0
    assert edf.duration == pytest.approx(DURATION)
    assert edf.starttime.isoformat() == _local_start().strftime("%H:%M:%S")
    labels = [s.label for s in edf.signals]
    assert labels == ["Pressure base", "Pressure tip", "Resp force", "Resp rate", "ECG"]
    specs = {"Pressure base": (PRESSURE, 0), "Pressure tip": (PRESSURE, 1),
             "Resp force": (FORCE, 0), "Resp rate": (RATE, 0), "ECG": (ECG, 0)}
    for sig in edf.signals:
        spec, ch = specs[sig.label]
        assert sig.sampling_frequency == spec.rate_hz
        assert sig.physical_dimension == spec.unit
        step = (sig.physical_max - sig.physical_min) / (sig.digital_max - sig.digital_min)
        _expect_signal(sig.data, spec, ch, data, step)
    ecg = edf.get_signal("ECG")
    assert ecg.physical_min <= -(2**23) and ecg.physical_max >= 2**23 - 1
    # The lost link: the pressure holds its last value through the gap.
    base = edf.get_signal("Pressure base").data
    t_p, v_p = data[PRESSURE.name]
    last_before = v_p[t_p - T0 < GAP[0]][-1, 0]
    gap = slice(int(GAP[0] * 50), int(GAP[1] * 50))
    step = (ecg.physical_max - ecg.physical_min) / 65535
    assert np.allclose(base[gap], last_before, atol=1.0), step

    texts = {a.text: a for a in edf.annotations}
    start = texts["link gap start: Boost/pressure"]
    assert start.onset == pytest.approx(GAP[0] - 0.02) and start.duration == pytest.approx(3.02)
    assert texts["link gap end: Boost/pressure"].onset == pytest.approx(GAP[1])
    assert texts["link lost: Boost (timeout)"].onset == pytest.approx(GAP[0])
    assert texts["link connected: Boost (reconnected)"].onset == pytest.approx(GAP[1])
    assert texts["cue: breathe in, let go"].onset == pytest.approx(5.0)
    assert texts["rep: rep 1"].onset == pytest.approx(15.0)
    assert texts["step: post-baseline"].onset == pytest.approx(25.0)
    assert texts["annotation: hip ache"].duration == pytest.approx(2.0)
    assert texts[f"session start {STARTED_AT} (UTC)"].onset == 0.0
    drop = texts["pelvic drop"]
    assert (drop.onset, drop.duration) == (pytest.approx(5.0), pytest.approx(4.98))
    assert "pelvic rest" in texts
    assert edf.patient.name == "Zoe_Q"
    assert "Boost+GDX-RB_0K1" in edf.recording.equipment_code


def _local_start() -> dt.datetime:
    return dt.datetime.fromisoformat(STARTED_AT).astimezone()


def test_edf_opens_in_pyedflib(session: tuple[Store, dict], tmp_path: Path) -> None:
    store, data = session
    path = export_session(store, 1, "edf", tmp_path / "s.edf")
    with pyedflib.EdfReader(str(path)) as r:
        assert r.filetype == pyedflib.FILETYPE_EDFPLUS
        assert r.getStartdatetime() == _local_start().replace(tzinfo=None)
        labels = r.getSignalLabels()
        assert labels == ["Pressure base", "Pressure tip", "Resp force", "Resp rate", "ECG"]
        specs = [(PRESSURE, 0), (PRESSURE, 1), (FORCE, 0), (RATE, 0), (ECG, 0)]
        for i, (spec, ch) in enumerate(specs):
            assert r.getSampleFrequency(i) == spec.rate_hz
            assert r.getPhysicalDimension(i) == spec.unit
            step = float(r.getPhysicalMaximum(i) - r.getPhysicalMinimum(i)) / float(
                r.getDigitalMaximum(i) - r.getDigitalMinimum(i))
            _expect_signal(r.readSignal(i), spec, ch, data, step)
        onsets, durations, texts = r.readAnnotations()
        ann = dict(zip(texts, zip(onsets, durations, strict=True), strict=True))
        assert ann["link gap end: Boost/pressure"][0] == pytest.approx(GAP[1])
        assert ann["rep: rep 1"][0] == pytest.approx(15.0)
        assert ann["pelvic drop"] == (pytest.approx(5.0), pytest.approx(4.98))
        assert r.getPatientName() in ("Zoe_Q", "Zoe Q")  # EDF+: '_' stands for a space


def test_edf_rounds_odd_rates_up_and_pads_the_last_record(tmp_path: Path) -> None:
    odd = StreamSpec("X/p", StreamKind.PRESSURE, ("p",), "kPa", 97.65625)
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(SessionMeta(None, "quick", [odd], [], t0=0.0))
        t = np.arange(300) / 97.65625
        w.chunk(Chunk("X/p", t, np.sin(t)[:, None] * 1e-3, "kPa", ("p",)))
        w.finish(summary={}, complete=False)
        # A start with a fraction of a second: the file starts at the whole second before.
        store.conn.execute("UPDATE sessions SET started_at = '2025-03-04T10:20:30.250+00:00'")
        path = export_session(store, 1, "edf", tmp_path / "x.edf")
    edf = edfio.read_edf(path)
    sig = edf.signals[0]
    assert sig.sampling_frequency == 98
    assert edf.num_data_records == 4  # 3.06 s of data, padded to whole records
    assert any(a.text == "recording end" for a in edf.annotations)
    step = (sig.physical_max - sig.physical_min) / 65535
    # The file starts at the whole second before the session start.
    (start,) = [a.onset for a in edf.annotations if a.text.startswith("session start")]
    assert start == pytest.approx(0.25)
    tt = np.arange(sig.data.size) / 98.0 - start
    inside = (tt >= 0) & (tt <= t[-1])
    np.testing.assert_allclose(sig.data[inside], np.sin(tt[inside]) * 1e-3, atol=step + 1e-7)


def _crash(store: Store) -> None:
    """What a killed recording leaves: never finished, no writer holding it."""
    store.conn.execute("UPDATE sessions SET finished = 0, complete = 0, summary = NULL, "
                       "writer_pid = NULL")


@pytest.mark.parametrize("outcome, text", [
    ("complete", "session complete"),
    ("stopped", "session stopped before the protocol's end (duration)"),
    ("interrupted", "session interrupted"),
])
def test_edf_says_how_the_session_ended(
    session: tuple[Store, dict], tmp_path: Path, outcome: str, text: str
) -> None:
    # 13.16: an interrupted session is marked in the EDF (annotation and header).
    store, _ = session
    if outcome == "stopped":
        store.conn.execute("UPDATE sessions SET complete = 0, summary = ?",
                           (json.dumps({"reps": 1, "ended_by": "duration"}),))
    elif outcome == "interrupted":
        _crash(store)
    assert store.session(1).outcome == outcome
    edf = edfio.read_edf(export_session(store, 1, "edf", tmp_path / "s.edf"))
    (end,) = [a for a in edf.annotations if a.text.startswith("session ")
              and not a.text.startswith("session start")]
    assert end.text.startswith(text)
    assert end.onset == pytest.approx(DURATION, abs=0.03)  # at the last sample
    assert f"status-{outcome}" in edf.recording.additional


def test_edf_no_value_is_not_a_link_gap(tmp_path: Path) -> None:
    # 13.17: a belt's breath rate is NaN until its first breath (~30 s): that is
    # "no value", not a link gap, and the summary's 0 link gaps agrees with the EDF.
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(SessionMeta(None, "quick", [FORCE, RATE], [], t0=T0))
        t = T0 + np.arange(400) / 10.0
        w.chunk(Chunk(FORCE.name, t, np.sin(t)[:, None], "N", FORCE.channels))
        rate = np.where(t - T0 < 30.0, np.nan, 6.0)[:, None]
        w.chunk(Chunk(RATE.name, t, rate, "bpm", RATE.channels))
        w.finish(summary={"link_gaps": 0}, complete=True)
        store.conn.execute("UPDATE sessions SET started_at = ?", (STARTED_AT,))
        edf = edfio.read_edf(export_session(store, 1, "edf", tmp_path / "s.edf"))
    texts = {a.text: a for a in edf.annotations}
    assert not [x for x in texts if "gap" in x or "no samples" in x]
    start = texts["no value start: GDX-RB/rate"]
    assert (start.onset, start.duration) == (0.0, pytest.approx(30.0))
    assert texts["no value end: GDX-RB/rate"].onset == pytest.approx(30.0)
    np.testing.assert_allclose(edf.get_signal("Resp rate").data, 6.0, atol=0.01)


def test_edf_gap_without_a_lost_link_is_no_samples(
    session: tuple[Store, dict], tmp_path: Path
) -> None:
    # Only a real link loss is a "link gap"; a stall the link never reported is not.
    store, _ = session
    store.conn.execute("DELETE FROM events WHERE kind = 'link'")
    edf = edfio.read_edf(export_session(store, 1, "edf", tmp_path / "s.edf"))
    texts = [a.text for a in edf.annotations]
    assert "no samples start: Boost/pressure" in texts
    assert not [x for x in texts if "link gap" in x]


def test_edf_leaves_out_a_stream_that_never_had_a_value(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(SessionMeta(None, "quick", [FORCE, RATE], [], t0=T0))
        t = T0 + np.arange(100) / 10.0
        w.chunk(Chunk(FORCE.name, t, np.sin(t)[:, None], "N", FORCE.channels))
        w.chunk(Chunk(RATE.name, t, np.full((100, 1), np.nan), "bpm", RATE.channels))
        w.finish(summary={}, complete=True)
        edf = edfio.read_edf(export_session(store, 1, "edf", tmp_path / "s.edf"))
    assert [s.label for s in edf.signals] == ["Resp force"]
    assert "no value: GDX-RB/rate (never had one; left out)" in [a.text for a in edf.annotations]


def test_edf_header_fits_long_device_names(session: tuple[Store, dict], tmp_path: Path) -> None:
    store, _ = session
    devices = [{"name": "A very long device name " + str(k), "address": "A"} for k in range(4)]
    store.conn.execute("UPDATE sessions SET devices = ?", (json.dumps(devices),))
    _crash(store)
    edf = edfio.read_edf(export_session(store, 1, "edf", tmp_path / "s.edf"))
    assert "status-interrupted" in edf.recording.additional
    assert edf.recording.equipment_code.startswith("A_very_long")


def test_edf_of_a_session_without_samples_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.begin_session(SessionMeta(None, "quick", [FORCE], [], t0=0.0)).finish(
            summary={}, complete=False)
        with pytest.raises(InputError, match="no samples"):
            export_session(store, 1, "edf", tmp_path / "x.edf")
        assert not (tmp_path / "x.edf").exists()


# --------------------------------------------------------------------------- CSV, JSON


def test_csv_folder(session: tuple[Store, dict], tmp_path: Path) -> None:
    store, data = session
    out = export_session(store, 1, "csv", tmp_path / "csv")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Boost_pressure.csv", "GDX-RB_force.csv", "GDX-RB_rate.csv",
                     "H10_ecg.csv", "events.csv", "session.json"]
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    with (out / "Boost_pressure.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t_s", "base", "tip"]
    t, v = data[PRESSURE.name]
    got = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(got[:, 0], t - T0, atol=1e-6)
    np.testing.assert_array_equal(got[:, 1:], v)  # every sample, exactly
    with (out / "GDX-RB_force.csv").open() as f:
        force = np.array(list(csv.reader(f))[1:], dtype=float)
    # A float32 sensor value is written as the float32 it was (shortest form).
    np.testing.assert_array_equal(force[:, 1].astype(np.float32),
                                  data[FORCE.name][1][:, 0].astype(np.float32))
    with (out / "events.csv").open() as f:
        events = list(csv.DictReader(f))
    kinds = [e["kind"] for e in events]
    assert {"link", "cue", "rep", "step", "annotation", "state"} <= set(kinds)
    rep = next(e for e in events if e["kind"] == "rep")
    assert float(rep["t_s"]) == 15.0 and json.loads(rep["data"])["score"] == 82.0
    assert [float(e["t_s"]) for e in events] == sorted(float(e["t_s"]) for e in events)
    meta = json.loads((out / "session.json").read_text())
    assert meta["started_at"] == STARTED_AT
    assert meta["streams"][0]["file"] == "Boost_pressure.csv"
    assert meta["streams"][0]["unit"] == "count"


def test_json_summary(session: tuple[Store, dict], tmp_path: Path) -> None:
    store, _ = session
    path = export_session(store, 1, "json", tmp_path / "s.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "biofeedback-session"
    assert doc["session"]["started_at"] == STARTED_AT
    assert doc["session"]["pain_before"] == 4 and doc["session"]["pain_after"] == 2
    assert doc["summary"] == {"reps": 1, "score": 82.0}
    assert doc["reps"] == [{"t_s": 15.0, "text": "rep 1", "score": 82.0, "good": True}]
    assert [e["kind"] for e in doc["events"]][:2] == ["cue", "rep"]
    assert doc["states"][1] == {"stream": PRESSURE.name, "t_s": 5.0, "duration_s": 4.98,
                                "state": "drop"}
    assert {s["name"]: s["samples"] for s in doc["session"]["streams"]}[FORCE.name] == 400


@pytest.mark.parametrize("fmt", ["csv", "edf", "json"])
def test_every_format_checks_the_target_first(
    session: tuple[Store, dict], tmp_path: Path, fmt: str
) -> None:
    # 15.9: one preamble (begin_export): the target is checked before the session is
    # read, so an existing target is refused the same way in every format.
    store, _ = session
    target = tmp_path / "taken"
    target.mkdir() if fmt == "csv" else target.write_text("mine")
    if fmt == "csv":
        (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="force") as err:
        export_session(store, 1, fmt, target)
    exporter = {"csv": export_csv, "edf": export_edf, "json": export_json}[fmt]
    with pytest.raises(InputError, match="force"):  # not "no session 9"
        exporter(store, 9, target)
    assert "taken" in str(err.value)
    job = begin_export(store, 1, tmp_path / "new.json", force=False, progress=None)
    assert job.bundle.info.id == 1 and job.path == tmp_path / "new.json"


def test_default_paths_and_no_silent_overwrite(
    session: tuple[Store, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = session
    monkeypatch.chdir(tmp_path)
    info = store.session(1)
    assert default_path(info, "edf") == tmp_path / "session-1-20250304-102030.edf"
    assert default_path(info, "csv").name == "session-1-20250304-102030"
    for fmt in ("edf", "json", "csv"):
        path = export_session(store, 1, fmt)
        assert path == default_path(info, fmt) and path.exists()
        with pytest.raises(InputError, match="force"):
            export_session(store, 1, fmt)
        export_session(store, 1, fmt, force=True)
    with pytest.raises(InputError, match="no session 5"):
        export_session(store, 5, "json")
    with pytest.raises(InputError, match="format"):
        export_session(store, 1, "xls")
