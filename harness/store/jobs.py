"""SQL of the service's queue: jobs, their events, and API tokens (migration 008).

Every function is one short transaction through the Store, so the API process and any number of
worker processes share the file under DuckDB's single-writer rule: each holds it for milliseconds
and the Store retries a lock held by another. A claim is atomic because it is one transaction: it
re-queues jobs whose worker is gone, picks the best queued job whose resources are free on this
host, and takes it under a lease; only the lease holder can renew, finish or release it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import uuid
from datetime import datetime, timedelta
from typing import Callable

from harness.redact import redact
from harness.store import Store
from harness.store.queries import now, pid_alive, rows_as_dicts

ACTIVE = ("running", "cancelling")
DONE = ("finished", "failed", "cancelled")
STATES = ("queued", *ACTIVE, *DONE)
MAX_ATTEMPTS = 3  # a job that kills its worker again and again (out of memory) fails instead of looping
_COLUMNS = ("job_id, kind, state, priority, suite_name, suite_json, params_json, data_roots, resources, submitter,"
            " submitted_at, started_at, finished_at, worker, lease_until, attempts, stage, progress_json, result_json,"
            " n_made, n_cached, n_failed, error")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _host(worker: str | None) -> str:
    return (worker or "").rsplit(":", 1)[0]


def _worker_dead(worker: str | None) -> bool:
    """A lease holder on this host whose process is gone (kill -9): its job need not wait out the lease."""
    host, _, pid = (worker or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def _event(con, job_id: str, kind: str, *, state=None, label=None, done=None, total=None, message=None,
           at: datetime | None = None) -> None:
    seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM job_events WHERE job_id = ?", [job_id]).fetchone()[0]
    con.execute("INSERT INTO job_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [job_id, seq, at or now(), kind, state, label, done, total, redact(message)])


# --- submitting and reading ------------------------------------------------------------------------
def submit(store: Store, *, kind: str, suite_name: str | None, suite_json: str | None, params: dict,
           data_roots: list[str], resources: list[str], submitter: str, priority: int = 0) -> str:
    """Queue a job; returns its id. The suite is stored with every known secret value masked."""
    job_id = uuid.uuid4().hex[:16]
    with store.write() as con:
        con.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?,"
                    " NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
                    [job_id, kind, priority, suite_name, redact(suite_json), redact(json.dumps(params)),
                     data_roots, resources, submitter, now()])
        _event(con, job_id, "state", state="queued")
    return job_id


def get_job(store: Store, job_id: str) -> dict | None:
    with store.read() as con:
        rows = rows_as_dicts(con, f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", [job_id])
    return rows[0] if rows else None


def list_jobs(store: Store, state: str | None = None, suite: str | None = None, submitter: str | None = None,
              limit: int = 100) -> list[dict]:
    """Newest first."""
    with store.read() as con:
        return rows_as_dicts(con,
            f"SELECT {_COLUMNS} FROM jobs WHERE (? IS NULL OR state = ?) AND (? IS NULL OR suite_name = ?)"
            " AND (? IS NULL OR submitter = ?) ORDER BY submitted_at DESC, job_id LIMIT ?",
            [state, state, suite, suite, submitter, submitter, limit])


def events(store: Store, job_id: str, after: int = 0) -> list[dict]:
    return events_and_state(store, job_id, after)[0]


def events_and_state(store: Store, job_id: str, after: int = 0) -> tuple[list[dict], str | None]:
    """The job's events after `after` and its state, read in one transaction (one snapshot: an
    ended job's final event is among the rows or at or before `after`); state None: no such job."""
    with store.read() as con:
        rows = rows_as_dicts(con, "SELECT seq, created_at, kind, state, label, done, total, message FROM job_events"
                                  " WHERE job_id = ? AND seq > ? ORDER BY seq", [job_id, after])
        state = con.execute("SELECT state FROM jobs WHERE job_id = ?", [job_id]).fetchone()
    return rows, state[0] if state else None


def has_work(store: Store) -> bool:
    """Anything a worker could claim (read-only: idle workers do not take the write lock to find out)."""
    with store.read() as con:
        return con.execute("SELECT count(*) FROM jobs WHERE state = 'queued' OR (state IN ('running', 'cancelling')"
                           " AND lease_until < ?)", [now()]).fetchone()[0] > 0 or _dead_here(con)


