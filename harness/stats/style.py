"""Style control: Bradley-Terry with style covariates (Chatbot Arena's contextual BT), and the
standard error of AlpacaEval's length-controlled win rate.

    logit P(a beats b) = theta_a - theta_b + sum_k beta_k z_k,

z_k the battle's normalised style difference, as Arena's style control builds it
(fastchat/serve/monitor/elo_analysis.py, `compute_style_control`): per feature the raw
difference over the sum, (f_a - f_b) / (f_a + f_b) (0 when both are 0), then scaled to unit root
mean square over the battles (Arena centres too; see `normalise` for why this does not).
Features: answer length (characters here; Arena counts tokens) and the markdown counts of
`markdown_counts` (headers, list items, bold spans, code blocks removed first, Arena's regular
expressions). beta_k > 0: the judge prefers the side with more of feature k, in log-odds per unit
(root mean square) of the covariate; theta is the ranking with style held equal ("controlled").

A tie is half a win (soft label 0.5), as in harness.ratings' BT, and the ratings carry its L2
penalty (the coefficients too). Intervals resample questions (harness.stats.clustered). A round's
estimate is one Newton step from the full-data optimum with the round's own gradient and Hessian,
both sums of per-question terms, so all rounds are two matrix products and a batched solve rather
than a refit over every battle per round (`exact=True` refits every round: small data, tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from harness.ratings import Interval, LengthControlled, length_controlled_win_rate
from harness.stats import clustered
from harness.stats.frame import Frame, to_points

FEATURES = ("length", "headers", "lists", "bold")
_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))
_MAX_STEPS = 100
# The rounds' Hessians (rounds x P x P float64) are built this many entries at a time.
_BLOCK_ENTRIES = 1 << 24


def markdown_counts(text: str) -> tuple[int, int, int]:
    """(headers, list items, bold spans) of a markdown answer, code blocks removed: Arena's counts
    (h1-h6 lines; ordered and unordered list items; **bold** and __bold__)."""
    text = _CODE_BLOCK.sub("", text)
    return (len(_HEADER.findall(text)), len(_ORDERED.findall(text)) + len(_UNORDERED.findall(text)),
            sum(len(p.findall(text)) for p in _BOLD))


def normalise(raw_a: np.ndarray, raw_b: np.ndarray) -> np.ndarray:
    """(battles x features) style covariates: (a - b) / (a + b), 0 where both are 0, then each
    column divided by its root mean square; a column of zeros stays 0.

    Arena standardises with (z - mean) / std. Its sides are random, so the mean is ~0; here side a
    is the alphabetically first model, so a mean is real (a verbose model named "zeta" makes it
    negative) and subtracting it would give every battle a constant pull towards one side, which
    the fit then pays back in the ratings of the models that sit on that side. Scaling without
    centring keeps the covariate antisymmetric (swapping the sides negates it) at the same scale."""
    raw_a, raw_b = np.atleast_2d(np.asarray(raw_a, float).T).T, np.atleast_2d(np.asarray(raw_b, float).T).T
    total = raw_a + raw_b
    ratio = np.divide(raw_a - raw_b, total, out=np.zeros_like(total), where=total != 0)
    spread = np.sqrt((ratio ** 2).mean(axis=0))
    return np.divide(ratio, spread, out=np.zeros_like(ratio), where=spread > 0)


def covariates(frame: Frame, markdown_a: np.ndarray | None = None, markdown_b: np.ndarray | None = None
               ) -> tuple[tuple[str, ...], np.ndarray]:
    """(feature names, battles x features): length from the frame, plus the markdown counts when
    given ((battles x 3) of `markdown_counts` for side a and side b). A feature with no spread in
    these battles (no answer has a header) has nothing to estimate and is left out; features with
    identical covariates share one column, named "headers/lists"."""
    if markdown_a is None:
        names, z = FEATURES[:1], normalise(frame.len_a[:, None], frame.len_b[:, None])
    else:
        names, z = FEATURES, normalise(np.column_stack([frame.len_a, markdown_a]),
                                       np.column_stack([frame.len_b, markdown_b]))
    # A feature with the same covariate as an earlier one (answers whose headers, lists and bold
    # always come together) cannot be told apart from it: one column, both names ("headers/lists").
    kept, labels = [], []
    for k in range(z.shape[1]):
        if not np.abs(z[:, k]).max(initial=0.0) > 0:
            continue
        same = next((i for i, j in enumerate(kept) if np.allclose(z[:, j], z[:, k], rtol=0, atol=1e-12)), None)
        if same is None:
            kept.append(k)
            labels.append(names[k])
        else:
            labels[same] += f"/{names[k]}"
    return tuple(labels), z[:, kept]


# --- the fit --------------------------------------------------------------------------------------


def _gradient_hessian(frame: Frame, z: np.ndarray, params: np.ndarray, weight: np.ndarray):
    """Per-battle residual r = w (p - y) and curvature c = w p (1 - p) at `params`."""
    m = frame.n_models
    eta = params[frame.a] - params[frame.b] + np.einsum("nk,k->n", z, params[m:])
    p = np.exp(-np.logaddexp(0.0, -eta))
    return eta, weight * (p - frame.score_a), weight * p * (1 - p)


def _loss(frame, z, params, weight, l2):
    m = frame.n_models
    eta = params[frame.a] - params[frame.b] + np.einsum("nk,k->n", z, params[m:])
    y = frame.score_a
    return float((weight * (y * np.logaddexp(0.0, -eta) + (1 - y) * np.logaddexp(0.0, eta))).sum()
                 + 0.5 * l2 * params @ params)


def _totals(frame: Frame, z: np.ndarray, r: np.ndarray, c: np.ndarray, group: np.ndarray, n_groups: int):
    """Per group (a question, or 0 for all): gradient (groups x P) and Hessian (groups x P x P) of the loss."""
    m, k = frame.n_models, z.shape[1]
    p = m + k
    sums = lambda index, values, size: np.bincount(index, values, minlength=size)  # noqa: E731
    grad = np.zeros((n_groups, p))
    grad[:, :m] = (sums(group * m + frame.a, r, n_groups * m) - sums(group * m + frame.b, r, n_groups * m)
                   ).reshape(n_groups, m)
    for j in range(k):
        grad[:, m + j] = sums(group, r * z[:, j], n_groups)
    hess = np.zeros(n_groups * p * p)
    at = lambda row, col: group * (p * p) + row * p + col  # noqa: E731
    size = n_groups * p * p
    for row, col, sign in ((frame.a, frame.a, 1), (frame.b, frame.b, 1), (frame.a, frame.b, -1), (frame.b, frame.a, -1)):
        hess += sign * sums(at(row, col), c, size)
    for j in range(k):
        cz = c * z[:, j]
        for side, sign in ((frame.a, 1), (frame.b, -1)):
            hess += sign * sums(at(side, m + j), cz, size)
            hess += sign * sums(at(m + j, side), cz, size)
        for i in range(k):
            hess += sums(group * (p * p) + (m + j) * p + m + i, cz * z[:, i], size)
    return grad, hess.reshape(n_groups, p, p)


def _flat(n_models: int, n_features: int) -> np.ndarray:
    """u u^T for u = every strength up by the same amount: the direction the likelihood ignores.
    Added to the Hessian it makes the system solvable without changing a step orthogonal to u."""
    flat = np.zeros((n_models + n_features,) * 2)
    flat[:n_models, :n_models] = 1.0 / n_models
    return flat


def fit(frame: Frame, z: np.ndarray, l2: float = clustered.l2_strength(1.0), weight: np.ndarray | None = None
        ) -> np.ndarray:
    """(theta (mean 0), beta) maximising the weighted soft-label likelihood minus l2 / 2 |params|^2,
    by damped Newton from 0."""
    weight = frame.weight if weight is None else weight
    m, k = frame.n_models, z.shape[1]
    params = np.zeros(m + k)
    flat, ridge = _flat(m, k), l2 * np.eye(m + k)
    zero_group = np.zeros(len(frame), dtype=np.intp)
    value = _loss(frame, z, params, weight, l2)
    for _ in range(_MAX_STEPS):
        _, r, c = _gradient_hessian(frame, z, params, weight)
        grad, hess = _totals(frame, z, r, c, zero_group, 1)
        grad, hess = grad[0] + l2 * params, hess[0] + ridge
        if np.abs(grad).max() <= 1e-11 * max(1.0, weight.sum()):
            break
        step = np.linalg.solve(hess + flat, grad)
        t = 1.0
        while True:
            trial = params - t * step
            trial_value = _loss(frame, z, trial, weight, l2)
            if trial_value <= value + 1e-13 * abs(value) or t < 1e-12:
                break
            t /= 2
        params, value = trial, trial_value
    params[:m] -= params[:m].mean()
    return params


@dataclass(frozen=True)
class StyleControl:
    """Raw and style-controlled BT of one panel, with question-clustered intervals."""

    features: tuple[str, ...]
    coefficients: dict[str, Interval]  # beta_k, log-odds per unit (root mean square) of the covariate
    controlled: dict[str, Interval]  # Elo-scale ratings with style held equal
    raw: dict[str, Interval]  # harness.ratings' BT, the same clustered bootstrap
    rounds: int

    def ranking(self, controlled: bool = True) -> list[str]:
        table = self.controlled if controlled else self.raw
        return sorted(table, key=lambda m: (-table[m].point, m))


def bootstrap(frame: Frame, z: np.ndarray, features: tuple[str, ...], rounds: int = 1000, seed: int = 0,
              level: float = 0.95, penalty_c: float | None = 1.0, scale: float = 400, base: float = 10,
              initial: float = 1000, exact: bool = False, raw: clustered.Draws | None = None) -> StyleControl:
    """Style-controlled BT and its coefficients, with percentile intervals over `rounds` rounds that
    resample questions (one-step estimates; exact=True refits each round), beside raw BT (`raw`:
    the frame's question-clustered BT bootstrap when already computed; same rounds and seed)."""
    z = np.asarray(z, dtype=float).reshape(len(frame), -1)
    if z.shape[1] != len(features):
        raise ValueError(f"{z.shape[1]} covariate columns for {len(features)} feature names")
    m = frame.n_models
    l2 = clustered.l2_strength(penalty_c, base)
    params = fit(frame, z, l2)
    taken = clustered.question_multiplicities(frame.n_questions, rounds, np.random.default_rng(seed))
    if exact:
        samples = np.array([fit(frame, z, l2, frame.weight * row[frame.question]) for row in taken])
    else:
        samples = _one_step(frame, z, params, taken, l2)
    samples[:, :m] -= samples[:, :m].mean(axis=1, keepdims=True)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    quantiles = np.quantile(samples, [lo, hi], axis=0)
    as_points = lambda v: to_points(v, scale, base, initial)  # noqa: E731
    controlled = {name: Interval(float(as_points(params[i])), float(as_points(quantiles[0, i])),
                                 float(as_points(quantiles[1, i])), level) for i, name in enumerate(frame.models)}
    coefficients = {name: Interval(float(params[m + j]), float(quantiles[0, m + j]), float(quantiles[1, m + j]), level)
                    for j, name in enumerate(features)}
    if raw is None:
        raw = clustered.bootstrap(frame, "question", rounds, seed, scale, base, initial, penalty_c)
    return StyleControl(tuple(features), coefficients, controlled, raw.intervals(level), rounds)


def _one_step(frame: Frame, z: np.ndarray, params: np.ndarray, taken: np.ndarray, l2: float) -> np.ndarray:
    """Per round (row of `taken`, question multiplicities): params minus the Newton step of the
    round's objective, sum_q taken[q] loss_q + l2 / 2 |params|^2, at the full-data optimum."""
    m, k = frame.n_models, z.shape[1]
    p = m + k
    _, r, c = _gradient_hessian(frame, z, params, frame.weight)
    grad_q, hess_q = _totals(frame, z, r, c, frame.question, frame.n_questions)
    hess_flat = hess_q.reshape(frame.n_questions, p * p)
    block = max(1, _BLOCK_ENTRIES // (p * p))  # rounds whose Hessians are built at once
    out = np.empty((len(taken), p))
    extra = l2 * np.eye(p) + _flat(m, k)
    for start in range(0, len(taken), block):
        rows = taken[start:start + block]
        grads = rows @ grad_q + l2 * params
        hessians = (rows @ hess_flat).reshape(-1, p, p) + extra
        out[start:start + block] = params - np.linalg.solve(hessians, grads[:, :, None])[:, :, 0]
    return out


# --- AlpacaEval's LC win rate, with a standard error ---------------------------------------------


@dataclass(frozen=True)
class LengthControlledSE:
    result: LengthControlled  # harness.ratings' fit (percentages)
    lc_standard_error: float  # percentage points
    win_rate_standard_error: float  # of the raw win rate, percentage points (clustered the same way)


def lc_standard_error(model_len, baseline_len, score, difficulty=None, c: float = 100.0, cluster=None
                      ) -> LengthControlledSE:
    """harness.ratings.length_controlled_win_rate and the delta-method standard error of its LC win
    rate: the sandwich covariance H^-1 (sum_g s_g s_g^T) H^-1 of the GLM coefficients (H the
    log-loss Hessian at the fit, s_g the score summed over cluster g: an instruction, or a question
    when `cluster` gives several rows per question), pushed through LC = mean sigmoid(x0 theta).
    The L1 penalty (|theta|_1 against a loss scaled by c = 100) is left out of H, as a small-sample
    correction would be; a covariate with no spread (all lengths equal) gets no variance."""
    result = length_controlled_win_rate(model_len, baseline_len, score, difficulty, c)
    s = np.asarray(score, float)
    delta = np.asarray(model_len, float) - np.asarray(baseline_len, float)
    spread = delta.std(ddof=1)
    columns = [np.ones_like(s), np.tanh(delta / spread) if spread > 0 else np.zeros_like(s)]
    theta = [result.model_coef, result.length_coef]
    if difficulty is not None:
        columns.append(np.asarray(difficulty, float))
        theta.append(result.difficulty_coef)
    x, theta = np.column_stack(columns), np.array(theta)
    p = np.exp(-np.logaddexp(0.0, -(x @ theta)))
    group = np.arange(len(s)) if cluster is None else np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    n_groups = int(group.max()) + 1
    scores = np.stack([np.bincount(group, (p - s) * x[:, j], minlength=n_groups) for j in range(x.shape[1])], axis=1)
    hessian = np.einsum("ij,i,ik->jk", x, p * (1 - p), x)
    bread = np.linalg.pinv(hessian)
    covariance = bread @ (scores.T @ scores) @ bread
    x0 = x.copy()
    x0[:, 1] = 0.0
    p0 = np.exp(-np.logaddexp(0.0, -(x0 @ theta)))
    gradient = 100 * (x0 * (p0 * (1 - p0))[:, None]).mean(axis=0)
    per_group = np.bincount(group, s, minlength=n_groups) - np.bincount(group, minlength=n_groups) * s.mean()
    return LengthControlledSE(result, float(math.sqrt(max(gradient @ covariance @ gradient, 0.0))),
                              float(100 * math.sqrt((per_group ** 2).sum()) / len(s)))
