"""harness.stats.quality: every metric's exact value on hand-made examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.errors import DataError
from harness.ratings import Interval
from harness.stats import quality
from harness.stats.frame import from_arrays


def test_separability_counts_pairs_whose_intervals_do_not_overlap():
    intervals = {"a": Interval(1100, 1080, 1120, 0.95), "b": Interval(1050, 1030, 1079, 0.95),
                 "c": Interval(1040, 1020, 1060, 0.95), "d": Interval(900, 880, 920, 0.95)}
    # Apart: a-b, a-c, a-d, b-d, c-d; overlapping: b-c.
    assert quality.separability(intervals) == 5 / 6
    assert math.isnan(quality.separability({"a": intervals["a"]}))
    assert quality.separability_tested({("a", "b"): True, ("a", "c"): False, ("b", "c"): False, ("a", "d"): True}) == 0.5


def test_spearman_and_kendall_with_ties_by_hand():
    # Ranks of x with a tie: 1, 2.5, 2.5, 4; of y: 1, 3, 2, 4. Centred dot 4.5 over sqrt(4.5 * 5).
    assert quality.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5), rel=1e-12)
    # 5 concordant pairs, 0 discordant, 1 tied in x only: 5 / sqrt(5 * 6).
    assert quality.kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(5 / math.sqrt(30), rel=1e-12)
    assert quality.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert quality.kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0


def test_agreement_with_a_reference_over_the_models_both_rate():
    ours = {"a": 1100.0, "b": 1050.0, "c": 1000.0, "d": 900.0, "mine": 950.0}
    reference = {"a": 1300.0, "b": 1200.0, "c": 1250.0, "d": 1100.0, "theirs": 1000.0}
    agreed = quality.agreement(ours, reference)
    assert agreed.models == ("a", "b", "c", "d")
    assert agreed.spearman == pytest.approx(0.8) and agreed.kendall == pytest.approx(4 / 6)
    assert agreed.pairs_same_order == 5 / 6
    assert agreed.only_here == ("mine",) and agreed.only_reference == ("theirs",)


def test_read_reference_json_and_csv(tmp_path):
    (tmp_path / "arena.json").write_text(json.dumps({"a": 1300, "b": 1250.5}))
    (tmp_path / "list.json").write_text(json.dumps([{"model": "a", "rating": 1}, {"model": "b", "rating": 2}]))
    (tmp_path / "arena.csv").write_text("model,elo,votes\na,1300,10\nb,1250.5,20\n")
    assert quality.read_reference(tmp_path / "arena.json") == {"a": 1300.0, "b": 1250.5}
    assert quality.read_reference(tmp_path / "list.json") == {"a": 1.0, "b": 2.0}
    assert quality.read_reference(tmp_path / "arena.csv") == {"a": 1300.0, "b": 1250.5}
    (tmp_path / "bad.csv").write_text("name,value\na,1\n")
    for path in (tmp_path / "bad.csv", tmp_path / "missing.json"):
        with pytest.raises(DataError) as err:
            quality.read_reference(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_brier_score_by_hand():
    assert quality.brier([0.8, 0.5], [1.0, 0.5]) == pytest.approx(0.02)
    assert quality.brier([0.8, 0.5], [1.0, 0.0], [3.0, 1.0]) == pytest.approx((3 * 0.04 + 0.25) / 4)


def test_held_out_brier_predicts_each_fold_from_the_others():
    # q0: A beats B 3 times in 4; q1: 1 win in 2. Two folds = the two questions. q0's battles are
    # predicted from q1 (p = 1/2: 0.25 each), q1's from q0 (p = 3/4: (1/16 + 9/16) / 2 each).
    frame = from_arrays(["A", "B"], [0] * 6, [1] * 6, [1.0, 1.0, 1.0, 0.0, 1.0, 0.0], None, [0, 0, 0, 0, 1, 1])
    out = quality.held_out_brier(frame, folds=2, penalty_c=None)
    assert out.brier == pytest.approx((4 * 0.25 + 2 * 0.3125) / 6, rel=1e-9)
    assert out.brier_coin == 0.25 and out.battles == 6 and out.folds == 2


def test_held_out_brier_beats_the_coin_on_a_real_signal():
    rng = np.random.default_rng(0)
    n, theta = 4000, np.linspace(-1.5, 1.5, 6)
    a = rng.integers(0, 6, n)
    b = (a + rng.integers(1, 6, n)) % 6
    p = 1 / (1 + np.exp(-(theta[a] - theta[b])))
    frame = from_arrays([f"m{i}" for i in range(6)], a, b, (rng.random(n) < p).astype(float), None,
                        rng.integers(0, 200, n))
    out = quality.held_out_brier(frame, folds=5)
    expected = float(np.mean(p * (1 - p)))  # the Brier score of the true probabilities
    print(f"held-out Brier {out.brier:.4f}, true-probability Brier {expected:.4f}, coin {out.brier_coin:.4f}")
    assert out.brier == pytest.approx(expected, abs=0.01)
