"""AppTest tests of every page of the Streamlit app over a small synthetic store, plus the views
and the `harness app` command. Fast: no model, no browser."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

from dataclasses import replace

import duckdb
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from harness import views  # noqa: E402
from harness.api import rate as rate_suite  # noqa: E402
from harness.calibration import annotate_priority  # noqa: E402
from harness.battles import battles as merged_battles, counted_rows, for_suite, human_rows, sort_key  # noqa: E402
from harness.leaderboard import rate as rate_battles  # noqa: E402
from judges.merge import POLICIES, Battle  # noqa: E402
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
    at = AppTest.from_function(_page, args=(f"app.screens.{name}",), default_timeout=120)  # a busy shared machine
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


def chart_data(chart) -> pd.DataFrame:
    """The rows a drawn chart holds (its Arrow datasets)."""
    import pyarrow as pa

    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
    assert frames, "the chart carries no data"
    return pd.concat(frames, ignore_index=True)


def ratings_on_page(at: AppTest) -> list[dict]:
    """The Leaderboard's ratings chart rows (one chart per panel: ratings with CIs), every panel."""
    frames = [chart_data(c) for c in charts(at) if "vs next below" in c.proto.spec]
    return pd.concat(frames, ignore_index=True).to_dict("records")


def _bkey(b) -> tuple:
    return (b.set_name, b.question_id, b.turn, b.dimension, min(b.model_a, b.model_b), max(b.model_a, b.model_b))


def settle_battle(store, name: str, b: Battle, winner: str, dimension: str | None = None) -> None:
    """Person `name` says `winner` (a model, or 'tie') won battle `b` on `dimension` (b's by default),
    shown b.model_b first, through the app's write."""
    item = {"set_name": b.set_name, "question_id": b.question_id, "turn": b.turn, "x": b.model_a, "y": b.model_b,
            "reason": "audit"}
    verdict = "tie" if winner == "tie" else "A" if winner == b.model_b else "B"
    views.save_human_verdicts(store, name, item, b.model_b, b.model_a, b.answer_b, b.answer_a,
                              {dimension or b.dimension: verdict})


# --- pages --------------------------------------------------------------------------------------
def test_leaderboard_shows_every_model_with_intervals_and_a_csv(db):
    at = run_page("leaderboard")
    assert at.title[0].value == "Leaderboard"
    assert len(charts(at)) >= 5  # ratings with CIs per panel (2 judges x 2 dimensions), closed-set metrics
    tables = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert len(tables) == 4 and all(sorted(t["model"]) == [f"model-0{i}" for i in range(4)] for t in tables)
    assert "lm-eval tasks: arc_easy (model-00: n=50, 0-shot" in texts(at)
    assert "significantly" in texts(at)
    assert at.get("download_button")
    at.selectbox(key="f_category").set_value("coding").run()
    assert not at.exception
    at.radio(key="f_method").set_value("elo").run()
    assert not at.exception and "Elo ratings with 95% bootstrap intervals" in texts(at)


