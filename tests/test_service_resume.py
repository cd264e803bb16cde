"""kill -9 in the middle of judging (of the whole service, then of one worker), restart: the job
completes from the cache, no row twice, and the model + judge calls over both lives equal a clean
run's. Also: a cancelled job stops at its next step and its run is marked interrupted.

Exact equality holds because the stub (Gate) holds every request once the kill point is reached,
and the kill comes only when the store holds every reply the stub sent: nothing was in flight
between a reply and its commit, so nothing can be asked twice.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import api
from harness.store.queries import pid_alive
from tests.stub_server import StubServer
from tests.test_service import (FINAL, HARNESS, REPO, Gate, Service, read_db, suite_text, token_for, try_read_db,
                                wait_job, wait_until, write_questions)

pytestmark = pytest.mark.slow
QUESTIONS = 8  # 3 models: 24 answers; 3 pairs x 8 questions x 2 orders: 48 judge calls


def clean_run(tmp_path: Path) -> tuple[int, int, int]:
    """(calls, answers, judgments) of an uninterrupted run of the same suite through harness.api."""
    data = tmp_path / "clean"
    write_questions(data, QUESTIONS)
    with StubServer() as stub:
        (data / "s.yaml").write_text(suite_text(stub.base_url))
        api.run(data / "s.yaml", data / "clean.duckdb", stages=("generate", "judge"))
        calls = stub.served_calls()
    answers, judgments = (read_db(data / "clean.duckdb", f"SELECT count(*) FROM {t}")[0][0]
                          for t in ("answers", "judgments"))
    return calls, answers, judgments


def committed(db: Path) -> tuple[int, int] | None:
    """(answers, judge calls) committed to the store, or None while a writer holds the file."""
    rows = try_read_db(db, "SELECT (SELECT count(*) FROM answers), (SELECT count(DISTINCT call_id) FROM judgments)")
    return rows[0] if rows else None


def at_kill_point(db: Path, stub: StubServer, gate: Gate) -> bool:
    """The gate holds every request, and the store holds every reply the stub sent."""
    if not gate.closed.is_set():
        return False
    return committed(db) == (stub.served_calls("answer"), stub.served_calls("judge"))


def submit(service: Service, token: str, data: Path, stub: StubServer) -> str:
    with service.client(token) as client:
        r = client.post("/v1/jobs", json={"suite": suite_text(stub.base_url), "filename": "resume.yaml",
                                          "stages": ["generate", "judge"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def worker_pid(db: Path, job_id: str) -> int:
    (worker,), = read_db(db, "SELECT worker FROM jobs WHERE job_id = ?", [job_id])
    return int(worker.rsplit(":", 1)[1])


def check_resumed(db: Path, job: dict, stub: StubServer, clean: tuple[int, int, int]) -> None:
    calls, answers, judgments = clean
    assert job["state"] == "finished" and job["attempts"] == 2 and job["result"]["complete"], job
    assert job["calls"]["cached"] > 0 and job["calls"]["made"] > 0  # the second life resumed mid-way
    assert stub.served_twice() == 0
    assert stub.served_calls() == calls
    assert read_db(db, "SELECT count(*), count(DISTINCT answer_id) FROM answers") == [(answers, answers)]
    assert read_db(db, "SELECT count(*), count(DISTINCT judgment_id) FROM judgments") == [(judgments, judgments)]
    messages = [m for (m,) in read_db(db, "SELECT message FROM job_events WHERE job_id = ? AND state = 'queued'"
                                          " ORDER BY seq", [job["id"]])]
    assert len(messages) == 2 and "re-queued" in messages[1]


def test_kill_minus_nine_of_the_service_mid_judging_then_restart(tmp_path):
    clean = clean_run(tmp_path)
    data = tmp_path / "data"
    write_questions(data, QUESTIONS)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    gate = Gate(judge_calls=20)
    with StubServer(verdict_for=gate.verdict_for, answer_for=gate.answer_for) as stub:
        first = Service(db, tmp_path / "serve1.log", "--workers", "1", "--data-root", str(data), "--lease-s", "30")
        job_id = submit(first, token, data, stub)
        try:
            wait_until(lambda: at_kill_point(db, stub, gate), 120, "the kill point mid-judging")
            pid = worker_pid(db, job_id)
        finally:
            first.kill9()
        wait_until(lambda: not pid_alive(pid), 30, "the worker to die with its service")
        assert 0 < stub.served_calls("judge") < clean[0] - stub.served_calls("answer")
        gate.open_dead()
        # The lease (30 s) has not run out: the restarted worker sees the holder's pid is gone.
        second = Service(db, tmp_path / "serve2.log", "--workers", "1", "--data-root", str(data))
        try:
            with second.client(token) as client:
                job = wait_job(client, job_id)
        finally:
            second.stop()
        check_resumed(db, job, stub, clean)


def test_kill_minus_nine_of_a_worker_mid_judging_then_another_worker(tmp_path):
    clean = clean_run(tmp_path)
    data = tmp_path / "data"
    write_questions(data, QUESTIONS)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    gate = Gate(judge_calls=20)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with StubServer(verdict_for=gate.verdict_for, answer_for=gate.answer_for) as stub:
        service = Service(db, tmp_path / "serve.log", "--workers", "0", "--data-root", str(data))
        try:
            job_id = submit(service, token, data, stub)
            worker = subprocess.Popen([*HARNESS, "worker", "--db", str(db), "--poll-s", "0.2"], cwd=REPO, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(lambda: at_kill_point(db, stub, gate), 120, "the kill point mid-judging")
                assert worker_pid(db, job_id) == worker.pid
            finally:
                worker.kill()
                worker.wait()
            gate.open_dead()
            with service.client(token) as client:
                assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"  # its lease outlives the kill
                again = subprocess.Popen([*HARNESS, "worker", "--db", str(db), "--once"], cwd=REPO, env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                assert again.wait(timeout=180) == 0
                job = client.get(f"/v1/jobs/{job_id}").json()
        finally:
            service.stop()
        check_resumed(db, job, stub, clean)


def test_cancel_stops_a_running_job_and_marks_its_run_interrupted(tmp_path):
    data = tmp_path / "data"
    write_questions(data, QUESTIONS)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    gate = Gate(judge_calls=0)
    gate.closed.set()  # hold every request: the job stays in the middle of generation until cancelled
    with StubServer(verdict_for=gate.verdict_for, answer_for=gate.answer_for) as stub:
        service = Service(db, tmp_path / "serve.log", "--workers", "1", "--data-root", str(data))
        try:
            job_id = submit(service, token, data, stub)
            with service.client(token) as client:
                wait_until(lambda: stub.counts["requests"] > 0, 60, "the job to reach its first model call")
                assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelling"
                job = wait_job(client, job_id, 60)
                assert client.get("/healthz").json()["workers"] == 1  # the worker survived its job's cancel
        finally:
            gate.open_dead()
            service.stop()
    assert job["state"] == "cancelled" and job["error"] == "cancelled by request", job
    assert read_db(db, "SELECT status FROM runs") == [("interrupted",)]
    assert job["state"] in FINAL
