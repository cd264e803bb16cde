"""Plain SQL reads for the app (and the one write it makes): rows back as dicts.

Which judgments count and how battles merge is not decided here: the page totals below add up
harness.store.battles' own queries (its counted rows, its merged battles under the suite's policy)
in SQL, so a million judgments never travel into Python; harness.views documents each number and
tests/test_app.py pins every one to the Python path of harness.battles.
"""

from __future__ import annotations

from harness.models.base import stable_hash
from harness.store import Store
from harness.store.battles import OUTCOME, Filters, counted_sql, merged_sql
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
            "SELECT judgment_id, call_id, judge_fingerprint, turn, judge_name AS judge, dimension, model_a AS shown_first, model_b AS shown_second,"
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


# --- totals over the suite's merged battles (harness.store.battles decides which, and how merged) ------
SCORE = "CASE WHEN outcome = {me} THEN 1.0 WHEN outcome = 'tie' THEN 0.5 ELSE 0.0 END"  # ties count half
DECISION_KEY = "set_name, question_id, turn, dimension, x, y"  # a battle, without its judge
FOUGHT = "SELECT * REPLACE (weight::DOUBLE AS weight) FROM ({sql})"  # merged battles; weights add up as floats


# Bodies over a relation named `fought` (merged battles) or `counted` (counted rows): each reads
# them from its own query, or a page's several from one temp table per read (pairwise_report,
# judges_report), so the rule runs once per page.
PAIRWISE = """
sides AS (SELECT x AS model, y AS opponent, outcome, weight FROM fought
          UNION ALL SELECT y, x, outcome, weight FROM fought)
SELECT model, opponent, count(*) AS battles, coalesce(sum(weight) FILTER (outcome = model), 0.0) AS wins,
       coalesce(sum(weight) FILTER (outcome = 'tie'), 0.0) AS ties,
       coalesce(sum(weight) FILTER (outcome = opponent), 0.0) AS losses
FROM sides GROUP BY ALL ORDER BY model, opponent"""

CATEGORIES = f"""
sides AS (SELECT category, x AS model, outcome, weight FROM fought
          UNION ALL SELECT category, y, outcome, weight FROM fought)
SELECT category, model, count(*) AS battles, sum(weight * {SCORE.format(me="model")}) / sum(weight) AS win_rate
FROM sides GROUP BY ALL ORDER BY category, model"""


def pairwise_cells(store: Store, filters: Filters, policy: str) -> list[dict]:
    """Per ordered (model, opponent): battles, and the weight of its wins, ties and losses."""
    fought, params = _fought(filters, policy)
    with store.read() as con:
        return rows_as_dicts(con, f"WITH {fought}, {PAIRWISE}", params)


def category_cells(store: Store, filters: Filters, policy: str) -> list[dict]:
    """Per (category, model): battles against any opponent and the win rate (weighted, ties half)."""
    fought, params = _fought(filters, policy)
    with store.read() as con:
        return rows_as_dicts(con, f"WITH {fought}, {CATEGORIES}", params)


def pairwise_report(store: Store, filters: Filters, policy: str, category: str | None) -> dict[str, list[dict]]:
    """The Pairwise page's totals from one read: pairwise_cells of the battles in `category` (None:
    all) and category_cells of all of them (a category narrows battles by their question, so it
    narrows the merged battles as it narrows their rows)."""
    sql, params = merged_sql(filters, policy)
    with store.read() as con:
        con.execute(f"CREATE TEMP TABLE page_fought AS {FOUGHT.format(sql=sql)}", params)
        in_category = "fought AS (SELECT * FROM page_fought WHERE ?::VARCHAR IS NULL OR category = ?)"
        return {"cells": rows_as_dicts(con, f"WITH {in_category}, {PAIRWISE}", [category, category]),
                "categories": rows_as_dicts(con, f"WITH fought AS (SELECT * FROM page_fought), {CATEGORIES}")}


WIN_RATES = f"""
SELECT m.model, judge_name AS judge, count(*) AS battles,
       sum(weight * {SCORE.format(me="m.model")}) / sum(weight) AS win_rate
FROM fought JOIN (SELECT unnest(?::VARCHAR[]) AS model) m ON m.model IN (x, y)
GROUP BY ALL HAVING sum(weight) > 0 ORDER BY m.model, judge"""

