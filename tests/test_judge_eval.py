"""`harness judge-eval` and `harness ratings`: published figures, a live judge's plumbing, the leaderboard."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from typer.testing import CliRunner

from harness import api
from harness.cli import app
from harness.errors import HarnessError
from harness.judge_eval import (HUMAN_JUDGE, agreement_per_item, judge_eval, run_judge_on_mt_bench,
                                sample_mt_bench_pairs)
from harness.judging import judge_suite
from harness.models.base import Completion
from harness.store import Store, migrations
from harness.store import judge_eval as stored
from judges.base import JudgeOutput
from judges.llm import LLMJudge
from judges.meta import fastchat_agreement, load_mt_bench_pairs_with_text, load_mt_bench_votes
from judges.parse import choice_output

from tests.test_app_browser import NEEDS_CHROMIUM

from .test_judges import VerdictBackend, generate, suite_of

runner = CliRunner()


def test_judge_eval_cli_prints_the_published_figures(shared_data):
    result = runner.invoke(app, ["judge-eval", "--data", str(shared_data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"pandalm-7b\s.*66\.77\s.*57\.38\s.*57\.50\s.*57\.43", result.output)
    assert re.search(r"gpt-3\.5-turbo\s.*71\.07\s.*58\.79\s.*57\.36\s.*57\.55", result.output)
    assert "63.0% with ties (454/721), 81.0% without (388/479)" in result.output


class OracleBackend:
    """A judge that knows the experts' majority for each pair of answer texts."""

    def __init__(self, pairs):
        self.majority = {}
        for p in pairs:
            counts = Counter(v.winner for v in p.votes if not v.judge.startswith("author"))
            if counts:
                winner = counts.most_common(1)[0][0]
                self.majority[(p.answer_a, p.answer_b)] = {"model_a": "A", "model_b": "B"}.get(winner, "tie")
                self.majority[(p.answer_b, p.answer_a)] = {"model_a": "B", "model_b": "A"}.get(winner, "tie")
        self.chunk_size = 64

    def fingerprint(self):
        return "oracle"

    def generate(self, conversations, params):
        out = []
        for conv in conversations:
            prompt = conv[-1].content
            a = re.search(r"\[Assistant A, turn 1\]\n(.*?)\n<<<END A>>>", prompt, re.S).group(1)
            b = re.search(r"\[Assistant B, turn 1\]\n(.*?)\n<<<END B>>>", prompt, re.S).group(1)
            nonce = re.search(r"VERDICT-(\w+) ", prompt).group(1)
            out.append(Completion(text=f"VERDICT-{nonce} overall: {self.majority.get((a, b), 'tie')}"))
        return out

    def close(self):
        pass


def test_a_judge_that_votes_like_the_expert_majority_agrees_with_experts(shared_data):
    pairs = load_mt_bench_pairs_with_text(shared_data / "mt_bench" / "human_judgments_turn1_with_text.jsonl")
    judge = LLMJudge("oracle", OracleBackend(pairs), dimensions=("overall",))
    result = run_judge_on_mt_bench(judge, shared_data, sample=120, seed=3)
    assert result.pairs == result.parsed_pairs == 120
    # Majority votes agree with single experts well above the 81% human-human rate without ties;
    # mapping the swapped order's verdict back wrongly would turn most of them into ties.
    assert result.without_ties.rate > 0.85 and result.without_ties.total > 50
    length = LLMJudge("len", VerdictBackend(), dimensions=("overall",))
    other = run_judge_on_mt_bench(length, shared_data, sample=120, seed=3)
    assert other.without_ties.rate < result.without_ties.rate


