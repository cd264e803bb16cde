"""The model-backend extension point: Protocols (what a backend is, what it can do), plain data types.

A backend turns a batch of conversations into completions. Everything else (caching, storing,
resuming) lives in the runner, so a new backend only has to implement `generate` and `fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from harness.text import original_json, storable


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


Conversation = tuple[Message, ...]


class GenerationParams(BaseModel):
    """Sampling settings for one generation call. Part of every answer's cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(256, ge=1, le=32768)
    """Upper bound on generated tokens per turn."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """0 means greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass; ignored when temperature is 0."""
    seed: int | None = 0
    """Sampling seed, so sampled runs are repeatable where the backend supports it."""
    stop: tuple[str, ...] = ()
    """Extra stop strings besides the model's end-of-turn token."""

    def key(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


@dataclass
class Completion:
    """One generated turn, or a failure (`error` set, `text` empty) after the backend gave up.

    Text is made storable on the way in (harness.text): whatever a backend hands over, `text` can be
    hashed and stored, and `original_json` keeps the exact original when something was replaced.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    latency_s: float = 0.0
    error: str | None = None
    original_json: str | None = None

    def __post_init__(self) -> None:
        original = original_json(self.text)  # one scan of every completion; repairs are rare
        if original is not None:
            self.original_json = self.original_json or original
            self.text = storable(self.text)
        if self.error is not None:
            self.error = storable(self.error)

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class ModelBackend(Protocol):
    """A source of chat completions: in-process model, OpenAI-compatible endpoint, vLLM server.

    A backend may also set `chunk_size`: how many conversations the runner hands it per call (each
    call's results are committed together). The runner uses 16 when it is absent.
    """

    def fingerprint(self) -> str:
        """Stable identity of what produces the text: weights + adapter + chat template + backend
        settings that change outputs. Equal fingerprints must mean interchangeable answers."""
        ...

    def generate(
        self, conversations: list[Conversation], params: GenerationParams
    ) -> list[Completion]:
        """One completion per conversation, same order. Must not raise for a single failed
        request: return a Completion with `error` set so the run can go on."""
        ...

    def close(self) -> None:
        """Release processes, threads and memory. Safe to call twice."""
        ...


@runtime_checkable
class StreamingBackend(Protocol):
    """A backend that answers one conversation at a time inside an event loop (the openai backend).
    The runner and the judges then keep requests in flight continuously (harness.streaming) instead
    of handing over chunks; `max_concurrency` is how many it wants in flight."""

    max_concurrency: int

    async def acomplete(self, conversation: Conversation, params: GenerationParams) -> Completion:
        """One completion; like `generate`, a failed request returns a Completion with `error` set."""
        ...

    async def aclose(self) -> None:
        """Release what `acomplete` opened in the running event loop (HTTP clients)."""
        ...


@runtime_checkable
class ChoiceScorer(Protocol):
    """A backend that can score given continuations instead of generating (the hf backend).
    Judges with `decode: choice` need one; `isinstance(backend, ChoiceScorer)` tells."""

    def score_choices(self, conversations: list[Conversation], choices: tuple[str, ...]) -> list[list[float]]:
        """Per conversation, the log-likelihood of each choice as the start of the assistant's
        reply, in the order of `choices`."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """A backend that can say how many tokens a conversation's prompt is (the hf backend): judges
    that score instead of generating report it as their calls' prompt tokens."""

    def count_prompt_tokens(self, conversations: list[Conversation]) -> list[int]: ...


def prompt_token_counts(backend, conversations: list[Conversation]) -> list[int | None]:
    """Each conversation's prompt tokens on `backend`, or None each where it cannot count them."""
    if isinstance(backend, TokenCounter):
        return list(backend.count_prompt_tokens(conversations))
    return [None] * len(conversations)


# json.dumps builds an encoder per call; one shared encoder gives the same text, faster (planning
# hashes every judge call of a run: 500,000 of them in a large one).
CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def stable_hash(obj: Any) -> str:
    """sha256 of canonical JSON: the one hashing rule for every cache key in the store."""
    blob = CANONICAL_JSON.encode(obj)
    # surrogatepass: a lone surrogate hashes instead of raising; every other text hashes as before.
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


# --- registry -------------------------------------------------------------------------------------
# The registry lives in harness.models.registry (it imports the spec classes, which import this
# module's types); these wrappers keep `from harness.models.base import create_backend` working.


def register_backend(kind, factory=None, **kwargs):
    """Add a backend kind at runtime; see harness.models.registry.register_backend."""
    from harness.models.registry import register_backend as register

    return register(kind, factory, **kwargs)


def backend_kinds() -> list[str]:
    from harness.models.registry import backend_kinds as kinds

    return kinds()


def create_backend(spec: Any) -> ModelBackend:
    """Instantiate the backend named by `spec.backend` (through the registry)."""
    from harness.models.registry import create_backend as create

    return create(spec)
