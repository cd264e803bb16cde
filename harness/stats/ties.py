"""Ties as ties: Davidson's (1970) Bradley-Terry model with a tie parameter, fitted by maximum
likelihood.

    P(i beats j) = pi_i / D,  P(j beats i) = pi_j / D,  P(tie) = nu sqrt(pi_i pi_j) / D,
    D = pi_i + pi_j + nu sqrt(pi_i pi_j),  pi = exp(theta).

Why Davidson and not Rao-Kupper: (1) the odds of a win against a loss are exactly BT's,
exp(theta_i - theta_j), so the ratings sit on the same scale as harness.ratings' BT and can be
printed beside it; (2) its sufficient statistic for a model's strength is wins + ties / 2, the
harness's own "tie = half a win" count, so the two fits differ only in how much a tie informs, not
in what it means; (3) with lambda = log nu, the model is a multinomial logit with linear predictors
(d / 2, -d / 2, lambda), d = theta_i - theta_j, so the log-likelihood is concave and Newton's
method from 0 converges. Rao-Kupper's tie probability (theta^2 - 1) pi_i pi_j / ((pi_i + theta pi_j)
(theta pi_i + pi_j)) ties a threshold to strength ratios and changes the win odds with theta.

nu = 0 is plain BT without ties; P(tie) between equal models is nu / (2 + nu).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from harness.stats.clustered import l2_strength
from harness.stats.frame import Frame, to_points

_MAX_STEPS = 200


@dataclass(frozen=True)
class TieModel:
    ratings: dict[str, float]  # Elo-scale points, mean `initial`: win/loss odds as BT's
    nu: float  # Davidson's tie parameter
    nu_low: float  # Wald interval of nu at `level` (from the observed information of log nu)
    nu_high: float
    level: float
    tie_share: float  # observed weighted share of ties
    log_likelihood: float

    @property
    def tie_at_equal_strength(self) -> float:
        """P(tie) between two equally strong models under the fit: nu / (2 + nu) (1 when nu is infinite)."""
        return 1.0 if math.isinf(self.nu) else self.nu / (2 + self.nu)


def pair_counts(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, weighted wins of lo, of hi, ties) per model pair that met, lo < hi."""
    swap = frame.a > frame.b
    lo, hi = np.where(swap, frame.b, frame.a), np.where(swap, frame.a, frame.b)
    score_lo = np.where(swap, 1 - frame.score_a, frame.score_a)
    keys, pair = np.unique(lo.astype(np.int64) * frame.n_models + hi, return_inverse=True)
    pair = pair.reshape(-1)
    total = lambda mask: np.bincount(pair, frame.weight * mask, minlength=len(keys))  # noqa: E731
    return (keys // frame.n_models, keys % frame.n_models, total(score_lo == 1.0), total(score_lo == 0.0),
            total(score_lo == 0.5))


def _terms(x, lo, hi, won_lo, won_hi, tied):
    """Log-likelihood, gradient and negative Hessian (parameters theta..., lambda)."""
    n_models = len(x) - 1
    d, lam = x[lo] - x[hi], x[-1]
    eta = np.stack([d / 2, -d / 2, np.full_like(d, lam)])  # (3, pairs)
    log_z = np.logaddexp.reduce(eta, axis=0)
    p_lo, p_hi, p_tie = np.exp(eta - log_z)
    n = won_lo + won_hi + tied
    loglik = float((won_lo * eta[0] + won_hi * eta[1] + tied * lam - n * log_z).sum())
    g_d = (won_lo - won_hi) / 2 - n * (p_lo - p_hi) / 2
    g_lam = float((tied - n * p_tie).sum())
    mean_d = (p_lo - p_hi) / 2
    var_d = n * ((p_lo + p_hi) / 4 - mean_d ** 2)
    cov = n * (-mean_d * p_tie)
    var_lam = float((n * p_tie * (1 - p_tie)).sum())
    grad = np.zeros(n_models + 1)
    np.add.at(grad, lo, g_d)
    np.add.at(grad, hi, -g_d)
    grad[-1] = g_lam
    info = np.zeros((n_models + 1, n_models + 1))
    np.add.at(info, (lo, lo), var_d)
    np.add.at(info, (hi, hi), var_d)
    np.add.at(info, (lo, hi), -var_d)
    np.add.at(info, (hi, lo), -var_d)
    np.add.at(info[:, -1], lo, cov)
    np.add.at(info[:, -1], hi, -cov)
    info[-1, :-1] = info[:-1, -1]
    info[-1, -1] = var_lam
    return loglik, grad, info


