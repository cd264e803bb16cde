"""The vectorised engines behind harness.ratings: many Bradley-Terry fits and many online-Elo runs
at once, as numpy operations over a (runs x models) array instead of one Python-level fit or loop
per bootstrap round.

- `cells` aggregates battles into their distinct kinds (model pair, outcome, weight) and counts;
  BT and win rates need nothing else from the rows.
- `fit_bt` fits one BT model per row of a (rounds x cells) count matrix with a batched, damped
  Newton iteration: each round's gradient and Hessian (a models x models weighted graph
  Laplacian) come from two einsums over the model pairs, and one batched solve steps every round.
- `run_elo` replays groups of online-Elo runs (bootstrap rounds, shuffled orders, of one or many
  sets of battles) side by side: one numpy step per battle position serves every run of every
  group, so the Python overhead is that of the longest group alone.

harness.ratings owns the public functions (`bootstrap`, `elo`, `bradley_terry`); this module has no
notion of model names, intervals or seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

# Newton stops when every round's per-battle gradient is below this (the old scipy fit used 1e-10;
# Newton's last step then usually lands on the optimum to machine precision).
_GRADIENT_TOLERANCE = 1e-12
_MAX_NEWTON_STEPS = 100
# Elo draws its battles for a block of steps at a time: about this many (8-byte) entries a block.
_ELO_CHUNK_ENTRIES = 1 << 19


# --- battle kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cells:
    """The distinct kinds of battle and how many of each, with each battle turned so that its
    lower-indexed model comes first: all BT and win rates need from the rows."""

    pair: np.ndarray  # index into `lo`/`hi` of each cell's (unordered) model pair
    lo: np.ndarray  # per pair: the lower model index
    hi: np.ndarray  # per pair: the higher model index
    score_lo: np.ndarray  # per cell: the lower-indexed model's score
    weight: np.ndarray  # per cell: the battle weight
    count: np.ndarray  # per cell: how many battles of this kind

    def pair_totals(self, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total weight, weight won by `lo`) per pair, for cell counts `count` of shape (cells,) or
        (rounds, cells); the result has the same leading shape."""
        # Cells come sorted by pair, so a pair's cells are one run: sum each run. (No matrix
        # product: OpenBLAS's threads cost more than the sums on a busy 2-core machine.)
        played = count * self.weight
        starts = np.flatnonzero(np.r_[True, self.pair[1:] != self.pair[:-1]])
        return np.add.reduceat(played, starts, axis=-1), np.add.reduceat(played * self.score_lo, starts, axis=-1)


def cells(a: np.ndarray, b: np.ndarray, score_a: np.ndarray, weight: np.ndarray, n_models: int) -> Cells:
    """`Cells` of the battles given column-wise (model indices a and b, a's score, weight)."""
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    outcome = np.rint(np.where(swap, 1 - score_a, score_a) * 2).astype(np.int64)  # 0, 1, 2
    weights, weight_index = np.unique(weight, return_inverse=True)
    # One integer per battle kind: np.unique on it is a single 1-D sort.
    key = ((lo.astype(np.int64) * n_models + hi) * 3 + outcome) * len(weights) + weight_index.reshape(-1)
    keys, count = np.unique(key, return_counts=True)
    weight_index, rest = keys % len(weights), keys // len(weights)
    outcome, pair_key = rest % 3, rest // 3
    pair_keys, pair = np.unique(pair_key, return_inverse=True)
    return Cells(
        pair=pair.reshape(-1),
        lo=pair_keys // n_models,
        hi=pair_keys % n_models,
        score_lo=outcome / 2.0,
        weight=weights[weight_index],
        count=count.astype(np.float64),
    )


# --- Bradley-Terry --------------------------------------------------------------------------------