def test_ratings_cli_prints_a_leaderboard_with_intervals(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = suite_of("a", "bb", limit=4)
    suite.ratings.bootstrap_rounds = 50
    generate(store, suite, scripted)
    judge_suite(suite, store, "r1", judges={"lenjudge": LLMJudge("lenjudge", VerdictBackend())})
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        "name: j\nmodels:\n  - {name: a, backend: hf, model: x}\n  - {name: bb, backend: hf, model: y}\n"
        "sets: [{name: quickstart, categories: [math], limit: 4}]\n"
        "judges: [{name: lenjudge, model: {name: jm, backend: hf, model: z}}]\n"
        "ratings: {bootstrap_rounds: 50}\n")
    result = runner.invoke(app, ["ratings", str(suite_file), "--db", str(store.path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip().startswith(("│ a ", "│ bb "))]
    assert [ln.split()[1] for ln in lines] == ["bb", "a"]  # the length judge prefers bb
    assert re.search(r"\d+ \[\d+, \d+\]", lines[0])


def test_a_fastchat_judgment_file_is_scored_against_the_experts(tmp_path, shared_data):
    """A file that copies one expert's own votes (in FastChat's pair format, both games agreeing)
    must agree with that expert; the CLI reports it per judge."""
    import json

    from judges.meta import load_mt_bench_votes

    votes = [v for v in load_mt_bench_votes(shared_data / "mt_bench" / "human_judgments_turn1_votes.jsonl")
             if v.judge == "expert_0"]
    to_g = {"model_a": "model_1", "model_b": "model_2", "tie": "tie"}
    path = tmp_path / "copycat_pair.jsonl"
    path.write_text("".join(json.dumps({
        "question_id": v.question_id, "model_1": v.model_a, "model_2": v.model_b, "g1_winner": to_g[v.winner],
        "g2_winner": to_g[v.winner], "g1_judgment": "", "g2_judgment": "", "judge": ["copycat", "pair-v2"],
        "turn": 1, "tstamp": 0}) + "\n" for v in votes))
    result = runner.invoke(app, ["judge-eval", "--data", str(shared_data), "--fastchat-judgments", str(path)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("copycat/pair-v2"))
    agree, total = map(int, re.search(r"without \((\d+)/(\d+)\)", line).groups())
    assert total > 0 and agree / total > 0.81  # above the human-human rate: it contains expert_0's own votes


# ---------------------------------------------------------------- stored judge-eval runs (migration 006)


class CountingJudge:
    """A pairwise judge that prefers the longer answer (or always position A) and counts its calls;
    `fail_after` raises once that many items were judged (a killed run)."""

    kind = "pairwise"
    dimensions = ("overall",)

    def __init__(self, fingerprint: str = "counting-v1", name: str = "counting", prefer: str = "longer",
                 chunk_size: int = 8, fail_after: int | None = None):
        self.name, self._fingerprint, self.prefer = name, fingerprint, prefer
        self.chunk_size, self.fail_after = chunk_size, fail_after
        self.calls = 0

    def fingerprint(self) -> str:
        return self._fingerprint

    def judge(self, items):
        if self.fail_after is not None and self.calls + len(items) > self.fail_after:
            raise RuntimeError("judge died")
        self.calls += len(items)
        out = []
        for item in items:
            a, b = len(item.answers_a[0]), len(item.answers_b[0])
            if self.prefer == "choice":  # by likelihood, with a constant pull towards "1" (position A)
                scores = [1.0 + 0.5 * (a > b), 0.5 * (b > a), 2.0 if a == b else -5.0]
                output = JudgeOutput(raw=choice_output(scores), verdicts={"overall": "A" if a != b else "tie"})
                output.choice_logprobs = tuple(scores)
                out.append({"overall": output})
                continue
            verdict = "A" if self.prefer == "A" else ("A" if a > b else "B" if b > a else "tie")
            out.append({"overall": JudgeOutput(raw=f"VERDICT-{item.nonce} overall: {verdict}",
                                               verdicts={"overall": verdict})})
        return out

    def resampled(self, sample):
        return self

    def close(self):
        pass


def _counts(store: Store) -> dict[str, int]:
    with store.read() as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in stored.TABLES}


def _by_judge(store: Store) -> dict[str, dict]:
    return {r["judge_name"]: r for r in stored.runs(store)}


def test_judge_eval_stores_every_part_and_the_stored_metrics_are_the_reported_ones(tmp_path, shared_data):
    store = Store(tmp_path / "h.duckdb")
    judge = CountingJudge()
    report = judge_eval(shared_data, store, judge, sample=12, seed=1, bootstrap_rounds=200)
    assert judge.calls == 24 and report.live.calls == 24 and report.live.cached == 0
    runs = _by_judge(store)
    assert set(runs) == {"pandalm-7b (released)", "gpt-3.5-turbo (released)", HUMAN_JUDGE, "counting"}
    assert all(runs[n]["n_calls"] == 0 for n in runs if n != "counting") and runs["counting"]["n_calls"] == 24
    assert {r.eval_run_id for r in report.runs} == {r["eval_run_id"] for r in runs.values()}
    for run in report.runs:  # every metric the function returned is stored with the same values
        assert run.stored
        rows = stored.run_metrics(store, run.eval_run_id)
        assert set(rows) == set(run.metrics)
        for name, metric in run.metrics.items():
            row = rows[name]
            assert (row["numerator"], row["denominator"], row["n"]) == (metric.numerator, metric.denominator, metric.n)
            for column in ("value", "ci_low", "ci_high", "level"):
                assert row[column] == getattr(metric, column), (run.judge_name, name, column)
    # The published figures come back out of the store (fractions there, percent in the report).
    pandalm = stored.run_metrics(store, runs["pandalm-7b (released)"]["eval_run_id"])
    assert [round(100 * pandalm[m]["value"], 2) for m in ("accuracy_3way", "macro_precision", "macro_recall",
                                                         "macro_f1")] == [66.77, 57.38, 57.50, 57.43]
    assert (pandalm["accuracy_3way"]["numerator"], pandalm["accuracy_3way"]["denominator"]) == (667, 999)
    assert pandalm["accuracy_3way"]["ci_low"] < pandalm["accuracy_3way"]["value"] < pandalm["accuracy_3way"]["ci_high"]
    gpt = stored.run_metrics(store, runs["gpt-3.5-turbo (released)"]["eval_run_id"])
    assert [round(100 * gpt[m]["value"], 2) for m in ("accuracy_3way", "macro_f1")] == [71.07, 57.55]
    assert runs["gpt-3.5-turbo (released)"]["n_parsed"] == 999 - 25  # 'garbage' is scored as a tie, not parsed
    human = stored.run_metrics(store, runs[HUMAN_JUDGE]["eval_run_id"])
    assert (human["agreement_with_ties"]["numerator"], human["agreement_with_ties"]["denominator"]) == (454, 721)
    assert (human["agreement_without_ties"]["numerator"], human["agreement_without_ties"]["denominator"]) == (388, 479)
    live = stored.run_metrics(store, runs["counting"]["eval_run_id"])
    assert (live["agreement_with_ties"]["numerator"], live["agreement_with_ties"]["denominator"]) == \
        (report.live.with_ties.agree, report.live.with_ties.total)
    # the length judge: always the longer answer, so the same verdict in both orders of every pair
    assert live["p_prefer_longer"]["value"] == report.live.metrics["p_prefer_longer"].value == 1.0
    assert (live["positional_agreement"]["numerator"], live["positional_agreement"]["denominator"]) == (12, 12)
    # Items: released verdicts one per PandaLM item, the live judge both orders of each pair, each
    # with its raw output and the human labels in the positions it was shown.
    items = stored.run_items(store, runs["counting"]["eval_run_id"])
    assert len(items) == 24 and {i["item_order"] for i in items} == {1, 2}
    assert all(i["raw_output"].startswith("VERDICT-") and i["parsed"] for i in items)
    first, second = (next(i for i in items if i["item_id"] == items[0]["item_id"] and i["item_order"] == k)
                     for k in (1, 2))
    assert (first["model_a"], first["model_b"]) == (second["model_b"], second["model_a"])
    swap = {"A": "B", "B": "A", "tie": "tie"}
    flipped = [f"{who}={swap[label]}" for who, label in (lab.split("=") for lab in first["human_labels"])]
    assert flipped == second["human_labels"] and first["human_labels"]
    released = stored.run_items(store, runs["pandalm-7b (released)"]["eval_run_id"])
    assert len(released) == 999 and all(len(i["human_labels"]) == 3 and i["human_label"] for i in released)
    # The app's view: one row per (judge, benchmark, subset, metric), the values of the latest run.
    results = stored.judge_eval_results(store)
    assert len(results) == len({(r["judge"], r["benchmark"], r["subset"], r["metric"]) for r in results}) == \
        sum(len(m) for r in report.runs for m in (r.subset_metrics or {"all": r.metrics}).values())
    live_subsets = {r["subset"] for r in results if r["judge"] == "counting"}
    assert live_subsets == {"all"} | {p.subset for p in sample_mt_bench_pairs(shared_data, 12, 1)}
    row = next(r for r in results if r["judge"] == "pandalm-7b (released)" and r["metric"] == "macro_f1")
    assert row["benchmark"] == "pandalm_testset" and row["value"] == report.released["pandalm-7b"].macro_f1 / 100


def test_a_rerun_makes_zero_judge_calls_and_stores_no_duplicate_rows(tmp_path, shared_data):
    store = Store(tmp_path / "h.duckdb")
    first = judge_eval(shared_data, store, CountingJudge(), sample=10, bootstrap_rounds=50)
    before = _counts(store)
    assert before["judge_eval_items"] == 999 + 999 + 20 and before["judge_eval_runs"] == 4
    again = CountingJudge()
    second = judge_eval(shared_data, store, again, sample=10, bootstrap_rounds=50)
    assert again.calls == 0 and second.live.calls == 0 and second.live.cached == 20
    assert _counts(store) == before
    assert (second.live.with_ties, second.live.without_ties) == (first.live.with_ties, first.live.without_ties)
    run = _by_judge(store)["counting"]
    assert (run["n_calls"], run["n_cached"]) == (0, 20)  # the run row records the rerun, replacing the first
    # Another merge policy reuses the stored verdicts: a run of its own, still no call.
    drop = CountingJudge()
    judge_eval(shared_data, store, drop, sample=10, merge="drop", bootstrap_rounds=50)
    assert drop.calls == 0 and _counts(store)["judge_eval_runs"] == 5


def test_a_changed_judge_fingerprint_judges_again(tmp_path, shared_data):
    store = Store(tmp_path / "h.duckdb")
    judge_eval(shared_data, store, CountingJudge("counting-v1"), sample=10, bootstrap_rounds=0)
    items = _counts(store)["judge_eval_items"]
    changed = CountingJudge("counting-v2")
    judge_eval(shared_data, store, changed, sample=10, bootstrap_rounds=0)
    assert changed.calls == 20 and _counts(store)["judge_eval_items"] == items + 20
    live = [r for r in stored.runs(store) if r["judge_name"] == "counting"]
    assert sorted(r["judge_fingerprint"] for r in live) == ["counting-v1", "counting-v2"]
    latest = {r["judge_fingerprint"] for r in stored.judge_eval_results(store) if r["judge"] == "counting"}
    assert latest == {"counting-v2"}  # the app shows the newest run of a judge


def test_a_killed_live_run_keeps_the_chunks_it_committed(tmp_path, shared_data):
    store = Store(tmp_path / "h.duckdb")
    dying = CountingJudge(chunk_size=4, fail_after=8)
    with pytest.raises(RuntimeError, match="judge died"):
        run_judge_on_mt_bench(dying, shared_data, sample=10, store=store)
    resumed = CountingJudge(chunk_size=4)
    result = run_judge_on_mt_bench(resumed, shared_data, sample=10, store=store)
    assert resumed.calls == 20 - 8 and (result.calls, result.cached) == (12, 8)
    fresh = run_judge_on_mt_bench(CountingJudge(), shared_data, sample=10)  # no store: judges everything
    assert (fresh.with_ties, fresh.without_ties, fresh.calls) == (result.with_ties, result.without_ties, 20)


def test_the_two_orders_are_merged_by_the_chosen_policy(shared_data):
    # A judge that always picks position A contradicts itself on every pair under swap.
    tie = run_judge_on_mt_bench(CountingJudge(prefer="A"), shared_data, sample=30)
    assert tie.merge == "inconsistent_tie" and tie.parsed_pairs == 30
    assert tie.without_ties.total == 0 and tie.with_ties.total > 0  # every pair became a tie
    assert tie.metrics["positional_agreement"].value == 0.0 and tie.metrics["p_prefer_first"].value == 1.0
    dropped = run_judge_on_mt_bench(CountingJudge(prefer="A"), shared_data, sample=30, merge="drop")
    assert dropped.with_ties.total == 0
    half = run_judge_on_mt_bench(CountingJudge(prefer="A"), shared_data, sample=30, merge="half")
    assert half.without_ties.total > 0  # each order is a vote of its own
    with pytest.raises(HarnessError, match="merge: 'coin'"):
        run_judge_on_mt_bench(CountingJudge(), shared_data, sample=3, merge="coin")


def test_calibrated_merge_uses_the_stored_choice_likelihoods(tmp_path, shared_data):
    """Per order this judge always says "1"; summing each answer's likelihoods over both orders
    cancels that pull, leaving its real preference (the longer answer), also when read back from the store."""
    longer = run_judge_on_mt_bench(CountingJudge(), shared_data, sample=30)
    store = Store(tmp_path / "h.duckdb")
    biased = run_judge_on_mt_bench(CountingJudge(prefer="choice"), shared_data, sample=30, store=store)
    assert biased.metrics["p_prefer_first"].value == 1.0 and biased.without_ties.total == 0
    calibrated = run_judge_on_mt_bench(CountingJudge(prefer="choice"), shared_data, sample=30, store=store,
                                       merge="calibrated")
    assert calibrated.calls == 0 and calibrated.without_ties.total > 0
    assert (calibrated.with_ties, calibrated.without_ties) == (longer.with_ties, longer.without_ties)
    items = stored.run_items(store, stored.runs(store)[0]["eval_run_id"])
    assert all(i["choice_lp_tie"] is not None and "chosen by likelihood" in i["raw_output"] for i in items)


def test_per_item_agreement_adds_up_to_fastchats(shared_data):
    votes = load_mt_bench_votes(shared_data / "mt_bench" / "human_judgments_turn1_votes.jsonl")
    for include_ties, expected in ((True, (454, 721)), (False, (388, 479))):
        per_item = agreement_per_item(votes, None, include_ties)
        assert (sum(a.agree for a in per_item), sum(a.total for a in per_item)) == expected
        whole = fastchat_agreement(votes, include_ties=include_ties)
        assert (whole.agree, whole.total) == expected


def _store_before_006(path) -> Store:
    store = Store(path, migrate=False)
    with store.write() as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        for version, name, sql in migrations():
            if version < 6:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    return store


def test_judge_eval_results_on_a_store_before_migration_006_is_empty(tmp_path, shared_data):
    old = _store_before_006(tmp_path / "old.duckdb")
    with old.read() as con:
        assert not stored.has_tables(con) and con.execute("SELECT count(*) FROM judgments").fetchone()[0] == 0
    assert stored.judge_eval_results(old) == [] and stored.runs(old) == []
    assert stored.judge_eval_results(Store(tmp_path / "missing.duckdb", migrate=False)) == []
    with pytest.raises(HarnessError, match="no judge-eval tables"):
        judge_eval(shared_data, old)
    migrated = Store(old.path)  # migrating adds 006; then results are stored and read back
    judge_eval(shared_data, migrated, bootstrap_rounds=0)
    assert {r["judge"] for r in stored.judge_eval_results(migrated)} == {
        "pandalm-7b (released)", "gpt-3.5-turbo (released)", HUMAN_JUDGE}


def _judges_page(module: str) -> None:
    import importlib

    importlib.import_module(module).render()


def _page_with(monkeypatch, params: dict):
    """The Judges page rendered through its own render(), its other sections (tests/test_app.py
    covers them) left out, with `params` as the URL's query parameters."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.screens import judges as judges_page

    for other in ("_human_section", "_reliability_section", "_agreement_section", "_self_preference_section"):
        monkeypatch.setattr(judges_page, other, lambda *args: None)
    monkeypatch.setattr(judges_page, "options", lambda: {"suites": []})
    st.cache_data.clear()
    at = AppTest.from_function(_judges_page, args=("app.screens.judges",), default_timeout=30)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_judges_page_shows_the_evaluator_leaderboard_and_a_judges_card(tmp_path, shared_data, monkeypatch):
    pytest.importorskip("streamlit")
    path = tmp_path / "app.duckdb"
    Store(path)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))

    def page():
        return _page_with(monkeypatch, {})

    def page_with(params: dict):
        return _page_with(monkeypatch, params)

    at = page()
    assert any("No judge-eval results stored yet" in str(i.value) for i in at.info)
    assert not at.table and not at.dataframe
    judge_eval(shared_data, Store(path), CountingJudge(), sample=6, bootstrap_rounds=100)
    at = page()
    assert not any("No judge-eval results stored yet" in str(i.value) for i in at.info)
    board = at.table[0].value.reset_index().to_dict("records")
    api_board = api.judge_leaderboard(path)
    assert [(r["judge"], r["benchmark"]) for r in board] == [(e["judge"], e["benchmark"]) for e in api_board]
    shown = {(r["judge"], r["benchmark"]): r for r in board}
    assert shown[("pandalm-7b (released)", "pandalm_testset")]["3-way accuracy"].startswith("66.8% [")
    assert shown[("gpt-3.5-turbo (released)", "pandalm_testset")]["3-way accuracy"].startswith("71.1% [")
    assert shown[(HUMAN_JUDGE, "mt_bench_human")]["human agreement"].startswith("63.0% [")
    counting = shown[("counting", "mt_bench_human")]
    entry = next(e for e in api_board if e["judge"] == "counting")
    assert counting["P(prefer longer)"] == "100.0%" and counting["pairs"] == 6
    assert counting["accuracy"].startswith(f"{entry['accuracy']['value']:.1%} [")
    # the card of the first judge by name, then the one a deep link asks for
    card = at.dataframe[0].value
    subsets = sorted({p.subset for p in sample_mt_bench_pairs(shared_data, 6, 0)})
    assert list(card.columns) == ["metric", "all", *subsets] and at.selectbox[0].value == "counting"
    at = page_with({"judge": "pandalm-7b (released)"})
    assert at.selectbox[0].value == "pandalm-7b (released)"
    rows = dict(zip(at.dataframe[0].value["metric"], at.dataframe[0].value["all"]))
    assert rows["macro F1"].startswith("57.4% [") and rows["3-way accuracy (merged)"].startswith("66.8% [")
    assert rows["P(prefer first)"].startswith("48.5% [")


def test_chance_places_an_accuracy_at_below_or_above_a_coin():
    from harness.judge_eval_board import chance, chance_warning

    def acc(value, low, high):
        return {"value": value, "ci_low": low, "ci_high": high, "level": 0.95}

    assert [chance(acc(*m)) for m in ((0.5, 0.5, 0.5), (0.47, 0.43, 0.5), (0.465, 0.432, 0.498), (0.6, 0.53, 0.665))] \
        == ["at", "at", "below", None]
    assert chance(None) is None and chance({"value": 0.4, "ci_low": None, "ci_high": None}) is None
    assert chance_warning("rm", "pandalm_testset", acc(0.465, 0.432, 0.498)) == (
        "rm is below chance on pandalm_testset: accuracy on pairs with a winner 46.5%, 95% CI [43.2%, 49.8%] lies "
        "below 50%: worse than a coin (a tie counts as a miss)")
    assert chance_warning("j", "b", acc(0.5, 0.45, 0.55)).endswith("95% CI [45.0%, 55.0%] contains 50%")


def test_a_judges_card_shows_its_notes_and_where_it_is_at_chance(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from tests.test_judge_eval_metrics import ScriptedJudge, two_way

    from harness.judge_eval_live import evaluate_pairs

    path = tmp_path / "app.duckdb"
    evaluate_pairs(ScriptedJudge(), two_way(), "scripted_2way", Store(path), data_files=[], rounds=200,
                   data_hash="t")
    card = api.judge_card("scripted", path)
    assert card["notes"] == ["scripted for tests: not a real judge"]
    assert card["warnings"] == [w for w in card["warnings"] if " chance on scripted_2way" in w] and card["warnings"]
    # subset y: the scripted judge is always wrong there, which is below chance, not at it
    assert any(w.startswith("scripted is below chance on scripted_2way / y: accuracy on pairs with a winner 0.0%")
               for w in card["warnings"]), card["warnings"]
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = _page_with(monkeypatch, {"judge": "scripted"})
    assert [w.value for w in at.warning if "not a real judge" in w.value] == card["notes"]
    assert [e.value for e in at.error] == card["warnings"]


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_the_judges_page_in_a_browser_shows_the_apis_evaluator_leaderboard(tmp_path, shared_data):
    """`harness app` in headless Chromium: the leaderboard's rows are the API's, and `?judge=NAME`
    opens that judge's card."""
    from tests.test_app_browser import app_and_browser, full_page_shot, settle

    from playwright.sync_api import expect

    from harness.judge_eval_board import format_ci, format_value

    db = tmp_path / "judges.duckdb"
    judge_eval(shared_data, Store(db), CountingJudge(), sample=6, bootstrap_rounds=100)
    board = api.judge_leaderboard(db)
    with app_and_browser(db, tmp_path) as (url, page):
        page.goto(f"{url}/judges?judge=counting")
        table = page.locator("[data-testid='stTable'] table").first
        expect(table).to_be_visible(timeout=60_000)
        expect(page.get_by_role("heading", name="counting", exact=True)).to_be_visible(timeout=60_000)
        settle(page)
        header = [c.inner_text().strip() for c in table.locator("thead th").all()]
        shown = [dict(zip(header, (c.inner_text().strip() for c in row.locator("th, td").all())))
                 for row in table.locator("tbody tr").all()]
        assert [(r["judge"], r["benchmark"]) for r in shown] == [(e["judge"], e["benchmark"]) for e in board]
        for row, entry in zip(shown, board):
            assert row["pairs"] == str(entry["n_items"])
            for column, metric in (("accuracy", "accuracy"), ("3-way accuracy", "accuracy_3way"),
                                   ("human agreement", "agreement_with_ties")):
                found = entry[metric]
                expected = "" if not found or found["value"] is None else \
                    f"{format_value(metric, found['value'])} {format_ci(metric, found)}"
                assert row[column] == expected, (entry["judge"], column)
            longer = entry["p_prefer_longer"]
            assert row["P(prefer longer)"] == (format_value("p_prefer_longer", longer["value"]) if longer else "")
        assert page.get_by_text("Judge card").count() >= 1
        full_page_shot(page, "judges-evaluator-leaderboard")
