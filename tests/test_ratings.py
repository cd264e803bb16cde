"""Ratings on battles with a known answer: drawn from known strengths, closed forms, hand counts."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from scipy.special import expit

from harness.ratings import (
    Battles,
    Interval,
    battles_from_rows,
    bootstrap,
    bradley_terry,
    elo,
    length_controlled_win_rate,
    mean_grades,
    significantly_different,
    win_rate_against,
)


def draw_battles(true_ratings: list[float], n: int, seed: int, tie_share: float = 0.3) -> Battles:
    """n battles between random pairs, won per the BT model of `true_ratings` (Elo scale).

    Ties are mixed in so that E[score_a] is still the BT probability p: with ties counted as half a
    win, the BT fit is then consistent for the true ratings.
    """
    rng = np.random.default_rng(seed)
    true = np.asarray(true_ratings, dtype=float)
    a = rng.integers(0, len(true), n)
    b = (a + rng.integers(1, len(true), n)) % len(true)
    p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    tie = tie_share * 2 * np.minimum(p, 1 - p)
    a_wins_if_decided = (p - tie / 2) / (1 - tie)
    score = np.where(rng.random(n) < tie, 0.5, (rng.random(n) < a_wins_if_decided).astype(float))
    return Battles(tuple(f"m{i}" for i in range(len(true))), a, b, score, np.ones(n))


def fastchat_style_elo(rows, k=4, scale=400, base=10, init=1000):
    """A direct transcription of the online-Elo loop in FastChat's `compute_elo`."""
    rating = defaultdict(lambda: init)
    for model_a, model_b, winner in rows:
        ra, rb = rating[model_a], rating[model_b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        sa = {"model_a": 1, "model_b": 0, "tie": 0.5}[winner]
        rating[model_a] += k * (sa - ea)
        rating[model_b] += k * (1 - sa - eb)
    return dict(rating)


def as_rows(battles: Battles) -> list[tuple[str, str, str]]:
    winner = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}
    return [(battles.models[a], battles.models[b], winner[s])
            for a, b, s in zip(battles.a.tolist(), battles.b.tolist(), battles.score_a.tolist())]


# --- battles --------------------------------------------------------------------------------------


def test_battles_from_rows_reads_fastchat_and_short_winner_labels():
    battles = battles_from_rows(
        [("b", "a", "model_a"), ("a", "b", "B"), ("a", "c", "tie"), ("c", "b", "tie (bothbad)"), ("a", "b", "A")],
        weights=[1, 1, 1, 0.5, 0.5],
    )
    assert battles.models == ("a", "b", "c")
    assert battles.a.tolist() == [1, 0, 0, 2, 0] and battles.b.tolist() == [0, 1, 2, 1, 1]
    assert battles.score_a.tolist() == [1.0, 0.0, 0.5, 0.5, 1.0]
    assert battles.weight.tolist() == [1, 1, 1, 0.5, 0.5]


@pytest.mark.parametrize("rows", [[("a", "b", "draw")], [("a", "a", "tie")]])
def test_bad_battles_are_refused(rows):
    with pytest.raises(ValueError):
        battles_from_rows(rows)


# --- Bradley-Terry --------------------------------------------------------------------------------


def test_bt_recovers_the_order_and_gaps_of_known_ratings():
    true = [850, 930, 1000, 1040, 1120, 1300]
    fitted = bradley_terry(draw_battles(true, 60_000, seed=1))
    ratings = np.array([fitted[f"m{i}"] for i in range(len(true))])
    assert list(np.argsort(ratings)) == list(range(len(true)))
    # Each model plays ~20k battles: standard error ~3 points a rating, so 15 is about 4 sigma.
    gaps, true_gaps = ratings - ratings.mean(), np.array(true) - np.mean(true)
    assert np.abs(gaps - true_gaps).max() < 15
    assert ratings.mean() == pytest.approx(1000)


def test_bt_on_two_models_is_the_closed_form_with_ties_as_half_wins():
    # x scores 3 wins + 2 ties * 0.5 = 4 of 6, so the MLE has P(x beats y) = 4/6.
    rows = [("x", "y", "model_a")] * 3 + [("x", "y", "model_b")] + [("y", "x", "tie")] * 2
    fitted = bradley_terry(battles_from_rows(rows), penalty_c=None)
    gap = 400 * math.log10(4 / 2)
    assert fitted["x"] == pytest.approx(1000 + gap / 2, abs=1e-6)
    assert fitted["y"] == pytest.approx(1000 - gap / 2, abs=1e-6)


