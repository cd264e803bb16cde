"""Sidebar filters shared by the pages (keys are shared, so a choice carries across pages), and
the deep links between pages: a page's query parameters (`?suite=...`, `?judge=...`) set its
filters when it opens, so a link or a bookmark opens the page as it was shown."""

from __future__ import annotations

from urllib.parse import urlencode

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
    from_link(suite="f_suite")
    return pick("Suite", opts["suites"], "f_suite", with_all=False)


def from_link(**keys: str) -> None:
    """Query parameter -> widget key: a value given in the URL becomes the widget's state once
    (when the page opens), then the widget rules."""
    seen = st.session_state.setdefault("_from_link", {})
    for param, key in keys.items():
        value = st.query_params.get(param)
        if value is not None and seen.get(param) != value:
            seen[param] = value
            st.session_state[key] = value


def href(page: str, **params) -> str:
    """A relative link to an app page with its query parameters (None values left out)."""
    given = {k: v for k, v in params.items() if v is not None}
    return f"{page}?{urlencode(given)}" if given else page


def link(label: str, page: str, **params) -> str:
    """Markdown of a link to an app page (opens in a new tab, so the page the reader is on stays)."""
    return f"[{label}]({href(page, **params)})"


def judge_and_dimension(opts: dict, with_all_dimensions: bool = False) -> tuple[str | None, str | None]:
    llm = [j for j in opts["judges"] if not j.startswith("human:")]
    judge = pick("Judge", llm, "f_judge", with_all=False)
    dimension = pick("Dimension", opts["dimensions"], "f_dimension", with_all=with_all_dimensions)
    return judge, dimension
