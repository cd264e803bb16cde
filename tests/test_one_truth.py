"""The everyday actions that once made the harness disagree with itself, through the real pipeline
(harness.api.run with scripted backends and judges, a real DuckDB file): every consumer must see
the same battles.

1. Re-running a suite after changing a judge's settings but not its name.
2. Regenerating a model under a new fingerprint with the same name (a retrained recipe).
3. A likelihood-choice judge under `merge: calibrated`: the board, the app's views, the live refit
   and the Judges page agree; a model judged earlier under the suite stays on its board.
"""

from __future__ import annotations

import pytest

from harness import api, views
from harness.battles import battles, for_suite
from harness.config import HFModelSpec, JudgeSpec, SetSpec, Suite
from harness.store import Store
from judges.base import JudgeOutput
from judges.llm import LLMJudge
from tests.test_judges import VerdictBackend

DIMS = ("accuracy", "helpfulness", "language")


def make_suite(*models: str, merge: str = "inconsistent_tie", cot: bool = True) -> Suite:
    return Suite(name="truth", models=[HFModelSpec(name=m, model=f"scripted-{m}") for m in models],
                 sets=[SetSpec(name="quickstart", categories=["math"], limit=5)],
                 judges=[JudgeSpec(name="lenjudge", model=HFModelSpec(name="jm", model="scripted"),
                                   chain_of_thought=cot)],
                 ratings={"merge": merge, "bootstrap_rounds": 30})


def run(store, suite, scripted, judge, **backends):
    models = {m.name: backends.get(m.name) or scripted(m.name) for m in suite.models}
    return api.run(suite, store, backends=models, judges={"lenjudge": judge}, stages=("generate", "judge", "rate"))


def bt(board, dimension="accuracy") -> dict[str, object]:
    return {r.model: r for r in board.rows_for("all") if (r.method, r.dimension) == ("bt", dimension)}


def matrix_battles(store, suite_name, dimension="accuracy") -> int:
    return sum(r["battles"] for r in views.pairwise_matrix(store, suite_name, "lenjudge", dimension)) // 2