def test_a_tie_is_half_a_win_each_way():
    battles = draw_battles([900, 1000, 1100], 3000, seed=2)
    ties = battles.score_a == 0.5
    n_ties = int(ties.sum())
    # Each tie becomes a half-weight win for a plus a half-weight win for b.
    split = Battles(
        battles.models,
        np.concatenate([battles.a[~ties], battles.a[ties], battles.a[ties]]),
        np.concatenate([battles.b[~ties], battles.b[ties], battles.b[ties]]),
        np.concatenate([battles.score_a[~ties], np.ones(n_ties), np.zeros(n_ties)]),
        np.concatenate([battles.weight[~ties], np.full(2 * n_ties, 0.5)]),
    )
    assert n_ties > 100
    for model, rating in bradley_terry(battles).items():
        assert bradley_terry(split)[model] == pytest.approx(rating, abs=1e-6)


def test_two_half_weight_battles_count_as_one_full_battle():
    battles = draw_battles([900, 1000, 1100, 1150], 2000, seed=3)
    twice = np.repeat(np.arange(len(battles)), 2)
    halves = Battles(battles.models, battles.a[twice], battles.b[twice], battles.score_a[twice],
                     np.full(len(twice), 0.5))
    full, halved = bradley_terry(battles), bradley_terry(halves)
    assert halved == pytest.approx(full, abs=1e-6)
    wr_full, wr_halved = win_rate_against(battles, "m0"), win_rate_against(halves, "m0")
    assert {m: i.point for m, i in wr_halved.items()} == pytest.approx({m: i.point for m, i in wr_full.items()})


def test_anchor_pins_one_model_and_keeps_the_gaps():
    battles = draw_battles([900, 1000, 1100], 3000, seed=4)
    centred, anchored = bradley_terry(battles), bradley_terry(battles, anchor=("m1", 1114.0))
    assert anchored["m1"] == 1114.0
    assert anchored["m2"] - anchored["m0"] == pytest.approx(centred["m2"] - centred["m0"])


def test_a_model_that_always_wins_ranks_first_with_an_interval_above_the_rest():
    rng = np.random.default_rng(5)
    rows = [("ace", rng.choice(["m1", "m2", "m3"]), "model_a") for _ in range(300)]
    pairs = [("m1", "m2"), ("m2", "m3"), ("m3", "m1")] * 100
    rows += [(x, y, rng.choice(["model_a", "model_b", "tie"])) for x, y in pairs]
    intervals = bootstrap(battles_from_rows(rows), rounds=200)
    ace = intervals.pop("ace")
    assert math.isfinite(ace.point) and all(ace.point > other.point for other in intervals.values())
    assert all(significantly_different(ace, other) and ace.low > other.high for other in intervals.values())


# --- bootstrap ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rater", ["bt", "elo"])
def test_bootstrap_is_reproducible_and_each_interval_holds_its_point(rater):
    battles = draw_battles([950, 1000, 1080], 1500, seed=6)
    first = bootstrap(battles, rater=rater, rounds=200, seed=7, level=0.9)
    assert bootstrap(battles, rater=rater, rounds=200, seed=7, level=0.9) == first
    assert bootstrap(battles, rater=rater, rounds=200, seed=8, level=0.9) != first
    point = (bradley_terry if rater == "bt" else elo)(battles)
    for model, interval in first.items():
        assert interval.level == 0.9 and interval.point == point[model]
        assert interval.low < interval.point < interval.high


def test_bt_cell_bootstrap_has_the_spread_of_resampling_rows():
    battles = draw_battles([950, 1000, 1080], 600, seed=9)
    rounds = 300
    cells = bootstrap(battles, rounds=rounds, level=0.5, seed=10)
    rng = np.random.default_rng(11)
    by_rows = np.array([list(bradley_terry(battles.take(rng.integers(0, len(battles), len(battles)))).values())
                        for _ in range(rounds)])
    row_iqr = np.subtract(*np.quantile(by_rows, [0.75, 0.25], axis=0))
    cell_iqr = np.array([cells[m].high - cells[m].low for m in battles.models])
    # Each interquartile range from 300 rounds is good to ~8%: 30% apart would be a real difference.
    assert np.all(np.abs(cell_iqr / row_iqr - 1) < 0.3)


def test_significantly_different_means_no_overlap():
    a, b = Interval(10, 8, 12, 0.95), Interval(15, 12.5, 17, 0.95)
    assert significantly_different(a, b) and significantly_different(b, a)
    assert not significantly_different(a, Interval(13, 11, 15, 0.95))


# --- online Elo -----------------------------------------------------------------------------------


def test_elo_in_the_given_order_equals_fastchats_loop_exactly():
    battles = draw_battles([900, 1000, 1050, 1200, 1010], 3000, seed=12)
    assert elo(battles) == fastchat_style_elo(as_rows(battles))


