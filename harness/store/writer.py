"""The run's one writer: rows are committed in batches by a background thread, so requests stay in
flight while earlier results are written.

Each flush is one short transaction (the file is opened, written and closed, so readers such as the
app get in between), and each committed batch is a resume point. A run killed outright loses only
what was not committed yet: at most `2 * flush_rows` rows (one batch being written, one filling),
because `put` waits while that many are pending. Requests in flight at the kill come on top.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from harness.store import Store
from harness.store import queries as q

FLUSH_ROWS = int(os.environ.get("HARNESS_FLUSH_ROWS", "1000"))  # rows per committed batch, at most
FLUSH_S = float(os.environ.get("HARNESS_FLUSH_S", "0.5"))  # a batch waits no longer than this to commit

INSERTS: dict[str, Callable] = {
    "answers": q.insert_answers,
    "generation_failures": q.insert_failures,
    "judgments": q.insert_judgments,
    "judge_failures": q.insert_judge_failures,
}


class RowWriter:
    """`with RowWriter(store) as writer: writer.put("judgments", rows)`; leaving the block commits
    what is pending and re-raises a write error (a failed write is a bug, never swallowed)."""

    def __init__(self, store: Store, flush_rows: int = FLUSH_ROWS, flush_s: float = FLUSH_S):
        self.store, self.flush_rows, self.flush_s = store, max(1, flush_rows), flush_s
        self._pending: dict[str, list[tuple]] = {}
        self._count = 0  # rows pending plus rows being written
        self._first_at: float | None = None
        self._closing = self._now = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="harness-writer", daemon=True)
        self.batches = 0  # committed transactions (tests and benches read it)

    def __enter__(self) -> "RowWriter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, table: str, rows: list[tuple]) -> None:
        """Queue rows for `table`; waits while 2 * flush_rows rows are not committed yet."""
        if not rows:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._count < 2 * self.flush_rows or self._error is not None)
            self._raise_error()
            first = not self._pending
            self._pending.setdefault(table, []).extend(rows)
            self._count += len(rows)
            self._first_at = self._first_at or time.monotonic()
            # Wake the writer only when it has something new to decide (a batch's first row starts its
            # clock, a full batch is due): a wake-up per row would trade the GIL back and forth per call.
            if first or sum(map(len, self._pending.values())) >= self.flush_rows:
                self._cond.notify_all()

    def flush(self) -> None:
        """Block until every row put so far is committed."""
        with self._cond:
            self._now = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._count == 0 or self._error is not None)
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error  # the writer thread's own exception (a StoreBusyError stays a user error)

    def _due(self) -> bool:
        if not self._pending:
            return False
        waited = time.monotonic() - (self._first_at or 0.0)
        return (self._closing or self._now or sum(map(len, self._pending.values())) >= self.flush_rows
                or waited >= self.flush_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._pending:
                        return
                    timeout = None if not self._pending else max(0.0, self.flush_s - (time.monotonic() - self._first_at))
                    self._cond.wait(timeout)
                batch, self._pending, self._first_at, self._now = self._pending, {}, None, False
            try:
                with self.store.write() as con:
                    for table, rows in batch.items():
                        INSERTS[table](con, rows)
                self.batches += 1
            except BaseException as exc:  # surfaced to the producer at its next put/flush/close
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._count -= sum(map(len, batch.values()))
                self._cond.notify_all()
