"""harness.stats against simulations with known truth and closed forms on hand-made examples.

Simulated leagues: models with known strengths theta, and per question a random effect u[q, m] ~
N(0, tau^2) for every model, so battles on one question are correlated (the same question is hard
for a model in every turn and judge). The rating the intervals should cover is the population BT
fit: BT fitted to the expected win rates E[sigmoid(theta_a - theta_b + u_a - u_b)], computed by
Gauss-Hermite quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.ratings import bootstrap as battle_bootstrap
from harness.ratings import bradley_terry
from harness.ratings_batched import Cells, fit_bt
from harness.stats import clustered, paired, ties
from harness.stats.frame import from_arrays, from_battles
from judges.merge import Battle

THETA = np.array([-0.6, -0.3, 0.0, 0.3, 0.6])  # natural scale: 0.3 apart is ~52 rating points
TAU = 1.0
QUESTIONS, PER_PAIR = 60, 4  # 4 battles per pair per question: e.g. 2 turns x 2 judges
LEAGUES, ROUNDS = 400, 200


def league(rng: np.random.Generator, theta=THETA, tau=TAU, questions=QUESTIONS, per_pair=PER_PAIR):
    """Every pair meets per_pair times on every question; no ties."""
    m = len(theta)
    i, j = np.triu_indices(m, 1)
    u = rng.normal(0, tau, (questions, m))
    question = np.repeat(np.arange(questions), len(i) * per_pair)
    a, b = np.tile(np.repeat(i, per_pair), questions), np.tile(np.repeat(j, per_pair), questions)
    eta = theta[a] - theta[b] + u[question, a] - u[question, b]
    won = (rng.random(len(a)) < 1 / (1 + np.exp(-eta))).astype(float)
    return from_arrays([f"m{x}" for x in range(m)], a, b, won, None, question)


def population_ratings(theta=THETA, tau=TAU) -> np.ndarray:
    """BT (unpenalised) fitted to the expected win rates of every pair, on the Elo scale."""
    m = len(theta)
    i, j = np.triu_indices(m, 1)
    nodes, weights = np.polynomial.hermite.hermgauss(80)
    spread = math.sqrt(2) * tau  # sd of u_a - u_b
    d = theta[i] - theta[j]
    p = (weights / math.sqrt(math.pi) / (1 + np.exp(-(d[:, None] + math.sqrt(2) * spread * nodes)))).sum(axis=1)
    n_pairs = len(i)
    cells = Cells(pair=np.repeat(np.arange(n_pairs), 2), lo=i, hi=j, score_lo=np.tile([0.0, 1.0], n_pairs),
                  weight=np.ones(2 * n_pairs), count=np.ones(2 * n_pairs))
    strengths = fit_bt(cells, np.column_stack([1 - p, p]).reshape(-1), m, 0.0)
    return 1000 + 400 * strengths / math.log(10)


# --- clustered bootstrap --------------------------------------------------------------------------


def test_question_clustered_intervals_reach_nominal_coverage_and_battle_level_ones_do_not():
    truth = population_ratings()
    rng = np.random.default_rng(20240515)
    covered = {unit: [] for unit in clustered.UNITS}
    widths = {unit: [] for unit in clustered.UNITS}
    for seed in range(LEAGUES):
        frame = league(rng)
        for unit in clustered.UNITS:
            intervals = clustered.bootstrap(frame, unit, ROUNDS, seed, penalty_c=None).intervals(0.95)
            covered[unit] += [intervals[m].low <= truth[k] <= intervals[m].high for k, m in enumerate(frame.models)]
            widths[unit] += [intervals[m].high - intervals[m].low for m in frame.models]
    coverage = {unit: float(np.mean(v)) for unit, v in covered.items()}
    print(f"coverage over {LEAGUES} leagues x {len(THETA)} models: {coverage}; mean widths "
          f"{ {u: round(float(np.mean(w)), 1) for u, w in widths.items()} }")
    # Monte Carlo error of a coverage over 400 leagues is about 0.011 (models within a league correlate).
    assert abs(coverage["question"] - 0.95) <= 0.03
    assert coverage["battle"] <= 0.85
    assert np.mean(widths["question"]) > 1.3 * np.mean(widths["battle"])


def test_battle_level_draws_are_harness_ratings_bootstrap_exactly():
    rng = np.random.default_rng(3)
    n = 3000
    a = rng.integers(0, 5, n)
    b = (a + rng.integers(1, 5, n)) % 5
    frame = from_arrays([f"m{i}" for i in range(5)], a, b, rng.choice([0.0, 0.5, 1.0], n),
                        rng.choice([0.5, 1.0], n), rng.integers(0, 40, n))
    ours = clustered.bootstrap(frame, "battle", 100, seed=7).intervals(0.9)
    theirs = battle_bootstrap(frame.battles(), "bt", rounds=100, seed=7, level=0.9)
    assert ours == theirs


def test_question_counts_and_resampled_rounds_on_a_hand_made_frame():
    # q0: m0 beats m1 twice; q1: m0 ties m1 once, m1 beats m0 once.
    frame = from_arrays(["m0", "m1"], [0, 0, 0, 1], [1, 1, 1, 0], [1.0, 1.0, 0.5, 1.0], None, [0, 0, 1, 1])
    cells, inverse = clustered.cell_index(frame)
    assert cells.score_lo.tolist() == [0.0, 0.5, 1.0] and cells.count.tolist() == [1.0, 1.0, 2.0]
    assert clustered.question_counts(frame, inverse, 3).tolist() == [[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]
    rng = np.random.default_rng(0)
    taken = clustered.question_multiplicities(2, 50, np.random.default_rng(0))
    counts = clustered.resampled_counts(frame, cells, inverse, "question", 50, rng)
    assert np.array_equal(counts, taken @ np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]))


def test_widths_report_both_units_best_first():
    frame = league(np.random.default_rng(5))
    rows = clustered.both_widths(frame, rounds=200, seed=1)
    assert [r.model for r in rows] == ["m4", "m3", "m2", "m1", "m0"]
    for row in rows:
        assert row.inflation == pytest.approx((row.question.high - row.question.low) / (row.battle.high - row.battle.low))
        assert row.point == row.battle.point == row.question.point


# --- paired comparison ----------------------------------------------------------------------------


def _battle(x, y, winner, qid, weight=1.0):
    return Battle(x, y, winner, weight, "c", True, "judge", "overall", 10, 20, "set", qid, 1)


def test_per_question_outcomes_direct_and_through_common_opponents():
    battles = [
        _battle("A", "B", "model_a", "q1"), _battle("A", "B", "tie", "q1"),  # A: 0.75 -> x = 0.5
        _battle("A", "B", "model_b", "q2"),  # x = -1
        _battle("A", "C", "model_a", "q3"), _battle("B", "C", "tie", "q3"),  # via C: 1 - 0.5 = 0.5
        _battle("A", "C", "model_a", "q4"),  # B never met C on q4: no paired outcome
    ]
    outcomes = paired.per_question(from_battles(battles), "A", "B")
    assert outcomes.questions == (("set", "q1"), ("set", "q2"), ("set", "q3"))
    assert outcomes.x.tolist() == [0.5, -1.0, 0.5]
    assert outcomes.direct.tolist() == [True, True, False]
    # From B's side every outcome flips.
    assert paired.per_question(from_battles(battles), "B", "A").x.tolist() == [-0.5, 1.0, -0.5]


def test_compare_on_a_hand_made_frame():
    battles = ([_battle("A", "B", "model_a", f"q{i}") for i in range(8)]
               + [_battle("A", "B", "model_b", f"q{i}") for i in range(8, 10)])
    frame = from_battles(battles)
    result = paired.compare(frame, "A", "B", rounds=200, seed=0)
    assert (result.questions, result.question_wins, result.question_losses, result.question_ties) == (10, 8, 2, 0)
    assert result.win_rate == 0.8
    assert result.p_sign == 2 * (1 + 10 + 45) / 1024
    # 8 of 10 signs +1: |sum| >= 6 for 2 * (1 + 10 + 45) of the 1024 flips.
    assert result.p_permutation == 2 * (1 + 10 + 45) / 1024
    bt = bradley_terry(frame.battles())
    assert result.bt_difference == pytest.approx(bt["A"] - bt["B"], abs=1e-9)
    sd = np.std([1.0] * 8 + [-1.0] * 2, ddof=1)
    assert result.mde_win_rate == pytest.approx(paired.minimum_detectable_effect(sd, 10) / 2)
    assert result.questions_needed == math.ceil((2.8015852 * sd / 0.6) ** 2)
    assert result.win_rate_low <= 0.8 <= result.win_rate_high
    # Two models, one battle per question: swapping names on a question flips its battle, so A's
    # wins are Binomial(10, 1/2) under the null and the BT test is the sign test (here by Monte Carlo).
    assert result.p_bt == pytest.approx(2 * 56 / 1024, abs=0.02)
    assert result.significant == (result.p_bt <= 0.05)


def test_sign_and_permutation_tests_exact_values():
    assert paired.sign_test([1, 1, 1, 1, 1, 1, 1, 1, -1, -1, 0]) == 2 * 56 / 1024
    assert paired.sign_test([0, 0]) == 1.0 and paired.sign_test([1, -1]) == 1.0
    # Of the 16 sign flips of (1, 2, 3, -0.5), |sum| >= 5.5 for (+,+,+,+-) and its mirror: 4.
    assert paired.permutation_test([1, 2, 3, -0.5]) == 4 / 16
    assert paired.permutation_test([0.0, 0.0]) == 1.0


def test_power_closed_forms():
    z = 1.959963984540054 + 0.8416212335729143
    assert paired.minimum_detectable_effect(1.0, 100) == pytest.approx(z / 10, rel=1e-12)
    assert paired.questions_needed(0.2, 1.0) == math.ceil((z / 0.2) ** 2) == 197
    assert paired.questions_needed(0.0, 1.0) == math.inf


def _null_outcomes(rng, sims, questions, per_question=4, tau=1.0):
    """A and B equally strong, per-question random effects: x per (sim, question), via per_question."""
    n_q = sims * questions
    u = rng.normal(0, tau, (n_q, 2))
    q = np.repeat(np.arange(n_q), per_question)
    won = (rng.random(len(q)) < 1 / (1 + np.exp(-(u[q, 0] - u[q, 1])))).astype(float)
    frame = from_arrays(["A", "B"], np.zeros(len(q)), np.ones(len(q)), won, None, q)
    return paired.per_question(frame, "A", "B").x.reshape(sims, questions)


def test_paired_tests_false_positive_rate_at_the_null_is_alpha():
    """16 battles per question, 100 questions: the paired outcomes are nearly continuous and the
    permutation test's size is alpha. With 4 battles on 40 questions they sit on a coarse lattice
    (many questions at exactly +-1), where an exact test can only be conservative: its size is
    asserted to stay at or below alpha."""
    sims, alpha = 2000, 0.05
    rates = {}
    for per_question, questions in ((16, 100), (4, 40)):
        x = _null_outcomes(np.random.default_rng(11), sims, questions, per_question)
        p_perm = np.array([paired.permutation_test(row, permutations=999, seed=s) for s, row in enumerate(x)])
        p_sign = np.array([paired.sign_test(row) for row in x])
        rates[per_question] = (float((p_perm <= alpha).mean()), float((p_sign <= alpha).mean()))
        print(f"false-positive rate at alpha {alpha}, {sims} null comparisons of {questions} questions x "
              f"{per_question} battles: permutation {rates[per_question][0]:.4f}, sign {rates[per_question][1]:.4f}")
    assert abs(rates[16][0] - alpha) <= 0.015  # 3 Monte Carlo standard errors
    assert rates[4][0] <= alpha + 0.015
    assert rates[16][1] <= alpha + 0.015 and rates[4][1] <= alpha + 0.015  # exact binomial: conservative


def test_permutation_test_power_at_the_minimum_detectable_effect_is_about_80_percent():
    sims, n = 500, 100
    rng = np.random.default_rng(12)
    effect = paired.minimum_detectable_effect(1.0, n)
    x = rng.normal(effect, 1.0, (sims, n))
    power = float(np.mean([paired.permutation_test(row, permutations=999, seed=s) <= 0.05
                           for s, row in enumerate(x)]))
    print(f"power at the MDE over {sims} simulations: {power:.3f}")
    assert abs(power - 0.8) <= 0.06


def test_holm_on_known_p_values():
    rejected, adjusted = paired.holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected == [True, False, False, True]
    rejected, adjusted = paired.holm([0.01, float("nan"), 0.02], alpha=0.05)
    assert rejected == [True, False, True] and adjusted[0] == 0.03 and math.isnan(adjusted[1]) and adjusted[2] == 0.04
    assert paired.holm([], 0.05) == ([], [])


def test_adjacent_marks_rank_by_bt_and_apply_holm():
    # A beats B on all 12 questions; B and C split them. BT ranks A, C, B (C has no loss to A).
    battles = [_battle("A", "B", "model_a", f"q{i}") for i in range(12)]
    battles += [_battle("B", "C", "model_a" if i % 2 else "model_b", f"q{i}") for i in range(12)]
    frame = from_battles(battles)
    marks = paired.adjacent(frame, seed=4)
    assert [(m.above, m.below) for m in marks] == [("A", "C"), ("C", "B")]
    expected = [paired.bt_permutation_test(frame, "A", "C", seed=4), paired.bt_permutation_test(frame, "C", "B", seed=4)]
    assert [m.p_value for m in marks] == expected
    assert [m.p_holm for m in marks] == paired.holm(expected)[1]
    assert [m.significant for m in marks] == paired.holm(expected)[0]
    # C and B split their games: swapping them leaves the fit as it is on half the flips.
    assert marks[1].p_value > 0.5 and not marks[1].significant
    marks = paired.adjacent(frame, order=["A", "B", "C"])
    assert [(m.above, m.below) for m in marks] == [("A", "B"), ("B", "C")]
    # A against B: every swap of a question turns one of A's wins into a loss: only the identity
    # permutation (1 in 2^12) is as extreme. Monte Carlo over 2000 draws: about 1 / 2001.
    assert marks[0].p_value < 0.005 and marks[0].significant


def _null_league_with_twins(rng, questions=30):
    """m0 and m1 equally strong (the null), three others; per-question random effects; every pair
    meets twice per question."""
    theta = np.array([0.0, 0.0, -0.5, 0.5, 1.0])
    return league(rng, theta=theta, tau=0.8, questions=questions, per_pair=2)


def test_bt_permutation_test_false_positive_rate_at_the_null_is_alpha():
    rng, sims, alpha = np.random.default_rng(31), 500, 0.05
    p = np.array([paired.bt_permutation_test(_null_league_with_twins(rng), "m0", "m1", permutations=199, seed=s)
                  for s in range(sims)])
    rate = float((p <= alpha).mean())
    print(f"BT permutation test: false-positive rate at alpha {alpha} over {sims} null leagues: {rate:.4f}")
    assert abs(rate - alpha) <= 0.03  # 3 Monte Carlo standard errors (0.0097)


def test_bt_permutation_test_uses_common_opponents():
    """A 0.4 logits above B, 30 questions: the BT test sees their games against everyone, the
    per-question test only their own: over 100 leagues the BT test rejects far more often."""
    rng = np.random.default_rng(32)
    theta = np.array([0.4, 0.0, -0.5, 0.5, 1.0])
    bt, direct = [], []
    for s in range(100):
        frame = league(rng, theta=theta, tau=0.5, questions=30, per_pair=2)
        bt.append(paired.bt_permutation_test(frame, "m0", "m1", permutations=199, seed=s) <= 0.05)
        direct.append(paired.permutation_test(paired.per_question(frame, "m0", "m1").x, 999, s) <= 0.05)
    print(f"power at 0.4 logits, 30 questions: BT permutation {np.mean(bt):.2f}, per-question {np.mean(direct):.2f}")
    assert np.mean(bt) > np.mean(direct) + 0.2


# --- ties -----------------------------------------------------------------------------------------


def test_davidson_two_models_closed_form():
    # Two models, 30 wins, 10 losses, 20 ties: the model is saturated, so e^d = 30 / 10 and
    # nu = ties / sqrt(wins * losses).
    frame = from_arrays(["x", "y"], [0] * 60, [1] * 60, [1.0] * 30 + [0.0] * 10 + [0.5] * 20)
    fit = ties.davidson(frame, penalty_c=None)
    assert fit.nu == pytest.approx(20 / math.sqrt(300), rel=1e-10)
    assert fit.ratings["x"] - fit.ratings["y"] == pytest.approx(400 * math.log10(3), rel=1e-10)
    assert fit.tie_share == pytest.approx(1 / 3)
    assert fit.tie_at_equal_strength == pytest.approx(fit.nu / (2 + fit.nu))
    # Without ties nu is 0 and the ratings are BT's.
    no_ties = ties.davidson(from_arrays(["x", "y"], [0] * 40, [1] * 40, [1.0] * 30 + [0.0] * 10), penalty_c=None)
    assert no_ties.nu == 0.0 and no_ties.ratings["x"] - no_ties.ratings["y"] == pytest.approx(400 * math.log10(3))
    # Only ties (a judge that always says "tie", or always "A" merged over both orders): nu's MLE is
    # infinite and nothing orders the models.
    only_ties = ties.davidson(from_arrays(["x", "y", "z"], [0, 1, 0] * 5, [1, 2, 2] * 5, [0.5] * 15))
    assert math.isinf(only_ties.nu) and only_ties.tie_share == 1.0 and only_ties.tie_at_equal_strength == 1.0
    assert set(only_ties.ratings.values()) == {1000.0}


def test_davidson_recovers_a_planted_tie_parameter():
    rng = np.random.default_rng(21)
    theta, nu, n = np.linspace(-1, 1, 6), 0.8, 60_000
    a = rng.integers(0, 6, n)
    b = (a + rng.integers(1, 6, n)) % 6
    d = theta[a] - theta[b]
    z = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(n)
    score = np.where(u < np.exp(d / 2) / z, 1.0, np.where(u < (np.exp(d / 2) + nu) / z, 0.5, 0.0))
    fit = ties.davidson(from_arrays([f"m{i}" for i in range(6)], a, b, score), penalty_c=None)
    print(f"Davidson: planted nu {nu}, fitted {fit.nu:.4f} [{fit.nu_low:.4f}, {fit.nu_high:.4f}]")
    assert fit.nu_low <= nu <= fit.nu_high
    assert fit.nu == pytest.approx(nu, abs=0.03)
    fitted = np.array([fit.ratings[f"m{i}"] for i in range(6)])
    planted = 1000 + 400 * (theta - theta.mean()) / math.log(10)
    assert np.abs(fitted - planted).max() < 10  # points; the standard error is ~4
    assert ties.probabilities(0.0, 0.0, nu) == pytest.approx((1 / 2.8, 1 / 2.8, 0.8 / 2.8))
