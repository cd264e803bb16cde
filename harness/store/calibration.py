"""SQL for calibration (harness.calibration): every current sample of the battles that count.

Which battles count, and on which answers, is harness.battles' rule (harness/store/battles.py);
this only adds, for those battles' exact answer pairs, every row of the judge's *current*
fingerprints (all its samples, both orders): the 2k verdicts whose diversity entropy ranks a
battle for people. A judge with one current fingerprint gives back exactly the counted rows.
"""

from __future__ import annotations

from harness.store.battles import CURRENT

# (set, question, turn, dimension, answer shown as A, answer shown as B) of a counted row
CALL_STRUCT = ("struct_pack(s := j.set_name, q := j.question_id, t := j.turn, d := j.dimension,"
               " a := j.answer_a, b := j.answer_b)")
CALL_STRUCT_TYPE = "STRUCT(s VARCHAR, q VARCHAR, t INTEGER, d VARCHAR, a VARCHAR, b VARCHAR)"


def current_samples(con, judge_name: str, calls: list[tuple[str, str, int, str, str, str]]) -> list[tuple]:
    """(set, question, turn, dimension, model_a, model_b, answer_a, answer_b, verdict or NULL when
    unparsed, lp_1, lp_2, lp_tie, judge_fingerprint) of every pairwise row of `judge_name` under one
    of its current fingerprints whose (set, question, turn, dimension, answer_a, answer_b) is in
    `calls`; the latest row per fingerprint and call (a rerun of the same sample replaces it)."""
    if not calls:
        return []
    sql = f"""
WITH {CURRENT}
SELECT j.set_name, j.question_id, j.turn, j.dimension, j.model_a, j.model_b, j.answer_a, j.answer_b,
       CASE WHEN j.status = 'ok' THEN j.verdict END, j.choice_lp_1, j.choice_lp_2, j.choice_lp_tie,
       j.judge_fingerprint
FROM judgments j JOIN current_judges c ON c.name = j.judge_name AND c.fingerprint = j.judge_fingerprint
WHERE j.kind = 'pairwise' AND j.judge_name = ?
  AND {CALL_STRUCT} IN (SELECT unnest(?::{CALL_STRUCT_TYPE}[]))
QUALIFY row_number() OVER (PARTITION BY j.judge_fingerprint, j.set_name, j.question_id, j.turn, j.dimension,
                                        j.answer_a, j.answer_b ORDER BY j.created_at DESC, j.judgment_id) = 1
ORDER BY j.set_name, j.question_id, j.turn, j.dimension, j.model_a, j.judge_fingerprint
"""
    return con.execute(sql, [judge_name, [dict(zip("sqtdab", c)) for c in calls]]).fetchall()


def judge_stamp(con, judge_name: str) -> tuple:
    """A cheap stamp that changes whenever `judge_name`'s rows do (added, rerun or undone): what a
    cached priority of its battles is keyed on, so people's verdicts do not recompute it."""
    return tuple(con.execute("SELECT count(*), max(created_at), max(judgment_id) FROM judgments WHERE judge_name = ?",
                             [judge_name]).fetchone())