def fit_bt(cells: Cells, count: np.ndarray, n_models: int, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Natural-scale BT strengths (log-odds units, mean 0), one fit per row of `count` ((rounds,
    cells), or (cells,) for a single fit, which returns shape (n_models,)), each maximising the
    weighted likelihood sum over pairs of won * log p + lost * log(1 - p), p = sigmoid(theta_lo -
    theta_hi), minus l2 / 2 * |theta|^2.

    Newton's method on all rows at once, from `start` (the full-data optimum for bootstrap rounds:
    2-4 steps) or 0: per step, one batched solve of the rows' models x models Hessians. A long step
    that does not lower its row's loss is halved until it does, so rows far from their optimum (a
    model that never wins, pulled only by the penalty) converge too. Rows stop on their own once
    their per-battle gradient is below 1e-12, the optimum to rounding.

    With l2 = 0 the likelihood is flat along "add a constant to every strength" (and along more
    directions when the battles do not connect all models); the step is then the minimum-norm one
    (a pseudo-inverse), and the unpenalised MLE exists only when every model both wins and loses
    within a connected comparison graph: otherwise the strengths drift until the gradient is tiny,
    as any fit of that MLE does.
    """
    single = np.ndim(count) == 1
    count = np.atleast_2d(np.asarray(count, dtype=np.float64))
    total, won = cells.pair_totals(count)  # (rounds, pairs)
    lost = total - won
    norm = total.sum(axis=1)
    norm[norm == 0] = 1.0  # a per-battle objective, so the tolerance means the same at any size
    lo, hi, n_pairs = cells.lo, cells.hi, len(cells.lo)
    incidence = np.zeros((n_pairs, n_models))  # theta_lo - theta_hi = theta @ incidence.T
    incidence[np.arange(n_pairs), lo] = 1.0
    incidence[np.arange(n_pairs), hi] = -1.0
    # Each pair's Hessian term is curvature * outer(incidence row, incidence row): a Laplacian.
    outer = (incidence[:, :, None] * incidence[:, None, :]).reshape(n_pairs, n_models * n_models)
    ridge = l2 * np.eye(n_models)

    def loss(theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        d = theta[:, lo] - theta[:, hi]
        # -log sigmoid(d) == logaddexp(0, -d): finite even when one model wins every battle
        data = (won[rows] * np.logaddexp(0.0, -d) + lost[rows] * np.logaddexp(0.0, d)).sum(axis=1)
        return data + 0.5 * l2 * (theta * theta).sum(axis=1)

    rounds = len(count)
    theta = np.zeros((rounds, n_models)) if start is None else np.array(np.broadcast_to(start, (rounds, n_models)))
    rows = np.arange(rounds)  # the rows still iterating
    for _ in range(_MAX_NEWTON_STEPS):
        current = theta[rows]
        p = expit(current[:, lo] - current[:, hi])
        # einsum without `optimize` runs its own loops, not a BLAS call (see pair_totals)
        grad = np.einsum("rp,pm->rm", total[rows] * p - won[rows], incidence) + l2 * current
        going = np.abs(grad).max(axis=1) > _GRADIENT_TOLERANCE * norm[rows]
        if not going.any():
            break
        rows, current, p, grad = rows[going], current[going], p[going], grad[going]
        curvature = total[rows] * p * (1 - p)
        hessian = np.einsum("rp,pk->rk", curvature, outer).reshape(-1, n_models, n_models) + ridge
        if l2 > 0:  # positive definite
            step = np.linalg.solve(hessian, grad[:, :, None])[:, :, 0]
        else:
            step = (np.linalg.pinv(hessian, hermitian=True) @ grad[:, :, None])[:, :, 0]
        theta[rows] = current - step
        # A step of <= 0.25 in every strength moves no pair's log-odds by more than 0.5, over which
        # the logistic's curvature changes by less than a factor 1.7: Newton's quadratic range,
        # where every bootstrap round started at the full-data optimum stays, so those steps go
        # unchecked. Longer ones (a fit from 0, a model that never wins) are halved until the
        # loss drops.
        far = np.abs(step).max(axis=1) > 0.25
        if far.any():
            theta[rows[far]] = _damped(current[far], step[far], lambda t, r=rows[far]: loss(t, r))
    # Adding a constant to every strength leaves the likelihood unchanged; pin the mean at 0.
    theta -= theta.mean(axis=1, keepdims=True)
    return theta[0] if single else theta


def _damped(current: np.ndarray, step: np.ndarray, loss: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """current - scale * step per row, scale the first of 1, 1/2, 1/4, ... that does not raise the
    row's loss (beyond rounding)."""
    before = loss(current)
    scale = np.ones(len(current))
    for _ in range(60):
        trial = current - scale[:, None] * step
        worse = loss(trial) > before + 1e-13 * np.abs(before)
        if not worse.any():
            break
        scale[worse] *= 0.5
    return trial


# --- online Elo -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EloRuns:
    """`width` online-Elo runs over one set of battles: at step t (0 <= t < n_steps), run r plays
    battle draws(t, t + 1)[0, r]. `draws(start, stop)` is called once per block of steps, in order,
    and returns the (stop - start, width) battle indices of those steps."""

    a: np.ndarray  # per battle: index of the model in position a (< n_models)
    b: np.ndarray
    score_a: np.ndarray  # 1.0 a won, 0.0 b won, 0.5 tie
    weight: np.ndarray
    n_models: int
    width: int
    n_steps: int
    draws: Callable[[int, int], np.ndarray]


