"""A synthetic store for the app's tests and bench/app.py: real schema, fake models and judges.

Battles are drawn in SQL (fast enough for millions of judgment rows): model i has strength i, the
winner follows a logistic of the strength gap, and with probability `flip` a judge answers the
swapped order inconsistently. Both orders and every dimension are stored, exactly as judging.py
stores them, so the app's queries run over the real column shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.config import Suite
from harness.api import rate
from harness.store import Store

CATEGORIES = ("writing", "reasoning", "coding", "math")


def synthetic_suite(n_models: int, judges: tuple[str, ...], dimensions: tuple[str, ...], rounds: int = 20,
                    merge: str = "inconsistent_tie", baseline: str | None = None) -> Suite:
    pairs = {"pairs": {"mode": "baseline", "baseline": baseline}} if baseline else {}
    return Suite.model_validate(pairs | {
        "name": "synthetic",
        "models": [{"name": f"model-{i:02d}", "backend": "hf", "model": f"/synthetic/model-{i:02d}"}
                   for i in range(n_models)],
        "sets": [{"name": "synth"}],
        "judges": [{"name": j, "model": {"name": f"{j}-model", "backend": "hf",
                                         # the first judge runs on model-00's weights: self-preference
                                         "model": "/synthetic/model-00" if k == 0 else f"/synthetic/{j}"},
                    "dimensions": list(dimensions)} for k, j in enumerate(judges)],
        "ratings": {"bootstrap_rounds": rounds, "merge": merge},
    })


def build_store(path: Path, n_models: int = 4, n_battles: int = 60, judges: tuple[str, ...] = ("judge-x", "judge-y"),
                dimensions: tuple[str, ...] = ("accuracy", "helpfulness"), n_questions: int = 12, flip: float = 0.2,
                real_ratings: bool = True, lineage: bool = True, seed: float = 0.42, merge: str = "inconsistent_tie",
                choice_logprobs: bool = False, baseline: str | None = None) -> Store:
    """Judgment rows = n_battles x 2 orders x len(judges) x len(dimensions). `merge`: the suite's
    merge policy; `choice_logprobs`: every row gets choice log-likelihoods (a likelihood-choice
    judge, for `calibrated`), drawn independently of the verdict so calibration decides some
    battles differently. `baseline`: the suite rates win rates and LC win rates against that model
    (every pair is still judged)."""
    store = Store(path)
    suite = synthetic_suite(n_models, judges, dimensions, merge=merge, baseline=baseline)
    with store.write() as con:
        con.execute("SELECT setseed(?)", [seed])
        con.execute(
            "INSERT INTO runs (run_id, suite_name, config_json, harness_version, host, pid, status, started_at,"
            " finished_at, wall_s, n_planned, n_cached, n_generated) VALUES"
            " ('run-1', 'synthetic', ?, '0.1.0', 'bench', 1, 'finished', TIMESTAMP '2025-01-01 10:00:00',"
            " TIMESTAMP '2025-01-01 10:05:00', 300, 100, 0, 100),"
            " ('run-2', 'synthetic', ?, '0.1.0', 'bench', 1, 'failed', TIMESTAMP '2025-01-02 10:00:00',"
            " TIMESTAMP '2025-01-02 10:01:00', 60, 10, 5, 3)",
            [suite.model_dump_json(), suite.model_dump_json()])
        con.execute(
            "INSERT INTO models (name, fingerprint, backend, source, spec_json) SELECT 'model-' || lpad(i::VARCHAR, 2, '0'),"
            " 'fp-' || i, 'hf', '/synthetic', '{}' FROM range(?) t(i)", [n_models])
        con.execute(
            "INSERT INTO questions SELECT 'synth', 'q' || i, (?)[1 + i % ?], CASE WHEN i % 3 = 0 THEN"
            " ['Question ' || i || ': explain the lighthouse problem', 'Follow-up ' || i || ': shorter please']"
            " ELSE ['Question ' || i || ': write about topic ' || i] END, [], [], 'h' || i FROM range(?) t(i)",
            [list(CATEGORIES), len(CATEGORIES), n_questions])
        con.execute(
            "INSERT INTO answers SELECT 'ans-' || m || '-' || q.question_id || '-' || t, 'fp-' || m, 'synth', q.question_id,"
            " t, 'Answer of model ' || m || ' to ' || q.question_id || ' turn ' || t || repeat(' words', (m * 7 + t) % 40),"
            " 10, 20, 'stop', 0.1, '{}', 'run-1', TIMESTAMP '2025-01-01 10:01:00', NULL"
            " FROM questions q, range(?) mm(m), range(1, 3) tt(t) WHERE t <= len(q.turns)", [n_models])
        # distinct (question, turn, pair) battles, a hash-ordered sample of all of them
        con.execute(
            "CREATE TEMP TABLE bb AS SELECT row_number() OVER () AS i, * FROM (SELECT q.question_id AS qid, t AS turn,"
            " x, y FROM questions q, range(1, 3) tt(t), range(?) xx(x), range(?) yy(y)"
            " WHERE t <= len(q.turns) AND x < y ORDER BY hash(q.question_id, t, x, y) LIMIT ?)",
            [n_models, n_models, n_battles])
        con.execute("INSERT INTO judges SELECT j, 'fp-' || j, 'pairwise', '{}', TIMESTAMP '2025-01-01 10:02:00',"
                    " TIMESTAMP '2025-01-01 10:02:00' FROM unnest(?) jj(j)", [list(judges)])
        con.execute(
            "INSERT INTO judgments (judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name, question_id,"
            " turn, model_a, model_b, answer_a, answer_b, dimension, verdict, score, status, attempts, raw_output,"
            # ids as the store makes them: judgment_id = stable_hash([call_id, dimension])
            " run_id, created_at) SELECT sha256('[\"' || sha256(i || j || o) || '\",\"' || d || '\"]'),"
            " sha256(i || j || o), j, 'fp-' || j, 'pairwise',"
            " 'synth', qid, turn, 'model-' || lpad(CASE o WHEN 0 THEN x ELSE y END::VARCHAR, 2, '0'),"
            " 'model-' || lpad(CASE o WHEN 0 THEN y ELSE x END::VARCHAR, 2, '0'),"
            " 'ans-' || CASE o WHEN 0 THEN x ELSE y END || '-' || qid || '-' || turn,"
            " 'ans-' || CASE o WHEN 0 THEN y ELSE x END || '-' || qid || '-' || turn, d,"
            # with probability `flip` the judge answers 'A' whatever the order (a position bias)
            " CASE WHEN random() < ? THEN 'A' WHEN r < 0.1 THEN 'tie'"
            "      WHEN (r - 0.1) / 0.9 < 1 / (1 + exp((y - x) / 3.0)) THEN (CASE o WHEN 0 THEN 'A' ELSE 'B' END)"
            "      ELSE (CASE o WHEN 0 THEN 'B' ELSE 'A' END) END,"
            " NULL, 'ok', 1, 'Reason (' || d || '): answer ' || CASE o WHEN 0 THEN 'one' ELSE 'two' END || ' is clearer.',"
            " 'run-1',"
            " TIMESTAMP '2025-01-01 10:02:00'"
            " FROM (SELECT *, hash(i, d) % 1000 / 1000.0 AS r FROM bb, unnest(?) jj(j), unnest(?) dd(d)),"
            " range(2) oo(o)", [flip, list(judges), list(dimensions)])
        if choice_logprobs:
            con.execute("UPDATE judgments SET choice_lp_1 = -((hash(judgment_id, 1) % 400)::DOUBLE) / 100,"
                        " choice_lp_2 = -((hash(judgment_id, 2) % 400)::DOUBLE) / 100,"
                        " choice_lp_tie = -1.5 - ((hash(judgment_id, 3) % 400)::DOUBLE) / 100")
        if lineage:
            _lineage(con)
        _closed(con, n_models)
    if real_ratings:
        rate(suite, store)
    else:
        _synthetic_ratings(store, n_models, judges, dimensions)
    return store


def _synthetic_ratings(store: Store, n_models: int, judges, dimensions) -> None:
    """Ratings rows shaped like compute_ratings' output, from the true strengths (for big stores)."""
    with store.write() as con:
        con.execute(
            "INSERT INTO ratings (computed_at, suite_name, judge_name, dimension, category, method, model, rating,"
            " ci_low, ci_high, level, battles, merge_policy) SELECT TIMESTAMP '2025-01-01 10:06:00', 'synthetic', j, d, c, m, 'model-' ||"
            " lpad(i::VARCHAR, 2, '0'), 1000 + (i - ?/2) * 20, 1000 + (i - ?/2) * 20 - 15, 1000 + (i - ?/2) * 20 + 15,"
            " 0.95, 1000, 'inconsistent_tie' FROM range(?) t(i), unnest(?) jj(j), unnest(?) dd(d),"
            " unnest(['all', 'writing', 'reasoning', 'coding', 'math']) cc(c), unnest(['bt', 'elo']) mm(m)",
            [n_models, n_models, n_models, n_models, list(judges), list(dimensions)])


