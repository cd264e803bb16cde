"""harness.stats.style: style-controlled BT recovers planted style effects; LC win rate standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import style
from harness.stats.frame import from_arrays

THETA = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
BETA_LENGTH = 0.5


def verbose_league(seed: int, questions: int = 300, per_question: int = 30):
    """Model 0 (the weakest) writes answers ~3x longer than the others; the judge adds
    BETA_LENGTH log-odds per standard deviation of the normalised length difference. Bold counts
    are drawn at random and play no part in the verdict."""
    rng = np.random.default_rng(seed)
    m, n = len(THETA), questions * per_question
    question = np.repeat(np.arange(questions), per_question)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    typical = np.where(np.arange(m) == 0, 1500.0, 500.0)
    len_a, len_b = rng.lognormal(np.log(typical[a]), 0.4), rng.lognormal(np.log(typical[b]), 0.4)
    bold_a, bold_b = rng.poisson(2, n), rng.poisson(2, n)
    z = style.normalise(np.column_stack([len_a, bold_a]), np.column_stack([len_b, bold_b]))
    eta = THETA[a] - THETA[b] + BETA_LENGTH * z[:, 0]
    won = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    frame = from_arrays([f"m{i}" for i in range(m)], a, b, won, None, question, None, len_a, len_b)
    return frame, z


def test_markdown_counts_follow_arenas_patterns():
    text = ("# Title\n## Sub\n\n- a\n* b\n  + c\n1. one\n10. ten\n**bold** and __also__ and **not\nbold**\n"
            "```\n# code\n- code\n```\n")
    assert style.markdown_counts(text) == (2, 5, 2)
    assert style.markdown_counts("#hashtag, 3.14 and -1") == (0, 0, 0)


def test_normalise_is_difference_over_sum_scaled_to_unit_root_mean_square():
    z = style.normalise([[2.0, 0.0], [0.0, 0.0], [3.0, 5.0]], [[1.0, 0.0], [0.0, 0.0], [1.0, 5.0]])
    ratio = np.array([1 / 3, 0.0, 1 / 2])
    assert z[:, 0] == pytest.approx(ratio / math.sqrt((1 / 9 + 1 / 4) / 3), abs=1e-15)
    assert z[:, 1].tolist() == [0.0, 0.0, 0.0]  # no difference anywhere: 0
    # Swapping the sides negates the covariate (it would not if it were centred).
    swapped = style.normalise([[1.0, 0.0], [0.0, 0.0], [1.0, 5.0]], [[2.0, 0.0], [0.0, 0.0], [3.0, 5.0]])
    assert np.array_equal(swapped, -z)


def test_covariates_drop_constant_features_and_merge_identical_ones():
    frame = from_arrays(["m0", "m1"], [0, 0, 1], [1, 1, 0], [1.0, 0.0, 1.0], None, None, None,
                        [100.0, 50.0, 80.0], [50.0, 100.0, 80.0])
    # headers and bold always together; lists never used
    markdown_a = np.array([[1, 0, 1], [0, 0, 0], [2, 0, 2]])
    markdown_b = np.array([[0, 0, 0], [1, 0, 1], [1, 0, 1]])
    names, z = style.covariates(frame, markdown_a, markdown_b)
    assert names == ("length", "headers/bold")
    assert np.array_equal(z, style.normalise(np.column_stack([frame.len_a, markdown_a[:, 0]]),
                                             np.column_stack([frame.len_b, markdown_b[:, 0]])))


def test_style_control_recovers_a_planted_length_coefficient_and_the_true_ranking():
    frame, z = verbose_league(seed=1)
    result = style.bootstrap(frame, z, ("length", "bold"), rounds=300, seed=0)
    length, bold = result.coefficients["length"], result.coefficients["bold"]
    print(f"style control: planted length {BETA_LENGTH}, fitted {length.point:.4f} [{length.low:.4f}, "
          f"{length.high:.4f}]; planted bold 0, fitted {bold.point:.4f} [{bold.low:.4f}, {bold.high:.4f}]")
    assert length.low <= BETA_LENGTH <= length.high and length.point == pytest.approx(BETA_LENGTH, abs=0.06)
    # A planted 0 within 3 standard errors (a 95% interval misses it 1 time in 20: over 40 seeds
    # the bold coefficient averaged -0.005, sd 0.031)
    assert abs(bold.point) <= 3 * (bold.high - bold.low) / (2 * 1.96)
    truth = [f"m{i}" for i in (4, 3, 2, 1, 0)]
    assert result.ranking(controlled=True) == truth
    # Raw BT credits m0 with the judge's taste for its length: the gap m1 - m0 shrinks or flips.
    raw_gap = result.raw["m1"].point - result.raw["m0"].point
    controlled_gap = result.controlled["m1"].point - result.controlled["m0"].point
    assert controlled_gap - raw_gap > 30  # points
    controlled = np.array([result.controlled[m].point for m in frame.models])
    planted = 1000 + 400 * (THETA - THETA.mean()) / math.log(10)
    assert np.abs(controlled - planted).max() < 15


def test_one_step_rounds_agree_with_full_refits():
    frame, z = verbose_league(seed=2, questions=120, per_question=25)
    fast = style.bootstrap(frame, z, ("length", "bold"), rounds=60, seed=3)
    exact = style.bootstrap(frame, z, ("length", "bold"), rounds=60, seed=3, exact=True)
    for m in frame.models:
        assert fast.controlled[m].point == exact.controlled[m].point
        assert fast.controlled[m].low == pytest.approx(exact.controlled[m].low, abs=2.0)  # points
        assert fast.controlled[m].high == pytest.approx(exact.controlled[m].high, abs=2.0)
    for name in ("length", "bold"):
        assert fast.coefficients[name].low == pytest.approx(exact.coefficients[name].low, abs=0.01)
        assert fast.coefficients[name].high == pytest.approx(exact.coefficients[name].high, abs=0.01)


def test_without_style_effects_the_controlled_fit_is_bt():
    from harness.ratings import bradley_terry

    frame, _ = verbose_league(seed=3, questions=50, per_question=10)
    zero = np.zeros((len(frame), 1))
    result = style.bootstrap(frame, zero, ("length",), rounds=20)
    bt = bradley_terry(frame.battles())
    assert {m: round(iv.point, 6) for m, iv in result.controlled.items()} == {m: round(r, 6) for m, r in bt.items()}
    assert result.coefficients["length"].point == 0.0


def test_lc_standard_error_closed_form_when_lengths_are_equal():
    # No length spread: the GLM is its intercept alone and the delta-method SE of the LC win rate
    # is 100 sqrt(sum (s - p)^2) / n, p = sigmoid(intercept); per cluster the residuals add first.
    s = np.array([1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0])
    out = style.lc_standard_error([100] * 8, [100] * 8, s)
    p = 1 / (1 + math.exp(-out.result.model_coef))
    assert out.lc_standard_error == pytest.approx(100 * math.sqrt(((s - p) ** 2).sum()) / 8, rel=1e-9)
    assert out.win_rate_standard_error == pytest.approx(100 * math.sqrt(((s - s.mean()) ** 2).sum()) / 8)
    clustered = style.lc_standard_error([100] * 8, [100] * 8, s, cluster=[0, 0, 1, 1, 2, 2, 3, 3])
    per_cluster = (s - p).reshape(4, 2).sum(axis=1)
    assert clustered.lc_standard_error == pytest.approx(100 * math.sqrt((per_cluster ** 2).sum()) / 8, rel=1e-9)


def test_lc_standard_error_matches_the_spread_over_replications():
    rng = np.random.default_rng(4)
    values, errors = [], []
    for _ in range(200):
        n = 400
        model_len, base_len = rng.lognormal(6.5, 0.5, n), rng.lognormal(6.2, 0.5, n)
        z = (model_len - base_len) / np.std(model_len - base_len, ddof=1)
        s = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.8 * np.tanh(z))))).astype(float)
        out = style.lc_standard_error(model_len, base_len, s)
        values.append(out.result.lc_win_rate)
        errors.append(out.lc_standard_error)
    spread, mean_error = float(np.std(values, ddof=1)), float(np.mean(errors))
    print(f"LC win rate: sd over 200 replications {spread:.3f} points, mean delta-method SE {mean_error:.3f}")
    assert mean_error == pytest.approx(spread, rel=0.15)
