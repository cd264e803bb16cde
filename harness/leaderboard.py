"""Ratings and judge reliability, computed from stored judgment rows and stored back as rows.

Everything here reads the store, calls pure functions (judges.merge, harness.ratings) and
writes one `ratings` row per (judge, dimension, category, method, model).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import Suite
from harness.ratings import battles_from_rows, bootstrap, length_controlled_win_rate, mean_grades, win_rate_against
from harness.store import Store
from harness.store.queries import now
from judges.merge import JudgmentRow, merge_orders
from judges.parse import choice_logprobs

METHODS = ("bt", "elo")
# Online Elo depends on battle order; the point estimate averages this many shuffled orders.
ELO_ORDERS = 100


@dataclass(frozen=True)
class RatingRow:
    judge_name: str
    dimension: str
    category: str
    method: str
    model: str
    rating: float
    ci_low: float | None
    ci_high: float | None
    level: float | None
    battles: int


def pairwise_rows(store: Store, suite: Suite) -> list[JudgmentRow]:
    """The suite's pairwise judgments among its current models, with each question's category."""
    judges = [j.name for j in suite.judges if j.kind == "pairwise"]
    models = [m.name for m in suite.models]
    if not judges:
        return []
    with store.read() as con:
        rows = con.execute(
            "SELECT j.set_name, j.question_id, j.turn, q.category, j.judge_name, j.dimension, j.model_a,"
            " j.model_b, CASE WHEN j.status = 'ok' THEN j.verdict END, length(aa.text), length(ab.text),"
            " CASE WHEN ? THEN j.raw_output END"
            " FROM judgments j JOIN questions q USING (set_name, question_id)"
            " JOIN answers aa ON aa.answer_id = j.answer_a JOIN answers ab ON ab.answer_id = j.answer_b"
            " WHERE j.kind = 'pairwise' AND list_contains(?, j.judge_name)"
            " AND list_contains(?, j.model_a) AND list_contains(?, j.model_b)",
            [suite.ratings.merge == "calibrated", judges, models, models],
        ).fetchall()
    return [JudgmentRow(*r[:-1], choice_logprobs=choice_logprobs(r[-1])) for r in rows]


def compute_ratings(store: Store, suite: Suite) -> list[RatingRow]:
    """BT and Elo with bootstrap CIs per judge, dimension and category ('all' first); MT-Bench-style
    mean grades for single-grading judges. Stored, replacing nothing: each call appends rows."""
    cfg = suite.ratings
    out: list[RatingRow] = []
    battles = merge_orders(pairwise_rows(store, suite), cfg.merge)
    groups: dict[tuple[str, str], list] = {}
    for battle in battles:
        groups.setdefault((battle.judge_name, battle.dimension), []).append(battle)
    for (judge, dimension), group in sorted(groups.items()):
        categories = ["all"] + sorted({b.category for b in group})
        for category in categories:
            chosen = [b for b in group if category in ("all", b.category)]
            rated = battles_from_rows([(b.model_a, b.model_b, b.winner) for b in chosen], [b.weight for b in chosen])
            for method in METHODS:
                extra = {"n_orders": ELO_ORDERS} if method == "elo" else {}
                intervals = bootstrap(rated, rater=method, rounds=cfg.bootstrap_rounds, seed=cfg.seed,
                                      level=cfg.level, **extra)
                out += [RatingRow(judge, dimension, category, method, model, iv.point, iv.low, iv.high, iv.level,
                                  len(chosen)) for model, iv in intervals.items()]
            if suite.pairs.mode == "baseline":  # AlpacaEval-style: each model's win rate vs the baseline
                rates = win_rate_against(rated, suite.pairs.baseline, rounds=cfg.bootstrap_rounds, seed=cfg.seed,
                                         level=cfg.level)
                out += [RatingRow(judge, dimension, category, "win_rate", model, iv.point, iv.low, iv.high,
                                  iv.level, len(chosen)) for model, iv in rates.items()]
                out += _length_controlled(judge, dimension, category, chosen, suite.pairs.baseline)
    out += _grade_rows(store, suite)
    _store(store, suite, out)
    return out


def _length_controlled(judge, dimension, category, battles, baseline) -> list[RatingRow]:
    """AlpacaEval-2-style LC win rate vs the baseline (a fraction, like win_rate; no CI). Under the
    `half` policy the two half battles of a pair enter as two observations."""
    rows = []
    for model in sorted({b.model_a for b in battles} | {b.model_b for b in battles} - {baseline}):
        mine = [b for b in battles if {b.model_a, b.model_b} == {model, baseline}]
        if len(mine) < 2:
            continue
        model_is_a = [b.model_a == model for b in mine]
        model_len = [b.len_a if a else b.len_b for b, a in zip(mine, model_is_a)]
        base_len = [b.len_b if a else b.len_a for b, a in zip(mine, model_is_a)]
        score = [b.score_for(model) for b in mine]
        lc = length_controlled_win_rate(model_len, base_len, score)
        rows.append(RatingRow(judge, dimension, category, "lc_win_rate", model, lc.lc_win_rate / 100,
                              None, None, None, len(mine)))
    return rows


def _grade_rows(store: Store, suite: Suite) -> list[RatingRow]:
    judges = [j.name for j in suite.judges if j.kind == "single"]
    if not judges:
        return []
    with store.read() as con:
        rows = con.execute(
            "SELECT judge_name, model_a, turn, score FROM judgments WHERE kind = 'single' AND status = 'ok'"
            " AND list_contains(?, judge_name)", [judges]).fetchall()
    out = []
    for judge in judges:
        mine = [(m, t, s) for j, m, t, s in rows if j == judge]
        for model, by_turn in mean_grades(mine).items():
            n = sum(1 for m, _, _ in mine if m == model)
            out += [RatingRow(judge, "overall", f"turn {t}" if t != "all" else "all", "mean_grade", model,
                              v, None, None, None, n) for t, v in by_turn.items()]
    return out


def _store(store: Store, suite: Suite, rows: list[RatingRow]) -> None:
    if not rows:
        return
    stamp = now()
    with store.write() as con:
        con.executemany(
            "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(stamp, suite.name, r.judge_name, r.dimension, r.category, r.method, r.model, r.rating,
              r.ci_low, r.ci_high, r.level, r.battles, suite.ratings.merge) for r in rows],
        )


@dataclass(frozen=True)
class Reliability:
    judge_name: str
    calls: int
    parse_failure_rate: float
    swap_flip_rate: float | None  # of battles with both orders parsed, the share whose orders disagree
    first_position_win_rate: float | None  # of parsed non-tie verdicts, the share for position A
    longer_answer_win_rate: float | None  # of parsed non-tie verdicts between unequal lengths


def self_preference(store: Store, suite: Suite, judge_name: str) -> dict[str, float]:
    """Win rate (ties count half) under `judge_name` of each candidate that shares the judge's own
    model: compare it with the same candidate's win rate under other judges to see self-preference."""
    spec = next(j for j in suite.judges if j.name == judge_name)
    same = {m.name for m in suite.models if m.model == spec.model.model}
    battles = [b for b in merge_orders(pairwise_rows(store, suite), suite.ratings.merge) if b.judge_name == judge_name]
    result = {}
    for model in sorted(same):
        mine = [b for b in battles if model in (b.model_a, b.model_b)]
        won = sum(b.weight * b.score_for(model) for b in mine)
        total = sum(b.weight for b in mine)
        if total:
            result[model] = won / total
    return result