def _dead_here(con) -> bool:
    workers = con.execute("SELECT worker FROM jobs WHERE state IN ('running', 'cancelling')").fetchall()
    return any(_worker_dead(w) for (w,) in workers)


def metrics(store: Store) -> dict:
    """Jobs by state, calls made / cached / failed by finished jobs, and queue waits."""
    with store.read() as con:
        states = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        made, cached, failed = con.execute("SELECT coalesce(sum(n_made), 0), coalesce(sum(n_cached), 0),"
                                           " coalesce(sum(n_failed), 0) FROM jobs").fetchone()
        waited, n_started = con.execute(
            "SELECT coalesce(sum(epoch(started_at) - epoch(submitted_at)), 0), count(started_at) FROM jobs").fetchone()
        oldest = con.execute("SELECT min(submitted_at) FROM jobs WHERE state = 'queued'").fetchone()[0]
    return {"states": {s: states.get(s, 0) for s in STATES}, "made": made, "cached": cached, "failed": failed,
            "wait_s_sum": float(waited), "wait_count": n_started,
            "oldest_queued_s": (now() - oldest).total_seconds() if oldest else 0.0}


# --- the worker's side -----------------------------------------------------------------------------
def claim(store: Store, worker: str, lease_s: float, *, at: datetime | None = None,
          worker_dead: Callable[[str | None], bool] = _worker_dead) -> dict | None:
    """Take the highest-priority queued job whose resources no active job on this host holds; None
    when there is none. Jobs whose lease ran out or whose worker on this host is dead are re-queued
    first (a job out of attempts fails instead)."""
    at = at or now()
    with store.write() as con:
        _requeue_lost(con, at, worker_dead)
        host = _host(worker)
        active = con.execute("SELECT worker, resources FROM jobs WHERE state IN ('running', 'cancelling')").fetchall()
        held = {r for w, res in active if _host(w) == host for r in res}
        queued = con.execute("SELECT job_id, resources FROM jobs WHERE state = 'queued'"
                             " ORDER BY priority DESC, submitted_at, job_id").fetchall()
        chosen = next((job_id for job_id, res in queued if not held & set(res)), None)
        if chosen is None:
            return None
        con.execute("UPDATE jobs SET state = 'running', worker = ?, lease_until = ?, attempts = attempts + 1,"
                    " started_at = coalesce(started_at, ?) WHERE job_id = ? AND state = 'queued'",
                    [worker, at + timedelta(seconds=lease_s), at, chosen])
        _event(con, chosen, "state", state="running", message=f"claimed by {worker}", at=at)
        return rows_as_dicts(con, f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", [chosen])[0]


def _requeue_lost(con, at: datetime, worker_dead) -> None:
    lost = con.execute("SELECT job_id, state, worker, attempts, lease_until FROM jobs"
                       " WHERE state IN ('running', 'cancelling')").fetchall()
    for job_id, state, worker, attempts, lease_until in lost:
        if lease_until >= at and not worker_dead(worker):
            continue
        why = f"worker {worker} stopped renewing its lease"
        if state == "cancelling":
            _set_final(con, job_id, "cancelled", None, at, why)
        elif attempts >= MAX_ATTEMPTS:
            _set_final(con, job_id, "failed", None, at, f"{why} {attempts} times: the job may crash its worker")
        else:
            _requeue(con, job_id)
            _event(con, job_id, "state", state="queued", message=f"{why}: re-queued", at=at)


def _requeue(con, job_id: str) -> None:
    con.execute("UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL WHERE job_id = ?", [job_id])


def heartbeat(store: Store, job_id: str, worker: str, lease_s: float, *, stage: str | None = None,
              progress: dict | None = None, updates: list[tuple[str, int, int]] = (),
              stages: list[tuple[str, str]] = ()) -> str | None:
    """Renew the lease and record progress: `updates` are (label, done, total) of bars that moved,
    `stages` (stage, summary) of stages that ended. Returns the job's state (cancelling: stop), or
    None when this worker no longer holds it."""
    with store.write() as con:
        state = _held(con, job_id, worker)
        if state is None:
            return None
        con.execute("UPDATE jobs SET lease_until = ?, stage = coalesce(?, stage),"
                    " progress_json = coalesce(?, progress_json) WHERE job_id = ?",
                    [now() + timedelta(seconds=lease_s), stage, json.dumps(progress) if progress else None, job_id])
        _progress_events(con, job_id, updates, stages)
        return state


def _held(con, job_id: str, worker: str) -> str | None:
    row = con.execute("SELECT state FROM jobs WHERE job_id = ? AND worker = ? AND state IN ('running', 'cancelling')",
                      [job_id, worker]).fetchone()
    return row[0] if row else None


def _progress_events(con, job_id: str, updates, stages) -> None:
    for label, done, total in updates:
        _event(con, job_id, "progress", label=label, done=done, total=total)
    for stage, message in stages:
        _event(con, job_id, "stage", label=stage, message=message)


def finish(store: Store, job_id: str, worker: str, state: str, result: dict | None = None, error: str | None = None,
           *, progress: dict | None = None, updates=(), stages=()) -> bool:
    """End a job this worker holds (finished, failed, cancelled), with the progress not written
    yet; False when the lease was lost."""
    with store.write() as con:
        if _held(con, job_id, worker) is None:
            return False
        _progress_events(con, job_id, updates, stages)
        if progress:
            con.execute("UPDATE jobs SET progress_json = ? WHERE job_id = ?", [json.dumps(progress), job_id])
        _set_final(con, job_id, state, result, now(), error)
        return True


def _set_final(con, job_id: str, state: str, result: dict | None, at: datetime, error: str | None) -> None:
    result = result or {}
    con.execute("UPDATE jobs SET state = ?, finished_at = ?, lease_until = NULL, result_json = ?, n_made = ?,"
                " n_cached = ?, n_failed = ?, error = ? WHERE job_id = ?",
                [state, at, json.dumps(result) if result else None, result.get("made"), result.get("cached"),
                 result.get("failed"), redact(error), job_id])
    _event(con, job_id, "state", state=state, message=error, at=at)


def release(store: Store, job_id: str, worker: str, why: str) -> None:
    """Give a job back to the queue (its worker is shutting down); it resumes from the cache."""
    with store.write() as con:
        state = con.execute("SELECT state FROM jobs WHERE job_id = ? AND worker = ?", [job_id, worker]).fetchone()
        if state and state[0] == "cancelling":
            _set_final(con, job_id, "cancelled", None, now(), why)
        elif state and state[0] == "running":
            _requeue(con, job_id)
            _event(con, job_id, "state", state="queued", message=why)


def cancel(store: Store, job_id: str) -> str | None:
    """Cancel a job: a queued one at once, a running one when its worker sees it (cancelling).
    Returns the new state (a finished job keeps its own), or None for an unknown id."""
    with store.write() as con:
        row = con.execute("SELECT state FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            return None
        if row[0] == "queued":
            _set_final(con, job_id, "cancelled", None, now(), "cancelled before it started")
            return "cancelled"
        if row[0] == "running":
            con.execute("UPDATE jobs SET state = 'cancelling' WHERE job_id = ?", [job_id])
            _event(con, job_id, "state", state="cancelling")
            return "cancelling"
        return row[0]


# --- tokens ----------------------------------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str) -> str:
    """A new random token for `name`; only its sha256 is stored, so this is the one time it is seen."""
    token = "hst_" + secrets.token_urlsafe(32)
    with store.write() as con:
        con.execute("INSERT INTO tokens VALUES (?, ?, ?, NULL)", [name, token_hash(token), now()])
    return token


def verify_token(store: Store, token: str) -> tuple[str, bool] | None:
    """(name, revoked) of a token, or None for one never issued."""
    with store.read() as con:
        row = con.execute("SELECT name, revoked_at IS NOT NULL FROM tokens WHERE token_hash = ?",
                          [token_hash(token)]).fetchone()
    return (row[0], bool(row[1])) if row else None


def revoke_token(store: Store, name: str) -> int:
    """Revoke every live token of `name`; returns how many."""
    with store.write() as con:
        n = con.execute("SELECT count(*) FROM tokens WHERE name = ? AND revoked_at IS NULL", [name]).fetchone()[0]
        con.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", [now(), name])
    return n


def list_tokens(store: Store) -> list[dict]:
    with store.read() as con:
        return rows_as_dicts(con, "SELECT name, created_at, revoked_at FROM tokens ORDER BY created_at")
