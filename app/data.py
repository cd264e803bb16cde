"""Reads and the one write, with a short lock budget: cached for a few seconds, and when a run holds
the file the page keeps the last data it showed (with a warning) instead of waiting."""

from __future__ import annotations

import os
import time
from datetime import datetime

import streamlit as st

from harness import views
from harness.store import StoreBusyError, StoreReadOnlyError

DB_ENV = "HARNESS_APP_DB"
TTL_S = 5
BUSY_SKIP_S = 3.0  # after a busy read, the rest of this page run uses the last data at once
SAVE_LOCK_WAIT_S = 15.0  # a save waits for one of the run's short transactions to commit


def db_path() -> str:
    return os.path.abspath(os.environ.get(DB_ENV, "harness.duckdb"))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _cached(name: str, db: str, args: tuple, kwargs: tuple):
    return getattr(views, name)(views.open_for_viewing(db), *args, **dict(kwargs))


def load(name: str, *args, **kwargs):
    """views.<name>(store, *args, **kwargs), cached; the last result again while the file is busy."""
    key = repr((name, db_path(), args, sorted(kwargs.items())))
    last = st.session_state.setdefault("_last_data", {})
    busy_at = st.session_state.get("_busy_at", 0.0)
    try:
        if key in last and time.monotonic() - busy_at < BUSY_SKIP_S:
            raise StoreBusyError("busy a moment ago")  # one lock wait per page run, not one per read
        value = _cached(name, db_path(), args, tuple(sorted(kwargs.items())))
    except StoreBusyError:
        st.session_state["_busy_at"] = time.monotonic()
        if key not in last:
            st.warning("The database is busy (a run is writing to it). Retrying: refresh in a moment.")
            st.stop()
        value, when = last[key]
        st.warning(f"The database is busy (a run is writing to it): showing data from {when:%H:%M:%S}.")
        return value
    last[key] = (value, datetime.now())
    return value


def save_verdicts(**kwargs) -> int:
    """Takes the write lock only for this one transaction. Everything else the app does only reads,
    so it browses a read-only file; only saving needs a writable one, and says so."""
    store = views.open_for_viewing(db_path(), lock_wait_s=SAVE_LOCK_WAIT_S)
    try:
        n = views.save_human_verdicts(store, **kwargs)
    except StoreReadOnlyError as exc:
        st.error(f"Verdicts not saved: {exc}")
        st.stop()
    _cached.clear()
    return n


def refresh() -> None:
    _cached.clear()
