"""Judges: how far each judge can be trusted: agreement with people, swap flips, position and
length bias, gaming probes (a flag when a content-free null model outrates a real model),
self-preference, parse failures, and judge-vs-judge agreement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import load
from app.filters import options, pick, suite as pick_suite

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


JUDGE_EVAL_HEADLINES = {"agreement_with_ties": "agreement with ties",
                        "agreement_without_ties": "agreement without ties",
                        "accuracy": "accuracy", "macro_f1": "macro F1"}


def _judge_eval_section() -> None:
    st.subheader("Agreement with published human labels")
    rows = load("judge_eval_results")
    if not rows:
        st.info("No judge-eval results stored yet: run `harness judge-eval --data ../shared/data` "
                "(add `--suite S` to run that suite's judge on MT-Bench pairs the experts voted on).")
        return
    df = pd.DataFrame(rows)
    st.caption("Stored by `harness judge-eval`, the latest run per judge and benchmark: released verdicts on the "
               "PandaLM test set against the annotator majority, and MT-Bench expert votes compared as FastChat "
               "does (a judge's two orders merged; the experts against each other are the ceiling). "
               "Bars show 95% bootstrap intervals over items.")
    top = df[df["metric"].isin(list(JUDGE_EVAL_HEADLINES))].dropna(subset=["value"]).copy()
    top["panel"] = top["benchmark"] + " · " + top["metric"].map(JUDGE_EVAL_HEADLINES)
    for _, panel in top.groupby("benchmark", sort=True):  # one chart per benchmark: its own judges only
        panel = panel[["judge", "panel", "value", "ci_low", "ci_high", "n_items"]]
        st.altair_chart(charts.bars(panel, "value", "judge", column="panel", fmt=".1%", domain=(0, 1),
                                    err=("ci_low", "ci_high"), title="agreement"))

    def pct(v) -> str:
        return "" if v is None or pd.isna(v) else f"{v:.1%}"

    table = pd.DataFrame({
        "benchmark": df["benchmark"], "judge": df["judge"], "metric": df["metric"],
        "value": df["value"].map(pct),
        "95% CI": [f"[{pct(lo)}, {pct(hi)}]" if not pd.isna(lo) else "" for lo, hi in zip(df["ci_low"], df["ci_high"])],
        "count": [f"{int(a)}/{int(b)}" if not (pd.isna(a) or pd.isna(b)) else "" for a, b in
                  zip(df["numerator"], df["denominator"])],
        "items": df["n_items"], "judge calls": df["n_calls"], "finished": df["finished_at"],
    })
    st.dataframe(table, hide_index=True)


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
