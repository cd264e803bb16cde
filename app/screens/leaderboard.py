"""Leaderboard: models x (judge, dimension) ratings with CIs, win rates, MT-Bench grades, closed-set
metrics, and a CSV download. The chart's colour, "significantly above the next model", is the paired
test of harness.leaderboard.paired_marks (BT permutation tests of neighbours over questions, Holm-
corrected), never CI overlap; under "How sure" the same tests' p-values, question-clustered
intervals beside battle-level ones, and style-control coefficients (harness.stats)."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import ALL, from_link, href, link, options, pick, suite as pick_suite
from harness import board_view
from harness.leaderboard import PAIRED_ALPHA, mark_meaning
from harness.views import LIVE_ROUNDS

METHOD_LABEL = {"bt": "Bradley-Terry", "elo": "Elo"}
# The interval widths and style control refit every panel (two bootstraps each): off until asked for.
HOW_SURE_ROUNDS = 200
AUTO_TEST_BATTLES = 5_000  # the paired tests run by default up to this many battles (cached per data change)


def render() -> None:
    st.title("Leaderboard")
    opts = options()
    suite = pick_suite(opts)
    if suite is None:
        st.info("No suite has been run yet: `harness run quickstart` fills the store.")
        return
    from_link(judge="f_judge", method="f_method")
    judge = pick("Judge", [j for j in opts["judges"] if not j.startswith("human:")], "f_judge")
    dims = st.sidebar.multiselect("Dimensions", opts["dimensions"], default=opts["dimensions"], key="f_dims")
    category = pick("Category", opts["categories"], "f_category") or ALL
    set_name = pick("Set", opts["sets"], "f_set")
    if st.session_state.get("f_method") not in METHOD_LABEL:
        st.session_state.pop("f_method", None)
    method = st.sidebar.radio("Rating", list(METHOD_LABEL), format_func=METHOD_LABEL.get, key="f_method",
                              horizontal=True)
    humans = st.sidebar.toggle("Include human verdicts", key="f_humans",
                               help="Battles a person settled on the Annotate page count with the person's verdict.")
    rows = _rating_rows(suite, judge, dims, category, set_name, humans)
    bt_rows = [r for r in rows if r["method"] == "bt"]
    size = sum(r["battles"] for r in bt_rows) // 2
    how_sure = bool(bt_rows) and st.sidebar.toggle(
        "Paired tests (significance marks)", value=size <= AUTO_TEST_BATTLES, key="f_how_sure",
        help="Permutation tests of each model against the next one (Holm-corrected), clustered intervals and "
             f"style control. On by default up to {AUTO_TEST_BATTLES:,} battles; computed once per change of the data.")
    panels = sorted({(r["judge_name"], r["dimension"]) for r in bt_rows})
    marks = _marks(suite, panels, category, set_name, humans) if how_sure else None
    _banners(sorted({j for j, _ in panels}))
    _board_section(suite, rows, method, humans or set_name is not None, marks, category, set_name)
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
            rows += load("joint_ratings", suite, j, d, category, set_name, humans,
                         progress=f"Refitting {j} / {d} from the stored battles...")
    return rows


def _marks(suite, panels, category, set_name, humans) -> list[dict]:
    """harness.leaderboard.paired_marks per panel (views.board_marks), one dict per adjacent pair."""
    out = []
    for j, d in panels:
        out += load("board_marks", suite, j, d, set_name, None if category == ALL else category, humans,
                    progress=f"Paired tests of {j} / {d}...")
    return out


def _banners(judges: list[str]) -> None:
    """A warning per judge on the board whose reliability crosses judges.reliability's limits."""
    for judge, notes in board_view.warnings(load("reliability"), judges).items():
        st.warning(f"**Judge {judge} is not reliable as it is**: " + "; ".join(notes) + ". Read its ratings with "
                   f"care. {link('Open the judge card', 'judges', judge=judge)}.", icon=":material/warning:")


