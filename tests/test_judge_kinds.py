"""More kinds of judge behind the one Judge protocol: FastChat templates from a file, a reward
model, the DPO implicit reward, panels, and inter-judge agreement (kappa, Krippendorff's alpha)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.config import JudgeSpec
from harness.errors import ConfigError, DataError
from harness.judging import build_judge
from harness.models.base import Completion, Message
from judges.base import Judge, JudgeOutput, PairItem, SingleItem
from judges.fastchat import FastChatJudge, FastChatTemplates, load_judge_prompts, parse
from judges.panel import (VERDICTS, PanelJudge, agreement_units, combine_votes, krippendorff_alpha_nominal, log_odds_weight,
                          pairwise_kappas)
from judges.reward import stored_scores, verdict_by_margin
from tests.conftest import config_error_line

PROMPTS = Path(__file__).parent / "data" / "judges" / "judge_prompts.jsonl"
SYS_PAIR = ("You referee two assistants. Decide which reply serves the user better and finish with [[A]], [[B]] "
            "or [[C]] for a draw.")


class Replies:
    """A backend answering every call with the next scripted reply (the last one repeats); records prompts."""

    def __init__(self, *replies: str):
        self.replies, self.seen, self.chunk_size = list(replies), [], 8

    def fingerprint(self) -> str:
        return "replies"

    def generate(self, conversations, params):
        self.seen += conversations
        return [Completion(text=self.replies.pop(0) if len(self.replies) > 1 else self.replies[0])
                for _ in conversations]

    def close(self) -> None:
        pass


def _pair(turn=1, reference=None, turns=("Q1?", "Q2?"), a=("a1", "a2"), b=("b1", "b2"), category="writing"):
    return PairItem("q", category, turns, a, b, turn, reference)


def _fastchat(name="pair-v2", *replies, kind="pairwise", path=PROMPTS, retries=0):
    return FastChatJudge("fc", Replies(*(replies or ("[[B]]",))), FastChatTemplates(path, name), kind=kind,
                         max_parse_retries=retries)


# ---------------------------------------------------------------- FastChat templates


def test_fastchat_pair_v2_is_rendered_and_parsed_as_fastchat_does():
    judge = _fastchat("pair-v2", "Reply B is more careful. [[B]]")
    [out] = judge.judge([_pair()])
    assert judge.backend.seen[0] == (
        Message("system", SYS_PAIR),
        Message("user", "[Question]\nQ1?\n\n[Reply A]\na1\n[End A]\n\n[Reply B]\nb1\n[End B]"))
    assert out["overall"].verdicts == {"overall": "B"} and judge.dimensions == ("overall",)
    assert isinstance(judge, Judge) and "not injection-safe" in judge.card_notes[0]


def test_fastchat_picks_the_math_and_multi_turn_variants_like_gen_judgment():
    judge = _fastchat("pair-v2", "[[C]]")
    judge.judge([_pair(reference="42"), _pair(turn=2)])
    math_user, multi_user = (conv[-1].content for conv in judge.backend.seen)
    assert math_user == "[Question]\nQ1?\n\n[Reference]\n42\n[End reference]\n\n[Reply A]\na1\n[End A]\n\n[Reply B]\nb1\n[End B]"
    assert multi_user == ("<|A|>\nUser: Q1?\nA: a1\nUser: Q2?\nA: a2\n<|/A|>\n\n<|B|>\nUser: Q1?\nB: b1\nUser: Q2?\n"
                          "B: b2\n<|/B|>")
    assert judge.backend.seen[0][0].content.endswith("Check both against the reference.")


def test_fastchat_items_it_has_no_prompt_for_are_unparsed_without_a_model_call():
    judge = _fastchat("pair-v2", "[[A]]")
    third = PairItem("q", "writing", ("1", "2", "3"), ("a",) * 3, ("b",) * 3, 3)
    math_turn_two = _pair(turn=2, reference="only turn 2's reference")  # FastChat needs ref_answer_1 too
    outputs = judge.judge([third, math_turn_two])
    assert judge.backend.seen == []
    assert [o["overall"].parsed for o in outputs] == [False, False]
    assert outputs[0]["overall"].raw == "not judged: FastChat's templates judge turns 1 and 2 only; this is turn 3"
    assert "needs ref_answer_1" in outputs[1]["overall"].raw


def test_a_turn_two_math_item_with_both_references_renders_like_gen_judgment(tmp_path):
    from harness.judging import _Call
    from harness.sets import Question

    judge = _fastchat("pair-v2", "[[A]]")
    item = _pair(turn=2, reference="ref 2")
    both = PairItem(*[getattr(item, f) for f in ("question_id", "category", "turns", "answers_a", "answers_b",
                                                 "turn", "reference")], references=("ref 1", "ref 2"))
    [out] = judge.judge([both])
    assert out["overall"].verdicts == {"overall": "A"}
    user = judge.backend.seen[0][-1].content
    assert user.startswith("<|REF|>\nQ1? -> ref 1\n") and "ref 2" in user
    # the pipeline's items carry every turn's reference of the question
    q = Question("mt", "q", "math", ("Q1?", "Q2?"), references=("ref 1", "ref 2"))
    call = _Call("c", q, 2, "x", "y", [("x1", "a1"), ("x2", "a2")], [("y1", "b1"), ("y2", "b2")])
    assert call.with_item("salt").item.references == ("ref 1", "ref 2")


def test_fastchat_verdict_parsing_follows_fastchat_order_and_retries_then_stays_unparsed():
    assert parse("[[A]]", "[[B]] then [[A]]") == ("A", None)  # FastChat tests [[A]] first
    assert parse("[[A]]", "a draw [[C]]") == ("tie", None)
    assert parse("[[A]]", "[A] is better") == (None, None)
    assert parse("[[rating_a,rating_b]]", "[[7, 7.05]]") == ("tie", None)  # within TIE_DELTA 0.1
    assert parse("[[rating_a,rating_b]]", "scores [8,3]") == ("A", None)  # the single-bracket backup
    judge = _fastchat("pair-v2", "no marker", "still none", "[[A]]", retries=2)
    [out] = judge.judge([_pair()])
    assert out["overall"].verdicts == {"overall": "A"} and out["overall"].attempts == 3
    judge = _fastchat("pair-v2", "no marker", retries=1)
    [out] = judge.judge([_pair()])
    assert not out["overall"].parsed and out["overall"].raw == "no marker"


def test_fastchat_single_grade_reads_the_rating_as_fastchat_does():
    judge = _fastchat("single-v1", "Solid answer. Rating: [[7.5]]", kind="single")
    item = SingleItem("q", "writing", ("Q1?",), ("a1",), 1)
    [out] = judge.judge([item])
    assert out["overall"].score == 7.5 and out["overall"].verdicts == {}
    assert judge.backend.seen[0] == (
        Message("system", "You are a helpful assistant."),
        Message("user", "[Instruction]\nYou grade one assistant reply from 1 to 10 and finish with the grade written "
                        "as [[7]].\n\n[Question]\nQ1?\n\n[Reply]\na1\n[End reply]"))
    assert parse("[[rating]]", "I'd say [8]") == (None, 8.0)  # FastChat's backup pattern
    assert parse("[[rating]]", "no grade") == (None, None)
    math = _fastchat("single-v1", "[[3]]", kind="single")
    [out] = math.judge([SingleItem("q", "math", ("1+1?",), ("3",), 1, reference="2")])
    assert out["overall"].score == 3.0 and "[Reference]\n2\n" in math.backend.seen[0][-1].content


def test_fastchat_fingerprint_hashes_the_template_text(tmp_path):
    copy = tmp_path / "judge_prompts.jsonl"
    shutil.copy(PROMPTS, copy)
    before = _fastchat(path=copy).fingerprint()
    assert _fastchat(path=copy).fingerprint() == before
    copy.write_text(copy.read_text().replace("[Reply A]", "[Answer A]"))
    assert _fastchat(path=copy).fingerprint() != before


def test_bad_fastchat_files_and_names_are_one_line_errors(tmp_path):
    bad = tmp_path / "p.jsonl"
    record = json.loads(PROMPTS.read_text().splitlines()[0])
    bad.write_text(json.dumps(record | {"output_format": "[[X]]"}) + "\n")
    with pytest.raises(DataError, match=rf"^{bad}:1: field 'output_format': '\[\[X\]\]': a pairwise template uses"):
        load_judge_prompts(bad)
    bad.write_text(json.dumps(record | {"prompt_template": "{question} {answer}"}) + "\n")
    with pytest.raises(DataError, match=r"placeholder \{answer\} is not one FastChat fills for a pairwise template"):
        load_judge_prompts(bad)
    with pytest.raises(ConfigError, match="prompt_name: 'pair-v9' is not in"):
        FastChatTemplates(PROMPTS, "pair-v9")
    bad.write_text(json.dumps(record) + "\n")  # pair-v2 alone: FastChat also uses its math / multi-turn ones
    with pytest.raises(ConfigError, match="lacks pair-math-v1, pair-math-v1-multi-turn, pair-v2-multi-turn"):
        FastChatTemplates(bad, "pair-v2")
    with pytest.raises(ConfigError, match="single-v1 is a FastChat single template: set kind: single"):
        FastChatJudge("fc", Replies("x"), FastChatTemplates(PROMPTS, "single-v1"))


def test_a_suite_fastchat_judge_reads_its_prompt_file_relative_to_the_suite(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    shutil.copy(PROMPTS, folder / "prompts.jsonl")
    suite = {"name": "s", "models": [{"name": "m", "backend": "hf", "model": "x"}], "sets": [{"name": "quickstart"}],
             "judges": [{"name": "fc", "style": "fastchat", "prompt_file": "prompts.jsonl", "prompt_name": "single-v1",
                         "kind": "single", "model": {"name": "j", "backend": "hf", "model": "x"}}]}
    (folder / "s.yaml").write_text(yaml.safe_dump(suite))
    from harness.config import load_suite

    spec = load_suite(folder / "s.yaml")[0].judges[0]
    assert spec.prompt_file == str(folder / "prompts.jsonl") and spec.dimensions == ["overall"]
    judge = spec.judge_on(Replies("[[9]]"))
    assert isinstance(judge, FastChatJudge) and judge.kind == "single"


# ---------------------------------------------------------------- JudgeSpec: every new field validated

HF = {"name": "j", "backend": "hf", "model": "x"}


@pytest.mark.parametrize("judge, message", [
    ({"style": "prompt", "prompt_file": "p.jsonl"}, "prompt_file is used only with style: fastchat, not prompt"),
    ({"style": "prompt", "prompt_name": "pair-v2"}, "prompt_name is used only with style: fastchat"),
    ({"style": "prompt", "tie_margin": 0.5}, "tie_margin is used only with style: reward or dpo_reward"),
    ({"style": "reward", "beta": 0.5}, "beta is used only with style: dpo_reward, not reward"),
    ({"style": "reward", "reference": HF}, "reference is used only with style: dpo_reward"),
    ({"style": "prompt", "members": [{"name": "a", "model": HF}]}, "members is used only with style: panel"),
    ({"style": "reward", "combine": "weighted"}, "combine is used only with style: panel"),
    ({"style": "reward", "weights": {"a": 1}}, "weights is used only with style: panel"),
    ({"style": "reward", "tie_margin": -1}, "tie_margin: Input should be greater than or equal to 0"),
    ({"style": "dpo_reward", "beta": 0, "reference": HF}, "beta: Input should be greater than 0"),
    ({"style": "fastchat", "prompt_file": "p.jsonl"}, "style: fastchat needs prompt_file"),
    ({"style": "reward", "kind": "single"}, "kind: style: reward compares two answers' scores: use kind: pairwise"),
    ({"style": "reward", "dimensions": ["accuracy"]}, "dimensions: style: reward gives one verdict, 'overall'"),
    ({"style": "reward", "decode": "choice"}, "decode: choice picks PandaLM's 1 / 2 / Tie: use it with style: pandalm"),
    ({"style": "dpo_reward"}, "reference: missing: without it the reference is model with its LoRA adapter"),
    ({"style": "rewrad"}, "style: Input should be 'prompt', 'pandalm', 'fastchat', 'reward', 'dpo_reward' or 'panel'"),
    ({"style": "reward", "tie_margn": 0.1}, "tie_margn: Extra inputs are not permitted: remove it"),
])
def test_every_new_judge_field_is_checked_with_one_line(tmp_path, judge, message):
    suite = {"name": "s", "models": [{"name": "m", "backend": "hf", "model": "x"}], "sets": [{"name": "quickstart"}],
             "judges": [{"name": "j", "model": HF} | judge]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert message in config_error_line(path)


def _member(name, **extra):
    return {"name": name, "model": HF} | extra


@pytest.mark.parametrize("panel, message", [
    ({"model": HF, "members": [_member("a"), _member("b")]}, "style: panel takes `members`, not `model`"),
    ({"members": [_member("a")]}, "members: a panel needs at least two judges with unique names"),
    ({"members": [_member("a"), _member("a")]}, "members: a panel needs at least two judges with unique names"),
    ({"members": [_member("a"), _member("b", kind="single")]}, "kind: a panel and all its members must be pairwise"),
    ({"members": [_member("a"), _member("b")], "combine": "weighted", "weights": {"a": 1.0}},
     "weights: combine: weighted needs a weight > 0 for each member (a, b)"),
    ({"members": [_member("a"), _member("b", style="reward")], "dimensions": ["accuracy"]},
     "dimensions: 'accuracy' is not judged by every member (they share: nothing)"),
])
def test_panel_specs_are_checked_with_one_line(tmp_path, panel, message):
    suite = {"name": "s", "models": [{"name": "m", "backend": "hf", "model": "x"}], "sets": [{"name": "quickstart"}],
             "judges": [{"name": "p", "style": "panel"} | panel]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert message in config_error_line(path)


def test_scoring_styles_default_to_one_overall_verdict_and_panels_to_shared_dimensions():
    reward = JudgeSpec.model_validate({"name": "r", "style": "reward", "model": HF, "tie_margin": 0.2})
    assert reward.dimensions == ["overall"] and reward.tie_margin == 0.2
    assert JudgeSpec.model_validate(reward.model_dump()) == reward  # stored spec JSON validates again
    panel = JudgeSpec.model_validate({"name": "p", "style": "panel", "members": [
        _member("a", dimensions=["accuracy", "language"]), _member("b", dimensions=["language", "accuracy"])]})
    assert panel.dimensions == ["accuracy", "language"] and panel.model is None
    assert [f for f, _ in panel.model_specs()] == ["members.0.model", "members.1.model"]


# ---------------------------------------------------------------- reward model on a tiny random classifier


@pytest.fixture(scope="module")
def tiny_reward_path(tmp_path_factory, smollm2_path) -> Path:
    """A 2-layer random llama with a one-label sequence-classification head and SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-reward")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


