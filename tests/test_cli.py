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


def test_answers_narrow_to_a_question_and_stop_at_the_limit(tmp_path, scripted):
    from harness.store.queries import answers_for

    db = filled_db(tmp_path, scripted)
    every = answers_for(Store(db), "a")
    one = every[0]["question_id"]
    result = runner.invoke(app, ["answers", "-m", "a", "--question", one, "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("A: ") == sum(r["question_id"] == one for r in every) >= 1
    assert f"/{one} " in result.output and not any(f"/{r['question_id']} " in result.output
                                                   for r in every if r["question_id"] != one)
    limited = runner.invoke(app, ["answers", "-m", "a", "--limit", "2", "--db", str(db)], env={"COLUMNS": "200"})
    assert limited.output.count("A: ") == 2 < len(every) and "--limit N shows more" in limited.output
    everything = runner.invoke(app, ["answers", "-m", "a", "--limit", "0", "--db", str(db)], env={"COLUMNS": "200"})
    assert everything.output.count("A: ") == len(every)
    missing = runner.invoke(app, ["answers", "-m", "a", "--question", "nope", "--db", str(db)])
    assert missing.exit_code != 0 and "for question 'nope'" in str(missing.exception)


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
