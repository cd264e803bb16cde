"""Model A against model B, paired by question: is the difference real, and could we see one?

Per question q, A's paired outcome x_q in [-1, 1]:
  - direct: A met B on q (any turn, order, judge of the panel): x_q = 2 * (A's weighted mean score
    against B on q) - 1, ties scoring 0.5 (so +1: A won every battle on q, 0: even);
  - otherwise through common opponents (a baseline design, where A and B each met only the
    baseline): x_q = the mean over opponents C that both met on q of (A's mean score against C) -
    (B's mean score against C).
Questions where neither applies do not enter. The question is the unit: its battles are
correlated, so every test and interval here resamples or permutes whole questions.

Tests of "A and B are equally good" (x_q symmetric about 0):
  - sign test: questions A did better on against those B did better on, exact binomial p-value;
  - sign-flip permutation test of the mean of x_q: exact over all 2^n flips for n <= 16 questions,
    otherwise seeded Monte Carlo with the (1 + hits) / (1 + draws) p-value, never 0.
Both use only what A and B did on the same questions. The test of the board's order,
`bt_permutation_test`, uses every battle: under "A and B are exchangeable" swapping their names in
all battles of any set of questions changes nothing, so the BT difference refitted over random
swaps is its null distribution (in an all-pairs design it sees the common opponents too, and is
far more powerful than the direct per-question tests).
Power: the normal approximation of the mean test, MDE = (z_{1-alpha/2} + z_power) sd(x) / sqrt(n);
in BT points the same multiple of the BT difference's question-clustered bootstrap spread.
Holm's step-down correction runs over the adjacent pairs of a ranking (BT permutation tests): the
leaderboard's mark "significantly above the next model".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from harness.ratings_batched import fit_bt
from harness.stats import clustered
from harness.stats.frame import Frame

EXACT_UP_TO = 16  # questions; 2^16 sign vectors are enumerated, more are drawn
PERMUTATIONS = 10_000
BT_PERMUTATIONS = 2000  # each one a BT refit (batched): 0.2 s for 8 models on a 2-core machine


@dataclass(frozen=True, eq=False)
class PairedOutcomes:
    """x[k]: A's paired outcome on question questions[k]; direct[k]: A and B met there."""

    model_a: str
    model_b: str
    questions: tuple
    x: np.ndarray
    direct: np.ndarray


def _mean_score_per(key: np.ndarray, score: np.ndarray, weight: np.ndarray, n_keys: int):
    """(weighted mean score, has battles) per key."""
    total = np.bincount(key, weight, minlength=n_keys)
    won = np.bincount(key, weight * score, minlength=n_keys)
    has = total > 0
    return np.divide(won, total, out=np.zeros(n_keys), where=has), has


def per_question(frame: Frame, model_a: str, model_b: str) -> PairedOutcomes:
    """A's paired outcome per question against B (see the module docstring)."""
    i, j = frame.index(model_a), frame.index(model_b)
    if i == j:
        raise ValueError("compare two different models")
    n_q, n_m = frame.n_questions, frame.n_models
    # Every battle from each side's point of view: (question, me, opponent, my score, weight).
    me = np.concatenate([frame.a, frame.b])
    other = np.concatenate([frame.b, frame.a])
    score = np.concatenate([frame.score_a, 1 - frame.score_a])
    weight = np.concatenate([frame.weight, frame.weight])
    question = np.concatenate([frame.question, frame.question])
    mine = (me == i) & (other == j)
    direct, has_direct = _mean_score_per(question[mine], score[mine], weight[mine], n_q)
    x = 2 * direct - 1
    # Common opponents: per (question, opponent), A's and B's mean scores.
    against = lambda who: (me == who) & (other != i) & (other != j)  # noqa: E731
    key = lambda rows: question[rows] * n_m + other[rows]  # noqa: E731
    rows_a, rows_b = against(i), against(j)
    s_a, has_a = _mean_score_per(key(rows_a), score[rows_a], weight[rows_a], n_q * n_m)
    s_b, has_b = _mean_score_per(key(rows_b), score[rows_b], weight[rows_b], n_q * n_m)
    both = (has_a & has_b).reshape(n_q, n_m)
    gap = ((s_a - s_b).reshape(n_q, n_m) * both).sum(axis=1)
    n_common = both.sum(axis=1)
    indirect = ~has_direct & (n_common > 0)
    x[indirect] = gap[indirect] / n_common[indirect]
    keep = has_direct | indirect
    return PairedOutcomes(model_a, model_b, tuple(q for q, k in zip(frame.questions, keep) if k), x[keep],
                          has_direct[keep])


# --- tests ----------------------------------------------------------------------------------------


