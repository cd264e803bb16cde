"""Sidebar filters shared by the pages (keys are shared, so a choice carries across pages)."""

from __future__ import annotations

import streamlit as st

from app.data import load

ALL = "all"


def options() -> dict[str, list[str]]:
    return load("filter_options")


def pick(label: str, values: list[str], key: str, with_all: bool = True) -> str | None:
    choices = ([ALL] if with_all else []) + list(values)
    if not choices:
        return None
    if st.session_state.get(key) not in choices:
        st.session_state.pop(key, None)
    value = st.sidebar.selectbox(label, choices, key=key)
    return None if value == ALL else value


def suite(opts: dict) -> str | None:
    """The suite whose judges, sets and merge policy every battle view uses (shared across pages)."""
    return pick("Suite", opts["suites"], "f_suite", with_all=False)


def judge_and_dimension(opts: dict, with_all_dimensions: bool = False) -> tuple[str | None, str | None]:
    llm = [j for j in opts["judges"] if not j.startswith("human:")]
    judge = pick("Judge", llm, "f_judge", with_all=False)
    dimension = pick("Dimension", opts["dimensions"], "f_dimension", with_all=with_all_dimensions)
    return judge, dimension
