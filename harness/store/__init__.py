"""The DuckDB store: one file, numbered append-only migrations, short transactions.

DuckDB lets one process hold a file for writing, and while it does no other process may even read
it. So nothing here keeps a connection open: every read or write opens the file, does its work in
one transaction and closes it, and a process that finds the file locked retries for a while. That is
what lets the app read between the writes of a running suite.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

from harness.errors import HarnessError

DEFAULT_DB = "harness.duckdb"
LOCK_WAIT_S = 30.0


class StoreBusyError(HarnessError):
    """Another process held the database file for longer than we waited."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered .sql file, in order."""
    found = []
    for entry in resources.files("harness.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


class Store:
    def __init__(self, path: str | Path = DEFAULT_DB, migrate: bool = True, lock_wait_s: float = LOCK_WAIT_S):
        """migrate=False opens an existing file as it is, writing nothing (the app's viewing mode);
        lock_wait_s bounds how long a read or write waits for another process's lock."""
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        if migrate:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.migrate()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.02
        self.lock_retries = 0  # failed attempts of the latest connect (tests observe the wait)
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StoreBusyError(
                        f"{self.path}: held by another process for {self.lock_wait_s:.0f} s: {exc}"
                    ) from None
                self.lock_retries += 1
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.5)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; the file is released as soon as it commits."""
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
        con = self._connect(read_only=True)
        try:
            yield con
        finally:
            con.close()

    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen yet; returns the versions applied."""
        with self.write() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
            )
            done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
            applied = []
            for version, name, sql in migrations():
                if version in done:
                    continue
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
                applied.append(version)
        return applied