def test_leaderboard_recomputes_live_for_a_set_or_with_human_verdicts(db):
    store = views.open_for_viewing(db, lock_wait_s=10)
    config = views.suite_config(store, "synthetic")
    stored = {r["model"]: r["rating"] for r in ratings_on_page(run_page("leaderboard", f_judge="judge-x"))
              if r["panel"] == "judge-x / accuracy"}
    # a set filter refits live from the same battles: the same BT points as the stored board
    at = run_page("leaderboard", f_judge="judge-x", f_set="synth")
    assert "Recomputed live" in texts(at)
    live = {r["model"]: r["rating"] for r in ratings_on_page(at) if r["panel"] == "judge-x / accuracy"}
    assert live == pytest.approx(stored, abs=1e-6)

    # a person overturns two of judge-x's accuracy battles: each one the judge did not give to model_a
    selection = for_suite(config, judges=("judge-x",), dimension="accuracy")
    llm = merged_battles(store, selection, config.ratings.merge)
    flipped = [b for b in llm if b.winner != "model_a"][:2]
    assert len(flipped) == 2 and {b.winner for b in flipped} <= {"model_b", "tie"}
    for b in flipped:
        settle_battle(store, "erin", b, b.model_a)
    settle_battle(store, "erin", next(b for b in merged_battles(store, for_suite(config, judges=("judge-x",),
                  dimension="helpfulness"), config.ratings.merge) if _bkey(b) not in map(_bkey, flipped)),
                  "tie", "helpfulness")  # another dimension: not settled in accuracy

    at = run_page("leaderboard", f_judge="judge-x")
    at.toggle(key="f_humans").set_value(True).run()
    assert not at.exception
    assert "Recomputed live" in texts(at)
    joint = {r["model"]: r["rating"] for r in ratings_on_page(at) if r["panel"] == "judge-x / accuracy"}
    # exactly the people's verdicts in place of the judge's: the flipped battles now won by model_a
    by_hand = [b for b in llm if _bkey(b) not in set(map(_bkey, flipped))] + [
        replace(b, winner="model_a", weight=1.0, consistent=True) for b in flipped]
    expected = {r.model: r.rating for r in rate_battles(sorted(by_hand, key=sort_key), 20, config.ratings.level,
                                                        config.ratings.seed, categories=False) if r.method == "bt"}
    assert joint == pytest.approx(expected, abs=1e-6)
    assert joint != pytest.approx(stored, abs=1e-3)
    rows = views.joint_ratings(store, "synthetic", "judge-x", "accuracy", rounds=20)
    assert {r["human_battles"] for r in rows} == {2}
    assert {r["human_battles"] for r in views.joint_ratings(store, "synthetic", "judge-x", "helpfulness",
                                                            rounds=20)} == {1}


def test_a_battle_a_person_flips_moves_its_winner_up(db):
    store = views.open_for_viewing(db, lock_wait_s=10)
    config = views.suite_config(store, "synthetic")
    llm = merged_battles(store, for_suite(config, judges=("judge-x",), dimension="accuracy"), config.ratings.merge)
    b = next(b for b in llm if b.winner == "model_b")  # the judge gave it to model_b
    bt = lambda rows: {r["model"]: r["rating"] for r in rows if r["method"] == "bt"}  # noqa: E731
    before = bt(views.joint_ratings(store, "synthetic", "judge-x", "accuracy", include_humans=False, rounds=20))
    settle_battle(store, "frank", b, b.model_a)
    after = bt(views.joint_ratings(store, "synthetic", "judge-x", "accuracy", rounds=20))
    assert after[b.model_a] > before[b.model_a] + 1 and after[b.model_b] < before[b.model_b] - 1
    assert after[b.model_a] - after[b.model_b] > before[b.model_a] - before[b.model_b] + 2


def test_a_verdict_on_a_battle_the_judge_never_fought_settles_nothing_for_it(db):
    store = views.open_for_viewing(db, lock_wait_s=10)
    config = views.suite_config(store, "synthetic")
    b = merged_battles(store, for_suite(config, judges=("judge-y",), dimension="accuracy"), config.ratings.merge)[0]
    with store.write() as con:  # judge-x never judged this battle
        con.execute("DELETE FROM judgments WHERE judge_name = 'judge-x' AND question_id = ? AND turn = ?"
                    " AND least(model_a, model_b) = ? AND greatest(model_a, model_b) = ?",
                    [b.question_id, b.turn, b.model_a, b.model_b])
    settle_battle(store, "gina", b, b.model_a)
    x = views.joint_ratings(store, "synthetic", "judge-x", "accuracy", rounds=20)
    y = views.joint_ratings(store, "synthetic", "judge-y", "accuracy", rounds=20)
    assert {r["human_battles"] for r in x} == {0} and {r["human_battles"] for r in y} == {1}
    assert x == views.joint_ratings(store, "synthetic", "judge-x", "accuracy", include_humans=False, rounds=20)


def test_pairwise_draws_the_matrix_counts_and_categories(db):
    at = run_page("pairwise")
    assert at.title[0].value == "Pairwise"
    assert len(charts(at)) == 3
    at.selectbox(key="f_dimension").set_value("helpfulness").run()
    at.selectbox(key="f_category").set_value("math").run()
    assert not at.exception and len(charts(at)) >= 2


