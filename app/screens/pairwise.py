"""Pairwise: win-rate matrix, battle counts, per-category breakdown (the suite's merged battles).
A click on a matrix cell opens that pair's battles in the Battle viewer."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import href, judge_and_dimension, options, pick, suite as pick_suite


def render() -> None:
    st.title("Pairwise")
    opts = options()
    suite = pick_suite(opts)
    judge, dimension = judge_and_dimension(opts)
    set_name = pick("Set", opts["sets"], "f_set")
    category = pick("Category", opts["categories"], "f_category")
    if judge is None or suite is None:
        st.info("No judge has run yet: add `judges:` to a suite and `harness run` it.")
        return
    page = load("pairwise_page", suite, judge, dimension, set_name, category)  # one read: merged once
    matrix = pd.DataFrame(page["matrix"])
    if matrix.empty:
        st.info("No battles for these filters (under the suite's merge policy).")
        return
    # overall win rate by weight (under `half` a battle's two halves weigh 0.5 each)
    matrix["battles of the pair"] = [href("battle", suite=suite, judge=judge, dimension=dimension, model=m, opponent=o)
                                     for m, o in zip(matrix["model"], matrix["opponent"])]
    order = (matrix.groupby("model").apply(lambda g: (g.wins.sum() + 0.5 * g.ties.sum())
                                           / (g.wins.sum() + g.ties.sum() + g.losses.sum()),
                                           include_groups=False).sort_values(ascending=False).index.tolist())
    st.caption(f"Judge {judge}, dimension {dimension}: each battle merges the two orders under the suite's "
               f"policy ({load('merge_policy', suite)}), exactly as the leaderboard does. Rows: the model; "
               "columns: its opponent; ties count half. Click a cell to open the pair's battles.")
    # one under the other: side by side, two 8-model matrices overflow a narrow window
    st.subheader("Win rate of row vs column")
    st.altair_chart(charts.heatmap(matrix, "opponent", "model", "win_rate", domain=(0, 1), order=order,
                                   title="win rate", link="battles of the pair"), width="content")
    st.subheader("Battles")
    st.altair_chart(charts.heatmap(matrix, "opponent", "model", "battles", fmt="d", scheme="greys",
                                   order=order, title="battles", link="battles of the pair"), width="content")
    st.subheader("Per category: win rate against all opponents")
    by_cat = pd.DataFrame(page["categories"])
    if by_cat.empty:
        st.caption("No categories.")
    else:
        st.altair_chart(charts.heatmap(by_cat, "category", "model", "win_rate", domain=(0, 1), title="win rate")
                        .encode(y=charts.alt.Y("model:N", sort=order, title=None)))
