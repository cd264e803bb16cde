"""Every judge-eval metric checked exactly against a scripted judge whose answers are known.

Four 2-way pairs (and a fifth, tied, for the 3-way set), each judged in both orientations
(1: response_a shown as A, 2: swapped). The script, in the pair's own terms (A = response_a better):

    pair  gold  lengths a/b  orientation 1      orientation 2      (positional verdict given)
    p1    A     10 / 5       A  (said "A")      A  (said "B")      right in both orders
    p2    B      3 / 8       A  (said "A")      B  (said "A")      position-driven: flips
    p3    A      5 / 5       tie (said "tie")   unparsed
    p4    B      6 / 2       A  (said "A")      A  (said "B")      wrong in both orders
    p5    tie    4 / 4       tie                tie                (3-way set only)

With seed 0 the orientation shown first is 1, 1, 2, 2 (and 2 for p5), asserted below.
"""

from __future__ import annotations

import pytest

from harness.judge_eval_live import evaluate_pairs, first_orientation
from harness.prices import Price, PriceTable, load_prices
from harness.errors import ConfigError
from harness.store import Store
from harness.store import judge_eval as stored
from judges.base import JudgeOutput
from judges.labelled import LabelledPair

SCRIPT = {  # (pair, orientation) -> the positional verdict the judge gives (None: unparsable output)
    ("p1", 1): "A", ("p1", 2): "B",
    ("p2", 1): "A", ("p2", 2): "A",
    ("p3", 1): "tie", ("p3", 2): None,
    ("p4", 1): "A", ("p4", 2): "B",
    ("p5", 1): "tie", ("p5", 2): "tie",
}


def pair(pid: str, gold: str, len_a: int, len_b: int, subset: str, annotated: bool = False) -> LabelledPair:
    return LabelledPair(pid, subset, (f"question {pid}",), f"{pid}a".ljust(len_a, "."), f"{pid}b".ljust(len_b, "."),
                        (gold,), annotators=("person",) if annotated else ())


def two_way(annotated: bool = False) -> list[LabelledPair]:
    return [pair("p1", "A", 10, 5, "x", annotated), pair("p2", "B", 3, 8, "x", annotated),
            pair("p3", "A", 5, 5, "y", annotated), pair("p4", "B", 6, 2, "y", annotated)]


class ScriptedJudge:
    """Answers from SCRIPT; reports 100 prompt tokens and 2 generated tokens per call; counts calls."""

    kind = "pairwise"
    dimensions = ("overall",)
    chunk_size = 3
    card_notes = ("scripted for tests: not a real judge",)

    def __init__(self, name: str = "scripted"):
        self.name, self.calls = name, 0

    def fingerprint(self) -> str:
        return "scripted-v1"

    def judge(self, items):
        self.calls += len(items)
        out = []
        for item in items:
            orientation = 1 if item.answers_a[-1].startswith(f"{item.question_id}a") else 2
            verdict = SCRIPT[(item.question_id, orientation)]
            output = JudgeOutput(raw=f"said {verdict}", verdicts={"overall": verdict} if verdict else {})
            output.prompt_tokens, output.completion_tokens = 100, 2
            out.append({"overall": output})
        return out

    def resampled(self, sample):
        return self

    def close(self):
        pass


def values(metrics) -> dict:
    return {name: (m.numerator, m.denominator) for name, m in metrics.items() if m.denominator is not None}


def test_the_seeded_presentation_is_known():
    assert [first_orientation(p, 0) for p in ("p1", "p2", "p3", "p4", "p5")] == [1, 1, 2, 2, 2]


