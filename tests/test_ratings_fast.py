"""The vectorised ratings (harness.ratings_batched behind harness.ratings and harness.leaderboard)
against the reference they replaced, kept here and only here: one BT fit per bootstrap round with
scipy's trust-exact, one numpy step per battle per bootstrap, the board one panel at a time.

The fast paths draw the same random numbers as the reference (the multinomial counts of all BT
rounds in one call, the Elo rounds' battle indices a block of steps at a time, and numpy's
Generator yields the same stream either way; `test_the_draws_are_the_same_in_blocks` pins that),
so every point and every CI endpoint must agree to rounding and solver tolerance, not to a
Monte-Carlo tolerance. bench/board.py times this reference against the production code.

Shapes (seeded numpy, no hypothesis): 2-10 models, 1 to 4,000 battles, ties, half weights, a model
that never wins, models split into groups that never meet, one pair only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from harness import leaderboard, ratings
from harness.leaderboard import RatingRow
from harness.ratings import (
    Battles,
    battles_from_rows,
    bootstrap,
    bootstrap_many,
    bradley_terry,
    elo,
    length_controlled_win_rate,
    win_rate_against,
)
from judges.merge import Battle

# Points and CI endpoints agree to this relative difference (the brief's bound). Elo agrees to
# ~2e-15: the same arithmetic in another order. BT's gap is the reference's stopping rule: it stops
# at a per-battle gradient of ~1e-10, which in a flat direction (a model that never wins, held only
# by the penalty) leaves its ratings up to 9.2e-7 relative from the optimum (seed 10 below); the fast
# fit stops at rounding level, which `test_the_fast_bt_fit_stops_at_the_optimum` checks on its own.
RELATIVE = 1e-6


# --- the reference: the code as it was before the vectorised engines --------------------------------


@dataclass(frozen=True)
class _RefCells:
    pair: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    score_lo: np.ndarray
    weight: np.ndarray
    count: np.ndarray

    def pair_totals(self, count):
        played = count * self.weight
        n = len(self.lo)
        return np.bincount(self.pair, played, n), np.bincount(self.pair, played * self.score_lo, n)


def _ref_cells(battles: Battles) -> _RefCells:
    n_models = len(battles.models)
    swap = battles.a > battles.b
    lo, hi = np.where(swap, battles.b, battles.a), np.where(swap, battles.a, battles.b)
    outcome = np.rint(np.where(swap, 1 - battles.score_a, battles.score_a) * 2).astype(np.int64)
    weights, weight_index = np.unique(battles.weight, return_inverse=True)
    key = ((lo.astype(np.int64) * n_models + hi) * 3 + outcome) * len(weights) + weight_index
    keys, count = np.unique(key, return_counts=True)
    weight_index, rest = keys % len(weights), keys // len(weights)
    outcome, pair_key = rest % 3, rest // 3
    pair_keys, pair = np.unique(pair_key, return_inverse=True)
    return _RefCells(pair.reshape(-1), pair_keys // n_models, pair_keys % n_models, outcome / 2.0,
                     weights[weight_index], count.astype(np.float64))


def _ref_fit_bt(cells, count, n_models, l2, start=None):
    total, won = cells.pair_totals(count)
    norm = total.sum() or 1.0
    lo, hi = cells.lo, cells.hi

    def loss_and_grad(theta):
        d = theta[lo] - theta[hi]
        loss = np.dot(won, np.logaddexp(0.0, -d)) + np.dot(total - won, np.logaddexp(0.0, d))
        residual = total * expit(d) - won
        grad = np.bincount(lo, residual, n_models) - np.bincount(hi, residual, n_models)
        return (loss + 0.5 * l2 * theta @ theta) / norm, (grad + l2 * theta) / norm

    def hessian(theta):
        d = theta[lo] - theta[hi]
        curvature = total * expit(d) * expit(-d)
        h = np.zeros((n_models, n_models))
        h[lo, hi] = h[hi, lo] = -curvature
        h[np.diag_indices(n_models)] = np.bincount(lo, curvature, n_models) + np.bincount(hi, curvature, n_models) + l2
        return h / norm

    x0 = np.zeros(n_models) if start is None else start
    result = minimize(loss_and_grad, x0, jac=True, hess=hessian, method="trust-exact",
                      options={"gtol": 1e-10, "maxiter": 200})
    return result.x - result.x.mean()


def _ref_l2(penalty_c, base):
    return 0.0 if penalty_c is None else 1.0 / (2.0 * penalty_c * math.log(base) ** 2)


def _ref_to_ratings(theta, models, scale, base, initial, anchor):
    ratings = initial + scale * theta / math.log(base)
    if anchor is not None:
        name, value = anchor
        ratings = ratings + (value - ratings[..., [list(models).index(name)]])
    return ratings


def _ref_elo_batched(battles, battles_at, n_steps, width, k, base, scale, initial):
    n_models = len(battles.models)
    ratings = np.full(width * n_models, float(initial))
    offset = np.arange(width) * n_models
    for t in range(n_steps):
        i = battles_at(t)
        ia, ib = offset + battles.a[i], offset + battles.b[i]
        ra, rb = ratings[ia], ratings[ib]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        step = k * battles.weight[i]
        s = battles.score_a[i]
        ratings[ia] = ra + step * (s - ea)
        ratings[ib] = rb + step * (1 - s - eb)
    return ratings.reshape(width, n_models)


def reference_l1_logistic(x, s, c):
    """harness.ratings._l1_logistic as it was: theta = u - v, u, v >= 0, by scipy's L-BFGS-B."""
    p = x.shape[1]
    norm = c * len(s)

    def objective(uv):
        eta = x @ (uv[:p] - uv[p:])
        loss = c * (np.dot(s, np.logaddexp(0.0, -eta)) + np.dot(1 - s, np.logaddexp(0.0, eta)))
        g = c * (x.T @ (expit(eta) - s))
        return (loss + uv.sum()) / norm, np.concatenate([g + 1, 1 - g]) / norm

    result = minimize(objective, np.zeros(2 * p), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * p),
                      options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15})
    return result.x[:p] - result.x[p:]