def test_answers_side_by_side_with_verdicts_search_and_disagreement_filter(db):
    at = run_page("answers")
    assert "Answer of model" in texts(at)  # rendered as markdown
    assert at.dataframe and at.expander  # verdicts table and raw outputs, both orders
    outputs = [c.value for c in at.code]  # every dimension's raw output, not only the first one's
    assert any("Reason (accuracy)" in o for o in outputs) and any("Reason (helpfulness)" in o for o in outputs)
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
    at.button(key="ann_save").click().run()  # "Save verdicts" (Ctrl+Enter)
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
    assert elapsed < 10  # one short lock wait (2 s) and a render from the last data, never the 30 s default


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


# --- every number against harness.battles, under each merge policy ----------------------------------
@pytest.fixture(scope="module")
def policy_dbs(tmp_path_factory) -> dict[str, Path]:
    """One synthetic store per merge policy (the suite's config says which); the `calibrated` one
    has choice log-likelihoods on every row."""
    folder = tmp_path_factory.mktemp("policies")
    out = {}
    for policy in POLICIES:
        out[policy] = folder / f"{policy}.duckdb"
        build_store(out[policy], merge=policy, choice_logprobs=policy == "calibrated")
    return out


@pytest.fixture(params=POLICIES)
def policy_db(request, policy_dbs, tmp_path, monkeypatch) -> tuple[str, Path]:
    path = tmp_path / f"{request.param}.duckdb"
    path.write_bytes(policy_dbs[request.param].read_bytes())
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    return request.param, path


def _reference(path: Path, policy: str, **narrower) -> list[Battle]:
    """The suite's battles straight from harness.battles (the Python reference merge)."""
    store = views.open_for_viewing(path)
    config = views.suite_config(store, "synthetic")
    assert config.ratings.merge == policy
    return merged_battles(store, for_suite(config, **narrower), policy)


def _winner(b: Battle) -> str:
    return "tie" if b.winner == "tie" else getattr(b, b.winner)


def _expected_matrix(fought: list[Battle]) -> list[dict]:
    cells: dict[tuple, dict] = {}
    for b in fought:
        won = _winner(b)
        for me, other in ((b.model_a, b.model_b), (b.model_b, b.model_a)):
            c = cells.setdefault((me, other), {"battles": 0, "wins": 0.0, "ties": 0.0, "losses": 0.0})
            c["battles"] += 1
            c["ties" if won == "tie" else "wins" if won == me else "losses"] += b.weight
    return [{"model": me, "opponent": other, **c, "win_rate": (c["wins"] + c["ties"] / 2) /
             (c["wins"] + c["ties"] + c["losses"])} for (me, other), c in sorted(cells.items())]


