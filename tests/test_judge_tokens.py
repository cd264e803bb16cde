"""What a judge's calls cost in tokens, as its outputs report them (judge-eval's tokens per 1,000)."""

from __future__ import annotations

from harness.config import JudgeSpec
from harness.judging import build_judge
from harness.models.base import Completion
from judges.base import PairItem
from judges.fastchat import FastChatJudge, FastChatTemplates
from tests.test_judge_kinds import PROMPTS


class Costly:
    """Replies in turn, each with its own token counts."""

    chunk_size = 8

    def __init__(self, *replies: tuple[str, int, int]):
        self.replies = list(replies)

    def fingerprint(self) -> str:
        return "costly"

    def generate(self, conversations, params):
        text, read, wrote = self.replies.pop(0)
        return [Completion(text=text, prompt_tokens=read, completion_tokens=wrote) for _ in conversations]

    def close(self) -> None:
        pass


def _item() -> PairItem:
    return PairItem("q", "writing", ("Q1?",), ("a1",), ("b1",), 1)


def test_a_generating_judge_reports_the_tokens_of_every_attempt():
    judge = FastChatJudge("fc", Costly(("no verdict here", 10, 3), ("[[B]]", 12, 4)), FastChatTemplates(PROMPTS, "pair-v2"),
                          max_parse_retries=1)
    [out] = judge.judge([_item()])
    assert out["overall"].verdicts and out["overall"].attempts == 2
    assert (out["overall"].prompt_tokens, out["overall"].completion_tokens) == (22, 7)


def test_a_choice_judge_reports_the_prompt_it_read_and_nothing_generated(tiny_model_path):
    from transformers import AutoTokenizer

    from judges.prompts import pandalm_prompt

    spec = JudgeSpec.model_validate({"name": "j", "style": "pandalm", "decode": "choice", "dimensions": ["overall"],
                                     "model": {"name": "m", "backend": "hf", "model": str(tiny_model_path),
                                               "threads": 1}})
    judge = build_judge(spec)
    [out] = judge.judge([_item()])
    ids = AutoTokenizer.from_pretrained(tiny_model_path).apply_chat_template(
        [{"role": "user", "content": pandalm_prompt(_item(), None)}], add_generation_prompt=True, tokenize=True,
        return_dict=True)["input_ids"]
    assert (out["overall"].prompt_tokens, out["overall"].completion_tokens) == (len(ids), 0)
    judge.close()
