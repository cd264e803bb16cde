"""Ratings from judged battles and single grades, as pure functions over numpy arrays.

Pairwise: online Elo, Bradley-Terry (BT) maximum likelihood, percentile bootstrap intervals, win
rate against a baseline, AlpacaEval-2-style length-controlled win rate. Single grades: MT-Bench
means per turn.

Conventions are FastChat's Chatbot Arena ones (fastchat/serve/monitor/elo_analysis.py) unless a
docstring says otherwise: a rating R means P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale)),
and a tie counts as half a win for each side. BT works on an aggregate of the battles, the
distinct (a, b, outcome, weight) "cells" and their counts, so a fit or a bootstrap round costs the
same for a thousand battles as for ten million. The vectorised engines (every bootstrap round of BT
in one batched Newton fit, every Elo run side by side) are in harness.ratings_batched.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from harness import ratings_batched
from harness.ratings_batched import EloRuns, fit_bt, run_elo

_SCORE_OF_WINNER = {"model_a": 1.0, "a": 1.0, "model_b": 0.0, "b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


@dataclass(frozen=True, eq=False)  # eq=False: == on numpy fields is elementwise, not a bool
class Battles:
    """One row per judged battle, models as indices into `models`.

    Fields are coerced to numpy arrays and checked on construction.
    """

    models: tuple[str, ...]  # index -> name
    a: np.ndarray  # index of the model in position "a"
    b: np.ndarray  # index of the model in position "b"
    score_a: np.ndarray  # 1.0 a won, 0.0 b won, 0.5 tie
    weight: np.ndarray  # 1.0, or e.g. 0.5 for each half of a battle judged in both orders

    def __post_init__(self) -> None:
        set_field = object.__setattr__  # the dataclass is frozen; this is construction
        set_field(self, "models", tuple(self.models))
        for name, dtype in (("a", np.intp), ("b", np.intp), ("score_a", np.float64), ("weight", np.float64)):
            set_field(self, name, np.asarray(getattr(self, name), dtype=dtype).reshape(-1))
        n = len(self.a)
        if not (len(self.b) == len(self.score_a) == len(self.weight) == n):
            raise ValueError("Battles: a, b, score_a and weight must have the same length")
        if n and (min(self.a.min(), self.b.min()) < 0 or max(self.a.max(), self.b.max()) >= len(self.models)):
            raise ValueError("Battles: a model index is outside `models`")
        if np.any(self.a == self.b):
            raise ValueError("Battles: a model cannot battle itself")
        if not np.isin(self.score_a, (0.0, 0.5, 1.0)).all():
            raise ValueError("Battles: score_a must be 1.0 (a won), 0.0 (b won) or 0.5 (tie)")
        if not (np.isfinite(self.weight).all() and (self.weight > 0).all()):
            raise ValueError("Battles: weights must be finite and positive")

    def __len__(self) -> int:
        return len(self.a)

    def take(self, rows: np.ndarray) -> Battles:
        """The battles at `rows` (indices or a boolean mask), same model list."""
        return Battles(self.models, self.a[rows], self.b[rows], self.score_a[rows], self.weight[rows])


def battles_from_rows(
    rows: Iterable[tuple[str, str, str]], weights: Iterable[float] | None = None
) -> Battles:
    """Battles from (model_a, model_b, winner) rows, FastChat's battle columns.

    `winner` is "model_a" / "A", "model_b" / "B", or "tie" / "tie (bothbad)" (case-insensitive).
    Models are indexed in sorted name order. `weights` defaults to 1.0 per battle.
    """
    rows = list(rows)
    models = tuple(sorted({name for a, b, _ in rows for name in (a, b)}))
    index = {name: i for i, name in enumerate(models)}
    scores = []
    for a, b, winner in rows:
        score = _SCORE_OF_WINNER.get(str(winner).strip().lower())
        if score is None:
            raise ValueError(f"battle {a} vs {b}: unknown winner {winner!r} (expected model_a, model_b or tie)")
        scores.append(score)
    weight = np.ones(len(rows)) if weights is None else np.asarray(list(weights), dtype=np.float64)
    if len(weight) != len(rows):
        raise ValueError(f"{len(weight)} weights for {len(rows)} battles")
    a = np.fromiter((index[r[0]] for r in rows), dtype=np.intp, count=len(rows))
    b = np.fromiter((index[r[1]] for r in rows), dtype=np.intp, count=len(rows))
    return Battles(models, a, b, np.asarray(scores), weight)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval at `level` (e.g. 0.95)."""

    point: float
    low: float
    high: float
    level: float


