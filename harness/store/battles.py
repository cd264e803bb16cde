"""The SQL of the one rule for which judgments count, and of the merge policies' fast path.

harness.battles is the only caller and documents the rule; it lives here because the store owns
every SQL statement. The rule, for pairwise judgments:
  1. the judge's current fingerprints (the ones registered last in `judges`; people always count);
  2. both answers come from their model's current fingerprint (the one used last in `models`);
  3. per battle (judge, set, question, turn, dimension, model pair), only the most recent answer
     pair, and per order the most recent row; a person counts once per battle (their latest).
Superseded rows stay in `judgments` as history; they are never mixed with current ones.
"""

from __future__ import annotations

from dataclasses import dataclass

# A row's verdict as the model that won ('tie', or NULL when unparsed).
OUTCOME = ("CASE WHEN j.status = 'ok' THEN CASE j.verdict WHEN 'A' THEN j.model_a WHEN 'B' THEN j.model_b"
           " WHEN 'tie' THEN 'tie' END END")
BATTLE_KEY = "judge_name, set_name, question_id, turn, dimension, x, y"
# The judgments columns a counted row carries (raw outputs and notes stay behind: they are wide).
COUNTED_COLUMNS = ", ".join(f"j.{c}" for c in (
    "judgment_id", "call_id", "judge_name", "set_name", "question_id", "turn", "dimension", "model_a", "model_b",
    "answer_a", "answer_b", "verdict", "status", "choice_lp_1", "choice_lp_2", "choice_lp_tie", "created_at"))
ROW_COLUMNS = ("set_name, question_id, turn, category, judge_name, dimension, model_a, model_b, verdict, len_a,"
               " len_b, choice_lp_1, choice_lp_2, choice_lp_tie, answer_a, answer_b, call_id")


BATTLE_STRUCT = ("struct_pack(s := j.set_name, q := j.question_id, t := j.turn, x := least(j.model_a, j.model_b),"
                 " y := greatest(j.model_a, j.model_b))")
BATTLE_STRUCT_TYPE = "STRUCT(s VARCHAR, q VARCHAR, t INTEGER, x VARCHAR, y VARCHAR)"


@dataclass(frozen=True)
class Filters:
    """Which rows to read; None means no filter. `humans`: people's rows only (True), or LLM
    judges' rows only (False). harness.battles calls it a Selection."""

    judges: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    sets: tuple[str, ...] | None = None
    dimension: str | None = None
    category: str | None = None
    turn: int | None = None
    humans: bool = False
    # the app reads a page's worth: question ids (in any of `sets`), or (set, question, turn, x, y)
    # of battles (x < y; every judge and dimension of each)
    questions: tuple[str, ...] | None = None
    battles: tuple[tuple[str, str, int, str, str], ...] | None = None

    def sql(self, question: str = "q") -> tuple[str, list]:
        """The conditions on judgments `j` joined with questions `question` (category)."""
        parts = [" AND j.judge_name LIKE 'human:%'" if self.humans else " AND j.judge_name NOT LIKE 'human:%'"]
        params: list = []
        for column, values in (("j.judge_name", self.judges), ("j.set_name", self.sets)):
            if values is not None:
                parts.append(f" AND list_contains(?, {column})")
                params.append(list(values))
        # A plain filter on question_id is applied while scanning; a semi-join (the battles' exact
        # keys) is planned after the joins, so it only runs on the few rows of those questions.
        for questions in (self.questions, None if self.battles is None else sorted({b[1] for b in self.battles})):
            if questions is not None:
                parts.append(" AND list_contains(?, j.question_id)")
                params.append(list(questions))
        if self.battles is not None:
            parts.append(f" AND {BATTLE_STRUCT} IN (SELECT unnest(?::{BATTLE_STRUCT_TYPE}[]))")
            params.append([dict(zip("sqtxy", b)) for b in self.battles])
        if self.models is not None:
            parts.append(" AND list_contains(?, j.model_a) AND list_contains(?, j.model_b)")
            params += [list(self.models), list(self.models)]
        for column, value in (("j.dimension", self.dimension), (f"{question}.category", self.category),
                              ("j.turn", self.turn)):
            if value is not None:
                parts.append(f" AND {column} = ?")
                params.append(value)
        return "".join(parts), params


CURRENT = """
current_models AS (
    SELECT name, fingerprint FROM models
    QUALIFY row_number() OVER (PARTITION BY name ORDER BY last_used DESC, fingerprint) = 1),
current_judges AS (
    SELECT name, fingerprint FROM judges
    QUALIFY last_used = max(last_used) OVER (PARTITION BY name))
"""


