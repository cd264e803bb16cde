"""Plain SQL reads for the app (and the one write it makes): rows back as dicts.

Which judgments count and how battles merge is not decided here: harness.views asks
harness.battles for that and uses these reads for everything else (texts, runs, lineage).
"""

from __future__ import annotations

from harness.models.base import stable_hash
from harness.store import Store
from harness.store.queries import rows_as_dicts

HUMAN_PREFIX = "human:"


def tables(con) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct suites, sets, categories, judges (LLM and human) and dimensions."""
    with store.read() as con:
        one = lambda sql: [v for (v,) in con.execute(sql).fetchall()]  # noqa: E731
        return {
            "suites": one("SELECT DISTINCT suite_name FROM ratings UNION SELECT DISTINCT suite_name FROM runs ORDER BY 1"),
            "sets": one("SELECT DISTINCT set_name FROM questions ORDER BY 1"),
            "categories": one("SELECT DISTINCT category FROM questions ORDER BY 1"),
            "judges": one("SELECT DISTINCT judge_name FROM ratings UNION SELECT DISTINCT judge_name FROM judgments"
                          " WHERE judge_name LIKE 'human:%' ORDER BY 1"),
            "dimensions": one("SELECT DISTINCT dimension FROM ratings ORDER BY 1"),
        }


def suite_configs(store: Store, suite: str | None = None) -> list[str]:
    """config_json of each suite's latest run (one suite's, when named)."""
    with store.read() as con:
        return [c for (c,) in con.execute(
            "SELECT config_json FROM runs WHERE (? IS NULL OR suite_name = ?) QUALIFY row_number() OVER"
            " (PARTITION BY suite_name ORDER BY started_at DESC) = 1 ORDER BY suite_name", [suite, suite]).fetchall()]


def question_texts(store: Store, set_name: str | None, search: str) -> dict[tuple[str, str], dict]:
    """(set, question) -> category, first turn and number of turns, for questions whose text or any
    answer's text contains `search` (case-insensitive; '' matches all)."""
    needle = search.lower()
    with store.read() as con:
        rows = rows_as_dicts(con,
            "SELECT q.set_name, q.question_id, q.category, q.turns[1] AS first_turn, len(q.turns) AS n_turns"
            " FROM questions q WHERE (? IS NULL OR q.set_name = ?) AND (? = '' OR"
            " contains(lower(array_to_string(q.turns, ' ')), ?) OR EXISTS (SELECT 1 FROM answers a"
            " WHERE a.set_name = q.set_name AND a.question_id = q.question_id AND contains(lower(a.text), ?)))",
            [set_name, set_name, needle, needle, needle])
    return {(r["set_name"], r["question_id"]): r for r in rows}


def question_pairs(store: Store, set_name: str, question_id: str) -> list[tuple[str, str]]:
    """The (x, y) model pairs judged on a question, x < y."""
    with store.read() as con:
        return con.execute(
            "SELECT DISTINCT least(model_a, model_b), greatest(model_a, model_b) FROM judgments"
            " WHERE set_name = ? AND question_id = ? AND kind = 'pairwise' ORDER BY 1, 2",
            [set_name, question_id]).fetchall()


def question(store: Store, set_name: str, question_id: str) -> tuple[str, list[str]] | None:
    """(category, user turns) of a question."""
    with store.read() as con:
        row = con.execute("SELECT category, turns FROM questions WHERE set_name = ? AND question_id = ?",
                          [set_name, question_id]).fetchone()
    return (row[0], list(row[1])) if row else None


