"""harness.battles: which judgments count, pinned three ways.

- The rule itself, written out in plain Python below (`reference_counted`), against the store's SQL.
- judges.merge's policies (Python) against their SQL fast path, over random stores that hold
  several fingerprints per model and judge, both orders, unparsed rows, likelihoods and people.
- The everyday scenarios that once broke it, through the real pipeline (tests/test_one_truth.py).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import datetime, timedelta

import pytest

from harness.api import judge_reliability
from harness.battles import Selection, battles, battles_fast, counted_rows, human_rows
from harness.store import Store
from harness.store.battles import counted_sql, merged_sql
from harness.views import reliability
from judges.merge import POLICIES

N_STORES = 200
T0 = datetime(2026, 1, 1)


def _ts(rng: random.Random) -> datetime:
    return T0 + timedelta(minutes=rng.randrange(6))  # few distinct stamps: ties must break the same way


def random_store_rows(rng: random.Random, p: str = "") -> dict[str, list[tuple]]:
    """Rows for models, questions, answers, judges and judgments of one random store. Every name
    starts with `p`, so many random stores can share one file without touching each other (each
    part of the rule partitions by model, judge or set name)."""
    models = [f"{p}m{i}" for i in range(rng.randint(2, 4))]
    fps = {m: [f"{m}-fp{k}" for k in range(rng.randint(1, 2))] for m in models}
    questions = [(p + s, f"q{i}", rng.choice(["math", "writing"])) for s in ("s1", "s2") for i in range(rng.randint(1, 2))]
    answers = {}  # (fp, set, question, turn, params) -> (answer_id, text)
    for m in models:
        for fp in fps[m]:
            for s, qid, _ in questions:
                for turn in (1, 2):
                    for params in ("p0", "p1")[: rng.randint(1, 2)]:
                        if rng.random() < 0.9:
                            answers[(fp, s, qid, turn, params)] = (f"{fp}-{s}-{qid}-{turn}-{params}",
                                                                   "x" * rng.randint(1, 30))
    judge_fps = {p + j: [f"{p}{j}-fp{k}" for k in range(rng.randint(1, 2))] for j in ("j1", "j2")}
    rows = {"models": [], "questions": [], "answers": [], "judges": [], "judgments": []}
    for m in models:
        for fp in fps[m]:
            rows["models"].append((m, fp, "hf", "src", "{}", _ts(rng), _ts(rng)))
    for s, qid, cat in questions:
        rows["questions"].append((s, qid, cat, ["t1", "t2"], [], [], "h"))
    for (fp, s, qid, turn, params), (aid, text) in answers.items():
        rows["answers"].append((aid, fp, s, qid, turn, text, 1, 1, "stop", 0.1, params, "run", _ts(rng)))
    for j, jfps in judge_fps.items():
        for fp in jfps:
            rows["judges"].append((j, fp, "pairwise", "{}", T0, _ts(rng)))
    by_place: dict[tuple, list[tuple[str, str]]] = {}
    for (fp, s, qid, turn, _), (aid, _) in answers.items():
        by_place.setdefault((s, qid, turn, fp.rsplit("-", 1)[0]), []).append((aid, fp))
    judges = [(j, fp) for j, jfps in judge_fps.items() for fp in jfps] + [(f"human:{p}ann", "h"),
                                                                          (f"human:{p}bob", "h")]
    n = 0
    for _ in range(rng.randint(10, 60)):
        judge, jfp = rng.choice(judges)
        s, qid, _ = rng.choice(questions)
        turn = rng.choice((1, 2))
        a, b = rng.sample(models, 2)
        if not by_place.get((s, qid, turn, a)) or not by_place.get((s, qid, turn, b)):
            continue
        (aa, _), (ab, _) = rng.choice(by_place[(s, qid, turn, a)]), rng.choice(by_place[(s, qid, turn, b)])
        orders = [(a, b, aa, ab), (b, a, ab, aa)] if rng.random() < 0.7 else [(a, b, aa, ab)]
        likely = judge == p + "j2" and rng.random() < 0.9  # j2 is a likelihood-choice judge
        for dim in rng.sample(["accuracy", "language"], rng.randint(1, 2)):
            for ma, mb, ida, idb in orders:
                n += 1
                verdict = rng.choice(["A", "B", "tie", None])
                lps = tuple(round(rng.uniform(-3, 0), 1) for _ in range(3)) if likely else (None, None, None)
                rows["judgments"].append((f"{p}jid{n:05d}", f"{p}call{n:05d}", judge, jfp, "pairwise", s, qid, turn, ma, mb, ida, idb,
                                          dim, verdict, None, "ok" if verdict else "unparsed", 1, "raw", "run",
                                          _ts(rng), *lps))
    return rows


COLUMNS = {
    "models": "name, fingerprint, backend, source, spec_json, first_seen, last_used",
    "questions": "set_name, question_id, category, turns, reference_answers, tags, content_hash",
    "answers": ("answer_id, model_fingerprint, set_name, question_id, turn, text, prompt_tokens, completion_tokens,"
                " finish_reason, latency_s, params_json, run_id, created_at"),
    "judges": "name, fingerprint, kind, spec_json, first_seen, last_used",
    "judgments": ("judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name, question_id, turn, model_a,"
                  " model_b, answer_a, answer_b, dimension, verdict, score, status, attempts, raw_output, run_id,"
                  " created_at, choice_lp_1, choice_lp_2, choice_lp_tie"),
}


def fill(store: Store, rows: dict[str, list[tuple]]) -> None:
    import pandas as pd  # a bulk insert: executemany takes a minute for the 200 stores' rows

    with store.write() as con:
        for table, columns in COLUMNS.items():
            con.execute(f"DELETE FROM {table}")
            if rows[table]:
                frame = pd.DataFrame(rows[table], columns=[c.strip() for c in columns.split(",")])  # noqa: F841
                con.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM frame")


def many_random_stores(rng: random.Random, n: int) -> dict[str, list[tuple]]:
    """`n` random stores side by side (prefixes s000-, s001-, ...), filled in one transaction."""
    rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    for i in range(n):
        for table, part in random_store_rows(rng, f"s{i:03d}-").items():
            rows[table] += part
    return rows


def reference_counted(rows: dict[str, list[tuple]], humans: bool) -> set[tuple]:
    """The rule, in plain Python: current model fingerprint = latest used (ties: smallest
    fingerprint); current judge fingerprints = all registered at the judge's latest stamp; per
    battle the latest answer pair; per order (per battle, for people) the latest row."""
    model_fp = {}
    for name, fp, *_, last in sorted(rows["models"], key=lambda r: (r[6], [-ord(c) for c in r[1]])):
        model_fp[name] = fp
    latest_judge = {}
    for name, fp, _, _, _, last in rows["judges"]:
        latest_judge[name] = max(latest_judge.get(name, last), last)
    judge_fps = {(name, fp) for name, fp, _, _, _, last in rows["judges"] if last == latest_judge[name]}
    answer_fp = {r[0]: r[1] for r in rows["answers"]}
    questions = {(r[0], r[1]) for r in rows["questions"]}
    candidates = []
    for r in rows["judgments"]:
        (jid, _, judge, jfp, _, s, qid, turn, ma, mb, aa, ab, dim, *_rest) = r
        created = r[19]
        is_human = judge.startswith("human:")
        if is_human != humans or (s, qid) not in questions or aa not in answer_fp or ab not in answer_fp:
            continue
        if not is_human and (judge, jfp) not in judge_fps:
            continue
        if answer_fp[aa] != model_fp.get(ma) or answer_fp[ab] != model_fp.get(mb):
            continue
        pair = aa + "|" + ab if ma < mb else ab + "|" + aa
        candidates.append(((judge, s, qid, turn, dim, min(ma, mb), max(ma, mb)), "" if is_human else ma,
                           created, pair, jid, r))
    latest_pair = {}
    for key, _, created, pair, _, _ in candidates:
        latest_pair[key] = max(latest_pair.get(key, (created, pair)), (created, pair))
    best = {}
    for key, order, created, pair, jid, r in candidates:
        if pair != latest_pair[key][1]:
            continue
        rank = (created, [-ord(c) for c in jid])
        if (key, order) not in best or rank > best[(key, order)][0]:
            best[(key, order)] = (rank, r)
    return {r[0] for _, r in best.values()}


def _stored_ids(store: Store, humans: bool) -> set[str]:
    from harness.store.battles import Filters, counted_sql

    sql, params = counted_sql(Filters(humans=humans))
    with store.read() as con:
        return {r[0] for r in con.execute(f"SELECT judgment_id FROM ({sql})", params).fetchall()}


def _multiset(bs) -> list[tuple]:
    return sorted((b.judge_name, b.set_name, b.question_id, b.turn, b.dimension, b.model_a, b.model_b, b.winner,
                   b.weight, b.consistent, b.category, b.len_a, b.len_b, b.answer_a, b.answer_b) for b in bs)


def test_sql_counts_the_rule_and_merges_as_python_over_random_stores(tmp_path):
    store = Store(tmp_path / "random.duckdb")
    rng = random.Random(20261201)
    rows = many_random_stores(rng, N_STORES)
    fill(store, rows)
    for humans in (False, True):
        assert _stored_ids(store, humans) == reference_counted(rows, humans)
    seen = {"rows": len(rows["judgments"]), "superseded": len(rows["judgments"]) - len(_stored_ids(store, False))
            - len(_stored_ids(store, True)), "people": len(human_rows(store)), "half": 0, "calibrated_decided": 0}
    for policy in POLICIES:
        python, fast = battles(store, policy=policy), battles_fast(store, policy=policy)
        assert _multiset(python) == _multiset(fast), policy
        assert _multiset(battles(store, policy=policy, humans=True)) == _multiset(
            battles_fast(store, policy=policy, humans=True)), policy
        seen[policy] = len(python)
        seen["half"] += policy == "half" and sum(b.weight == 0.5 for b in python)
        seen["calibrated_decided"] += policy == "calibrated" and sum(not b.consistent and b.winner != "tie"
                                                                     for b in python)
    # Every branch was exercised in every one of the N_STORES stores' union, or the equality proves little.
    assert all(v > 100 for v in seen.values()), seen
    assert len({r[0].split("-")[0] for r in rows["models"]}) == N_STORES


def _merged_rows(store: Store, selection: Selection, policy: str, wider: Selection | None = None) -> list[tuple]:
    """merged_sql's rows for `selection`; with `wider`, merged from a table of `wider`'s counted rows
    narrowed to `selection` (the app's one pass of the rule for a whole page)."""
    with store.read() as con:
        if wider is None:
            return sorted(con.execute(*merged_sql(selection, policy)).fetchall())
        sql, params = counted_sql(wider)
        con.execute(f"CREATE TEMP TABLE wide AS {sql}", params)
        return sorted(con.execute(*merged_sql(selection, policy, counted="wide")).fetchall())


def test_a_selection_narrows_both_paths_alike(tmp_path):
    store = Store(tmp_path / "narrow.duckdb")
    rng = random.Random(7)
    for _ in range(5):
        fill(store, random_store_rows(rng))
        some = sorted({(b.set_name, b.question_id, b.turn, b.model_a, b.model_b) for b in battles(store)})[::3]
        for selection in (Selection(judges=("j2",)), Selection(models=("m0", "m1")), Selection(sets=("s1",)),
                          Selection(dimension="language", turn=1), Selection(category="math"),
                          Selection(questions=("q1",)), Selection(battles=tuple(some)),
                          Selection(sets=("s2",), questions=("q0",), models=("m1", "m2"))):
            python = battles(store, selection, "calibrated")
            assert _multiset(python) == _multiset(battles_fast(store, selection, "calibrated"))
            rows = counted_rows(store, selection)
            assert all(selection.judges is None or r.judge_name in selection.judges for r in rows)
            assert all(selection.turn is None or r.turn == selection.turn for r in rows)
            assert all(selection.questions is None or r.question_id in selection.questions for r in rows)
            assert all(selection.battles is None or (r.set_name, r.question_id, r.turn, min(r.model_a, r.model_b),
                                                     max(r.model_a, r.model_b)) in some for r in rows)
            for policy in POLICIES:  # narrowing the counted rows of every judge is applying the rule narrowed
                narrowed = _merged_rows(store, selection, policy, wider=Selection())
                assert narrowed == _merged_rows(store, selection, policy)


def test_reliability_added_up_in_sql_is_judges_reliability_over_random_stores(tmp_path):
    """The app's reliability (counts in SQL, harness.views) against judges.reliability over the
    counted rows in Python, for every judge of many random stores (unparsed rows, both orders or
    one, several fingerprints, lengths equal and not)."""
    store = Store(tmp_path / "reliability.duckdb")
    fill(store, many_random_stores(random.Random(11), 60))
    fast = reliability(store)
    judges = sorted({r.judge_name for r in counted_rows(store)})
    assert [r["judge_name"] for r in fast] == judges and len(judges) > 100
    assert fast == [asdict(judge_reliability(store, name)) for name in judges]
    assert any(r["parse_failure_rate"] for r in fast) and any(r["swap_flip_rate"] for r in fast)
    assert any(r["swap_flip_rate"] is None for r in fast) or any(r["longer_answer_win_rate"] for r in fast)


def test_unknown_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="merge policy"):
        battles(Store(tmp_path / "x.duckdb"), policy="majority")


