"""Generation and judging at once (harness.pipeline): a pair is judged as soon as both its answers
exist, what is judged is exactly what the stages one after the other judge, and a rerun makes no call.

Overlap is shown with events between the stub's handler threads, never with timings.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import duckdb

from harness import api
from harness.config import Suite
from harness.judging import ReadyCalls, _pair_calls, _single_calls
from harness.sets import Question
from tests.stub_server import StubServer, longer_wins


def write_suite(tmp_path: Path, model_urls: dict[str, str], judge_url: str, questions: list[list[str]],
                limit: int = 2, extra: str = "") -> Path:
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": turns}) + "\n"
                                              for i, turns in enumerate(questions)))
    lines = ["name: piped", "models:"]
    lines += [f"  - {{name: {m}, backend: openai, model: {m}, base_url: '{url}', max_concurrency: {limit},"
              " timeout_s: 30, max_retries: 0}" for m, url in model_urls.items()]
    lines += ["sets:", "  - {name: qs, path: q.jsonl}", "judges:", "  - name: j", "    dimensions: [accuracy, language]",
              f"    model: {{name: jm, backend: openai, model: judge, base_url: '{judge_url}', max_concurrency: 2,"
              " timeout_s: 30, max_retries: 0}"]
    (tmp_path / "suite.yaml").write_text("\n".join(lines) + extra + "\n")
    return tmp_path / "suite.yaml"


def rows(db: Path, sql: str) -> set[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return set(con.execute(sql).fetchall())
    finally:
        con.close()


def test_a_pair_is_judged_while_another_model_is_still_generating(tmp_path):
    """The slow model's last answer is held until the judge has been called: run one stage after
    the other, the judge would only be called after that answer, and the wait would time out."""
    judged = threading.Event()
    held = []

    def slow_answer(model, messages):
        if "Question 5?" in messages[-1]["content"]:
            held.append(judged.wait(timeout=20))
        return None

    def verdict(text_a, text_b):
        judged.set()
        return longer_wins(text_a, text_b)

    questions = [[f"Question {i}?"] for i in range(6)]
    with StubServer() as fast, StubServer(answer_for=slow_answer) as slow, StubServer(verdict_for=verdict) as judge:
        suite = write_suite(tmp_path, {"fast": fast.base_url, "slow": slow.base_url}, judge.base_url, questions)
        report = api.run(suite, tmp_path / "h.duckdb", stages=("generate", "judge"))
    assert report.complete
    assert held == [True], "no judge call before the slow model's last answer: the stages did not overlap"
    assert report.judging.totals() == {"judge_calls": 12, "judge_cached": 0, "judge_failed": 0}


def test_overlapped_stages_store_what_the_stages_one_after_the_other_store(tmp_path):
    questions = [[f"Question {i}?", f"And then {i}?"] for i in range(5)] + [["Single turn?"]]
    stores = {}
    with StubServer() as models, StubServer() as judge:
        urls = {m: models.base_url for m in ("a", "b", "c")}
        for mode in ("overlapped", "one after the other"):
            folder = tmp_path / mode.replace(" ", "_")
            folder.mkdir()
            suite = write_suite(folder, urls, judge.base_url, questions)
            stages = [("generate", "judge")] if mode == "overlapped" else [("generate",), ("judge",)]
            for chosen in stages:
                api.run(suite, folder / "h.duckdb", stages=chosen)
            stores[mode] = folder / "h.duckdb"
        calls_before = judge.counts["requests"] + models.counts["requests"]
        report = api.run(write_suite(tmp_path, urls, judge.base_url, questions), stores["overlapped"],
                         stages=("generate", "judge"))
        assert judge.counts["requests"] + models.counts["requests"] == calls_before  # the rerun made no call
    assert report.judging.totals() == {"judge_calls": 3 * 11 * 2, "judge_cached": 66, "judge_failed": 0}
    assert report.generation.totals()["cached"] == 33
    for sql in ("SELECT answer_id, text FROM answers",
                "SELECT call_id, dimension, verdict, model_a, model_b, answer_a, answer_b FROM judgments"):
        assert rows(stores["overlapped"], sql) == rows(stores["one after the other"], sql)
    assert len(rows(stores["overlapped"], "SELECT call_id FROM judgments")) == 66
    assert rows(stores["overlapped"], "SELECT count(*) = count(DISTINCT judgment_id) FROM judgments") == {(True,)}


def _questions(rng: random.Random) -> list[Question]:
    return [Question("s", f"q{i}", "general", tuple(f"turn {t}" for t in range(rng.randint(1, 3))))
            for i in range(8)]


def test_ready_calls_over_any_arrival_order_are_the_calls_planned_from_the_finished_store():
    """Property: whatever order answers arrive in (each model's turns in order, some generations
    failed), ReadyCalls yields the same calls as planning from the final chains."""
    for seed in range(40):
        rng = random.Random(seed)
        questions = _questions(rng)
        mode = rng.choice(["all", "baseline", "sample"])
        suite = Suite.model_validate({
            "name": "p", "sets": [{"name": "s"}],
            "models": [{"name": m, "backend": "openai", "model": m, "base_url": "http://127.0.0.1:9/v1"}
                       for m in ("m1", "m2", "m3", "m4")],
            "judges": [{"name": "g", "kind": "single", "model": {"name": "gm", "backend": "openai", "model": "g",
                                                                  "base_url": "http://127.0.0.1:9/v1"}}],
            "pairs": {"mode": mode, "baseline": "m2", "budget": 25, "seed": seed}})
        chains, arrivals = {}, []
        for model in ("m1", "m2", "m3", "m4"):
            chains[model] = {}
            for question in questions:
                got = rng.randint(0, len(question.turns))  # a failed turn ends the question's chain
                chain = [(f"{model}-{question.question_id}-{t}", f"text {t}") for t in range(1, got + 1)]
                if chain:
                    chains[model][("s", question.question_id)] = chain
                arrivals.append([(model, question, t, aid, text, rng.random() < 0.5)
                                 for t, (aid, text) in enumerate(chain, start=1)])
        ready = ReadyCalls(suite, questions)
        seen = {"pairwise": set(), "single": set()}
        while any(arrivals):  # interleave the per-question sequences at random, each one in turn order
            sequence = rng.choice([a for a in arrivals if a])
            model, *answer = sequence.pop(0)
            pairs, singles = ready.add(model, [tuple(answer)])
            for kind in seen:
                stored, fresh = ready.calls(kind, "fp", pairs, singles)
                seen[kind] |= {c.call_id for c in stored + fresh}
        assert seen["pairwise"] == {c.call_id for c in _pair_calls(suite, questions, chains, "fp")}
        assert seen["single"] == {c.call_id for c in _single_calls(suite, questions, chains, "fp")}
        assert ready.possible("pairwise") >= len(seen["pairwise"])
