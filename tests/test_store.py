"""The exact schema, append-only migrations, and the file being free between writes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import duckdb
import pytest

from harness.store import Store, StoreBusyError, migrations

# The schema as migrations 001.. build it. A new migration must extend this, never edit a line.
EXPECTED_SCHEMA = {
    "schema_migrations": ["version INTEGER", "name VARCHAR", "applied_at TIMESTAMP"],
    "models": ["name VARCHAR", "fingerprint VARCHAR", "backend VARCHAR", "source VARCHAR",
               "spec_json VARCHAR", "first_seen TIMESTAMP", "last_used TIMESTAMP"],
    "runs": ["run_id VARCHAR", "suite_name VARCHAR", "config_json VARCHAR", "harness_version VARCHAR",
             "git_sha VARCHAR", "host VARCHAR", "pid INTEGER", "status VARCHAR", "started_at TIMESTAMP",
             "finished_at TIMESTAMP", "wall_s DOUBLE", "n_planned INTEGER", "n_cached INTEGER",
             "n_generated INTEGER", "n_failed INTEGER", "error VARCHAR",
             # 007
             "n_judge_calls INTEGER", "n_judge_cached INTEGER", "n_judge_failed INTEGER"],
    "questions": ["set_name VARCHAR", "question_id VARCHAR", "category VARCHAR", "turns VARCHAR[]",
                  "reference_answers VARCHAR[]", "tags VARCHAR[]", "content_hash VARCHAR"],
    "answers": ["answer_id VARCHAR", "model_fingerprint VARCHAR", "set_name VARCHAR",
                "question_id VARCHAR", "turn INTEGER", "text VARCHAR", "prompt_tokens INTEGER",
                "completion_tokens INTEGER", "finish_reason VARCHAR", "latency_s DOUBLE",
                "params_json VARCHAR", "run_id VARCHAR", "created_at TIMESTAMP",
                # 007
                "original_json VARCHAR"],
    "generation_failures": ["run_id VARCHAR", "model_fingerprint VARCHAR", "set_name VARCHAR",
                            "question_id VARCHAR", "turn INTEGER", "error VARCHAR", "created_at TIMESTAMP"],
    # 002
    "judgments": ["judgment_id VARCHAR", "call_id VARCHAR", "judge_name VARCHAR", "judge_fingerprint VARCHAR",
                  "kind VARCHAR", "set_name VARCHAR", "question_id VARCHAR", "turn INTEGER", "model_a VARCHAR",
                  "model_b VARCHAR", "answer_a VARCHAR", "answer_b VARCHAR", "dimension VARCHAR",
                  "verdict VARCHAR", "score DOUBLE", "status VARCHAR", "attempts INTEGER",
                  "raw_output VARCHAR", "run_id VARCHAR", "created_at TIMESTAMP",
                  # 005
                  "choice_lp_1 DOUBLE", "choice_lp_2 DOUBLE", "choice_lp_tie DOUBLE", "annotator VARCHAR",
                  "note VARCHAR", "queue_reason VARCHAR"],
    "ratings": ["computed_at TIMESTAMP", "suite_name VARCHAR", "judge_name VARCHAR", "dimension VARCHAR",
                "category VARCHAR", "method VARCHAR", "model VARCHAR", "rating DOUBLE", "ci_low DOUBLE",
                "ci_high DOUBLE", "level DOUBLE", "battles INTEGER", "merge_policy VARCHAR"],
    # 003
    "closed_tasks": ["result_key VARCHAR", "suite_name VARCHAR", "model VARCHAR", "model_fingerprint VARCHAR",
                     "task VARCHAR", "task_hash VARCHAR", "task_version VARCHAR", "num_fewshot INTEGER",
                     "n_samples INTEGER", "settings_json VARCHAR", "lm_eval_backend VARCHAR",
                     "lm_eval_version VARCHAR", "output_type VARCHAR", "wall_s DOUBLE", "run_id VARCHAR",
                     "created_at TIMESTAMP"],
    "closed_metrics": ["result_key VARCHAR", "metric VARCHAR", "filter VARCHAR", "value DOUBLE",
                       "stderr DOUBLE", "higher_is_better BOOLEAN"],
    "closed_samples": ["result_key VARCHAR", "doc_id INTEGER", "filter VARCHAR", "prompt VARCHAR",
                       "target VARCHAR", "responses VARCHAR[]", "filtered_response VARCHAR",
                       "metrics MAP(VARCHAR, DOUBLE)"],
    # 004
    "trained_models": ["model VARCHAR", "parent VARCHAR", "parent_fingerprint VARCHAR", "method VARCHAR",
                       "finetune VARCHAR", "recipe_json VARCHAR", "data_source VARCHAR", "data_hash VARCHAR",
                       "data_rows INTEGER", "base_model_path VARCHAR", "adapter_path VARCHAR",
                       "merged_path VARCHAR", "steps INTEGER", "wall_s DOUBLE", "peak_rss_mb DOUBLE",
                       "final_loss DOUBLE", "created_at TIMESTAMP"],
    "training_log": ["model VARCHAR", "step INTEGER", "name VARCHAR", "value DOUBLE"],
    "parent_comparisons": ["model VARCHAR", "parent VARCHAR", "suite_name VARCHAR", "judge_name VARCHAR",
                           "dimension VARCHAR", "method VARCHAR", "delta DOUBLE", "ci_low DOUBLE",
                           "ci_high DOUBLE", "computed_at TIMESTAMP"],
    # 005
    "judges": ["name VARCHAR", "fingerprint VARCHAR", "kind VARCHAR", "spec_json VARCHAR", "first_seen TIMESTAMP",
               "last_used TIMESTAMP"],
    # 006
    "judge_eval_runs": ["eval_run_id VARCHAR", "judge_name VARCHAR", "judge_fingerprint VARCHAR", "source VARCHAR",
                        "benchmark VARCHAR", "data_hash VARCHAR", "data_files VARCHAR[]", "n_items INTEGER",
                        "n_parsed INTEGER", "n_calls INTEGER", "n_cached INTEGER", "settings_json VARCHAR",
                        "harness_version VARCHAR", "started_at TIMESTAMP", "finished_at TIMESTAMP", "wall_s DOUBLE"],
    "judge_eval_items": ["item_key VARCHAR", "judge_name VARCHAR", "judge_fingerprint VARCHAR", "benchmark VARCHAR",
                         "item_id VARCHAR", "item_order INTEGER", "model_a VARCHAR", "model_b VARCHAR",
                         "verdict VARCHAR", "parsed BOOLEAN", "attempts INTEGER", "raw_output VARCHAR",
                         "choice_lp_1 DOUBLE", "choice_lp_2 DOUBLE", "choice_lp_tie DOUBLE", "human_label VARCHAR",
                         "human_labels VARCHAR[]", "created_at TIMESTAMP"],
    "judge_eval_run_items": ["eval_run_id VARCHAR", "item_key VARCHAR"],
    "judge_eval_metrics": ["eval_run_id VARCHAR", "metric VARCHAR", "value DOUBLE", "numerator INTEGER",
                           "denominator INTEGER", "n INTEGER", "ci_low DOUBLE", "ci_high DOUBLE", "level DOUBLE"],
    # 007
    "judge_failures": ["call_id VARCHAR", "judge_name VARCHAR", "judge_fingerprint VARCHAR", "set_name VARCHAR",
                       "question_id VARCHAR", "turn INTEGER", "model_a VARCHAR", "model_b VARCHAR", "error VARCHAR",
                       "run_id VARCHAR", "created_at TIMESTAMP"],
    "store_settings": ["key VARCHAR", "value VARCHAR"],
    # 008
    "jobs": ["job_id VARCHAR", "kind VARCHAR", "state VARCHAR", "priority INTEGER", "suite_name VARCHAR",
             "suite_json VARCHAR", "params_json VARCHAR", "data_roots VARCHAR[]", "resources VARCHAR[]",
             "submitter VARCHAR", "submitted_at TIMESTAMP", "started_at TIMESTAMP", "finished_at TIMESTAMP",
             "worker VARCHAR", "lease_until TIMESTAMP", "attempts INTEGER", "stage VARCHAR", "progress_json VARCHAR",
             "result_json VARCHAR", "n_made INTEGER", "n_cached INTEGER", "n_failed INTEGER", "error VARCHAR"],
    "job_events": ["job_id VARCHAR", "seq INTEGER", "created_at TIMESTAMP", "kind VARCHAR", "state VARCHAR",
                   "label VARCHAR", "done INTEGER", "total INTEGER", "message VARCHAR"],
    "tokens": ["name VARCHAR", "token_hash VARCHAR", "created_at TIMESTAMP", "revoked_at TIMESTAMP"],
}
# 009: columns added to earlier tables (at their ends), and the gaming probes' results
EXPECTED_SCHEMA["ratings"] = [*EXPECTED_SCHEMA["ratings"], "ci_kind VARCHAR"]
EXPECTED_SCHEMA["parent_comparisons"] = [*EXPECTED_SCHEMA["parent_comparisons"], "p_value DOUBLE", "mde DOUBLE"]
EXPECTED_SCHEMA["probe_results"] = [
    "computed_at TIMESTAMP", "suite_name VARCHAR", "judge_name VARCHAR", "dimension VARCHAR", "kind VARCHAR",
    "probe_model VARCHAR", "against VARCHAR", "rating DOUBLE", "controlled DOUBLE", "against_rating DOUBLE",
    "against_controlled DOUBLE", "flagged BOOLEAN"]
# 010: judge fidelity: card facts and totals on runs, subset and cost on items, metrics per subset
EXPECTED_SCHEMA["judge_eval_runs"] = [*EXPECTED_SCHEMA["judge_eval_runs"], "notes VARCHAR[]", "three_way BOOLEAN",
                                      "tokens_in BIGINT", "tokens_out BIGINT", "judge_seconds DOUBLE",
                                      "cost_usd DOUBLE"]
EXPECTED_SCHEMA["judge_eval_items"] = [*EXPECTED_SCHEMA["judge_eval_items"], "subset VARCHAR", "tokens_in INTEGER",
                                       "tokens_out INTEGER", "seconds DOUBLE"]
EXPECTED_SCHEMA["judge_eval_metrics"] = [*EXPECTED_SCHEMA["judge_eval_metrics"][:1], "subset VARCHAR",
                                         *EXPECTED_SCHEMA["judge_eval_metrics"][1:]]


def test_schema_is_exactly_what_the_migrations_define(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    with store.read() as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    actual: dict[str, list[str]] = {}
    for table, column, dtype in rows:
        actual.setdefault(table, []).append(f"{column} {dtype}")
    assert actual == EXPECTED_SCHEMA


def test_migrations_are_numbered_from_one_without_gaps_and_apply_once(tmp_path):
    versions = [v for v, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    store = Store(tmp_path / "h.duckdb")
    assert store.migrate() == []  # already applied by the constructor
    with store.read() as con:
        assert [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()] == versions


def test_another_process_can_write_after_a_store_operation_returns(tmp_path):
    path = tmp_path / "h.duckdb"
    store = Store(path)
    with store.write() as con:
        con.execute("INSERT INTO questions VALUES ('s', 'q', 'c', ['t'], [], [], 'h')")
    # DuckDB locks a file per process: this only works because the store closed its connection.
    code = f"import duckdb; c = duckdb.connect({str(path)!r}); print(c.execute('SELECT count(*) FROM questions').fetchone()[0])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "1", proc.stderr


@contextmanager
def lock_held_by_another_process(path):
    """A child process that holds `path`'s DuckDB lock until told to let go: `release()` sends the
    signal and returns once the child has closed the file (it replies `released`)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('locked', flush=True); "
         "sys.stdin.readline(); c.close(); print('released', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def release():
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"

    try:
        assert holder.stdout.readline().strip() == "locked"
        try:
            duckdb.connect(str(path), read_only=True).close()
            locked = False
        except duckdb.IOException:
            locked = True
        assert locked, "DuckDB no longer locks across processes; the store's retry loop can go"
        yield release
    finally:
        holder.kill()
        holder.wait()


