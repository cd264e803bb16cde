"""The service end to end: a real `harness serve` subprocess (uvicorn, worker processes, a DuckDB
file in tmp_path) whose suites call tests/stub_server.py. Submit -> run -> the leaderboard JSON
equals `harness ratings`; 50 concurrent submissions; tokens; data roots; sizes; secrets.

The helpers here (Service, Gate, suite writers) are shared by the other test_service_*.py files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import duckdb
import httpx
import pytest

from harness.store import Store
from harness.store.jobs import create_token
from tests.conftest import config_error_line
from tests.stub_server import StubServer, longer_wins
from tests.conftest import wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]
FINAL = ("finished", "failed", "cancelled")


class Service:
    """`harness serve` on 127.0.0.1, port chosen by the OS (read back from uvicorn's log line)."""

    def __init__(self, db: Path, log: Path, *args: str, env: dict | None = None):
        self.db, self.log = db, log
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen([*HARNESS, "serve", "--db", str(db), "--port", "0", *args], cwd=REPO,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT, env=self.env)
        port = wait_until(self._port, 60, f"`harness serve` to listen (log: {log})")
        self.url = f"http://127.0.0.1:{port}"

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            pytest.fail(f"harness serve exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
        found = re.findall(r"running on http://127\.0\.0\.1:(\d+)", self.log.read_text())
        return int(found[-1]) if found else None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Gate:
    """Stub behaviour that lets `judge_calls` judge calls through, then holds every request (answers
    too) until `open_dead()`: the calls served before a kill are then exactly the ones the store
    holds. Held requests are dropped without a reply once opened (their client was killed), so the
    stub counts none of them; requests arriving after that are answered normally."""

    def __init__(self, judge_calls: int):
        self.limit, self.seen = judge_calls, 0
        self.lock = threading.Lock()
        self.closed, self.released = threading.Event(), threading.Event()

    def verdict_for(self, text_a: str, text_b: str) -> str:
        with self.lock:
            self.seen += 1
            if self.seen > self.limit:
                self.closed.set()
        self._hold()
        return longer_wins(text_a, text_b)

    def answer_for(self, model: str, messages: list[dict]) -> None:
        self._hold()
        return None  # the stub's default answer

    def _hold(self) -> None:
        if self.closed.is_set() and not self.released.is_set():
            self.released.wait(120)
            raise ConnectionAbortedError("held until its client was killed")

    def open_dead(self) -> None:
        self.released.set()


def write_questions(folder: Path, n: int, name: str = "q.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}: describe item {i * 7}."]})
                                       + "\n" for i in range(n)))
    return folder / name


def suite_text(url: str, name: str = "svc", models=("m1", "m2", "m3"), judges: bool = True, key_env: str | None = None,
               data: str = "q.jsonl", extra_model: str = "") -> str:
    key = f", api_key_env: {key_env}" if key_env else ""
    common = f"base_url: '{url}', max_concurrency: 4, timeout_s: 60, max_retries: 1{key}"
    lines = [f"name: {name}", "models:"]
    lines += [f"  - {{name: {m}, backend: openai, model: {m}, {common}}}" for m in models]
    lines += [extra_model] if extra_model else []
    lines += ["sets:", f"  - {{name: qs, path: '{data}'}}", "ratings: {bootstrap_rounds: 50}"]
    if judges:
        lines += ["judges:", "  - name: j", "    dimensions: [accuracy, language]", "    max_parse_retries: 0",
                  f"    model: {{name: jm, backend: openai, model: judge, {common}}}"]
    return "\n".join(lines) + "\n"


def read_db(db: Path, sql: str, params: list | None = None):
    """Rows of one query, read while the service may hold the file (the Store waits for the lock)."""
    with Store(db, migrate=False).read() as con:
        return con.execute(sql, params or []).fetchall()


def try_read_db(db: Path, sql: str):
    """Rows, or None when a writer holds the file right now (for polling loops)."""
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return wait_until(lambda: (lambda j: j if j["state"] in FINAL else None)(client.get(f"/v1/jobs/{job_id}").json()),
                      timeout, f"job {job_id} to end", every=0.1)


def token_for(db: Path, name: str = "alice") -> str:
    return create_token(Store(db), name)


