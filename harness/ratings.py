"""Ratings from judged battles and single grades, as pure functions over numpy arrays.

Pairwise: online Elo, Bradley-Terry (BT) maximum likelihood, percentile bootstrap intervals, win
rate against a baseline, AlpacaEval-2-style length-controlled win rate. Single grades: MT-Bench
means per turn.

Conventions are FastChat's Chatbot Arena ones (fastchat/serve/monitor/elo_analysis.py) unless a
docstring says otherwise: a rating R means P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale)),
and a tie counts as half a win for each side. BT works on an aggregate of the battles, the
distinct (a, b, outcome, weight) "cells" and their counts, so a fit or a bootstrap round costs the
same for a thousand battles as for ten million.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

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
        rng = np.random.default_rng(seed)
        order = np.tile(np.arange(len(battles), dtype=np.int32), (n_orders, 1))
        by_step = np.ascontiguousarray(rng.permuted(order, axis=1).T)  # row t: battle t of each order
        ratings = _elo_batched(battles, by_step.__getitem__, len(battles), n_orders, k, base, scale, initial)
        ratings = ratings.mean(axis=0)
    return dict(zip(battles.models, map(float, ratings)))


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


def _elo_batched(
    battles: Battles, battles_at: Callable[[int], np.ndarray], n_steps: int, width: int, k, base, scale, initial
) -> np.ndarray:
    """`width` independent online-Elo runs side by side, as a (width, n_models) array.

    At step t, run r plays battle battles_at(t)[r]. One numpy step serves every run, so a thousand
    bootstrap rounds cost about as much Python overhead as one.
    """
    n_models = len(battles.models)
    ratings = np.full(width * n_models, float(initial))  # flat: run r, model m at r * n_models + m
    offset = np.arange(width) * n_models
    for t in range(n_steps):
        i = battles_at(t)
        ia, ib = offset + battles.a[i], offset + battles.b[i]
        ra, rb = ratings[ia], ratings[ib]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        step = k * battles.weight[i]
        s = battles.score_a[i]
        ratings[ia] = ra + step * (s - ea)  # a != b within a battle, so the two writes never collide
        ratings[ib] = rb + step * (1 - s - eb)
    return ratings.reshape(width, n_models)


# --- Bradley-Terry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """The distinct kinds of battle and how many of each, with each battle turned so that its
    lower-indexed model comes first: all BT and win rates need from the rows."""

    pair: np.ndarray  # index into `lo`/`hi` of each cell's (unordered) model pair
    lo: np.ndarray  # per pair: the lower model index
    hi: np.ndarray  # per pair: the higher model index
    score_lo: np.ndarray  # per cell: the lower-indexed model's score
    weight: np.ndarray  # per cell: the battle weight
    count: np.ndarray  # per cell: how many battles of this kind

    def pair_totals(self, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total weight, weight won by `lo`) per pair, for cell counts `count`."""
        played = count * self.weight
        n = len(self.lo)
        return np.bincount(self.pair, played, n), np.bincount(self.pair, played * self.score_lo, n)


def _cells(battles: Battles) -> _Cells:
    n_models = len(battles.models)
    swap = battles.a > battles.b
    lo, hi = np.where(swap, battles.b, battles.a), np.where(swap, battles.a, battles.b)
    outcome = np.rint(np.where(swap, 1 - battles.score_a, battles.score_a) * 2).astype(np.int64)  # 0, 1, 2
    weights, weight_index = np.unique(battles.weight, return_inverse=True)
    # One integer per battle kind: np.unique on it is a single 1-D sort.
    key = ((lo.astype(np.int64) * n_models + hi) * 3 + outcome) * len(weights) + weight_index
    keys, count = np.unique(key, return_counts=True)
    weight_index, rest = keys % len(weights), keys // len(weights)
    outcome, pair_key = rest % 3, rest // 3
    pair_keys, pair = np.unique(pair_key, return_inverse=True)
    return _Cells(
        pair=pair.reshape(-1),
        lo=pair_keys // n_models,
        hi=pair_keys % n_models,
        score_lo=outcome / 2.0,
        weight=weights[weight_index],
        count=count.astype(np.float64),
    )


