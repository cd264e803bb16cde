"""Calibration of pairwise judges (Wang et al. 2023, "Large Language Models are not Fair Evaluators").

Pure functions over one item's judgments, and two Judge wrappers; nothing here knows the store.

An item is judged in two orders: order 1 shows (X, Y), order 2 shows (Y, X). A *sample* is one
call's result in one order. Its verdict is positional ("A" = the answer shown first); `aligned`
maps it to the item's own sides (order 1's positions), so "A" always means X.

- **MEC** (Multiple Evidence Calibration): k sampled, evidence-first judgments per order, their
  verdict distributions averaged (`mec_verdict`). A sample's distribution is the softmax of its
  choice log-likelihoods where the judge scored the choices, else its verdict as one-hot: the
  paper averages scores; a choice judge's probabilities are the nearest thing to a score.
- **BPC** (Balanced Position Calibration): the two orders' (aligned, per-order averaged)
  distributions averaged (`bpc_verdict`), the paper's (S + S') / 2. With k = 1 it is BPC alone,
  with k > 1 it is MEC + BPC. For likelihood judges with one sample the harness also has the
  summed-log-likelihood rule (judges.merge, policy `calibrated`).
- **HITLC** (Human-in-the-Loop Calibration): the Balanced Position Diversity Entropy of an item's
  2k aligned verdicts (`diversity_entropy`) ranks items (`entropy_ranking`); the top beta go to a
  person first (`top_fraction`).

A decision from an averaged distribution (`decide`) is its most likely side; when A and B are
equally likely at the top (or nothing else is decisive) it is a tie.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np

from judges.base import JudgeOutput, PairItem
from judges.parse import CHOICES, choice_output, parse_pandalm
from harness.errors import ConfigError
from harness.models.base import (ChoiceScorer, Conversation, GenerationParams, Message, ModelBackend,
                                 prompt_token_counts, stable_hash)

SIDES = ("A", "B", "tie")
_SWAP = {"A": "B", "B": "A", "tie": "tie"}
Distribution = tuple[float, float, float]  # P(A), P(B), P(tie) on the item's own sides


@dataclass(frozen=True)
class Sample:
    """One call's result on an item: its order (1: shown as given, 2: swapped), positional verdict
    (None: unparsed) and, for choice judges, log P("1"), P("2"), P("Tie")."""

    order: int
    verdict: str | None
    logprobs: tuple[float, float, float] | None = None

    @property
    def swapped(self) -> bool:
        return self.order == 2

    def aligned_verdict(self) -> str | None:
        return aligned(self.verdict, self.swapped)

    def aligned_distribution(self) -> Distribution | None:
        """This sample's distribution over the item's sides, or None when unparsed."""
        if self.verdict is None:
            return None
        if self.logprobs is not None:
            top = max(self.logprobs)
            weights = [math.exp(v - top) for v in self.logprobs]
            total = sum(weights)
            p_a, p_b, p_tie = (w / total for w in weights)
        else:
            p_a, p_b, p_tie = (float(self.verdict == side) for side in SIDES)
        return (p_b, p_a, p_tie) if self.swapped else (p_a, p_b, p_tie)


def aligned(verdict: str | None, swapped: bool) -> str | None:
    """A positional verdict on the item's own sides: in the swapped order A and B trade places."""
    if verdict is None:
        return None
    return _SWAP[verdict] if swapped else verdict


def mean_distribution(distributions: Iterable[Distribution | None]) -> Distribution | None:
    """The average of the given distributions (None entries skipped); None when there are none."""
    given = [d for d in distributions if d is not None]
    if not given:
        return None
    return tuple(sum(d[i] for d in given) / len(given) for i in range(3))  # type: ignore[return-value]


def decide(distribution: Distribution | None, tolerance: float = 1e-9) -> str | None:
    """The side with the highest probability; a tie when A and B share the top (or tie is on top)."""
    if distribution is None:
        return None
    best = max(distribution)
    on_top = [side for side, p in zip(SIDES, distribution) if p >= best - tolerance]
    return on_top[0] if len(on_top) == 1 else "tie"


def order_distribution(samples: Sequence[Sample], order: int) -> Distribution | None:
    """MEC within one order: the mean aligned distribution of that order's samples."""
    return mean_distribution(s.aligned_distribution() for s in samples if s.order == order)


