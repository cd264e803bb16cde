"""The board's defaults from issue 15: question-clustered BT intervals unless the suite asks for
battle-level ones, "significantly above the next model" from the paired tests (harness ratings),
and the train-then-evaluate report as harness.api.compare of the trained model and its parent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness import api, leaderboard
from harness.battles import battles, for_suite
from harness.store.ratings import latest_ratings
from tests.app_store import build_store, synthetic_suite

JUDGES, DIMENSIONS = ("judge-x",), ("accuracy", "helpfulness")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("board")
    # 1,500 battles on 40 questions: some neighbours separated by the paired tests, some not
    store = build_store(folder / "s.duckdb", n_models=5, n_battles=1500, n_questions=40, real_ratings=False,
                        judges=JUDGES, dimensions=DIMENSIONS)
    return folder, store, synthetic_suite(5, JUDGES, DIMENSIONS, rounds=40)


def _bt(rows):
    return {(r.judge_name, r.dimension, r.category, r.model): r for r in rows if r.method == "bt"}


def test_the_board_resamples_questions_unless_the_suite_says_battles(synthetic):
    _, store, suite = synthetic
    cfg = suite.ratings
    assert cfg.ci == "question"
    fought = battles(store, for_suite(suite), cfg.merge)
    board = api.rate(suite, store)
    clustered = leaderboard.rate(fought, cfg.bootstrap_rounds, cfg.level, cfg.seed, ci="question")
    battle = leaderboard.rate(fought, cfg.bootstrap_rounds, cfg.level, cfg.seed, ci="battle")
    assert _bt(board.rows) == _bt(clustered)
    assert {r.ci_kind for r in board.rows if r.method == "bt"} == {"question"}
    assert {r.ci_kind for r in board.rows if r.method == "elo"} == {"battle"}
    # the two kinds really differ (questions carry several correlated battles each)
    assert any((r.ci_low, r.ci_high) != (_bt(battle)[k].ci_low, _bt(battle)[k].ci_high) for k, r in _bt(board.rows).items())
    stored = latest_ratings(store, suite.name)
    assert {(r["method"], r["ci_kind"]) for r in stored} == {("bt", "question"), ("elo", "battle")}

    as_before = suite.model_copy(update={"ratings": cfg.model_copy(update={"ci": "battle"})})
    board = api.rate(as_before, store, save=False)
    assert _bt(board.rows) == _bt(battle) and {r.ci_kind for r in board.rows} == {"battle"}


def test_harness_ratings_marks_come_from_the_paired_tests(synthetic):
    import yaml

    from harness.cli import app

    folder, store, suite = synthetic
    board = api.rate(suite, store, save=False)
    fought = battles(store, for_suite(suite), suite.ratings.merge)
    marks = board.marks()
    assert marks == leaderboard.paired_marks(fought, seed=suite.ratings.seed)
    significant = {a.above for adjacent in marks.values() for a in adjacent if a.significant}
    not_established = {a.above for adjacent in marks.values() for a in adjacent if not a.significant}
    assert significant and not_established - significant  # both kinds of mark occur on this board

    (folder / "suite.yaml").write_text(yaml.safe_dump(suite.model_dump(mode="json")))
    out = CliRunner().invoke(app, ["ratings", str(folder / "suite.yaml"), "--db", str(folder / "s.duckdb"),
                                   "--no-save"], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    starred = {line.split()[1] for line in out.output.splitlines() if line.startswith("│ model-") and " *" in line}
    assert starred == significant
    assert "BT: questions resampled (question-clustered); ELO: battles resampled" in out.output
    assert leaderboard.mark_meaning() in " ".join(out.output.split())


def test_then_eval_reports_the_paired_comparison_with_the_parent(synthetic, capsys):
    from harness.cli.train import _render_eval
    from trainers import lineage
    from trainers.evaluate import EvalReport, _store_comparisons, compare_with_parent, rating_deltas

    _, store, suite = synthetic  # build_store's lineage: model-01 was trained from model-00
    panels = compare_with_parent(store, suite, "model-01", "model-00")
    assert panels == api.compare("model-01", "model-00", suite, store).panels
    assert [(p.judge_name, p.dimension) for p in panels] == [("judge-x", d) for d in DIMENSIONS]
    comparisons = rating_deltas(panels)
    for panel in panels:
        p = panel.paired
        bt, wr = (next(c for c in comparisons if (c.dimension, c.method) == (panel.dimension, m))
                  for m in ("bt", "win_rate"))
        assert (bt.delta, bt.ci_low, bt.ci_high, bt.p_value, bt.mde) == (p.bt_difference, p.bt_low, p.bt_high,
                                                                         p.p_bt, p.mde_bt)
        assert (wr.delta, wr.ci_low, wr.ci_high, wr.p_value, wr.mde, wr.battles) == (
            p.win_rate, p.win_rate_low, p.win_rate_high, p.p_permutation, p.mde_win_rate, p.questions)
        assert bt.battles == len([b for b in battles(store, for_suite(suite), suite.ratings.merge)
                                  if b.dimension == panel.dimension])
    assert compare_with_parent(store, suite, "model-09", "model-00") == []  # never judged: nothing to compare

    report = EvalReport("model-01", "model-00", suite, comparisons, paired=panels)
    _store_comparisons(store, report, comparisons)
    stored = {(c["dimension"], c["method"]): c for c in lineage(store, "model-01").children[0].comparisons
              if c["suite_name"] == suite.name}
    assert {k: (c["p_value"], c["mde"]) for k, c in stored.items()} == {
        (c.dimension, c.method): (c.p_value, c.mde) for c in comparisons}
    _render_eval(report)
    printed = capsys.readouterr().out
    assert "MDE @80%" in printed and f"{comparisons[0].p_value:.3g}" in printed and "question-clustered" in printed