def davidson(frame: Frame, level: float = 0.95, scale: float = 400, base: float = 10, initial: float = 1000,
             penalty_c: float | None = 1.0) -> TieModel:
    """Davidson's tie model by damped Newton from theta = 0, nu = 1 (the log-likelihood is concave;
    the ratings get harness.ratings' L2 penalty, nu none). Without any tie nu's MLE is 0 (and the
    ratings are BT's): that is returned directly, with a zero-width interval. With only ties nu's MLE
    is infinite and every model sits at `initial`."""
    lo, hi, won_lo, won_hi, tied = pair_counts(frame)
    n_models = frame.n_models
    l2 = l2_strength(penalty_c, base)
    ridge = np.diag(np.r_[np.full(n_models, l2), 0.0])
    # Adding u u^T (u: every strength up by the same amount, the direction the likelihood ignores)
    # makes the information invertible without changing the step when the gradient is orthogonal to u.
    flat = np.zeros((n_models + 1, n_models + 1))
    flat[:n_models, :n_models] = 1.0 / n_models
    tie_share = float(tied.sum() / (won_lo + won_hi + tied).sum())

    def objective(x):
        loglik, grad, info = _terms(x, lo, hi, won_lo, won_hi, tied)
        theta = x[:-1]
        return (loglik - 0.5 * l2 * theta @ theta, grad - np.r_[l2 * theta, 0.0], info + ridge)

    no_ties = tied.sum() == 0
    if no_ties:  # nu's MLE is 0: plain BT on the wins and losses
        x = _maximise(lambda t: _bt_objective(t, lo, hi, won_lo, won_hi, l2), np.zeros(n_models),
                      flat[:-1, :-1], (won_lo + won_hi).sum())
        theta = x - x.mean()
        value = _bt_objective(theta, lo, hi, won_lo, won_hi, l2)[0]
        ratings = dict(zip(frame.models, map(float, to_points(theta, scale, base, initial))))
        return TieModel(ratings, 0.0, 0.0, 0.0, level, 0.0, float(value))
    if won_lo.sum() + won_hi.sum() == 0:  # only ties: nu's MLE is infinite and no battle orders the models
        ratings = {m: float(initial) for m in frame.models}
        return TieModel(ratings, math.inf, math.inf, math.inf, level, tie_share, 0.0)
    x = _maximise(objective, np.zeros(n_models + 1), flat, (won_lo + won_hi + tied).sum())
    value, _, info = objective(x)
    theta = x[:-1] - x[:-1].mean()
    ratings = dict(zip(frame.models, map(float, to_points(theta, scale, base, initial))))
    covariance = np.linalg.pinv(info)  # at the optimum; the flat direction has no variance
    se_lambda = math.sqrt(max(covariance[-1, -1], 0.0))
    z = NormalDist().inv_cdf((1 + level) / 2)
    nu = math.exp(x[-1])
    return TieModel(ratings, nu, math.exp(x[-1] - z * se_lambda), math.exp(x[-1] + z * se_lambda), level,
                    tie_share, float(value))


def _maximise(objective, x, flat, n_total):
    """Damped Newton ascent of a concave objective(x) -> (value, gradient, negative Hessian); `flat`
    is added to the negative Hessian to pin the direction the likelihood does not see."""
    value, grad, info = objective(x)
    for _ in range(_MAX_STEPS):
        if np.abs(grad).max() <= 1e-12 * max(1.0, n_total):
            break
        step = np.linalg.solve(info + flat, grad)
        t = 1.0
        while True:
            trial = x + t * step
            trial_value, trial_grad, trial_info = objective(trial)
            if trial_value >= value - 1e-13 * abs(value) or t < 1e-12:
                break
            t /= 2
        x, value, grad, info = trial, trial_value, trial_grad, trial_info
    return x


def _bt_objective(theta, lo, hi, won_lo, won_hi, l2):
    """Plain BT (wins and losses only) log-likelihood, gradient and negative Hessian."""
    d = theta[lo] - theta[hi]
    n = won_lo + won_hi
    p = np.exp(-np.logaddexp(0.0, -d))
    value = float((won_lo * -np.logaddexp(0.0, -d) + won_hi * -np.logaddexp(0.0, d)).sum()) - 0.5 * l2 * theta @ theta
    g_d = won_lo - n * p
    grad = np.zeros(len(theta))
    np.add.at(grad, lo, g_d)
    np.add.at(grad, hi, -g_d)
    c = n * p * (1 - p)
    info = np.zeros((len(theta), len(theta)))
    np.add.at(info, (lo, lo), c)
    np.add.at(info, (hi, hi), c)
    np.add.at(info, (lo, hi), -c)
    np.add.at(info, (hi, lo), -c)
    return value, grad - l2 * theta, info + l2 * np.eye(len(theta))


def probabilities(theta_i: float, theta_j: float, nu: float) -> tuple[float, float, float]:
    """(P(i wins), P(j wins), P(tie)) under Davidson's model, natural-scale strengths."""
    d = theta_i - theta_j
    z = math.exp(d / 2) + math.exp(-d / 2) + nu
    return math.exp(d / 2) / z, math.exp(-d / 2) / z, nu / z
