"""Leaderboard: models x (judge, dimension) ratings with CIs, win rates, MT-Bench grades, closed-set
metrics, and a CSV download. Two kinds of mark: the chart's colour from CI overlap of the stored
(battle-level) intervals, and, under "How sure", paired tests over questions with Holm's correction
(harness.leaderboard.paired_marks), question-clustered intervals beside battle-level ones, and
style-control coefficients (harness.stats)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import ALL, options, pick, suite as pick_suite
from harness.leaderboard import PAIRED_ALPHA, paired_marks, separated

METHOD_LABEL = {"bt": "Bradley-Terry", "elo": "Elo"}
# "How sure" refits from the battles on every page run: on by default up to this many battles.
HOW_SURE_BATTLES = 50_000
HOW_SURE_ROUNDS = 200


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
    _how_sure_section(suite, rows, judge, dims, category, set_name, humans)
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


def _how_sure_section(suite, rows, judge, dims, category, set_name, humans) -> None:
    """Paired tests of neighbours (Holm), both kinds of interval, style coefficients, per panel."""
    from harness.stats import clustered, style
    from harness.stats.frame import from_battles, panels

    st.subheader("How sure: paired tests, question-clustered intervals, style control")
    bt_rows = [r for r in rows if r["method"] == "bt"]
    if not bt_rows:
        return
    size = sum(r["battles"] for r in bt_rows) // 2
    if not st.sidebar.toggle("How sure (refit from battles)", value=size <= HOW_SURE_BATTLES, key="f_how_sure",
                             help="Paired tests, clustered intervals and style control, computed on each page run."):
        st.caption(f"Off: about {size:,} battles here; turn on 'How sure' in the sidebar to refit them.")
        return
    judges = [judge] if judge else sorted({r["judge_name"] for r in bt_rows})
    battles = []
    for j in judges:
        for d in dims:
            battles += load("suite_battles", suite, j, d, set_name, None if category == ALL else category, humans)
    if not battles:
        return
    marks, widths, coefficients = [], [], []
    for (j, d), adjacent in paired_marks(battles).items():
        marks += [{"panel": f"{j} / {d}", "model": a.above, "next below": a.below, "p": a.p_value,
                   "p (Holm)": a.p_holm, "mark": "significantly above" if a.significant else "not established"}
                  for a in adjacent]
    for (j, d), group in panels(battles).items():
        frame = from_battles(group)
        widths += [{"panel": f"{j} / {d}", "model": w.model, "BT": w.point,
                    "battles resampled": f"[{w.battle.low:.0f}, {w.battle.high:.0f}]",
                    "questions resampled": f"[{w.question.low:.0f}, {w.question.high:.0f}]",
                    "width ratio": w.inflation} for w in clustered.both_widths(frame, HOW_SURE_ROUNDS)]
        names, z = style.covariates(frame)
        if names:
            controlled = style.bootstrap(frame, z, names, HOW_SURE_ROUNDS)
            coefficients += [{"panel": f"{j} / {d}", "feature": name, "coefficient": iv.point, "low": iv.low,
                              "high": iv.high, "style-controlled ranking": ", ".join(controlled.ranking())}
                             for name, iv in controlled.coefficients.items()]
    st.caption(f"Significance: each model against the one ranked just below it, a permutation test of their "
               f"Bradley-Terry difference (the two names swapped within random halves of the questions, every "
               f"battle refitted), Holm-corrected across the panel's neighbours at alpha {PAIRED_ALPHA}. Unlike "
               "CI overlap this is a test; 'not established' is not 'equal'.")
    st.dataframe(pd.DataFrame(marks), hide_index=True)
    st.caption(f"Interval kind: 95% percentile bootstrap ({HOW_SURE_ROUNDS} rounds) resampling battles (as the "
               "chart above) or whole questions. Battles on one question are correlated, so the question-"
               "resampled interval is the honest one; a width ratio above 1 is how much the battle-level one "
               "understates.")
    st.dataframe(pd.DataFrame(widths), hide_index=True)
    if coefficients:
        st.caption("Style control (Arena's contextual Bradley-Terry): the judge's preference for the longer answer, "
                   "in log-odds per unit (root mean square) of the normalised length difference, with its question-"
                   "clustered interval, and the ranking with length held equal. `harness how-sure SUITE` adds "
                   "the markdown features.")
        st.dataframe(pd.DataFrame(coefficients), hide_index=True)


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