def pair_judgments(store: Store, set_name: str, question_id: str, x: str, y: str) -> list[dict]:
    """Every stored judgment of the pair on a question (both orders, all judges and fingerprints)."""
    with store.read() as con:
        return rows_as_dicts(con,
            "SELECT judgment_id, turn, judge_name AS judge, dimension, model_a AS shown_first, model_b AS shown_second,"
            " verdict, CASE WHEN status = 'ok' THEN CASE verdict WHEN 'A' THEN model_a WHEN 'B' THEN model_b"
            " WHEN 'tie' THEN 'tie' END END AS winner, status, attempts, raw_output, choice_lp_1, choice_lp_2,"
            " choice_lp_tie, annotator, note, answer_a, answer_b, created_at"
            " FROM judgments WHERE set_name = ? AND question_id = ? AND kind = 'pairwise'"
            " AND least(model_a, model_b) = ? AND greatest(model_a, model_b) = ?"
            " ORDER BY turn, judge_name, dimension, model_a, created_at", [set_name, question_id, min(x, y), max(x, y)])


def answer_chain(store: Store, answer_id: str) -> list[str]:
    """The texts of turns 1..n of the conversation that ends in `answer_id` (same model and params)."""
    with store.read() as con:
        return [t for (t,) in con.execute(
            "SELECT a.text FROM answers a JOIN answers last ON last.answer_id = ?"
            " AND a.model_fingerprint = last.model_fingerprint AND a.set_name = last.set_name"
            " AND a.question_id = last.question_id AND a.params_json = last.params_json AND a.turn <= last.turn"
            " QUALIFY row_number() OVER (PARTITION BY a.turn ORDER BY a.created_at DESC) = 1 ORDER BY a.turn",
            [answer_id]).fetchall()]


def runs(store: Store, limit: int = 200) -> list[dict]:
    with store.read() as con:
        return rows_as_dicts(con,
            "SELECT run_id, suite_name, status, started_at, finished_at, wall_s, n_planned, n_cached,"
            " n_generated, n_failed, error FROM runs ORDER BY started_at DESC LIMIT ?", [limit])


def lineage(store: Store) -> dict[str, list[dict]]:
    """trained_models, parent_comparisons and training_log; empty lists before migration 004."""
    with store.read() as con:
        if "trained_models" not in tables(con):
            return {"models": [], "comparisons": [], "log": []}
        return {
            "models": rows_as_dicts(con, "SELECT model, parent, method, finetune, data_source, data_rows, steps,"
                                         " wall_s, final_loss, created_at FROM trained_models ORDER BY created_at"),
            "comparisons": rows_as_dicts(con, "SELECT * FROM parent_comparisons QUALIFY row_number() OVER (PARTITION BY"
                                              " model, suite_name, judge_name, dimension, method ORDER BY computed_at"
                                              " DESC) = 1 ORDER BY model, judge_name, dimension"),
            "log": rows_as_dicts(con, "SELECT model, step, name, value FROM training_log ORDER BY model, name, step"),
        }


def save_human_verdicts(store: Store, annotator: str, item: dict, shown_first: str, shown_second: str,
                        answer_first: str, answer_second: str, verdicts: dict[str, str], note: str = "") -> int:
    """One judgments row per dimension, as judge `human:<annotator>`, with the person, note and
    queue reason in their own columns. Saving the same battle in the same order again replaces the
    earlier verdicts (a later save in the other order supersedes them in harness.battles)."""
    judge = HUMAN_PREFIX + annotator
    call_id = stable_hash([judge, item["set_name"], item["question_id"], item["turn"], answer_first, answer_second])
    rows = [(stable_hash([call_id, dim]), call_id, judge, judge, "pairwise", item["set_name"], item["question_id"],
             item["turn"], shown_first, shown_second, answer_first, answer_second, dim, verdict, None, "ok", 1,
             "", "app", annotator, note, item.get("reason")) for dim, verdict in sorted(verdicts.items())]
    with store.write() as con:
        con.executemany(
            "INSERT INTO judgments (judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name,"
            " question_id, turn, model_a, model_b, answer_a, answer_b, dimension, verdict, score, status,"
            " attempts, raw_output, run_id, annotator, note, queue_reason) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (judgment_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note,"
            " queue_reason = excluded.queue_reason, created_at = now()", rows)
    return len(rows)