def test_elo_counts_a_tie_as_half_a_win():
    after = elo(battles_from_rows([("x", "y", "model_a"), ("x", "y", "tie")]))
    ea = 1 / (1 + 10 ** ((998 - 1002) / 400))  # after the win: x 1002, y 998
    assert after["x"] == pytest.approx(1002 + 4 * (0.5 - ea))
    assert after["y"] == pytest.approx(998 - 4 * (0.5 - ea))
    assert elo(battles_from_rows([("x", "y", "tie")])) == {"x": 1000, "y": 1000}


def test_elo_averaged_over_random_orders_forgets_the_given_order():
    # x wins the first 50, y the last 50: in this order y ends far ahead, but x and y are equal.
    rows = [("x", "y", "model_a")] * 50 + [("x", "y", "model_b")] * 50
    in_order, averaged = elo(battles_from_rows(rows)), elo(battles_from_rows(rows), n_orders=400, seed=1)
    assert in_order["y"] - in_order["x"] > 50
    assert abs(averaged["y"] - averaged["x"]) < 5
    assert elo(battles_from_rows(rows), n_orders=400, seed=1) == averaged


# --- win rates ------------------------------------------------------------------------------------


def test_win_rate_against_a_baseline_counts_only_those_battles():
    rows = [
        ("x", "base", "model_a"), ("x", "base", "model_a"),  # x wins twice
        ("base", "x", "model_a"),  # x loses
        ("x", "base", "tie"),  # half
        ("base", "x", "model_b"),  # x wins, weight 0.5
        ("y", "x", "model_a"),  # not against the baseline
        ("z", "base", "model_b"), ("base", "z", "A"),  # z loses both
    ]
    rates = win_rate_against(battles_from_rows(rows, weights=[1, 1, 1, 1, 0.5, 1, 1, 1]), "base", rounds=300)
    assert set(rates) == {"x", "z"}
    assert rates["x"].point == pytest.approx((2 + 0.5 + 0.5) / 4.5)
    assert rates["x"].low <= rates["x"].point <= rates["x"].high
    assert (rates["z"].point, rates["z"].low, rates["z"].high) == (0, 0, 0)


def length_study(length_only: bool, n: int = 1000, seed: int = 13):
    """Lengths where the model is longer 75% of the time, and a judge that either goes by length
    alone, P(prefer model) = sigmoid(3 tanh(z)) with z the standardised length difference (so at
    equal length it is a coin flip: the true LC win rate is 50), or ignores length and prefers the
    model 70% of the time (true LC win rate 70)."""
    rng = np.random.default_rng(seed)
    baseline_len = rng.integers(200, 1200, n).astype(float)
    longer = rng.random(n) < 0.75
    model_len = baseline_len + np.where(longer, 1, -1) * rng.integers(50, 600, n)
    delta = model_len - baseline_len
    p_model = expit(3 * np.tanh(delta / delta.std(ddof=1))) if length_only else np.full(n, 0.7)
    return model_len, baseline_len, (rng.random(n) < p_model).astype(float)


def test_lc_win_rate_discounts_a_judge_that_only_rewards_length():
    result = length_controlled_win_rate(*length_study(length_only=True))
    assert result.win_rate > 60 and result.length_coef > 0
    assert abs(result.lc_win_rate - 50) < abs(result.win_rate - 50) / 2


def test_lc_win_rate_keeps_a_preference_that_ignores_length():
    result = length_controlled_win_rate(*length_study(length_only=False))
    assert result.win_rate == pytest.approx(70, abs=4)
    assert result.lc_win_rate == pytest.approx(result.win_rate, abs=3)
    assert result.difficulty_coef is None


def test_lc_win_rate_with_instruction_difficulty_averages_over_instructions():
    model_len, baseline_len, score = length_study(length_only=False, seed=14)
    difficulty = np.random.default_rng(15).normal(size=len(score))
    result = length_controlled_win_rate(model_len, baseline_len, score, difficulty=difficulty)
    assert result.difficulty_coef is not None
    assert 0 < result.lc_win_rate < 100


# --- single grades --------------------------------------------------------------------------------


def test_mean_grades_per_turn_and_overall_dropping_unparsed():
    rows = [("a", 1, 8), ("a", 1, 6), ("a", 2, 4), ("a", 2, -1), ("b", 2, 9), ("b", 1, 10), ("b", 1, 7)]
    table = mean_grades(rows)
    assert table == {"a": {1: 7.0, 2: 4.0, "all": 6.0}, "b": {1: 8.5, 2: 9.0, "all": 26 / 3}}
    assert list(table["b"]) == [1, 2, "all"]