def reference_bradley_terry(battles, scale=400, base=10, initial=1000, anchor=None, penalty_c=1.0):
    cells = _ref_cells(battles)
    theta = _ref_fit_bt(cells, cells.count, len(battles.models), _ref_l2(penalty_c, base))
    return dict(zip(battles.models, map(float, _ref_to_ratings(theta, battles.models, scale, base, initial, anchor))))


def reference_elo(battles, k=4, base=10, scale=400, initial=1000, n_orders=1, seed=0):
    if n_orders == 1:
        return elo(battles, k, base, scale, initial)  # the plain-Python loop, unchanged
    rng = np.random.default_rng(seed)
    order = np.tile(np.arange(len(battles), dtype=np.int32), (n_orders, 1))
    by_step = np.ascontiguousarray(rng.permuted(order, axis=1).T)
    ratings = _ref_elo_batched(battles, by_step.__getitem__, len(battles), n_orders, k, base, scale, initial)
    return dict(zip(battles.models, map(float, ratings.mean(axis=0))))


def reference_bootstrap(battles, rater="bt", rounds=1000, seed=0, level=0.95, **kw):
    """harness.ratings.bootstrap as it was: a scipy fit per BT round, a numpy step per Elo battle."""
    rng = np.random.default_rng(seed)
    if rater == "bt":
        scale, base, initial = kw.get("scale", 400), kw.get("base", 10), kw.get("initial", 1000)
        anchor, l2 = kw.get("anchor"), _ref_l2(kw.get("penalty_c", 1.0), kw.get("base", 10))
        cells, n_models = _ref_cells(battles), len(battles.models)
        theta = _ref_fit_bt(cells, cells.count, n_models, l2)
        n = int(cells.count.sum())
        samples = np.empty((rounds, n_models))
        for r in range(rounds):
            samples[r] = _ref_fit_bt(cells, rng.multinomial(n, cells.count / n).astype(np.float64), n_models, l2,
                                     theta)
        point = _ref_to_ratings(theta, battles.models, scale, base, initial, anchor)
        samples = _ref_to_ratings(samples, battles.models, scale, base, initial, anchor)
    else:
        k, base, scale, initial = kw.get("k", 4), kw.get("base", 10), kw.get("scale", 400), kw.get("initial", 1000)
        by_name = reference_elo(battles, k, base, scale, initial, kw.get("n_orders", 1))
        point = np.array([by_name[m] for m in battles.models])
        n = len(battles)
        samples = _ref_elo_batched(battles, lambda t: rng.integers(0, n, rounds), n, rounds, k, base, scale, initial)
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {name: (float(point[m]), float(low[m]), float(high[m])) for m, name in enumerate(battles.models)}


def _model_battles(battles):
    counts = {}
    for b in battles:
        for model in (b.model_a, b.model_b):
            counts[model] = counts.get(model, 0) + 1
    return counts