def mec_verdict(samples: Sequence[Sample], order: int) -> str | None:
    """Multiple Evidence Calibration in one order, as a verdict on the item's sides."""
    return decide(order_distribution(samples, order))


def bpc_distribution(samples: Sequence[Sample]) -> Distribution | None:
    """Balanced Position Calibration: the mean over orders of each order's mean distribution (an
    order with no parsed sample is left out)."""
    return mean_distribution(order_distribution(samples, order) for order in (1, 2))


def bpc_verdict(samples: Sequence[Sample]) -> str | None:
    return decide(bpc_distribution(samples))


def diversity_entropy(verdicts: Iterable[str | None], base: float = math.e) -> float:
    """Balanced Position Diversity Entropy of an item's verdicts, already on the item's sides (use
    `aligned` for the swapped order): -sum_v p_v log p_v over v in {A, B, tie}, p_v the share of the
    2k verdicts that are v. Unparsed (None) verdicts are left out; no verdict at all gives 0.
    The paper writes `log` without a base; natural log by default (uniform over three: ln 3), and
    any base ranks items identically."""
    counts = Counter(v for v in verdicts if v is not None)
    unknown = set(counts) - set(SIDES)
    if unknown:
        raise ValueError(f"verdicts must be A, B or tie, got {sorted(unknown)}")
    total = sum(counts.values())
    entropy = -sum((n / total) * math.log(n / total, base) for n in counts.values()) if total else 0.0
    return entropy + 0.0  # -0.0 -> 0.0


def item_entropy(samples: Sequence[Sample]) -> float:
    """`diversity_entropy` of an item's samples in both orders."""
    return diversity_entropy(s.aligned_verdict() for s in samples)


def entropy_ranking(entropies: dict[Hashable, float], margins: dict[Hashable, float] | None = None) -> list:
    """Keys from most to least uncertain: highest entropy first; among equal entropies the smaller
    BPC margin |P(A) - P(B)| first (when given), then the key itself, so the order is reproducible."""
    margins = margins or {}
    return sorted(entropies, key=lambda k: (-entropies[k], margins.get(k, 0.0), str(k)))


def top_fraction(ranking: Sequence, beta: float) -> list:
    """The first round(beta * n) of a ranking (half rounds up): the items a person settles."""
    if not 0 <= beta <= 1:
        raise ConfigError(f"beta: {beta}: give a fraction between 0 and 1 (e.g. 0.2)")
    return list(ranking[: int(beta * len(ranking) + 0.5)])


def bpc_margin(samples: Sequence[Sample]) -> float:
    """|P(A) - P(B)| of the BPC distribution (0 when nothing parsed): how close the call is."""
    return margin_of(bpc_distribution(samples))


def margin_of(distribution: Distribution | None) -> float:
    """|P(A) - P(B)| of a distribution, 0 for none."""
    return abs(distribution[0] - distribution[1]) if distribution else 0.0


# ---------------------------------------------------------------- a paired bootstrap of a difference


def paired_ratio_difference(before: tuple[Sequence[int], Sequence[int]], after: tuple[Sequence[int], Sequence[int]],
                            rounds: int, level: float, seed: int) -> tuple[float | None, float | None, float | None]:
    """(after - before, low, high) for two ratios sum(num) / sum(den) measured on the same items
    (item i is entry i of both): a percentile bootstrap that resamples items jointly, so the
    interval is of the difference itself, not of two independent intervals."""
    num_0, den_0, num_1, den_1 = (np.asarray(x, dtype=float) for x in (*before, *after))
    if not len(num_0) or den_0.sum() == 0 or den_1.sum() == 0:
        return None, None, None
    value = num_1.sum() / den_1.sum() - num_0.sum() / den_0.sum()
    if rounds <= 0:
        return float(value), None, None
    idx = np.random.default_rng(seed).integers(0, len(num_0), size=(rounds, len(num_0)))
    d0, d1 = den_0[idx].sum(axis=1), den_1[idx].sum(axis=1)
    ok = (d0 > 0) & (d1 > 0)
    deltas = num_1[idx].sum(axis=1)[ok] / d1[ok] - num_0[idx].sum(axis=1)[ok] / d0[ok]
    if not deltas.size:
        return float(value), None, None
    alpha = (1 - level) / 2
    return float(value), float(np.quantile(deltas, alpha)), float(np.quantile(deltas, 1 - alpha))


