"""Read-only views over the store for the app: plain SQL, rows back as dicts.

Every function takes a Store (open it with `open_for_viewing`, which never migrates or writes) and
returns list[dict] or small dataclasses. No streamlit and no pandas here: the app turns rows into
charts. The one write, `save_human_verdicts`, stores a person's verdicts as judgments of judge
`human:<name>`, so they flow through the same tables as every LLM judge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.config import Suite
from harness.models.base import stable_hash
from harness.store import Store

HUMAN_PREFIX = "human:"
APP_LOCK_WAIT_S = 2.0  # the app shows its last data rather than wait 30 s for a busy file
_OUTCOME = ("CASE WHEN j.status = 'ok' THEN CASE j.verdict WHEN 'A' THEN j.model_a WHEN 'B' THEN j.model_b"
            " WHEN 'tie' THEN 'tie' END END")


def open_for_viewing(path: str | Path, lock_wait_s: float = APP_LOCK_WAIT_S) -> Store:
    return Store(path, migrate=False, lock_wait_s=lock_wait_s)


def schema_problem(store: Store) -> str | None:
    """None when the file holds the judged schema; otherwise a one-line message for the user."""
    hint = f"run `harness run quickstart --db {store.path}` first"
    if not store.path.exists():
        return f"{store.path}: no such database: {hint}."
    with store.read() as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"schema_migrations", "judgments", "ratings"} <= tables:
            return f"{store.path}: has no harness schema yet: {hint}."
    return None


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def _tables(con) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _where(filters: dict[str, object | None]) -> tuple[str, list]:
    """' AND col = ?' for every filter that is set (None or 'all' means no filter)."""
    parts, params = [], []
    for column, value in filters.items():
        if value not in (None, "all"):
            parts.append(f" AND {column} = ?")
            params.append(value)
    return "".join(parts), params


# --- filters and leaderboard ------------------------------------------------------------------
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


def latest_ratings(store: Store, suite: str, category: str = "all", judge: str | None = None,
                   dimension: str | None = None) -> list[dict]:
    """The suite's most recent `ratings` rows (one compute_ratings call) for a category: elo, bt,
    win_rate, lc_win_rate, mean_grade. Reads the precomputed table, so it costs the same at 1M
    judgments as at 100."""
    extra, params = _where({"r.judge_name": judge, "r.dimension": dimension})
    with store.read() as con:
        return _rows(con,
            "SELECT r.judge_name, r.dimension, r.category, r.method, r.model, r.rating, r.ci_low, r.ci_high,"
            " r.level, r.battles, r.merge_policy, r.computed_at FROM ratings r"
            " WHERE r.suite_name = ? AND r.category = ? AND r.computed_at ="
            " (SELECT max(computed_at) FROM ratings WHERE suite_name = ?)" + extra +
            " ORDER BY r.judge_name, r.dimension, r.method, r.rating DESC",
            [suite, category, suite] + params)


def closed_metrics(store: Store, suite: str | None = None) -> list[dict]:
    """lm-eval metrics, latest result per (model, task, metric, filter); [] before migration 003."""
    from harness.store.closed import closed_scores

    with store.read() as con:
        if "closed_metrics" not in _tables(con):
            return []
    return closed_scores(store, suite)


def suite_config(store: Store, suite: str) -> Suite | None:
    """The suite as its latest run stored it (models, judges, merge policy)."""
    with store.read() as con:
        row = con.execute("SELECT config_json FROM runs WHERE suite_name = ? ORDER BY started_at DESC LIMIT 1",
                          [suite]).fetchone()
    return Suite.model_validate_json(row[0]) if row else None


# --- battles: both orders merged in SQL (FastChat's inconsistent -> tie rule) ---------------------
def _battles_sql(filters: dict) -> tuple[str, list]:
    """A CTE body of merged battles, one row per (set, question, turn, judge, dimension, x<y):
    winner is x, y or 'tie'; orders that disagree are a tie; a battle missing a parsed order is left
    out. Human verdicts are excluded (one order only, and they are not a judge being measured)."""
    extra, params = _where(filters)
    sql = (
        "SELECT j.set_name, j.question_id, j.turn, q.category, j.judge_name, j.dimension,"
        " least(j.model_a, j.model_b) AS x, greatest(j.model_a, j.model_b) AS y,"
        " count(o) AS n_parsed, count(DISTINCT o) AS n_distinct, any_value(o) AS first_outcome"
        f" FROM (SELECT j.*, {_OUTCOME} AS o FROM judgments j) j JOIN questions q USING (set_name, question_id)"
        " WHERE j.kind = 'pairwise' AND j.judge_name NOT LIKE 'human:%'" + extra +
        " GROUP BY ALL"
    )
    merged = ("SELECT *, CASE WHEN n_distinct = 1 THEN first_outcome ELSE 'tie' END AS winner"
              f" FROM ({sql}) WHERE n_parsed = 2")
    return merged, params


def pairwise_matrix(store: Store, judge: str | None, dimension: str | None, set_name: str | None = None,
                    category: str | None = None) -> list[dict]:
    """Per ordered (model, opponent): battles, wins, ties, losses and win rate (ties count half)."""
    battles, params = _battles_sql({"j.judge_name": judge, "j.dimension": dimension,
                                    "j.set_name": set_name, "q.category": category})
    sql = (f"WITH b AS ({battles}), p AS (SELECT x, y, count(*) AS n, count(*) FILTER (WHERE winner = x) AS wx,"
           " count(*) FILTER (WHERE winner = y) AS wy FROM b GROUP BY x, y)"
           " SELECT x AS model, y AS opponent, n AS battles, wx AS wins, n - wx - wy AS ties, wy AS losses FROM p"
           " UNION ALL SELECT y, x, n, wy, n - wx - wy, wx FROM p ORDER BY 1, 2")
    with store.read() as con:
        rows = _rows(con, sql, params)
    for r in rows:
        r["win_rate"] = (r["wins"] + 0.5 * r["ties"]) / r["battles"] if r["battles"] else None
    return rows


def category_breakdown(store: Store, judge: str | None, dimension: str | None,
                       set_name: str | None = None) -> list[dict]:
    """Per (category, model): battles and win rate against all opponents (ties count half)."""
    battles, params = _battles_sql({"j.judge_name": judge, "j.dimension": dimension, "j.set_name": set_name})
    sql = (f"WITH b AS ({battles}), s AS (SELECT category, x AS model, CASE winner WHEN x THEN 1.0 WHEN 'tie'"
           " THEN 0.5 ELSE 0.0 END AS score FROM b UNION ALL SELECT category, y, CASE winner WHEN y THEN 1.0"
           " WHEN 'tie' THEN 0.5 ELSE 0.0 END FROM b)"
           " SELECT category, model, count(*) AS battles, avg(score) AS win_rate FROM s GROUP BY ALL ORDER BY 1, 2")
    with store.read() as con:
        return _rows(con, sql, params)


# --- questions, answers, judgments ------------------------------------------------------------
def questions(store: Store, set_name: str | None = None, search: str = "", disagreement_only: bool = False,
              limit: int = 200) -> list[dict]:
    """Judged questions matching `search` (question text or any answer text), with a flag for judges
    disagreeing or a judge contradicting itself under swap."""
    battles, params = _battles_sql({"j.set_name": set_name})
    text_filter, text_params = "", []
    if search:
        text_filter = (" AND (contains(lower(array_to_string(q.turns, ' ')), ?)"
                       " OR EXISTS (SELECT 1 FROM answers a WHERE a.set_name = q.set_name"
                       " AND a.question_id = q.question_id AND contains(lower(a.text), ?)))")
        text_params = [search.lower(), search.lower()]
    sql = (f"WITH b AS ({battles}), d AS (SELECT set_name, question_id, turn, dimension, x, y,"
           " bool_or(n_distinct > 1) AS flip, count(DISTINCT winner) > 1 AS disagree FROM b GROUP BY ALL),"
           " f AS (SELECT set_name, question_id, bool_or(flip) AS swap_inconsistent,"
           " bool_or(disagree) AS judges_disagree FROM d GROUP BY ALL)"
           " SELECT q.set_name, q.question_id, q.category, q.turns[1] AS first_turn, len(q.turns) AS n_turns,"
           " f.swap_inconsistent, f.judges_disagree FROM questions q JOIN f USING (set_name, question_id)"
           " WHERE true" + text_filter +
           (" AND (f.swap_inconsistent OR f.judges_disagree)" if disagreement_only else "") +
           " ORDER BY q.set_name, q.question_id LIMIT ?")
    with store.read() as con:
        return _rows(con, sql, params + text_params + [limit])


def question_pairs(store: Store, set_name: str, question_id: str) -> list[tuple[str, str]]:
    """The (x, y) model pairs judged on a question, x < y."""
    with store.read() as con:
        return con.execute(
            "SELECT DISTINCT least(model_a, model_b), greatest(model_a, model_b) FROM judgments"
            " WHERE set_name = ? AND question_id = ? AND kind = 'pairwise' ORDER BY 1, 2",
            [set_name, question_id]).fetchall()


def _chain(con, answer_id: str) -> list[str]:
    """The texts of turns 1..n of the conversation that ends in `answer_id` (same model and params)."""
    return [t for (t,) in con.execute(
        "SELECT a.text FROM answers a JOIN answers last ON last.answer_id = ?"
        " AND a.model_fingerprint = last.model_fingerprint AND a.set_name = last.set_name"
        " AND a.question_id = last.question_id AND a.params_json = last.params_json AND a.turn <= last.turn"
        " QUALIFY row_number() OVER (PARTITION BY a.turn ORDER BY a.created_at DESC) = 1 ORDER BY a.turn",
        [answer_id]).fetchall()]


@dataclass
class Conversation:
    set_name: str
    question_id: str
    category: str
    turns: list[str]  # the user's turns
    answers: dict[str, list[str]]  # model -> its answer per turn
    judgments: list[dict]


def conversation(store: Store, set_name: str, question_id: str, x: str, y: str) -> Conversation | None:
    """Both models' answers to every turn, and every judgment of the pair (both orders, all judges)."""
    with store.read() as con:
        q = con.execute("SELECT category, turns FROM questions WHERE set_name = ? AND question_id = ?",
                        [set_name, question_id]).fetchone()
        if q is None:
            return None
        judgments = _rows(con,
            "SELECT turn, judge_name AS judge, dimension, model_a AS shown_first, model_b AS shown_second,"
            f" verdict, {_OUTCOME} AS winner, status, attempts, raw_output, answer_a, answer_b, created_at"
            " FROM judgments j WHERE set_name = ? AND question_id = ? AND kind = 'pairwise'"
            " AND least(model_a, model_b) = ? AND greatest(model_a, model_b) = ?"
            " ORDER BY turn, judge_name, dimension, model_a", [set_name, question_id, min(x, y), max(x, y)])
        answers: dict[str, list[str]] = {}
        for j in sorted(judgments, key=lambda r: -r["turn"]):  # the deepest turn carries the whole chain
            for model, answer_id in ((j["shown_first"], j["answer_a"]), (j["shown_second"], j["answer_b"])):
                if model not in answers:
                    answers[model] = _chain(con, answer_id)
    return Conversation(set_name, question_id, q[0], list(q[1]), answers, judgments)