def counted_sql(filters: Filters, kind: str = "pairwise") -> tuple[str, list]:
    """A query of the rows that count, one per (battle, order) for judges, one per battle for people
    (pairwise), or one per (judge fingerprint, question, turn, model) for single grading."""
    extra, params = filters.sql()
    if kind == "single":
        judge_ok = ("j.judge_name LIKE 'human:%' OR EXISTS (SELECT 1 FROM current_judges c"
                    " WHERE c.name = j.judge_name AND c.fingerprint = j.judge_fingerprint)")
        return (f"WITH {CURRENT} SELECT j.judge_name, j.model_a, j.turn, j.score, j.set_name, j.question_id"
                " FROM judgments j JOIN questions q USING (set_name, question_id)"
                " JOIN answers aa ON aa.answer_id = j.answer_a"
                " JOIN current_models ma ON ma.name = j.model_a AND ma.fingerprint = aa.model_fingerprint"
                f" WHERE j.kind = 'single' AND j.status = 'ok' AND ({judge_ok})" + extra +
                " QUALIFY row_number() OVER (PARTITION BY j.judge_fingerprint, j.set_name, j.question_id, j.turn,"
                " j.model_a ORDER BY j.created_at DESC, j.judgment_id) = 1"
                " ORDER BY j.judge_name, j.model_a, j.set_name, j.question_id, j.turn"), params
    # People judge one order, and a later verdict on the same battle replaces theirs whatever its order.
    order = "CASE WHEN j.judge_name LIKE 'human:%' THEN '' ELSE j.model_a END"
    # GROUP BY and arg_min instead of window functions, over the few columns the choice needs, then
    # the chosen rows read by rowid: the same rows, ~4x faster on a million (a window sorts every
    # partition; a hash aggregate does not, and wide rows are never carried through it).
    sql = f"""
WITH {CURRENT},
-- answers from their model's current fingerprint, under that model's name (one join per side)
current_answers AS (
    SELECT a.answer_id, m.name FROM answers a JOIN current_models m ON m.fingerprint = a.model_fingerprint),
candidates AS (
    SELECT j.rowid AS row_id, j.judge_name, j.set_name, j.question_id, j.turn, j.dimension,
           least(j.model_a, j.model_b) AS x, greatest(j.model_a, j.model_b) AS y,
           CASE WHEN j.model_a < j.model_b THEN j.answer_a || '|' || j.answer_b
                ELSE j.answer_b || '|' || j.answer_a END AS pair_key,
           {order} AS shown, j.created_at, j.judgment_id
    FROM judgments j JOIN questions q USING (set_name, question_id)
    JOIN current_answers aa ON aa.answer_id = j.answer_a AND aa.name = j.model_a
    JOIN current_answers ab ON ab.answer_id = j.answer_b AND ab.name = j.model_b
    LEFT JOIN current_judges cj ON cj.name = j.judge_name AND cj.fingerprint = j.judge_fingerprint
    WHERE j.kind = 'pairwise' AND (j.judge_name LIKE 'human:%' OR cj.name IS NOT NULL){extra}),
-- per battle, answer pair and order: the latest row (ties: the smallest id)
newest_per_pair AS (
    SELECT {BATTLE_KEY}, pair_key, shown, max(created_at) AS newest_at,
           arg_min(row_id, (-epoch_us(created_at), judgment_id)) AS row_id
    FROM candidates GROUP BY ALL),
-- per battle, the pair of its latest row (ties: the largest pair key)
current_pair AS (
    SELECT {BATTLE_KEY}, max((newest_at, pair_key))[2] AS pair_key FROM newest_per_pair GROUP BY ALL)
SELECT {COUNTED_COLUMNS}, q.category, length(aa.text) AS len_a, length(ab.text) AS len_b,
       least(j.model_a, j.model_b) AS x, greatest(j.model_a, j.model_b) AS y
FROM judgments j JOIN questions q USING (set_name, question_id)
JOIN answers aa ON aa.answer_id = j.answer_a JOIN answers ab ON ab.answer_id = j.answer_b
WHERE j.rowid IN (SELECT row_id FROM newest_per_pair SEMI JOIN current_pair USING ({BATTLE_KEY}, pair_key))
"""
    return sql, params


def counted_rows(con, filters: Filters) -> list[tuple]:
    """ROW_COLUMNS of every pairwise row that counts, in a fixed order; verdict NULL when unparsed."""
    sql, params = counted_sql(filters)
    columns = ROW_COLUMNS.replace("verdict", "CASE WHEN status = 'ok' THEN verdict END")
    return con.execute(f"SELECT {columns} FROM ({sql}) ORDER BY {BATTLE_KEY}, model_a", params).fetchall()


