"""Gaming probes: scripted models that should not win, added to a suite to see whether its judge
rewards form over content (AlpacaEval's constant-output "null model" reached 86.5% LC there).

- null: the same content-free answer to every question;
- length: a real model's own answers, each said three times over (same content, ~3x longer);
- markdown: the same answers dressed up as markdown (a header, bullets, bold lead words).
A copy that outrates the model it copies gained only from style; style control
(harness.stats.style) should take most of that gain away. A null model that outrates a real model
is a judge/benchmark failure worth a flag.

Style control can only tell a feature from a model when the feature varies within models: if only
the markdown probe ever writes headers (models that never use markdown), the header coefficient and
the probe's own strength are one and the same, the fit splits them by its penalty, and the
"controlled" gain of that probe means nothing. The length probe does not have this problem when
real answers vary in length.

`ReplayBackend` is the scripted model: a ModelBackend answering from a table of another model's
stored answers, keyed by the conversation's first user message and turn. harness.api.probe runs
the suite with these backends in a copy of the store (the user's board never holds the probes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.models.base import Completion, Conversation, GenerationParams, stable_hash

NULL_ANSWER = ("Thank you for the question. Here is a complete, accurate and helpful answer that addresses "
               "every part of it carefully, step by step, with the key points made clear.")
KINDS = ("null", "length", "markdown")


def null_answer(_: str) -> str:
    return NULL_ANSWER


def inflate_length(text: str) -> str:
    """The answer three times over: the same content, about three times the characters."""
    text = text.strip()
    return f"{text}\n\nIn more detail: {text}\n\nTo summarise: {text}"


def inflate_markdown(text: str) -> str:
    """The answer as markdown: a header, one bullet per sentence with a bold lead word, and a bold
    summary line; the words are the answer's own."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if not sentences:
        return "## Answer\n\n**No answer.**"
    bullets = []
    for sentence in sentences:
        first, _, rest = sentence.partition(" ")
        bullets.append(f"- **{first}** {rest}".rstrip())
    return "## Answer\n\n" + "\n".join(bullets) + f"\n\n### Summary\n\n**{sentences[0]}**"


TRANSFORMS: dict[str, Callable[[str], str]] = {"null": null_answer, "length": inflate_length,
                                               "markdown": inflate_markdown}


def probe_name(kind: str, base_model: str) -> str:
    return "probe-null" if kind == "null" else f"probe-{kind}-{base_model}"


class ReplayBackend:
    """A scripted model: turn t of a conversation is transform(answers[(first user message, t)]).
    The null probe needs no table (its transform ignores the text)."""

    def __init__(self, name: str, kind: str, answers: dict[tuple[str, int], str]):
        if kind not in TRANSFORMS:
            raise ValueError(f"probe kind must be one of {KINDS}, got {kind!r}")
        self.name, self.kind, self.answers = name, kind, answers
        self.transform = TRANSFORMS[kind]
        self.chunk_size = 64

    def fingerprint(self) -> str:
        content = NULL_ANSWER if self.kind == "null" else sorted(self.answers.items())
        return stable_hash({"kind": f"probe-{self.kind}", "answers": content})

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        out = []
        for conv in conversations:
            users = [m.content for m in conv if m.role == "user"]
            if self.kind == "null":
                out.append(Completion(NULL_ANSWER))
                continue
            text = self.answers.get((users[0].strip(), len(users)))
            out.append(Completion(self.transform(text)) if text is not None else
                       Completion("", finish_reason="error", error=f"{self.name}: the copied model has no answer here"))
        return out

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ProbeRow:
    """One probe on one (judge, dimension) panel. Ratings are Elo-scale points; `against` is the
    model it is measured against: the copied model, or for the null probe the weakest real model."""

    judge_name: str
    dimension: str
    kind: str
    model: str
    against: str
    raw: float
    controlled: float
    against_raw: float
    against_controlled: float

    @property
    def raw_gain(self) -> float:
        return self.raw - self.against_raw

    @property
    def controlled_gain(self) -> float:
        return self.controlled - self.against_controlled

    @property
    def flagged(self) -> bool:
        """A null probe above a real model (raw ratings)."""
        return self.kind == "null" and self.raw_gain > 0