def test_migration_005_moves_likelihoods_and_annotations_out_of_the_text(tmp_path):
    """A store written before 005 kept choice log-likelihoods and people's notes inside raw_output;
    the migration fills the new columns from that text and registers every judge fingerprint."""
    import duckdb

    from harness.store import migrations

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    for version, name, sql in migrations()[:4]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    row = "(?, 'c', ?, ?, 'pairwise', 's', 'q', 1, 'x', 'y', 'ax', 'ay', 'accuracy', 'A', NULL, 'ok', 1, ?, 'r', ?)"
    con.execute(f"INSERT INTO judgments VALUES {row}, {row}, {row}", [
        "j1", "pandalm", "fp-old", "1\n(chosen by likelihood: 1=-0.125, 2=-2.500, Tie=-7.000)", T0,
        "j2", "pandalm", "fp-new", "2\n(chosen by likelihood: 1=-3.000, 2=-0.010, Tie=-9.500)", T0 + timedelta(hours=1),
        "j3", "human:ann", "human:ann", '{"note": "clearer", "reason": "swap-inconsistent", "shown": "blind"}', T0])
    con.close()
    store = Store(path)  # applies 005 and later
    with store.read() as con:
        got = con.execute("SELECT judgment_id, choice_lp_1, choice_lp_2, choice_lp_tie, annotator, note, queue_reason,"
                          " raw_output FROM judgments ORDER BY 1").fetchall()
        judges = con.execute("SELECT name, fingerprint, last_used FROM judges ORDER BY 2").fetchall()
    assert got[0][1:4] == (-0.125, -2.5, -7.0) and got[1][1:4] == (-3.0, -0.01, -9.5)
    assert got[2][1:] == (None, None, None, "ann", "clearer", "swap-inconsistent", "")
    assert judges == [("pandalm", "fp-new", T0 + timedelta(hours=1)), ("pandalm", "fp-old", T0)]
