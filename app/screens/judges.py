"""Judges: how far each judge can be trusted: the evaluator leaderboard (every judge on every stored
labelled benchmark) and a judge's card (`?judge=NAME`), agreement with people, swap flips, position
and length bias, gaming probes (a flag when a content-free null model outrates a real model),
self-preference, parse failures, and judge-vs-judge agreement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import options, pick, suite as pick_suite
from harness.judge_eval_board import (METRIC_LABELS, card, chance_warning, format_ci, format_value, judges_of,
                                      leaderboard)

METRICS = {"parse_failure_rate": "parse failures", "swap_flip_rate": "swap flip rate",
           "first_position_win_rate": "first-position win rate", "longer_answer_win_rate": "longer answer wins"}


def render() -> None:
    st.title("Judges")
    opts = options()
    suite = pick_suite(opts)
    _judge_eval_section()
    if suite is None:
        _reliability_section(load("reliability"))
        return
    _human_section(suite)
    dimension = pick("Dimension", opts["dimensions"], "f_dimension")
    report = load("judges_page", suite, dimension)  # one read: the rule runs once for the three sections
    _reliability_section(report["reliability"])
    _probe_section(suite)
    _agreement_section(report["agreement"])
    _self_preference_section(report["self_preference"])


# The evaluator leaderboard's columns: stored metric -> column title (harness.judge_eval_board.BOARD_METRICS).
BOARD_COLUMNS = {"accuracy": "accuracy", "accuracy_3way": "3-way accuracy", "agreement_with_ties": "human agreement",
                 "pair_accuracy": "pair accuracy", "positional_agreement": "positional agreement",
                 "p_prefer_longer": "P(prefer longer)", "p_prefer_first": "P(prefer first)",
                 "parse_failure_rate": "parse failures", "cost_per_1000": "USD / 1,000",
                 "seconds_per_1000": "seconds / 1,000"}
WITH_CI = ("accuracy", "accuracy_3way", "agreement_with_ties")


def _judge_eval_section() -> None:
    st.subheader("Evaluator leaderboard")
    rows = load("judge_eval_results")
    if not rows:
        st.info("No judge-eval results stored yet: run `harness judge-eval --suite S --benchmark pandalm_testset` "
                "(or mt_bench_human, hh_rlhf_harmless, llmbar --file ...), or `harness judge-eval --data "
                "../shared/data` for the released verdicts and the human ceiling.")
        return
    board = leaderboard(rows)
    st.caption("One row per judge and benchmark, the latest `harness judge-eval` run: every pair judged in both "
               "orders, the first order shown drawn at random (seeded). Accuracy: verdicts that name the labelled "
               "winner, over both orders, on pairs that have one; pair accuracy: both orders right; positional "
               "agreement: the same verdict in both orders; human agreement: FastChat's vote-against-vote agreement "
               "with ties. Brackets: 95% bootstrap intervals over pairs. Released verdicts and people are "
               "references, not run here.")
    # a plain table: a few rows, every cell readable as text (also by a browser test)
    st.table(pd.DataFrame([_board_row(e) for e in board]).set_index("judge"))
    for entry in board:
        if entry["chance"]:
            st.warning(chance_warning(entry["judge"], entry["benchmark"], entry["accuracy"]))
    chart = pd.DataFrame([{"judge": e["judge"], "panel": f"{e['benchmark']} · accuracy",
                           "value": e["accuracy"]["value"], "ci_low": e["accuracy"]["ci_low"],
                           "ci_high": e["accuracy"]["ci_high"], "pairs": e["n_items"]}
                          for e in board if e["accuracy"] and e["accuracy"]["value"] is not None])
    for _, panel in (chart.groupby("panel", sort=True) if not chart.empty else ()):
        st.altair_chart(charts.bars(panel, "value", "judge", column="panel", fmt=".1%", domain=(0, 1),
                                    err=("ci_low", "ci_high"), title="accuracy"))
    _judge_card_section(rows)


def _cell(name: str, row: dict | None) -> str:
    if not row or row.get("value") is None:
        return ""
    ci = format_ci(name, row) if name in WITH_CI else ""
    return f"{format_value(name, row['value'])} {ci}".strip()


def _board_row(entry: dict) -> dict:
    row = {"judge": entry["judge"], "benchmark": entry["benchmark"], "pairs": entry["n_items"]}
    row |= {title: _cell(name, entry[name]) for name, title in BOARD_COLUMNS.items()}
    row["chance"] = {"at": "at chance", "below": "below chance"}.get(entry["chance"], "")
    return row


def _judge_card_section(rows: list[dict]) -> None:
    """One judge's card; `?judge=NAME` opens it (the leaderboard's reliability banner links here)."""
    names = judges_of(rows)
    asked = st.query_params.get("judge")
    index = names.index(asked) if asked in names else 0
    if asked and asked not in names:
        st.warning(f"No judge-eval results for judge '{asked}': showing {names[0]}.")
    name = st.selectbox("Judge card", names, index=index, key="judge_card")
    if name != asked:
        st.query_params["judge"] = name
    info = card(rows, name)
    st.markdown(f"#### {name}")
    for note in info["notes"]:
        st.warning(note)
    for warning in info["warnings"]:
        st.error(warning)
    for bench in info["benchmarks"]:
        st.markdown(f"**{bench['benchmark']}**: {bench['n_items']} pairs, {bench['n_calls']} judge calls "
                    f"({bench['n_cached']} read from the store), {bench['source']}")
        metrics = sorted({m for subset in bench["subsets"].values() for m in subset},
                         key=lambda m: list(METRIC_LABELS).index(m) if m in METRIC_LABELS else 99)
        table = {"metric": [METRIC_LABELS.get(m, m) for m in metrics]}
        for subset, found in bench["subsets"].items():
            table[subset] = [f"{format_value(m, found[m]['value'])} {format_ci(m, found[m])}".strip()
                             if m in found else "" for m in metrics]
        st.dataframe(pd.DataFrame(table), hide_index=True)


def _human_section(suite: str) -> None:
    st.subheader("Agreement with people")
    st.caption("Agreement with the human verdicts given in this app (Annotate page): how often the judge's merged "
               "verdict names the same winner as the person. Agreement with published human labels is above.")
    df = pd.DataFrame(load("human_agreement", suite))
    if df.empty:
        st.info("No human verdicts yet: settle a few battles on the Annotate page.")
        return
    df["label"] = df["judge"] + " vs " + df["human"] + " (" + df["items"].astype(str) + " verdicts)"
    st.altair_chart(charts.bars(df, "agreement", "label", fmt=".0%", domain=(0, 1), title="agreement"))


def _reliability_section(rel: list[dict]) -> None:
    st.subheader("Reliability from the judge's own verdicts")
    if not rel:
        st.info("No LLM judge has run yet.")
        return
    df = pd.DataFrame(rel).melt(id_vars=["judge_name", "calls"], value_vars=list(METRICS), var_name="metric")
    df["metric"] = df["metric"].map(METRICS)
    df = df.dropna(subset=["value"])
    st.caption("Swap flip rate: battles whose two orders disagree. First-position and longer-answer win rates "
               "should sit near 50% for an unbiased judge. Parse failures: calls stored as unparsed.")
    st.altair_chart(charts.bars(df, "value", "judge_name", column="metric", fmt=".0%", domain=(0, 1), title="rate"))


def _probe_section(suite: str) -> None:
    """`harness probe` results as last stored: a flag per panel where the null model outrates a
    real model (the judge rewards content-free answers there), and every probe's rating gain."""
    st.subheader("Gaming probes")
    rows = load("probe_results", suite)
    if not rows:
        st.caption(f"No probe results stored: `harness probe {suite}` adds a constant-output null model and "
                   "longer / markdown-heavy copies of a real model's answers, judges them, and stores the result here.")
        return
    for r in rows:
        if r["flagged"]:
            st.error(f"Flag: {r['judge_name']} / {r['dimension']}: the null model (one content-free answer to every "
                     f"question) rates {r['rating']:.0f}, above {r['against']} ({r['against_rating']:.0f}). "
                     "This judge, on this benchmark, rewards form over content.")
    df = pd.DataFrame({"judge": [r["judge_name"] for r in rows], "dimension": [r["dimension"] for r in rows],
                       "probe": [r["kind"] for r in rows], "measured against": [r["against"] for r in rows],
                       "raw gain": [r["rating"] - r["against_rating"] for r in rows],
                       "style-controlled gain": [r["controlled"] - r["against_controlled"] for r in rows],
                       "flag": ["null model above a real model" if r["flagged"] else "" for r in rows],
                       "computed": [r["computed_at"] for r in rows]})
    st.caption("Bradley-Terry points of each probe minus the model it is measured against (a copy: the model it "
               "copies; the null model: the weakest real model), raw and with length and markdown held equal. "
               "A copy gains only by form; a judge that ignores form gives it about 0.")
    st.dataframe(df, hide_index=True)