ANSWERS = ("Paris.", "The capital of France is Paris, a city on the Seine.", "I do not know.", "Lyon, I think.",
           "It is Paris; it has been the capital for centuries.")


def _direct_reward(path: Path, answer: str) -> float:
    """The score of one unpadded conversation, computed without the judge or the backend."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": "Capital of France?"},
                                   {"role": "assistant", "content": answer}], tokenize=True, return_dict=True)
    with torch.inference_mode():
        return float(model(input_ids=torch.tensor([ids["input_ids"]])).logits[0, 0])


def test_reward_judge_verdict_is_the_sign_of_the_score_difference_beyond_the_margin(tiny_reward_path):
    direct = {a: _direct_reward(tiny_reward_path, a) for a in ANSWERS}
    diffs = sorted(abs(direct[x] - direct[y]) for x in ANSWERS for y in ANSWERS if x < y)
    margin = (diffs[3] + diffs[4]) / 2  # some pairs within the margin (ties), the rest decided
    spec = JudgeSpec.model_validate({"name": "rm", "style": "reward", "tie_margin": margin,
                                     "model": {"name": "rm", "backend": "hf", "model": str(tiny_reward_path),
                                               "batch_size": 3, "threads": 1}})
    judge = build_judge(spec)
    pairs = [(x, y) for x in ANSWERS for y in ANSWERS if x != y]  # both orders of every pair
    items = [PairItem("q", "c", ("Capital of France?",), (x,), (y,), 1) for x, y in pairs]
    scored, real = [], judge.backend.score_sequences
    judge.backend.score_sequences = lambda convs: scored.extend(convs) or real(convs)
    outputs = judge.judge(items)
    # every answer scored once, though each appears in 2 * (len(ANSWERS) - 1) shown pairs
    assert sorted(conv[-1].content for conv in scored) == sorted(ANSWERS)
    assert [o["overall"].raw for o in judge.judge(items[:2])] == [o["overall"].raw for o in outputs[:2]]
    assert len(scored) == len(ANSWERS)  # asked again: from memory
    verdicts = {}
    for (x, y), out in zip(pairs, outputs):
        got = out["overall"]
        score_x, score_y = stored_scores(got.raw)
        assert score_x == pytest.approx(direct[x], abs=1e-4) and score_y == pytest.approx(direct[y], abs=1e-4)
        expected = "A" if direct[x] - direct[y] > margin else "B" if direct[y] - direct[x] > margin else "tie"
        assert got.verdicts == {"overall": expected} and got.raw.startswith(expected + "\n")
        assert got.choice_logprobs == (score_x, score_y, (score_x + score_y + margin) / 2)
        verdicts[(x, y)] = expected
    mirror = {"A": "B", "B": "A", "tie": "tie"}
    assert all(verdicts[(y, x)] == mirror[v] for (x, y), v in verdicts.items())  # both orders consistent
    assert {"A", "B", "tie"} <= set(verdicts.values())
    assert verdict_by_margin(1.0, 0.5, 0.5) == "tie" and verdict_by_margin(1.0, 0.4, 0.5) == "A"


def test_reward_judge_needs_a_reward_head_and_a_scoring_backend(tiny_model_path):
    spec = JudgeSpec.model_validate({"name": "rm", "style": "reward",
                                     "model": {"name": "rm", "backend": "hf", "model": str(tiny_model_path)}})
    judge = build_judge(spec)
    with pytest.raises(ConfigError, match="has no reward head .*: point at a trained reward model"):
        judge.judge([_pair()])
    with pytest.raises(ConfigError, match="style: reward needs a backend that scores sequences"):
        spec.judge_on(Replies("x"))


# ---------------------------------------------------------------- DPO implicit reward


def _dpo_spec(model: dict, **extra) -> JudgeSpec:
    return JudgeSpec.model_validate({"name": "dpo", "style": "dpo_reward", "model": model} | extra)


def test_dpo_reward_of_a_model_against_itself_is_zero_and_a_tie(tiny_model_path):
    model = {"name": "p", "backend": "hf", "model": str(tiny_model_path), "threads": 1}
    judge = build_judge(_dpo_spec(model, reference=model | {"name": "ref"}))
    [out] = judge.judge([_pair(a=("Paris.",), b=("The capital is Paris.",), turns=("Capital of France?",))])
    assert stored_scores(out["overall"].raw) == (0.0, 0.0) and out["overall"].verdicts == {"overall": "tie"}


def test_completion_logprobs_match_a_plain_forward_pass_despite_padding(tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.config import HFModelSpec
    from harness.models.hf import HFBackend

    backend = HFBackend(HFModelSpec(name="p", model=str(tiny_model_path), batch_size=4, threads=1))
    convs = [(Message("user", "Hi"), Message("assistant", a)) for a in ANSWERS]
    got = backend.completion_logprobs(convs)
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    for conv, value in zip(convs, got):
        prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant",
                                        "content": conv[1].content}], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logprobs = model(input_ids=torch.tensor([p_ids + a_ids])).logits[0].log_softmax(-1)
        expected = sum(float(logprobs[len(p_ids) - 1 + k, t]) for k, t in enumerate(a_ids))
        assert value == pytest.approx(expected, abs=1e-3)


def test_dpo_reward_after_dpo_training_prefers_what_it_was_trained_to_prefer(tiny_model_path, tmp_path):
    from harness.store import Store
    from trainers import train_dpo
    from trainers.recipe import Recipe

    prompt, chosen, rejected = "Name a primary colour.", "Red.", "Seven hundred bananas in a trench coat."
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    recipe = Recipe.model_validate({
        "name": "tiny-dpo", "base": str(tiny_model_path), "data": {"path": str(data)},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "training": {"max_steps": 6, "batch_size": 1, "max_length": 64, "lr": 0.05, "seed": 0, "threads": 1},
        "dpo": {"beta": 0.1}, "output_dir": str(tmp_path / "out")})
    result = train_dpo(recipe, Store(tmp_path / "h.duckdb"))
    policy = result.spec.model_dump() | {"threads": 1}
    judge = build_judge(_dpo_spec(policy, beta=0.1))  # reference: the same model, adapter switched off
    chosen_first, rejected_first = judge.judge([
        _pair(turns=(prompt,), a=(chosen,), b=(rejected,)), _pair(turns=(prompt,), a=(rejected,), b=(chosen,))])
    assert chosen_first["overall"].verdicts == {"overall": "A"}
    assert rejected_first["overall"].verdicts == {"overall": "B"}
    r_chosen, r_rejected = stored_scores(chosen_first["overall"].raw)
    assert r_chosen - r_rejected > 0 and result.curve("rewards/margins")[-1] > 0


# ---------------------------------------------------------------- panels


def test_combine_votes_exact_cases():
    assert combine_votes([("A", 1), ("A", 1), ("B", 1)]) == "A"
    assert combine_votes([("A", 1), ("B", 1)]) == "tie"  # a split panel decides nothing
    assert combine_votes([("A", 1), ("tie", 1), ("B", 0.5)]) == "tie"  # A and tie share the top count
    assert combine_votes([("A", 2.2), ("B", 1), ("B", 1)]) == "A"  # weighted: 2.2 > 2
    assert combine_votes([("A", 1.9), ("B", 1), ("B", 1)]) == "B"
    assert combine_votes([(None, 5), ("B", 0.1)]) == "B"  # unparsed members do not vote
    assert combine_votes([(None, 1), (None, 1)]) is None
    assert log_odds_weight(0.75) == pytest.approx(math.log(3))
    with pytest.raises(ValueError):
        log_odds_weight(0.5)


class Fixed:
    """A pairwise judge with fixed verdicts per item index (None: unparsed, 'error': a failed call)."""

    kind, chunk_size, card_notes = "pairwise", 4, ("note",)

    def __init__(self, name, verdicts, dimensions=("overall",)):
        self.name, self.verdicts, self.dimensions, self.closed = name, verdicts, dimensions, False

    def fingerprint(self):
        return f"fixed-{self.name}"

    def judge(self, items):
        out = []
        for i, _ in enumerate(items):
            v = self.verdicts[i]
            o = (JudgeOutput(raw="", error="down") if v == "error" else
                 JudgeOutput(raw=str(v), verdicts={d: v for d in self.dimensions} if v else {}))
            out.append({d: o for d in self.dimensions})
        return out

    def resampled(self, sample):
        return self

    def close(self):
        self.closed = True


def test_panel_majority_and_weighted_verdicts_per_item():
    members = [Fixed("x", ["A", "A", "B", None, "error"]), Fixed("y", ["A", "B", "B", None, "A"]),
               Fixed("z", ["B", "B", "tie", "tie", "A"])]
    panel = PanelJudge("p", members)
    outs = [o["overall"] for o in panel.judge([_pair()] * 5)]
    assert [o.verdicts.get("overall") for o in outs[:4]] == ["A", "B", "B", "tie"]
    assert outs[0].raw == "A\n(panel majority: x=A (1), y=A (1), z=B (1))"
    assert outs[4].error == "x: down" and not outs[4].parsed
    weighted = PanelJudge("p", members, combine="weighted", weights={"x": 0.2, "y": 0.2, "z": 1.0})
    assert [o["overall"].verdicts.get("overall") for o in weighted.judge([_pair()] * 4)] == ["B", "B", "tie", "tie"]
    assert weighted.fingerprint() != panel.fingerprint() and panel.card_notes == ("member x: note",) * 1 + (
        "member y: note", "member z: note")
    panel.close()
    assert all(m.closed for m in members)


def test_panel_from_a_suite_spec_builds_its_members(tmp_path, tiny_reward_path):
    rm = {"name": "rm", "backend": "hf", "model": str(tiny_reward_path), "threads": 1}
    spec = JudgeSpec.model_validate({"name": "panel", "style": "panel", "combine": "weighted",
                                     "weights": {"r1": 1.0, "r2": 2.0}, "members": [
                                         {"name": "r1", "style": "reward", "model": rm},
                                         {"name": "r2", "style": "reward", "tie_margin": 100.0, "model": rm}]})
    panel = build_judge(spec)
    assert isinstance(panel, PanelJudge) and [m.name for m in panel.members] == ["r1", "r2"]
    [out] = panel.judge([_pair(a=("Paris.",), b=("I do not know.",), turns=("Capital of France?",))])
    assert out["overall"].verdicts == {"overall": "tie"}  # r2 (weight 2) calls everything within 100 a tie


# ---------------------------------------------------------------- inter-judge agreement


def test_pairwise_kappa_on_a_hand_computed_example():
    one = dict(enumerate(["A", "A", "B", "B", "tie", "tie", "A", "B"]))
    two = dict(enumerate(["A", "B", "B", "B", "tie", "A", "A", "B"]))
    # observed 6/8; chance (3*3 + 3*4 + 2*1) / 64 = 23/64; kappa = (48 - 23) / (64 - 23) = 25/41
    kappas = pairwise_kappas({"one": one, "two": two, "three": {99: "A"}})
    assert kappas[("one", "two")] == pytest.approx(25 / 41, abs=1e-12)
    assert kappas[("one", "three")] is None  # no shared item


def test_krippendorff_alpha_nominal_matches_hand_computation_and_the_textbook_example():
    # two coders, (A,A) (A,B) (B,B) (B,B): n_A = 3, n_B = 5, n = 8, 2 disagreeing pairs:
    # alpha = 1 - (n - 1) * 2 / (2 * 3 * 5) = 1 - 14/30 = 8/15
    assert krippendorff_alpha_nominal([["A", "A"], ["A", "B"], ["B", "B"], ["B", "B"]]) == pytest.approx(8 / 15)
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, missing
    # values; nominal alpha = 0.743
    n = None
    rows = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert round(krippendorff_alpha_nominal(list(zip(*rows))), 3) == 0.743
    assert krippendorff_alpha_nominal([["A", "A"], ["A", None]]) is None  # all agree: no expected disagreement
    labels = {"x": {1: "A", 2: "B"}, "y": {1: "A", 2: "A", 3: "B"}}
    assert agreement_units(labels) == [["A", "A"], ["B", "A"], [None, "B"]]


# --- where a judge's parts are vetted: the service's data roots, the Ray executor ---------------------------
def test_the_service_confines_every_model_and_prompt_file_a_panel_reads(tmp_path):
    from harness.config import Suite
    from harness.errors import HarnessError
    from harness.service.security import confine, suite_paths
    from harness.service.submission import resources

    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (root, outside):
        folder.mkdir()
        (folder / "prompts.jsonl").write_text("{}\n")
    fastchat = {"name": "fc", "style": "fastchat", "prompt_file": str(outside / "prompts.jsonl"),
                "prompt_name": "pair-v2", "model": {"name": "fm", "backend": "openai", "model": "gpt",
                                                     "base_url": "http://127.0.0.1:9/v1"}}
    reward = {"name": "rw", "style": "reward", "model": {"name": "rm", "backend": "hf", "model": str(outside)}}
    suite = Suite.model_validate({"name": "s", "models": [{"name": "m", "backend": "openai", "model": "m",
                                                           "base_url": "http://127.0.0.1:9/v1"}],
                                  "sets": [{"name": "quickstart"}],
                                  "judges": [{"name": "panel", "style": "panel", "members": [fastchat, reward]}]})
    fields = dict(suite_paths(suite))
    assert fields == {"judges.0.members.0.prompt_file": str(outside / "prompts.jsonl"),
                      "judges.0.members.1.model.model": str(outside)}
    with pytest.raises(HarnessError, match=r"^s.yaml: judges.0.members.0.prompt_file: .*outside the data roots"):
        confine("s.yaml", suite_paths(suite), [root])
    assert resources(suite, {}) == [f"local-model:{outside}"]  # the member's weights load on the worker's host


def test_the_ray_executor_refuses_judges_it_cannot_place_yet():
    from harness.config import Suite
    from harness.executors import check_executor

    member = {"name": "pj", "style": "pandalm", "decode": "choice", "dimensions": ["overall"],
              "model": {"name": "jm", "backend": "hf", "model": "smollm2-135m-instruct"}}
    reward = {"name": "rw", "style": "reward", "model": {"name": "rm", "backend": "hf", "model": "smollm2-135m-instruct"}}
    for judge in ({"name": "panel", "style": "panel", "members": [member, reward]}, reward):
        suite = Suite.model_validate({"name": "s", "models": [{"name": "m", "backend": "openai", "model": "m",
                                                               "base_url": "http://127.0.0.1:9/v1"}],
                                      "sets": [{"name": "quickstart"}], "judges": [judge], "executor": {"kind": "ray"}})
        with pytest.raises(ConfigError, match=f"judge '{judge['name']}': style: {judge['style']} runs on the local"):
            check_executor(suite, "s.yaml")
        check_executor(suite.model_copy(update={"executor": suite.executor.model_copy(update={"kind": "local"})}),
                       "s.yaml")


# ---------------------------------------------------------------- a panel on labelled pairs, from its members' runs


def test_member_agreement_intervals_are_the_reference_functions_on_every_resample():
    """The bootstrap's fast path (per-pair count matrices, summed) gives exactly the reference alpha and
    kappa on the full sample, and on a resample equals the reference on that resample's labels."""
    import random

    from judges.panel import _alphas, _coincidences, _confusions, _kappas, member_agreement

    rng = random.Random(3)
    labels = {m: {(p, o): rng.choice(VERDICTS) for p in range(30) for o in (1, 2) if rng.random() > 0.1}
              for m in ("x", "y", "z")}
    pairs = sorted({u[0] for per in labels.values() for u in per})
    metrics = {m.name: m for m in member_agreement(labels, lambda u: u[0], 300, 0.95, 0)}
    assert metrics["members_alpha"].value == krippendorff_alpha_nominal(agreement_units(labels))
    assert float(_alphas(_coincidences(labels, pairs, lambda u: u[0]).sum(0))) == pytest.approx(
        metrics["members_alpha"].value, abs=1e-12)
    for (x, y), kappa in pairwise_kappas(labels).items():
        assert metrics[f"kappa: {x} vs {y}"].value == kappa
        assert float(_kappas(_confusions(labels[x], labels[y], pairs, lambda u: u[0]).sum(0))) == pytest.approx(
            kappa, abs=1e-12)
    # one resample, by hand: pairs 0, 0, 5 (a pair drawn twice counts twice)
    drawn = [0, 0, 5]
    copies = {m: {(k, u[1]): v for k, p in enumerate(drawn) for u, v in per.items() if u[0] == p}
              for m, per in labels.items()}
    counts = np.bincount(drawn, minlength=len(pairs))
    fast = _alphas(np.einsum("c,cij->ij", counts, _coincidences(labels, pairs, lambda u: u[0])))
    assert float(fast) == pytest.approx(krippendorff_alpha_nominal(agreement_units(copies)), abs=1e-12)
    assert all(m.ci_low <= m.value <= m.ci_high and m.n == len(pairs) for m in metrics.values())


