"""Meta-evaluation metrics with bootstrap intervals: pure functions of verdicts and human labels.

What harness.judge_eval stores for each judge-eval run, per subset, computed here from verdicts and
labels only (no files, no store, no judge calls). Every interval is a percentile bootstrap over
pairs (a pair's two orders stay together).

- `agreement_metrics`: FastChat agreement (judges.meta.fastchat_agreement), with and without ties.
- `classification_metrics`: 3-way accuracy, macro P/R/F1 (judges.meta.classification_report) and
  Cohen's kappa of one verdict per pair against the gold label.
- `pair_metrics`: a judge that saw each pair in both orders (`PairOutcome`):
    accuracy_order1 / accuracy_order2  verdict = gold in the first presented order (seeded random) / its swap
    accuracy        mean of the two (OffsetBias "single accuracy": correct orders / judged orders)
    pair_accuracy   both orders correct (OffsetBias run_bench.py "pair_accuracy"; JudgeBench's n_all_correct)
    net_accuracy    the two orders' net vote names the gold (JudgeBench metrics.py, its reported score)
    positional_agreement  the same verdict in both orders, ties included (OffsetBias "pair_agreement_rate")
    tie_rate, parse_failure_rate  of calls
    p_prefer_first  of decided (A/B) verdicts, the share for the answer shown first
    p_prefer_longer of decided verdicts between answers of unequal length, the share for the longer
  The accuracy metrics count only pairs with an A/B gold label; on a 3-way benchmark (gold ties)
  `classification_metrics` scores the merged verdict of every pair as well.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from judges.merge import JudgmentRow
from judges.meta import PANDA_LABELS, Agreement, Vote, classification_report, cohen_kappa, fastchat_agreement


@dataclass(frozen=True)
class Metric:
    """One stored metric of a run: a fraction in [0, 1] for rates, an amount for *_per_1000 and a
    kappa in [-1, 1] (None when nothing was comparable)."""

    name: str
    value: float | None
    numerator: int | None = None
    denominator: int | None = None
    n: int = 0  # items the metric is over (the bootstrap's resampling unit)
    ci_low: float | None = None
    ci_high: float | None = None
    level: float | None = None


# ---------------------------------------------------------------- bootstrap intervals


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """The central `level` interval of bootstrap samples (nan samples, undefined there, left out)."""
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
        return percentile_interval(np.where(d > 0, n / np.where(d > 0, d, 1), np.nan), level)


def classification_cis(y_true: np.ndarray, y_pred: np.ndarray, rounds: int, level: float, seed: int,
                       labels: Sequence[int] = PANDA_LABELS) -> dict[str, tuple[float | None, float | None]]:
    """Bootstrap intervals of accuracy, macro P/R/F1 (as fractions; computed like
    judges.meta.classification_report on each resample) and Cohen's kappa."""
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
    observed = (t == p).mean(axis=1)
    chance = sum((t == v).mean(axis=1) * (p == v).mean(axis=1) for v in np.union1d(y_true, y_pred))
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(chance < 1, (observed - chance) / np.where(chance < 1, 1 - chance, 1), np.nan)
    return {"accuracy_3way": percentile_interval(observed, level),
            "macro_precision": percentile_interval(np.mean(precisions, axis=0), level),
            "macro_recall": percentile_interval(np.mean(recalls, axis=0), level),
            "macro_f1": percentile_interval(np.mean(f1s, axis=0), level),
            "cohen_kappa": percentile_interval(kappa, level)}


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


def classification_metrics(predicted: dict, gold: dict, rounds: int, level: float,
                           seed: int) -> dict[str, Metric]:
    """accuracy_3way, macro_precision, macro_recall, macro_f1 of `predicted` against `gold` as fractions
    (judges.meta.classification_report / 100) and cohen_kappa, each with a bootstrap interval over
    items. Labels are PANDA_LABELS (0 tie, 1 first better, 2 second better); a prediction of -1 (no
    verdict) is always wrong."""
    report = classification_report(predicted, gold)
    y_true = np.array([gold[idx] for idx in gold])
    y_pred = np.array([predicted[idx] for idx in gold])
    correct = int((y_true == y_pred).sum())
    cis = classification_cis(y_true, y_pred, rounds, level, seed)
    kappa = cohen_kappa(y_true, y_pred)
    values = {"accuracy_3way": correct / report.n, "macro_precision": report.macro_precision / 100,
              "macro_recall": report.macro_recall / 100, "macro_f1": report.macro_f1 / 100,
              "cohen_kappa": None if np.isnan(kappa) else kappa}
    metrics = {}
    for metric, value in values.items():
        low, high = cis.get(metric, (None, None))
        is_ratio = metric == "accuracy_3way"
        metrics[metric] = Metric(metric, value, correct if is_ratio else None, report.n if is_ratio else None,
                                 report.n, low, high, level if low is not None else None)
    return metrics