def sign_test(x: np.ndarray) -> float:
    """Two-sided exact binomial p-value of (#x > 0) among the nonzero x, at p = 1/2 (1 without any)."""
    x = np.asarray(x, dtype=float)
    wins, losses = int((x > 0).sum()), int((x < 0).sum())
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def permutation_test(x: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0,
                     exact_up_to: int = EXACT_UP_TO) -> float:
    """Two-sided sign-flip permutation p-value of |sum x| (zeros dropped; 1 without any)."""
    x = np.asarray(x, dtype=float)
    x = x[x != 0]
    n = len(x)
    if n == 0:
        return 1.0
    observed = abs(x.sum())
    tolerance = 1e-12 * np.abs(x).sum()  # equal sums computed in another order are still "as extreme"
    if n <= exact_up_to:
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
        return float((np.abs(np.einsum("pn,n->p", signs, x)) >= observed - tolerance).mean())
    rng = np.random.default_rng(seed)
    hits, block = 0, max(1, (1 << 22) // n)
    for start in range(0, permutations, block):
        signs = rng.integers(0, 2, (min(block, permutations - start), n)) * 2.0 - 1.0
        hits += int((np.abs(np.einsum("pn,n->p", signs, x)) >= observed - tolerance).sum())
    return (1 + hits) / (1 + permutations)


def bt_permutation_test(frame: Frame, model_a: str, model_b: str, permutations: int = 2000, seed: int = 0,
                        penalty_c: float | None = 1.0) -> float:
    """p-value of |BT strength of A - BT strength of B| under "A and B are exchangeable": each
    permutation swaps the two models' names in every battle of a random half of the questions (their
    games against each other and against everyone else) and refits BT. Unlike the per-question
    tests it uses every battle (common opponents included, through BT), so in an all-pairs design it
    is the more powerful test of the board's order. Seeded Monte Carlo, (1 + hits) / (1 + draws)."""
    i, j = frame.index(model_a), frame.index(model_b)
    swap = np.arange(frame.n_models)
    swap[[i, j]] = [j, i]
    both = Frame(frame.models, np.concatenate([frame.a, swap[frame.a]]), np.concatenate([frame.b, swap[frame.b]]),
                 np.concatenate([frame.score_a, frame.score_a]), np.concatenate([frame.weight, frame.weight]),
                 np.concatenate([frame.question, frame.question]), frame.questions,
                 np.concatenate([frame.len_a, frame.len_a]), np.concatenate([frame.len_b, frame.len_b]))
    cells, inverse = clustered.cell_index(both)
    n, n_cells = len(frame), len(cells.count)
    kept = clustered.question_counts(frame, inverse[:n], n_cells)
    swapped = clustered.question_counts(frame, inverse[n:], n_cells)
    l2 = clustered.l2_strength(penalty_c)
    theta = fit_bt(cells, kept.sum(axis=0), frame.n_models, l2)
    observed = abs(theta[i] - theta[j])
    flips = np.random.default_rng(seed).integers(0, 2, (permutations, frame.n_questions)).astype(np.float64)
    counts = flips @ kept + (1 - flips) @ swapped
    samples = fit_bt(cells, counts, frame.n_models, l2, start=theta)
    hits = int((np.abs(samples[:, i] - samples[:, j]) >= observed - 1e-9 * max(1.0, observed)).sum())
    return (1 + hits) / (1 + permutations)


def holm(pvalues, alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """Holm's step-down correction: (rejected, adjusted p-values), in the input order. The k-th
    smallest p (k from 0) is multiplied by m - k, kept monotone, capped at 1; reject when <= alpha.
    NaN p-values (a pair with nothing to compare) count in m and are never rejected."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    filled = np.where(np.isnan(p), 1.0, p)
    order = np.argsort(filled, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(filled[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    adjusted[np.isnan(p)] = np.nan
    return [bool(a <= alpha) for a in adjusted], [float(a) for a in adjusted]


# --- power ----------------------------------------------------------------------------------------


def _z_sum(alpha: float, power: float) -> float:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |mean| a two-sided level-alpha test of a mean of n paired outcomes with this
    standard deviation detects with probability `power` (normal approximation)."""
    return _z_sum(alpha, power) * sd / math.sqrt(n) if n > 0 else float("inf")


def questions_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """How many questions make `effect` (a mean paired outcome) detectable with `power`; inf for 0."""
    if effect == 0:
        return float("inf")
    return float(math.ceil((_z_sum(alpha, power) * sd / abs(effect)) ** 2))


# --- a comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """A against B. Win rates are fractions (ties half); BT differences are rating points (A - B)."""

    model_a: str
    model_b: str
    questions: int  # questions with a paired outcome
    direct_questions: int  # of those, where A met B
    question_wins: int  # questions where A did better / worse / the same
    question_losses: int
    question_ties: int
    win_rate: float  # mean over questions of (x + 1) / 2: A's question-averaged win rate over B
    win_rate_low: float  # question-clustered percentile interval at `level`
    win_rate_high: float
    bt_difference: float
    bt_low: float
    bt_high: float
    p_bt: float  # bt_permutation_test: the board's order, every battle used (the mark's test)
    p_permutation: float  # per-question outcomes, sign-flip permutation test
    p_sign: float
    mde_win_rate: float  # smallest |win rate - 0.5| detectable with `power` at `alpha`, these questions
    mde_bt: float  # the same for the BT difference, from its clustered bootstrap spread
    questions_needed: float  # questions that would detect the observed win rate gap with `power`
    alpha: float
    power: float
    level: float

    @property
    def significant(self) -> bool:
        return self.p_bt <= self.alpha


def compare(frame: Frame, model_a: str, model_b: str, draws: clustered.Draws | None = None, rounds: int = 1000,
            seed: int = 0, level: float = 0.95, alpha: float = 0.05, power: float = 0.8,
            permutations: int = PERMUTATIONS, bt_permutations: int = BT_PERMUTATIONS) -> Paired:
    """Paired comparison of model_a and model_b on the frame's questions. `draws`: a question-
    clustered BT bootstrap of the same frame (computed when not given)."""
    if draws is None:
        draws = clustered.bootstrap(frame, "question", rounds, seed)
    outcomes = per_question(frame, model_a, model_b)
    x, n = outcomes.x, len(outcomes.x)
    diff = draws.difference(model_a, model_b)
    i, j = draws.models.index(model_a), draws.models.index(model_b)
    bt_low, bt_high = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    mde_bt = _z_sum(alpha, power) * float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
    p_bt = bt_permutation_test(frame, model_a, model_b, bt_permutations, seed)
    if n == 0:
        nan = float("nan")
        return Paired(model_a, model_b, 0, 0, 0, 0, 0, nan, nan, nan, float(draws.point[i] - draws.point[j]),
                      float(bt_low), float(bt_high), p_bt, nan, nan, nan, mde_bt, nan, alpha, power, level)
    rng = np.random.default_rng(seed)
    taken = clustered.question_multiplicities(n, len(diff), rng)
    rates = (taken @ ((x + 1) / 2)) / n
    wr_low, wr_high = np.quantile(rates, [(1 - level) / 2, (1 + level) / 2])
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    return Paired(
        model_a, model_b, n, int(outcomes.direct.sum()), int((x > 0).sum()), int((x < 0).sum()), int((x == 0).sum()),
        float(((x + 1) / 2).mean()), float(wr_low), float(wr_high),
        float(draws.point[i] - draws.point[j]), float(bt_low), float(bt_high),
        p_bt, permutation_test(x, permutations, seed), sign_test(x),
        minimum_detectable_effect(sd, n, alpha, power) / 2, mde_bt, questions_needed(float(x.mean()), sd, alpha, power),
        alpha, power, level)


@dataclass(frozen=True)
class Adjacent:
    """A model and the one ranked just below it: the BT permutation test and its Holm-adjusted p-value."""

    above: str
    below: str
    p_value: float  # bt_permutation_test of the pair
    p_holm: float
    significant: bool  # Holm-adjusted p <= alpha: "significantly above the next model"


def adjacent(frame: Frame, draws: clustered.Draws | None = None, alpha: float = 0.05, seed: int = 0,
             permutations: int = BT_PERMUTATIONS, order: Sequence[str] | None = None) -> list[Adjacent]:
    """Per adjacent pair of a ranking, the permutation test of their BT difference (names swapped
    within questions: `bt_permutation_test`) with Holm's correction over the pairs. The ranking:
    `order` (best first), else the BT points of `draws`, else BT fitted here (names break ties)."""
    if order is None:
        if draws is None:
            from harness.ratings import bradley_terry

            points = bradley_terry(frame.battles())
        else:
            points = dict(zip(draws.models, draws.point))
        order = sorted(points, key=lambda m: (-points[m], m))
    names = list(order)
    pairs = list(zip(names, names[1:]))
    pvalues = [bt_permutation_test(frame, above, below, permutations, seed) for above, below in pairs]
    rejected, adjusted = holm(pvalues, alpha)
    return [Adjacent(a, b, p, q, r) for (a, b), p, q, r in zip(pairs, pvalues, adjusted, rejected)]


def all_pairs(frame: Frame, alpha: float = 0.05, seed: int = 0, permutations: int = BT_PERMUTATIONS
              ) -> dict[tuple[str, str], bool]:
    """Per model pair (name order), whether `bt_permutation_test` separates it, Holm-corrected over
    all pairs."""
    pairs = [(x, y) for k, x in enumerate(frame.models) for y in frame.models[k + 1:]]
    pvalues = [bt_permutation_test(frame, x, y, permutations, seed) for x, y in pairs]
    return dict(zip(pairs, holm(pvalues, alpha)[0]))