# --- judges -----------------------------------------------------------------------------------
def llm_judges(store: Store) -> list[str]:
    with store.read() as con:
        return [j for (j,) in con.execute("SELECT DISTINCT judge_name FROM judgments WHERE kind = 'pairwise'"
                                          " AND judge_name NOT LIKE 'human:%' ORDER BY 1").fetchall()]


def reliability(store: Store) -> list[dict]:
    """Per LLM judge: calls, parse failures, swap flip rate, first-position and longer-answer win
    rates (harness.leaderboard.judge_reliability, one SQL pass per judge)."""
    from dataclasses import asdict

    from harness.leaderboard import judge_reliability

    return [asdict(judge_reliability(store, name)) for name in llm_judges(store)]


def judge_agreement(store: Store, dimension: str | None = None) -> list[dict]:
    """Judge vs judge (humans included): share of identical verdicts on the same item shown in the
    same order (same question, turn, dimension, model_a, model_b), both parsed."""
    extra, params = _where({"j1.dimension": dimension})
    with store.read() as con:
        return _rows(con,
            "SELECT j1.judge_name AS judge, j2.judge_name AS other, count(*) AS items,"
            " avg(CASE WHEN j1.verdict = j2.verdict THEN 1.0 ELSE 0.0 END) AS agreement"
            " FROM judgments j1 JOIN judgments j2 ON j1.set_name = j2.set_name AND j1.question_id = j2.question_id"
            " AND j1.turn = j2.turn AND j1.dimension = j2.dimension AND j1.model_a = j2.model_a"
            " AND j1.model_b = j2.model_b"
            " WHERE j1.kind = 'pairwise' AND j2.kind = 'pairwise' AND j1.status = 'ok' AND j2.status = 'ok'"
            " AND j1.judge_name <> j2.judge_name" + extra +
            " GROUP BY ALL ORDER BY 1, 2", params)


