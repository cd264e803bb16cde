"""harness.api.compare / how_sure and `harness compare` / `harness how-sure` on a synthetic store
(tests/app_store.py: real schema, judged battles drawn from known strengths)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from harness import api
from harness.battles import battles, for_suite
from harness.errors import HarnessError
from harness.stats import paired
from harness.stats.frame import from_battles, panels
from tests.app_store import build_store, synthetic_suite

JUDGES, DIMENSIONS = ("judge-x", "judge-y"), ("accuracy", "helpfulness")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats")
    store = build_store(folder / "s.duckdb", n_models=5, n_battles=300, n_questions=40, real_ratings=False,
                        judges=JUDGES, dimensions=DIMENSIONS)
    suite = synthetic_suite(5, JUDGES, DIMENSIONS)
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite.model_dump(mode="json")))
    return folder, store, suite


def test_compare_gives_one_paired_comparison_per_panel_from_the_suites_battles(synthetic):
    _, store, suite = synthetic
    result = api.compare("model-04", "model-00", suite, store, rounds=50)
    assert [(p.judge_name, p.dimension) for p in result.panels] == [(j, d) for j in JUDGES for d in DIMENSIONS]
    # The same numbers as harness.stats on the battles harness.battles gives for that panel.
    group = panels(battles(store, for_suite(suite), suite.ratings.merge))[("judge-x", "accuracy")]
    expected = paired.compare(from_battles(group), "model-04", "model-00", rounds=50, seed=suite.ratings.seed,
                              level=suite.ratings.level)
    assert result.panels[0].paired == expected
    assert expected.question_wins > expected.question_losses  # model-04 is the strongest by construction
    narrowed = api.compare("model-04", "model-00", suite, store, judge="judge-y", dimension="accuracy", rounds=20)
    assert [(p.judge_name, p.dimension) for p in narrowed.panels] == [("judge-y", "accuracy")]


@pytest.mark.parametrize("args, needle", [
    (("model-04", "nobody"), "model 'nobody': no battles on suite 'synthetic': use one of model-00"),
    (("model-04", "model-04"), "against itself"),
])
def test_compare_user_errors_are_one_line(synthetic, args, needle):
    _, store, suite = synthetic
    with pytest.raises(HarnessError) as err:
        api.compare(*args, suite, store)
    assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HarnessError, match="no battles for judge judge-z"):
        api.compare("model-04", "model-00", suite, store, judge="judge-z")


def test_how_sure_reports_every_panel(synthetic, tmp_path):
    _, store, suite = synthetic
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({f"model-{i:02d}": 1000 + 10 * i for i in range(5)}))
    report = api.how_sure(suite, store, judge="judge-x", rounds=50, reference=reference)
    assert [(p.judge_name, p.dimension) for p in report.panels] == [("judge-x", d) for d in DIMENSIONS]
    panel = report.panels[0]
    assert [w.model for w in panel.widths] == sorted(panel.style.raw, key=lambda m: -panel.style.raw[m].point)
    assert [(a.above, a.below) for a in panel.adjacent] == list(zip(
        [w.model for w in panel.widths], [w.model for w in panel.widths][1:]))
    assert panel.style.features == ("length",)  # the synthetic answers have no markdown
    assert report.markdown_features
    assert panel.agreement.models == tuple(f"model-{i:02d}" for i in range(5))
    assert panel.held_out.battles == panel.battles


def test_cli_compare_and_how_sure(synthetic):
    from harness.cli import app

    folder, _, _ = synthetic
    db, suite_file = str(folder / "s.duckdb"), str(folder / "suite.yaml")
    runner = CliRunner()
    out = runner.invoke(app, ["compare", "model-04", "model-00", "--suite", suite_file, "--db", db, "--rounds", "20",
                              "--judge", "judge-x"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "judge-x / accuracy" in out.output and "judge-y" not in out.output and "p (BT, names swapped)" in out.output
    out = runner.invoke(app, ["how-sure", suite_file, "--db", db, "--rounds", "20", "--dimension", "accuracy"],
                        env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "CI, questions resampled" in out.output and "Davidson nu" in out.output and "style coefficients" in out.output


def test_board_with_question_clustered_bt_intervals_and_paired_marks(synthetic):
    from harness import leaderboard
    from harness.stats import clustered

    _, store, suite = synthetic
    fought = battles(store, for_suite(suite), suite.ratings.merge)
    battle_rows = leaderboard.rate(fought, 30, 0.9, seed=2, categories=False, elo_orders=4, ci="battle")
    question_rows = leaderboard.rate(fought, 30, 0.9, seed=2, categories=False, elo_orders=4, ci="question")
    by_panel = panels(fought)
    for row in question_rows:
        if row.method == "bt":
            expected = clustered.bootstrap(from_battles(by_panel[(row.judge_name, row.dimension)]), "question", 30,
                                           2).intervals(0.9)[row.model]
            assert (row.rating, row.ci_low, row.ci_high) == (expected.point, expected.low, expected.high)
    assert [r for r in question_rows if r.method == "elo"] == [r for r in battle_rows if r.method == "elo"]
    with pytest.raises(ValueError, match="ci must be"):
        leaderboard.rate(fought, 30, 0.9, ci="questions")

    marks = leaderboard.paired_marks(fought, seed=2)
    assert list(marks) == list(by_panel)
    for panel, adjacent in marks.items():
        bt = {r.model: r.rating for r in battle_rows if (r.judge_name, r.dimension) == panel and r.method == "bt"}
        order = sorted(bt, key=lambda m: (-bt[m], m))
        assert adjacent == paired.adjacent(from_battles(by_panel[panel]), order=order, seed=2)
        assert [a.above for a in adjacent] == order[:-1]
