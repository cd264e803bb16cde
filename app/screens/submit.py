"""Submit: send a suite (built-in, stored, or pasted YAML) to a running `harness serve` with a
token, watch its progress live, and open its leaderboard when it is done.

Everything goes through the service's HTTP API (harness.service.client), never the store: the page
works against a service on another machine, and the service decides what the token may do. The
service URL and token default to $HARNESS_SERVER and $HARNESS_TOKEN of the app's environment.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

FINAL = ("finished", "failed", "cancelled")
KINDS = ("run", "ratings", "closed")


def render() -> None:
    st.title("Submit a job")
    server = st.text_input("Service URL", os.environ.get("HARNESS_SERVER", "http://127.0.0.1:8008"), key="svc_url")
    token = st.text_input("Token", os.environ.get("HARNESS_TOKEN", ""), type="password", key="svc_token",
                          help="Printed by `harness tokens create NAME` on the server.")
    with st.form("submit_job"):
        source = st.radio("Suite", ["Built-in or stored suite", "Paste YAML"], horizontal=True)
        name = st.text_input("Suite name", "quickstart")
        text = st.text_area("Suite YAML", height=220)
        kind = st.selectbox("Kind", KINDS)
        priority = st.number_input("Priority", -1000, 1000, 0)
        sent = st.form_submit_button("Submit")
    if sent:
        _submit(server, token, source, name, text, kind, int(priority))
    if st.session_state.get("svc_job"):
        _watch(server, token)


def _client(server: str, token: str):
    from harness.service.client import Client

    return Client(server, token or None, timeout_s=30)


def _submit(server: str, token: str, source: str, name: str, text: str, kind: str, priority: int) -> None:
    from harness.service.client import ServiceError

    fields = {"suite": text, "filename": "pasted suite"} if source == "Paste YAML" else {"suite_name": name.strip()}
    try:
        with _client(server, token) as client:
            st.session_state["svc_job"] = client.submit(kind=kind, priority=priority, **fields)
    except ServiceError as exc:  # the service's one line: bad suite, bad token, path outside the roots
        st.error(str(exc))


@st.fragment(run_every=1.0)
def _watch(server: str, token: str) -> None:
    """Re-runs every second on its own (the rest of the page stays as it is); once the job has
    ended, its last state is kept and the service is not asked again."""
    from harness.service.client import ServiceError

    job_id = st.session_state["svc_job"]
    ended = st.session_state.get("svc_ended")
    if ended is None or ended[0]["id"] != job_id:
        try:
            with _client(server, token) as client:
                job = client.job(job_id)
                board = client.leaderboard(job["suite"]) if job["state"] == "finished" and job["suite"] else None
        except ServiceError as exc:
            st.warning(f"job {job_id}: {exc}")
            return
        if job["state"] in FINAL:
            st.session_state["svc_ended"] = (job, board)
    else:
        job, board = ended
    _show(job, board)


def _show(job: dict, board: dict | None) -> None:
    st.subheader(f"Job {job['id']}: {job['state']}")
    st.caption(f"{job['kind']} · suite {job['suite']} · submitted by {job['submitter']} · attempt {job['attempts']}")
    for label, bar in job["progress"].items():
        st.progress(bar["done"] / bar["total"] if bar["total"] else 1.0, text=f"{label}: {bar['done']}/{bar['total']}")
    if job["state"] not in FINAL:
        return
    calls = job["calls"]
    if calls["made"] is not None:
        st.caption(f"{calls['made']} calls made, {calls['cached']} from cache, {calls['failed']} failed")
    if job["error"]:
        (st.error if job["state"] == "failed" else st.warning)(job["error"])
    if board:
        st.subheader(f"Leaderboard: {job['suite']}")
        rows = pd.DataFrame(board["rows"])
        st.dataframe(rows[["judge_name", "dimension", "method", "model", "rating", "ci_low", "ci_high", "battles"]],
                     hide_index=True)
        st.markdown("[Open it on the Leaderboard page](leaderboard) (when this app browses the service's store)")