def human_agreement(store: Store) -> list[dict]:
    """Per (LLM judge, human): items a person settled, and how often the judge's merged verdict
    (both orders; disagreeing orders are a tie) names the same winner as the person."""
    battles, params = _battles_sql({})
    sql = (f"WITH b AS ({battles}), h AS (SELECT set_name, question_id, turn, dimension, judge_name AS human,"
           f" least(model_a, model_b) AS x, greatest(model_a, model_b) AS y, {_OUTCOME} AS outcome"
           " FROM judgments j WHERE judge_name LIKE 'human:%' AND status = 'ok')"
           " SELECT b.judge_name AS judge, h.human, count(*) AS items,"
           " avg(CASE WHEN b.winner = h.outcome THEN 1.0 ELSE 0.0 END) AS agreement,"
           " avg(CASE WHEN b.n_distinct > 1 THEN 1.0 ELSE 0.0 END) AS share_swap_inconsistent"
           " FROM b JOIN h USING (set_name, question_id, turn, dimension, x, y) GROUP BY ALL ORDER BY 1, 2")
    with store.read() as con:
        return _rows(con, sql, params)


def self_preference(store: Store) -> list[dict]:
    """For each judge whose own model is also a candidate (same `model` in a stored suite): that
    candidate's win rate under this judge and under every other judge."""
    with store.read() as con:
        configs = [Suite.model_validate_json(c) for (c,) in con.execute(
            "SELECT config_json FROM runs QUALIFY row_number() OVER (PARTITION BY suite_name"
            " ORDER BY started_at DESC) = 1").fetchall()]
    own = {(j.name, m.name) for s in configs for j in s.judges for m in s.models if m.model == j.model.model}
    if not own:
        return []
    battles, params = _battles_sql({})
    sql = (f"WITH b AS ({battles}), s AS (SELECT judge_name, x AS model, CASE winner WHEN x THEN 1.0 WHEN 'tie'"
           " THEN 0.5 ELSE 0.0 END AS score FROM b UNION ALL SELECT judge_name, y, CASE winner WHEN y THEN 1.0"
           " WHEN 'tie' THEN 0.5 ELSE 0.0 END FROM b)"
           " SELECT judge_name AS judge, model, count(*) AS battles, avg(score) AS win_rate FROM s"
           " WHERE list_contains(?, model) GROUP BY ALL ORDER BY 2, 1")
    with store.read() as con:
        rows = _rows(con, sql, params + [sorted({m for _, m in own})])
    for r in rows:
        r["own_model_of_judge"] = (r["judge"], r["model"]) in own
    return rows