def judge_reliability(store: Store, judge_name: str) -> Reliability:
    """How far a judge can be trusted, from its own stored pairwise judgments (all dimensions)."""
    with store.read() as con:
        calls, unparsed = con.execute(
            "SELECT count(DISTINCT call_id), count(DISTINCT call_id) FILTER (WHERE status = 'unparsed')"
            " FROM judgments WHERE judge_name = ?", [judge_name]).fetchone()
        verdicts = con.execute(
            "SELECT j.verdict, length(a.text), length(b.text) FROM judgments j"
            " JOIN answers a ON a.answer_id = j.answer_a JOIN answers b ON b.answer_id = j.answer_b"
            " WHERE j.judge_name = ? AND j.status = 'ok' AND j.verdict IN ('A', 'B')", [judge_name]).fetchall()
        flips = con.execute(
            "SELECT count(*) FILTER (WHERE n_outcomes > 1), count(*) FROM ("
            "  SELECT count(DISTINCT CASE verdict WHEN 'tie' THEN 'tie' WHEN 'A' THEN model_a ELSE model_b END)"
            "    AS n_outcomes, count(*) AS n FROM judgments WHERE judge_name = ? AND status = 'ok'"
            "  GROUP BY set_name, question_id, turn, dimension, least(model_a, model_b), greatest(model_a, model_b)"
            ") WHERE n = 2", [judge_name]).fetchone()
    first = [v == "A" for v, _, _ in verdicts]
    unequal = [(v == "A") == (la > lb) for v, la, lb in verdicts if la != lb]
    return Reliability(
        judge_name, calls, unparsed / calls if calls else 0.0,
        flips[0] / flips[1] if flips[1] else None,
        sum(first) / len(first) if first else None,
        sum(unequal) / len(unequal) if unequal else None,
    )
