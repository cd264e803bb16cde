"""The echo backend itself: a ModelBackend whose answer is the conversation's last user message."""

from __future__ import annotations

from harness.models.base import Completion, Conversation, GenerationParams, stable_hash


class EchoBackend:
    def __init__(self, spec):
        self.spec = spec

    def fingerprint(self) -> str:
        return stable_hash({"kind": "echo", "prefix": self.spec.prefix})

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        out = []
        for conv in conversations:
            last_user = next(m.content for m in reversed(conv) if m.role == "user")
            out.append(Completion(self.spec.prefix + last_user, prompt_tokens=len(conv), completion_tokens=1))
        return out

    def close(self) -> None:
        pass
