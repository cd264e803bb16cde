"""Judges that score each answer on its own instead of reading a verdict from text.

- `RewardModelJudge`: a sequence-classification reward model (one label) scores each
  conversation that ends in the answer (the hf backend's `score_sequences`).
- `DPORewardJudge`: the implicit reward of a DPO-trained policy, beta * (log pi(y|x) - log
  pi_ref(y|x)) (Rafailov et al. 2023), from the hf backend's `completion_logprobs`; the reference is
  the same model with its LoRA adapter switched off, or another model.

Both compare A with B by score difference: A when s(A) - s(B) > tie_margin, B when it is below
-tie_margin, tie otherwise. An answer is scored alone, so the verdict cannot depend on which side it
was shown on; both orders are still judged (the caller swaps) and stored like any judge's.

What is stored (JudgeOutput): `raw` is the verdict line and both scores; `choice_logprobs` holds
(s(A), s(B), (s(A) + s(B) + tie_margin) / 2). With those three numbers `merge: calibrated` (sum each
outcome over both orders, judges/merge.py) decides exactly by the margin rule on the two orders'
summed scores: X wins iff s(X) - s(Y) > tie_margin on average. They are rewards, not log-probabilities.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from harness.errors import ConfigError
from harness.models.base import Conversation, Message, stable_hash
from judges.base import JudgeOutput, PairItem

MEMO_ENTRIES = 100_000  # scores kept per judge (a float each)
REWARD_VERSION = "reward-v1"  # conversation layout, verdict rule and raw format below


@runtime_checkable
class SequenceScorer(Protocol):
    """A backend that scores whole conversations with a reward head (hf: score_sequences)."""

    def score_sequences(self, conversations: list[Conversation]) -> list[float]: ...


@runtime_checkable
class CompletionScorer(Protocol):
    """A backend that sums the log-probability of each conversation's last message (hf)."""

    def completion_logprobs(self, conversations: list[Conversation], adapter: bool = True) -> list[float]: ...


def answered_conversation(turns: tuple[str, ...], answers: tuple[str, ...], turn: int) -> Conversation:
    """The user turns 1..turn, each followed by that side's own answer: what is scored."""
    messages: list[Message] = []
    for i in range(turn):
        messages += [Message("user", turns[i]), Message("assistant", answers[i])]
    return tuple(messages)


def verdict_by_margin(score_a: float, score_b: float, tie_margin: float) -> str:
    diff = score_a - score_b
    return "A" if diff > tie_margin else "B" if diff < -tie_margin else "tie"


_SCORES = re.compile(r"\((\w+) scores: A=(\S+), B=(\S+), tie_margin=(\S+)\)")


def score_output(score_a: float, score_b: float, tie_margin: float, what: str,
                 dimensions: tuple[str, ...]) -> JudgeOutput:
    """The stored output of one scored pair, one verdict for every dimension (see the module docstring)."""
    verdict = verdict_by_margin(score_a, score_b, tie_margin)
    raw = f"{verdict}\n({what} scores: A={score_a!r}, B={score_b!r}, tie_margin={tie_margin!r})"
    return JudgeOutput(raw=raw, verdicts={d: verdict for d in dimensions},
                       choice_logprobs=(score_a, score_b, (score_a + score_b + tie_margin) / 2))


def stored_scores(raw_output: str | None) -> tuple[float, float] | None:
    """(s(A), s(B)) from a stored reward judgment's raw output, or None for other judges."""
    match = _SCORES.search(raw_output or "")
    return (float(match.group(2)), float(match.group(3))) if match else None