def run_elo(groups: Sequence[EloRuns], k: float, base: float, scale: float, initial: float) -> list[np.ndarray]:
    """The final ratings of every run, per group a (width, n_models) array, after FastChat's online
    update: each battle moves a by k * weight * (score_a - expected) and b by the opposite amount,
    expected = 1 / (1 + base ** ((R_b - R_a) / scale)).

    All runs of all groups advance together, one numpy step per battle position; a group drops out
    once its n_steps are played (groups are laid out longest first, so the runs still playing are a
    prefix of the lanes). Ratings are kept as (R - initial) * ln(base) / scale, where the expected
    score is a plain logistic of the difference. A battle enters the loop as its kind, an index
    into small tables of (a, b, k c w score_a, k c w) (a few KB for a few models: they stay in
    cache): a block of steps is one array of kinds, filled in bulk from the groups' draws, so a
    step does no per-group work and streams one 8-byte kind per run from memory.
    """
    c = math.log(base) / scale
    order = sorted(range(len(groups)), key=lambda g: -groups[g].n_steps)
    ordered = [groups[g] for g in order]
    lanes_start = np.concatenate([[0], np.cumsum([g.width for g in ordered])]).astype(np.intp)
    width = int(lanes_start[-1])
    n_models = max((g.n_models for g in ordered), default=1)
    n_steps = max((g.n_steps for g in ordered), default=0)
    if width == 0 or n_steps == 0:
        return [np.full((g.width, g.n_models), float(initial)) for g in groups]
    # The kinds of battle over all groups, (a, b, outcome, weight) as one integer key per battle,
    # and each battle's kind: an index into per-kind tables of a, b, k c w score_a and k c w.
    weights, weight_index = np.unique(np.concatenate([g.weight for g in ordered]), return_inverse=True)
    outcome = np.rint(np.concatenate([g.score_a for g in ordered]) * 2).astype(np.int64)  # 0, 1, 2
    a = np.concatenate([g.a for g in ordered]).astype(np.int64)
    b = np.concatenate([g.b for g in ordered]).astype(np.int64)
    keys = ((a * n_models + b) * 3 + outcome) * len(weights) + weight_index.reshape(-1)
    keys, kind = np.unique(keys, return_inverse=True)
    kind = kind.reshape(-1).astype(np.intp)
    weight_of, rest = weights[keys % len(weights)], keys // len(weights)
    kind_a, kind_b = (rest // 3 // n_models).astype(np.intp), (rest // 3 % n_models).astype(np.intp)
    kind_win, kind_step = k * c * weight_of * (rest % 3) / 2.0, k * c * weight_of
    # k c w is one number when all battles weigh the same (the usual case): one gather less a step.
    uniform_step = float(kind_step[0]) if len(weights) == 1 else None
    starts = np.concatenate([[0], np.cumsum([g.n_steps for g in ordered])])
    kind_of = [kind[starts[j]:starts[j + 1]] for j in range(len(ordered))]
    # live[t]: lanes in play at step t = the lanes of the groups with more than t steps
    steps_ascending = np.sort([g.n_steps for g in ordered])
    live = lanes_start[len(ordered) - np.searchsorted(steps_ascending, np.arange(n_steps), side="right")]
    first = np.arange(width, dtype=np.intp) * n_models  # lane l's models start at x[l * n_models]
    x = np.zeros(width * n_models)
    chunk = max(1, _ELO_CHUNK_ENTRIES // width)
    block = np.empty((chunk, width), dtype=np.intp)  # kind of each lane's battle, a block of steps
    moved = np.empty(width)
    with np.errstate(over="ignore"):  # exp overflows to inf for hopeless battles: expected score 0
        for t0 in range(0, n_steps, chunk):
            t1 = min(t0 + chunk, n_steps)
            for j, group in enumerate(ordered):
                if group.n_steps <= t0:
                    break
                steps = min(t1, group.n_steps) - t0
                block[:steps, lanes_start[j]:lanes_start[j + 1]] = kind_of[j][group.draws(t0, t0 + steps)]
            for t in range(t1 - t0):
                w = int(live[t0 + t])
                battle, m = block[t, :w], moved[:w]
                at_a = kind_a[battle]
                at_a += first[:w]
                at_b = kind_b[battle]
                at_b += first[:w]
                ra, rb = x[at_a], x[at_b]
                np.subtract(rb, ra, out=m)
                np.exp(m, out=m)
                m += 1.0
                np.divide(uniform_step if uniform_step is not None else kind_step[battle], m, out=m)  # k c w E
                np.subtract(kind_win[battle], m, out=m)  # k c w (score - expected)
                ra += m
                rb -= m  # a != b within a battle, so the two writes never collide
                x[at_a] = ra
                x[at_b] = rb
    ratings = initial + x.reshape(width, n_models) / c
    out: list[np.ndarray] = [np.empty(0)] * len(groups)
    for j, g in enumerate(order):
        out[g] = ratings[lanes_start[j]:lanes_start[j + 1], :groups[g].n_models]
    return out