# --- runs and lineage -------------------------------------------------------------------------
def runs(store: Store, limit: int = 200) -> list[dict]:
    with store.read() as con:
        return _rows(con,
            "SELECT run_id, suite_name, status, started_at, finished_at, wall_s, n_planned, n_cached,"
            " n_generated, n_failed, error FROM runs ORDER BY started_at DESC LIMIT ?", [limit])


def lineage(store: Store) -> dict[str, list[dict]]:
    """trained_models, parent_comparisons and training_log; empty lists before migration 004."""
    with store.read() as con:
        if "trained_models" not in _tables(con):
            return {"models": [], "comparisons": [], "log": []}
        return {
            "models": _rows(con, "SELECT model, parent, method, finetune, data_source, data_rows, steps, wall_s,"
                                 " final_loss, created_at FROM trained_models ORDER BY created_at"),
            "comparisons": _rows(con, "SELECT * FROM parent_comparisons QUALIFY row_number() OVER (PARTITION BY"
                                      " model, suite_name, judge_name, dimension, method ORDER BY computed_at DESC) = 1"
                                      " ORDER BY model, judge_name, dimension"),
            "log": _rows(con, "SELECT model, step, name, value FROM training_log ORDER BY model, name, step"),
        }


# --- human-LLM joint evaluation ---------------------------------------------------------------
def annotation_queue(store: Store, annotator: str, reasons: tuple[str, ...] = ("swap", "disagree", "audit"),
                     limit: int = 20, audit: int = 5, seed: int = 0) -> list[dict]:
    """Battles for a person to settle, not yet settled by `annotator`: a judge contradicting itself
    under swap ('swap'), judges naming different winners ('disagree'), and `audit` others drawn at
    random (a fixed hash order per seed) so agreement is also measured where the judges are sure."""
    battles, params = _battles_sql({})
    sql = (f"WITH b AS ({battles}),"
           " d AS (SELECT set_name, question_id, turn, category, dimension, x, y, bool_or(n_distinct > 1) AS flip,"
           "  count(DISTINCT winner) > 1 AS disagree FROM b GROUP BY ALL),"
           " i AS (SELECT set_name, question_id, turn, any_value(category) AS category, x, y, bool_or(flip) AS flip,"
           "  bool_or(disagree) AS disagree, list(DISTINCT dimension ORDER BY dimension) AS dimensions"
           "  FROM d GROUP BY set_name, question_id, turn, x, y),"
           " open AS (SELECT * FROM i WHERE NOT EXISTS (SELECT 1 FROM judgments h WHERE h.judge_name = ?"
           "  AND h.set_name = i.set_name AND h.question_id = i.question_id AND h.turn = i.turn"
           "  AND least(h.model_a, h.model_b) = i.x AND greatest(h.model_a, h.model_b) = i.y)),"
           " picked AS (SELECT *, CASE WHEN flip AND list_contains(?, 'swap') THEN 'swap-inconsistent'"
           "  WHEN disagree AND list_contains(?, 'disagree') THEN 'judges disagree' END AS reason,"
           "  hash(set_name, question_id, turn, x, y, ?) AS h FROM open)"
           " (SELECT * EXCLUDE (h) FROM picked WHERE reason IS NOT NULL ORDER BY h LIMIT ?)"
           " UNION ALL (SELECT * EXCLUDE (h, reason), 'audit' FROM picked WHERE reason IS NULL"
           "  AND list_contains(?, 'audit') ORDER BY h LIMIT ?)")
    args = params + [HUMAN_PREFIX + annotator, list(reasons), list(reasons), seed, limit, list(reasons), audit]
    with store.read() as con:
        return _rows(con, sql, args)


