"""SQL for computed ratings: each `harness.api.ratings` call appends one stamped set of rows."""

from __future__ import annotations

from harness.store import Store
from harness.store.queries import now, rows_as_dicts


def save_ratings(store: Store, suite_name: str, merge_policy: str, rows: list) -> None:
    """rows: harness.leaderboard.RatingRow; stored under one computed_at stamp."""
    if not rows:
        return
    stamp = now()
    with store.write() as con:
        con.executemany(
            "INSERT INTO ratings (computed_at, suite_name, judge_name, dimension, category, method, model, rating,"
            " ci_low, ci_high, level, battles, merge_policy, ci_kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(stamp, suite_name, r.judge_name, r.dimension, r.category, r.method, r.model, r.rating,
              r.ci_low, r.ci_high, r.level, r.battles, merge_policy, r.ci_kind) for r in rows])


def latest_ratings(store: Store, suite: str, category: str | None = "all", judge: str | None = None,
                   dimension: str | None = None) -> list[dict]:
    """The suite's most recent set of `ratings` rows, for one category (None: every category)."""
    with store.read() as con:
        return rows_as_dicts(con,
            "SELECT r.judge_name, r.dimension, r.category, r.method, r.model, r.rating, r.ci_low, r.ci_high,"
            " r.level, r.battles, r.merge_policy, r.ci_kind, r.computed_at FROM ratings r"
            " WHERE r.suite_name = ? AND (? IS NULL OR r.category = ?) AND (? IS NULL OR r.judge_name = ?)"
            " AND (? IS NULL OR r.dimension = ?)"
            " AND r.computed_at = (SELECT max(computed_at) FROM ratings WHERE suite_name = ?)"
            " ORDER BY r.judge_name, r.dimension, r.method, r.rating DESC, r.model",
            [suite, category, category, judge, judge, dimension, dimension, suite])