def significantly_different(i1: Interval, i2: Interval) -> bool:
    """True when the two intervals do not overlap. A conservative test: for independent, roughly
    normal estimates, two 95% intervals that do not overlap mean p < 0.01 for the difference, and
    overlapping ones do not prove the two equal."""
    return i1.high < i2.low or i2.high < i1.low


# --- online Elo -----------------------------------------------------------------------------------


def elo(
    battles: Battles,
    k: float = 4,
    base: float = 10,
    scale: float = 400,
    initial: float = 1000,
    n_orders: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Online Elo, FastChat's `compute_elo`: each battle moves both ratings by k * weight * (score -
    expected score), ties scoring 0.5.

    Online Elo depends on the order of the battles. n_orders=1 runs them in the given order and
    equals FastChat's `compute_elo` on that order to the last bit (for weight 1). n_orders > 1
    averages the ratings over that many random orders drawn from `seed`, which removes the order
    dependence when battles have no meaningful chronology (e.g. judge runs); building the orders
    takes about 12 bytes x n_orders x len(battles) of memory at peak.
    """
    if n_orders < 1:
        raise ValueError("n_orders must be >= 1")
    if n_orders == 1:
        ratings = _elo_in_order(battles, k, base, scale, initial)
    else:
        ratings = run_elo([_shuffled_orders(battles, n_orders, seed)], k, base, scale, initial)[0].mean(axis=0)
    return dict(zip(battles.models, map(float, ratings)))


def _shuffled_orders(battles: Battles, n_orders: int, seed: int) -> EloRuns:
    """n_orders runs, each over every battle once in its own random order drawn from `seed`."""
    orders = np.tile(np.arange(len(battles), dtype=np.int32), (n_orders, 1))  # row r: run r's battles
    np.random.default_rng(seed).permuted(orders, axis=1, out=orders)
    by_step = np.ascontiguousarray(orders.T)  # row t: battle t of each run, as run_elo reads them
    return _runs(battles, n_orders, lambda start, stop: by_step[start:stop])


def _runs(battles: Battles, width: int, draws: Callable[[int, int], np.ndarray]) -> EloRuns:
    return EloRuns(battles.a, battles.b, battles.score_a, battles.weight, len(battles.models), width, len(battles),
                   draws)


def _elo_in_order(battles: Battles, k, base, scale, initial) -> list[float]:
    # Plain Python floats and FastChat's exact expressions, so the result matches it bit for bit.
    ratings = [initial] * len(battles.models)
    columns = (battles.a.tolist(), battles.b.tolist(), battles.score_a.tolist(), battles.weight.tolist())
    for a, b, s, w in zip(*columns):
        ra, rb = ratings[a], ratings[b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        ratings[a] += k * w * (s - ea)
        ratings[b] += k * w * (1 - s - eb)
    return ratings


# --- Bradley-Terry --------------------------------------------------------------------------------


def _cells(battles: Battles) -> ratings_batched.Cells:
    return ratings_batched.cells(battles.a, battles.b, battles.score_a, battles.weight, len(battles.models))


def _l2_strength(penalty_c: float | None, base: float) -> float:
    # FastChat's sklearn fit: C * sum over duplicated rows of log-loss + |w|^2 / 2, w = theta / ln(base).
    # Each battle is two rows there, so per battle: loss + |theta|^2 / (4 C ln(base)^2).
    return 0.0 if penalty_c is None else 1.0 / (2.0 * penalty_c * math.log(base) ** 2)


def _to_ratings(theta: np.ndarray, models: Sequence[str], scale, base, initial, anchor) -> np.ndarray:
    ratings = initial + scale * theta / math.log(base)  # theta has mean 0, so the mean is `initial`
    if anchor is not None:
        name, value = anchor
        ratings = ratings + (value - ratings[..., [list(models).index(name)]])
    return ratings


def bradley_terry(
    battles: Battles,
    scale: float = 400,
    base: float = 10,
    initial: float = 1000,
    anchor: tuple[str, float] | None = None,
    penalty_c: float | None = 1.0,
) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale (FastChat's
    `compute_elo_mle_with_tie` / `compute_mle_elo`).

    A tie is half a win for each side; a battle counts with its weight. Ratings are shifted so their
    mean is `initial`, or so that `anchor = (model, value)` has that rating (FastChat anchors
    "mixtral-8x7b-instruct-v0.1" at 1114, older releases "llama-13b" at 800, and otherwise leaves
    the mean at INIT_RATING, as here).

    `penalty_c` is the inverse strength of an L2 penalty in the units of FastChat 0.2.x's sklearn
    fit (LogisticRegression with its default C=1.0, on the battles duplicated so that a tie is one
    win each way): per battle, objective = weighted log-loss + |theta|^2 / (4 C ln(base)^2), theta the
    natural-scale strengths. It keeps ratings finite when a model wins or loses every battle, and
    pulls a rating 300 points from the mean by about 0.2 points at 1,000 battles per model, 0.02 at
    10,000. None fits the unpenalised MLE, as FastChat's newer scipy-based fit does.
    """
    cells = _cells(battles)
    theta = fit_bt(cells, cells.count, len(battles.models), _l2_strength(penalty_c, base))
    ratings = _to_ratings(theta, battles.models, scale, base, initial, anchor)
    return dict(zip(battles.models, map(float, ratings)))