def reference_board(battles, rounds, level, seed=0, baseline=None, categories=True, elo_orders=100,
                    bootstrap_fn=reference_bootstrap):
    """harness.leaderboard.rate as it was: one bootstrap call per panel, method and category."""
    out = []
    for (judge, dimension), group in leaderboard._by_panel(battles).items():
        names = ["all"] + (sorted({b.category for b in group}) if categories else [])
        for category in names:
            chosen = [b for b in group if category in ("all", b.category)]
            counts = _model_battles(chosen)
            rated = battles_from_rows([(b.model_a, b.model_b, b.winner) for b in chosen], [b.weight for b in chosen])
            for method in leaderboard.METHODS:
                extra = {"n_orders": elo_orders} if method == "elo" else {}
                intervals = bootstrap_fn(rated, rater=method, rounds=rounds, seed=seed, level=level, **extra)
                out += [RatingRow(judge, dimension, category, method, model, *iv, level, counts.get(model, 0))
                        for model, iv in intervals.items()]
            if baseline is not None and baseline in rated.models:
                rates = win_rate_against(rated, baseline, rounds=rounds, seed=seed, level=level)
                out += [RatingRow(judge, dimension, category, "win_rate", model, iv.point, iv.low, iv.high,
                                  iv.level, counts.get(model, 0)) for model, iv in rates.items()]
                out += leaderboard._length_controlled(judge, dimension, category, chosen, baseline)
    return out


# --- random battles of many shapes ------------------------------------------------------------------


