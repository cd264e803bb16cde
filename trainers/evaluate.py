"""Train-then-evaluate: run a suite with the trained model (and its parent) added, then compare the
two: per judge and dimension the paired comparison of harness.api.compare (question-clustered CIs
of the BT difference and of the per-question paired win rate, permutation-test p-values, and the
minimum detectable effect at 80% power), and closed-set metric deltas where the suite has lm-eval
results. Every comparison is stored in `parent_comparisons`; `lineage` reads the tree back.
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
    delta: float  # model minus parent (win_rate: the model's paired, question-averaged win rate)
    ci_low: float | None
    ci_high: float | None
    battles: int = 0  # bt: battles in the panel; win_rate: questions paired; closed set: samples
    p_value: float | None = None  # bt: BT permutation test; win_rate: per-question permutation test
    mde: float | None = None  # minimum detectable effect at 80% power (bt: points; win_rate: gap from 0.5)


@dataclass
class EvalReport:
    model: str
    parent: str
    suite: Suite
    comparisons: list[Comparison] = field(default_factory=list)
    ratings: list = field(default_factory=list)  # harness.leaderboard.RatingRow, category 'all'
    paired: list = field(default_factory=list)  # harness.api.PanelComparison: model vs parent, by question
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
    report.paired = compare_with_parent(store, suite, model, shown)
    report.comparisons = rating_deltas(report.paired)
    _store_comparisons(store, report, report.comparisons)  # kept even if the closed-set run fails
    if suite.closed_set:  # lm-eval tasks of the suite, skipped where already stored
        api.run(suite, store, base_dir=base_dir, progress=progress, stages=("closed",))
    closed = closed_set_deltas(store, suite.name, model, shown)
    _store_comparisons(store, report, closed)
    report.comparisons += closed
    return report


def compare_with_parent(store: Store, suite: Suite, model: str, parent: str) -> list:
    """harness.api.compare(model, parent) on the suite's battles, one PanelComparison per judge and
    dimension where both fought; [] when they have no judged battles (a suite without judges)."""
    from harness import api
    from harness.battles import battles, for_suite

    fought = {m for b in battles(store, for_suite(suite), suite.ratings.merge) for m in (b.model_a, b.model_b)}
    if not {model, parent} <= fought:
        return []
    return api.compare(model, parent, suite, store).panels


def rating_deltas(panels: list) -> list[Comparison]:
    """Per panel of `compare_with_parent`: BT(model) - BT(parent) with its question-clustered CI
    (both ratings from the same bootstrap rounds, so the difference's interval is not the two
    intervals subtracted) and the BT permutation test; the paired win rate of the model over the
    parent (ties half; through common opponents on questions where they did not meet) with its
    question-clustered CI and the per-question permutation test; each with its 80%-power MDE."""
    out = []
    for panel in panels:
        p = panel.paired
        out.append(Comparison(panel.judge_name, panel.dimension, "bt", p.bt_difference, p.bt_low, p.bt_high,
                              panel.battles, p.p_bt, p.mde_bt))
        if p.questions:
            out.append(Comparison(panel.judge_name, panel.dimension, "win_rate", p.win_rate, p.win_rate_low,
                                  p.win_rate_high, p.questions, p.p_permutation, p.mde_win_rate))
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
                                           c.method, c.delta, c.ci_low, c.ci_high, stamp, c.p_value, c.mde)
                                          for c in comparisons])


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
