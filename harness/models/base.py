"""The model-backend extension point: one Protocol, plain data types, one registry.

A backend turns a batch of conversations into completions. Everything else (caching, storing,
resuming) lives in the runner, so a new backend only has to implement `generate` and `fingerprint`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


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
    """One generated turn, or a failure (`error` set, `text` empty) after the backend gave up."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    latency_s: float = 0.0
    error: str | None = None

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


def stable_hash(obj: Any) -> str:
    """sha256 of canonical JSON: the one hashing rule for every cache key in the store."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- registry -------------------------------------------------------------------------------------
# Values are "module:attribute" strings so that heavy modules (torch, vllm) load only on use.
# Tests and plugins may register a callable directly.
BackendFactory = Callable[[Any], ModelBackend]
_BACKENDS: dict[str, str | BackendFactory] = {
    "hf": "harness.models.hf:HFBackend",
    "openai": "harness.models.openai_backend:OpenAIBackend",
    "vllm": "harness.models.vllm:VLLMBackend",
    "reference": "harness.models.reference:ReferenceBackend",
}


def register_backend(kind: str, factory: str | BackendFactory) -> None:
    """Add a backend kind. `factory(spec)` must return a ModelBackend."""
    _BACKENDS[kind] = factory


def backend_kinds() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(spec: Any) -> ModelBackend:
    """Instantiate the backend named by `spec.backend`."""
    from harness.errors import ConfigError

    target = _BACKENDS.get(spec.backend)
    if target is None:
        raise ConfigError(
            f"model '{spec.name}': unknown backend '{spec.backend}' (known: {', '.join(backend_kinds())})"
        )
    if isinstance(target, str):
        module_name, attr = target.split(":")
        target = getattr(importlib.import_module(module_name), attr)
    return target(spec)
