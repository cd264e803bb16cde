"""Meta-evaluation metrics with bootstrap intervals: pure functions of verdicts and human labels.

What harness.judge_eval stores for each judge-eval run, computed here from votes, labels and judged
rows only (no files, no store, no judge calls):

- `agreement_metrics`: FastChat agreement (judges.meta.fastchat_agreement), with and without ties,
  each with a percentile bootstrap interval over pairs of answers (`agreement_per_item`).
- `classification_metrics`: accuracy and macro P/R/F1 (judges.meta.classification_report) as
  fractions, each with a bootstrap interval over items (`classification_cis`).
- `bias_metrics`: a live judge's parse failures, swap flips and position / length preferences.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from judges.merge import JudgmentRow
from judges.meta import PANDA_LABELS, Agreement, Vote, classification_report, fastchat_agreement


@dataclass(frozen=True)
class Metric:
    """One stored metric of a run: a fraction in [0, 1] (None when nothing was comparable)."""

    name: str
    value: float | None
    numerator: int | None = None
    denominator: int | None = None
    n: int = 0  # items the metric is over (the bootstrap's resampling unit)
    ci_low: float | None = None
    ci_high: float | None = None
    level: float | None = None


# ---------------------------------------------------------------- bootstrap intervals


def _quantiles(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    samples = samples[~np.isnan(samples)]
    if not samples.size:
        return None, None
    alpha = (1 - level) / 2
    return float(np.quantile(samples, alpha)), float(np.quantile(samples, 1 - alpha))


def ratio_ci(num: Sequence[int], den: Sequence[int], rounds: int, level: float, seed: int):
    """Percentile bootstrap of sum(num) / sum(den) over items (items resampled with replacement)."""
    if rounds <= 0 or not len(num):
        return None, None
    num_a, den_a = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(num_a), size=(rounds, len(num_a)))
    n, d = num_a[idx].sum(axis=1), den_a[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _quantiles(np.where(d > 0, n / np.where(d > 0, d, 1), np.nan), level)


def classification_cis(y_true: np.ndarray, y_pred: np.ndarray, rounds: int, level: float, seed: int,
                       labels: Sequence[int] = PANDA_LABELS) -> dict[str, tuple[float | None, float | None]]:
    """Bootstrap intervals of accuracy and macro P/R/F1 (as fractions), computed like
    judges.meta.classification_report on each resample."""
    if rounds <= 0 or not y_true.size:
        return {}
    idx = np.random.default_rng(seed).integers(0, y_true.size, size=(rounds, y_true.size))
    t, p = y_true[idx], y_pred[idx]

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)

    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = ((t == label) & (p == label)).sum(axis=1).astype(float)
        fp = ((t != label) & (p == label)).sum(axis=1).astype(float)
        fn = ((t == label) & (p != label)).sum(axis=1).astype(float)
        precisions.append(ratio(tp, tp + fp))
        recalls.append(ratio(tp, tp + fn))
        f1s.append(ratio(2 * tp, 2 * tp + fp + fn))
    return {"accuracy": _quantiles((t == p).mean(axis=1), level),
            "macro_precision": _quantiles(np.mean(precisions, axis=0), level),
            "macro_recall": _quantiles(np.mean(recalls, axis=0), level),
            "macro_f1": _quantiles(np.mean(f1s, axis=0), level)}


# ---------------------------------------------------------------- agreement (votes vs votes)


def pair_key(vote: Vote) -> tuple:
    """(question, unordered model pair, turn): the pair of answers a vote is about."""
    return (vote.question_id, min(vote.model_a, vote.model_b), max(vote.model_a, vote.model_b), vote.turn)


def agreement_per_item(votes_1: Iterable[Vote], votes_2: Iterable[Vote] | None,
                       include_ties: bool) -> list[Agreement]:
    """fastchat_agreement for each pair of answers on its own (the items a bootstrap resamples);
    their agree and total counts add up to fastchat_agreement over all of them."""
    group_1: dict[tuple, list[Vote]] = defaultdict(list)
    for v in votes_1:
        group_1[pair_key(v)].append(v)
    group_2: dict[tuple, list[Vote]] | None = None
    if votes_2 is not None:
        group_2 = defaultdict(list)
        for v in votes_2:
            group_2[pair_key(v)].append(v)
    out = []
    for key, mine in group_1.items():
        other = None if group_2 is None else group_2.get(key, [])
        result = fastchat_agreement(mine, other, include_ties=include_ties)
        if result.total:
            out.append(result)
    return out


def agreement_metrics(votes_1: list[Vote], votes_2: list[Vote] | None, rounds: int, level: float,
                      seed: int) -> tuple[Agreement, Agreement, dict[str, Metric]]:
    """Agreement with and without ties (votes_2 None: votes_1 among themselves), and the two as
    metrics 'agreement_with_ties' / 'agreement_without_ties' with bootstrap intervals over pairs."""
    metrics, results = {}, []
    for include_ties, name in ((True, "agreement_with_ties"), (False, "agreement_without_ties")):
        total = fastchat_agreement(votes_1, votes_2, include_ties=include_ties)
        per_item = agreement_per_item(votes_1, votes_2, include_ties)
        low, high = ratio_ci([a.agree for a in per_item], [a.total for a in per_item], rounds, level, seed)
        metrics[name] = Metric(name, total.rate if total.total else None, total.agree, total.total, len(per_item),
                               low, high, level if low is not None else None)
        results.append(total)
    return results[0], results[1], metrics


# ---------------------------------------------------------------- classification (labels vs gold)


def classification_metrics(predicted: dict[int, int], gold: dict[int, int], rounds: int, level: float,
                           seed: int) -> dict[str, Metric]:
    """accuracy, macro_precision, macro_recall, macro_f1 of `predicted` against `gold` as fractions
    (judges.meta.classification_report / 100), each with a bootstrap interval over items."""
    report = classification_report(predicted, gold)
    y_true = np.array([gold[idx] for idx in gold])
    y_pred = np.array([predicted[idx] for idx in gold])
    correct = int((y_true == y_pred).sum())
    cis = classification_cis(y_true, y_pred, rounds, level, seed)
    values = {"accuracy": correct / report.n, "macro_precision": report.macro_precision / 100,
              "macro_recall": report.macro_recall / 100, "macro_f1": report.macro_f1 / 100}
    metrics = {}
    for metric, value in values.items():
        low, high = cis.get(metric, (None, None))
        is_ratio = metric == "accuracy"
        metrics[metric] = Metric(metric, value, correct if is_ratio else None, report.n if is_ratio else None,
                                 report.n, low, high, level if low is not None else None)
    return metrics


# ---------------------------------------------------------------- a live judge's own verdicts


def rate_metric(name: str, hits: int, total: int) -> Metric:
    return Metric(name, hits / total if total else None, hits, total, total)


def _orders(rows: Iterable[JudgmentRow]) -> dict[str, list[str]]:
    """item id -> model-level outcome of each parsed order."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        outcome = {"A": r.model_a, "B": r.model_b, "tie": "tie"}.get(r.verdict or "")
        if outcome is not None:
            out[r.question_id].append(outcome)
    return out


