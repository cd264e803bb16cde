"""Train-then-evaluate: run a suite with the trained model (and its parent) added, then compare the
two: Bradley-Terry rating difference with a joint bootstrap CI per judge and dimension, the
head-to-head win rate, and closed-set metric deltas where the suite has lm-eval results. Every
comparison is stored in `parent_comparisons`; `lineage` reads the tree back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.config import HFModelSpec, Suite, load_suite
from harness.errors import HarnessError
from harness.store import Store
from harness.store import training as training_sql
from harness.store.queries import now

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")  # harness.config's model name pattern


@dataclass(frozen=True)
class Comparison:
    judge_name: str  # a judge, or 'lm-eval'
    dimension: str  # a judged dimension, or a closed-set task
    method: str  # bt | win_rate | a closed-set metric
    delta: float  # model minus parent (win_rate: the model's share of head-to-head battles)
    ci_low: float | None
    ci_high: float | None
    battles: int = 0


@dataclass
class EvalReport:
    model: str
    parent: str
    suite: Suite
    comparisons: list[Comparison] = field(default_factory=list)
    ratings: list = field(default_factory=list)  # harness.leaderboard.RatingRow, category 'all'
    run_summary: object = None


def _stored_spec(store: Store, name: str) -> dict | None:
    row = training_sql.latest_model(store, name)
    return json.loads(row["spec_json"]) if row else None


def trained_row(store: Store, model: str) -> dict:
    row = training_sql.trained_row(store, model)
    if row is None:
        raise HarnessError(f"{store.path}: '{model}' is not a trained model: train it with `harness train`")
    return row


def suite_name_of(parent: str) -> str:
    """A parent given as a folder path is not a valid suite model name: it runs as 'parent:<folder name>'."""
    return parent if NAME.match(parent) else f"parent:{Path(parent).name}"


def suite_with(suite: Suite, store: Store, model: str, parent: str) -> Suite:
    """The suite plus the trained model and its parent (as stored), each replacing a same-named entry."""
    models = [m.model_dump() for m in suite.models]
    for stored, name in ((parent, suite_name_of(parent)), (model, model)):
        spec = _stored_spec(store, stored) or HFModelSpec(name=name, model=stored).model_dump()
        spec["name"] = name
        models = [m for m in models if m["name"] != name] + [spec]
    return Suite.model_validate(suite.model_dump() | {"models": models})


def evaluate_against_parent(model: str, suite_path: str | Path, store: Store, progress=None) -> EvalReport:
    """Generate (and judge) what is missing for the trained model and its parent, rate, compare."""
    from harness import api

    parent = trained_row(store, model)["parent"]
    base_suite, base_dir = load_suite(suite_path)
    suite = suite_with(base_suite, store, model, parent)
    report = EvalReport(model, parent, suite)
    run = api.run(suite, store, base_dir=base_dir, progress=progress, stages=("generate", "judge", "rate"))
    report.run_summary = run.generation
    report.ratings = run.board.rows_for("all") if run.board else []
    shown = suite_name_of(parent)
    report.comparisons = rating_deltas(store, suite, model, shown)
    _store_comparisons(store, report, report.comparisons)  # kept even if the closed-set run fails
    if suite.closed_set:  # lm-eval tasks of the suite, skipped where already stored
        api.run(suite, store, base_dir=base_dir, progress=progress, stages=("closed",))
    closed = closed_set_deltas(store, suite.name, model, shown)
    _store_comparisons(store, report, closed)
    report.comparisons += closed
    return report


def rating_deltas(store: Store, suite: Suite, model: str, parent: str) -> list[Comparison]:
    """Per judge and dimension: BT(model) - BT(parent) with a percentile CI from the same bootstrap
    rounds (the two ratings are correlated, so their separate CIs cannot be subtracted), and the
    model's head-to-head win rate against the parent (ties half) with a bootstrap CI."""
    from harness.battles import battles, for_suite
    from harness.ratings import _bootstrap_bt, battles_from_rows

    cfg = suite.ratings
    groups: dict[tuple[str, str], list] = {}
    for b in battles(store, for_suite(suite), cfg.merge):
        groups.setdefault((b.judge_name, b.dimension), []).append(b)
    quantiles = [(1 - cfg.level) / 2, (1 + cfg.level) / 2]
    out = []
    for (judge, dimension), battles in sorted(groups.items()):
        rated = battles_from_rows([(b.model_a, b.model_b, b.winner) for b in battles], [b.weight for b in battles])
        if model not in rated.models or parent not in rated.models:
            continue
        point, samples = _bootstrap_bt(rated, cfg.bootstrap_rounds, np.random.default_rng(cfg.seed))
        m, p = rated.models.index(model), rated.models.index(parent)
        low, high = np.quantile(samples[:, m] - samples[:, p], quantiles)
        out.append(Comparison(judge, dimension, "bt", float(point[m] - point[p]), float(low), float(high),
                              len(battles)))
        direct = [b for b in battles if {b.model_a, b.model_b} == {model, parent}]
        if direct:
            scores, weights = np.array([b.score_for(model) for b in direct]), np.array([b.weight for b in direct])
            rng = np.random.default_rng(cfg.seed)
            draws = rng.integers(0, len(direct), (cfg.bootstrap_rounds, len(direct)))
            rates = (scores[draws] * weights[draws]).sum(1) / weights[draws].sum(1)
            low, high = np.quantile(rates, quantiles)
            out.append(Comparison(judge, dimension, "win_rate", float((scores * weights).sum() / weights.sum()),
                                  float(low), float(high), len(direct)))
    return out


