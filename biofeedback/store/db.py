"""SQLite store in the user data dir: schema-versioned, owner-only, WAL.

The schema version lives in ``PRAGMA user_version`` and an application id in
``PRAGMA application_id``, so a foreign SQLite file (or anything that is not
SQLite) is refused with a clear error and left untouched. Migrations are an
ordered list of SQL scripts; opening a file applies the missing ones in one
transaction each.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from devices.errors import InputError

__all__ = ["APPLICATION_ID", "MIGRATIONS", "KnownDevice", "Store", "StoreError"]

#: "BIOF" as a 32-bit big-endian integer: marks our files.
APPLICATION_ID = 0x42494F46

#: Migration n (1-based) brings the schema from version n-1 to n. Append only.
MIGRATIONS: list[str] = [
    # 1: known devices
    """
    CREATE TABLE devices (
        address     TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        driver      TEXT NOT NULL,
        support     TEXT NOT NULL,
        virtual     INTEGER NOT NULL DEFAULT 0,
        paired_at   TEXT NOT NULL,
        last_seen   TEXT NOT NULL
    );
    """,
]

_SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(InputError):
    """The store file is corrupt, foreign or from a newer version (exit 1)."""


@dataclass(frozen=True)
class KnownDevice:
    """A paired device."""

    address: str
    name: str
    driver: str
    support: str
    virtual: bool
    paired_at: str
    last_seen: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "driver": self.driver,
            "support": self.support,
            "virtual": self.virtual,
            "paired_at": self.paired_at,
            "last_seen": self.last_seen,
        }


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _check_file(path: Path) -> None:
    """Refuse anything that is not an SQLite file before SQLite touches it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a biofeedback store (not an SQLite file); left untouched")


class Store:
    """The SQLite store.

    Parameters
    ----------
    path : Path
        The database file; created (mode 0600) when missing.

    Raises
    ------
    StoreError
        When the file is corrupt, foreign, or written by a newer version.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        _check_file(self.path)
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create owner-only before SQLite opens it: health data.
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        try:
            self.conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self.conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is corrupt or not a biofeedback store: {exc}") from exc
        if app_id != APPLICATION_ID and (has_tables or version):
            self.conn.close()
            raise StoreError(
                f"{self.path} is an SQLite file of another application; left untouched"
            )
        if version > len(MIGRATIONS):
            self.conn.close()
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this program "
                f"understands ({len(MIGRATIONS)}); update biofeedback"
            )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._migrate(version)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.chmod(p, 0o600)

    def _migrate(self, version: int) -> None:
        for n in range(version, len(MIGRATIONS)):
            # One transaction per migration: a failed one leaves the previous version.
            try:
                self.conn.executescript(
                    "BEGIN IMMEDIATE;"
                    + MIGRATIONS[n]
                    + f";PRAGMA application_id = {APPLICATION_ID};"
                    + f"PRAGMA user_version = {n + 1};COMMIT;"
                )
            except sqlite3.DatabaseError as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise StoreError(
                    f"{self.path}: migration to version {n + 1} failed: {exc}"
                ) from exc

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- known devices -------------------------------------------------------

    def remember_device(
        self, *, address: str, name: str, driver: str, support: str, virtual: bool
    ) -> KnownDevice:
        """Store (or refresh) a paired device."""
        now = _now_iso()
        with self.transaction() as c:
            c.execute(
                """INSERT INTO devices (address, name, driver, support, virtual, paired_at,
                       last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(address) DO UPDATE SET name=excluded.name,
                       driver=excluded.driver, support=excluded.support,
                       virtual=excluded.virtual, last_seen=excluded.last_seen""",
                (address, name, driver, support, int(virtual), now, now),
            )
        dev = self.device(address)
        assert dev is not None
        return dev

    def device(self, address: str) -> KnownDevice | None:
        row = self.conn.execute(
            "SELECT * FROM devices WHERE address = ? COLLATE NOCASE", (address,)
        ).fetchone()
        return _device(row) if row else None

    def devices(self) -> list[KnownDevice]:
        rows = self.conn.execute("SELECT * FROM devices ORDER BY last_seen DESC, name").fetchall()
        return [_device(r) for r in rows]

    def touch_device(self, address: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE devices SET last_seen = ? WHERE address = ? COLLATE NOCASE",
                (_now_iso(), address),
            )


def _device(row: sqlite3.Row) -> KnownDevice:
    return KnownDevice(
        address=row["address"],
        name=row["name"],
        driver=row["driver"],
        support=row["support"],
        virtual=bool(row["virtual"]),
        paired_at=row["paired_at"],
        last_seen=row["last_seen"],
    )