def _board_section(suite, rows, method, live, marks, category, set_name) -> None:
    rated = [r for r in rows if r["method"] == method]
    if not rated:
        st.info("No ratings for these filters yet: ratings appear once a suite with judges has run.")
        return
    level = next((r["level"] for r in rated if r["level"]), 0.95)
    kinds = {r.get("ci_kind") or "battle" for r in rated}
    resampled = " and ".join(sorted({"question": "questions", "battle": "battles"}[k] for k in kinds))
    st.caption((f"**Recomputed live** from the stored judgments ({LIVE_ROUNDS} bootstrap rounds). " if live else
                "From the ratings table (last `harness run` / `harness ratings`). ") +
               f"{METHOD_LABEL[method]} ratings with {level:.0%} bootstrap intervals ({resampled} resampled). "
               "**Rank** is the best rank the intervals allow (as LMArena ranks: 1 + the models whose interval lies "
               "wholly above this one's); **range** runs to the worst rank they allow. **Win rate**: against every "
               "opponent, ties half. **vs next below**: " + ("the paired test, significantly " + mark_meaning() +
               "; 'not established' is not 'equal'." if marks is not None else
               "not tested: turn on 'Paired tests' in the sidebar."))
    for judge, dimension in sorted({(r["judge_name"], r["dimension"]) for r in rated}):
        mine = [r for r in rows if (r["judge_name"], r["dimension"]) == (judge, dimension)]
        table = board_view.board_rows(mine, method, _win_rates(suite, judge, dimension, mine, live, category, set_name),
                                      board_view.panel_marks(marks or [], judge, dimension) if marks is not None
                                      else None)
        st.subheader(f"{judge} / {dimension}")
        # The chart under its table, both the page's width: side by side (columns) squeezed the table's
        # columns out of sight and cut the chart at 800 px, and at 1,400 px the two do not fit either.
        _table(table, suite, judge, dimension)
        st.altair_chart(charts.ratings_with_ci(_chart_frame(mine, method, table), METHOD_LABEL[method]),
                        width="stretch")


def _win_rates(suite, judge, dimension, rows, live, category, set_name) -> dict[str, float]:
    if live:  # the refit's own battles (people's verdicts in) carry their win rates
        return {r["model"]: r["win_rate"] for r in rows if r.get("win_rate") is not None}
    models = sorted({r["model"] for r in rows})
    rates = load("board_win_rates", suite, dimension, models, set_name, None if category == ALL else category)
    return {m: rates[(judge, m)] for m in models if (judge, m) in rates}


def _table(table: list, suite: str, judge: str, dimension: str) -> None:
    df = pd.DataFrame([asdict(r) for r in table])
    df["battles shown"] = [href("battle", suite=suite, judge=judge, dimension=dimension, model=m) for m in df["model"]]
    columns = ["rank", "rank_range", "model", "battles shown", "rating", "interval", "win_rate", "battles",
               "vs_baseline", "lc_vs_baseline", "mark"]
    columns = [c for c in columns if c not in ("vs_baseline", "lc_vs_baseline") or df[c].notna().any()]
    digits = "%d" if all(float(v).is_integer() for v in df["rating"]) else "%.1f"
    st.dataframe(df[columns], hide_index=True, column_config={
        "rank": st.column_config.NumberColumn("rank", format="%d", help="Best rank the intervals allow"),
        "rank_range": st.column_config.TextColumn("range", help="Best to worst rank the intervals allow"),
        "rating": st.column_config.NumberColumn("rating", format=digits),
        "interval": st.column_config.TextColumn("95% CI", help="rating + upper / − lower end of the interval"),
        "win_rate": st.column_config.NumberColumn("win rate", format="percent"),
        "battles": st.column_config.NumberColumn("battles", format="%d", help="This model's battles in the panel"),
        "vs_baseline": st.column_config.NumberColumn("vs baseline", format="percent"),
        "lc_vs_baseline": st.column_config.NumberColumn("LC vs baseline", format="percent",
                                                        help="Length-controlled win rate against the baseline"),
        "mark": st.column_config.TextColumn("vs next below"),
        "battles shown": st.column_config.LinkColumn("its battles", display_text="open",
                                                     help="This model's battles in the Battle viewer"),
    })


