"""Entry point: `harness app` runs `streamlit run app/main.py` with HARNESS_APP_DB set."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `app` importable however streamlit is started

from app.data import db_path, refresh  # noqa: E402
from app.screens import annotate, answers, battle, judges, leaderboard, pairwise, runs  # noqa: E402
from app.screens import submit  # noqa: E402
from harness import views  # noqa: E402
from harness.store import StoreBusyError, StoreError  # noqa: E402

# Every page has its own URL (`/pairwise`, `/battle?...`). Streamlit serves the default page at `/`
# only (its own pathname is reserved but not served), so the board is also registered, hidden from
# the menu, at `/leaderboard`.
PAGES = [
    st.Page(leaderboard.render, title="Leaderboard", url_path="home", default=True),
    st.Page(leaderboard.render, title="Leaderboard", url_path="leaderboard", visibility="hidden"),
    st.Page(pairwise.render, title="Pairwise", url_path="pairwise"),
    st.Page(answers.render, title="Answers", url_path="answers"),
    st.Page(battle.render, title="Battle", url_path="battle"),
    st.Page(judges.render, title="Judges", url_path="judges"),
    st.Page(runs.render, title="Runs and lineage", url_path="runs"),
    st.Page(annotate.render, title="Annotate", url_path="annotate"),
]
PAGES.append(st.Page(submit.render, title="Submit a job", url_path="submit"))


def main() -> None:
    st.set_page_config(page_title="alignment-harness", layout="wide")
    page = st.navigation(PAGES)
    st.sidebar.caption(f"Database: `{db_path()}`")
    if st.sidebar.button("Refresh data"):
        refresh()
    try:
        store = views.open_for_viewing(db_path(), lock_wait_s=0.5)
        problem = views.schema_problem(store)
        if problem is None:
            store.check_schema()  # read-only; a newer harness's file is refused, not misread
    except StoreBusyError:
        problem = None  # a run holds the file right now: the pages show their last data
    except StoreError as exc:  # not a DuckDB file, a newer schema, unreadable
        problem = str(exc)
    if problem:
        st.error(problem)
        st.stop()
    page.run()


main()
