"""Every SQL statement outside the migrations: small functions over a connection or a Store.

The CLI, the runner and (later) the app read and write only through these.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Iterable

import duckdb

from harness.models.base import stable_hash
from harness.redact import redact
from harness.sets import Question
from harness.store import Store
from harness.text import storable


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _bulk_insert(con, table: str, columns: tuple[str, ...], types: dict[str, str], rows: list[tuple],
                 conflict: str = "") -> None:
    """INSERT many rows as one Arrow relation: ~30x faster than executemany's row-by-row binding,
    which kept the request loop idle while chunks were written (issue 12's profile)."""
    import pyarrow as pa

    arrow_types = {"int": pa.int64(), "float": pa.float64()}
    data = pa.table({c: pa.array([row[i] for row in rows], type=arrow_types.get(types.get(c, ""), pa.string()))
                     for i, c in enumerate(columns)})
    name, cols = f"new_{table}", ", ".join(columns)
    # No try/finally: after a failed INSERT the transaction is aborted and unregistering would raise
    # over the real error; the Store closes the connection, which drops the registration anyway.
    con.register(name, data)
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name} {conflict}")
    con.unregister(name)


# --- writes ---------------------------------------------------------------------------------------
def upsert_questions(con: duckdb.DuckDBPyConnection, questions: Iterable[Question]) -> None:
    """Store the questions; only new or changed ones are written (a rerun of a 9,000-question set
    writes nothing; row-by-row upserts of it took 27 s)."""
    import pyarrow as pa

    questions = list(questions)
    if not questions:
        return
    strings = pa.list_(pa.string())
    data = pa.table({
        "set_name": pa.array([q.set_name for q in questions], type=pa.string()),
        "question_id": pa.array([q.question_id for q in questions], type=pa.string()),
        "category": pa.array([q.category for q in questions], type=pa.string()),
        "turns": pa.array([list(q.turns) for q in questions], type=strings),
        "reference_answers": pa.array([list(q.references) for q in questions], type=strings),
        "tags": pa.array([list(q.tags) for q in questions], type=strings),
        "content_hash": pa.array([stable_hash([q.category, q.turns, q.references]) for q in questions],
                                 type=pa.string())})
    con.register("new_questions", data)
    con.execute(
        "INSERT INTO questions SELECT n.* FROM new_questions n"
        " LEFT JOIN questions q ON q.set_name = n.set_name AND q.question_id = n.question_id"
        " WHERE q.content_hash IS DISTINCT FROM n.content_hash OR q.tags IS DISTINCT FROM n.tags"
        " ON CONFLICT (set_name, question_id) DO UPDATE"
        " SET category = excluded.category, turns = excluded.turns,"
        " reference_answers = excluded.reference_answers, tags = excluded.tags,"
        " content_hash = excluded.content_hash")
    con.unregister("new_questions")


def upsert_model(con, name: str, fingerprint: str, backend: str, source: str, spec_json: str) -> None:
    con.execute(
        "INSERT INTO models (name, fingerprint, backend, source, spec_json, last_used)"
        " VALUES (?, ?, ?, ?, ?, now())"
        " ON CONFLICT (name, fingerprint) DO UPDATE SET last_used = excluded.last_used,"
        " spec_json = excluded.spec_json",
        [name, fingerprint, backend, source, spec_json],
    )


def start_run(con, run_id: str, suite_name: str, config_json: str, version: str, git_sha: str | None):
    con.execute(
        "INSERT INTO runs (run_id, suite_name, config_json, harness_version, git_sha, host, pid,"
        " status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
        [run_id, suite_name, config_json, version, git_sha, socket.gethostname(), os.getpid(), now()],
    )


