"""Opening a store file: refuse foreign files, create, migrate, switch to WAL.

Opening is safe against other processes opening the same file at the same
time: a new file is created and migrated under one ``BEGIN IMMEDIATE``
transaction, and the identification is read again inside it. A foreign
database is never written (not even checkpointed) before we know it is ours.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import urllib.parse
from pathlib import Path

from biofeedback.paths import make_private_dirs
from biofeedback.store.errors import StoreError
from biofeedback.store.schema import APPLICATION_ID, MIGRATIONS, Header, read_header, split_sql

__all__ = ["open_store"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_file(path: Path) -> None:
    """Refuse anything that is not an SQLite file before SQLite touches it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is a directory, not a store file; left untouched")
    if st.st_size == 0:
        return
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc.strerror or exc}") from exc
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a biofeedback store (not an SQLite file); left untouched")


def _create_file(path: Path) -> None:
    """Create an empty store file owner-only (health data); another process may win."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _writable(path: Path) -> bool:
    """The file and its folder can be written (WAL keeps two files beside it)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def open_store(path: Path, busy_timeout: float) -> tuple[sqlite3.Connection, bool]:
    """Open (creating or migrating when needed) the store at ``path``.

    Parameters
    ----------
    path : Path
        The database file; created (mode 0600) when missing.
    busy_timeout : float
        Seconds to wait for another process's write lock.

    Returns
    -------
    conn : sqlite3.Connection
        The open connection (autocommit, rows as :class:`sqlite3.Row`).
    readonly : bool
        True when the file or its folder cannot be written.

    Raises
    ------
    StoreError
        When the file is corrupt, foreign, or written by a newer version.
    """
    return _Opener(path, busy_timeout).open()


class _Opener:
    """One opening of a store file."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout

    def open(self) -> tuple[sqlite3.Connection, bool]:
        readonly = False
        _check_file(self.path)
        if not self.path.exists():
            try:
                _create_file(self.path)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store {self.path}: {exc.strerror or exc}"
                ) from None
        # Identify the file on a read-only connection first: a foreign database is
        # never written (not even checkpointed) before we know it is ours.
        self.conn = self._connect(readonly=True)
        try:
            header = self._identify()
            if _writable(self.path):
                self.conn.close()
                self.conn = self._connect(readonly=False)
                self._open()
            elif header.version < len(MIGRATIONS):
                raise StoreError(f"{self.path} is read-only and needs an upgrade to this "
                                 "version's format: make it writable once")
            else:
                readonly = True
                self.conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            self.conn.close()
            raise
        return self.conn, readonly

    def _identify(self) -> Header:
        """The header, on the read-only connection.

        In a read-only folder SQLite cannot create the WAL index beside the
        file; with no ``-wal`` there, nobody is writing, so the file is read
        as immutable.
        """
        try:
            return self._header(lock=False)
        except StoreError:
            folder = self.path.parent
            if Path(f"{self.path}-wal").exists() or os.access(folder, os.W_OK | os.X_OK):
                raise
        self.conn.close()
        self.conn = self._connect(readonly=True, immutable=True)
        return self._header(lock=False)

    def _connect(self, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        uri += "?mode=ro&immutable=1" if immutable else "?mode=ro" if readonly else "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True,
                                   timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _open(self) -> None:
        """Identify the file, migrate it if needed, then switch it to WAL."""
        header = self._header(lock=False)
        if header.version < len(MIGRATIONS):
            self._migrate()
        try:
            self._set_wal()
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def _set_wal(self) -> None:
        """Switch to WAL (a no-op once the file is WAL).

        The switch needs an exclusive lock, and SQLite answers "locked" at
        once instead of waiting when two connections want it together (a
        deadlock otherwise), so it is retried until the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _header(self, *, lock: bool) -> Header:
        """Read and check the identification (``lock``: inside our write transaction)."""
        try:
            if lock:
                header = read_header(self.conn)
            else:
                self.conn.execute("BEGIN")
                try:
                    header = read_header(self.conn)
                finally:
                    self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if "unable to open" in str(exc):
                raise StoreError(f"{self.path}: cannot open the store ({exc}); check the "
                                 "permissions of the file and its folder") from None
            raise StoreError(f"{self.path} is corrupt or not a biofeedback store ({exc}); "
                             "left untouched") from None
        if header.app_id != APPLICATION_ID and (header.has_tables or header.version):
            raise StoreError(
                f"{self.path} is an SQLite file of another application; left untouched"
            )
        if header.version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {header.version}, newer than this program "
                f"understands ({len(MIGRATIONS)}); update biofeedback"
            )
        return header

    def _migrate(self) -> None:
        """Bring the schema up to date in one write transaction.

        The version is read again once the lock is held: another process may
        have created or migrated the file since we first looked.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        try:
            version = self._header(lock=True).version
            step = version + 1
            for n in range(version, len(MIGRATIONS)):
                step = n + 1
                for sql in split_sql(MIGRATIONS[n]):
                    self.conn.execute(sql)
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: migration to version {step} failed: {exc}") from exc
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

