"""A suite's board: rating rows from battles and grades. Pure functions; nothing here reads or
writes the store (harness.api does: battles from harness.battles in, rows to harness.store.ratings).

One row per (judge, dimension, category, method, model): BT and Elo with bootstrap CIs, win rate
and length-controlled win rate against a baseline, and MT-Bench-style mean grades.

"Significantly above the next model" comes from `paired_marks` alone (the terminal board, the
app's chart and its How sure table all call it): per panel, a permutation test of each model's BT
difference with the one ranked just below it (their names swapped within random halves of the
questions, so the test is paired by question), Holm-corrected over the adjacent pairs
(harness.stats.paired). CI overlap is not a test, so nothing here marks by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.ratings import (
    Battles,
    battles_from_rows,
    bootstrap_many,
    length_controlled_win_rate,
    mean_grades,
    win_rate_against,
)
from judges.merge import Battle

METHODS = ("bt", "elo")
# Online Elo depends on battle order; the point estimate averages this many shuffled orders.
ELO_ORDERS = 100


@dataclass(frozen=True)
class RatingRow:
    judge_name: str
    dimension: str
    category: str
    method: str
    model: str
    rating: float
    ci_low: float | None
    ci_high: float | None
    level: float | None
    battles: int  # battles of this model in the panel (both when it is one of a pair)
    ci_kind: str | None = None  # what the bootstrap resampled: 'question' or 'battle'; None: no interval


def _by_panel(battles: list[Battle]) -> dict[tuple[str, str], list[Battle]]:
    groups: dict[tuple[str, str], list[Battle]] = {}
    for battle in battles:
        groups.setdefault((battle.judge_name, battle.dimension), []).append(battle)
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class _Table:
    """The battles behind one (judge, dimension, category) block of the board."""

    judge_name: str
    dimension: str
    category: str
    battles: list[Battle]
    rated: Battles
    counts: dict[str, int]  # battles per model


def _tables(battles: list[Battle], categories: bool) -> list[_Table]:
    """Per judge and dimension, the 'all' table, then (with categories) one per category in name
    order. A category's battles are rows of the 'all' table, over the models that fight in it."""
    tables = []
    for (judge, dimension), group in _by_panel(battles).items():
        rated = battles_from_rows([(b.model_a, b.model_b, b.winner) for b in group], [b.weight for b in group])
        tables.append(_table(judge, dimension, "all", group, rated))
        if categories:
            category = np.array([b.category for b in group], dtype=object)
            for name in sorted(set(category.tolist())):
                rows = np.flatnonzero(category == name)
                tables.append(_table(judge, dimension, name, [group[i] for i in rows],
                                     _fighting_models_only(rated.take(rows))))
    return tables


def _table(judge: str, dimension: str, category: str, battles: list[Battle], rated: Battles) -> _Table:
    played = _battles_per_model(rated)
    return _Table(judge, dimension, category, battles, rated,
                  {model: int(n) for model, n in zip(rated.models, played) if n})


def _battles_per_model(rated: Battles) -> np.ndarray:
    """Per model index, the battles it fights (in either position)."""
    n = len(rated.models)
    return np.bincount(rated.a, minlength=n) + np.bincount(rated.b, minlength=n)


def _fighting_models_only(rated: Battles) -> Battles:
    """The same battles over only the models that fight in them, kept in their (sorted) order:
    what battles_from_rows makes of these battles on their own."""
    present = np.flatnonzero(_battles_per_model(rated))
    index = np.full(len(rated.models), -1)
    index[present] = np.arange(len(present))
    return Battles(tuple(rated.models[i] for i in present), index[rated.a], index[rated.b], rated.score_a,
                   rated.weight)


