"""Annotate: settle the battles the judges are unsure of, blind.

The queue holds battles a judge contradicted itself on under swap, battles the judges disagree on,
and a few drawn at random for auditing (views.annotation_queue: its true size is shown, with the
person's progress). Model names are hidden and the order is randomised per battle; each verdict is
stored as a judgment of judge `human:<name>`, positional relative to the order shown, one row per
dimension. Keys: 1 / T / 2 settle every dimension at once; Ctrl+Enter saves the choices made;
S skips; U undoes the person's last verdict. A person's verdicts can be edited or undone, and
everyone's exported (JSONL, CSV)."""

from __future__ import annotations

import json
import random

import pandas as pd
import streamlit as st

from app.data import load, save_verdicts, write
from app.filters import link, options, suite as pick_suite

REASONS = {"swap": "inconsistent under swap", "disagree": "judges disagree", "audit": "random audit"}
CHOICES = ("Response 1 is better", "Tie", "Response 2 is better")
VERDICT = dict(zip(CHOICES, ("A", "tie", "B")))
QUICK = (("1", "Response 1 is better"), ("T", "Tie"), ("2", "Response 2 is better"))
BATTLE_KEY = ("set_name", "question_id", "turn", "x", "y")


def render() -> None:
    st.title("Annotate")
    if "ann_saved" in st.session_state:
        st.success(st.session_state.pop("ann_saved"))
    name = st.text_input("Your name (verdicts are stored as judge human:<name>)", key="ann_name").strip()
    reasons = st.multiselect("Queue", list(REASONS), default=list(REASONS), format_func=REASONS.get, key="ann_reasons")
    suite = pick_suite(options())
    if not name or suite is None:
        st.info("Enter your name to start." if suite else "No suite has been run yet.")
        _export()
        return
    queue = [q for q in load("annotation_queue", suite, name, tuple(reasons), None, progress="Reading the queue...")
             if _key(q) not in _skipped()]
    item = st.session_state.get("ann_current") or _shown_next(queue)
    _progress(suite, name, queue)
    if item is None:
        st.info("Nothing left to settle in this queue.")
    else:
        _settle(name, suite, item)
    _mine(name)
    _export()


def _key(item: dict) -> str:
    return "|".join(str(item[k]) for k in BATTLE_KEY)


def _shown_next(queue: list[dict]) -> dict | None:
    """The battle shown on the last rerun while it is still queued, else the queue's head: a run
    writing judgments reorders the queue, and the battle must not change under a person's choices."""
    showing = st.session_state.get("ann_showing")
    item = next((q for q in queue if _key(q) == showing), queue[0] if queue else None)
    st.session_state["ann_showing"] = _key(item) if item else None
    return item


def _skipped() -> set:
    return st.session_state.setdefault("ann_skipped", set())


def _progress(suite: str, name: str, queue: list[dict]) -> None:
    settled = load("annotation_progress", suite, name)["settled"]
    flagged = sum(q["reason"] != "audit" for q in queue)
    total = settled + len(queue)
    st.progress(settled / total if total else 1.0,
                text=f"{settled:,} settled by you · {len(queue):,} left in this queue ({flagged:,} flagged, "
                     f"{len(queue) - flagged:,} random audits)" + (f" · {len(_skipped())} skipped this session"
                                                                   if _skipped() else ""))


def _shown_order(item: dict) -> tuple[str, str]:
    """Randomised once per battle and kept for this session, so reruns do not reshuffle."""
    orders = st.session_state.setdefault("ann_order", {})
    if _key(item) not in orders:
        orders[_key(item)] = random.SystemRandom().random() < 0.5
    return (item["y"], item["x"]) if orders[_key(item)] else (item["x"], item["y"])


def _settle(name: str, suite: str, item: dict) -> None:
    editing = st.session_state.get("ann_current") is not None
    reason = REASONS.get(item["reason"].split("-")[0], item["reason"]) if item.get("reason") else "edit"
    st.caption(("Editing your verdict on this battle · " if editing else f"This one: {reason} · ")
               + f"category {item.get('category', '?')} · turn {item['turn']}")
    details = load("annotation_item", suite, item)
    first, second = _shown_order(item)
    _show(details, first, second)
    choices = {dim: st.radio(dim, CHOICES, index=None, horizontal=True, key=f"v-{_key(item)}-{dim}")
               for dim in item["dimensions"]}
    note = st.text_area("Note (optional; Enter starts a new line)", key=f"note-{_key(item)}", height=68)
    st.caption("Keys (outside the note): **1** / **T** / **2** Response 1 / tie / Response 2 on every dimension, "
               "saved at once · **Ctrl+Enter** save the choices above · **S** skip · **U** undo your last verdict")
    cols = st.columns(6)
    save = cols[0].button("Save verdicts", type="primary", shortcut="Ctrl+Enter", key="ann_save")
    quick = [c for col, (key, c) in zip(cols[1:4], QUICK)
             if col.button(f"All: {c.split(' is')[0].lower()}", shortcut=key, key=f"ann_all_{key}")]
    if cols[4].button("Skip", shortcut="S", key="ann_skip"):
        _skipped().add(_key(item))
        st.session_state.pop("ann_current", None)
        st.rerun()
    if cols[5].button("Undo last", shortcut="U", key="ann_undo"):
        _undo_last(name)
    if quick:
        choices = dict.fromkeys(item["dimensions"], quick[0])
    elif not save:
        return
    if any(v is None for v in choices.values()):
        st.error("Choose a verdict for every dimension.")
        return
    if editing:  # an edit replaces the person's earlier verdicts on the battle, whatever order they saw
        write("undo_human_verdicts", name, item)
    n = save_verdicts(annotator=name, item=item, shown_first=first, shown_second=second,
                      answer_first=details["answer_ids"][first], answer_second=details["answer_ids"][second],
                      verdicts={d: VERDICT[c] for d, c in choices.items()}, note=note)
    st.session_state.pop("ann_current", None)
    st.session_state["ann_saved"] = (f"Saved {n} verdicts as human:{name}. "
                                     + link("See that battle with its models and judges", "battle", suite=suite,
                                            set=item["set_name"], q=item["question_id"], turn=item["turn"],
                                            x=item["x"], y=item["y"]) + " (reveals the names).")
    st.rerun()