def test_every_two_way_metric_is_exact(tmp_path):
    judge = ScriptedJudge()
    part, outcomes = evaluate_pairs(judge, two_way(), "scripted_2way", None, data_files=[], seed=0,
                                    rounds=0, data_hash="test")
    metrics = part.run.metrics
    assert judge.calls == 8 and part.run.n_calls == 8
    assert values(metrics) == {
        "accuracy_order1": (1, 4),   # first shown: p1 o1 right; p2 o1, p3 o2 (unparsed), p4 o2 wrong
        "accuracy_order2": (2, 4),   # p1 o2, p2 o2 right
        "accuracy": (3, 8),          # right orders over all judged orders
        "pair_accuracy": (1, 4),     # p1 only
        "net_accuracy": (1, 4),      # p1 +2; p2 +1-1; p3 0; p4 -2
        "positional_agreement": (2, 4),  # p1 and p4 say the same in both orders (p4 wrongly)
        "tie_rate": (1, 8),
        "parse_failure_rate": (1, 8),
        "p_prefer_first": (4, 6),    # of 6 A/B verdicts, the one shown first: p1 o1, p2 o1, p2 o2, p4 o1
        "p_prefer_longer": (5, 6),   # p1 twice, p2 o2, p4 twice (p3 is equal length)
    }
    assert metrics["accuracy"].value == 3 / 8 and metrics["p_prefer_longer"].value == 5 / 6
    assert "accuracy_3way" not in metrics and part.run.three_way is False  # no gold ties: a 2-way benchmark
    # per subset: x = p1, p2; y = p3, p4
    x, y = part.run.subset_metrics["x"], part.run.subset_metrics["y"]
    assert values(x)["accuracy"] == (3, 4) and values(y)["accuracy"] == (0, 4)
    assert values(x)["positional_agreement"] == (1, 2) and values(y)["pair_accuracy"] == (0, 2)
    assert {o.pair_id: o.verdicts for o in outcomes} == {
        "p1": {1: "A", 2: "A"}, "p2": {1: "A", 2: "B"}, "p3": {2: None, 1: "tie"}, "p4": {2: "A", 1: "A"}}


def test_three_way_metrics_kappa_and_agreement_are_exact():
    pairs = two_way(annotated=True) + [pair("p5", "tie", 4, 4, "y", annotated=True)]
    part, outcomes = evaluate_pairs(ScriptedJudge(), pairs, "scripted_3way", None, data_files=[], seed=0,
                                    merge="inconsistent_tie", rounds=0, data_hash="test")
    m = part.run.metrics
    # merged under inconsistent_tie: p1 A, p2 tie (orders disagree), p3 none (one order unparsed), p4 A, p5 tie
    assert [o.merged for o in outcomes] == ["A", "tie", None, "A", "tie"]
    assert (m["accuracy_3way"].numerator, m["accuracy_3way"].denominator) == (2, 5)
    # per label: tie P 1/2 R 1 F1 2/3; A P 1/2 R 1/2 F1 1/2; B 0 0 0
    assert m["macro_precision"].value == pytest.approx(1 / 3)
    assert m["macro_recall"].value == pytest.approx(1 / 2)
    assert m["macro_f1"].value == pytest.approx(7 / 18)
    # observed 2/5; chance: tie 1/5 x 2/5 + A 2/5 x 2/5 = 6/25
    assert m["cohen_kappa"].value == pytest.approx((2 / 5 - 6 / 25) / (1 - 6 / 25))
    # FastChat agreement of the merged verdict with each annotator: p1 agrees, p2 not, p4 not, p5 agrees
    assert values(m)["agreement_with_ties"] == (2, 4)
    assert values(m)["agreement_without_ties"] == (1, 2)  # p2 (judge tie) and p5 (both tie) drop out
    # the 2-way metrics leave the tied pair out; the call-level ones count it
    assert values(m)["accuracy"] == (3, 8) and values(m)["tie_rate"] == (3, 10)
    assert values(m)["positional_agreement"] == (3, 5) and values(m)["p_prefer_first"] == (4, 6)
    assert part.run.three_way is True