def rate(battles: list[Battle], rounds: int, level: float, seed: int = 0, baseline: str | None = None,
         categories: bool = True, elo_orders: int = ELO_ORDERS, ci: str = "question") -> list[RatingRow]:
    """BT and Elo with bootstrap CIs per judge, dimension and category ('all' first); with a
    baseline, each model's win rate and LC win rate against it.

    Every table's bootstrap is seeded with `seed`, as if rated alone; the tables are rated together
    (`bootstrap_many`), so the online-Elo loop runs once for the whole board, not once per table.
    ci="question" (the default, the suite's ratings.ci): BT intervals resample questions with all
    their battles (harness.stats.clustered: battles on one question are correlated, so battle-level
    intervals are too narrow). ci="battle": FastChat's battle-level BT intervals. Elo and win-rate
    intervals resample battles either way; each row's `ci_kind` says which."""
    if ci not in ("battle", "question"):
        raise ValueError(f"ci must be 'battle' or 'question', got {ci!r}")
    tables = _tables(battles, categories)
    by_method = {method: bootstrap_many([t.rated for t in tables], method, rounds, seed, level,
                                        **({"n_orders": elo_orders} if method == "elo" else {}))
                 for method in METHODS if method == "elo" or ci == "battle"}
    if ci == "question":
        from harness.stats import clustered
        from harness.stats.frame import from_battles

        by_method["bt"] = [clustered.bootstrap(from_battles(t.battles), "question", rounds, seed).intervals(level)
                           for t in tables]
    out: list[RatingRow] = []
    for i, t in enumerate(tables):
        for method in METHODS:
            kind = ci if method == "bt" else "battle"
            out += [RatingRow(t.judge_name, t.dimension, t.category, method, model, iv.point, iv.low, iv.high,
                              iv.level, t.counts.get(model, 0), kind) for model, iv in by_method[method][i].items()]
        if baseline is not None and baseline in t.rated.models:  # AlpacaEval-style
            rates = win_rate_against(t.rated, baseline, rounds=rounds, seed=seed, level=level)
            out += [RatingRow(t.judge_name, t.dimension, t.category, "win_rate", model, iv.point, iv.low, iv.high,
                              iv.level, t.counts.get(model, 0), "battle") for model, iv in rates.items()]
            out += _length_controlled(t.judge_name, t.dimension, t.category, t.battles, baseline)
    return out


def _length_controlled(judge, dimension, category, battles, baseline) -> list[RatingRow]:
    """AlpacaEval-2-style LC win rate vs the baseline (a fraction, like win_rate; no CI). Under the
    `half` policy the two half battles of a pair enter as two observations."""
    rows = []
    for model in sorted({b.model_a for b in battles} | {b.model_b for b in battles} - {baseline}):
        mine = [b for b in battles if {b.model_a, b.model_b} == {model, baseline}]
        if len(mine) < 2:
            continue
        model_is_a = [b.model_a == model for b in mine]
        model_len = [b.len_a if a else b.len_b for b, a in zip(mine, model_is_a)]
        base_len = [b.len_b if a else b.len_a for b, a in zip(mine, model_is_a)]
        score = [b.score_for(model) for b in mine]
        lc = length_controlled_win_rate(model_len, base_len, score)
        rows.append(RatingRow(judge, dimension, category, "lc_win_rate", model, lc.lc_win_rate / 100,
                              None, None, None, len(mine)))
    return rows


def grade_rows(grades: list[tuple[str, str, int, float]]) -> list[RatingRow]:
    """MT-Bench-style mean grade per judge, model and turn ('all' too) from (judge, model, turn, score)."""
    out = []
    for judge in sorted({g[0] for g in grades}):
        mine = [(m, t, s) for j, m, t, s in grades if j == judge]
        for model, by_turn in mean_grades(mine).items():
            n = sum(1 for m, _, _ in mine if m == model)
            out += [RatingRow(judge, "overall", f"turn {t}" if t != "all" else "all", "mean_grade", model,
                              v, None, None, None, n) for t, v in by_turn.items()]
    return out


def win_rate_of(battles: list[Battle], model: str) -> tuple[float, float] | None:
    """(weighted win rate with ties half, total weight) of `model` over `battles`, None without any."""
    mine = [b for b in battles if model in (b.model_a, b.model_b)]
    total = sum(b.weight for b in mine)
    return (sum(b.weight * b.score_for(model) for b in mine) / total, total) if total else None


# "Significantly above the next model": paired tests, Holm-corrected over the adjacent pairs.
PAIRED_ALPHA = 0.05


def mark_meaning(alpha: float = PAIRED_ALPHA) -> str:
    """What the mark means, in the words every surface that shows it uses."""
    return (f"above the next model: BT permutation test (the two names swapped within random halves of the "
            f"questions), Holm-corrected across adjacent pairs, alpha={alpha:g}")


def paired_marks(battles: list[Battle], alpha: float = PAIRED_ALPHA, seed: int = 0) -> dict[tuple[str, str], list]:
    """Per (judge, dimension) panel, in BT order (best first): harness.stats.paired.Adjacent for each
    model and the one just below it: the permutation test of their BT difference (names swapped
    within questions) and its Holm-adjusted p-value across the panel's adjacent pairs; `significant`
    is the leaderboard's mark."""
    from harness.ratings import bradley_terry
    from harness.stats import paired
    from harness.stats.frame import from_battles

    out = {}
    for panel, group in _by_panel(battles).items():
        frame = from_battles(group)
        points = bradley_terry(frame.battles())
        order = sorted(points, key=lambda m: (-points[m], m))
        out[panel] = paired.adjacent(frame, order=order, alpha=alpha, seed=seed)
    return out
