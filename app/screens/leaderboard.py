"""Leaderboard: models x (judge, dimension) ratings with CIs, win rates, MT-Bench grades, closed-set
metrics, and a CSV download. The chart's colour, "significantly above the next model", is the paired
test of harness.leaderboard.paired_marks (BT permutation tests of neighbours over questions, Holm-
corrected), never CI overlap; under "How sure" the same tests' p-values, question-clustered
intervals beside battle-level ones, and style-control coefficients (harness.stats)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import ALL, options, pick, suite as pick_suite
from harness.leaderboard import PAIRED_ALPHA, mark_meaning

METHOD_LABEL = {"bt": "Bradley-Terry", "elo": "Elo"}
# "How sure" refits from the battles on every page run (permutation tests, two bootstraps and style
# control per panel: seconds even on a small store), so it is off until a person turns it on.
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
    bt_rows = [r for r in rows if r["method"] == "bt"]
    size = sum(r["battles"] for r in bt_rows) // 2
    how_sure = bool(bt_rows) and st.sidebar.toggle(
        "How sure (refit from battles)", value=False, key="f_how_sure",
        help="Paired tests (the chart's marks), clustered intervals and style control, computed on each page run:"
             " seconds per panel, minutes on a store of a million judgments.")
    panels = [(j, d) for j in ([judge] if judge else sorted({r["judge_name"] for r in bt_rows})) for d in dims]
    marks = _marks(suite, panels, category, set_name, humans) if how_sure else None
    _ratings_section(rows, method, humans or set_name is not None, marks)
    _how_sure_section(suite, bt_rows, panels, category, set_name, humans, marks, size)
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


def _marks(suite, panels, category, set_name, humans) -> list[dict]:
    """harness.leaderboard.paired_marks per panel (views.board_marks), one dict per adjacent pair."""
    out = []
    for j, d in panels:
        out += load("board_marks", suite, j, d, set_name, None if category == ALL else category, humans)
    return out


def _with_significance(df: pd.DataFrame, marks: list[dict] | None) -> pd.DataFrame:
    """'vs next below' per row: the paired test of the model against the one ranked just below it in
    BT order (Holm over the panel's neighbours); 'last' for the panel's last model; 'not tested' when
    the tests were not run (How sure off)."""
    tested = {(f"{m['judge_name']} / {m['dimension']}", m["above"]): m["significant"] for m in marks or []}
    panels_tested = {panel for panel, _ in tested}

    def mark(panel: str, model: str) -> str:
        if marks is None or panel not in panels_tested:
            return "not tested"
        if (panel, model) not in tested:
            return "last"
        return "significantly above" if tested[(panel, model)] else "not established"

    df = df.copy()
    df["vs next below"] = [mark(p, m) for p, m in zip(df["panel"], df["model"])]
    return df


def _ratings_section(rows, method, live, marks) -> None:
    df = pd.DataFrame([r for r in rows if r["method"] == method])
    if df.empty:
        st.info("No ratings for these filters yet: ratings appear once a suite with judges has run.")
        return
    df["panel"] = df["judge_name"] + " / " + df["dimension"]
    df = _with_significance(df, marks)
    level = df["level"].dropna().iloc[0] if df["level"].notna().any() else 0.95
    kinds = set(df["ci_kind"].fillna("battle")) if "ci_kind" in df else {"battle"}
    resampled = " and ".join(sorted({"question": "questions", "battle": "battles"}[k] for k in kinds))
    st.subheader(f"{METHOD_LABEL[method]} ratings with {level:.0%} bootstrap intervals ({resampled} resampled)")
    st.caption(("Recomputed live from the stored judgments (200 bootstrap rounds). " if live else
                "From the ratings table (last `harness run` / `harness ratings`). ") +
               ("Intervals resample whole questions with all their battles (question-clustered: the suite's "
                "`ratings.ci`), since battles on one question are correlated. " if kinds == {"question"} else
                "Intervals resample single battles, which understates them when battles on one question are "
                "correlated (`ratings.ci: question` in the suite, the default, resamples questions). ") +
               f"A green point is significantly {mark_meaning()} (in Bradley-Terry order, whichever rating is "
               "shown); grey: not established, which is not the same as equal. Overlapping intervals are not "
               "used: they are not a test.")
    if marks is None:
        st.caption("Marks not tested: turn on 'How sure' in the sidebar to run the paired tests.")
    st.altair_chart(charts.ratings_with_ci(df, METHOD_LABEL[method]))
    models = sorted(set(df["model"]))
    st.caption(f"{len(models)} models: " + ", ".join(models))


def _how_sure_section(suite, bt_rows, panels, category, set_name, humans, marks, size) -> None:
    """Paired tests of neighbours (Holm), both kinds of interval, style coefficients, per panel."""
    from harness.stats import clustered, style
    from harness.stats.frame import from_battles

    st.subheader("How sure: paired tests, question-clustered intervals, style control")
    if not bt_rows:
        return
    if marks is None:
        st.caption(f"Off: about {size:,} battles here; turn on 'How sure' in the sidebar to refit them.")
        return
    table = [{"panel": f"{m['judge_name']} / {m['dimension']}", "model": m["above"], "next below": m["below"],
              "p": m["p_value"], "p (Holm)": m["p_holm"],
              "mark": "significantly above" if m["significant"] else "not established"} for m in marks]
    widths, coefficients = [], []
    for j, d in panels:
        group = load("suite_battles", suite, j, d, set_name, None if category == ALL else category, humans)
        if not group:
            continue
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
    if not table and not widths:
        return
    st.caption(f"The chart's marks: each model against the one ranked just below it, a permutation test of their "
               f"Bradley-Terry difference (the two names swapped within random halves of the questions, every "
               f"battle refitted), Holm-corrected across the panel's neighbours at alpha {PAIRED_ALPHA}. Unlike "
               "CI overlap this is a test; 'not established' is not 'equal'.")
    st.dataframe(pd.DataFrame(table), hide_index=True)
    st.caption(f"Interval kind: 95% percentile bootstrap ({HOW_SURE_ROUNDS} rounds) resampling battles or whole "
               "questions. Battles on one question are correlated, so the question-resampled interval is the "
               "honest one; a width ratio above 1 is how much the battle-level one understates.")
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