# ---------------------------------------------------------------- judge wrappers


def sample_judges(judge, k: int) -> list:
    """The k judges whose outputs MEC averages: `judge` itself for k = 1, else k independent samples
    `judge.resampled(1..k)`; refused when the samples cannot differ (likelihood-choice decoding)
    or share a fingerprint (they would be stored and cached as one)."""
    if k < 1:
        raise ConfigError(f"k: {k}: give the number of samples per order (1 or more, e.g. 3)")
    if k == 1:
        return [judge]
    if getattr(judge, "decode", "generate") == "choice":
        raise ConfigError(f"judge '{judge.name}': MEC needs sampled judgments, and decode: choice is deterministic:"
                          " use an evidence-first judge (--evidence) or decode: generate, or k = 1")
    samples = [judge.resampled(s) for s in range(1, k + 1)]
    if len({s.fingerprint() for s in samples}) != k:
        raise ConfigError(f"judge '{judge.name}': resampled() gave repeated fingerprints: MEC needs k independent"
                          " samples")
    return samples


class MultipleEvidenceJudge:
    """MEC as a Judge: each call asks k samples of `judge` and returns, per dimension, the verdict of
    their averaged distributions (one row per order where the pipeline stores it). Its raw output
    keeps every sample's output; its choice log-likelihoods are the log of the averaged
    distribution when every sample scored the choices, so `merge: calibrated` then balances
    positions over the averaged samples."""

    kind = "pairwise"

    def __init__(self, judge, k: int = 3, name: str | None = None):
        if judge.kind != "pairwise":
            raise ConfigError(f"judge '{judge.name}': MEC calibrates pairwise judges, not {judge.kind!r}")
        self.base, self.k = judge, k
        self.samples = sample_judges(judge, k)
        self.name = name or judge.name
        self.dimensions = tuple(judge.dimensions)

    @property
    def chunk_size(self) -> int:
        return self.base.chunk_size

    def fingerprint(self) -> str:
        return stable_hash(["mec-v1", self.k, [s.fingerprint() for s in self.samples]])

    def resampled(self, sample: int) -> "MultipleEvidenceJudge":
        # k fresh samples drawn beyond every earlier group's: sample s uses samples s*k+1 .. s*k+k
        copy = MultipleEvidenceJudge.__new__(MultipleEvidenceJudge)
        copy.__dict__.update(self.__dict__)
        copy.samples = [self.base.resampled(sample * self.k + s) for s in range(1, self.k + 1)]
        return copy

    def judge(self, items: list[PairItem]) -> list[dict[str, JudgeOutput]]:
        per_sample = [s.judge(items) for s in self.samples]
        return [{d: self._combine([outputs[i][d] for outputs in per_sample], d) for d in self.dimensions}
                for i in range(len(items))]

    def _combine(self, outputs: list[JudgeOutput], dimension: str) -> JudgeOutput:
        raw = "\n\n".join(f"--- sample {n} ---\n{o.raw}" for n, o in enumerate(outputs, 1))
        attempts = sum(o.attempts for o in outputs)
        error = next((o.error for o in outputs if o.error), None)
        if error is not None:  # a call that could not be made is retried by the next run, not averaged around
            return JudgeOutput(raw="", attempts=attempts, error=error)
        samples = [Sample(1, o.verdicts.get(dimension), o.choice_logprobs) for o in outputs]
        distribution = order_distribution(samples, 1)
        verdict = decide(distribution)
        parsed = [s for s in samples if s.verdict is not None]
        logprobs = None
        if distribution and all(s.logprobs is not None for s in parsed) and min(distribution) > 0:
            logprobs = tuple(math.log(p) for p in distribution)
        return JudgeOutput(raw=raw, verdicts={dimension: verdict} if verdict else {}, attempts=attempts,
                           choice_logprobs=logprobs)

    def close(self) -> None:
        self.base.close()


