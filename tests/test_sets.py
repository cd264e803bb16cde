"""Benchmark loaders: generic JSONL, MT-Bench, AlpacaEval; bad lines are named precisely."""

from __future__ import annotations

import json

import pytest

from harness.config import SetSpec
from harness.errors import DataError
from harness.sets import builtin_sets, load_alpaca_eval, load_jsonl, load_mt_bench, load_set


def test_quickstart_set_covers_six_categories_with_references_and_two_turns():
    questions = load_jsonl(builtin_sets()["quickstart"], "quickstart")
    categories = {q.category for q in questions}
    assert len(questions) >= 18
    assert {"writing", "reasoning", "math", "coding", "knowledge", "roleplay"} <= categories
    assert any(len(q.turns) == 2 for q in questions)
    assert all(q.references for q in questions if q.category in {"math", "coding"})


def test_mt_bench_questions_and_references_from_shared_data(shared_data):
    folder = shared_data / "mt_bench"
    questions = load_mt_bench(folder / "question.jsonl", "mt_bench", folder / "reference_answer_gpt-4.jsonl")
    assert len(questions) == 80
    assert all(len(q.turns) == 2 for q in questions)
    assert len({q.category for q in questions}) == 8
    with_refs = [q for q in questions if q.references]
    assert len(with_refs) == 30
    assert {q.category for q in with_refs} <= {"math", "reasoning", "coding"}


def test_alpaca_eval_instructions_from_shared_data(shared_data):
    questions = load_alpaca_eval(shared_data / "alpaca_eval" / "alpaca_eval_805_instructions.jsonl", "ae")
    assert len(questions) == 805
    assert len({q.question_id for q in questions}) == 805
    assert {q.category for q in questions} == {"selfinstruct", "oasst", "koala", "helpful_base", "vicuna"}


def test_set_spec_limit_and_categories():
    spec = SetSpec(name="quickstart", categories=["math", "coding"], limit=3)
    questions = load_set(spec)
    assert len(questions) == 3 and {q.category for q in questions} <= {"math", "coding"}


@pytest.mark.parametrize(
    "lines, expected",
    [
        (['{"id": 1, "turns": ["a"]}', "{not json"], ":2: not valid JSON"),
        (['{"turns": ["a"]}'], ":1: field 'id': missing"),
        (['{"id": 1, "turns": ["a"]}', '{"id": 1, "turns": ["b"]}'], ":2: field 'id': duplicate id"),
        (['{"id": 1, "turns": []}'], ":1: field 'turns': must be a non-empty list"),
        (['{"id": 1, "turns": ["a"], "references": ["x", "y"]}'], "more references than turns"),
        (["[1, 2]"], ":1: expected a JSON object"),
        ([""], "no questions"),
    ],
)
def test_bad_jsonl_names_file_line_and_field(tmp_path, lines, expected):
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_jsonl(path, "bench")
    assert str(err.value).startswith(str(path)) and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_set(SetSpec(name="x", path="nope.jsonl"), tmp_path)
    with pytest.raises(DataError, match="not built in"):
        load_set(SetSpec(name="nope"))


def test_relative_path_resolves_against_suite_folder(tmp_path):
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "a", "prompt": "hello"}) + "\n")
    [question] = load_set(SetSpec(name="mine", path="q.jsonl"), tmp_path)
    assert question.turns == ("hello",) and question.set_name == "mine"
