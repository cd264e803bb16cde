"""The app's Submit page in headless Chromium: paste a suite, submit it to a real `harness serve`
with a token, watch it finish, see its leaderboard (the service's board for that suite)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.stub_server import StubServer
from tests.test_app_browser import ARGS, CHROMIUM, NEEDS_CHROMIUM, _up, free_port
from tests.test_service import REPO, Service, suite_text, token_for, wait_until, write_questions

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]


def test_the_submit_page_submits_a_pasted_suite_and_shows_it_finishing(tmp_path):
    pytest.importorskip("streamlit")
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "data"
    write_questions(data, 3)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    with StubServer() as stub:
        service = Service(db, tmp_path / "serve.log", "--workers", "1", "--data-root", str(data))
        port = free_port()
        # The app browses the service's own store, and knows the service's URL; the token is typed in.
        env = {**os.environ, "HARNESS_SERVER": service.url, "HARNESS_TOKEN": ""}
        app = subprocess.Popen([sys.executable, "-m", "harness.cli", "app", "--db", str(db), "--port", str(port)],
                               cwd=REPO, env=env, stdout=(tmp_path / "app.log").open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(url) or app.poll() is not None, 60, "harness app to listen", every=0.2)
            assert app.poll() is None, (tmp_path / "app.log").read_text()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1200})
                    page.goto(f"{url}/submit")
                    expect(page.get_by_role("heading", name="Submit a job")).to_be_visible(timeout=60_000)
                    page.get_by_label("Token", exact=True).fill(token)
                    page.get_by_label("Token", exact=True).press("Enter")
                    page.get_by_text("Paste YAML").click()
                    page.get_by_label("Suite YAML").fill(suite_text(stub.base_url, "browser", models=("m1", "m2")))
                    page.get_by_role("button", name="Submit").click()
                    expect(page.get_by_text("Leaderboard: browser")).to_be_visible(timeout=120_000)
                    heading = page.get_by_role("heading", name="finished").first.inner_text()
                    assert page.locator("[data-testid='stException']").count() == 0
                    page.screenshot(path=str(tmp_path / "submit.png"), full_page=True)
                finally:
                    browser.close()
            with service.client(token) as client:
                jobs = client.get("/v1/jobs").json()
                board = client.get("/v1/leaderboard", params={"suite": "browser"}).json()
        finally:
            app.terminate()
            app.wait(timeout=30)
            service.stop()
    assert len(jobs) == 1 and jobs[0]["state"] == "finished" and jobs[0]["submitter"] == "alice"
    assert heading == f"Job {jobs[0]['id']}: finished"
    assert {r["model"] for r in board["rows"]} == {"m1", "m2"}
