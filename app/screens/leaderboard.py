"""Leaderboard: models x (judge, dimension) ratings with CIs, win rates, MT-Bench grades, closed-set
metrics, a significance mark from CI overlap, and a CSV download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import ALL, options, pick, suite as pick_suite
from harness.leaderboard import separated

METHOD_LABEL = {"bt": "Bradley-Terry", "elo": "Elo"}


def render() -> None:
    st.title("Leaderboard")
    opts = options()
    suite = pick_suite(opts)
    if suite is None:
        st.info("No suite has been run yet: `harness run quickstart` fills the store.")
        return
    judge = pick("Judge", [j for j in opts["judges"] if not j.startswith("human:")], "f_judge")
    dims = st.sidebar.multiselect("Dimensions", opts["dimensions"], default=opts["dimensions"], key="f_dims")
    category = pick("Category", opts["categories"], "f_category") or ALL
    set_name = pick("Set", opts["sets"], "f_set")
    method = st.sidebar.radio("Rating", ["bt", "elo"], format_func=METHOD_LABEL.get, key="f_method", horizontal=True)
    humans = st.sidebar.toggle("Include human verdicts", key="f_humans",
                               help="Battles a person settled on the Annotate page count with the person's verdict.")
    rows = _rating_rows(suite, judge, dims, category, set_name, humans)
    _ratings_section(rows, method, humans or set_name is not None)
    _win_rates_section(rows)
    _grades_section(rows)
    closed = _closed_section(suite, {r["model"] for r in rows})
    _download(rows, closed)


def _rating_rows(suite, judge, dims, category, set_name, humans) -> list[dict]:
    if not humans and set_name is None:
        rows = load("latest_ratings", suite, category)  # the precomputed table: fast at any size
        return [r for r in rows if (judge is None or r["judge_name"] == judge)
                and (r["method"] == "mean_grade" or r["dimension"] in dims)]
    judges = [judge] if judge else sorted({r["judge_name"] for r in load("latest_ratings", suite, "all")
                                           if r["method"] in ("bt", "elo")})
    rows = []
    for j in judges:
        for d in dims:
            rows += load("joint_ratings", suite, j, d, category, set_name, humans)
    return rows


def _with_significance(df: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for _, panel in df.groupby("panel", sort=False):
        panel = panel.sort_values("rating", ascending=False).copy()
        below = panel["ci_high"].shift(-1)
        panel["vs next below"] = ["last" if pd.isna(b) else ("significantly above" if separated(lo, b) else "overlaps")
                                  for lo, b in zip(panel["ci_low"], below)]
        parts.append(panel)
    return pd.concat(parts)


def _ratings_section(rows, method, live) -> None:
    df = pd.DataFrame([r for r in rows if r["method"] == method])
    if df.empty:
        st.info("No ratings for these filters yet: ratings appear once a suite with judges has run.")
        return
    df["panel"] = df["judge_name"] + " / " + df["dimension"]
    df = _with_significance(df)
    level = df["level"].dropna().iloc[0] if df["level"].notna().any() else 0.95
    st.subheader(f"{METHOD_LABEL[method]} ratings with {level:.0%} bootstrap intervals")
    st.caption(("Recomputed live from the stored judgments (200 bootstrap rounds). " if live else
                "From the ratings table (last `harness run` / `harness ratings`). ") +
               "A green point: its interval lies wholly above the next model's, so the two differ "
               "significantly; grey: the intervals overlap and the order is not established.")
    st.altair_chart(charts.ratings_with_ci(df, METHOD_LABEL[method]))
    models = sorted(set(df["model"]))
    st.caption(f"{len(models)} models: " + ", ".join(models))


def _win_rates_section(rows) -> None:
    df = pd.DataFrame([r for r in rows if r["method"] in ("win_rate", "lc_win_rate")])
    st.subheader("Win rate vs the baseline")
    if df.empty:
        st.caption("No baseline in this suite: `pairs: {mode: baseline, baseline: NAME}` adds win rates and "
                   "length-controlled win rates.")
        return
    df["panel"] = df["judge_name"] + " / " + df["dimension"]
    df["method"] = df["method"].map({"win_rate": "win rate", "lc_win_rate": "length-controlled"})
    st.altair_chart(charts.bars(df, "rating", "model", color="method", column="panel", fmt=".0%",
                                domain=(0, 1), err=("ci_low", "ci_high"), title="win rate vs baseline"))


def _grades_section(rows) -> None:
    df = pd.DataFrame([r for r in rows if r["method"] == "mean_grade"])
    if df.empty:
        return
    st.subheader("MT-Bench-style grades (1-10)")
    st.altair_chart(charts.bars(df, "rating", "model", column="judge_name", fmt=".1f", domain=(0, 10),
                                title="mean grade"))


def _closed_section(suite, models) -> list[dict]:
    closed = load("closed_metrics", suite) or [r for r in load("closed_metrics") if r["model"] in models]
    st.subheader("Closed-set metrics (lm-eval)")
    if not closed:
        st.caption("No lm-eval results stored for these models yet.")
        return []
    df = pd.DataFrame(closed)
    df["panel"] = df["task"] + " · " + df["metric"] + " (" + df["filter"] + ")"
    df["low"], df["high"] = df["value"] - 1.96 * df["stderr"].fillna(0), df["value"] + 1.96 * df["stderr"].fillna(0)
    st.altair_chart(charts.bars(df, "value", "model", column="panel", fmt=".2f", err=("low", "high"),
                                title="value ± 1.96 stderr"))
    runs = df.drop_duplicates(["task", "model"])
    st.caption("lm-eval tasks: " + ", ".join(
        f"{task} ({', '.join(f'{r.model}: n={r.n_samples}, {r.num_fewshot}-shot' for r in g.itertuples())})"
        for task, g in runs.groupby("task")))
    return closed


def _download(rows, closed) -> None:
    table = pd.DataFrame(rows + [{"judge_name": "lm-eval", "dimension": c["task"], "method": c["metric"],
                                  "model": c["model"], "rating": c["value"], "category": c["filter"]}
                                 for c in closed])
    if table.empty:
        return
    with st.expander("Table"):
        st.dataframe(table, hide_index=True)
    st.download_button("Download CSV", table.to_csv(index=False).encode(), "leaderboard.csv", "text/csv")
