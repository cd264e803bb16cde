"""Answers: one question, two models side by side (every turn, rendered as markdown), every judge's
verdicts in both orders with the merged outcome the board used and each dimension's raw output;
search by text, filter by disagreement; each turn links to its battle in the Battle viewer."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.data import load
from app.filters import link, options, pick, suite as pick_suite


def render() -> None:
    st.title("Answers")
    opts = options()
    suite = pick_suite(opts)
    set_name = pick("Set", opts["sets"], "f_set")
    if suite is None:
        st.info("No suite has been run yet: `harness run quickstart` fills the store.")
        return
    search = st.text_input("Search question or answer text", key="a_search")
    only = st.toggle("Only where judges disagree or flip under swap", key="a_disagree")
    found = load("questions", suite, set_name, search.strip(), only)
    if not found:
        st.info("No judged question matches.")
        return
    labels = {f"{q['set_name']}/{q['question_id']}": q for q in found}
    key = st.selectbox(f"Question ({len(found)} found)", list(labels), key="a_question",
                       format_func=lambda k: f"{k} · {labels[k]['category']} · {_flags(labels[k])} · "
                                             f"{labels[k]['first_turn'][:70]}")
    q = labels[key]
    pairs = load("question_pairs", q["set_name"], q["question_id"])
    if not pairs:
        st.info("No pairwise judgment of this question.")
        return
    x, y = st.selectbox("Models", pairs, key="a_pair", format_func=lambda p: f"{p[0]}  vs  {p[1]}")
    conv = load("conversation", suite, q["set_name"], q["question_id"], x, y)
    _side_by_side(conv, suite, x, y)
    _verdicts(conv, x, y)


def _flags(q: dict) -> str:
    flags = [name for name, on in (("swap flip", q["swap_inconsistent"]), ("judges disagree", q["judges_disagree"]))
             if on]
    return ", ".join(flags) or "consistent"


def _side_by_side(conv, suite: str, x: str, y: str) -> None:
    st.caption(f"Category: {conv.category}")
    judged = {j["turn"] for j in conv.judgments}
    for t, prompt in enumerate(conv.turns, start=1):
        with st.chat_message("user"):
            st.markdown(f"**Turn {t}**" + (" · " + link("open this battle (judge inputs, outputs, likelihoods)",
                                                       "battle", suite=suite, set=conv.set_name, q=conv.question_id,
                                                       turn=t, x=x, y=y) if t in judged else ""))
            st.markdown(prompt)
        for col, model in zip(st.columns(2), (x, y)):
            with col, st.container(border=True):
                st.markdown(f"**{model}**")
                texts = conv.answers.get(model, [])
                st.markdown(texts[t - 1] if len(texts) >= t else "_(not judged at this turn)_")


def _verdicts(conv, x: str, y: str) -> None:
    st.subheader("Verdicts")
    if not conv.judgments:
        st.caption("No verdicts.")
        return
    df = pd.DataFrame(conv.judgments)
    df["order"] = [f"{a} shown first" for a in df["shown_first"]]
    df["winner"] = df["winner"].fillna("(unparsed)")
    df["merged"] = df["merged_winner"].fillna("-")
    st.caption("`merged`: the battle's outcome on the board (both orders, the suite's merge policy). "
               "Rows with counted = false are history: an older judge or model version, never mixed in.")
    st.dataframe(df[["turn", "judge", "dimension", "order", "verdict", "winner", "merged", "counted", "status",
                     "attempts"]], hide_index=True)
    for (turn, judge, first), group in df[df["counted"]].groupby(["turn", "judge", "shown_first"], sort=True):
        verdicts = ", ".join(f"{r.dimension}: {r.winner}" for r in group.itertuples())
        with st.expander(f"turn {turn} · {judge} · {first} first · {verdicts}"):
            # one output per call: shared by the dimensions judged together, one each when judged apart
            for output, part in group.groupby("raw_output", sort=False):
                st.caption("output for " + ", ".join(part["dimension"]))
                st.code(output or "(empty)", language=None, wrap_lines=True)