# A judge's decision on a battle: each winner it named with its share of the battle (1, or 1/2
# for each half of a `half` battle whose orders disagree), and whether it flipped under swap;
# `{more}` adds UNION ALL parts: people's verdicts (share 1), or flips of another merge.
DECISIONS = f"""
decided AS (
    SELECT judge_name AS judge, {DECISION_KEY}, any_value(category) AS category, sum(weight) AS total,
           list((outcome, weight) ORDER BY outcome) AS winners, bool_or({{flipped}}) AS flipped
    FROM fought GROUP BY ALL),
decisions AS (
    SELECT judge, {DECISION_KEY}, category, list_transform(winners, lambda w: (w[1], w[2] / total)) AS decision,
           flipped
    FROM decided{{more}})"""

# the chance two decisions name the same winner: the sum over winners of the product of shares
AGREEMENT = f"""
SELECT a.judge, b.judge AS other, count(*) AS items,
       sum(list_sum(list_transform(a.decision, lambda p: p[2] * coalesce(list_sum(list_transform(
           list_filter(b.decision, lambda q: q[1] = p[1]), lambda q: q[2])), 0.0)))) / count(*) AS agreement
FROM decisions a JOIN decisions b USING ({DECISION_KEY}) WHERE a.judge <> b.judge
GROUP BY ALL ORDER BY judge, other"""

RELIABILITY = f"""
c AS (SELECT *, CASE WHEN status = 'ok' THEN verdict END AS v FROM counted),
calls AS (SELECT judge_name, count(*) AS calls, count(*) FILTER (NOT parsed) AS unparsed_calls
          FROM (SELECT judge_name, call_id, bool_and(v IS NOT NULL) AS parsed FROM c GROUP BY ALL) GROUP BY ALL),
orders AS (SELECT judge_name, count(*) FILTER (n = 2) AS both_orders, count(*) FILTER (n = 2 AND flipped) AS flipped
           FROM (SELECT judge_name, count(o) AS n, min(o) <> max(o) AS flipped
                 FROM (SELECT *, {OUTCOME.replace("j.", "")} AS o FROM c) GROUP BY judge_name, {DECISION_KEY})
           GROUP BY ALL),
verdicts AS (SELECT judge_name, count(*) FILTER (v IN ('A', 'B')) AS decided, count(*) FILTER (v = 'A') AS first_wins,
                    count(*) FILTER (v IN ('A', 'B') AND len_a <> len_b) AS unequal,
                    count(*) FILTER (v IN ('A', 'B') AND len_a <> len_b AND (v = 'A') = (len_a > len_b)) AS longer_wins
             FROM c GROUP BY ALL)
SELECT * FROM calls JOIN orders USING (judge_name) JOIN verdicts USING (judge_name) ORDER BY judge_name"""


def _fought(filters: Filters, policy: str) -> tuple[str, list]:
    sql, params = merged_sql(filters, policy)
    return f"fought AS ({FOUGHT.format(sql=sql)})", params


def _people(people: Filters | None) -> tuple[str, list]:
    """DECISIONS' `more` part of people's parsed verdicts that count: the winner they name, share 1."""
    if people is None:
        return "", []
    sql, params = counted_sql(people)
    return (f" UNION ALL SELECT judge_name, {DECISION_KEY}, category, [(CASE verdict WHEN 'A' THEN model_a"
            f" WHEN 'B' THEN model_b ELSE 'tie' END, 1.0::DOUBLE)], false FROM ({sql})"
            " WHERE status = 'ok' AND verdict <> ''"), params


def win_rates(store: Store, filters: Filters, policy: str, models: list[str]) -> list[dict]:
    """Per (model of `models`, judge): battles and weighted win rate (ties half) against any opponent."""
    fought, params = _fought(filters, policy)
    with store.read() as con:
        return rows_as_dicts(con, f"WITH {fought} {WIN_RATES}", params + [models])


def decisions(store: Store, filters: Filters, policy: str) -> list[dict]:
    """Per judge, battle and winner it named: the winner's share of the battle."""
    fought, params = _fought(filters, policy)
    with store.read() as con:
        return rows_as_dicts(con, f"""WITH {fought}, {DECISIONS.format(flipped="false", more="")}
SELECT * EXCLUDE (decision, category, flipped), unnest(decision)[1] AS outcome, unnest(decision)[2] AS share
FROM decisions ORDER BY ALL""", params)