def mark_dead_runs_interrupted(con) -> int:
    """Runs left 'running' by a process on this host that no longer exists (kill -9, power loss)."""
    rows = con.execute(
        "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", [socket.gethostname()]
    ).fetchall()
    dead = [run_id for run_id, pid in rows if not pid_alive(pid)]
    for run_id in dead:
        con.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [run_id])
    return len(dead)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finish_run(con, run_id: str, status: str, counts: dict, wall_s: float, error: str | None = None):
    """counts: planned, cached, generated, failed (answers); judge_calls, judge_cached, judge_failed
    (optional: generation-only and closed-set runs leave them 0)."""
    con.execute(
        "UPDATE runs SET status = ?, finished_at = ?, wall_s = ?, n_planned = ?, n_cached = ?,"
        " n_generated = ?, n_failed = ?, n_judge_calls = ?, n_judge_cached = ?, n_judge_failed = ?,"
        " error = ? WHERE run_id = ?",
        [status, now(), wall_s, counts["planned"], counts["cached"], counts["generated"], counts["failed"],
         counts.get("judge_calls", 0), counts.get("judge_cached", 0), counts.get("judge_failed", 0),
         error_text(error), run_id],
    )


def error_text(error: str | None) -> str | None:
    """Every error the store keeps passes here: no secret value, nothing DuckDB cannot store."""
    return None if error is None else storable(redact(error))


def insert_answers(con, rows: list[tuple]) -> None:
    """rows: (answer_id, fingerprint, set, question, turn, text, prompt_tokens, completion_tokens,
    finish_reason, latency_s, params_json, run_id, original_json). A key already present is left as it is."""
    if not rows:
        return
    _bulk_insert(con, "answers", ANSWER_COLUMNS, {"turn": "int", "prompt_tokens": "int", "completion_tokens": "int",
                                                  "latency_s": "float"}, rows, "ON CONFLICT (answer_id) DO NOTHING")


ANSWER_COLUMNS = ("answer_id", "model_fingerprint", "set_name", "question_id", "turn", "text", "prompt_tokens",
                  "completion_tokens", "finish_reason", "latency_s", "params_json", "run_id", "original_json")


def insert_failures(con, rows: list[tuple]) -> None:
    """rows: (run_id, fingerprint, set, question, turn, error)."""
    if not rows:
        return
    _bulk_insert(con, "generation_failures", ("run_id", "model_fingerprint", "set_name", "question_id", "turn", "error"),
                 {"turn": "int"}, [(*row[:-1], error_text(row[-1])) for row in rows])


def insert_judge_failures(con, rows: list[tuple]) -> None:
    """rows: (call_id, judge_name, judge_fingerprint, set, question, turn, model_a, model_b, error, run_id).
    A failed call has no judgments row, so the next run's cache check plans it again."""
    if not rows:
        return
    _bulk_insert(con, "judge_failures", ("call_id", "judge_name", "judge_fingerprint", "set_name", "question_id",
                                          "turn", "model_a", "model_b", "error", "run_id"),
                 {"turn": "int"}, [(*row[:8], error_text(row[8]), row[9]) for row in rows])


def verdict_tag_salt(con) -> str:
    """The store's secret for verdict tags (judges.parse.verdict_tag), made by migration 007."""
    return con.execute("SELECT value FROM store_settings WHERE key = 'verdict_tag_salt'").fetchone()[0]


JUDGMENT_COLUMNS = ("judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name, question_id, turn,"
                    " model_a, model_b, answer_a, answer_b, dimension, verdict, score, status, attempts, raw_output,"
                    " run_id, choice_lp_1, choice_lp_2, choice_lp_tie")


def insert_judgments(con, rows: list[tuple]) -> None:
    """rows in the order of JUDGMENT_COLUMNS; a stored judgment_id is kept."""
    if not rows:
        return
    _bulk_insert(con, "judgments", tuple(c.strip() for c in JUDGMENT_COLUMNS.split(",")),
                 {"turn": "int", "attempts": "int", "score": "float", "choice_lp_1": "float", "choice_lp_2": "float",
                  "choice_lp_tie": "float"}, rows, "ON CONFLICT (judgment_id) DO NOTHING")


