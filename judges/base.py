"""The judge extension point: what a judge is given, what it returns, and the Protocol.

A judge call sees one *ordered* item. Position swapping is the caller's job: every pairwise item
is judged twice, (X, Y) and (Y, X), and both calls are stored as their own rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

DEFAULT_DIMENSIONS = ("accuracy", "helpfulness", "language")

# The one rule for a dimension name: the suite validator (harness/config.py), LLMJudge and the
# verdict-line parser (judges/parse.py) all use this pattern, so a name the config accepts is a
# name the parser can read.
DIMENSION_NAME = r"[a-z][a-z0-9_]*"


def dimension_names_problem(dimensions) -> str | None:
    """Why `dimensions` cannot be judged, as one line (the caller adds where it comes from), or None."""
    names = list(dimensions)
    if not names:
        return "no dimensions: give at least one (e.g. [accuracy])"
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(DIMENSION_NAME, name):
            suggestion = re.sub(r"^[^a-z]+", "", re.sub(r"[^a-z0-9_]+", "_", str(name).lower())).strip("_")
            return (f"{name!r} is not a dimension name: use lowercase letters, digits and _"
                    f" (e.g. {suggestion or 'accuracy'!r})")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return f"dimension names must be unique, repeated: {', '.join(repeated)}"
    return None

# What each dimension means, shown to the judge (after Wu & Aji 2023, "Style Over Substance").
DIMENSION_DEFINITIONS = {
    "overall": "which response is better overall",
    "accuracy": "factual and logical correctness: no false claims, wrong results or broken code",
    "helpfulness": "how well the response does what the user asked, completely and to the point",
    "language": "clarity, fluency, grammar and fitting tone, regardless of correctness",
}


@dataclass(frozen=True)
class PairItem:
    """Two assistants' conversations on one question, judged at `turn` (1-based).

    `turns` are the user messages; `answers_a[i]` / `answers_b[i]` answer `turns[i]`. A multi-turn
    judge sees turns 1..turn; `reference` is the reference answer for `turn`, if the question has one;
    `references` every turn's, where the question has them (FastChat's turn-2 math prompts show both).
    """

    question_id: str
    category: str
    turns: tuple[str, ...]
    answers_a: tuple[str, ...]
    answers_b: tuple[str, ...]
    turn: int
    reference: str | None = None
    nonce: str = ""  # per-call secret tag the verdict line must carry (see judges/parse.py: verdict_tag)
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class SingleItem:
    question_id: str
    category: str
    turns: tuple[str, ...]
    answers: tuple[str, ...]
    turn: int
    reference: str | None = None
    nonce: str = ""
    references: tuple[str, ...] = ()  # as PairItem's


@dataclass
class JudgeOutput:
    """One call's result: per-dimension verdicts ('A' | 'B' | 'tie') or a 1-10 score.

    `parsed` is False when the output did not follow the format after every retry; then the
    verdicts are empty and `raw` holds the last output, which is stored, never guessed from.
    """

    raw: str
    verdicts: dict[str, str] = field(default_factory=dict)
    score: float | None = None
    attempts: int = 1
    choice_logprobs: tuple[float, float, float] | None = None  # log P("1"), P("2"), P("Tie"): choice decoding
    error: str | None = None  # the backend failed to answer at all (after its own retries): not a verdict,
    # never stored as a judgment; the pipeline records it as a failure and the next run asks again
    prompt_tokens: int | None = None  # what the call read and wrote, over every attempt, where the backend
    completion_tokens: int | None = None  # says (None: unknown, e.g. a reward model's forward pass)

    @property
    def parsed(self) -> bool:
        return bool(self.verdicts) or self.score is not None


@runtime_checkable
class Judge(Protocol):
    """Everything the pipeline uses of a judge (harness.judging, harness.judge_eval)."""

    name: str
    kind: str  # "pairwise" | "single"
    dimensions: tuple[str, ...]
    chunk_size: int  # items per `judge` call; each call's outputs are committed together

    def fingerprint(self) -> str:
        """Judge model + prompt version + sampling params + parser version."""
        ...

    def judge(self, items: list) -> list[dict[str, JudgeOutput]]:
        """Per item (PairItem for pairwise judges, SingleItem for single graders), {dimension: output};
        dimensions judged in one call share their output."""
        ...

    def resampled(self, sample: int) -> "Judge":
        """The same judge drawing independent sample number `sample` (repeated single grades): a
        different fingerprint, so each sample is stored as rows of its own."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class StreamingJudge(Protocol):
    """A judge that can also judge one item at a time in an event loop (an LLMJudge on an API
    endpoint): the pipeline then keeps `max_concurrency` calls in flight instead of judging chunks."""

    streaming: bool  # False when this instance cannot (e.g. choice decoding on a local model)
    max_concurrency: int

    async def ajudge(self, item) -> dict[str, JudgeOutput]:
        """What `judge([item])[0]` returns."""
        ...

    async def aclose(self) -> None: ...