def test_a_panel_on_labelled_pairs_is_its_members_stored_runs_combined(tmp_path):
    from harness.judge_eval_live import evaluate_pairs
    from harness.store import Store
    from tests.test_judge_eval_metrics import SCRIPT, ScriptedJudge, two_way

    class Contrary(ScriptedJudge):
        """Always the other answer than the scripted judge (a tie stays a tie)."""

        def fingerprint(self):
            return "contrary-v1"

        def judge(self, items):
            mirror = {"A": "B", "B": "A", "tie": "tie"}
            return [{"overall": JudgeOutput(raw="", verdicts={"overall": mirror[o["overall"].verdicts["overall"]]}
                                            if o["overall"].verdicts else {})} for o in super().judge(items)]

    store = Store(tmp_path / "panel.duckdb")
    x, y, z = ScriptedJudge("x"), Contrary("y"), ScriptedJudge("z")
    z.fingerprint = lambda: "scripted-z"
    evaluate_pairs(x, two_way(), "scripted_2way", store, data_files=[], rounds=100)
    assert x.calls == 8
    panel = PanelJudge("p", [x, y, z])
    part, outcomes = evaluate_pairs(panel, two_way(), "scripted_2way", store, data_files=[], rounds=100)
    assert (x.calls, y.calls, z.calls) == (8, 8, 8)  # x's stored run is reused: no judge asked twice
    # x and z agree, y contradicts them: the majority is x's verdict wherever x parsed
    for o in outcomes:
        for orientation, verdict in o.verdicts.items():
            said = SCRIPT[(o.pair_id, orientation)]
            assert verdict == (None if said is None else said if orientation == 1 else
                               {"A": "B", "B": "A", "tie": "tie"}[said])
    metrics = part.run.metrics
    assert metrics["kappa: x vs z"].value == 1.0 and metrics["kappa: x vs y"].value < 0
    assert metrics["members_alpha"].value == krippendorff_alpha_nominal(agreement_units(
        {m: {(r["item_id"], r["item_order"]): r["verdict"] for r in run.rows.values() if r["verdict"]}
         for m, run in (("x", evaluate_pairs(x, two_way(), "scripted_2way", store, data_files=[], rounds=100)[0]),
                        ("y", evaluate_pairs(y, two_way(), "scripted_2way", store, data_files=[], rounds=100)[0]),
                        ("z", evaluate_pairs(z, two_way(), "scripted_2way", store, data_files=[], rounds=100)[0]))}))
    assert (part.run.n_calls, part.run.n_cached) == (16, 8)  # y's and z's calls; x's were stored
    again, _ = evaluate_pairs(panel, two_way(), "scripted_2way", store, data_files=[], rounds=100)
    assert (again.run.n_calls, x.calls, y.calls, z.calls) == (0, 8, 8, 8)
    with store.read() as con:
        judges = dict(con.execute("SELECT judge_name, count(*) FROM judge_eval_runs GROUP BY 1").fetchall())
    assert judges == {"x": 1, "y": 1, "z": 1, "p": 1}  # each member's run is on the evaluator leaderboard too
    from harness.judge_eval_board import format_value

    assert (format_value("kappa: x vs y", -0.5), format_value("members_alpha", 0.25)) == ("-0.500", "0.250")
