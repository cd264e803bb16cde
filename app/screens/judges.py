"""Judges: how far each judge can be trusted: agreement with people, swap flips, position and
length bias, self-preference, parse failures, and judge-vs-judge agreement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import options, pick

METRICS = {"parse_failure_rate": "parse failures", "swap_flip_rate": "swap flip rate",
           "first_position_win_rate": "first-position win rate", "longer_answer_win_rate": "longer answer wins"}


def render() -> None:
    st.title("Judges")
    _human_section()
    _reliability_section()
    _agreement_section(options())
    _self_preference_section()


def _human_section() -> None:
    st.subheader("Agreement with people")
    st.caption("`harness judge-eval` prints its agreement with published human labels but does not store it "
               "in the database, so this panel shows agreement with the human verdicts given in this app "
               "(Annotate page): how often the judge's merged verdict names the same winner as the person.")
    df = pd.DataFrame(load("human_agreement"))
    if df.empty:
        st.info("No human verdicts yet: settle a few battles on the Annotate page.")
        return
    df["label"] = df["judge"] + " vs " + df["human"] + " (" + df["items"].astype(str) + " verdicts)"
    st.altair_chart(charts.bars(df, "agreement", "label", fmt=".0%", domain=(0, 1), title="agreement"))


def _reliability_section() -> None:
    st.subheader("Reliability from the judge's own verdicts")
    rel = load("reliability")
    if not rel:
        st.info("No LLM judge has run yet.")
        return
    df = pd.DataFrame(rel).melt(id_vars=["judge_name", "calls"], value_vars=list(METRICS), var_name="metric")
    df["metric"] = df["metric"].map(METRICS)
    df = df.dropna(subset=["value"])
    st.caption("Swap flip rate: battles whose two orders disagree. First-position and longer-answer win rates "
               "should sit near 50% for an unbiased judge. Parse failures: calls stored as unparsed.")
    st.altair_chart(charts.bars(df, "value", "judge_name", column="metric", fmt=".0%", domain=(0, 1), title="rate"))


def _agreement_section(opts) -> None:
    st.subheader("Judge vs judge")
    dimension = pick("Dimension", opts["dimensions"], "f_dimension")
    df = pd.DataFrame(load("judge_agreement", dimension))
    if df.empty:
        st.caption("Needs two judges (people count) that judged the same battles in the same order.")
        return
    judges = sorted(set(df["judge"]))
    df = pd.concat([df, pd.DataFrame({"judge": judges, "other": judges, "items": 0, "agreement": 1.0})])
    st.caption("Share of identical verdicts on the same battle shown in the same order.")
    st.altair_chart(charts.heatmap(df, "other", "judge", "agreement", domain=(0, 1), order=judges,
                                   scheme="greens", title="agreement"), width="content")


def _self_preference_section() -> None:
    st.subheader("Self-preference")
    rows = load("self_preference")
    if not rows:
        st.caption("No judge shares its model with a candidate, so self-preference cannot be measured.")
        return
    df = pd.DataFrame(rows)
    df["judge"] = df["judge"] + df["own_model_of_judge"].map({True: " (own model)", False: ""})
    st.caption("Win rate of a candidate that runs on a judge's own weights, under that judge and under the others.")
    st.altair_chart(charts.bars(df, "win_rate", "judge", column="model", fmt=".0%", domain=(0, 1), title="win rate"))