def _agreement_section(agreement: list[dict]) -> None:
    st.subheader("Judge vs judge")
    df = pd.DataFrame(agreement)
    if df.empty:
        st.caption("Needs two judges (people count) that decided the same battles.")
        return
    judges = sorted(set(df["judge"]))
    df = pd.concat([df, pd.DataFrame({"judge": judges, "other": judges, "items": 0, "agreement": 1.0})])
    st.caption("Share of battles both decided where they name the same winner (each judge's two orders merged "
               "under the suite's policy; a person's verdict as given). A person's row equals the agreement above.")
    st.altair_chart(charts.heatmap(df, "other", "judge", "agreement", domain=(0, 1), order=judges,
                                   scheme="greens", title="agreement"), width="content")


def _self_preference_section(rows: list[dict]) -> None:
    st.subheader("Self-preference")
    if not rows:
        st.caption("No judge shares its model with a candidate, so self-preference cannot be measured.")
        return
    df = pd.DataFrame(rows)
    df["judge"] = df["judge"] + df["own_model_of_judge"].map({True: " (own model)", False: ""})
    st.caption("Win rate of a candidate that runs on a judge's own weights, under that judge and under the others.")
    st.altair_chart(charts.bars(df, "win_rate", "judge", column="model", fmt=".0%", domain=(0, 1), title="win rate"))