# --- bootstrap ------------------------------------------------------------------------------------


def bootstrap(
    battles: Battles, rater: str = "bt", rounds: int = 1000, seed: int = 0, level: float = 0.95, **kw
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of `bradley_terry` (rater="bt") or `elo` (rater="elo") ratings.

    Each round resamples len(battles) battles with replacement and rates them (kw go to the rater);
    the interval is the ((1 - level) / 2, (1 + level) / 2) quantiles of the rounds, and the point is
    the rating on the full data.

    BT draws each round's counts of the distinct battle kinds from a multinomial with the observed
    frequencies: the same distribution as resampling rows, at a cost per round that does not grow
    with the number of battles; all rounds are fitted together by one batched Newton iteration
    that starts from the full-data optimum.
    Elo replays each round's resampled battles in their drawn (random) order, as FastChat's
    `get_bootstrap_result` does; all rounds advance together in one vectorised loop, so the cost is
    about len(battles) numpy steps whatever `rounds` is. The Elo point uses `elo(battles, **kw)`.
    """
    return bootstrap_many([battles], rater, rounds, seed, level, **kw)[0]


def bootstrap_many(
    panels: Sequence[Battles], rater: str = "bt", rounds: int = 1000, seed: int = 0, level: float = 0.95, **kw
) -> list[dict[str, Interval]]:
    """`bootstrap` of each set of battles in `panels` (e.g. a board's judges, dimensions and
    categories), each resampled by its own generator seeded by `seed`: the same numbers as calling
    `bootstrap` once per panel. Elo runs the rounds and shuffled orders of every panel side by side
    in a single vectorised loop, so a board costs about as many numpy steps as its largest panel
    has battles, not the sum over panels."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if rounds < 1 or any(len(battles) == 0 for battles in panels):
        raise ValueError("bootstrap needs rounds >= 1 and at least one battle")
    if rater == "bt":
        results = [_bootstrap_bt(battles, rounds, np.random.default_rng(seed), **kw) for battles in panels]
    elif rater == "elo":
        results = _bootstrap_elo(panels, rounds, seed, **kw)
    else:
        raise ValueError(f"unknown rater {rater!r} (expected 'bt' or 'elo')")
    out = []
    for battles, (point, samples) in zip(panels, results):
        low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out.append({name: Interval(float(point[m]), float(low[m]), float(high[m]), level)
                    for m, name in enumerate(battles.models)})
    return out


def _bootstrap_bt(battles, rounds, rng, scale=400, base=10, initial=1000, anchor=None, penalty_c=1.0):
    """(point, (rounds, models) samples) of BT ratings; rng draws the rounds' multinomial counts."""
    cells, n_models = _cells(battles), len(battles.models)
    l2 = _l2_strength(penalty_c, base)
    theta = fit_bt(cells, cells.count, n_models, l2)
    n = int(cells.count.sum())
    counts = rng.multinomial(n, cells.count / n, size=rounds).astype(np.float64)  # row r: round r's draw
    samples = fit_bt(cells, counts, n_models, l2, start=theta)
    to_ratings = lambda t: _to_ratings(t, battles.models, scale, base, initial, anchor)  # noqa: E731
    return to_ratings(theta), to_ratings(samples)


def _bootstrap_elo(panels, rounds, seed, k=4, base=10, scale=400, initial=1000, n_orders=1, order_seed=0):
    """Per panel (point, (rounds, models) samples) of Elo ratings: one `run_elo` over every panel's
    bootstrap rounds (and, for n_orders > 1, the shuffled orders of its point estimate)."""
    groups = []
    for battles in panels:
        rng, n = np.random.default_rng(seed), len(battles)
        # Round r plays battle draws[t, r] at step t: the same stream as one draw of all rounds a step.
        draws = lambda start, stop, rng=rng, n=n: rng.integers(0, n, (stop - start, rounds))  # noqa: E731
        groups.append(_runs(battles, rounds, draws))
        if n_orders > 1:
            groups.append(_shuffled_orders(battles, n_orders, order_seed))
    finals = run_elo(groups, k, base, scale, initial)
    results, at = [], 0
    for battles in panels:
        samples = finals[at]
        if n_orders > 1:
            point, at = finals[at + 1].mean(axis=0), at + 2
        else:
            point, at = np.array(_elo_in_order(battles, k, base, scale, initial)), at + 1
        results.append((point, samples))
    return results


# --- win rates ------------------------------------------------------------------------------------


def win_rate_against(
    battles: Battles, baseline: str, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Interval]:
    """Per model that met `baseline`: its weighted win rate in those battles only, as a fraction in
    [0, 1] (a tie scores 0.5), with a percentile bootstrap interval over those battles.

    Models that never met the baseline are left out. Each model's battles are resampled on their
    own (multinomial over its distinct battle kinds, like `bootstrap`), with one generator seeded
    by `seed` drawing for the models in index order.
    """
    if baseline not in battles.models:
        raise ValueError(f"baseline {baseline!r} is not among the models")
    base_index = battles.models.index(baseline)
    cells = _cells(battles)
    lo, hi = cells.lo[cells.pair], cells.hi[cells.pair]
    # Every cell's model pair is (lo, hi); turn each baseline cell to the opponent's point of view.
    opponent = np.where(lo == base_index, hi, lo)
    score = np.where(lo == base_index, 1 - cells.score_lo, cells.score_lo)
    meets = (lo == base_index) | (hi == base_index)
    rng = np.random.default_rng(seed)
    result = {}
    for m in np.unique(opponent[meets]):
        mine = meets & (opponent == m)
        count, weight, won = cells.count[mine], cells.weight[mine], cells.weight[mine] * score[mine]
        n = int(count.sum())
        draws = rng.multinomial(n, count / n, size=rounds)  # (rounds, this model's cells): small
        samples = (draws @ won) / (draws @ weight)
        low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
        result[battles.models[m]] = Interval(float(count @ won / (count @ weight)), float(low), float(high), level)
    return result


@dataclass(frozen=True)
class LengthControlled:
    """AlpacaEval-2-style result for one model against its baseline; rates are percentages."""

    lc_win_rate: float  # predicted win rate at equal length
    win_rate: float  # raw mean preference, ties 0.5
    model_coef: float  # model-identity log-odds at equal length (and difficulty 0)
    length_coef: float  # > 0: the judge favours the longer answer
    difficulty_coef: float | None  # None when no difficulty was given


def length_controlled_win_rate(
    model_len: Sequence[float],
    baseline_len: Sequence[float],
    score: Sequence[float],
    difficulty: Sequence[float] | None = None,
    c: float = 100.0,
) -> LengthControlled:
    """Length-controlled win rate of one model against a baseline, after AlpacaEval 2's
    `length_controlled_v1` GLM (alpaca_eval/metrics/glm_winrate.py).

    Per instruction i, with s_i in [0, 1] the preference for the model (1 win, 0.5 tie, 0 loss):
        z_i   = (model_len_i - baseline_len_i) / std(model_len - baseline_len)   (ddof=1)
        eta_i = theta_model + theta_len * tanh(z_i) [+ theta_diff * difficulty_i]
    theta minimises  c * sum_i [-s_i log sigmoid(eta_i) - (1 - s_i) log sigmoid(-eta_i)] + |theta|_1
    (AlpacaEval's soft-label fit: each row duplicated with labels 1 and 0 weighted s_i and 1 - s_i,
    no intercept besides theta_model, L1 penalty with C = 100 as in its fit without CV), and
        LC win rate = 100 * mean_i sigmoid(theta_model [+ theta_diff * difficulty_i]),
    the prediction with the length term set to 0.

    Differences from AlpacaEval: no cross-validation of C (AlpacaEval's leaderboard runs
    LogisticRegressionCV), no regularisation towards its precomputed "gamed" baselines, and the
    per-instruction difficulty is an optional input instead of its published table. The sign of z
    is model minus baseline (AlpacaEval's is the reverse), which flips theta_len and nothing else.

    When length alone separates the preferences perfectly (a judge that always picks the longer
    answer), the model term is not identified: the fit puts the boundary somewhere between the
    closest-length pairs and the LC win rate can land anywhere. AlpacaEval's regularisation
    towards length-gamed baselines exists for this case; here, treat such an LC value as noise.
    """
    model_len, baseline_len = np.asarray(model_len, float), np.asarray(baseline_len, float)
    s = np.asarray(score, float)
    if not (len(model_len) == len(baseline_len) == len(s)) or len(s) < 2:
        raise ValueError("need matching model_len, baseline_len and score for at least 2 instructions")
    if np.any((s < 0) | (s > 1)):
        raise ValueError("score must be in [0, 1]")
    delta = model_len - baseline_len
    spread = delta.std(ddof=1)
    z = delta / spread if spread > 0 else np.zeros_like(delta)
    columns = [np.ones_like(s), np.tanh(z)]
    if difficulty is not None:
        columns.append(np.asarray(difficulty, float))
    x = np.column_stack(columns)
    theta = _l1_logistic(x, s, c)
    at_equal_length = x.copy()
    at_equal_length[:, 1] = 0.0
    return LengthControlled(
        lc_win_rate=float(expit(at_equal_length @ theta).mean() * 100),
        win_rate=float(s.mean() * 100),
        model_coef=float(theta[0]),
        length_coef=float(theta[1]),
        difficulty_coef=float(theta[2]) if difficulty is not None else None,
    )


def _l1_logistic(x: np.ndarray, s: np.ndarray, c: float) -> np.ndarray:
    """argmin F(theta) = c * soft-label log-loss + |theta|_1, by proximal Newton (glmnet's scheme):
    each step minimises the loss's quadratic model plus the exact |theta|_1 by coordinate descent
    (p is 2 or 3, so a sweep is a few scalar operations), then backtracks until F drops enough.
    It stops once a step moves no coefficient by more than 1e-13, the optimum to rounding.

    No scipy L-BFGS-B: its Fortran makes OpenBLAS calls that, on a busy 2-core machine, cost ~50 ms
    a fit in thread wake-ups against ~1 ms for this; a board fits one per model and category."""
    p = x.shape[1]

    # einsum, not @: a matrix product here is an OpenBLAS call (see above)
    def objective(theta: np.ndarray) -> float:
        eta = np.einsum("ij,j->i", x, theta)
        return float(c * (s * np.logaddexp(0.0, -eta) + (1 - s) * np.logaddexp(0.0, eta)).sum()
                     + np.abs(theta).sum())

    theta = np.zeros(p)
    value = objective(theta)
    for _ in range(200):
        sigma = expit(np.einsum("ij,j->i", x, theta))
        gradient = c * np.einsum("ij,i->j", x, sigma - s)
        hessian = c * np.einsum("ij,i,ik->jk", x, sigma * (1 - sigma), x) + 1e-12 * np.eye(p)
        target = _l1_quadratic(gradient, hessian, theta)
        step = target - theta
        # F's decrease predicted by the model, < 0 unless theta is already optimal
        predicted = float((gradient * step).sum()) + np.abs(target).sum() - np.abs(theta).sum()
        t = 1.0
        while t > 1e-10:
            trial = theta + t * step
            trial_value = objective(trial)
            if trial_value <= value + 0.25 * t * predicted:
                break
            t /= 2
        else:
            break  # no descent left at rounding level
        theta, value = trial, trial_value
        if np.abs(t * step).max() <= 1e-13:
            break
    return theta


def _l1_quadratic(gradient: np.ndarray, hessian: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """argmin over v of gradient . (v - theta) + (v - theta) H (v - theta) / 2 + |v|_1, by cyclic
    coordinate descent: each coordinate's one-dimensional problem is solved exactly (soft
    thresholding), and sweeps repeat until a sweep changes nothing beyond 1e-16 relative."""
    v = theta.astype(float)
    g, h, t0 = gradient.tolist(), hessian.tolist(), theta.tolist()
    vs = v.tolist()
    for _ in range(10_000):
        change = 0.0
        for j in range(len(vs)):
            # coefficient of v_j in the model with the other coordinates held: b v_j + h_jj v_j^2 / 2 + |v_j|
            b = g[j] + sum(h[j][k] * (vs[k] - t0[k]) for k in range(len(vs)) if k != j) - h[j][j] * t0[j]
            new = -math.copysign(max(abs(b) - 1.0, 0.0), b) / h[j][j]
            change = max(change, abs(new - vs[j]))
            vs[j] = new
        if change <= 1e-16 * (1.0 + max(map(abs, vs))):
            break
    return np.array(vs)


# --- single grades --------------------------------------------------------------------------------


def mean_grades(rows: Iterable[tuple[str, int, float]]) -> dict[str, dict[int | str, float]]:
    """MT-Bench's table: per model, the mean grade per turn and over all turns ("all").

    Rows are (model, turn, grade). A grade of -1 is MT-Bench's mark for a judgment whose score could
    not be parsed; like FastChat's `show_result`, those rows are dropped. Turns come in order, then
    "all".
    """
    sums: dict[str, dict[int | str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    for model, turn, grade in rows:
        if grade == -1:
            continue
        for key in (int(turn), "all"):
            cell = sums[model][key]
            cell[0] += grade
            cell[1] += 1
    table = {}
    for model, by_turn in sums.items():
        turns = sorted(key for key in by_turn if key != "all")
        table[model] = {key: by_turn[key][0] / by_turn[key][1] for key in [*turns, "all"]}
    return table
