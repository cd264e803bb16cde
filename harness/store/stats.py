"""SQL for harness.stats: the texts of the answers battles were fought with (style features), and
the gaming probes' results (migration 009) that the Judges page flags a judge by."""

from __future__ import annotations

from collections.abc import Iterable

from harness.store import Store
from harness.store.queries import now, rows_as_dicts


def answer_texts(store: Store, answer_ids: Iterable[str]) -> dict[str, str]:
    """answer_id -> text for the ids that are stored (empty ids and unknown ones are left out)."""
    ids = sorted({i for i in answer_ids if i})
    if not ids:
        return {}
    with store.read() as con:
        return dict(con.execute("SELECT answer_id, text FROM answers WHERE answer_id IN (SELECT unnest(?::VARCHAR[]))",
                                [ids]).fetchall())


def current_answers(store: Store, model: str, sets: Iterable[str]) -> dict[tuple[str, str, int], str]:
    """(set_name, question_id, turn) -> text of `model`'s answers under its current fingerprint (the
    one used last, as harness.store.battles counts them), the latest answer per turn."""
    with store.read() as con:
        rows = con.execute(
            "WITH current_model AS (SELECT fingerprint FROM models WHERE name = ?"
            " QUALIFY row_number() OVER (ORDER BY last_used DESC, fingerprint) = 1)"
            " SELECT a.set_name, a.question_id, a.turn, a.text FROM answers a JOIN current_model m"
            " ON m.fingerprint = a.model_fingerprint WHERE a.set_name IN (SELECT unnest(?::VARCHAR[]))"
            " QUALIFY row_number() OVER (PARTITION BY a.set_name, a.question_id, a.turn ORDER BY a.created_at DESC) = 1",
            [model, sorted(set(sets))]).fetchall()
    return {(s, q, t): text for s, q, t, text in rows}


def save_probe_results(store: Store, suite_name: str, rows: list) -> None:
    """rows: harness.stats.probes.ProbeRow, stored under one computed_at stamp (append-only)."""
    if not rows:
        return
    stamp = now()
    with store.write() as con:
        con.executemany(
            "INSERT INTO probe_results (computed_at, suite_name, judge_name, dimension, kind, probe_model, against,"
            " rating, controlled, against_rating, against_controlled, flagged) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(stamp, suite_name, r.judge_name, r.dimension, r.kind, r.model, r.against, r.raw, r.controlled,
              r.against_raw, r.against_controlled, r.flagged) for r in rows])


def latest_probe_results(store: Store, suite_name: str) -> list[dict]:
    """The suite's most recent row per (judge, dimension, probe kind)."""
    with store.read() as con:
        return rows_as_dicts(con,
            "SELECT * FROM probe_results WHERE suite_name = ? QUALIFY row_number() OVER (PARTITION BY judge_name,"
            " dimension, kind ORDER BY computed_at DESC) = 1 ORDER BY judge_name, dimension, kind", [suite_name])
