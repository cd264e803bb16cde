"""SQL for judge meta-evaluation (migrations 006 and 010): runs, judged items (the cache), metrics
per subset.

Rows are written column-wise (`INSERT ... SELECT unnest(?)`): DuckDB's executemany costs about
10 ms a row, which a 999-item PandaLM run would notice.
"""

from __future__ import annotations

from harness.store import Store

TABLES = ("judge_eval_runs", "judge_eval_items", "judge_eval_run_items", "judge_eval_metrics")

ITEM_COLUMNS = {  # column -> SQL type of the unnested list
    "item_key": "VARCHAR", "judge_name": "VARCHAR", "judge_fingerprint": "VARCHAR", "benchmark": "VARCHAR",
    "item_id": "VARCHAR", "item_order": "INTEGER", "model_a": "VARCHAR", "model_b": "VARCHAR",
    "verdict": "VARCHAR", "parsed": "BOOLEAN", "attempts": "INTEGER", "raw_output": "VARCHAR",
    "choice_lp_1": "DOUBLE", "choice_lp_2": "DOUBLE", "choice_lp_tie": "DOUBLE",
    "human_label": "VARCHAR", "human_labels": "VARCHAR[]",
    "subset": "VARCHAR", "tokens_in": "INTEGER", "tokens_out": "INTEGER", "seconds": "DOUBLE",  # 010
}
METRIC_COLUMNS = {
    "subset": "VARCHAR", "metric": "VARCHAR", "value": "DOUBLE", "numerator": "INTEGER", "denominator": "INTEGER", "n": "INTEGER",
    "ci_low": "DOUBLE", "ci_high": "DOUBLE", "level": "DOUBLE",
}


def has_tables(con) -> bool:
    """Whether the file has migrations 006 and 010 (the app opens older files without migrating them)."""
    found = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not set(TABLES) <= found:
        return False
    return bool(con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'judge_eval_metrics'"
                            " AND column_name = 'subset'").fetchone()[0])


def _insert_columns(con, table: str, types: dict[str, str], rows: list[dict], conflict: str = "") -> None:
    if not rows:
        return
    columns = list(types)
    selects = ", ".join(f"unnest(?::{types[c]}[])" for c in columns)
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects} {conflict}",
                [[row[c] for row in rows] for c in columns])


# --- writes ---------------------------------------------------------------------------------------
def insert_items(con, rows: list[dict]) -> None:
    """Judged items (dicts with ITEM_COLUMNS); a stored item_key is kept as it is."""
    _insert_columns(con, "judge_eval_items", ITEM_COLUMNS, rows, "ON CONFLICT (item_key) DO NOTHING")


def save_run(con, run: dict, item_keys: list[str], metrics: list[dict]) -> None:
    """Store one run with the items it scored and its metrics, replacing an earlier run with the same
    id (the same judge, data and settings again), so a rerun adds no rows."""
    run_id = run["eval_run_id"]
    for table in ("judge_eval_metrics", "judge_eval_run_items", "judge_eval_runs"):
        con.execute(f"DELETE FROM {table} WHERE eval_run_id = ?", [run_id])
    columns = ", ".join(run)
    con.execute(f"INSERT INTO judge_eval_runs ({columns}) VALUES ({', '.join('?' * len(run))})", list(run.values()))
    keys = sorted(set(item_keys))
    if keys:
        con.execute("INSERT INTO judge_eval_run_items SELECT ?, unnest(?::VARCHAR[])", [run_id, keys])
    _insert_columns(con, "judge_eval_metrics", {"eval_run_id": "VARCHAR", **METRIC_COLUMNS},
                    [{"eval_run_id": run_id, **m} for m in metrics])


# --- reads ----------------------------------------------------------------------------------------
def cached_items(store: Store, keys: list[str]) -> dict[str, dict]:
    """Stored items among `keys`, by item_key."""
    if not keys:
        return {}
    with store.read() as con:
        cur = con.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM judge_eval_items"
                          " WHERE item_key IN (SELECT unnest(?::VARCHAR[]))", [keys])
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}


def _dicts(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def runs(store: Store) -> list[dict]:
    """Every stored judge-eval run, newest first."""
    with store.read() as con:
        if not has_tables(con):
            return []
        return _dicts(con, "SELECT * FROM judge_eval_runs ORDER BY finished_at DESC, eval_run_id")


def run_metrics(store: Store, eval_run_id: str, subset: str = "all") -> dict[str, dict]:
    """metric -> its row, for one run and subset."""
    with store.read() as con:
        rows = _dicts(con, "SELECT * EXCLUDE (eval_run_id) FROM judge_eval_metrics WHERE eval_run_id = ?"
                           " AND subset = ?", [eval_run_id, subset])
    return {r["metric"]: r for r in rows}


def run_items(store: Store, eval_run_id: str) -> list[dict]:
    """The judged items and orders a run scored, by item id and order."""
    with store.read() as con:
        return _dicts(con, "SELECT i.* FROM judge_eval_items i JOIN judge_eval_run_items r USING (item_key)"
                           " WHERE r.eval_run_id = ? ORDER BY i.item_id, i.item_order", [eval_run_id])


def judge_eval_results(store: Store) -> list[dict]:
    """The latest run's value of every metric per (judge, benchmark, subset, metric), with the run's
    card facts (kind of labels, notes, totals), for the app and harness.judge_eval_board; [] on a
    file that predates migration 010 (or does not exist)."""
    if not store.path.exists():
        return []
    sql = """
        SELECT r.judge_name AS judge, r.benchmark, m.subset, m.metric, m.value, m.numerator, m.denominator, m.n,
               m.ci_low, m.ci_high, m.level, r.source, r.n_items, r.n_parsed, r.n_calls, r.n_cached,
               r.judge_fingerprint, r.eval_run_id, r.settings_json, r.finished_at, r.notes, r.three_way,
               r.tokens_in, r.tokens_out, r.judge_seconds, r.cost_usd
        FROM judge_eval_runs r JOIN judge_eval_metrics m USING (eval_run_id)
        QUALIFY row_number() OVER (PARTITION BY r.judge_name, r.benchmark, m.subset, m.metric
                                   ORDER BY r.finished_at DESC, r.eval_run_id) = 1
        ORDER BY r.benchmark, r.judge_name, m.subset, m.metric
    """
    with store.read() as con:
        if not has_tables(con):
            return []
        return _dicts(con, sql)