def _chart_frame(rows: list[dict], method: str, table: list) -> pd.DataFrame:
    by_model = {r.model: r for r in table}
    df = pd.DataFrame([r for r in rows if r["method"] == method])
    df["panel"] = df["judge_name"] + " / " + df["dimension"]
    df["rank"] = [by_model[m].rank_range for m in df["model"]]
    df["vs next below"] = [by_model[m].mark for m in df["model"]]
    return df


def _how_sure_section(suite, bt_rows, panels, category, set_name, humans, marks, size) -> None:
    """Paired tests of neighbours (Holm), both kinds of interval, style coefficients, per panel."""
    from harness.stats import clustered, style
    from harness.stats.frame import from_battles

    st.subheader("How sure: paired tests, question-clustered intervals, style control")
    if not bt_rows:
        return
    if marks is None:
        st.caption(f"Off: about {size:,} battles here; turn on 'Paired tests' in the sidebar to refit them.")
        return
    refit = st.toggle("Also refit interval widths and style control", key="f_how_sure_more",
                      help="Two bootstraps and a style-controlled fit per panel: seconds per panel.")
    table = [{"panel": f"{m['judge_name']} / {m['dimension']}", "model": m["above"], "next below": m["below"],
              "p": m["p_value"], "p (Holm)": m["p_holm"],
              "mark": "significantly above" if m["significant"] else "not established"} for m in marks]
    widths, coefficients = [], []
    for j, d in panels if refit else []:
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
    if not refit:
        return
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
    _in_columns(df, "panel", lambda part: charts.bars(part, "rating", "model", color="method", fmt=".0%", domain=(0, 1),
                                                      err=("ci_low", "ci_high"), title="win rate vs baseline",
                                                      rule=0.5))


def _grades_section(rows) -> None:
    df = pd.DataFrame([r for r in rows if r["method"] == "mean_grade"])
    if df.empty:
        return
    st.subheader("MT-Bench-style grades (1-10)")
    _in_columns(df, "judge_name", lambda part: charts.bars(part, "rating", "model", fmt=".1f", domain=(0, 10),
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
    _in_columns(df, "panel", lambda part: charts.bars(part, "value", "model", fmt=".2f", err=("low", "high"),
                                                      title="value ± 1.96 stderr"))
    runs = df.drop_duplicates(["task", "model"])
    st.caption("lm-eval tasks: " + ", ".join(
        f"{task} ({', '.join(f'{r.model}: n={r.n_samples}, {r.num_fewshot}-shot' for r in g.itertuples())})"
        for task, g in runs.groupby("task")))
    return closed


def _in_columns(df: pd.DataFrame, column: str, draw) -> None:
    """One chart per value of `column`, two to a row, each titled by its value."""
    parts = list(df.groupby(column, sort=True))
    for start in range(0, len(parts), 2):
        for col, (name, part) in zip(st.columns(2), parts[start:start + 2]):
            with col:
                st.markdown(f"**{name}**")
                st.altair_chart(draw(part), width="stretch")


def _download(rows, closed) -> None:
    table = pd.DataFrame(rows + [{"judge_name": "lm-eval", "dimension": c["task"], "method": c["metric"],
                                  "model": c["model"], "rating": c["value"], "category": c["filter"]}
                                 for c in closed])
    if table.empty:
        return
    with st.expander("Table"):
        st.dataframe(table, hide_index=True)
    st.download_button("Download CSV", table.to_csv(index=False).encode(), "leaderboard.csv", "text/csv")