def agreement(store: Store, filters: Filters, policy: str, people: Filters | None) -> list[dict]:
    """Per ordered pair of judges (people included with `people`): battles both decided, and the
    share of them where they name the same winner (a split `half` battle agrees by halves)."""
    fought, params = _fought(filters, policy)
    people_part, people_params = _people(people)
    with store.read() as con:
        return rows_as_dicts(con, f"WITH {fought}, {DECISIONS.format(flipped='false', more=people_part)} {AGREEMENT}",
                             params + people_params)


def reliability_counts(store: Store, filters: Filters) -> list[dict]:
    """Per LLM judge with counted rows, the counts judges.reliability divides (from the same rows):
    calls and calls with a dimension unparsed; battles with both orders parsed and those whose
    orders disagree; parsed A/B verdicts, those for position A; those between answers of unequal
    length, and those for the longer one."""
    sql, params = counted_sql(filters)
    with store.read() as con:
        return rows_as_dicts(con, f"WITH counted AS ({sql}), {RELIABILITY}", params)


def judges_report(store: Store, every_judge: Filters, suite: Filters, policy: str, dimension: str | None,
                  people: Filters, models: list[str]) -> dict[str, list[dict]]:
    """The Judges page's totals from one read that applies the rule once: reliability_counts of
    `every_judge`, and of the suite's battles (those counted rows narrowed to `suite`, merged under
    `policy`) agreement on `dimension` (None: all) with `people`, and win_rates of `models`."""
    sql, params = counted_sql(every_judge)
    merged, merged_params = merged_sql(suite, policy, counted="every_counted")
    people_part, people_params = _people(people)
    with store.read() as con:
        con.execute(f"CREATE TEMP TABLE every_counted AS SELECT * EXCLUDE (judgment_id, created_at) FROM ({sql})",
                    params)
        con.execute(f"CREATE TEMP TABLE suite_fought AS {FOUGHT.format(sql=merged)}", merged_params)
        in_dimension = "fought AS (SELECT * FROM suite_fought WHERE ?::VARCHAR IS NULL OR dimension = ?)"
        return {
            "reliability": rows_as_dicts(con, f"WITH counted AS (SELECT * FROM every_counted), {RELIABILITY}"),
            "agreement": rows_as_dicts(
                con, f"WITH {in_dimension}, {DECISIONS.format(flipped='false', more=people_part)} {AGREEMENT}",
                [dimension, dimension] + people_params),
            "win_rates": rows_as_dicts(con, f"WITH fought AS (SELECT * FROM suite_fought) {WIN_RATES}", [models]),
        }


def battle_keys(store: Store, filters: Filters, seed: int) -> list[tuple]:
    """(set, question, turn, x, y) of every battle the filters' judges have a pairwise row on (counted
    or not), in a fixed order per seed (sha256 of the battle and the seed)."""
    extra, params = filters.sql()
    with store.read() as con:
        return con.execute(
            "SELECT * FROM (SELECT DISTINCT j.set_name, j.question_id, j.turn, least(j.model_a, j.model_b) AS x,"
            " greatest(j.model_a, j.model_b) AS y FROM judgments j JOIN questions q USING (set_name, question_id)"
            f" WHERE j.kind = 'pairwise'{extra})"
            " ORDER BY sha256(concat_ws(chr(31), set_name, question_id, turn, x, y, ?)),"
            " set_name, question_id, turn, x, y", params + [seed]
        ).fetchall()


