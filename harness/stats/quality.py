"""Benchmark quality: how well a board separates models, whether it agrees with a reference
ranking, and how well its ratings predict verdicts on questions they were not fitted on.

- separability (Arena-Hard's "separability with confidence"): the share of model pairs whose
  intervals do not overlap, and the share a paired test calls different;
- agreement with a reference ranking the user supplies (a JSON or CSV file of model -> rating, e.g.
  Chatbot Arena's, or the ranking from people's verdicts): Spearman's rho and Kendall's tau-b over
  the models both rank, and the share of pairs ordered the same way;
- Brier score of BT's pairwise predictions on held-out questions (k folds of the questions: each
  fold is predicted from a fit on the others), beside the 0.25 of always predicting 1/2.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.ratings import Interval
from harness.ratings_batched import fit_bt
from harness.stats import clustered
from harness.stats.frame import Frame

# --- separability ---------------------------------------------------------------------------------


def separability(intervals: dict[str, Interval]) -> float:
    """Share of model pairs whose intervals do not overlap (NaN with fewer than two models)."""
    pairs = list(combinations(sorted(intervals), 2))
    if not pairs:
        return float("nan")
    apart = sum(intervals[x].high < intervals[y].low or intervals[y].high < intervals[x].low for x, y in pairs)
    return apart / len(pairs)


def separability_tested(significant: dict[tuple[str, str], bool]) -> float:
    """Share of model pairs a paired test calls different (the caller applies any correction)."""
    return sum(significant.values()) / len(significant) if significant else float("nan")


# --- agreement with a reference -------------------------------------------------------------------


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: Pearson's correlation of the (mid-)ranks."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / denominator) if denominator > 0 else float("nan")


def kendall_tau_b(x, y) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y))."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denominator = math.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float((sx * sy).sum() / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Agreement:
    models: tuple[str, ...]  # ranked by both
    spearman: float
    kendall: float
    pairs_same_order: float  # share of pairs (strictly ordered by both) in the same order
    only_here: tuple[str, ...]  # models the reference does not rate
    only_reference: tuple[str, ...]


def agreement(ours: dict[str, float], reference: dict[str, float]) -> Agreement:
    """Rank agreement of our ratings with a reference, over the models both rate."""
    common = tuple(sorted(set(ours) & set(reference)))
    x = np.array([ours[m] for m in common])
    y = np.array([reference[m] for m in common])
    i, j = np.triu_indices(len(common), k=1)
    both = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    ordered = both != 0
    return Agreement(common, spearman(x, y), kendall_tau_b(x, y),
                     float((both[ordered] > 0).mean()) if ordered.any() else float("nan"),
                     tuple(sorted(set(ours) - set(reference))), tuple(sorted(set(reference) - set(ours))))


def read_reference(path: str | Path) -> dict[str, float]:
    """model -> rating from a JSON object {"model": rating}, a JSON list of {"model", "rating"}, or a
    CSV with a header naming `model` and `rating` columns (a `score` or `elo` column also works)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such reference file: pass a JSON or CSV file of model -> rating")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            rows = data.items() if isinstance(data, dict) else ((r["model"], r["rating"]) for r in data)
        else:
            records = list(csv.DictReader(text.splitlines()))
            column = next(c for c in ("rating", "score", "elo") if records and c in records[0])
            rows = ((r["model"], r[column]) for r in records)
        reference = {str(model): float(rating) for model, rating in rows}
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError) as exc:
        raise DataError(f"{path}: not a model -> rating table ({type(exc).__name__}: {exc}): use "
                        '{"model": rating} JSON, or CSV with columns model,rating') from None
    if not reference:
        raise DataError(f"{path}: no models in the reference file: add model,rating rows")
    return reference


# --- held-out prediction --------------------------------------------------------------------------


def brier(probability_a, score_a, weight=None) -> float:
    """Weighted mean of (P(a wins) - a's score)^2, a tie scoring 0.5."""
    p, s = np.asarray(probability_a, float), np.asarray(score_a, float)
    w = np.ones_like(p) if weight is None else np.asarray(weight, float)
    return float((w * (p - s) ** 2).sum() / w.sum())


@dataclass(frozen=True)
class HeldOut:
    brier: float  # BT fitted on the other folds' questions
    brier_coin: float  # always predicting 1/2
    folds: int
    battles: int  # battles predicted (those whose both models were rated by their training folds)


def held_out_brier(frame: Frame, folds: int = 5, seed: int = 0, penalty_c: float | None = 1.0) -> HeldOut:
    """Brier score of BT predictions on held-out questions: the questions are split at random into
    `folds` groups; each group's battles are predicted by BT fitted on the other groups' battles."""
    if frame.n_questions < folds or folds < 2:
        raise ValueError(f"need at least {max(folds, 2)} questions for {folds}-fold held-out prediction")
    fold_of = np.random.default_rng(seed).permutation(frame.n_questions) % folds
    battle_fold = fold_of[frame.question]
    cells, inverse = clustered.cell_index(frame)
    l2 = clustered.l2_strength(penalty_c)
    # Each fold's training counts are the cells' counts without that fold's battles: one batched fit.
    held = np.stack([np.bincount(inverse[battle_fold == f], minlength=len(cells.count)) for f in range(folds)])
    theta = fit_bt(cells, cells.count - held, frame.n_models, l2)  # (folds, models)
    played = np.zeros((folds, frame.n_models), dtype=bool)
    for f in range(folds):
        train = battle_fold != f
        played[f, frame.a[train]] = played[f, frame.b[train]] = True
    known = played[battle_fold, frame.a] & played[battle_fold, frame.b]
    d = theta[battle_fold, frame.a] - theta[battle_fold, frame.b]
    p = np.exp(-np.logaddexp(0.0, -d))
    return HeldOut(brier(p[known], frame.score_a[known], frame.weight[known]),
                   brier(np.full(int(known.sum()), 0.5), frame.score_a[known], frame.weight[known]),
                   folds, int(known.sum()))
