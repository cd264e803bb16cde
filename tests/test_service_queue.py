"""The queue's SQL (harness.store.jobs) on a real DuckDB file: claim order, resources per host,
leases that run out, dead workers, attempts, cancel, tokens stored as hashes only. Time is passed
in (`at=`), so lease expiry is tested without waiting for it."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from harness.store import Store
from harness.store import jobs as q
from harness.store.queries import now

HOST = socket.gethostname()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "q.duckdb")


def submit(store, name: str, priority: int = 0, resources=()) -> str:
    return q.submit(store, kind="ratings", suite_name=name, suite_json=None, params={}, data_roots=[],
                    resources=list(resources), submitter="t", priority=priority)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_follow_priority_then_submission_and_each_job_goes_once(store):
    low, high, high2 = submit(store, "low"), submit(store, "high", 5), submit(store, "high2", 5)
    got = [q.claim(store, f"h:{i}", 30)["job_id"] for i in range(3)]
    assert got == [high, high2, low]
    assert q.claim(store, "h:9", 30) is None
    assert [q.get_job(store, j)["attempts"] for j in got] == [1, 1, 1]


def test_a_resource_held_on_a_host_blocks_only_that_host(store):
    first = submit(store, "a", resources=["local-model:x"])
    second = submit(store, "b", resources=["local-model:x"])
    third = submit(store, "c", resources=["local-model:y"])
    assert q.claim(store, "h1:1", 30)["job_id"] == first
    assert q.claim(store, "h1:2", 30)["job_id"] == third  # b would load model x twice on h1: skipped
    assert q.claim(store, "h1:3", 30) is None
    assert q.finish(store, first, "h1:1", "finished", {"made": 3, "cached": 1, "failed": 0})
    assert q.claim(store, "h1:3", 30)["job_id"] == second
    assert q.get_job(store, first)["n_made"] == 3
    other = submit(store, "d", resources=["local-model:x"])
    assert q.claim(store, "h2:1", 30)["job_id"] == other  # another host has its own memory and GPU


def test_a_lease_that_runs_out_requeues_the_job_and_the_old_holder_loses_it(store):
    job = submit(store, "a")
    t0 = now()
    assert q.claim(store, "elsewhere:1", 10, at=t0)["job_id"] == job
    assert q.claim(store, f"{HOST}:2", 10, at=t0 + timedelta(seconds=5)) is None  # the lease still holds
    again = q.claim(store, f"{HOST}:2", 10, at=t0 + timedelta(seconds=11))
    assert again["job_id"] == job and again["attempts"] == 2 and again["worker"] == f"{HOST}:2"
    assert q.heartbeat(store, job, "elsewhere:1", 10) is None  # the old holder learns it lost the job
    assert not q.finish(store, job, "elsewhere:1", "finished")
    assert q.heartbeat(store, job, f"{HOST}:2", 10) == "running"
    states = [(e["state"], e["message"]) for e in q.events(store, job) if e["kind"] == "state"]
    assert [s for s, _ in states] == ["queued", "running", "queued", "running"]
    assert "re-queued" in states[2][1]


def test_a_dead_worker_on_this_host_releases_its_job_without_waiting_for_the_lease(store):
    job = submit(store, "a")
    assert q.claim(store, f"{HOST}:{dead_pid()}", 3600)["job_id"] == job
    assert q.has_work(store)
    assert q.claim(store, f"{HOST}:1", 3600)["job_id"] == job  # pid 1 is alive: it keeps what it holds
    assert not q.has_work(store)


def test_a_job_that_kills_its_worker_again_and_again_fails(store):
    job = submit(store, "a")
    t = now()
    for attempt in range(q.MAX_ATTEMPTS):
        t += timedelta(seconds=20)
        assert q.claim(store, f"elsewhere:{attempt}", 10, at=t)["job_id"] == job
    assert q.claim(store, "elsewhere:9", 10, at=t + timedelta(seconds=20)) is None
    row = q.get_job(store, job)
    assert row["state"] == "failed" and f"{q.MAX_ATTEMPTS} times" in row["error"]


def test_cancel_a_queued_job_at_once_and_a_running_one_through_its_worker(store):
    queued, running = submit(store, "a"), submit(store, "b", 1)
    assert q.claim(store, "h:1", 30)["job_id"] == running
    assert q.cancel(store, queued) == "cancelled"
    assert q.claim(store, "h:2", 30) is None  # a cancelled job is never claimed
    assert q.cancel(store, running) == "cancelling"
    assert q.heartbeat(store, running, "h:1", 30) == "cancelling"
    assert q.finish(store, running, "h:1", "cancelled", error="cancelled by request")
    assert q.cancel(store, running) == "cancelled" and q.cancel(store, "nope") is None
    q.release(store, running, "h:1", "stopping")  # a worker stopping after the end changes nothing
    assert q.get_job(store, running)["state"] == "cancelled"


def test_release_gives_a_running_job_back_to_the_queue(store):
    job = submit(store, "a")
    q.claim(store, "h:1", 30)
    q.release(store, job, "h:1", "its worker was stopped: re-queued")
    assert q.get_job(store, job)["state"] == "queued"
    assert q.claim(store, "h:2", 30)["job_id"] == job


def test_tokens_are_stored_as_hashes_and_can_be_revoked(store, tmp_path):
    token = q.create_token(store, "alice")
    assert q.verify_token(store, token) == ("alice", False)
    assert q.verify_token(store, token + "x") is None
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("q.duckdb*"))  # the file and any WAL
    assert q.token_hash(token).encode() in stored and token.encode() not in stored
    assert q.revoke_token(store, "alice") == 1 and q.revoke_token(store, "alice") == 0
    assert q.verify_token(store, token) == ("alice", True)
    assert [t["name"] for t in q.list_tokens(store)] == ["alice"]


def test_the_cli_and_import_harness_load_no_service_packages():
    """`harness --help` and `import harness` stay quick: FastAPI and uvicorn load only in `serve`."""
    code = ("import sys, harness, harness.cli, harness.service\n"
            "from harness.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('fastapi', 'uvicorn', 'starlette', 'sse_starlette') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "serve" in out.stdout and "submit" in out.stdout  # the commands are registered


def test_public_reads_opens_the_read_endpoints_only(tmp_path):
    """--public-reads: reads answer without a token, writes still need one (the app in process)."""
    from fastapi.testclient import TestClient

    from harness.service.app import create_app
    from harness.service.security import Settings

    for public, read_status in ((True, 200), (False, 401)):
        with TestClient(create_app(Settings(db=tmp_path / "p.duckdb", public_reads=public))) as client:
            assert client.get("/v1/jobs").status_code == read_status
            assert client.get("/metrics").status_code == read_status
            assert client.post("/v1/jobs", json={"suite_name": "quickstart", "kind": "ratings"}).status_code == 401
            assert client.get("/v1/jobs/nope").status_code == (404 if public else 401)