def test_tokens_and_cost_per_thousand_come_from_the_price_table(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("judges:\n  scripted: {usd_per_1m_input_tokens: 2.0, usd_per_1m_output_tokens: 10.0}\n")
    part, _ = evaluate_pairs(ScriptedJudge(), two_way(), "scripted_2way", None, data_files=[], seed=0, rounds=0,
                             prices=load_prices(prices), data_hash="test")
    m = part.run.metrics
    assert m["tokens_per_1000"].value == 1000 * (8 * 102) / 8
    # 800 prompt tokens at $2/M and 16 generated at $10/M, over 8 calls, per 1,000 calls
    assert m["cost_per_1000"].value == pytest.approx(1000 * (800 * 2e-6 + 16 * 10e-6) / 8)
    assert part.run.totals["tokens_in"] == 800 and part.run.totals["tokens_out"] == 16
    seconds = part.run.totals["judge_seconds"]
    assert m["seconds_per_1000"].value == pytest.approx(1000 * seconds / 8)
    hourly = PriceTable(judges={"scripted": Price(usd_per_hour=3.6)})
    again, _ = evaluate_pairs(ScriptedJudge(), two_way(), "scripted_2way", None, data_files=[], seed=0, rounds=0,
                              prices=hourly, data_hash="test")
    assert again.run.metrics["cost_per_1000"].value == pytest.approx(
        1000 * again.run.totals["judge_seconds"] * 3.6 / 3600 / 8)
    # a judge missing from the table, or a priced quantity the judge does not report: no cost, not zero
    assert "cost_per_1000" not in evaluate_pairs(ScriptedJudge("other"), two_way(), "b", None, data_files=[],
                                                 rounds=0, prices=hourly, data_hash="t")[0].run.metrics


def test_a_bad_price_table_is_one_line(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("judges:\n  x: {usd_per_token: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: field 'judges.x.usd_per_token': Extra inputs"):
        load_prices(path)


def test_a_rerun_makes_zero_calls_and_stores_the_same_metrics(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    first = ScriptedJudge()
    part, _ = evaluate_pairs(first, two_way(), "scripted_2way", store, data_files=[], seed=0, rounds=200,
                             data_hash="test")
    again = ScriptedJudge()
    rerun, _ = evaluate_pairs(again, two_way(), "scripted_2way", store, data_files=[], seed=0, rounds=200,
                              data_hash="test")
    assert (first.calls, again.calls) == (8, 0) and (rerun.run.n_calls, rerun.run.n_cached) == (0, 8)
    for name, metric in part.run.metrics.items():
        if name != "seconds_per_1000":
            assert rerun.run.metrics[name] == metric, name
    # another seed presents the pairs in another order, still from the stored verdicts
    other = ScriptedJudge()
    reseeded, _ = evaluate_pairs(other, two_way(), "scripted_2way", store, data_files=[], seed=1, rounds=0,
                                 data_hash="test")
    assert other.calls == 0 and values(reseeded.run.metrics)["accuracy"] == (3, 8)
    assert [first_orientation(p, 1) for p in ("p1", "p2", "p3", "p4")] == [2, 2, 2, 2]
    # every pair's orientation 2 first: p1 and p2 are right there, only p1 in orientation 1
    assert values(reseeded.run.metrics)["accuracy_order1"] == (2, 4)
    assert values(reseeded.run.metrics)["accuracy_order2"] == (1, 4)
    rows = stored.run_metrics(store, part.run.eval_run_id, "x")
    assert (rows["accuracy"]["numerator"], rows["accuracy"]["denominator"]) == (3, 4)
    ci = rows["accuracy"]
    assert ci["ci_low"] <= ci["value"] <= ci["ci_high"] and ci["level"] == 0.95
    run = next(r for r in stored.runs(store) if r["eval_run_id"] == part.run.eval_run_id)
    assert run["notes"] == ["scripted for tests: not a real judge"] and run["three_way"] is False
    items = stored.run_items(store, part.run.eval_run_id)
    assert len(items) == 8 and {i["subset"] for i in items} == {"x", "y"}
    assert all(i["tokens_in"] == 100 and i["tokens_out"] == 2 and i["seconds"] >= 0 for i in items)