def battle_flags(store: Store, filters: Filters, policy: str) -> list[dict]:
    """Per battle (set, question, turn, x, y) a judge fought or contradicted itself on under swap:
    `flip` (a judge's two parsed orders disagree: inconsistent_tie's inconsistent battles, also
    where the suite's policy drops them), `disagree` (on some dimension the judges' merged winners
    differ), its category and the dimensions involved."""
    fought, params = _fought(filters, policy)
    decided = DECISIONS.format(flipped="NOT consistent", more="")
    if policy != "inconsistent_tie":  # flips are inconsistent_tie's inconsistent battles, merged again
        swap_sql, swap_params = merged_sql(filters, "inconsistent_tie")
        decided = DECISIONS.format(flipped="false", more=f" UNION ALL SELECT judge_name, {DECISION_KEY}, category,"
                                   f" NULL, true FROM ({swap_sql}) WHERE NOT consistent")
        params = params + swap_params
    with store.read() as con:
        return rows_as_dicts(con, f"""
WITH {fought}, {decided},
per_dimension AS (
    SELECT {DECISION_KEY}, any_value(category) AS category, count(DISTINCT decision) > 1 AS disagree,
           bool_or(flipped) AS flip FROM decisions GROUP BY ALL)
SELECT set_name, question_id, turn, x, y, any_value(category) AS category, bool_or(flip) AS flip,
       bool_or(disagree) AS disagree, list_sort(list(dimension)) AS dimensions
FROM per_dimension GROUP BY ALL ORDER BY ALL""", params)


# --- what changed, people's verdicts as a list, undoing them, answers' cost ----------------------------
def data_version(store: Store) -> tuple:
    """A cheap stamp that changes whenever anything a page shows changes (judgments added, edited or
    undone, ratings stored, runs started or ended, answers, training): the app's cache key."""
    with store.read() as con:
        have = tables(con)
        parts = ["(SELECT count(*) FROM judgments)", "(SELECT max(created_at) FROM judgments)",
                 "(SELECT max(computed_at) FROM ratings)", "(SELECT count(*) FROM answers)",
                 "(SELECT list(status ORDER BY run_id) FROM runs)"]
        parts += [f"(SELECT count(*) FROM {t})" for t in ("training_log", "parent_comparisons", "closed_metrics")
                  if t in have]
        return tuple(con.execute(f"SELECT {', '.join(parts)}").fetchone())


HUMAN_VERDICTS = """
SELECT annotator, set_name, question_id, turn, least(model_a, model_b) AS x, greatest(model_a, model_b) AS y,
       dimension, model_a AS shown_first, model_b AS shown_second, verdict,
       CASE verdict WHEN 'A' THEN model_a WHEN 'B' THEN model_b ELSE 'tie' END AS winner,
       note, queue_reason, answer_a, answer_b, created_at
FROM judgments WHERE judge_name LIKE 'human:%' AND (?::VARCHAR IS NULL OR judge_name = 'human:' || ?)
ORDER BY created_at DESC, set_name, question_id, turn, x, y, dimension"""


def human_verdicts(store: Store, annotator: str | None = None) -> list[dict]:
    """Every stored verdict of people (one person's with `annotator`), newest first: one row per
    battle and dimension, with the order it was shown in and the winner it names."""
    with store.read() as con:
        return rows_as_dicts(con, HUMAN_VERDICTS, [annotator, annotator])


def delete_human_verdicts(store: Store, annotator: str, set_name: str, question_id: str, turn: int, x: str,
                          y: str) -> int:
    """Undo: remove `annotator`'s verdicts (every dimension, either order) on one battle; returns
    how many rows went. The battle counts with the judges' verdicts again, and is back in the queue."""
    where = ("judge_name = ? AND set_name = ? AND question_id = ? AND turn = ? AND least(model_a, model_b) = ?"
             " AND greatest(model_a, model_b) = ?")
    params = [HUMAN_PREFIX + annotator, set_name, question_id, turn, min(x, y), max(x, y)]
    with store.write() as con:
        (n,) = con.execute(f"SELECT count(*) FROM judgments WHERE {where}", params).fetchone()
        con.execute(f"DELETE FROM judgments WHERE {where}", params)
    return n


def answer_costs(store: Store, answer_ids: list[str]) -> dict[str, dict]:
    """answer id -> prompt and completion tokens, finish reason, latency and when it was made."""
    with store.read() as con:
        rows = rows_as_dicts(con, "SELECT answer_id, prompt_tokens, completion_tokens, finish_reason, latency_s,"
                                  " created_at FROM answers WHERE answer_id IN (SELECT unnest(?::VARCHAR[]))",
                             [answer_ids])
    return {r.pop("answer_id"): r for r in rows}


def question_references(store: Store, set_name: str, question_id: str) -> list[str]:
    with store.read() as con:
        row = con.execute("SELECT reference_answers FROM questions WHERE set_name = ? AND question_id = ?",
                          [set_name, question_id]).fetchone()
    return list(row[0]) if row else []

