"""SQL for trained models: the latest stored spec of a model, lineage rows, training logs and
comparisons against parents (migration 004)."""

from __future__ import annotations

from harness.store import Store
from harness.store.queries import rows_as_dicts


def latest_model(store: Store, name: str) -> dict | None:
    """spec_json, backend and fingerprint of the model's most recently used version, or None."""
    with store.read() as con:
        rows = rows_as_dicts(con, "SELECT spec_json, backend, fingerprint FROM models WHERE name = ?"
                                  " ORDER BY last_used DESC LIMIT 1", [name])
    return rows[0] if rows else None


def stored_models(store: Store) -> list[tuple]:
    """(name, backend, source, fingerprint prefix, last used) of every stored model version."""
    with store.read() as con:
        return con.execute("SELECT name, backend, source, left(fingerprint, 12), last_used FROM models"
                           " ORDER BY name").fetchall()


def save_trained(con, row: dict, log_rows: list[tuple]) -> None:
    """Replace the trained model's lineage row and training log (a retrained recipe), in `con`'s
    transaction."""
    con.execute("DELETE FROM trained_models WHERE model = ?", [row["model"]])
    con.execute("DELETE FROM training_log WHERE model = ?", [row["model"]])
    con.execute(f"INSERT INTO trained_models ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()))
    con.executemany("INSERT INTO training_log VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", log_rows)


def trained_row(store: Store, model: str) -> dict | None:
    with store.read() as con:
        rows = rows_as_dicts(con, "SELECT * FROM trained_models WHERE model = ?", [model])
    return rows[0] if rows else None


def save_comparisons(store: Store, rows: list[tuple]) -> None:
    """rows: (model, parent, suite, judge, dimension, method, delta, ci_low, ci_high, computed_at,
    p_value, mde)."""
    with store.write() as con:
        con.executemany(
            "INSERT INTO parent_comparisons (model, parent, suite_name, judge_name, dimension, method, delta,"
            " ci_low, ci_high, computed_at, p_value, mde) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def lineage_rows(store: Store) -> tuple[list[dict], set[str], list[dict], dict[str, list[float]]]:
    """(trained_models rows, stored model names, latest comparison per key, loss curve per model)."""
    with store.read() as con:
        trained = rows_as_dicts(con, "SELECT * FROM trained_models")
        known = {n for (n,) in con.execute("SELECT DISTINCT name FROM models").fetchall()}
        comparisons = rows_as_dicts(con,
            "SELECT * FROM parent_comparisons QUALIFY row_number() OVER (PARTITION BY model, suite_name, judge_name,"
            " dimension, method ORDER BY computed_at DESC) = 1 ORDER BY judge_name, dimension, method")
        losses = dict(con.execute("SELECT model, list(value ORDER BY step) FROM training_log WHERE name = 'loss'"
                                  " GROUP BY model").fetchall())
    return trained, known, comparisons, losses
