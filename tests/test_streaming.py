"""Throughput machinery: the batching writer, streaming calls with no chunk barrier, models on
different endpoints generating at once, and one concurrency limit per endpoint.

Concurrency is shown with events between the stub's handler threads, never with timings: a model
that only generated after another had finished would leave its partner's request waiting.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pytest

from harness import api
from harness.store import Store
from harness.store.writer import RowWriter
from tests.stub_server import StubServer


def answer_row(i: int) -> tuple:
    return (f"a{i}", "fp", "set", f"q{i}", 1, f"text {i}", 1, 2, "stop", 0.1, "{}", "run", None)


def test_the_writer_commits_in_batches_and_everything_on_close(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    with RowWriter(store, flush_rows=10, flush_s=3600) as writer:
        for i in range(25):
            writer.put("answers", [answer_row(i)])
        writer.flush()
        with store.read() as con:
            assert con.execute("SELECT count(*) FROM answers").fetchone()[0] == 25
        writer.put("answers", [answer_row(99)])
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM answers").fetchone()[0] == 26
    assert 3 <= writer.batches <= 4  # 10 + 10 + 5 (+ the last row): batches, not a transaction per row


def test_a_failed_write_reaches_the_producer(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    with pytest.raises(Exception, match="answer_id|NOT NULL|constraint"):
        with RowWriter(store, flush_rows=1) as writer:
            writer.put("answers", [(None, *answer_row(0)[1:])])
            writer.flush()


def write_suite(tmp_path: Path, urls: dict[str, str], limit: int, questions: int = 6) -> Path:
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}?"]}) + "\n"
                                              for i in range(questions)))
    lines = ["name: s", "models:"]
    lines += [f"  - {{name: {m}, backend: openai, model: {m}, base_url: '{url}', max_concurrency: {limit},"
              " timeout_s: 30, max_retries: 0}" for m, url in urls.items()]
    lines += ["sets:", "  - {name: qs, path: q.jsonl}"]
    (tmp_path / "suite.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "suite.yaml"


def test_models_on_different_endpoints_generate_at_the_same_time(tmp_path):
    arrived = {"a": threading.Event(), "b": threading.Event()}
    met = []

    def meet(me: str, other: str):
        def answer(model, messages):
            arrived[me].set()
            met.append(arrived[other].wait(timeout=20))  # sequential models would time out here
            return None
        return answer

    with StubServer(answer_for=meet("a", "b")) as a, StubServer(answer_for=meet("b", "a")) as b:
        report = api.run(write_suite(tmp_path, {"a": a.base_url, "b": b.base_url}, limit=2), tmp_path / "h.duckdb",
                         stages=("generate",))
    assert report.complete and len(met) == 12
    assert all(met), "one model waited for the other: they did not generate concurrently"


def test_models_sharing_an_endpoint_share_its_limit(tmp_path):
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    full = threading.Event()

    def answer(model, messages):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            if state["now"] >= 3:
                full.set()
        full.wait(timeout=5)  # hold the request until the endpoint is as busy as it may get
        with lock:
            state["now"] -= 1
        return None

    with StubServer(answer_for=answer) as stub:
        report = api.run(write_suite(tmp_path, {"a": stub.base_url, "b": stub.base_url}, limit=3),
                         tmp_path / "h.duckdb", stages=("generate",))
    assert report.complete
    assert state["max"] == 3  # two models x 3 each would reach 6


def test_streaming_keeps_every_slot_busy_across_what_used_to_be_chunk_boundaries(tmp_path):
    """One slow request must not hold back the rest: with chunks of 4 x concurrency, the other
    slots idled until the slowest request of the chunk came back."""
    release = threading.Event()
    served_while_held, straggler = [], []

    def answer(model, messages):
        if "Question 0?" in messages[-1]["content"]:
            straggler.append(release.wait(timeout=20))  # answered once everything else is done
        elif not release.is_set():
            served_while_held.append(1)
            if len(served_while_held) == 23:
                release.set()
        return None

    with StubServer(answer_for=answer) as stub:
        report = api.run(write_suite(tmp_path, {"a": stub.base_url}, limit=2, questions=24), tmp_path / "h.duckdb",
                         stages=("generate",))
    assert report.complete
    assert straggler == [True]  # all other 23 answers came while the straggler was in flight
    con = duckdb.connect(str(tmp_path / "h.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM answers").fetchone()[0] == 24
    con.close()