def _records(rows: list[dict]) -> list[dict]:
    return [{k: pytest.approx(v, abs=1e-9) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def test_pairwise_page_matrix_is_the_suites_battles_under_its_merge_policy(policy_db):
    policy, path = policy_db
    fought = _reference(path, policy, judges=("judge-x",), dimension="accuracy")
    expected = _expected_matrix(fought)
    store = views.open_for_viewing(path)
    assert views.pairwise_matrix(store, "synthetic", "judge-x", "accuracy") == _records(expected)
    at = run_page("pairwise", f_judge="judge-x", f_dimension="accuracy")
    assert f"policy ({policy})" in texts(at)
    drawn = chart_data(charts(at)[0]).sort_values(["model", "opponent"])
    assert drawn[["model", "opponent", "battles", "wins", "ties", "losses", "win_rate"]].to_dict("records") \
        == _records(expected)
    # the policy really decides: the same judgments under inconsistent_tie
    tie_rule = merge_with(path, "inconsistent_tie", "judge-x", "accuracy")
    contradicted = {_bkey(b) for b in tie_rule if not b.consistent}
    assert contradicted
    if policy == "inconsistent_tie":
        assert all(b.winner == "tie" for b in fought if _bkey(b) in contradicted)
    elif policy == "drop":
        assert {_bkey(b) for b in fought} == {_bkey(b) for b in tie_rule} - contradicted
    elif policy == "half":
        assert all(b.weight == 0.5 for b in fought if _bkey(b) in contradicted)
        assert any(r["wins"] % 1 for r in expected)  # half battles show as half wins
    else:
        differs = {_bkey(b): _winner(b) for b in fought}.items() - {_bkey(b): _winner(b) for b in tie_rule}.items()
        assert differs, "calibration decided no battle differently from inconsistent_tie"
        assert expected != _expected_matrix(tie_rule)


def merge_with(path: Path, policy: str, judge: str, dimension: str) -> list[Battle]:
    store = views.open_for_viewing(path)
    return merged_battles(store, for_suite(views.suite_config(store, "synthetic"), judges=(judge,),
                                           dimension=dimension), policy)


def test_pairwise_matrix_narrows_to_a_category_and_set(policy_db):
    policy, path = policy_db
    fought = _reference(path, policy, judges=("judge-y",), dimension="helpfulness", category="math", sets=("synth",))
    assert fought
    store = views.open_for_viewing(path)
    assert views.pairwise_matrix(store, "synthetic", "judge-y", "helpfulness", "synth", "math") == \
        _records(_expected_matrix(fought))
    assert views.pairwise_matrix(store, "synthetic", "judge-y", "helpfulness", "other-set") == []
    assert views.pairwise_matrix(store, "synthetic", "judge-of-another-suite", "helpfulness") == []


def test_category_breakdown_is_the_suites_battles(policy_db):
    policy, path = policy_db
    fought = _reference(path, policy, judges=("judge-x",), dimension="helpfulness")
    expected: dict[tuple, list] = {}
    for b in fought:
        for model in (b.model_a, b.model_b):
            c = expected.setdefault((b.category, model), [0, 0.0, 0.0])
            c[0] += 1
            c[1] += b.weight * (0.5 if b.winner == "tie" else float(_winner(b) == model))
            c[2] += b.weight
    got = views.category_breakdown(views.open_for_viewing(path), "synthetic", "judge-x", "helpfulness")
    assert got == _records([{"category": c, "model": m, "battles": n, "win_rate": won / weight}
                            for (c, m), (n, won, weight) in sorted(expected.items())])
    assert {r["category"] for r in got} == {"writing", "reasoning", "coding", "math"}
    at = run_page("pairwise", f_judge="judge-x", f_dimension="helpfulness")
    drawn = chart_data(charts(at)[2]).sort_values(["category", "model"])
    assert drawn[["category", "model", "battles", "win_rate"]].to_dict("records") == _records(got)


def test_self_preference_is_the_suites_battles(policy_db):
    policy, path = policy_db
    rows = views.self_preference(views.open_for_viewing(path), "synthetic")
    expected = []
    for judge in ("judge-x", "judge-y"):  # judge-x runs on model-00's weights
        mine = [b for b in _reference(path, policy, judges=(judge,)) if "model-00" in (b.model_a, b.model_b)]
        won = sum(b.weight * (0.5 if b.winner == "tie" else float(_winner(b) == "model-00")) for b in mine)
        expected.append({"judge": judge, "model": "model-00", "battles": len(mine),
                         "win_rate": won / sum(b.weight for b in mine), "own_model_of_judge": judge == "judge-x"})
    assert rows == _records(expected)
    at = run_page("judges")
    drawn = chart_data(charts(at)[-1]).sort_values("judge")
    assert list(drawn["win_rate"]) == pytest.approx([e["win_rate"] for e in expected], abs=1e-9)
    assert list(drawn["judge"]) == ["judge-x (own model)", "judge-y"]


def _people_settle(path: Path, policy: str) -> None:
    """Two people settle battles of every kind (swap-inconsistent, split, sure), with every verdict."""
    store = views.open_for_viewing(path, lock_wait_s=10)
    fought = list({_bkey(b): b for b in _reference(path, policy, judges=("judge-y",))}.values())  # once each
    for i, b in enumerate(fought[:16]):
        settle_battle(store, "hana", b, (b.model_a, b.model_b, "tie")[i % 3])
        if i % 2:
            settle_battle(store, "ivan", b, (b.model_b, b.model_a)[i % 4 == 1])


def _decided(fought: list[Battle]) -> dict[tuple, dict[str, tuple]]:
    """judge -> battle -> {winner: share of the battle's weight}."""
    out: dict[tuple, dict] = {}
    for b in fought:
        d = out.setdefault(b.judge_name, {}).setdefault(_bkey(b), {})
        d[_winner(b)] = d.get(_winner(b), 0) + b.weight
    return {j: {k: {w: v / sum(d.values()) for w, v in d.items()} for k, d in m.items()} for j, m in out.items()}


def _people(path: Path, **narrower) -> dict[str, dict]:
    store = views.open_for_viewing(path)
    out: dict[str, dict] = {}
    for r in human_rows(store, for_suite(views.suite_config(store, "synthetic"), **narrower)):
        out.setdefault(r.judge_name, {})[_bkey(r)] = {{"A": r.model_a, "B": r.model_b}.get(r.verdict, "tie"): 1.0}
    return out


def _agreement(p: dict, q: dict) -> float:
    return sum(share * q.get(w, 0.0) for w, share in p.items())


def test_human_agreement_is_the_judges_merged_battles_against_peoples_verdicts(policy_db):
    policy, path = policy_db
    _people_settle(path, policy)
    decided, people = _decided(_reference(path, policy)), _people(path)
    assert set(people) == {"human:hana", "human:ivan"}
    rows_of_both_orders: dict[tuple, list] = {}
    for r in counted_rows(views.open_for_viewing(path)):
        rows_of_both_orders.setdefault((r.judge_name, *_bkey(r)), []).append(r)
    contradicted = {k for k, rs in rows_of_both_orders.items()
                    if len(rs) == 2 and None not in (rs[0].verdict, rs[1].verdict)
                    and len({{"A": r.model_a, "B": r.model_b}.get(r.verdict, "tie") for r in rs}) == 2}
    expected = []
    for human in sorted(people):
        for judge in ("judge-x", "judge-y"):
            shared = sorted(set(people[human]) & set(decided[judge]))
            expected.append({"judge": judge, "human": human, "items": len(shared),
                             "agreement": sum(_agreement(decided[judge][k], people[human][k]) for k in shared)
                             / len(shared),
                             "share_swap_inconsistent": sum((judge, *k) in contradicted for k in shared) / len(shared)})
    got = views.human_agreement(views.open_for_viewing(path), "synthetic")
    assert got == _records(expected)
    assert [r["items"] for r in got if r["human"] == "human:hana" and r["judge"] == "judge-y"] == [16]
    assert any(0 < r["agreement"] < 1 for r in got)
    # under `drop` a battle the judge contradicted itself on has no verdict of the judge to compare
    assert any(r["share_swap_inconsistent"] for r in got) is (policy != "drop")
    at = run_page("judges")
    assert "No human verdicts yet" not in texts(at)
    drawn = chart_data(charts(at)[0]).sort_values(["human", "judge"])
    assert list(drawn["agreement"]) == pytest.approx([r["agreement"] for r in sorted(
        expected, key=lambda r: (r["human"], r["judge"]))], abs=1e-9)


@pytest.mark.parametrize("dimension", [None, "accuracy"])
def test_judge_agreement_is_the_merged_battles_and_peoples_entries_equal_human_agreement(policy_db, dimension):
    policy, path = policy_db
    _people_settle(path, policy)
    outcomes = {**_decided(_reference(path, policy, dimension=dimension)), **_people(path, dimension=dimension)}
    expected = []
    for judge in sorted(outcomes):
        for other in sorted(outcomes):
            shared = sorted(set(outcomes[judge]) & set(outcomes[other]))
            if judge != other and shared:
                expected.append({"judge": judge, "other": other, "items": len(shared), "agreement": sum(
                    _agreement(outcomes[judge][k], outcomes[other][k]) for k in shared) / len(shared)})
    store = views.open_for_viewing(path)
    got = views.judge_agreement(store, "synthetic", dimension)
    assert got == _records(expected)
    assert {(r["judge"], r["other"]) for r in got} >= {("judge-x", "judge-y"), ("judge-x", "human:hana"),
                                                       ("human:hana", "human:ivan")}
    if dimension is None:
        people = {(r["judge"], r["human"]): r for r in views.human_agreement(store, "synthetic")}
        assert people
        for r in got:
            if (r["judge"], r["other"]) in people:
                assert (r["items"], r["agreement"]) == (people[r["judge"], r["other"]]["items"],
                                                        people[r["judge"], r["other"]]["agreement"])
            if (r["other"], r["judge"]) in people:  # the person's row, the other way round
                assert r["agreement"] == pytest.approx(people[r["other"], r["judge"]]["agreement"], abs=1e-12)


def test_joint_ratings_without_people_or_filters_are_harness_rate(policy_db):
    policy, path = policy_db
    store = views.open_for_viewing(path)
    board = rate_suite(views.suite_config(store, "synthetic"), store, save=False).rows_for("all")
    for judge in ("judge-x", "judge-y"):
        for dimension in ("accuracy", "helpfulness"):
            expected = {r.model: r for r in board if (r.judge_name, r.dimension, r.method) == (judge, dimension, "bt")}
            got = {r["model"]: r for r in views.joint_ratings(store, "synthetic", judge, dimension,
                                                               include_humans=False, rounds=20) if r["method"] == "bt"}
            assert len(expected) == 4 and set(got) == set(expected)
            assert {m: r["rating"] for m, r in got.items()} == pytest.approx(
                {m: r.rating for m, r in expected.items()}, abs=1e-6)
            assert {m: r["battles"] for m, r in got.items()} == {m: r.battles for m, r in expected.items()}


def test_no_model_is_significantly_above_when_every_battle_is_a_tie(tmp_path, monkeypatch):
    """Two models, every battle a tie, and one person's verdict for model-00: without the battle
    both rate 1000 up to float noise (an interval may start ~1e-12 above the next one's end, which
    CI overlap once called a difference). The paired test does not separate them."""
    path = tmp_path / "ties.duckdb"
    store = build_store(path, n_models=2, real_ratings=False, lineage=False)
    with store.write() as con:
        con.execute("UPDATE judgments SET verdict = 'tie'")
        con.execute("DELETE FROM ratings")
    config = views.suite_config(store, "synthetic")
    rate_suite(config, store)
    b = merged_battles(store, for_suite(config, judges=("judge-x",), dimension="accuracy"))[0]
    settle_battle(store, "jo", b, b.model_a)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    for humans in (False, True):
        for method in ("bt", "elo"):
            at = run_page("leaderboard", f_judge="judge-x", f_method=method, f_humans=humans, f_how_sure=True)
            rows = pd.DataFrame(ratings_on_page(at))
            # the mark is the paired test (harness.leaderboard.paired_marks): all ties separate nobody
            assert len(rows) == 4 and set(rows["vs next below"]) == {"not established", "last"}, rows


def test_conversation_counts_only_current_rows_and_shows_each_battles_merged_winner(policy_db):
    policy, path = policy_db
    store = views.open_for_viewing(path, lock_wait_s=10)
    b = next(b for b in _reference(path, policy, judges=("judge-x",), dimension="accuracy") if b.turn == 1)
    with store.write() as con:  # an older judge-x version judged the same answers, the other way round
        con.execute("INSERT INTO judges VALUES ('judge-x', 'fp-old', 'pairwise', '{}', TIMESTAMP '2024-01-01',"
                    " TIMESTAMP '2024-01-01')")
        con.execute(
            "INSERT INTO judgments (judgment_id, call_id, judge_name, judge_fingerprint, kind, set_name, question_id,"
            " turn, model_a, model_b, answer_a, answer_b, dimension, verdict, status, attempts, raw_output, run_id,"
            " created_at) SELECT 'old-' || judgment_id, 'old-' || call_id, judge_name, 'fp-old', kind, set_name,"
            " question_id, turn, model_a, model_b, answer_a, answer_b, dimension, CASE verdict WHEN 'A' THEN 'B'"
            " ELSE 'A' END, status, attempts, 'old judge', run_id, TIMESTAMP '2024-06-01' FROM judgments"
            " WHERE judge_name = 'judge-x' AND question_id = ? AND turn = 1", [b.question_id])
    settle_battle(store, "kim", b, b.model_b)
    conv = views.conversation(store, "synthetic", b.set_name, b.question_id, b.model_a, b.model_b)
    old = [j for j in conv.judgments if j["raw_output"] == "old judge"]
    assert old and not any(j["counted"] for j in old)
    current = [j for j in conv.judgments if j["raw_output"] != "old judge"]
    assert all(j["counted"] for j in current)
    assert sorted((j["judge"], j["dimension"]) for j in current) == sorted(
        [(j, d) for j in ("judge-x", "judge-y") for d in ("accuracy", "helpfulness") for _ in range(2)]
        + [("human:kim", "accuracy")])
    merged: dict[tuple, set] = {}
    for battle in _reference(path, policy):
        if _bkey(battle)[:3] == _bkey(b)[:3] and _bkey(battle)[4:] == _bkey(b)[4:]:
            merged.setdefault((battle.judge_name, battle.dimension), set()).add(_winner(battle))
    for j in current:
        if j["judge"].startswith("human:"):
            assert j["merged_winner"] is None
        elif len(merged[j["judge"], j["dimension"]]) == 1:
            assert {j["merged_winner"]} == merged[j["judge"], j["dimension"]]
        else:  # a `half` battle whose orders disagree: both halves named
            assert policy == "half" and all(w in j["merged_winner"] for w in merged[j["judge"], j["dimension"]])


def test_under_drop_the_queue_offers_the_battles_a_judge_contradicted_itself_on(policy_dbs, tmp_path):
    path = tmp_path / "drop.duckdb"
    path.write_bytes(policy_dbs["drop"].read_bytes())
    store = views.open_for_viewing(path, lock_wait_s=10)
    queue = views.annotation_queue(store, "synthetic", "lee", reasons=("swap",), limit=100)
    dropped = {_bkey(b) for b in merge_with(path, "inconsistent_tie", "judge-x", "accuracy") if not b.consistent}
    assert dropped
    offered = {(q["set_name"], q["question_id"], q["turn"], "accuracy", q["x"], q["y"]) for q in queue}
    assert dropped <= offered
    item = next(q for q in queue if (q["set_name"], q["question_id"], q["turn"], "accuracy", q["x"], q["y"]) in dropped)
    _annotate(path, "lee", item, verdict="A")  # item["y"] shown first wins
    settled = [b for b in merged_battles(store, for_suite(views.suite_config(store, "synthetic"), judges=("judge-x",),
                                                          dimension="accuracy"), "drop", humans=True)
               if (b.question_id, b.turn, b.model_a, b.model_b) == (item["question_id"], item["turn"], item["x"],
                                                                   item["y"])]
    assert [(_winner(b), b.weight) for b in settled] == [(item["y"], 1.0)]  # on the board now, the person's way
    rows = views.joint_ratings(store, "synthetic", "judge-x", "accuracy", rounds=20)
    assert {r["human_battles"] for r in rows} == {1}


# --- the pages' reads narrowed or added up in SQL, against the Python reference ---------------------
def _reference_flags(path: Path, policy: str) -> dict[tuple, dict]:
    """Per battle (set, question, turn, x, y): a judge contradicted itself under swap (inconsistent_tie's
    inconsistent battles), judges' merged winners differ on a dimension, its dimensions: in Python."""
    store = views.open_for_viewing(path)
    config = views.suite_config(store, "synthetic")
    fought = merged_battles(store, for_suite(config), policy)
    swap = merged_battles(store, for_suite(config), "inconsistent_tie")
    flags: dict[tuple, dict] = {}
    for b in [b for b in swap if not b.consistent] + fought:
        f = flags.setdefault((b.set_name, b.question_id, b.turn, b.model_a, b.model_b),
                             {"flip": False, "disagree": False, "dimensions": set(), "category": b.category})
        f["flip"] |= b in swap and not b.consistent
        f["dimensions"].add(b.dimension)
    per_dimension: dict[tuple, list] = {}
    for decided in _decided(fought).values():
        for key, shares in decided.items():
            per_dimension.setdefault(key, []).append(shares)
    for (s, qid, turn, _, x, y), decided in per_dimension.items():
        flags[(s, qid, turn, x, y)]["disagree"] |= any(d != decided[0] for d in decided)
    return flags


def test_questions_and_the_queue_flag_battles_as_the_python_reference(policy_db):
    policy, path = policy_db
    _people_settle(path, policy)
    flags = _reference_flags(path, policy)
    # (the store's judges differ only where one flips under swap, so under `drop` they never disagree)
    assert any(f["flip"] for f in flags.values()) and any(f["disagree"] for f in flags.values()) is (policy != "drop")
    assert any(not f["flip"] and not f["disagree"] for f in flags.values())
    per_question: dict[tuple, dict] = {}
    for (s, qid, *_), f in flags.items():
        q = per_question.setdefault((s, qid), {"swap_inconsistent": False, "judges_disagree": False})
        q["swap_inconsistent"] |= f["flip"]
        q["judges_disagree"] |= f["disagree"]
    store = views.open_for_viewing(path)
    expected = [(k, q) for k, q in sorted(per_question.items())]
    got = [((q["set_name"], q["question_id"]), {k: q[k] for k in ("swap_inconsistent", "judges_disagree")})
           for q in views.questions(store, "synthetic", limit=10_000)]
    assert got == expected
    for limit in (1, 3, 5):  # read a few questions at a time, then more
        assert views.questions(store, "synthetic", limit=limit) == views.questions(store, "synthetic")[:limit]
    disagreeing = [k for k, q in expected if q["swap_inconsistent"] or q["judges_disagree"]]
    assert [(q["set_name"], q["question_id"]) for q in views.questions(store, "synthetic", disagreement_only=True,
                                                                       limit=4)] == disagreeing[:4]
    # the queue: the battles most in doubt first (HITLC: the highest diversity entropy of any judge's
    # verdicts, then the closest call), else in the store's hash order, each with the reference's flags,
    # without bob's
    bob = {_bkey(r)[:3] + _bkey(r)[4:] for r in human_rows(store) if r.judge_name == "human:bob"}
    selection, _ = views._selection(store, "synthetic")
    config = views.suite_config(store, "synthetic")
    doubt: dict = {}
    for judge in (j.name for j in config.judges):
        for p in annotate_priority(store, config, judge):
            doubt.setdefault(p.key, []).append((p.entropy, -p.margin))
    hashed = [k for k in views.reads.battle_keys(store, selection, 0) if k in flags and k not in bob]
    ordered = sorted(hashed, key=lambda k: tuple(-v for v in max(doubt.get(k, [(-1.0, -math.inf)]))))
    # a battle a judge contradicted itself on (two verdicts that differ: entropy ln 2) comes before any
    # on which every judge was consistent (entropy 0)
    flipped = [k for k in ordered if flags[k]["flip"]]
    assert flipped and ordered[:len(flipped)] == flipped
    for reasons in (("swap", "disagree", "audit"), ("swap",), ("disagree",)):
        for limit, audit in ((2, 1), (10_000, 10_000)):
            queue = views.annotation_queue(views.open_for_viewing(path), "synthetic", "bob", reasons, limit, audit)
            reason = {k: "swap-inconsistent" if flags[k]["flip"] and "swap" in reasons else
                      "judges disagree" if flags[k]["disagree"] and "disagree" in reasons else "audit" for k in ordered}
            picked = [k for k in ordered if reason[k] != "audit"][:limit]
            audits = [k for k in ordered if reason[k] == "audit"][:audit] if "audit" in reasons else []
            assert [(q["set_name"], q["question_id"], q["turn"], q["x"], q["y"]) for q in queue] == picked + audits
            for q in queue:
                f = flags[(q["set_name"], q["question_id"], q["turn"], q["x"], q["y"])]
                assert (q["flip"], q["disagree"], q["dimensions"], q["category"], q["reason"]) == (
                    f["flip"], f["disagree"], sorted(f["dimensions"]), f["category"],
                    reason[(q["set_name"], q["question_id"], q["turn"], q["x"], q["y"])])
        if queue:
            _annotate(path, "bob", queue[0])  # settled: out of bob's queue from now on
            bob.add(tuple(queue[0][k] for k in ("set_name", "question_id", "turn", "x", "y")))
            ordered = [k for k in ordered if k not in bob]


@pytest.mark.parametrize("dimension", [None, "helpfulness"])
def test_a_page_read_once_equals_its_views(policy_db, dimension):
    """judges_page and pairwise_page apply the rule once for a whole page; each part equals its view."""
    policy, path = policy_db
    _people_settle(path, policy)
    store = views.open_for_viewing(path)
    assert views.judges_page(store, "synthetic", dimension) == {
        "reliability": views.reliability(store), "agreement": views.judge_agreement(store, "synthetic", dimension),
        "self_preference": views.self_preference(store, "synthetic")}
    for judge, set_name, category in (("judge-x", None, None), ("judge-y", "synth", "math"),
                                      ("judge-x", None, "coding")):
        assert views.pairwise_page(store, "synthetic", judge, dimension, set_name, category) == {
            "matrix": views.pairwise_matrix(store, "synthetic", judge, dimension, set_name, category),
            "categories": views.category_breakdown(store, "synthetic", judge, dimension, set_name)}
