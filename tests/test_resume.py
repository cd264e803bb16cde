"""kill -9 in the middle of `harness run`, then rerun: nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from harness.config import load_suite
from harness.runner import load_questions, run_suite
from harness.store import Store

pytestmark = pytest.mark.slow


def count_answers(db) -> int:
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return -1  # the writer holds the file right now, or it does not exist yet
    try:
        return con.execute("SELECT count(*) FROM answers").fetchone()[0]
    except duckdb.Error:
        return -1
    finally:
        con.close()


def test_kill_minus_nine_then_rerun_completes_without_duplicates(tmp_path, tiny_model_path):
    suite_file = tmp_path / "suite.yaml"
    # batch_size 1: one committed chunk per answer, so the kill lands between many commits.
    suite_file.write_text(f"""
name: resume
models:
  - {{name: tiny, backend: hf, model: {tiny_model_path}, batch_size: 1, threads: 1}}
sets:
  - {{name: quickstart}}
generation:
  default: {{max_new_tokens: 200}}
""")
    db = tmp_path / "h.duckdb"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(suite_file), "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 300
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None:
        seen = max(seen, count_answers(db))
        if seen >= 4:
            break
        time.sleep(0.05)  # polling for a condition, bounded by the deadline
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    killed = count_answers(db)
    suite, base = load_suite(suite_file)
    total = sum(len(q.turns) for q in load_questions(suite, base))
    assert seen <= killed < total, "the kill must land mid-run and keep every committed answer"

    summary = run_suite(suite, Store(db), base)
    assert summary.totals()["cached"] == killed
    assert summary.totals()["generated"] == total - killed
    with Store(db).read() as con:
        n, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (model_fingerprint, set_name, question_id, turn)) FROM answers"
        ).fetchone()
        statuses = sorted(s for (s,) in con.execute("SELECT status FROM runs").fetchall())
    assert n == distinct == total
    assert statuses == ["finished", "interrupted"]