def _fit_bt(cells: _Cells, count: np.ndarray, n_models: int, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Natural-scale BT strengths (log-odds units, mean 0) maximising the weighted likelihood
    sum over pairs of won * log p + lost * log(1 - p), p = sigmoid(theta_lo - theta_hi), minus
    l2 / 2 * |theta|^2.

    Newton steps in a trust region (scipy's trust-exact) with the analytic gradient and Hessian, an
    n_models x n_models weighted graph Laplacian: 2-6 iterations. L-BFGS-B needs 7-10 here, but
    scipy's makes a multithreaded OpenBLAS call per iteration, which on a busy 2-core machine cost
    40-60 ms per fit against about 1 ms for this.
    """
    total, won = cells.pair_totals(count)
    norm = total.sum() or 1.0  # a per-battle objective, so the tolerance means the same at any size
    lo, hi = cells.lo, cells.hi

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[lo] - theta[hi]
        # -log sigmoid(d) == logaddexp(0, -d): finite even when one model wins every battle
        loss = np.dot(won, np.logaddexp(0.0, -d)) + np.dot(total - won, np.logaddexp(0.0, d))
        residual = total * expit(d) - won  # d loss / d d
        grad = np.bincount(lo, residual, n_models) - np.bincount(hi, residual, n_models)
        return (loss + 0.5 * l2 * theta @ theta) / norm, (grad + l2 * theta) / norm

    def hessian(theta: np.ndarray) -> np.ndarray:
        d = theta[lo] - theta[hi]
        curvature = total * expit(d) * expit(-d)
        h = np.zeros((n_models, n_models))
        h[lo, hi] = h[hi, lo] = -curvature  # each unordered pair occurs once
        h[np.diag_indices(n_models)] = np.bincount(lo, curvature, n_models) + np.bincount(hi, curvature, n_models) + l2
        return h / norm

    x0 = np.zeros(n_models) if start is None else start
    result = minimize(loss_and_grad, x0, jac=True, hess=hessian, method="trust-exact",
                      options={"gtol": 1e-10, "maxiter": 200})
    # Adding a constant to every strength leaves the likelihood unchanged; pin the mean at 0.
    return result.x - result.x.mean()


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
    theta = _fit_bt(cells, cells.count, len(battles.models), _l2_strength(penalty_c, base))
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
    with the number of battles, and each round's fit starts from the full-data optimum.
    Elo replays each round's resampled battles in their drawn (random) order, as FastChat's
    `get_bootstrap_result` does; all rounds advance together in one vectorised loop, so the cost is
    about len(battles) numpy steps whatever `rounds` is. The Elo point uses `elo(battles, **kw)`.
    """
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if rounds < 1 or len(battles) == 0:
        raise ValueError("bootstrap needs rounds >= 1 and at least one battle")
    rng = np.random.default_rng(seed)
    if rater == "bt":
        point, samples = _bootstrap_bt(battles, rounds, rng, **kw)
    elif rater == "elo":
        point, samples = _bootstrap_elo(battles, rounds, rng, **kw)
    else:
        raise ValueError(f"unknown rater {rater!r} (expected 'bt' or 'elo')")
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {
        name: Interval(float(point[m]), float(low[m]), float(high[m]), level)
        for m, name in enumerate(battles.models)
    }


def _bootstrap_bt(battles, rounds, rng, scale=400, base=10, initial=1000, anchor=None, penalty_c=1.0):
    cells, n_models = _cells(battles), len(battles.models)
    l2 = _l2_strength(penalty_c, base)
    theta = _fit_bt(cells, cells.count, n_models, l2)
    n = int(cells.count.sum())
    frequency = cells.count / n
    samples = np.empty((rounds, n_models))
    for r in range(rounds):
        samples[r] = _fit_bt(cells, rng.multinomial(n, frequency).astype(np.float64), n_models, l2, theta)
    to_ratings = lambda t: _to_ratings(t, battles.models, scale, base, initial, anchor)  # noqa: E731
    return to_ratings(theta), to_ratings(samples)


def _bootstrap_elo(battles, rounds, rng, k=4, base=10, scale=400, initial=1000, n_orders=1, seed=0):
    point = elo(battles, k, base, scale, initial, n_orders, seed)
    n = len(battles)
    samples = _elo_batched(battles, lambda t: rng.integers(0, n, rounds), n, rounds, k, base, scale, initial)
    return np.array([point[name] for name in battles.models]), samples


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
    """argmin c * soft-label log-loss + |theta|_1, written as theta = u - v with u, v >= 0 so the
    non-smooth |theta|_1 becomes sum(u + v) and L-BFGS-B's bounds handle it exactly."""
    p = x.shape[1]
    norm = c * len(s)

    def objective(uv: np.ndarray) -> tuple[float, np.ndarray]:
        eta = x @ (uv[:p] - uv[p:])
        loss = c * (np.dot(s, np.logaddexp(0.0, -eta)) + np.dot(1 - s, np.logaddexp(0.0, eta)))
        g = c * (x.T @ (expit(eta) - s))
        return (loss + uv.sum()) / norm, np.concatenate([g + 1, 1 - g]) / norm

    result = minimize(objective, np.zeros(2 * p), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * p),
                      options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15})
    return result.x[:p] - result.x[p:]


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
