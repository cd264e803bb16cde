"""Bootstrap intervals of Bradley-Terry ratings that resample questions, not battles.

Battles on one question share its difficulty for each model, across turns, judges and orders; a
bootstrap that resamples battles treats them as independent and its intervals come out too narrow
(tests/test_stats.py measures by how much on simulated leagues). The question-clustered bootstrap
resamples the questions with replacement and keeps all of a drawn question's battles, which is the
sampling the leaderboard's claim is about: "on another draw of questions like these".

Both run on the distinct battle kinds ("cells": model pair, outcome, weight), as harness.ratings
does, and fit every round in one batched Newton iteration (harness.ratings_batched.fit_bt):
  - battle-level: each round's cell counts are a multinomial draw from the observed frequencies,
    the same draws as harness.ratings.bootstrap with the same seed (so the same intervals);
  - question-level: each round draws how many times each question is taken (a multinomial over
    the questions), and its cell counts are that multiplicity times each question's own counts,
    one (rounds x questions) @ (questions x cells) product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.ratings import Interval
from harness.ratings_batched import Cells, fit_bt
from harness.stats.frame import Frame, to_points

UNITS = ("question", "battle")


@dataclass(frozen=True, eq=False)
class Draws:
    """BT ratings on the full data (`point`) and per bootstrap round (`samples`, rounds x models)."""

    models: tuple[str, ...]
    point: np.ndarray
    samples: np.ndarray
    unit: str  # "question" or "battle": what each round resampled

    def intervals(self, level: float = 0.95) -> dict[str, Interval]:
        """Percentile intervals at `level` around the full-data point."""
        low, high = np.quantile(self.samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {m: Interval(float(self.point[i]), float(low[i]), float(high[i]), level)
                for i, m in enumerate(self.models)}

    def difference(self, model_a: str, model_b: str) -> np.ndarray:
        """Per round, rating of model_a minus rating of model_b."""
        i, j = self.models.index(model_a), self.models.index(model_b)
        return self.samples[:, i] - self.samples[:, j]


def cell_index(frame: Frame) -> tuple[Cells, np.ndarray]:
    """The frame's cells (ratings_batched.Cells, sorted by pair) and each battle's cell index."""
    swap = frame.a > frame.b
    lo, hi = np.where(swap, frame.b, frame.a), np.where(swap, frame.a, frame.b)
    outcome = np.rint(np.where(swap, 1 - frame.score_a, frame.score_a) * 2).astype(np.int64)  # 0, 1, 2
    weights, weight_index = np.unique(frame.weight, return_inverse=True)
    n = frame.n_models
    key = ((lo.astype(np.int64) * n + hi) * 3 + outcome) * len(weights) + weight_index.reshape(-1)
    keys, inverse, count = np.unique(key, return_inverse=True, return_counts=True)
    weight_of, rest = weights[keys % len(weights)], keys // len(weights)
    pair_keys, pair = np.unique(rest // 3, return_inverse=True)
    cells = Cells(pair=pair.reshape(-1), lo=pair_keys // n, hi=pair_keys % n, score_lo=(rest % 3) / 2.0,
                  weight=weight_of, count=count.astype(np.float64))
    return cells, inverse.reshape(-1)


def question_counts(frame: Frame, inverse: np.ndarray, n_cells: int) -> np.ndarray:
    """(questions x cells) matrix: how many battles of each kind each question holds."""
    flat = np.bincount(frame.question * n_cells + inverse, minlength=frame.n_questions * n_cells)
    return flat.reshape(frame.n_questions, n_cells).astype(np.float64)


def question_multiplicities(n_questions: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """(rounds x questions): how often each round draws each question (n draws with replacement)."""
    return rng.multinomial(n_questions, np.full(n_questions, 1.0 / n_questions), size=rounds).astype(np.float64)


def resampled_counts(frame: Frame, cells: Cells, inverse: np.ndarray, unit: str, rounds: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(rounds x cells) battle counts of each bootstrap round."""
    if unit == "battle":
        n = int(cells.count.sum())
        return rng.multinomial(n, cells.count / n, size=rounds).astype(np.float64)
    if unit != "question":
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    per_question = question_counts(frame, inverse, len(cells.count))
    return question_multiplicities(frame.n_questions, rounds, rng) @ per_question


def l2_strength(penalty_c: float | None, base: float = 10.0) -> float:
    """harness.ratings' penalty (FastChat's sklearn C) as the L2 strength of fit_bt."""
    return 0.0 if penalty_c is None else 1.0 / (2.0 * penalty_c * np.log(base) ** 2)


def bootstrap(frame: Frame, unit: str = "question", rounds: int = 1000, seed: int = 0, scale: float = 400,
              base: float = 10, initial: float = 1000, penalty_c: float | None = 1.0) -> Draws:
    """BT ratings (harness.ratings.bradley_terry's, same penalty and scale) and `rounds` bootstrap
    rounds that resample questions (unit="question") or battles (unit="battle")."""
    if len(frame) == 0 or rounds < 1:
        raise ValueError("bootstrap needs at least one battle and rounds >= 1")
    cells, inverse = cell_index(frame)
    l2 = l2_strength(penalty_c, base)
    theta = fit_bt(cells, cells.count, frame.n_models, l2)
    counts = resampled_counts(frame, cells, inverse, unit, rounds, np.random.default_rng(seed))
    samples = fit_bt(cells, counts, frame.n_models, l2, start=theta)
    points = lambda t: to_points(t, scale, base, initial)  # noqa: E731
    return Draws(frame.models, points(theta), points(samples), unit)


@dataclass(frozen=True)
class Widths:
    """One model's interval under both resampling units; `inflation` = question / battle width."""

    model: str
    point: float
    battle: Interval
    question: Interval

    @property
    def inflation(self) -> float:
        width = self.battle.high - self.battle.low
        return (self.question.high - self.question.low) / width if width > 0 else float("nan")


def both_widths(frame: Frame, rounds: int = 1000, seed: int = 0, level: float = 0.95, **bt) -> list[Widths]:
    """Each model's battle-level and question-clustered interval, best point first."""
    by_unit = {unit: bootstrap(frame, unit, rounds, seed, **bt).intervals(level) for unit in UNITS}
    rows = [Widths(m, by_unit["question"][m].point, by_unit["battle"][m], by_unit["question"][m])
            for m in frame.models]
    return sorted(rows, key=lambda w: (-w.point, w.model))