def closed_set_deltas(store: Store, suite_name: str, model: str, parent: str) -> list[Comparison]:
    """Metric deltas on every lm-eval task both models have results for in this suite (latest
    result each), with a normal-approximation 95% CI from the two standard errors."""
    from harness.store.closed import closed_scores

    latest = {(r["model"], r["task"], r["metric"], r["filter"]): (r["value"], r["stderr"], r["n_samples"])
              for r in closed_scores(store, suite_name, [model, parent]) if r["value"] is not None}
    out = []
    for (who, task, metric, filt), (value, se, n) in sorted(latest.items()):
        other = latest.get((parent, task, metric, filt))
        if who != model or other is None:
            continue
        delta = value - other[0]
        half = 1.96 * float(np.hypot(se, other[1])) if se is not None and other[1] is not None else None
        name = metric if filt == "none" else f"{metric},{filt}"
        out.append(Comparison("lm-eval", task, name, delta, delta - half if half is not None else None,
                              delta + half if half is not None else None, n))
    return out


def _store_comparisons(store: Store, report: EvalReport, comparisons: list[Comparison]) -> None:
    if not comparisons:
        return
    stamp = now()
    training_sql.save_comparisons(store, [(report.model, report.parent, report.suite.name, c.judge_name, c.dimension,
                                           c.method, c.delta, c.ci_low, c.ci_high, stamp) for c in comparisons])


# --- lineage ----------------------------------------------------------------------------------------
@dataclass
class LineageNode:
    name: str
    row: dict | None  # trained_models row; None for a root (catalog model, folder, untrained model)
    children: list["LineageNode"] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)  # latest parent_comparisons rows
    losses: list[float] = field(default_factory=list)


def lineage(store: Store, model: str) -> LineageNode:
    """The whole family tree `model` belongs to, from its root ancestor down."""
    rows, known, comparisons, curves = training_sql.lineage_rows(store)
    trained = {r["model"]: r for r in rows}
    if model not in trained and model not in known and model not in {r["parent"] for r in trained.values()}:
        raise HarnessError(f"{store.path}: no model named '{model}': see `harness models --db {store.path}`")
    root, seen = model, set()
    while root in trained and root not in seen:  # walk up; `seen` guards against a renamed cycle
        seen.add(root)
        root = trained[root]["parent"]

    def build(name: str) -> LineageNode:
        node = LineageNode(name, trained.get(name), comparisons=[c for c in comparisons if c["model"] == name],
                           losses=curves.get(name, []))
        node.children = [build(child) for child, row in sorted(trained.items())
                         if row["parent"] == name and child != name]
        return node

    return build(root)
