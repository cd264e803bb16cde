"""The runner through scripted backends: turn order, caching, failures, incremental models."""

from __future__ import annotations

import pytest

from harness.config import HFModelSpec, SetSpec, Suite
from harness.errors import BackendError
from harness.models.base import ModelBackend
from harness.runner import run_suite
from harness.store import Store
from harness.store.queries import answers_for


def suite_with(*names: str, limit: int | None = None) -> Suite:
    return Suite(name="t", models=[HFModelSpec(name=n, model=f"scripted-{n}") for n in names],
                 sets=[SetSpec(name="quickstart", limit=limit)])


def test_scripted_backend_satisfies_the_protocol(scripted):
    assert isinstance(scripted("a"), ModelBackend)


def test_turn_two_sees_the_models_own_turn_one_answer(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    backend = scripted("a")
    summary = run_suite(suite_with("a"), store, backends={"a": backend})
    assert summary.status == "finished"
    second_turns = [c for c in backend.calls if len(c) == 3]
    assert second_turns, "quickstart has two-turn questions"
    for conv in second_turns:
        assert [m.role for m in conv] == ["user", "assistant", "user"]
        assert conv[1].content.startswith("a answers turn 1:")
    rows = answers_for(store, "a")
    assert len(rows) == summary.totals()["generated"] == len(backend.calls)
    assert {r["turn"] for r in rows} == {1, 2}


def test_rerun_of_a_finished_suite_makes_zero_calls(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    first = run_suite(suite_with("a", "b"), store, backends={"a": scripted("a"), "b": scripted("b")})
    again = {"a": scripted("a"), "b": scripted("b")}
    second = run_suite(suite_with("a", "b"), store, backends=again)
    assert all(not b.calls for b in again.values())
    assert second.totals()["cached"] == first.totals()["generated"] > 0
    assert second.totals()["generated"] == 0


def test_adding_a_model_generates_only_for_it(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    run_suite(suite_with("a"), store, backends={"a": scripted("a")})
    backends = {"a": scripted("a"), "b": scripted("b")}
    run_suite(suite_with("a", "b"), store, backends=backends)
    assert not backends["a"].calls and backends["b"].calls


def test_failed_requests_are_counted_and_retried_by_the_next_run(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")

    def flaky(conv):
        return "HTTP 500" if "lighthouse" in conv[0].content else None

    summary = run_suite(suite_with("a"), store, backends={"a": scripted("a", fail_when=flaky)})
    stats = summary.models[0]
    # The lighthouse question fails on turn 1, so its turn 2 is never attempted.
    assert stats.failed == 1 and stats.generated == stats.planned - 1
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM generation_failures").fetchone()[0] == 1
        assert con.execute("SELECT n_failed FROM runs").fetchone()[0] == 1
    healthy = scripted("a")
    second = run_suite(suite_with("a"), store, backends={"a": healthy})
    assert len(healthy.calls) == 2  # turn 1, then turn 2 built on it
    assert second.models[0].failed == 0


def test_a_chunk_where_everything_fails_stops_the_run(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    down = scripted("a", fail_when=lambda conv: "HTTP 404: model not found")
    with pytest.raises(BackendError, match="4 requests in a row failed: HTTP 404"):
        run_suite(suite_with("a"), store, backends={"a": down})
    with store.read() as con:
        status, error = con.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "404" in error


def test_changed_generation_params_are_a_new_cache_key(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    run_suite(suite_with("a", limit=2), store, backends={"a": scripted("a")})
    suite = suite_with("a", limit=2)
    suite.generation.default = suite.generation.default.model_copy(update={"max_new_tokens": 99})
    backend = scripted("a")
    run_suite(suite, store, backends={"a": backend})
    assert len(backend.calls) > 0


def test_reference_outputs_from_a_file_act_as_a_baseline_model(tmp_path, shared_data, scripted):
    """AlpacaEval-style: the published GPT-4 outputs answer the AlpacaEval instructions, no model run."""
    from harness.config import ReferenceModelSpec
    from harness.errors import DataError
    from harness.models.reference import ReferenceBackend

    folder = shared_data / "alpaca_eval"
    reference = ReferenceModelSpec(name="gpt4_1106", model=str(folder / "alpaca_eval_805_gpt4_1106_preview_reference_outputs.json"))
    suite = Suite(name="ae", models=[reference, HFModelSpec(name="a", model="scripted-a")],
                  sets=[SetSpec(name="ae", path=str(folder / "alpaca_eval_805_instructions.jsonl"),
                                format="alpaca_eval", limit=5)])
    store = Store(tmp_path / "h.duckdb")
    summary = run_suite(suite, store, backends={"a": scripted("a")})
    assert summary.models[0].generated == 5 and summary.models[0].failed == 0
    import json
    from pathlib import Path

    published = {r["instruction"].strip(): r["output"] for r in json.loads(Path(reference.model).read_text())}
    rows = answers_for(store, "gpt4_1106")
    assert [r["text"] for r in rows] == [published[r["prompt"].strip()] for r in rows]
    # A set the file does not cover fails loudly instead of storing nothing quietly.
    uncovered = Suite(name="qs", models=[reference], sets=[SetSpec(name="quickstart", limit=3)])
    with pytest.raises(BackendError, match="no output for this instruction"):
        run_suite(uncovered, store)
    with pytest.raises(DataError, match="reference outputs file not found"):
        ReferenceBackend(ReferenceModelSpec(name="x", model=str(tmp_path / "missing.json")))


def test_questions_are_stored_once_and_a_changed_question_is_updated(tmp_path):
    from harness.sets import Question
    from harness.store.queries import upsert_questions

    store = Store(tmp_path / "h.duckdb")
    first = [Question("s", f"q{i}", "general", (f"turn {i}",), tags=("a",)) for i in range(3)]
    with store.write() as con:
        upsert_questions(con, first)
        upsert_questions(con, first)  # unchanged: nothing written, no duplicate
    changed = [first[0], Question("s", "q1", "math", ("turn one, edited",), tags=("a",)),
               Question("s", "q2", "general", ("turn 2",), tags=("b",)), Question("s", "q3", "general", ("new",))]
    with store.write() as con:
        upsert_questions(con, changed)
        stored = con.execute("SELECT question_id, category, turns, tags FROM questions ORDER BY 1").fetchall()
    assert stored == [("q0", "general", ["turn 0"], ["a"]), ("q1", "math", ["turn one, edited"], ["a"]),
                      ("q2", "general", ["turn 2"], ["b"]), ("q3", "general", ["new"], [])]


def test_answer_key_is_stable_hash_written_out():
    """The planner's fast answer key must be the key every stored answer has."""
    import random

    from harness.models.base import GenerationParams, Message, stable_hash
    from harness.runner import answer_key

    rng = random.Random(0)
    alphabet = ['a', ' ', '"', '\\', '\n', 'é', '中', '\U0001f600', '\ud800', '}', ',', ':', '\x00', '\u2028']
    for _ in range(2000):
        conversation = tuple(Message(rng.choice(["user", "assistant"]), "".join(rng.choices(alphabet, k=rng.randint(0, 12))))
                             for _ in range(rng.randint(1, 4)))
        params = GenerationParams(temperature=rng.choice([0.0, 0.7]), max_new_tokens=rng.choice([16, 512]))
        fingerprint = rng.choice(["fp", "é\"q", "0" * 64])
        assert answer_key(fingerprint, params, conversation) == stable_hash(
            {"model": fingerprint, "params": params.key(), "conversation": [(m.role, m.content) for m in conversation]})
