"""The store's foundation: known devices, versioning, owner-only, corrupt files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from biofeedback.store import Store, StoreError
from biofeedback.store.schema import MIGRATIONS


def test_remember_and_list(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        assert s.schema_version == len(MIGRATIONS)
        s.remember_device(
            address="F1:00:00:00:00:01", name="Boost", driver="kgoal",
            support="reverse-engineered", virtual=True,
        )
        # Pairing again refreshes, never duplicates.
        s.remember_device(
            address="F1:00:00:00:00:01", name="Boost", driver="kgoal",
            support="reverse-engineered", virtual=True,
        )
    with Store(path) as s:
        devs = s.devices()
        assert [d.name for d in devs] == ["Boost"]
        assert devs[0].virtual is True
        assert s.device("f1:00:00:00:00:01") is not None
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600


def test_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    payload = b"this is my thesis, not a database\n" * 10
    path.write_bytes(payload)
    with pytest.raises(StoreError, match="not an SQLite file"):
        Store(path)
    assert path.read_bytes() == payload


def test_foreign_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE recipes (name TEXT)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        Store(path)
    assert path.read_bytes() == before


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"corrupt|not a biofeedback"):
        s = Store(path)
        s.devices()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_demo_devices_are_hidden_and_a_users_device_stays_theirs(tmp_path: Path) -> None:
    # 14.7: the virtual devices the demo pairs are not among the user's devices.
    with Store(tmp_path / "s.sqlite") as s:
        kw = {"driver": "kgoal", "support": "reverse-engineered", "virtual": True}
        s.remember_device(address="A1", name="Demo probe", demo=True, **kw)
        s.remember_device(address="B2", name="Mine", **kw)
        s.remember_device(address="B2", name="Mine", demo=True, **kw)  # demo pairs it too
        assert [d.name for d in s.devices()] == ["Mine"]
        assert {d.name: d.demo for d in s.devices(include_demo=True)} == {
            "Demo probe": True, "Mine": False}
        assert s.device("A1") is not None  # still found by address


def test_migration_4_keeps_an_older_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO devices VALUES ('A1', 'Boost', 'kgoal', 'r', 1, 'x', 'y')")
    conn.execute("PRAGMA user_version = 3")
    conn.execute("PRAGMA application_id = 0x42494F46")
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert s.schema_version == len(MIGRATIONS) >= 4
        assert [(d.name, d.demo) for d in s.devices()] == [("Boost", False)]