# The evidence-first prompts (the paper's MEC asks for the explanation before the scores). Their
# text is hashed into the judge's fingerprint, so an edit never mixes old and new verdicts.
EVIDENCE_PROMPT = (
    "[Question]\n{question}\n{reference}\n[Response 1]\n{answer_1}\n[End of Response 1]\n\n"
    "[Response 2]\n{answer_2}\n[End of Response 2]\n\n"
    "Compare the two responses{aspect}. The order in which they are shown says nothing about their quality, and "
    "neither does their length. First give your evidence in two or three sentences: what each response gets right "
    "and wrong. Do not give a verdict yet."
)
VERDICT_QUESTION = "Based on your evidence, which response is better? Answer 1, 2 or Tie."


class EvidenceFirstJudge:
    """An evidence-first pairwise judge for small local models: it samples a short explanation
    (temperature > 0, seeded), then picks "1", "2" or "Tie" by likelihood with that explanation in
    its context. Every sample is a fresh explanation, so `resampled` gives independent judgments
    whose verdict distributions MEC averages; the choice log-likelihoods are kept (merge:
    calibrated, BPC). The backend must generate and score choices (the hf backend)."""

    kind = "pairwise"

    def __init__(self, name: str, backend: ModelBackend, *, dimensions: tuple[str, ...] = ("overall",),
                 max_new_tokens: int = 48, temperature: float = 0.7, seed: int = 0):
        if not isinstance(backend, ChoiceScorer):
            raise ConfigError(f"judge '{name}': an evidence-first judge picks its verdict by likelihood: it needs a"
                              " backend that can score choices (hf)")
        if temperature <= 0:
            raise ConfigError(f"judge '{name}': temperature: {temperature}: evidence must be sampled (e.g. 0.7)")
        self.name, self.backend, self.dimensions = name, backend, tuple(dimensions)
        self.params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)

    @property
    def chunk_size(self) -> int:
        return getattr(self.backend, "chunk_size", 16)

    def fingerprint(self) -> str:
        return stable_hash({"judge": "evidence-first-v1", "backend": self.backend.fingerprint(),
                            "prompts": [EVIDENCE_PROMPT, VERDICT_QUESTION], "choices": CHOICES,
                            "dimensions": self.dimensions, "params": self.params.key()})

    def resampled(self, sample: int) -> "EvidenceFirstJudge":
        copy = EvidenceFirstJudge.__new__(EvidenceFirstJudge)
        copy.__dict__.update(self.__dict__)
        copy.params = self.params.model_copy(update={"seed": sample})
        return copy

    def judge(self, items: list[PairItem]) -> list[dict[str, JudgeOutput]]:
        results: list[dict[str, JudgeOutput]] = [{} for _ in items]
        for dimension in self.dimensions:
            asks = [self._ask(item, dimension) for item in items]
            evidence = self.backend.generate(asks, self.params)
            scorable = [i for i, c in enumerate(evidence) if c.ok]
            picks = [asks[i] + (Message("assistant", evidence[i].text), Message("user", VERDICT_QUESTION))
                     for i in scorable]
            by_item = dict(zip(scorable, self.backend.score_choices(picks, CHOICES) if picks else []))
            scored_tokens = dict(zip(scorable, prompt_token_counts(self.backend, picks)))
            for i, completion in enumerate(evidence):
                if i not in by_item:
                    results[i][dimension] = JudgeOutput(raw="", error=completion.error)
                    continue
                row = [float(v) for v in by_item[i]]
                choice = choice_output(row)
                read = scored_tokens[i]  # the evidence prompt, then the whole exchange again to pick
                results[i][dimension] = JudgeOutput(
                    raw=f"{completion.text}\n{choice}", verdicts={dimension: parse_pandalm(choice)},
                    choice_logprobs=tuple(row), completion_tokens=completion.completion_tokens,
                    prompt_tokens=None if read is None else completion.prompt_tokens + read)
        return results

    def _ask(self, item: PairItem, dimension: str) -> Conversation:
        turn = item.turn - 1
        context = "".join(f"(earlier request: {t})\n" for t in item.turns[:turn])
        reference = f"\n[Reference answer]\n{item.reference}\n[End of reference answer]\n" if item.reference else ""
        aspect = "" if dimension == "overall" else f" on {dimension} only"
        return (Message("user", EVIDENCE_PROMPT.format(
            question=context + item.turns[turn], reference=reference, answer_1=item.answers_a[turn],
            answer_2=item.answers_b[turn], aspect=aspect)),)

    def close(self) -> None:
        self.backend.close()