def annotation_item(store: Store, item: dict) -> dict:
    """The user's turns and both models' answer chains for a queued battle."""
    with store.read() as con:
        row = con.execute(
            "SELECT any_value(CASE WHEN model_a = ? THEN answer_a ELSE answer_b END),"
            " any_value(CASE WHEN model_a = ? THEN answer_a ELSE answer_b END) FROM judgments"
            " WHERE set_name = ? AND question_id = ? AND turn = ? AND kind = 'pairwise'"
            " AND least(model_a, model_b) = ? AND greatest(model_a, model_b) = ? AND judge_name NOT LIKE 'human:%'",
            [item["x"], item["y"], item["set_name"], item["question_id"], item["turn"], item["x"], item["y"]],
        ).fetchone()
        turns = con.execute("SELECT turns FROM questions WHERE set_name = ? AND question_id = ?",
                            [item["set_name"], item["question_id"]]).fetchone()[0]
        return {"turns": list(turns)[: item["turn"]], "answer_ids": {item["x"]: row[0], item["y"]: row[1]},
                "answers": {item["x"]: _chain(con, row[0]), item["y"]: _chain(con, row[1])}}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def save_human_verdicts(store: Store, annotator: str, item: dict, shown_first: str, shown_second: str,
                        answer_first: str, answer_second: str, verdicts: dict[str, str], note: str = "") -> int:
    """Store a person's verdicts, one judgments row per dimension, as judge `human:<annotator>`.
    Verdicts are positional ('A' = the answer shown first), model_a/model_b are the models in the
    order shown. Saving the same battle in the same order again replaces the earlier verdicts."""
    if not _NAME.match(annotator):
        raise ValueError("annotator name: 1-64 letters, digits, '.', '_' or '-'")
    if any(v not in ("A", "B", "tie") for v in verdicts.values()):
        raise ValueError("verdicts must be 'A', 'B' or 'tie'")
    judge = HUMAN_PREFIX + annotator
    call_id = stable_hash([judge, item["set_name"], item["question_id"], item["turn"], answer_first, answer_second])
    raw = json.dumps({"note": note, "reason": item.get("reason"), "shown": "blind, randomised order"})
    rows = [(stable_hash([call_id, dim]), call_id, judge, judge, "pairwise", item["set_name"], item["question_id"],
             item["turn"], shown_first, shown_second, answer_first, answer_second, dim, verdict, None, "ok", 1,
             raw, "app") for dim, verdict in sorted(verdicts.items())]
    with store.write() as con:
        con.executemany(
            "INSERT INTO judgments (judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name,"
            " question_id, turn, model_a, model_b, answer_a, answer_b, dimension, verdict, score, status,"
            " attempts, raw_output, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (judgment_id) DO UPDATE SET verdict = excluded.verdict,"
            " raw_output = excluded.raw_output, created_at = now()", rows)
    return len(rows)