# ---------------------------------------------------------------- per-call rates from judgment rows
# (harness.calibration's before/after comparison reads these; judge-eval runs use pair_metrics)


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


# ---------------------------------------------------------------- a judge that saw each pair in both orders

LABEL_CODES = {"tie": 0, "A": 1, "B": 2}  # PANDA_LABELS: the pair's own terms (A = response_a)
_FLIP = {"A": "B", "B": "A", "tie": "tie"}


def flip(verdict: str | None) -> str | None:
    """A verdict seen from the other order ('A' <-> 'B')."""
    return None if verdict is None else _FLIP[verdict]


@dataclass(frozen=True)
class PairOutcome:
    """A judge's verdicts on one labelled pair, in the pair's own terms (A: response_a is better).

    `verdicts` maps each judged orientation (1: response_a shown first, 2: swapped) to its verdict,
    None when the call did not parse; `first` is the orientation presented first (seeded random);
    `merged` is the one verdict of both orders under the run's merge policy (None: none)."""

    pair_id: str
    subset: str
    gold: str
    first: int
    verdicts: dict = field(hash=False)
    merged: str | None
    len_a: int
    len_b: int


def _shown_first_won(orientation: int, verdict: str) -> bool:
    return verdict == ("A" if orientation == 1 else "B")


def _pair_counts(o: PairOutcome) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of each metric for one pair; a denominator of 0 leaves it out."""
    second = 3 - o.first
    judged = [v for v in o.verdicts.values()]
    two_way = o.gold in ("A", "B")
    both = len(o.verdicts) == 2
    v_first, v_second = o.verdicts.get(o.first), o.verdicts.get(second)
    decided = [(orientation, v) for orientation, v in o.verdicts.items() if v in ("A", "B")]
    unequal = [v for _, v in decided if o.len_a != o.len_b]
    net = sum((v == o.gold) - (v == flip(o.gold)) for v in judged)
    counts = {
        "accuracy_order1": (int(v_first == o.gold), int(two_way and o.first in o.verdicts)),
        "accuracy_order2": (int(v_second == o.gold), int(two_way and second in o.verdicts)),
        "accuracy": (sum(v == o.gold for v in judged), len(judged) if two_way else 0),
        "pair_accuracy": (int(v_first == v_second == o.gold), int(two_way and both)),
        "net_accuracy": (int(net > 0), int(two_way and both)),
        "positional_agreement": (int(both and v_first is not None and v_first == v_second), int(both)),
        "tie_rate": (sum(v == "tie" for v in judged), len(judged)),
        "parse_failure_rate": (sum(v is None for v in judged), len(judged)),
        "p_prefer_first": (sum(_shown_first_won(k, v) for k, v in decided), len(decided)),
        "p_prefer_longer": (sum((v == "A") == (o.len_a > o.len_b) for v in unequal), len(unequal)),
    }
    return {name: (num if den else 0, den) for name, (num, den) in counts.items()}


PAIR_METRICS = ("accuracy_order1", "accuracy_order2", "accuracy", "pair_accuracy", "net_accuracy",
                "positional_agreement", "tie_rate", "parse_failure_rate", "p_prefer_first", "p_prefer_longer")


def pair_metrics(outcomes: Sequence[PairOutcome], three_way: bool, rounds: int, level: float,
                 seed: int) -> dict[str, Metric]:
    """Every PAIR_METRICS metric with a denominator, each a ratio of sums over pairs with a bootstrap
    interval over pairs; with `three_way`, also `classification_metrics` of the merged verdicts."""
    counts = [_pair_counts(o) for o in outcomes]
    metrics: dict[str, Metric] = {}
    for name in PAIR_METRICS:
        num = [c[name][0] for c in counts]
        den = [c[name][1] for c in counts]
        total, hits = sum(den), sum(num)
        if not total:
            continue
        low, high = ratio_ci(num, den, rounds, level, seed)
        metrics[name] = Metric(name, hits / total, hits, total, sum(d > 0 for d in den), low, high,
                               level if low is not None else None)
    if three_way and outcomes:
        gold = {i: LABEL_CODES[o.gold] for i, o in enumerate(outcomes)}
        predicted = {i: LABEL_CODES.get(o.merged or "", -1) for i, o in enumerate(outcomes)}
        metrics |= classification_metrics(predicted, gold, rounds, level, seed)
    return metrics


def per_thousand(name: str, total: float | None, calls: int) -> Metric | None:
    """`total` (tokens, seconds, dollars) per 1,000 judge calls; None when unknown or no calls."""
    if total is None or not calls:
        return None
    return Metric(name, 1000 * total / calls, None, None, calls)
