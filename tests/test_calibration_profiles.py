"""Profile files: schema-versioned JSON per person and sensor, owner-only, newest is the default."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from test_calibration import cached, compute

from calibration import (
    SCHEMA,
    SCHEMA_VERSION,
    CalibrationResult,
    Profile,
    SensorId,
    default_profiles,
    latest_profile,
    list_profiles,
    load_profile,
    save_profile,
)
from devices.errors import InputError

BOOST = SensorId("kgoal", "CD:79:1A:0A:6F:01", "Boost", "kgoal.pressure", "raw", "count", True)
OTHER = SensorId("perifit", "AA:BB:CC:DD:EE:FF", "Perifit", "perifit.pressure", "base", "count")


@pytest.fixture(scope="module")
def result() -> CalibrationResult:
    return compute(cached(0))


def _at(minutes: int) -> dt.datetime:
    return dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)


def make(result: CalibrationResult, person: str, sensor: SensorId, minutes: int) -> Profile:
    return Profile.from_result(result, person=person, sensor=sensor, created_at=_at(minutes))


def test_save_and_load_round_trip_owner_only(tmp_path: Path, result: CalibrationResult) -> None:
    saved = save_profile(tmp_path / "profiles", make(result, "Ann", BOOST, 0))
    assert saved.path is not None and saved.path.is_file()
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "profiles").stat().st_mode) == 0o700
    doc = json.loads(saved.path.read_text())
    assert doc["schema"] == SCHEMA and doc["schema_version"] == SCHEMA_VERSION
    assert doc["created_at"] == "2025-03-01T09:00:00Z"
    assert doc["sensor"]["driver"] == "kgoal" and doc["sensor"]["address"] == BOOST.address
    assert doc["units"] == {
        "sensor": "count",
        "common": "cmH2O",
        "normalised": "%MVC",
        "conversion": doc["units"]["conversion"],
    }
    assert doc["units"]["conversion"]["gain"] == 12.0
    assert set(doc["thresholds"]) == {
        "rest_level",
        "drop_margin",
        "contraction_margin",
        "strain_margin",
        "unit",
    }
    back = load_profile(saved.path)
    assert back == saved  # every stored field (the path is not compared)
    assert back.path == saved.path
    assert back.id == "ann/kgoal_cd-79-1a-0a-6f-01_20250301T090000000000Z"
    assert not list(saved.path.parent.glob("*.tmp"))


def test_listed_chosen_by_person_newest_is_default(
    tmp_path: Path, result: CalibrationResult
) -> None:
    d = tmp_path / "profiles"
    a1 = save_profile(d, make(result, "Ann", BOOST, 0))
    a2 = save_profile(d, make(result, "Ann", BOOST, 5))  # replaces a1 as the default
    a3 = save_profile(d, make(result, "Ann", OTHER, 1))
    b1 = save_profile(d, make(result, "Bo", BOOST, 2))
    every = list_profiles(d)
    assert [p.path for p in every] == [a1.path, a3.path, b1.path, a2.path]  # oldest first
    ann = list_profiles(d, "ann")  # names match case-insensitively
    assert {p.path for p in ann} == {a1.path, a2.path, a3.path}
    defaults = {p.path for p in default_profiles(every).values()}
    assert defaults == {a2.path, a3.path, b1.path}
    latest = latest_profile(d, "Ann", driver="kgoal")
    assert latest is not None and latest.path == a2.path
    latest = latest_profile(d, "Ann", driver="kgoal", address=BOOST.address.lower())
    assert latest is not None and latest.path == a2.path
    assert latest_profile(d, "Ann") is not None
    assert latest_profile(d, "Cy") is None
    assert latest_profile(d, "Bo", driver="perifit") is None
    assert list_profiles(tmp_path / "nowhere") == []


def test_broken_files_are_refused_but_do_not_hide_the_others(
    tmp_path: Path, result: CalibrationResult, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "profiles"
    good = save_profile(d, make(result, "Ann", BOOST, 0))
    assert good.path is not None
    bad = good.path.parent / "kgoal_x_broken.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_profile(bad)
    assert [p.path for p in list_profiles(d, "Ann")] == [good.path]
    assert "skipping" in caplog.text
    doc = json.loads(good.path.read_text())
    newer = good.path.parent / "newer.json"
    newer.write_text(json.dumps({**doc, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(InputError, match="schema version 2"):
        load_profile(newer)
    other = good.path.parent / "other.json"
    other.write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(InputError, match="not a calibration profile"):
        load_profile(other)
    partial = good.path.parent / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in doc.items() if k != "thresholds"}))
    with pytest.raises(InputError, match="incomplete"):
        load_profile(partial)
    with pytest.raises(InputError, match="cannot read"):
        load_profile(d / "missing.json")


def test_person_names_are_checked(result: CalibrationResult) -> None:
    for bad in ("", "   ", "x" * 65, "a\nb"):
        with pytest.raises(InputError, match="person must be"):
            Profile.from_result(result, person=bad, sensor=BOOST)
    odd = Profile.from_result(result, person="Zoë / test", sensor=BOOST, created_at=_at(0))
    assert odd.id.startswith("zo-test/")  # a safe file name, the real name inside
    assert odd.to_json()["person"] == "Zoë / test"