def register_judge(con, name: str, fingerprints: list[str], kind: str, spec_json: str) -> None:
    """Mark `fingerprints` as the judge's current ones: registered together, they share last_used."""
    stamp = now()
    con.executemany(
        "INSERT INTO judges VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, fingerprint) DO UPDATE"
        " SET last_used = excluded.last_used, spec_json = excluded.spec_json",
        [(name, fp, kind, spec_json, stamp, stamp) for fp in fingerprints])


# --- reads ----------------------------------------------------------------------------------------
def _rows_matching(con, sql: str, ids: list[str]) -> list[tuple]:
    """Run `sql`, which joins the relation `wanted (id)`, over `ids` registered as one Arrow column
    (a cache check of 500,000 keys in one join, not 500,000 bound inserts)."""
    import pyarrow as pa

    con.register("wanted", pa.table({"id": pa.array(ids, type=pa.string())}))
    rows = con.execute(sql).fetchall()
    con.unregister("wanted")
    return rows


def existing_call_ids(con, call_ids: list[str]) -> set[str]:
    if not call_ids:
        return set()
    return {c for (c,) in _rows_matching(con, "SELECT DISTINCT call_id FROM judgments JOIN wanted ON call_id = id",
                                         call_ids)}


def answer_texts(con, answer_ids: list[str]) -> dict[str, str]:
    if not answer_ids:
        return {}
    return dict(_rows_matching(con, "SELECT a.answer_id, a.text FROM answers a JOIN wanted ON answer_id = id",
                               answer_ids))


def answer_texts_by_id(store: Store, answer_ids: list[str]) -> dict[str, str]:
    with store.read() as con:
        return answer_texts(con, answer_ids)


def first_turns(store: Store, questions: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(set, question) -> the question's first user turn."""
    with store.read() as con:
        rows = con.execute("SELECT set_name, question_id, turns[1] FROM questions").fetchall()
    wanted = set(questions)
    return {(s, q): t for s, q, t in rows if (s, q) in wanted}


def current_fingerprint(con, model_name: str) -> str | None:
    row = con.execute(
        "SELECT fingerprint FROM models WHERE name = ? ORDER BY last_used DESC LIMIT 1", [model_name]
    ).fetchone()
    return row[0] if row else None


def answers_for(store: Store, model_name: str, set_name: str | None = None, question_id: str | None = None,
                limit: int | None = None) -> list[dict]:
    """The latest fingerprint's answers of a model, one dict per (question, turn), in (set, question,
    turn) order; narrowed to a set and a question, the first `limit` of them."""
    with store.read() as con:
        fingerprint = current_fingerprint(con, model_name)
        if fingerprint is None:
            return []
        sql = (
            "SELECT a.set_name, a.question_id, q.category, a.turn, q.turns[a.turn] AS prompt, a.text,"
            " a.completion_tokens, a.finish_reason, a.latency_s, a.created_at"
            " FROM answers a LEFT JOIN questions q USING (set_name, question_id)"
            " WHERE a.model_fingerprint = ?" + (" AND a.set_name = ?" if set_name else "")
            + (" AND a.question_id = ?" if question_id else "")
            + " ORDER BY a.set_name, a.question_id, a.turn, a.created_at" + (" LIMIT ?" if limit else "")
        )
        params = [fingerprint] + [v for v in (set_name, question_id, limit) if v]
        cur = con.execute(sql, params)
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]


def table_counts(store: Store) -> dict[str, int]:
    with store.read() as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def recent_runs(store: Store, limit: int = 10) -> list[dict]:
    with store.read() as con:
        cur = con.execute(
            "SELECT run_id, suite_name, status, started_at, wall_s, n_planned, n_cached, n_generated,"
            " n_failed FROM runs ORDER BY started_at DESC LIMIT ?",
            [limit],
        )
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]


def schema_version(store: Store) -> int:
    with store.read() as con:
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def rows_as_dicts(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