class _ScoringJudge:
    """What both scoring judges share: pairwise items in, one verdict per dimension out."""

    kind = "pairwise"
    card_notes: tuple[str, ...] = ()
    what = "reward"

    def __init__(self, name: str, backend, dimensions: tuple[str, ...], tie_margin: float):
        if tie_margin < 0:
            raise ConfigError(f"judge '{name}': tie_margin: {tie_margin} is negative: use 0 or more")
        self.name, self.backend, self.tie_margin = name, backend, float(tie_margin)
        self.dimensions = tuple(dimensions)
        self._memo: dict[str, float] = {}

    @property
    def chunk_size(self) -> int:
        return getattr(self.backend, "chunk_size", 16)

    def scores(self, conversations: list[Conversation]) -> list[float]:
        raise NotImplementedError

    def judge(self, items: list[PairItem]) -> list[dict[str, JudgeOutput]]:
        conversations = [answered_conversation(item.turns, answers, item.turn)
                         for item in items for answers in (item.answers_a, item.answers_b)]
        scores = self._scores_once(conversations)
        results = []
        for k in range(len(items)):
            output = score_output(scores[2 * k], scores[2 * k + 1], self.tie_margin, self.what, self.dimensions)
            results.append({d: output for d in self.dimensions})
        return results

    def _scores_once(self, conversations: list[Conversation]) -> list[float]:
        """Each distinct conversation scored once: a pair's second order shows the same two answers
        swapped, so it costs nothing (scores depend on the answer alone; kept for this judge's life)."""
        keys = [stable_hash([[m.role, m.content] for m in conv]) for conv in conversations]
        new = {k: conv for k, conv in zip(keys, conversations) if k not in self._memo}
        if len(self._memo) + len(new) > MEMO_ENTRIES:
            self._memo.clear()
            new = dict(zip(keys, conversations))
        self._memo.update(zip(new, self.scores(list(new.values())) if new else []))
        return [self._memo[k] for k in keys]

    def resampled(self, sample: int):
        """Scores are deterministic: every sample would be this one (only single graders resample)."""
        return self

    def close(self) -> None:
        self.backend.close()


class RewardModelJudge(_ScoringJudge):
    """A reward model (AutoModelForSequenceClassification, num_labels=1) on an hf backend."""

    card_notes = ("Reward model: each answer is scored on its own, so position cannot matter; a reward model "
                  "trained on human preferences can still prefer longer answers (see P(prefer longer)).",)

    def __init__(self, name: str, backend, *, dimensions: tuple[str, ...] = ("overall",), tie_margin: float = 0.0):
        if not isinstance(backend, SequenceScorer):
            raise ConfigError(f"judge '{name}': style: reward needs a backend that scores sequences with a reward "
                              f"head (hf), not {type(backend).__name__}: use backend: hf")
        super().__init__(name, backend, dimensions, tie_margin)

    def scores(self, conversations: list[Conversation]) -> list[float]:
        return self.backend.score_sequences(conversations)

    def fingerprint(self) -> str:
        return stable_hash({"kind": "reward-model", "version": REWARD_VERSION, "backend": self.backend.fingerprint(),
                            "tie_margin": self.tie_margin, "dimensions": self.dimensions})


class DPORewardJudge(_ScoringJudge):
    """beta * (log pi(y|x) - log pi_ref(y|x)) per answer. `reference=None`: the policy's own base,
    its LoRA adapter switched off (what TRL's DPOTrainer uses as the reference with ref_model=None)."""

    what = "dpo_reward"  # beta * implicit log-ratio
    card_notes = ("DPO implicit reward: meaningful only against the reference the policy was trained from; "
                  "answers far from both models' distributions get large, noisy log-ratios.",)

    def __init__(self, name: str, backend, *, reference=None, beta: float = 0.1,
                 dimensions: tuple[str, ...] = ("overall",), tie_margin: float = 0.0):
        for role, b in (("model", backend), ("reference", reference)):
            if b is not None and not isinstance(b, CompletionScorer):
                raise ConfigError(f"judge '{name}': style: dpo_reward needs {role} on a backend that scores "
                                  f"completions (hf), not {type(b).__name__}: use backend: hf")
        if beta <= 0:
            raise ConfigError(f"judge '{name}': beta: {beta} must be positive (DPO's beta, e.g. 0.1)")
        super().__init__(name, backend, dimensions, tie_margin)
        self.reference, self.beta = reference, float(beta)

    def scores(self, conversations: list[Conversation]) -> list[float]:
        policy = self.backend.completion_logprobs(conversations)
        if self.reference is None:
            ref = self.backend.completion_logprobs(conversations, adapter=False)
        else:
            ref = self.reference.completion_logprobs(conversations)
        return [self.beta * (p - r) for p, r in zip(policy, ref)]

    def fingerprint(self) -> str:
        reference = "adapter-off" if self.reference is None else self.reference.fingerprint()
        return stable_hash({"kind": "dpo-reward", "version": REWARD_VERSION, "backend": self.backend.fingerprint(),
                            "reference": reference, "beta": self.beta, "tie_margin": self.tie_margin,
                            "dimensions": self.dimensions})

    def close(self) -> None:
        super().close()
        if self.reference is not None:
            self.reference.close()