# --- submit -> run -> board ------------------------------------------------------------------------
def test_submit_wait_then_leaderboard_equals_harness_ratings(tmp_path):
    from harness import api
    from harness.service.client import Client

    data = tmp_path / "data"
    write_questions(data, 6)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    with StubServer() as stub:
        suite_file = data / "svc.yaml"
        suite_file.write_text(suite_text(stub.base_url))
        service = Service(db, tmp_path / "serve.log", "--workers", "1", "--data-root", str(data))
        try:
            env = {**os.environ, "HARNESS_TOKEN": token}
            done = subprocess.run([*HARNESS, "submit", str(suite_file), "--server", service.url, "--wait"], cwd=REPO,
                                  capture_output=True, text=True, env=env, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
            job_id = done.stdout.split()[0]
            assert "finished" in done.stdout
            shown = subprocess.run([*HARNESS, "job", job_id, "--server", service.url], cwd=REPO, capture_output=True,
                                   text=True, env=env, timeout=60)
            assert f"job {job_id}" in shown.stdout and "finished" in shown.stdout and "0 from cache" in shown.stdout
            as_json = {cmd: json.loads(subprocess.run([*HARNESS, *cmd, "--server", service.url, "--json"], cwd=REPO,
                                                      capture_output=True, text=True, env=env, timeout=60).stdout)
                       for cmd in (("job", job_id), ("jobs",), ("jobs", "--state", "queued"))}
            with Client(service.url, token) as client:
                job = client.job(job_id)
                assert as_json[("job", job_id)] == job and as_json[("jobs",)] == client.jobs()
                assert [j["id"] for j in as_json[("jobs",)]] == [job_id] and as_json[("jobs", "--state", "queued")] == []
                events = list(client.events(job_id))
                board = client.leaderboard("svc")
                csv_text = client.leaderboard_csv("svc")
                metrics = client.http.get("/metrics").text
                pairwise = client.http.get("/v1/pairwise", params={"suite": "svc"}).json()
                rel = client.http.get("/v1/reliability", params={"judge": "j"}).json()
        finally:
            service.stop()
        served = stub.served_calls()

    # The job: every call made once, counted; its events in order, from queued to finished.
    assert job["state"] == "finished" and job["attempts"] == 1 and job["result"]["complete"] is True
    assert job["calls"] == {"made": served, "cached": 0, "failed": 0}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["state"] for e in events if e["kind"] == "state"] == ["queued", "running", "finished"]
    bars = [e for e in events if e["kind"] == "progress"]
    assert bars and all(e["done"] <= e["total"] for e in bars)
    assert {e["label"]: e["done"] == e["total"] for e in bars} == {label: True for label in job["progress"]}

    # The board equals harness.api.rate over the same store, and what `harness ratings` prints.
    fresh = api.rate(str(suite_file), db, save=False).rows_for("all")
    keys = ("judge_name", "dimension", "method", "model", "rating", "ci_low", "ci_high", "battles")
    as_rows = lambda rows: sorted(tuple(r[k] for k in keys) for r in rows)  # noqa: E731
    assert as_rows(board["rows"]) == as_rows([asdict(r) for r in fresh])
    printed = subprocess.run([*HARNESS, "ratings", str(suite_file), "--db", str(db), "--no-save"], cwd=REPO,
                             capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert printed.returncode == 0, printed.stderr
    for r in board["rows"]:
        if r["method"] in ("bt", "elo"):
            assert f"{r['rating']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]" in printed.stdout, (r, printed.stdout)
    assert board["reliability"]["j"]["calls"] == rel["calls"] > 0
    assert len(csv_text.strip().splitlines()) == len(board["rows"]) + 1
    assert sum(c["battles"] for c in pairwise) > 0
    assert 'harness_jobs{state="finished"} 1' in metrics
    assert f'harness_calls_total{{source="made"}} {served}' in metrics


# --- 50 jobs from 10 clients -------------------------------------------------------------------------
def test_fifty_concurrent_submissions_all_run_exactly_once(tmp_path):
    data = tmp_path / "data"
    write_questions(data, 1)
    db = tmp_path / "many.duckdb"
    token = token_for(db)
    with StubServer() as stub:
        service = Service(db, tmp_path / "serve.log", "--workers", "3", "--data-root", str(data))
        try:
            ids: list[str] = []
            errors: list[str] = []

            def client_thread(k: int) -> None:
                with service.client(token) as client:
                    for i in range(5):
                        n = k * 5 + i  # a model of its own per job: a job run twice would call the stub twice
                        suite = suite_text(stub.base_url, f"many{n}", (f"m{n}",), judges=False)
                        r = client.post("/v1/jobs", json={"suite": suite, "filename": f"many{n}.yaml"})
                        (ids.append(r.json()["id"]) if r.status_code == 201 else errors.append(r.text))

            threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors and len(set(ids)) == 50
            with service.client(token) as client:
                def all_ended():
                    jobs = client.get("/v1/jobs", params={"limit": 100}).json()
                    return jobs if sum(j["state"] in FINAL for j in jobs) == 50 else None
                jobs = wait_until(all_ended, 240, "50 jobs to end", every=0.5)
        finally:
            service.stop()
        assert stub.served_calls("answer") == 50 and stub.served_twice() == 0
    assert sorted(j["id"] for j in jobs) == sorted(ids)
    assert {j["state"] for j in jobs} == {"finished"} and {j["attempts"] for j in jobs} == {1}
    claims = read_db(db, "SELECT job_id, count(*) FROM job_events WHERE kind = 'state' AND state = 'running'"
                         " GROUP BY job_id")
    assert len(claims) == 50 and {n for _, n in claims} == {1}
    assert read_db(db, "SELECT count(*), count(DISTINCT answer_id) FROM answers") == [(50, 50)]


# --- refusals: tokens, paths, sizes, bad suites; secrets ------------------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """One service with a data root, a small body limit and a secret in its environment."""
    tmp = tmp_path_factory.mktemp("guarded")
    root, outside = tmp / "root", tmp / "outside"
    write_questions(root, 2)
    write_questions(outside, 2, "secret.jsonl")
    (root / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "linked_dir").symlink_to(outside)
    db = tmp / "guarded.duckdb"
    token = token_for(db)
    secret = "sk-svc-" + "7f3a9c" * 6
    with StubServer(fail_when=lambda body: 401 if body.get("model") == "leaky" else None) as stub:
        service = Service(db, tmp / "serve.log", "--workers", "1", "--data-root", str(root),
                          "--max-body-bytes", "20000", env={"SVC_STUB_API_KEY": secret})
        try:
            yield {"service": service, "token": token, "root": root, "outside": outside, "db": db, "stub": stub,
                   "secret": secret, "tmp": tmp}
        finally:
            service.stop()


def queue_rows(db: Path) -> tuple:
    """Every row of the queue tables: a refused request must leave them exactly as they were."""
    return (read_db(db, "SELECT * FROM jobs ORDER BY job_id"),
            read_db(db, "SELECT * FROM job_events ORDER BY job_id, seq"))


def test_missing_wrong_and_revoked_tokens_are_refused_and_queue_nothing(guarded):
    service, db = guarded["service"], guarded["db"]
    body = {"suite_name": "quickstart", "kind": "ratings"}
    before = queue_rows(db)
    made = subprocess.run([*HARNESS, "tokens", "create", "bob", "--db", str(db)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    bob = made.stdout.split()[0]
    assert bob.startswith("hst_") and bob.encode() not in db.read_bytes()
    with service.client(bob) as client:
        assert client.get("/v1/jobs").status_code == 200  # a live token works (and is cached a moment)
        revoked = subprocess.run([*HARNESS, "tokens", "revoke", "bob", "--db", str(db)], cwd=REPO,
                                 capture_output=True, text=True, timeout=60)
        assert revoked.returncode == 0, revoked.stderr
        wait_until(lambda: client.get("/v1/jobs").status_code == 403, 5, "the revoked token to be refused")
    with service.client() as anonymous, service.client("hst_not-a-token") as wrong, service.client(bob) as old:
        for client, status in ((anonymous, 401), (wrong, 401), (old, 403)):
            r = client.post("/v1/jobs", json=body)
            assert r.status_code == status, r.text
            assert "\n" not in r.json()["detail"] and r.json()["detail"]
            assert client.get("/v1/jobs").status_code == status  # reads need a token without --public-reads
            assert client.post("/v1/jobs/x/cancel").status_code == status
        assert "revoked" in old.post("/v1/jobs", json=body).json()["detail"]
    assert service.client().get("/healthz").json()["ok"] is True
    assert queue_rows(db) == before


@pytest.mark.parametrize("path, why", [
    ("ABS_OUTSIDE", "is outside the data roots"),
    ("../outside/secret.jsonl", "escapes the data roots with '..'"),
    ("link.jsonl", "through a symlink"),
    ("linked_dir/secret.jsonl", "through a symlink"),
])
def test_paths_out_of_the_data_roots_are_refused(guarded, path, why):
    service, stub = guarded["service"], guarded["stub"]
    path = str(guarded["outside"] / "secret.jsonl") if path == "ABS_OUTSIDE" else path
    before = queue_rows(guarded["db"])
    with service.client(guarded["token"]) as client:
        r = client.post("/v1/jobs", json={"suite": suite_text(stub.base_url, data=path), "filename": "p.yaml"})
    assert r.status_code == 403, r.text
    line = r.json()["detail"]
    assert line.startswith("p.yaml: sets.0.path: ") and why in line and "\n" not in line
    assert queue_rows(guarded["db"]) == before


def test_a_model_folder_outside_the_roots_is_refused(guarded):
    hf = f"  - {{name: local, backend: hf, model: '{guarded['outside']}'}}"
    before = queue_rows(guarded["db"])
    with guarded["service"].client(guarded["token"]) as client:
        suite = suite_text(guarded["stub"].base_url, extra_model=hf)
        r = client.post("/v1/jobs", json={"suite": suite, "filename": "m.yaml"})
    assert r.status_code == 403 and r.json()["detail"].startswith("m.yaml: models.3.model: "), r.text
    assert queue_rows(guarded["db"]) == before


def test_oversize_malformed_and_invalid_suites_get_the_clis_one_line(guarded):
    service, tmp, stub = guarded["service"], guarded["tmp"], guarded["stub"]
    bad_yaml = tmp / "broken.yaml"
    bad_yaml.write_text("name: x\nmodels: [\n  - {name: a\n")
    typo = tmp / "typo.yaml"
    typo.write_text(suite_text(stub.base_url).replace("ratings:", "ratingz:"))
    no_key = guarded["root"] / "nokey.yaml"  # beside its data file, so the CLI finds the data too
    no_key.write_text(suite_text(stub.base_url, key_env="SVC_NOT_SET_KEY"))
    before = queue_rows(guarded["db"])
    with service.client(guarded["token"]) as client:
        big = client.post("/v1/jobs", json={"suite": "#" * 30000, "filename": "big.yaml"})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        for path in (bad_yaml, typo):
            r = client.post("/v1/jobs", json={"suite": path.read_text(), "filename": str(path)})
            assert r.status_code == 422 and r.json()["detail"] == config_error_line(path), r.text
        cli = subprocess.run([*HARNESS, "run", str(no_key), "--db", str(tmp / "cli.duckdb")], cwd=REPO,
                             capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "500"})
        r = client.post("/v1/jobs", json={"suite": no_key.read_text(), "filename": str(no_key)})
        assert r.status_code == 422 and cli.returncode == 2
        assert cli.stderr.strip() == f"error: {r.json()['detail']}"
        unknown = client.post("/v1/jobs", json={"suite_name": "/etc/passwd"})
        assert unknown.status_code == 422 and "neither built in" in unknown.json()["detail"]
        extra = client.post("/v1/jobs", json={"suite_name": "quickstart", "shell": "rm -rf /"})
        assert extra.status_code == 422 and extra.json()["detail"].startswith("request: shell: ")
    assert queue_rows(guarded["db"]) == before


def test_a_secret_in_the_environment_never_reaches_a_response_a_log_or_a_row(guarded):
    service, stub, secret, db = guarded["service"], guarded["stub"], guarded["secret"], guarded["db"]
    leaky = (f"  - {{name: leaky, backend: openai, model: leaky, base_url: '{stub.base_url}',"
             " api_key_env: SVC_STUB_API_KEY, max_retries: 0}")
    suite = suite_text(stub.base_url, "secret", models=("m1",), judges=False, key_env="SVC_STUB_API_KEY",
                       extra_model=leaky)
    seen: list[str] = []
    with service.client(guarded["token"]) as client:
        r = client.post("/v1/jobs", json={"suite": suite, "filename": "secret.yaml"})
        seen.append(r.text)
        job_id = r.json()["id"]
        job = wait_job(client, job_id)
        for path in (f"/v1/jobs/{job_id}", "/v1/jobs", f"/v1/jobs/{job_id}/events", "/metrics"):
            seen.append(client.get(path).text)
    # The endpoint did echo the key (a 401 body with the Authorization header): the masking was needed.
    assert stub.counts["status:401"] > 0
    assert job["state"] in ("finished", "failed") and job["error"] and "***" in job["error"], job
    failures = read_db(db, "SELECT error FROM generation_failures")
    assert failures and all("***" in e and secret not in e for (e,) in failures)
    for text in seen:
        assert secret not in text
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the file and any WAL
    assert b"refused request with Bearer ***" in stored  # the grep sees the failure rows' text
    assert secret.encode() not in stored
    log = service.log.read_bytes()
    assert job_id.encode() in log and secret.encode() not in log
