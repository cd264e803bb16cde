"""The evaluator leaderboard and a judge's card, shaped from stored judge-eval metrics.

Pure functions over the rows of harness.store.judge_eval.judge_eval_results (one per judge,
benchmark, subset and metric, the latest run), so the app's Judges page, `harness.api` and the CLI
show the same numbers: one row per judge x benchmark, like AlpacaEval's evaluator leaderboard, and
per judge every metric per benchmark and subset, with a warning where the judge is at or below chance.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

# metric -> short label, in the order a card lists them
METRIC_LABELS = {
    "accuracy": "accuracy (mean of both orders)",
    "accuracy_order1": "accuracy, first order shown",
    "accuracy_order2": "accuracy, swapped order",
    "pair_accuracy": "pair accuracy (both orders right)",
    "net_accuracy": "net accuracy (JudgeBench)",
    "positional_agreement": "positional agreement",
    "accuracy_3way": "3-way accuracy (merged)",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro F1",
    "cohen_kappa": "Cohen's kappa",
    "members_alpha": "members' Krippendorff's alpha (panel)",
    "agreement_with_ties": "human agreement, with ties",
    "agreement_without_ties": "human agreement, without ties",
    "tie_rate": "tie rate",
    "parse_failure_rate": "parse failures",
    "p_prefer_first": "P(prefer first)",
    "p_prefer_longer": "P(prefer longer)",
    "tokens_per_1000": "tokens per 1,000 calls",
    "seconds_per_1000": "seconds per 1,000 calls",
    "cost_per_1000": "USD per 1,000 calls",
}
PER_1000 = ("tokens_per_1000", "seconds_per_1000", "cost_per_1000")
BOARD_METRICS = ("accuracy", "accuracy_3way", "agreement_with_ties", "pair_accuracy", "positional_agreement",
                 "p_prefer_longer", "p_prefer_first", "parse_failure_rate", "cost_per_1000", "seconds_per_1000")
ALL = "all"


def chance(metric: dict | None) -> str | None:
    """Where a 2-way accuracy stands against a coin: 'at' when its interval contains 0.5 (not
    distinguishable from one), 'below' when the whole interval lies under 0.5 (worse than a coin: it
    picks the losing answer, or ties where a coin would pick, too often), else None."""
    if not metric or metric.get("ci_low") is None or metric.get("ci_high") is None:
        return None
    if metric["ci_high"] < 0.5:
        return "below"
    return "at" if metric["ci_low"] <= 0.5 <= metric["ci_high"] else None


def chance_warning(judge: str, benchmark: str, metric: dict) -> str:
    """The warning for a metric that `chance` places at or below chance."""
    where = chance(metric)
    tail = "contains 50%" if where == "at" else "lies below 50%: worse than a coin (a tie counts as a miss)"
    return (f"{judge} is {where} chance on {benchmark}: accuracy on pairs with a winner {metric['value']:.1%}, "
            f"{metric['level']:.0%} CI [{metric['ci_low']:.1%}, {metric['ci_high']:.1%}] {tail}")


def _grouped(rows: Iterable[dict]) -> dict[tuple[str, str], dict[str, dict[str, dict]]]:
    """(judge, benchmark) -> subset -> metric -> row."""
    out: dict[tuple[str, str], dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        out[(r["judge"], r["benchmark"])][r.get("subset", ALL)][r["metric"]] = r
    return out


def leaderboard(rows: Iterable[dict]) -> list[dict]:
    """One entry per judge x benchmark (subset 'all'): the run's facts and, per BOARD_METRICS metric,
    its row (value, ci_low, ci_high, ...) or None; sorted by benchmark, then accuracy, best first."""
    board = []
    for (judge, benchmark), by_subset in _grouped(rows).items():
        metrics = by_subset.get(ALL, {})
        any_row = next(iter(metrics.values()), None) or next(iter(next(iter(by_subset.values())).values()))
        entry = {"judge": judge, "benchmark": benchmark, "source": any_row["source"], "n_items": any_row["n_items"],
                 "n_calls": any_row["n_calls"], "three_way": any_row.get("three_way"),
                 "notes": list(any_row.get("notes") or []), "finished_at": any_row["finished_at"],
                 "chance": chance(metrics.get("accuracy"))}
        entry |= {name: metrics.get(name) for name in BOARD_METRICS}
        board.append(entry)

    def headline(e: dict) -> float:
        row = e["accuracy"] or e["accuracy_3way"] or e["agreement_with_ties"]
        return -(row["value"] if row and row["value"] is not None else -1.0)

    return sorted(board, key=lambda e: (e["benchmark"], headline(e), e["judge"]))


def judges_of(rows: Iterable[dict]) -> list[str]:
    return sorted({r["judge"] for r in rows})


def card(rows: Iterable[dict], judge: str) -> dict:
    """A judge's card: its notes, the at-chance warnings, and per benchmark every metric per subset
    (subset 'all' first) as rows; empty benchmarks when the judge has no stored run."""
    rows = [r for r in rows if r["judge"] == judge]
    benchmarks, warnings, notes = [], [], []
    for (_, benchmark), by_subset in sorted(_grouped(rows).items()):
        order = [ALL] + sorted(s for s in by_subset if s != ALL)
        subsets = {s: dict(sorted(by_subset[s].items(), key=lambda kv: _rank(kv[0]))) for s in order if s in by_subset}
        first = next(iter(next(iter(subsets.values())).values()))
        benchmarks.append({"benchmark": benchmark, "n_items": first["n_items"], "n_calls": first["n_calls"],
                           "n_cached": first["n_cached"], "source": first["source"], "subsets": subsets,
                           "finished_at": first["finished_at"]})
        for subset, metrics in subsets.items():
            if chance(metrics.get("accuracy")):
                where = benchmark if subset == ALL else f"{benchmark} / {subset}"
                warnings.append(chance_warning(judge, where, metrics["accuracy"]))
        notes += [n for n in (first.get("notes") or []) if n not in notes]
    return {"judge": judge, "notes": notes, "warnings": warnings, "benchmarks": benchmarks}


def _rank(metric: str) -> int:
    order = list(METRIC_LABELS)
    return order.index(metric) if metric in order else len(order)


def format_value(metric: str, value: float | None) -> str:
    """A metric's value as shown: rates in percent, kappa as a number, per-1,000 figures as amounts."""
    if value is None:
        return "n/a"
    if metric in ("cohen_kappa", "members_alpha") or metric.startswith("kappa: "):  # kappa: X vs Y, a panel's
        return f"{value:.3f}"
    if metric == "cost_per_1000":
        return f"${value:.4f}"
    if metric in PER_1000:
        return f"{value:,.1f}"
    return f"{value:.1%}"


def format_ci(metric: str, row: dict | None) -> str:
    if not row or row.get("ci_low") is None:
        return ""
    return f"[{format_value(metric, row['ci_low'])}, {format_value(metric, row['ci_high'])}]"
