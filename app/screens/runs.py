"""Runs and lineage: run history with status and timings; trained models as a tree with their
deltas against their parents."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load


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
    st.altair_chart(charts.run_times(runs.head(40)), width="content")
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
    comps = pd.DataFrame(data["comparisons"])
    if comps.empty:
        st.caption("No comparisons against parents yet.")
    else:
        comps["panel"] = comps["judge_name"] + " / " + comps["dimension"] + " / " + comps["method"]
        comps["label"] = comps["model"] + " − " + comps["parent"]
        st.caption("Delta = model minus parent, with its interval; an interval that excludes 0 is a real change.")
        st.altair_chart(charts.bars(comps, "delta", "label", column="panel", fmt=".1f", err=("ci_low", "ci_high"),
                                    title="model − parent"))
    log = pd.DataFrame(data["log"])
    if not log.empty:
        st.altair_chart(charts.lines(log, "step", "value", "model", column="name"))
    st.dataframe(models, hide_index=True)
