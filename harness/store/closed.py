"""SQL for closed-set (lm-eval) results: one row per task run, per metric, per document."""

from __future__ import annotations

from harness.store import Store


def stored_results(con, task_hashes: list[str]) -> list[tuple[str, str, str, str]]:
    """(task_hash, result_key, task, output_type) of every stored result of these task hashes:
    enough to tell which units are stored and what their tasks score, without lm-eval."""
    if not task_hashes:
        return []
    return con.execute("SELECT task_hash, result_key, task, output_type FROM closed_tasks"
                       " WHERE list_contains(?, task_hash) ORDER BY result_key", [task_hashes]).fetchall()


def insert_result(con, task_row: dict, metric_rows: list[tuple], sample_rows: list[tuple]) -> None:
    """Replace any earlier rows of this result_key (a forced rerun), then insert."""
    key = task_row["result_key"]
    for table in ("closed_samples", "closed_metrics", "closed_tasks"):
        con.execute(f"DELETE FROM {table} WHERE result_key = ?", [key])
    columns = ", ".join(task_row)
    con.execute(f"INSERT INTO closed_tasks ({columns}) VALUES ({', '.join('?' * len(task_row))})",
                list(task_row.values()))
    con.executemany("INSERT INTO closed_metrics VALUES (?, ?, ?, ?, ?, ?)", metric_rows)
    if sample_rows:
        con.executemany("INSERT INTO closed_samples VALUES (?, ?, ?, ?, ?, ?, ?, MAP(?, ?))", sample_rows)


def closed_scores(store: Store, suite_name: str | None = None, models: list[str] | None = None) -> list[dict]:
    """The latest result per (model, task, metric, filter): value, stderr, n, shots, backend."""
    sql = """
        SELECT t.model, t.task, m.metric, m.filter, m.value, m.stderr, m.higher_is_better,
               t.n_samples, t.num_fewshot, t.lm_eval_backend, t.suite_name, t.created_at
        FROM closed_tasks t JOIN closed_metrics m USING (result_key)
        WHERE (? IS NULL OR t.suite_name = ?) AND (? IS NULL OR list_contains(?, t.model))
        QUALIFY row_number() OVER (PARTITION BY t.model, t.task, m.metric, m.filter
                                   ORDER BY t.created_at DESC) = 1
        ORDER BY t.task, m.metric, m.filter, t.model
    """
    with store.read() as con:
        cur = con.execute(sql, [suite_name, suite_name, models, models])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def closed_samples(store: Store, task: str, model: str, limit: int | None = None,
                   only_wrong: bool = False) -> list[dict]:
    """Per-document rows of the latest run of `task` for `model`."""
    sql = """
        WITH latest AS (
            SELECT result_key FROM closed_tasks WHERE task = ? AND model = ?
            ORDER BY created_at DESC LIMIT 1)
        SELECT s.doc_id, s.filter, s.prompt, s.target, s.responses, s.filtered_response,
               map_entries(s.metrics) AS metrics
        FROM closed_samples s JOIN latest USING (result_key)
        ORDER BY s.doc_id, s.filter
    """
    with store.read() as con:
        rows = con.execute(sql, [task, model]).fetchall()
    out = []
    for doc_id, filt, prompt, target, responses, filtered, metrics in rows:
        values = {m["key"]: m["value"] for m in metrics}
        if only_wrong and all(v != 0 for v in values.values()):
            continue
        out.append({"doc_id": doc_id, "filter": filt, "prompt": prompt, "target": target,
                    "responses": responses, "filtered_response": filtered, "metrics": values})
    return out[:limit] if limit else out


def known_tasks(store: Store) -> list[tuple[str, str]]:
    """(task, model) pairs with stored results, for error messages."""
    with store.read() as con:
        return con.execute("SELECT DISTINCT task, model FROM closed_tasks ORDER BY 1, 2").fetchall()


def latest_result(store: Store, task: str, model: str) -> dict | None:
    """The latest stored run of `task` for `model` (the one closed_samples reads): result_key,
    output_type and settings_json (which holds the `lm_eval` command, and so the task's folder)."""
    with store.read() as con:
        row = con.execute("SELECT result_key, output_type, settings_json FROM closed_tasks WHERE task = ? AND model = ?"
                          " ORDER BY created_at DESC LIMIT 1", [task, model]).fetchone()
    return None if row is None else dict(zip(("result_key", "output_type", "settings_json"), row))
