"""The DuckDB store: one file, numbered append-only migrations, short transactions.

DuckDB lets one process hold a file for writing, and while it does no other process may even read
it. So nothing here keeps a connection open: every read or write opens the file, does its work in
one transaction and closes it, and a process that finds the file locked retries for a while. That is
what lets the app read between the writes of a running suite.

Opening a Store checks the file's schema with a read-only connection and writes only to apply a
migration it lacks: a current store is never written by opening it, so read commands work on a
read-only file, and a store from a newer harness is refused before anything touches it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

from harness.errors import (NotADatabaseError, SchemaOutdatedError, SchemaTooNewError, StoreBusyError,  # noqa: F401
                            StoreError, StoreReadOnlyError)

DEFAULT_DB = "harness.duckdb"
LOCK_WAIT_S = 30.0
# What DuckDB's IOException says when the OS refused a write (EROFS, EACCES, EPERM as for chattr +i).
_UNWRITABLE = ("Read-only file system", "Permission denied", "Operation not permitted")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered .sql file, in order."""
    found = []
    for entry in resources.files("harness.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _in_process_lock(path: Path) -> threading.RLock:
    """One connection at a time per file within this process: DuckDB refuses a read-only connection
    while a read-write one is open in the same process, and the run's writer thread writes while the
    planner reads."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


def latest_version() -> int:
    """The highest schema version this code knows (its last migration file)."""
    return max(v for v, _, _ in migrations())


class Store:
    def __init__(self, path: str | Path = DEFAULT_DB, migrate: bool = True, lock_wait_s: float = LOCK_WAIT_S):
        """migrate=True (the default) creates a missing file and brings an older one up to this
        code's schema; a current one is only read. migrate=False opens nothing and writes nothing
        (the app's viewing mode); lock_wait_s bounds how long a read or write waits for a lock."""
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        if migrate:
            self.ensure_schema()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.02
        self.lock_retries = 0  # failed attempts of the latest connect (tests observe the wait)
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                problem = self._open_problem(str(exc), read_only)
                if problem is not None:
                    raise problem from None
                if time.monotonic() > deadline:
                    raise StoreBusyError(
                        f"{self.path}: held by another process for {self.lock_wait_s:.0f} s: {exc}"
                    ) from None
                self.lock_retries += 1
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.5)

    def _open_problem(self, message: str, read_only: bool) -> StoreError | None:
        """The true reason a connect failed, or None for a lock held by another process (worth a wait)."""
        reason = message.rsplit(": ", 1)[-1]
        if "not a valid DuckDB database file" in message:
            return NotADatabaseError(f"{self.path}: not a DuckDB database file: pass a harness store with --db, "
                                     "or a new file name to create one")
        if read_only and not self.path.exists():
            return StoreError(f"{self.path}: no such database: run `harness run quickstart --db {self.path}` "
                              "first, or pass --db")
        if not read_only and any(text in message for text in _UNWRITABLE):
            fix = ("make it writable, or copy the file somewhere writable and pass that with --db" if self.path.exists()
                   else "pass a --db in a writable folder")
            return StoreReadOnlyError(f"{self.path}: cannot write: {self._unwritable_part()} ({reason}): {fix}")
        if "lock" in message.lower():
            return None
        return StoreError(f"{self.path}: cannot open the database: {message}")

    def _unwritable_part(self) -> str:
        folder = self.path.parent.resolve()
        if not os.access(folder, os.W_OK) and not self.path.exists():
            return f"the folder {folder} is read-only"
        if not os.access(self.path, os.W_OK):
            return "the file is read-only" if os.access(folder, os.W_OK) else f"the file and its folder {folder} are read-only"
        return "the file is not writable"

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; the file is released as soon as it commits."""
        with _in_process_lock(self.path):
            con = self._connect(read_only=False)
            try:
                con.begin()
                yield con
                con.commit()
            except BaseException:
                con.rollback()
                raise
            finally:
                con.close()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with _in_process_lock(self.path):
            con = self._connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    def check_schema(self) -> int:
        """The file's schema version, read without writing; SchemaTooNewError when a newer harness
        migrated it (this code would misread or damage its tables)."""
        with self.read() as con:
            version = _version(con)
        self._refuse_newer(version)
        return version

    def ensure_schema(self) -> None:
        """Create a missing file, migrate an older one; a current file is left untouched."""
        if self.path.exists():
            version = self.check_schema()
            if version >= latest_version():
                return
        else:
            version = 0
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreReadOnlyError(f"{self.path}: cannot create its folder ({exc.strerror}): "
                                         "pass a --db in a writable folder") from None
        try:
            self.migrate()
        except StoreReadOnlyError:
            if version == 0 and not self.path.exists():
                raise  # a new store in a read-only folder: nothing was old
            raise SchemaOutdatedError(
                f"{self.path}: schema version {version} is older than this harness ({latest_version()}) and "
                "the file cannot be written to migrate it: copy it somewhere writable, or run a writer command "
                "(harness run) on it once") from None

    def _refuse_newer(self, version: int) -> None:
        if version > latest_version():
            raise SchemaTooNewError(
                f"{self.path}: schema version {version} is newer than this harness knows ({latest_version()}): "
                "upgrade alignment-harness, or use another --db")

    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen yet; returns the versions applied."""
        with self.write() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
            )
            done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
            self._refuse_newer(max(done, default=0))  # raised inside the transaction: rolled back
            applied = []
            for version, name, sql in migrations():
                if version in done:
                    continue
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
                applied.append(version)
        return applied


def _version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration; 0 for a file without the table (empty, or not ours yet)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"
                       " AND NOT temporary").fetchone()[0]:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
