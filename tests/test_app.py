"""AppTest tests of every page of the Streamlit app over a small synthetic store, plus the views
and the `harness app` command. Fast: no model, no browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from harness import views  # noqa: E402
from tests.app_store import build_store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAIN = str(REPO / "app" / "main.py")


def _page(module: str) -> None:
    import importlib

    importlib.import_module(module).render()


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("app") / "small.duckdb"
    build_store(path)
    return path


@pytest.fixture
def db(small_db, tmp_path, monkeypatch) -> Path:
    """A private copy of the small store (tests write human verdicts), pointed at by HARNESS_APP_DB."""
    path = tmp_path / "app.duckdb"
    path.write_bytes(small_db.read_bytes())
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    return path


def run_page(name: str, **state) -> AppTest:
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_function(_page, args=(f"app.screens.{name}",), default_timeout=30)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.success, *at.error, *at.title, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


# --- pages --------------------------------------------------------------------------------------
def test_leaderboard_shows_every_model_with_intervals_and_a_csv(db):
    at = run_page("leaderboard")
    assert at.title[0].value == "Leaderboard"
    assert len(charts(at)) >= 2  # ratings with CIs, closed-set metrics
    assert "4 models: model-00, model-01, model-02, model-03" in texts(at)
    assert "lm-eval tasks: arc_easy (model-00: n=50, 0-shot" in texts(at)
    assert "significantly" in texts(at)
    assert at.get("download_button")
    at.selectbox(key="f_category").set_value("coding").run()
    assert not at.exception
    at.radio(key="f_method").set_value("elo").run()
    assert not at.exception and "Elo ratings" in texts(at)


def test_leaderboard_recomputes_live_for_a_set_or_with_human_verdicts(db):
    at = run_page("leaderboard", f_judge="judge-x")
    at.toggle(key="f_humans").set_value(True).run()
    assert not at.exception
    assert "Recomputed live" in texts(at)
    assert charts(at)


def test_pairwise_draws_the_matrix_counts_and_categories(db):
    at = run_page("pairwise")
    assert at.title[0].value == "Pairwise"
    assert len(charts(at)) == 3
    at.selectbox(key="f_dimension").set_value("helpfulness").run()
    at.selectbox(key="f_category").set_value("math").run()
    assert not at.exception and len(charts(at)) >= 2


def test_answers_side_by_side_with_verdicts_search_and_disagreement_filter(db):
    at = run_page("answers")
    assert "Answer of model" in "\n".join(t.value for t in at.text)
    assert at.dataframe and at.expander  # verdicts table and raw outputs, both orders
    orders = set(at.dataframe[0].value["order"])
    assert len(orders) == 2
    at.text_input(key="a_search").set_value("lighthouse").run()
    found = at.selectbox(key="a_question").options
    assert found and all("lighthouse" in o for o in found)
    at.text_input(key="a_search").set_value("").run()
    at.toggle(key="a_disagree").set_value(True).run()
    assert all("consistent ·" not in o for o in at.selectbox(key="a_question").options)


def test_judges_panel_then_human_agreement_after_annotating(db):
    at = run_page("judges")
    assert "No human verdicts yet" in texts(at)
    assert "No judge-eval results stored yet" in texts(at)
    assert len(charts(at)) >= 3  # reliability, judge x judge, self-preference
    item = views.annotation_queue(views.open_for_viewing(db), "synthetic", "bob")[0]
    _annotate(db, "bob", item)
    at = run_page("judges")
    assert "No human verdicts yet" not in texts(at)
    agreement = views.human_agreement(views.open_for_viewing(db), "synthetic")
    assert {r["human"] for r in agreement} == {"human:bob"} and {r["judge"] for r in agreement} == {"judge-x", "judge-y"}


def test_runs_and_lineage(db):
    at = run_page("runs")
    assert "1 failed" in texts(at) and "1 finished" in texts(at)
    assert at.get("graphviz_chart")
    assert len(charts(at)) >= 3  # run times, deltas, training curves


def test_runs_page_explains_an_empty_lineage(tmp_path, monkeypatch):
    path = tmp_path / "bare.duckdb"
    build_store(path, lineage=False)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("runs")
    assert "No trained models yet" in texts(at)


def test_annotate_blind_and_stored_as_a_human_judgment(db):
    at = run_page("annotate")
    assert "Enter your name" in texts(at)
    at.text_input(key="ann_name").set_value("alice").run()
    shown = views.annotation_queue(views.open_for_viewing(db), "synthetic", "alice")[0]
    page_text = "\n".join(t.value for t in at.text) + texts(at)
    assert "model-0" not in page_text  # blind: no model names anywhere on the page
    radios = [r for r in at.radio if r.key and r.key.startswith("v-")]
    assert radios
    for r in radios:
        r.set_value("Response 1 is better")
    at.button[0].click().run()  # "Save verdicts" (form submit)
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved" in s.value for s in at.success)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT judge_name, verdict, model_a, model_b, answer_a, dimension, kind, status"
                           " FROM judgments WHERE judge_name LIKE 'human:%'").fetchall()
    assert len(rows) == len(radios)
    assert {r[0] for r in rows} == {"human:alice"} and {r[1] for r in rows} == {"A"}
    assert all(r[4].startswith(f"ans-{int(r[2][-2:])}-") for r in rows)  # model_a shown first, with its answer
    assert {r[2] for r in rows} | {r[3] for r in rows} == {shown["x"], shown["y"]}
    assert shown not in views.annotation_queue(views.open_for_viewing(db), "synthetic", "alice")  # settled: out of the queue


def test_main_routes_to_the_leaderboard(db):
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.run()
    assert not at.exception and at.title[0].value == "Leaderboard"


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_file_without_the_schema_says_run_harness_first_and_is_not_written(tmp_path, monkeypatch, kind):
    path = tmp_path / "nothing.duckdb"
    if kind == "empty":
        duckdb.connect(str(path)).close()
    before = path.read_bytes() if path.exists() else None
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "harness run" in at.error[0].value
    assert (path.read_bytes() if path.exists() else None) == before  # never migrated, never created


def test_a_busy_file_shows_the_last_data_with_a_warning_quickly(db):
    at = run_page("leaderboard")
    assert charts(at)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
                               " print('held', flush=True); sys.stdin.read()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        import streamlit as st

        st.cache_data.clear()
        start = time.monotonic()
        at.run()
        elapsed = time.monotonic() - start
    finally:
        holder.stdin.close()
        holder.wait()
    assert not at.exception
    assert any("busy" in w.value for w in at.warning)
    assert charts(at)  # the last data, still drawn
    assert elapsed < 6  # one short lock wait (2 s), never the 30 s default


# --- views and the CLI --------------------------------------------------------------------------
def _annotate(db: Path, name: str, item: dict, verdict: str = "A") -> None:
    store = views.open_for_viewing(db, lock_wait_s=10)
    details = views.annotation_item(store, "synthetic", item)
    views.save_human_verdicts(store, name, item, item["y"], item["x"], details["answer_ids"][item["y"]],
                              details["answer_ids"][item["x"]], {d: verdict for d in item["dimensions"]})


def test_human_verdicts_settle_battles_in_the_joint_ratings(db):
    store = views.open_for_viewing(db)
    queue = views.annotation_queue(store, "synthetic", "carol", limit=50, audit=50)
    assert {q["reason"] for q in queue} >= {"swap-inconsistent", "audit"}
    for item in queue:  # carol always prefers the model shown first, which is item["y"]
        _annotate(db, "carol", item)
    without = {r["model"]: r for r in views.joint_ratings(store, "synthetic", "judge-x", "accuracy", include_humans=False)
               if r["method"] == "bt"}
    joint = {r["model"]: r for r in views.joint_ratings(store, "synthetic", "judge-x", "accuracy") if r["method"] == "bt"}
    assert set(joint) == set(without)
    assert next(iter(joint.values()))["human_battles"] > 0
    assert any(abs(joint[m]["rating"] - without[m]["rating"]) > 1 for m in joint)
    assert views.annotation_queue(store, "synthetic", "carol", limit=50, audit=50) == []


def test_save_rejects_bad_names_and_verdicts(db):
    store = views.open_for_viewing(db)
    item = views.annotation_queue(store, "synthetic", "dave")[0]
    with pytest.raises(ValueError):
        views.save_human_verdicts(store, "bad name!", item, "a", "b", "x", "y", {"accuracy": "A"})
    with pytest.raises(ValueError):
        views.save_human_verdicts(store, "dave", item, "a", "b", "x", "y", {"accuracy": "left"})


def test_harness_help_does_not_import_streamlit():
    code = ("import sys; from typer.testing import CliRunner; import harness.cli as c;"
            " r = CliRunner().invoke(c.app, ['--help']); assert 'app' in r.output;"
            " print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_harness_app_without_the_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    from harness.cli.browse import streamlit_command
    from harness.errors import MissingExtraError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"alignment-harness\[app\]"):
        streamlit_command(Path("x.duckdb"), 8501)


def test_harness_app_command_line_is_local_headless_and_quiet():
    from harness.cli.browse import app_env, streamlit_command

    cmd = streamlit_command(Path("x.duckdb"), 9999)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "9999"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.fileWatcherType"] == "none"
    assert app_env(Path("x.duckdb"))["HARNESS_APP_DB"] == os.path.abspath("x.duckdb")