def parsed_in_both_orders(rows: Iterable[JudgmentRow]) -> int:
    """Items (question_id) with a parsed verdict in both orders."""
    parsed_ids: dict[str, int] = defaultdict(int)
    for row in rows:
        parsed_ids[row.question_id] += row.verdict is not None
    return sum(n == 2 for n in parsed_ids.values())


def bias_metrics(rows: Sequence[JudgmentRow], parsed: Sequence[bool]) -> dict[str, Metric]:
    """parse_failure_rate (of calls; `parsed` says for each call whether it parsed),
    swap_flip_rate (of items with both orders parsed), first_position_win_rate (of parsed non-tie
    verdicts) and longer_answer_win_rate (of those between answers of unequal length); `rows` holds
    one row per item and order."""
    decided = [r for r in rows if r.verdict in ("A", "B")]
    unequal = [r for r in decided if r.len_a != r.len_b]
    flips = [o for o in _orders(rows).values() if len(o) == 2]
    unparsed = sum(not p for p in parsed)
    metrics = (
        rate_metric("parse_failure_rate", unparsed, len(parsed)),
        rate_metric("swap_flip_rate", sum(o[0] != o[1] for o in flips), len(flips)),
        rate_metric("first_position_win_rate", sum(r.verdict == "A" for r in decided), len(decided)),
        rate_metric("longer_answer_win_rate", sum((r.verdict == "A") == (r.len_a > r.len_b) for r in unequal),
                    len(unequal)),
    )
    return {m.name: m for m in metrics}
