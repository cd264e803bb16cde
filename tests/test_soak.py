"""Soak: kill -9 at random moments of generation and judging, with 20% endpoint faults on both.

The final store must equal a clean run's (same answers, same judgments), and the calls made over all
the killed runs may exceed the clean run's only by what a kill can lose: the requests in flight (at
most CONCURRENCY: the models share one endpoint, hence one limit, and judging follows generation)
plus the rows the writer had not committed (at most 2 * FLUSH_ROWS, harness/store/writer.py). Pairs
are judged while generation goes on (harness.pipeline), so the requests in flight are at most
CONCURRENCY to the models' endpoint (they share one limit) plus CONCURRENCY to the judge's.

CI runs a few kills; `SOAK_KILLS=20 pytest -s tests/test_soak.py` runs the full soak and prints
its numbers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.stub_server import StubServer

pytestmark = pytest.mark.slow

MODELS = ("m1", "m2", "m3", "m4")
QUESTIONS = 24
CONCURRENCY = 4
FLUSH_ROWS = 8  # HARNESS_FLUSH_ROWS for the killed runs: a small batch makes the bound below tight
LOST_PER_KILL = 2 * CONCURRENCY + 2 * FLUSH_ROWS
CHUNK = CONCURRENCY * 4  # kill points stay this far from the ends of the run


def write_suite(folder: Path, model_url: str, judge_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "turns": [f"Soak question {i}: describe item {i * 7} in a sentence."]}) + "\n"
        for i in range(QUESTIONS)))
    common = f"max_retries: 6, timeout_s: 1, max_concurrency: {CONCURRENCY}"
    lines = ["name: soak", "models:"]
    lines += [f"  - {{name: {m}, backend: openai, model: {m}, base_url: '{model_url}', {common}}}" for m in MODELS]
    lines += ["sets:", "  - {name: qs, path: q.jsonl}", "judges:", "  - name: j",
              "    dimensions: [accuracy, language]", "    max_parse_retries: 0",
              f"    model: {{name: jm, backend: openai, model: judge, base_url: '{judge_url}', {common}}}"]
    (folder / "suite.yaml").write_text("\n".join(lines) + "\n")
    return folder / "suite.yaml"


def start(suite: Path, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(suite), "--db", str(db),
                             "--stages", "generate,judge"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HARNESS_FLUSH_ROWS": str(FLUSH_ROWS)})


def wait_until(proc: subprocess.Popen, done, limit_s: float = 300) -> None:
    for _ in range(int(limit_s / 0.02)):  # bounded: returns early when the process ends
        if done() or proc.poll() is not None:
            return
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass


def snapshot(db: Path) -> tuple[list, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        answers = con.execute("SELECT answer_id, text FROM answers ORDER BY 1").fetchall()
        judgments = con.execute("SELECT judgment_id, verdict, status FROM judgments ORDER BY 1").fetchall()
    finally:
        con.close()
    return answers, judgments


def soak(tmp_path: Path, kills: int, seed: int = 0) -> dict:
    with StubServer() as clean_stub:
        suite = write_suite(tmp_path / "clean", clean_stub.base_url, clean_stub.base_url)
        proc = start(suite, tmp_path / "clean.duckdb")
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
        clean_calls = clean_stub.served_calls()
    clean = snapshot(tmp_path / "clean.duckdb")

    rng = random.Random(seed)
    db = tmp_path / "soak.duckdb"
    stubs = (StubServer(fault_rate=0.2, seed=seed, hang_s=1.5), StubServer(fault_rate=0.2, seed=seed + 1, hang_s=1.5))
    with stubs[0] as models, stubs[1] as judge:
        suite = write_suite(tmp_path / "soak", models.base_url, judge.base_url)
        served = lambda: models.served_calls() + judge.served_calls()  # noqa: E731
        landed = []
        # Kill points spread at random over the whole run, the first inside generation (the first
        # len(MODELS) * QUESTIONS calls) and the last inside judging.
        answers = len(MODELS) * QUESTIONS
        points = sorted(rng.sample(range(1, clean_calls - CHUNK), kills))
        points[0] = min(points[0], rng.randint(1, answers - CHUNK))
        points[-1] = max(points[-1], rng.randint(answers + CHUNK, clean_calls - CHUNK))
        for point in points:
            target = max(point, served() + 1)
            proc = start(suite, db)
            wait_until(proc, lambda: served() >= target)
            if proc.poll() is not None:
                raise AssertionError(f"run ended before kill {len(landed) + 1}: {proc.stderr.read().decode()[-300:]}")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            landed.append(("generation" if models.served_calls() < answers else "judging", served()))
        final = start(suite, db)
        assert final.wait(timeout=600) == 0, final.stderr.read().decode()
        report = {"kills": len(landed), "in_generation": sum(w == "generation" for w, _ in landed),
                  "in_judging": sum(w == "judging" for w, _ in landed), "clean_calls": clean_calls,
                  "soak_calls": served(), "repeated_calls": models.served_twice() + judge.served_twice(),
                  "faults": {k: models.counts[k] + judge.counts[k] for k in ("429", "500", "garbage", "truncated",
                                                                             "hang", "drop")},
                  "requests": models.counts["requests"] + judge.counts["requests"]}
    report["identical"] = snapshot(db) == clean
    report["answers"], report["judgments"] = len(clean[0]), len(clean[1])
    return report


def test_kill_minus_nine_with_faults_ends_in_the_clean_runs_store(tmp_path):
    kills = int(os.environ.get("SOAK_KILLS", "4"))
    report = soak(tmp_path, kills)
    print("\nsoak:", json.dumps(report))
    assert report["identical"]
    assert report["answers"] == len(MODELS) * QUESTIONS and report["judgments"] == 6 * QUESTIONS * 2 * 2
    assert report["in_generation"] and report["in_judging"]
    assert report["soak_calls"] <= report["clean_calls"] + kills * LOST_PER_KILL
    assert report["soak_calls"] - report["repeated_calls"] == report["clean_calls"]
    assert sum(report["faults"].values()) > 0.1 * report["requests"]