def judged_battles(con, filters: Filters) -> list[tuple]:
    """(judge, set, question, turn, dimension, x, y) of every battle with a counted LLM row."""
    sql, params = counted_sql(filters)
    return con.execute(f"SELECT DISTINCT {BATTLE_KEY} FROM ({sql}) ORDER BY ALL", params).fetchall()


def counted_grades(con, filters: Filters) -> list[tuple]:
    """(judge, model, turn, score, set, question) of every single grade that counts."""
    sql, params = counted_sql(filters, kind="single")
    return con.execute(sql, params).fetchall()


def merged_sql(filters: Filters, policy: str, counted: str | None = None) -> tuple[str, list]:
    """The merge policies of judges.merge in SQL: one row per battle (two half battles under 'half').
    Pinned to the Python merge by tests/test_battles.py over random stores. `counted`: a table of
    counted_sql's rows for a wider selection to narrow instead (the rule keeps or drops a row by
    its own battle, judge and models, so narrowing its result equals applying it narrowed)."""
    if counted is None:
        sql, params = counted_sql(filters)
    else:
        extra, params = filters.sql(question="j")
        sql = f"SELECT * FROM {counted} j WHERE true{extra}"
    o = OUTCOME.replace("j.", "")
    calibrated = policy == "calibrated"
    grouped = f"""
WITH c AS ({sql}),
g AS (
    SELECT {BATTLE_KEY}, any_value(category) AS category,
           max(CASE WHEN model_a = x THEN {o} END) AS o_xy, max(CASE WHEN model_a = y THEN {o} END) AS o_yx,
           max(CASE WHEN model_a = x THEN choice_lp_1 END) + max(CASE WHEN model_a = y THEN choice_lp_2 END) AS s_x,
           max(CASE WHEN model_a = x THEN choice_lp_2 END) + max(CASE WHEN model_a = y THEN choice_lp_1 END) AS s_y,
           max(CASE WHEN model_a = x THEN choice_lp_tie END) + max(CASE WHEN model_a = y THEN choice_lp_tie END) AS s_t,
           bool_and(choice_lp_1 IS NOT NULL AND choice_lp_2 IS NOT NULL AND choice_lp_tie IS NOT NULL)
               AND count(*) = 2 AS both_lp,
           any_value(CASE WHEN model_a = x THEN len_a ELSE len_b END) AS len_x,
           any_value(CASE WHEN model_a = x THEN len_b ELSE len_a END) AS len_y,
           any_value(CASE WHEN model_a = x THEN answer_a ELSE answer_b END) AS answer_x,
           any_value(CASE WHEN model_a = x THEN answer_b ELSE answer_a END) AS answer_y
    FROM c GROUP BY ALL),
m AS (SELECT *, o_xy IS NOT NULL AND o_yx IS NOT NULL AND o_xy = o_yx AS agree,
             CASE WHEN s_x >= s_y AND s_x >= s_t THEN x WHEN s_y >= s_t THEN y ELSE 'tie' END AS cal FROM g)
"""
    cols = "set_name, question_id, turn, category, judge_name, dimension, x, y, len_x, len_y, answer_x, answer_y"
    if calibrated:
        body = (f"SELECT {cols}, CASE WHEN both_lp THEN cal WHEN agree THEN o_xy ELSE 'tie' END AS outcome,"
                " 1.0 AS weight, agree AS consistent FROM m WHERE both_lp OR (o_xy IS NOT NULL AND o_yx IS NOT NULL)")
    elif policy == "half":
        body = (f"SELECT {cols}, o_xy AS outcome, 1.0 AS weight, true AS consistent FROM m WHERE agree"
                f" UNION ALL SELECT {cols}, o_xy, 0.5, false FROM m WHERE NOT agree AND o_xy IS NOT NULL"
                f" UNION ALL SELECT {cols}, o_yx, 0.5, false FROM m WHERE NOT agree AND o_yx IS NOT NULL")
    else:
        tie = "'tie'" if policy == "inconsistent_tie" else "NULL"
        body = (f"SELECT {cols}, CASE WHEN agree THEN o_xy ELSE {tie} END AS outcome, 1.0 AS weight,"
                " agree AS consistent FROM m WHERE o_xy IS NOT NULL AND o_yx IS NOT NULL"
                + ("" if policy == "inconsistent_tie" else " AND agree"))
    return grouped + body, params


def merged_battles(con, filters: Filters, policy: str) -> list[tuple]:
    sql, params = merged_sql(filters, policy)
    return con.execute(sql, params).fetchall()