def joint_ratings(store: Store, suite: str, judge: str, dimension: str, category: str = "all",
                  set_name: str | None = None, include_humans: bool = True, rounds: int = 200) -> list[dict]:
    """BT and Elo recomputed live from judgments: the judge's battles, with every battle a person
    settled replaced by the person's verdict (several people on one battle share its weight).

    The `ratings` table holds LLM-only ratings per suite, judge, dimension and category; a set
    filter or human verdicts need a fresh fit, so this selects rows the way
    harness.leaderboard.pairwise_rows does (suite's models, one judge) and calls the same pure
    functions (merge_orders, battles_from_rows, bootstrap) with fewer bootstrap rounds."""
    from harness.ratings import battles_from_rows, bootstrap
    from judges.merge import Battle, JudgmentRow, merge_orders

    config = suite_config(store, suite)
    models = [m.name for m in config.models] if config else []
    policy = config.ratings.merge if config else "inconsistent_tie"
    extra, params = _where({"j.set_name": set_name, "q.category": category})
    base = ("SELECT j.set_name, j.question_id, j.turn, q.category, j.judge_name, j.dimension, j.model_a, j.model_b,"
            " CASE WHEN j.status = 'ok' THEN j.verdict END FROM judgments j JOIN questions q USING (set_name, question_id)"
            " WHERE j.kind = 'pairwise' AND j.dimension = ? AND list_contains(?, j.model_a)"
            " AND list_contains(?, j.model_b)" + extra)
    with store.read() as con:
        llm = [JudgmentRow(*r) for r in con.execute(base + " AND j.judge_name = ?",
                                                    [dimension, models, models] + params + [judge]).fetchall()]
        human = [JudgmentRow(*r) for r in con.execute(base + " AND j.judge_name LIKE 'human:%'",
                                                      [dimension, models, models] + params).fetchall()] \
            if include_humans else []
    key = lambda r: (r.set_name, r.question_id, r.turn, min(r.model_a, r.model_b), max(r.model_a, r.model_b))  # noqa: E731
    settled: dict[tuple, list[JudgmentRow]] = {}
    for r in human:
        if r.verdict:
            settled.setdefault(key(r), []).append(r)
    battles = merge_orders([r for r in llm if key(r) not in settled], policy)
    for (_, _, _, x, y), rows in settled.items():
        for r in rows:
            won = {"A": r.model_a, "B": r.model_b}.get(r.verdict, "tie")
            winner = "tie" if won == "tie" else ("model_a" if won == x else "model_b")
            battles.append(Battle(x, y, winner, 1 / len(rows), r.category, True, r.judge_name, dimension))
    if not battles:
        return []
    rated = battles_from_rows([(b.model_a, b.model_b, b.winner) for b in battles], [b.weight for b in battles])
    out = []
    for method in ("bt", "elo"):
        extra_args = {"n_orders": 20} if method == "elo" else {}
        for model, iv in bootstrap(rated, rater=method, rounds=rounds, seed=0, level=0.95, **extra_args).items():
            out.append({"judge_name": judge, "dimension": dimension, "category": category, "method": method,
                        "model": model, "rating": iv.point, "ci_low": iv.low, "ci_high": iv.high, "level": iv.level,
                        "battles": len(battles), "human_battles": len(settled)})
    return out