def test_changing_a_judges_settings_keeps_its_battles(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = make_suite("a", "bb", "ccc")
    first = run(store, suite, scripted, LLMJudge("lenjudge", VerdictBackend(), chain_of_thought=True))
    assert {r.battles for r in bt(first.board).values()} == {10}  # 3 pairs x 5 questions; 2 pairs each
    assert matrix_battles(store, "truth") == 15

    again = make_suite("a", "bb", "ccc", cot=False)
    judge = LLMJudge("lenjudge", VerdictBackend(), chain_of_thought=False)
    second = run(store, again, scripted, judge)
    assert second.judging.judges[0].judged == 30  # a new fingerprint: every call made again
    with store.read() as con:
        assert con.execute("SELECT count(DISTINCT judge_fingerprint) FROM judgments").fetchone()[0] == 2
    ratings = bt(second.board)
    assert {r.battles for r in ratings.values()} == {10}  # not 20 (mixed) and not 0 (both dropped)
    assert ratings["ccc"].rating > ratings["bb"].rating > ratings["a"].rating
    assert matrix_battles(store, "truth") == 15
    assert len(battles(store, for_suite(again), "inconsistent_tie")) == 15 * len(DIMS)


class Longer:
    """A retrained model: new weights (fingerprint), longer answers than every other model."""

    def __init__(self, name: str):
        self.name, self.chunk_size = name, 4

    def fingerprint(self) -> str:
        return f"retrained-{self.name}"

    def generate(self, conversations, params):
        from harness.models.base import Completion

        return [Completion(text=f"{self.name} retrained answers at length " + "words " * 40) for _ in conversations]

    def close(self) -> None:
        pass


def test_a_regenerated_model_stays_on_the_board_with_its_new_answers_only(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = make_suite("a", "bb", "ccc")
    before = bt(run(store, suite, scripted, LLMJudge("lenjudge", VerdictBackend())).board)
    assert before["a"].rating < before["bb"].rating  # "a answers ..." is the shortest
    after = run(store, suite, scripted, LLMJudge("lenjudge", VerdictBackend()), a=Longer("a"))
    ratings = bt(after.board)
    assert set(ratings) == {"a", "bb", "ccc"} and ratings["a"].battles == 10
    assert ratings["a"].rating > ratings["ccc"].rating  # judged on its new (longest) answers only
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM answers WHERE model_fingerprint LIKE '%-a'").fetchone()[0] == 10
    assert matrix_battles(store, "truth") == 15
    with store.read() as con:
        current = {r[0] for r in con.execute("SELECT answer_id FROM answers WHERE model_fingerprint = 'retrained-a'").fetchall()}
    used = {b.answer_a for b in battles(store, for_suite(suite)) if b.model_a == "a"}  # "a" sorts first
    assert used and used <= current  # never an answer of the old version


class BiasedChoiceJudge:
    """A likelihood-choice judge that always picks position A ("1"), while its log-likelihoods,
    summed over both orders, prefer the longer answer: only calibration reads it right."""

    name, kind, dimensions, chunk_size = "lenjudge", "pairwise", DIMS, 8

    def __init__(self):
        self.calls = 0

    def fingerprint(self) -> str:
        return "biased-choice"

    def judge(self, items):
        out = []
        for item in items:
            self.calls += 1
            bonus = 0.4 if len(item.answers_a[-1]) > len(item.answers_b[-1]) else 0.0
            scores = (-0.5 + bonus, -1.0 + (0.4 - bonus), -5.0)  # "1" always most likely in one order
            out.append({d: JudgeOutput(raw="1", verdicts={d: "A"}, choice_logprobs=scores) for d in DIMS})
        return out

    def resampled(self, sample):
        return self

    def close(self) -> None:
        pass


def test_calibrated_board_app_refit_and_judges_page_agree(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = make_suite("a", "bb", "ccc", merge="calibrated")
    board = run(store, suite, scripted, BiasedChoiceJudge()).board
    ratings = bt(board)
    assert ratings["ccc"].rating > ratings["bb"].rating > ratings["a"].rating  # calibration decided them
    # The app's Pairwise matrix holds the board's battles: decided, not 15 ties.
    matrix = views.pairwise_matrix(store, "truth", "lenjudge", "accuracy")
    assert sum(r["ties"] for r in matrix) == 0 and sum(r["battles"] for r in matrix) // 2 == 15
    assert {(r["model"], r["opponent"]): r["win_rate"] for r in matrix}[("ccc", "a")] == 1.0
    # The live refit (no people, no filter) gives the board's BT points.
    live = {r["model"]: r["rating"] for r in views.joint_ratings(store, "truth", "lenjudge", "accuracy",
                                                                    include_humans=False) if r["method"] == "bt"}
    assert live == pytest.approx({m: r.rating for m, r in ratings.items()}, abs=1e-9)
    # One person's verdict: the Judges page reports one agreement figure for judge vs that person.
    item = views.annotation_queue(store, "truth", "pat", audit=50)[0]
    details = views.annotation_item(store, "truth", item)
    x, y = item["x"], item["y"]
    views.save_human_verdicts(store, "pat", item, x, y, details["answer_ids"][x], details["answer_ids"][y],
                              {d: "A" for d in item["dimensions"]})
    human = {(r["judge"], r["human"]): r["agreement"] for r in views.human_agreement(store, "truth")}
    pairwise = {(r["judge"], r["other"]): r["agreement"] for r in views.judge_agreement(store, "truth")}
    assert human[("lenjudge", "human:pat")] == pairwise[("lenjudge", "human:pat")] == pairwise[("human:pat", "lenjudge")]
    decided = {b.dimension: b.winner for b in battles(store, for_suite(suite), "calibrated")
               if (b.set_name, b.question_id, b.turn, b.model_a, b.model_b) ==
               (item["set_name"], item["question_id"], item["turn"], x, y)}
    expected = sum(decided[d] == "model_a" for d in item["dimensions"]) / len(item["dimensions"])  # pat chose x
    assert human[("lenjudge", "human:pat")] == pytest.approx(expected)


def test_a_model_judged_under_the_suite_stays_on_its_board_and_is_named(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    run(store, make_suite("a", "bb"), scripted, LLMJudge("lenjudge", VerdictBackend()))
    # what `harness train ... --then-eval SUITE` does: the same suite with the trained model added
    run(store, make_suite("a", "bb", "ccc"), scripted, LLMJudge("lenjudge", VerdictBackend()))
    board = api.rate(make_suite("a", "bb"), store)  # the suite file, which does not list ccc
    assert set(bt(board)) == {"a", "bb", "ccc"} and board.models_not_in_suite == ["ccc"]
    stored = {r["model"] for r in api.stored_ratings("truth", store) if r["method"] == "bt"}
    assert stored == {"a", "bb", "ccc"}


def test_import_harness_exposes_the_api_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys, harness; assert harness.run is harness.api.run and harness.rate is harness.api.rate;"
            " heavy = [m for m in ('torch', 'transformers', 'vllm', 'streamlit', 'lm_eval', 'trl') if m in sys.modules];"
            " print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