def _show(details: dict, first: str, second: str) -> None:
    for t, prompt in enumerate(details["turns"], start=1):
        with st.chat_message("user"):
            st.markdown(f"**Turn {t}**")
            st.markdown(prompt)
        for col, model, label in zip(st.columns(2), (first, second), ("Response 1", "Response 2")):
            with col, st.container(border=True):
                st.markdown(f"**{label}**")
                texts = details["answers"][model]
                st.markdown(texts[t - 1] if len(texts) >= t else "")


def _as_item(rows: list[dict]) -> dict:
    """A battle of the person's verdict rows, shaped as a queue item (to edit it)."""
    head = rows[0]
    return {**{k: head[k] for k in BATTLE_KEY}, "dimensions": sorted({r["dimension"] for r in rows}),
            "reason": head["queue_reason"] or "edit", "category": "", "flip": False, "disagree": False}


def _battles_of(rows: list[dict]) -> list[list[dict]]:
    by_battle: dict[tuple, list[dict]] = {}
    for r in rows:
        by_battle.setdefault(tuple(r[k] for k in BATTLE_KEY), []).append(r)
    return list(by_battle.values())  # newest first: the rows come newest first


def _undo_last(name: str) -> None:
    battles = _battles_of(load("human_verdicts", name))
    if not battles:
        st.session_state["ann_saved"] = "Nothing to undo."
        st.rerun()
    n = write("undo_human_verdicts", name, battles[0][0])
    st.session_state["ann_current"] = _as_item(battles[0])
    st.session_state["ann_saved"] = f"Undid your last verdict ({n} rows); it is shown again below."
    st.rerun()


def _mine(name: str) -> None:
    """The person's own verdicts, blind (positions, not names): pick one to edit or undo."""
    battles = _battles_of(load("human_verdicts", name))
    st.subheader(f"Your verdicts ({len(battles):,} battles)")
    if not battles:
        st.caption("None yet.")
        return
    side = {"A": "Response 1", "B": "Response 2", "tie": "tie"}
    table = pd.DataFrame([{"question": f"{b[0]['set_name']}/{b[0]['question_id']}", "turn": b[0]["turn"],
                           "verdicts": ", ".join(f"{r['dimension']}: {side.get(r['verdict'], r['verdict'])}"
                                                 for r in sorted(b, key=lambda r: r["dimension"])),
                           "note": b[0]["note"], "saved": b[0]["created_at"]} for b in battles])
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row", key="ann_mine")
    rows = event.selection.rows if event is not None else []
    if not rows:
        st.caption("Pick a row to edit or undo it.")
        return
    chosen = battles[rows[0]]
    left, right = st.columns(2)
    if left.button("Edit this verdict", key="ann_edit"):
        st.session_state["ann_current"] = _as_item(chosen)
        st.rerun()
    if right.button("Undo this verdict", key="ann_undo_one"):
        n = write("undo_human_verdicts", name, chosen[0])
        st.session_state["ann_saved"] = f"Removed {n} rows: the battle counts with the judges' verdicts again."
        st.rerun()


def _export() -> None:
    rows = load("human_verdicts")
    st.subheader("Export everyone's verdicts")
    if not rows:
        st.caption("No human verdicts stored yet.")
        return
    df = pd.DataFrame(rows)
    left, right = st.columns(2)
    left.download_button("Download JSONL", "".join(json.dumps(r, default=str) + "\n" for r in rows).encode(),
                         "human_verdicts.jsonl", "application/jsonl", key="ann_jsonl")
    right.download_button("Download CSV", df.to_csv(index=False).encode(), "human_verdicts.csv", "text/csv",
                          key="ann_csv")
    st.caption(f"{len(rows):,} rows (one per battle and dimension) from {df['annotator'].nunique()} people.")
