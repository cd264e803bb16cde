"""A suite's board at scale: harness.leaderboard.rate before and after the vectorised engines.

Issue 12's goal: 8 models x 3 dimensions x 22,540 battles (all 28 pairs on AlpacaEval's 805
instructions) with 1,000 bootstrap rounds in < 5 s, i.e. what `harness.api.rate` computes for one
suite: per judge, dimension and category ('all' first), BT and Elo (point: 100 shuffled orders)
with bootstrap CIs, and with a baseline, win rates and LC win rates.

One run draws synthetic battles in the shape `leaderboard.rate` takes (judges.merge.Battle, as
harness.battles.battles returns them: ties, a few categories, optionally half-weight battles as
the `half` merge policy makes them) and rates them twice in this process:
  before: tests/test_ratings_fast.reference_board, the code as it stood (one scipy fit per BT
          round, one Elo loop per table and method, L-BFGS-B per LC fit), the reference the
          property tests pin the fast paths to;
  after:  harness.leaderboard.rate.
It prints wall and CPU seconds of each, their ratio, the largest relative difference between the
two boards (expected < 1e-6: the reference's BT stopping tolerance), and per part: building the
tables, BT and Elo bootstrap (Elo with its 100-order point) on the 'all' tables alone and with the
category tables, win rates and LC win rates against a baseline (what a baseline suite adds). CPU
seconds are the fairer number on a shared machine; ratios are measured within the run.

Run (repo root; the reference takes 2-4 minutes at the default size, --no-reference skips it):
    .venv/bin/python bench/board.py [--models 8 --dimensions 3 --questions 805 --categories 5
                                     --rounds 1000 --elo-orders 100 --half-share 0 --no-reference]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package, for the reference

from harness import leaderboard, ratings  # noqa: E402
from harness.ratings import bootstrap_many, win_rate_against  # noqa: E402
from judges.merge import Battle  # noqa: E402

GOAL_S = 5.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--dimensions", type=int, default=3)
    p.add_argument("--questions", type=int, default=805, help="battles per pair and dimension")
    p.add_argument("--categories", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--elo-orders", type=int, default=leaderboard.ELO_ORDERS)
    p.add_argument("--tie-share", type=float, default=0.15)
    p.add_argument("--half-share", type=float, default=0.0,
                   help="share of battles of weight 0.5 (the `half` merge policy; the default policy has none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-reference", action="store_true", help="time the new code only")
    return p.parse_args()


def draw_board(args) -> list[Battle]:
    """Every pair of models on every question and dimension, won per BT of spread-out true ratings."""
    rng = np.random.default_rng(args.seed)
    models = [f"model-{i:02d}" for i in range(args.models)]
    true = np.linspace(-250, 250, args.models) + rng.normal(0, 20, args.models)
    pairs = [(i, j) for i in range(args.models) for j in range(i + 1, args.models)]
    categories = [f"category-{c}" for c in range(args.categories)]
    out = []
    for d in range(args.dimensions):
        for q in range(args.questions):
            category = categories[q % args.categories]
            for i, j in pairs:
                p = 1 / (1 + 10 ** ((true[j] - true[i]) / 400))
                u = rng.random()
                winner = "tie" if u < args.tie_share else ("model_a" if rng.random() < p else "model_b")
                weight = 0.5 if rng.random() < args.half_share else 1.0
                out.append(Battle(models[i], models[j], winner, weight, category, winner != "tie", "judge",
                                  f"dimension-{d}", int(rng.integers(50, 900)), int(rng.integers(50, 900)), "bench",
                                  f"q{q}", 1))
    return out


@contextmanager
def timed(into: dict, name: str):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into[name] = (time.perf_counter() - wall, time.process_time() - cpu)


def header(title: str) -> None:
    print(f"\n== {title} ==  loadavg(1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def show(parts: dict, total: str) -> None:
    for name, (wall, cpu) in parts.items():
        marker = "  " if name != total else "=>"
        print(f" {marker} {name:<34} {wall:7.2f} s wall {cpu:7.2f} s CPU")


def reference_parts(battles, args) -> dict:
    """The reference board, part by part (same calls as reference_board, timed separately)."""
    from tests.test_ratings_fast import reference_bootstrap, reference_l1_logistic

    parts = {}
    with timed(parts, "tables (Python)"):
        tables = leaderboard._tables(battles, categories=True)
    for method, extra in (("bt", {}), ("elo", {"n_orders": args.elo_orders})):
        for scope, chosen in (("all", [t for t in tables if t.category == "all"]),
                              ("categories", [t for t in tables if t.category != "all"])):
            with timed(parts, f"{method} bootstrap, {scope} tables"):
                for t in chosen:
                    reference_bootstrap(t.rated, method, args.rounds, 0, 0.95, **extra)
    baseline = battles[0].model_a
    with patch.object(ratings, "_l1_logistic", reference_l1_logistic), \
            timed(parts, f"LC win rates vs {baseline} (all tables)"):
        for t in tables:
            leaderboard._length_controlled(t.judge_name, t.dimension, t.category, t.battles, baseline)
    return parts


def new_parts(battles, args) -> dict:
    parts = {}
    with timed(parts, "tables (Python)"):
        tables = leaderboard._tables(battles, categories=True)
    for method, extra in (("bt", {}), ("elo", {"n_orders": args.elo_orders})):
        for scope, chosen in (("all", [t for t in tables if t.category == "all"]), ("all + categories", tables)):
            with timed(parts, f"{method} bootstrap, {scope} tables"):
                bootstrap_many([t.rated for t in chosen], method, args.rounds, 0, 0.95, **extra)
    baseline = battles[0].model_a
    with timed(parts, f"win rates vs {baseline} (all tables)"):
        for t in tables:
            win_rate_against(t.rated, baseline, rounds=args.rounds, seed=0, level=0.95)
    with timed(parts, f"LC win rates vs {baseline} (all tables)"):
        for t in tables:
            leaderboard._length_controlled(t.judge_name, t.dimension, t.category, t.battles, baseline)
    return parts


def largest_difference(new, old) -> float:
    assert [(r.judge_name, r.dimension, r.category, r.method, r.model) for r in new] == \
           [(r.judge_name, r.dimension, r.category, r.method, r.model) for r in old]
    worst = 0.0
    for n, o in zip(new, old):
        for name in ("rating", "ci_low", "ci_high"):
            x, y = getattr(n, name), getattr(o, name)
            if y is not None:
                worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
    return worst


def main() -> None:
    args = parse_args()
    battles = draw_board(args)
    header("battles")
    per_dimension = len(battles) // args.dimensions
    print(f"   {args.models} models x {args.dimensions} dimensions x {per_dimension:,} battles "
          f"({len(battles):,} in all), {args.categories} categories, "
          f"{sum(b.winner == 'tie' for b in battles) / len(battles):.1%} ties, "
          f"{sum(b.weight != 1 for b in battles) / len(battles):.1%} half weights; "
          f"{args.rounds} rounds, Elo point over {args.elo_orders} orders")

    # battle-level BT intervals: what the "before" engines compute, so the boards can be compared
    rate = dict(rounds=args.rounds, level=0.95, seed=0, categories=True, elo_orders=args.elo_orders, ci="battle")
    header("after: harness.leaderboard.rate")
    after = {}
    with timed(after, "leaderboard.rate (categories=True)"):
        new_board = leaderboard.rate(battles, **rate)
    with timed(after, "leaderboard.rate (categories=False)"):
        leaderboard.rate(battles, **{**rate, "categories": False})
    after.update(new_parts(battles, args))
    show(after, "leaderboard.rate (categories=True)")

    if args.no_reference:
        new_wall = after["leaderboard.rate (categories=True)"][0]
        print(f"\n   goal < {GOAL_S:.0f} s: {'met' if new_wall < GOAL_S else 'NOT met'} ({new_wall:.2f} s wall)")
        return
    from tests.test_ratings_fast import reference_board

    header("before: the reference (tests/test_ratings_fast.reference_board)")
    before = {}
    with timed(before, "reference_board (categories=True)"):
        old_board = reference_board(battles, **rate)
    before.update(reference_parts(battles, args))
    show(before, "reference_board (categories=True)")

    header("summary")
    (new_wall, new_cpu), (old_wall, old_cpu) = after["leaderboard.rate (categories=True)"], \
        before["reference_board (categories=True)"]
    print(f"   board before {old_wall:.2f} s wall / {old_cpu:.2f} s CPU; after {new_wall:.2f} s wall / "
          f"{new_cpu:.2f} s CPU; speed-up {old_wall / new_wall:.1f}x wall, {old_cpu / new_cpu:.1f}x CPU")
    for part in ("bt", "elo"):
        old = sum(before[f"{part} bootstrap, {scope} tables"][1] for scope in ("all", "categories"))
        new = after[f"{part} bootstrap, all + categories tables"][1]
        print(f"   {part} bootstrap, every table: {old:.2f} -> {new:.2f} s CPU ({old / new:.1f}x)")
    lc = next(name for name in after if name.startswith("LC win rates"))
    print(f"   {lc} (a baseline suite's extra): {before[lc][1]:.2f} -> {after[lc][1]:.2f} s CPU "
          f"({before[lc][1] / after[lc][1]:.1f}x)")
    print(f"   goal < {GOAL_S:.0f} s: {'met' if new_wall < GOAL_S else 'NOT met'} ({new_wall:.2f} s wall)")
    print(f"   largest relative difference between the boards: {largest_difference(new_board, old_board):.2e}")


if __name__ == "__main__":
    main()