def random_battles(seed: int) -> Battles:
    """A seeded shape: 2-10 models, few or many battles, ties, half weights, and with some seeds a
    model that never wins, models in two groups that never meet, or a single pair."""
    rng = np.random.default_rng(seed)
    n_models = int(rng.integers(2, 11))
    n = int(rng.choice([1, 2, 5, 30, 300, 4000]))
    shape = seed % 4
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    if shape == 1 and n_models >= 4:  # two groups that never meet: even and odd models
        b = (a + 2 * rng.integers(1, max(2, n_models // 2), n)) % (n_models - n_models % 2)
        a = a % (n_models - n_models % 2)
        keep = a != b
        a, b = a[keep], b[keep]
        if len(a) == 0:
            a, b = np.array([0]), np.array([2])
    elif shape == 3:  # one pair only
        a, b = np.zeros(n, dtype=int), np.ones(n, dtype=int)
    true = rng.normal(0, 200, n_models)
    p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    score = np.where(rng.random(len(a)) < 0.2, 0.5, (rng.random(len(a)) < p).astype(float))
    if shape == 2:  # model 0 never wins: it loses every battle it is in
        score = np.where(a == 0, 0.0, np.where(b == 0, 1.0, score))
    weight = np.where(rng.random(len(a)) < 0.3, 0.5, 1.0)
    return Battles(tuple(f"m{i}" for i in range(n_models)), a, b, score, weight)


def well_posed(battles: Battles) -> bool:
    """Every model wins and loses somewhere and the battles connect all models: the unpenalised
    MLE exists and is unique (up to the mean)."""
    n = len(battles.models)
    wins = np.bincount(battles.a, battles.score_a, n) + np.bincount(battles.b, 1 - battles.score_a, n)
    played = np.bincount(battles.a, minlength=n) + np.bincount(battles.b, minlength=n)
    reached, frontier = {0}, [0]
    while frontier:
        m = frontier.pop()
        for other in np.concatenate([battles.b[battles.a == m], battles.a[battles.b == m]]).tolist():
            if other not in reached:
                reached.add(other)
                frontier.append(other)
    return len(reached) == n and bool(np.all((wins > 0) & (wins < played)))


def assert_close(fast: dict, reference: dict) -> None:
    assert fast.keys() == reference.keys()
    for model, value in reference.items():
        assert np.allclose(fast[model], value, rtol=RELATIVE, atol=0), (model, fast[model], value)


SEEDS = range(24)


# --- the property tests -------------------------------------------------------------------------------


def test_the_draws_are_the_same_in_blocks():
    # The fast paths draw all rounds (BT) or a block of steps (Elo) per call; the reference drew
    # one round or one step per call. Equal streams are what lets the tests below ask for equality.
    first, second = np.random.default_rng(5), np.random.default_rng(5)
    per_step = np.stack([first.integers(0, 977, 301) for _ in range(40)])
    blocks = np.concatenate([second.integers(0, 977, (17, 301)), second.integers(0, 977, (23, 301))])
    assert np.array_equal(per_step, blocks)
    frequency = np.array([0.1, 0.2, 0.3, 0.4])
    rounds = np.stack([first.multinomial(50, frequency) for _ in range(30)])
    assert np.array_equal(rounds, second.multinomial(50, frequency, size=30))


@pytest.mark.parametrize("seed", SEEDS)
def test_bt_point_and_bootstrap_equal_the_reference(seed):
    battles = random_battles(seed)
    assert_close(bradley_terry(battles), reference_bradley_terry(battles))
    fast = bootstrap(battles, "bt", rounds=60, seed=seed, level=0.9)
    assert_close({m: (iv.point, iv.low, iv.high) for m, iv in fast.items()},
                 reference_bootstrap(battles, "bt", rounds=60, seed=seed, level=0.9))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_fast_bt_fit_stops_at_the_optimum(seed):
    # Independent of the reference: every bootstrap round's per-battle gradient is at rounding level.
    battles = random_battles(seed)
    cells = ratings._cells(battles)
    n, n_models, l2 = int(cells.count.sum()), len(battles.models), ratings._l2_strength(1.0, 10)
    counts = np.random.default_rng(seed).multinomial(n, cells.count / n, size=50).astype(float)
    theta = ratings.fit_bt(cells, counts, n_models, l2)
    total, won = cells.pair_totals(counts)
    residual = total * expit(theta[:, cells.lo] - theta[:, cells.hi]) - won
    gradient = np.stack([np.bincount(cells.lo, r, n_models) - np.bincount(cells.hi, r, n_models) for r in residual])
    gradient += l2 * theta
    assert np.abs(gradient).max(axis=1).max() <= 1e-12 * total.sum(axis=1).max()
    assert np.allclose(theta.mean(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("seed", [s for s in range(60) if well_posed(random_battles(s))][:12])
def test_unpenalised_bt_equals_the_reference_where_the_mle_exists(seed):
    battles = random_battles(seed)
    assert_close(bradley_terry(battles, penalty_c=None), reference_bradley_terry(battles, penalty_c=None))
    anchored = bradley_terry(battles, penalty_c=None, anchor=("m0", 1114.0))
    assert_close(anchored, reference_bradley_terry(battles, penalty_c=None, anchor=("m0", 1114.0)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_orders", [1, 7])
def test_elo_point_and_bootstrap_equal_the_reference(seed, n_orders):
    battles = random_battles(seed)
    assert_close(elo(battles, n_orders=n_orders, seed=seed), reference_elo(battles, n_orders=n_orders, seed=seed))
    fast = bootstrap(battles, "elo", rounds=40, seed=seed, n_orders=n_orders)
    assert_close({m: (iv.point, iv.low, iv.high) for m, iv in fast.items()},
                 reference_bootstrap(battles, "elo", rounds=40, seed=seed, n_orders=n_orders))


@pytest.mark.parametrize("rater", ["bt", "elo"])
def test_many_panels_at_once_equal_one_panel_at_a_time(rater):
    # Panels of different lengths and model counts share one Elo loop: the short ones drop out
    # early, and none may see another's battles or draws.
    panels = [random_battles(seed) for seed in (4, 9, 13, 20, 0)]
    kw = {"n_orders": 3} if rater == "elo" else {}
    together = bootstrap_many(panels, rater, rounds=30, seed=11, level=0.8, **kw)
    assert len({len(p) for p in panels}) > 2 and len({len(p.models) for p in panels}) > 2
    for battles, intervals in zip(panels, together):
        alone = reference_bootstrap(battles, rater, rounds=30, seed=11, level=0.8, **kw)
        assert_close({m: (iv.point, iv.low, iv.high) for m, iv in intervals.items()}, alone)


def test_weights_other_than_one_and_a_half_and_a_custom_elo_scale():
    battles = random_battles(6)
    odd = Battles(battles.models, battles.a, battles.b, battles.score_a, np.where(battles.weight == 1.0, 1.0, 0.3))
    kw = {"k": 16, "base": math.e, "scale": 173.0, "initial": 1500, "n_orders": 4}
    fast = bootstrap(odd, "elo", rounds=25, seed=2, **kw)
    assert_close({m: (iv.point, iv.low, iv.high) for m, iv in fast.items()},
                 reference_bootstrap(odd, "elo", rounds=25, seed=2, **kw))


def board_battles(seed: int) -> list[Battle]:
    """A small two-judge, two-dimension board with categories, ties, half weights and lengths;
    "epsilon" fights in the writing category only, so the other categories' tables leave it out."""
    rng = np.random.default_rng(seed)
    models = ["alpha", "beta", "gamma", "delta", "epsilon"]
    out = []
    for judge in ("j1", "j2"):
        for dimension in ("accuracy", "style"):
            for q in range(40):
                category = ("coding", "math", "writing")[q % 3]
                for i, x in enumerate(models):
                    for y in models[i + 1:]:
                        if rng.random() < 0.3 or ("epsilon" in (x, y) and category != "writing"):
                            continue
                        winner = rng.choice(["model_a", "model_b", "tie"], p=[0.45, 0.35, 0.2])
                        out.append(Battle(x, y, str(winner), float(rng.choice([1.0, 0.5])), category, True, judge,
                                          dimension, int(rng.integers(50, 500)), int(rng.integers(50, 500)), "set",
                                          str(q), 1))
    return out


@pytest.mark.parametrize("baseline", [None, "beta"])
def test_the_board_equals_the_reference_board(baseline):
    battles = board_battles(3)
    fast = leaderboard.rate(battles, rounds=40, level=0.9, seed=5, baseline=baseline, elo_orders=6, ci="battle")
    slow = reference_board(battles, rounds=40, level=0.9, seed=5, baseline=baseline, elo_orders=6)
    assert [(r.judge_name, r.dimension, r.category, r.method, r.model, r.battles) for r in fast] == \
           [(r.judge_name, r.dimension, r.category, r.method, r.model, r.battles) for r in slow]
    assert {r.method for r in fast} == ({"bt", "elo"} | ({"win_rate", "lc_win_rate"} if baseline else set()))
    assert {r.model for r in fast if r.category == "math"} == {"alpha", "beta", "gamma", "delta"}
    for f, s in zip(fast, slow):
        for name in ("rating", "ci_low", "ci_high", "level"):
            expected = getattr(s, name)  # None: the LC win rate has no interval
            assert getattr(f, name) == (None if expected is None else pytest.approx(expected, rel=RELATIVE)), (f, s)


def length_data(seed: int):
    """(x, s, c) of one LC fit: intercept, tanh of the standardised length gap, and for odd seeds a
    difficulty column; soft labels 0, 0.5, 1 in seeded proportions; AlpacaEval's C = 100 or less."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([3, 5, 20, 100, 805]))
    delta = rng.integers(50, 900, n).astype(float) - rng.integers(50, 900, n)
    columns = [np.ones(n), np.tanh(delta / delta.std(ddof=1))] + ([rng.normal(size=n)] if seed % 2 else [])
    score = rng.choice([0.0, 0.5, 1.0], n, p=rng.dirichlet([1, 1, 1]))
    return np.column_stack(columns), score, float(rng.choice([0.01, 1.0, 100.0]))


def l1_objective(x, s, c, theta):
    eta = x @ theta
    return c * (np.dot(s, np.logaddexp(0.0, -eta)) + np.dot(1 - s, np.logaddexp(0.0, eta))) + np.abs(theta).sum()


@pytest.mark.parametrize("seed", range(30))
def test_the_lc_fit_finds_the_reference_optimum(seed):
    x, s, c = length_data(seed)
    fast, slow = ratings._l1_logistic(x, s, c), reference_l1_logistic(x, s, c)
    # Never a worse objective; where the optimum is unique (x has full column rank: the loss is
    # strictly convex) the same coefficients, to the reference's own precision (~1e-8).
    assert l1_objective(x, s, c, fast) <= l1_objective(x, s, c, slow) + 1e-9 * abs(l1_objective(x, s, c, slow))
    if np.linalg.matrix_rank(x) == x.shape[1]:
        assert np.allclose(fast, slow, rtol=0, atol=1e-6), (fast, slow)


def test_the_lc_win_rate_equals_the_reference():
    rng = np.random.default_rng(8)
    model_len, baseline_len = rng.integers(50, 900, 400), rng.integers(50, 900, 400)
    score = (rng.random(400) < expit((model_len - baseline_len) / 300)).astype(float)
    result = length_controlled_win_rate(model_len, baseline_len, score)
    delta = (model_len - baseline_len).astype(float)
    x = np.column_stack([np.ones(400), np.tanh(delta / delta.std(ddof=1))])
    theta = reference_l1_logistic(x, score, 100.0)
    assert result.length_coef > 0.5  # the judge here rewards length: a fit with something to find
    assert (result.model_coef, result.length_coef) == pytest.approx(tuple(theta), abs=1e-6)
    assert result.lc_win_rate == pytest.approx(100 * expit(theta[0]), rel=RELATIVE)
