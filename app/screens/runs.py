"""Runs and lineage: run history with status and timings; trained models as a tree with what
changed against their parents (the Bradley-Terry difference, the head-to-head win rate, closed-set
metric differences: each on its own axis, with its interval); training curves, one metric per
chart on its own y axis."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load

# Curves drawn first, in this order; any other logged metric follows by name. Metrics logged once
# (end-of-training summaries such as total_flos or train_runtime) are a table, not a curve.
CURVES_FIRST = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
                "grad_norm", "learning_rate")
COMPARISONS = {  # parent_comparisons.method -> (title, axis, number format, "no change", axis domain)
    "bt": ("Bradley-Terry difference, model − parent", "rating points (95% CI)", ".0f", 0.0, None),
    "win_rate": ("Head-to-head win rate of the model against its parent", "win rate (95% CI; 50% = no change)",
                 ".0%", 0.5, (0, 1)),
}


def render() -> None:
    st.title("Runs and lineage")
    _runs_section()
    _lineage_section()


def _runs_section() -> None:
    runs = pd.DataFrame(load("runs"))
    if runs.empty:
        st.info("No runs yet.")
        return
    counts = runs["status"].value_counts().to_dict()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    runs["label"] = runs["started_at"].dt.strftime("%Y-%m-%d %H:%M:%S") + " · " + runs["suite_name"]
    runs["wall_s"] = runs["wall_s"].fillna((pd.Timestamp.now() - runs["started_at"]).dt.total_seconds())
    st.altair_chart(charts.run_times(runs.head(40)), width="stretch")
    st.dataframe(runs.drop(columns=["label"]), hide_index=True)


def _lineage_section() -> None:
    st.subheader("Trained models")
    data = load("lineage")
    if not data["models"]:
        st.info("No trained models yet. Models trained by the harness's trainers (SFT / DPO) appear here as a "
                "tree under their parents, with their rating deltas against the parent and their training "
                "curves (tables trained_models, parent_comparisons, training_log).")
        return
    models = pd.DataFrame(data["models"])
    dot = ["digraph { rankdir=LR; node [shape=box, style=rounded];"]
    for r in models.itertuples():
        dot.append(f'"{r.parent}" -> "{r.model}" [label="{r.method} / {r.finetune}, {r.steps} steps"];')
    st.graphviz_chart("\n".join(dot) + "}")
    st.dataframe(models, hide_index=True)
    _comparisons(pd.DataFrame(data["comparisons"]))
    _curves(pd.DataFrame(data["log"]))


def _comparisons(comps: pd.DataFrame) -> None:
    st.subheader("Against the parent")
    if comps.empty:
        st.caption("No comparisons against parents yet: `harness train ... --then-eval SUITE` stores them.")
        return
    comps["pair"] = comps["model"] + " vs " + comps["parent"]
    comps["panel"] = comps["judge_name"] + " / " + comps["dimension"]
    st.caption("Each line: the model against the parent it was trained from, with its 95% interval; an interval "
               "that excludes the dashed line (no change) is a change the data supports.")
    known = comps[comps["method"].isin(list(COMPARISONS))]
    for method, part in known.groupby("method", sort=False):
        title, axis, fmt, none, domain = COMPARISONS[method]
        st.markdown(f"**{title}**")
        _two_per_row(part, "panel", lambda df: charts.bars(df, "delta", "pair", fmt=fmt, err=("ci_low", "ci_high"),
                                                             title=axis, rule=none, domain=domain))
    closed = comps[~comps["method"].isin(list(COMPARISONS))]
    if not closed.empty:  # lm-eval tasks: judge_name 'lm-eval', dimension = the task, method = the metric
        closed = closed.assign(panel=closed["dimension"] + " · " + closed["method"])
        st.markdown("**Closed-set metric difference, model − parent (lm-eval)**")
        _two_per_row(closed, "panel", lambda df: charts.bars(df, "delta", "pair", fmt=".2f",
                                                               err=("ci_low", "ci_high"),
                                                               title="metric difference (95% CI)", rule=0.0))


def _curves(log: pd.DataFrame) -> None:
    st.subheader("Training curves")
    if log.empty:
        st.caption("No training log stored.")
        return
    points = log.groupby("name")["step"].nunique()
    curves = sorted(points[points > 1].index, key=lambda n: (CURVES_FIRST.index(n) if n in CURVES_FIRST
                                                             else len(CURVES_FIRST), n))
    _two_per_row(log[log["name"].isin(curves)], "name", lambda df: charts.curve(df, df["name"].iloc[0]),
                 order=curves)
    once = log[~log["name"].isin(curves)]
    if not once.empty:
        st.caption("Logged once per run (summaries):")
        st.dataframe(once.pivot_table(index="model", columns="name", values="value", aggfunc="last"))


def _two_per_row(df: pd.DataFrame, column: str, draw, order: list | None = None) -> None:
    names = order or sorted(df[column].unique())
    for start in range(0, len(names), 2):
        for col, name in zip(st.columns(2), names[start:start + 2]):
            with col:
                st.caption(name)
                st.altair_chart(draw(df[df[column] == name]), width="stretch")