def _lineage(con) -> None:
    con.execute(
        "INSERT INTO trained_models (model, parent, method, finetune, recipe_json, data_source, data_hash, data_rows,"
        " base_model_path, steps, wall_s, peak_rss_mb, final_loss) VALUES"
        " ('model-01', 'model-00', 'sft', 'lora', '{}', 'sft.jsonl', 'h1', 100, '/base', 50, 120, 900, 1.2),"
        " ('model-02', 'model-01', 'dpo', 'lora', '{}', 'judgments of judge-x', 'h2', 80, '/base', 40, 100, 950, 0.6)")
    con.execute("INSERT INTO training_log SELECT m, s, 'loss', 2.0 / (1 + s / 10.0) FROM"
                " unnest(['model-01', 'model-02']) mm(m), range(0, 50, 5) ss(s)")
    con.execute(
        "INSERT INTO parent_comparisons (model, parent, suite_name, judge_name, dimension, method, delta, ci_low,"
        " ci_high, computed_at) VALUES ('model-01', 'model-00', 'synthetic', 'judge-x', 'accuracy', 'bt', 25.0,"
        " 5.0, 45.0, TIMESTAMP '2025-01-03'), ('model-02', 'model-01', 'synthetic', 'judge-x', 'accuracy', 'bt', -8.0,"
        " -30.0, 14.0, TIMESTAMP '2025-01-03')")


def _closed(con, n_models: int) -> None:
    con.execute(
        "INSERT INTO closed_tasks SELECT 'rk' || i, 'synthetic', 'model-' || lpad(i::VARCHAR, 2, '0'), 'fp-' || i,"
        " 'arc_easy', 'th', '1', 0, 50, '{}', 'hf', '0.4', 'multiple_choice', 10, 'run-1', now() FROM range(?) t(i)",
        [n_models])
    con.execute("INSERT INTO closed_metrics SELECT 'rk' || i, 'acc', 'none', 0.3 + i / 100, 0.02, true FROM range(?) t(i)",
                [n_models])


if __name__ == "__main__":
    import sys

    s = build_store(Path(sys.argv[1]))
    with s.read() as c:
        print(json.dumps({t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                          for t in ("judgments", "ratings", "answers", "questions")}))
