"""Battle: one battle as the judges saw it (like inspect's sample viewer). Both answers rendered as
markdown, every judge's input and output per order and per dimension, likelihoods, the merged
outcome under the suite's policy, the answers' tokens and timing. Opened by links from the board
(a model's battles), the Pairwise heatmap (a pair's battles), the Answers page and the Annotate page:
`battle?suite=S&set=SET&q=QID&turn=T&x=A&y=B` shows one battle, `battle?suite=S&model=A[&opponent=B]
[&judge=J&dimension=D]` lists battles to pick from."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.data import load
from app.filters import from_link, href, link, options, suite as pick_suite
from harness.battle_view import PROMPT_NOTE

BATTLE_PARAMS = ("set", "q", "turn", "x", "y")


def render() -> None:
    st.title("Battle")
    suite = pick_suite(options())
    if suite is None:
        st.info("No suite has been run yet: `harness run quickstart` fills the store.")
        return
    params = st.query_params
    if all(params.get(k) for k in BATTLE_PARAMS):
        _battle(suite, params["set"], params["q"], int(params["turn"]), params["x"], params["y"])
        return
    key = _pick(suite)
    if key is not None:
        _battle(suite, *key)


def _pick(suite: str) -> tuple | None:
    """The list of a model's (or a pair's) battles; the row picked, as a battle key."""
    from_link(model="b_model", opponent="b_opponent", judge="b_judge", dimension="b_dimension")
    opts = options()
    models = sorted({r["model"] for r in load("latest_ratings", suite, "all") if r["method"] == "bt"})
    if not models:
        st.info("No judged battles in this suite yet.")
        return None
    cols = st.columns(4)
    model = _choice(cols[0], "Model", models, "b_model", any_label=None)
    opponent = _choice(cols[1], "Opponent", [m for m in models if m != model], "b_opponent")
    judge = _choice(cols[2], "Judge", [j for j in opts["judges"] if not j.startswith("human:")], "b_judge")
    dimension = _choice(cols[3], "Dimension", opts["dimensions"], "b_dimension")
    found = load("battle_list", suite, judge, dimension, model, opponent)
    if not found:
        st.info("No battles for these choices.")
        return None
    df = pd.DataFrame(found)
    df["open"] = [href("battle", suite=suite, set=r["set_name"], q=r["question_id"], turn=r["turn"], x=r["x"],
                       y=r["y"]) for r in found]
    st.caption(f"{len(df):,} battles (one row per judge and dimension; the merged winner under the suite's policy)"
               + (" — the first 1,000" if len(df) >= 1000 else "") + ". Pick a row to open it here.")
    event = st.dataframe(df[["set_name", "question_id", "turn", "x", "y", "judge", "dimension", "winner", "weight",
                             "consistent", "open"]], hide_index=True, on_select="rerun", selection_mode="single-row",
                         key="b_list", column_config={"open": st.column_config.LinkColumn("link", display_text="open")})
    rows = event.selection.rows if event is not None else []
    if not rows:
        return None
    r = found[rows[0]]
    return r["set_name"], r["question_id"], r["turn"], r["x"], r["y"]


def _choice(where, label: str, values: list[str], key: str, any_label: str | None = "any") -> str | None:
    choices = ([any_label] if any_label else []) + values
    if st.session_state.get(key) not in choices:
        st.session_state.pop(key, None)
    value = where.selectbox(label, choices, key=key)
    return None if value == any_label else value


def _battle(suite: str, set_name: str, question_id: str, turn: int, x: str, y: str) -> None:
    view = load("battle", suite, set_name, question_id, turn, x, y)
    if view is None:
        st.warning(f"No stored judgment of {x} vs {y} on {set_name}/{question_id}, turn {turn}.")
        return
    st.subheader(f"{view.x} vs {view.y}")
    st.caption(f"{set_name}/{question_id} · turn {turn} · category {view.category} · suite {suite} · merge policy "
               f"`{view.policy}` · " + link("this battle's link", "battle", suite=suite, set=set_name, q=question_id,
                                             turn=turn, x=view.x, y=view.y))
    _outcome(view)
    _answers(view)
    _calls(view)


def _outcome(view) -> None:
    st.markdown("**Merged outcome** (both orders under the suite's policy: what the board counted)")
    if not view.merged:
        st.caption("No counted verdict of an LLM judge on this battle.")
        return
    df = pd.DataFrame(view.merged)
    df["winner"] = df["winner"].fillna("(not on the board: dropped or unparsed)")
    st.dataframe(df.pivot(index="judge", columns="dimension", values="winner"))


def _answers(view) -> None:
    for t, prompt in enumerate(view.turns, start=1):
        with st.chat_message("user"):
            st.markdown(f"**Turn {t}**")
            st.markdown(prompt)
        for col, model in zip(st.columns(2), (view.x, view.y)):
            with col, st.container(border=True):
                texts = view.answers.get(model, [])
                st.markdown(f"**{model}**")
                st.markdown(texts[t - 1] if len(texts) >= t else "_(no answer stored for this turn)_")
                cost = view.costs.get(model) or {}
                if t == view.turn and cost:
                    st.caption(f"{cost['prompt_tokens']} prompt + {cost['completion_tokens']} completion tokens · "
                               f"finish: {cost['finish_reason']} · {cost['latency_s']:.2f} s")


def _calls(view) -> None:
    st.subheader("Judges: input and output per order and dimension")
    st.caption(PROMPT_NOTE + " A judge call's own tokens and time are not stored.")
    for call in view.calls:
        with st.container(border=True):
            state = "counted" if call.counted else "history (an older judge or answer version: not counted)"
            st.markdown(f"**{call.judge}** · **{call.shown_first}** shown first, {call.shown_second} second · {state}")
            if call.prompt_problem:
                st.caption(f"Input not shown: {call.prompt_problem}.")
            for part in call.parts:
                _part(part)


def _part(part: dict) -> None:
    dims = ", ".join(part["dimensions"])
    verdicts = pd.DataFrame([{**{k: v for k, v in d.items() if k != "probabilities"},
                              **{f"P({k})": p for k, p in (d["probabilities"] or {}).items()}}
                             for d in part["verdicts"]]).dropna(axis=1, how="all")
    if part["prompt"] is not None:
        with st.expander(f"Judge input for {dims} (rebuilt)"):
            for role, text in part["prompt"]:
                st.caption(role)
                st.code(text, language=None, wrap_lines=True)
    st.markdown(f"Output for **{dims}**")
    st.code(part["raw_output"] or "(empty)", language=None, wrap_lines=True)
    st.dataframe(verdicts, hide_index=True)
