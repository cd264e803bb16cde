"""The service's overhead: submissions/s, status reads/s, event-stream latency, and the wall time of
a quickstart-sized job through the service vs harness.api.run directly.

Everything runs on this machine: bench/stub_endpoint.py (aiohttp, --latency-ms per reply) plays
every model and judge; `harness serve` runs as a subprocess on 127.0.0.1 with its real uvicorn and
DuckDB file.

- API phase (serve --workers 0, so nothing competes): `--submissions` `ratings` jobs of the built-in
  quickstart suite posted by `--clients` threads; then as many GET /v1/jobs/ID from the same threads.
- Job phase (serve --workers 1): a quickstart-sized suite (two endpoint models on the built-in
  quickstart set, 26 answers each; one judge, three dimensions, both orders: 52 judge calls; the
  board with 1,000 bootstrap rounds) run `--repeats` times through the service (submit to the
  `finished` event on the stream) and through harness.api.run in this process (fresh store each
  time), alternating, after one warm-up each. Each repeat uses new model names, so neither path
  has anything cached. Event latency: receive time minus the event's stored time, for every
  progress event of those jobs (add up to 0.1 s, the worker's write tick, for progress-to-client).

Run (repo root, harness venv with the service and dev extras):  python bench/service.py
Goal (issue 13): service / direct <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import api  # noqa: E402
from harness.service.client import parse_sse  # noqa: E402
from harness.store import Store  # noqa: E402
from harness.store.jobs import create_token  # noqa: E402

HARNESS = [sys.executable, "-m", "harness.cli"]


def start_stub(latency_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "stub_endpoint.py"), "--port", "0",
                             "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().split()[-1]
    return proc, url


def start_service(db: Path, log: Path, workers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*HARNESS, "serve", "--db", str(db), "--port", "0", "--workers", str(workers)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.findall(r"running on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return proc, found[-1]
        if proc.poll() is not None:
            raise SystemExit(f"harness serve exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("harness serve did not start in 120 s")


def suite_yaml(url: str, tag: str) -> str:
    common = f"backend: openai, base_url: '{url}', max_concurrency: 16"
    return (f"name: bench-{tag}\nmodels:\n  - {{name: a-{tag}, model: a-{tag}, {common}}}\n"
            f"  - {{name: b-{tag}, model: b-{tag}, {common}}}\nsets:\n  - {{name: quickstart}}\n"
            f"judges:\n  - name: j-{tag}\n    dimensions: [accuracy, helpfulness, language]\n"
            f"    model: {{name: jm-{tag}, model: judge-{tag}, {common}}}\nratings: {{bootstrap_rounds: 1000}}\n")


def in_threads(clients: int, total: int, call) -> float:
    """Run call(i) for i < total over `clients` threads; the rate in calls per second."""
    def work(k: int) -> None:
        for i in range(k, total, clients):
            call(i)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - began)


def api_phase(tmp: Path, clients: int, submissions: int) -> dict:
    db = tmp / "api.duckdb"
    token = create_token(Store(db), "bench")
    proc, url = start_service(db, tmp / "api.log", workers=0)
    ids: list[str] = []
    try:
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            return local.c

        def submit(i: int) -> None:
            r = client().post("/v1/jobs", json={"kind": "ratings", "suite_name": "quickstart"})
            r.raise_for_status()
            ids.append(r.json()["id"])

        def read(i: int) -> None:
            client().get(f"/v1/jobs/{ids[i % len(ids)]}").raise_for_status()

        return {"submissions_per_s": in_threads(clients, submissions, submit),
                "status_reads_per_s": in_threads(clients, submissions, read)}
    finally:
        proc.terminate()
        proc.wait()


def through_service(url: str, token: str, suite: str, latencies: list[float], parts: list[dict]) -> float:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None) as c:
        began = time.perf_counter()
        job_id = c.post("/v1/jobs", json={"suite": suite, "filename": "bench.yaml",
                                          "stages": ["generate", "judge", "rate"]}).json()["id"]
        with c.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            for event in parse_sse(stream.iter_lines()):
                received = datetime.now(timezone.utc).replace(tzinfo=None)
                if event["kind"] == "progress":
                    latencies.append((received - datetime.fromisoformat(event["created_at"])).total_seconds())
                if event["kind"] == "state" and event["state"] in ("finished", "failed", "cancelled"):
                    wall = time.perf_counter() - began
                    assert event["state"] == "finished", event
                    job = c.get(f"/v1/jobs/{job_id}").json()
                    parts.append({"queue_wait_s": job["queue_wait_s"], "run_s": job["run_s"]})
                    return wall
    raise SystemExit(f"the event stream of {job_id} ended early")


def directly(tmp: Path, suite: str, k: int) -> float:
    path = tmp / f"direct-{k}.yaml"
    path.write_text(suite)
    began = time.perf_counter()
    report = api.run(path, tmp / f"direct-{k}.duckdb", stages=("generate", "judge", "rate"))
    wall = time.perf_counter() - began
    assert report.complete
    return wall


def job_phase(tmp: Path, stub_url: str, repeats: int) -> dict:
    db = tmp / "jobs.duckdb"
    token = create_token(Store(db), "bench")
    proc, url = start_service(db, tmp / "jobs.log", workers=1)
    service_s, direct_s, latencies, parts = [], [], [], []
    try:
        for k in range(repeats + 1):  # k = 0 warms both paths up (imports, first connections)
            pair = [lambda: through_service(url, token, suite_yaml(stub_url, f"s{k}"), latencies if k else [],
                                            parts if k else []),
                    lambda: directly(tmp, suite_yaml(stub_url, f"d{k}"), k)]
            order = pair if k % 2 else pair[::-1]  # alternate which goes first
            walls = [run() for run in order]
            s, d = (walls if k % 2 else walls[::-1])
            if k:
                service_s.append(s)
                direct_s.append(d)
    finally:
        proc.terminate()
        proc.wait()
    return {"service_s": service_s, "direct_s": direct_s, "latencies": sorted(latencies), "parts": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    stub, stub_url = start_stub(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            rates = api_phase(tmp, args.clients, args.submissions)
            jobs = job_phase(tmp, stub_url, args.repeats)
    finally:
        stub.terminate()
        stub.wait()
    lat = jobs["latencies"]
    service, direct = statistics.median(jobs["service_s"]), statistics.median(jobs["direct_s"])
    out = {**{k: round(v, 1) for k, v in rates.items()},
           "event_latency_ms": {"median": round(1000 * statistics.median(lat), 1),
                                "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1), "n": len(lat)},
           "job_service_s": [round(s, 2) for s in jobs["service_s"]],
           "job_direct_s": [round(s, 2) for s in jobs["direct_s"]],
           "job_service_parts": jobs["parts"],
           "ratio_median": round(service / direct, 3)}
    print(json.dumps(out, indent=1))
    print(f"service / direct = {service:.2f} s / {direct:.2f} s = {service / direct:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
