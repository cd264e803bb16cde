"""Annotate: settle the battles the judges are unsure of, blind.

The queue holds battles a judge contradicted itself on under swap, battles the judges disagree on,
and a few drawn at random for auditing. Model names are hidden and the order is randomised per
battle; each verdict is stored as a judgment of judge `human:<name>`, positional relative to the
order shown, one row per dimension."""

from __future__ import annotations

import random

import streamlit as st

from app.data import load, save_verdicts
from app.filters import options, suite as pick_suite

REASONS = {"swap": "inconsistent under swap", "disagree": "judges disagree", "audit": "random audit"}
CHOICES = ("Response 1 is better", "Tie", "Response 2 is better")
VERDICT = dict(zip(CHOICES, ("A", "tie", "B")))


def render() -> None:
    st.title("Annotate")
    if "ann_saved" in st.session_state:
        st.success(st.session_state.pop("ann_saved"))
    name = st.text_input("Your name (verdicts are stored as judge human:<name>)", key="ann_name").strip()
    reasons = st.multiselect("Queue", list(REASONS), default=list(REASONS), format_func=REASONS.get, key="ann_reasons")
    suite = pick_suite(options())
    if not name or suite is None:
        st.info("Enter your name to start." if suite else "No suite has been run yet.")
        return
    queue = [q for q in load("annotation_queue", suite, name, tuple(reasons)) if _key(q) not in _skipped()]
    if not queue:
        st.info("Nothing left to settle in this queue.")
        return
    item = queue[0]
    st.caption(f"{len(queue)} battles in the queue · this one: {REASONS.get(item['reason'].split('-')[0], item['reason'])}"
               f" · category {item['category']} · turn {item['turn']}")
    details = load("annotation_item", suite, item)
    first, second = _shown_order(item)
    _show(details, first, second)
    _form(name, item, details, first, second)


def _key(item: dict) -> str:
    return "|".join(str(item[k]) for k in ("set_name", "question_id", "turn", "x", "y"))


def _skipped() -> set:
    return st.session_state.setdefault("ann_skipped", set())


def _shown_order(item: dict) -> tuple[str, str]:
    """Randomised once per battle and kept for this session, so reruns do not reshuffle."""
    orders = st.session_state.setdefault("ann_order", {})
    if _key(item) not in orders:
        orders[_key(item)] = random.SystemRandom().random() < 0.5
    return (item["y"], item["x"]) if orders[_key(item)] else (item["x"], item["y"])


def _show(details: dict, first: str, second: str) -> None:
    for t, prompt in enumerate(details["turns"], start=1):
        st.markdown(f"**Turn {t}: user**")
        st.info(prompt)
        for col, model, label in zip(st.columns(2), (first, second), ("Response 1", "Response 2")):
            with col:
                st.markdown(f"**{label}**")
                texts = details["answers"][model]
                st.text(texts[t - 1] if len(texts) >= t else "")


def _form(name: str, item: dict, details: dict, first: str, second: str) -> None:
    with st.form(f"verdict-{_key(item)}"):
        choices = {dim: st.radio(dim, CHOICES, index=None, horizontal=True, key=f"v-{_key(item)}-{dim}")
                   for dim in item["dimensions"]}
        note = st.text_input("Note (optional)")
        submitted = st.form_submit_button("Save verdicts", type="primary")
    if st.button("Skip this battle"):
        _skipped().add(_key(item))
        st.rerun()
    if not submitted:
        return
    if any(v is None for v in choices.values()):
        st.error("Choose a verdict for every dimension.")
        return
    n = save_verdicts(annotator=name, item=item, shown_first=first, shown_second=second,
                      answer_first=details["answer_ids"][first], answer_second=details["answer_ids"][second],
                      verdicts={d: VERDICT[c] for d, c in choices.items()}, note=note)
    st.session_state["ann_saved"] = f"Saved {n} verdicts as human:{name}."
    st.rerun()
