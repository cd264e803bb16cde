"""Reads and the writes (people's verdicts), with a short lock budget. A read is cached until the
store's data changes (views.data_version, checked at most every few seconds), so a slow refit (a set
filter, human verdicts, the paired tests) runs once per change of the data, not on every click; when
a run holds the file the page keeps the last data it showed (with a warning) instead of waiting."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from datetime import datetime

import streamlit as st

from harness import views
from harness.store import StoreBusyError, StoreReadOnlyError

DB_ENV = "HARNESS_APP_DB"
TTL_S = 5
BUSY_SKIP_S = 10.0  # after a busy read, the rest of this page run (and a rerun soon after) uses the last data at once
SAVE_LOCK_WAIT_S = 15.0  # a save waits for one of the run's short transactions to commit


def db_path() -> str:
    return os.path.abspath(os.environ.get(DB_ENV, "harness.duckdb"))


CACHE_ENTRIES = 512


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _version(db: str) -> tuple:
    return views.data_version(views.open_for_viewing(db))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def _cached(name: str, db: str, version: tuple, args: tuple, kwargs: tuple):
    return getattr(views, name)(views.open_for_viewing(db), *args, **dict(kwargs))


def load(name: str, *args, progress: str | None = None, **kwargs):
    """views.<name>(store, *args, **kwargs), cached; the last result again while the file is busy.
    `progress`: what a slow read (a refit) says while it runs the first time for this data."""
    key = repr((name, db_path(), args, sorted(kwargs.items())))
    last = st.session_state.setdefault("_last_data", {})
    busy_at = st.session_state.get("_busy_at", 0.0)
    try:
        if key in last and time.monotonic() - busy_at < BUSY_SKIP_S:
            raise StoreBusyError("busy a moment ago")  # one lock wait per page run, not one per read
        with st.spinner(progress) if progress else nullcontext():
            value = _cached(name, db_path(), _version(db_path()), args, tuple(sorted(kwargs.items())))
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


def write(name: str, *args, **kwargs):
    """views.<name>(store, ...) that writes (save or undo a person's verdicts): takes the write lock
    only for this one transaction. Everything else the app does only reads, so it browses a
    read-only file; only writing needs a writable one, and says so."""
    store = views.open_for_viewing(db_path(), lock_wait_s=SAVE_LOCK_WAIT_S)
    try:
        result = getattr(views, name)(store, *args, **kwargs)
    except StoreReadOnlyError as exc:
        st.error(f"Not saved: {exc}")
        st.stop()
    refresh()
    return result


def save_verdicts(**kwargs) -> int:
    return write("save_human_verdicts", **kwargs)


def refresh() -> None:
    _version.clear()
    _cached.clear()
