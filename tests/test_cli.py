"""The read-side commands render what the store holds."""

from __future__ import annotations

from typer.testing import CliRunner

from harness.cli import app
from harness.config import HFModelSpec, SetSpec, Suite
from harness.runner import run_suite
from harness.store import Store

runner = CliRunner()


def filled_db(tmp_path, scripted):
    db = tmp_path / "h.duckdb"
    suite = Suite(name="cli", models=[HFModelSpec(name="a", model="scripted-a")],
                  sets=[SetSpec(name="quickstart", categories=["math"])])
    run_suite(suite, Store(db), backends={"a": scripted("a")})
    return db


def test_answers_shows_questions_and_the_models_answers(tmp_path, scripted):
    db = filled_db(tmp_path, scripted)
    result = runner.invoke(app, ["answers", "-m", "a", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "What is 15% of 240?" in result.output
    assert "a answers turn 2: Now solve 3x" in result.output  # m2's second turn


def test_answers_for_an_unknown_model_is_a_user_error(tmp_path, scripted):
    db = filled_db(tmp_path, scripted)
    result = runner.invoke(app, ["answers", "-m", "nobody", "--db", str(db)])
    assert result.exit_code != 0 and "no answers for model 'nobody'" in str(result.exception)


def test_db_info_counts_rows_and_lists_the_run(tmp_path, scripted):
    db = filled_db(tmp_path, scripted)
    result = runner.invoke(app, ["db", "info", "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    from harness.store import migrations

    assert f"schema version {len(migrations())}" in result.output
    assert "finished" in result.output
    answers_line = next(line for line in result.output.splitlines() if " answers " in line)
    assert answers_line.split()[-2] == "5"  # 4 math questions, one (m2) with a second turn


def test_models_and_sets_list_the_catalog_and_builtins(tmp_path, scripted):
    db = filled_db(tmp_path, scripted)
    models = runner.invoke(app, ["models", "--db", str(db)], env={"COLUMNS": "200"})
    assert models.exit_code == 0, models.output
    assert "smollm2-135m-instruct" in models.output and "gemma3-270m" in models.output
    assert "scripted-a" in models.output  # the stored model's source
    sets = runner.invoke(app, ["sets"], env={"COLUMNS": "200"})
    assert sets.exit_code == 0 and "quickstart" in sets.output and "roleplay" in sets.output