def test_store_waits_for_a_lock_held_by_another_process(tmp_path):
    """Handshake, no timing: the child releases only after the parent's read has been seen failing
    on the lock and still waiting; that same read must then succeed."""
    path = tmp_path / "h.duckdb"
    Store(path)
    with lock_held_by_another_process(path) as release:
        store = Store(path, migrate=False, lock_wait_s=120)
        result: dict = {}

        def read():
            try:
                with store.read() as con:
                    result["count"] = con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
            except BaseException as exc:  # reported to the main thread
                result["error"] = exc

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        give_up = time.monotonic() + 60  # a safety net only; the loop ends on the reader's retry
        while getattr(store, "lock_retries", 0) < 1 and reader.is_alive():
            assert time.monotonic() < give_up, "the read neither failed on the lock nor finished"
            time.sleep(0.005)
        assert store.lock_retries >= 1, f"the read never retried: {result}"
        assert reader.is_alive() and not result, f"the read ended while the lock was held: {result}"
        release()
        reader.join(timeout=60)
    assert not reader.is_alive(), "the read did not get in after the lock was released"
    assert "error" not in result, result.get("error")
    assert result["count"] >= 1


def test_store_raises_busy_when_a_lock_outlasts_lock_wait_s(tmp_path):
    path = tmp_path / "h.duckdb"
    Store(path)
    with lock_held_by_another_process(path) as release:
        store = Store(path, migrate=False, lock_wait_s=0.5)
        for attempt in (store.read, store.write):
            started = time.monotonic()
            with pytest.raises(StoreBusyError, match="held by another process"):
                with attempt():
                    pass
            assert time.monotonic() - started >= 0.5  # it waited out lock_wait_s before giving up
            assert store.lock_retries >= 1  # ... retrying, rather than failing on the first try
        release()
        with store.read() as con:  # the lock, not the file, was the problem
            assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
