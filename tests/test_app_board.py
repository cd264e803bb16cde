"""The leaderboard read at a glance, the reliability banner, the Battle viewer, deep links, and the
Annotate page a person works through (queue size, progress, edit, undo, export). AppTest over
synthetic stores (tests/app_store.py); the same checks in Chromium are in tests/test_app_browser.py.

Every number the board table shows is checked against the ratings API (`harness.api.stored_ratings`)
and the battles (`harness.battles`), with the rank rule re-derived here from its definition."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")

from harness import api, views  # noqa: E402
from harness.battles import battles as merged_battles, for_suite  # noqa: E402
from harness.board_view import rank_ranges  # noqa: E402
from harness.leaderboard import win_rate_of  # noqa: E402
from tests.app_store import build_store  # noqa: E402
from tests.test_app import run_page, texts  # noqa: E402


# --- the rank rule, against its definition ----------------------------------------------------------
def _row(model, rating, low, high):
    return {"model": model, "rating": rating, "ci_low": low, "ci_high": high}


def test_rank_range_is_lmarenas_rule():
    rows = [_row("a", 1100, 1080, 1120), _row("b", 1050, 1010, 1090), _row("c", 1000, 960, 1040),
            _row("d", 900, 880, 920)]
    # a: nobody's lower bound is above 1120 -> 1; b, c overlap each other and b overlaps a
    assert rank_ranges(rows) == {"a": (1, 2), "b": (1, 3), "c": (2, 3), "d": (4, 4)}
    # without intervals, the order of the points
    assert rank_ranges([_row("a", 2, None, None), _row("b", 1, None, None)]) == {"a": (1, 1), "b": (2, 2)}


def expected_rank(rows: list[dict], me: dict) -> tuple[int, int]:
    """FastChat's recompute_final_ranking (1 + models whose lower bound exceeds my upper bound), and
    the worst rank: 1 + models whose upper bound exceeds my lower bound."""
    def at(v):  # float noise (1000.0000000000058 vs 999.9999999999942) is not a difference
        return round(v, 6)

    others = [r for r in rows if r["model"] != me["model"]]
    return (1 + sum(at(r["ci_low"]) > at(me["ci_high"]) for r in others),
            1 + sum(at(r["ci_high"]) > at(me["ci_low"]) for r in others))


# --- the board table against the ratings API, over a matrix of stores --------------------------------
STORES = {
    "4 models, 2 judges": {},
    "8 models, drop": {"n_models": 8, "n_battles": 200, "n_questions": 30, "merge": "drop"},
    "half, with a baseline": {"merge": "half", "baseline": "model-00"},
    "2 models, all ties": {"n_models": 2, "ties": True},
}


@pytest.fixture(scope="module", params=list(STORES))
def board_store(request, tmp_path_factory) -> tuple[str, Path]:
    spec = dict(STORES[request.param])
    ties = spec.pop("ties", False)
    path = tmp_path_factory.mktemp("board") / "board.duckdb"
    store = build_store(path, real_ratings=not ties, **spec)
    if ties:  # every battle a tie: ratings equal up to float noise, which must not print
        with store.write() as con:
            con.execute("UPDATE judgments SET verdict = 'tie'")
            con.execute("DELETE FROM ratings")
        api.rate(views.suite_config(store, "synthetic"), store)
    return request.param, path


def board_tables(at) -> list[tuple[str, pd.DataFrame]]:
    """(panel, table) for each panel the page shows, in page order."""
    panels = [h.value for h in at.subheader if " / " in h.value and not h.value.startswith("How sure")]
    tables = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert len(panels) == len(tables) > 0
    return list(zip(panels, tables))


def expected_board(path: Path, suite: str, method: str) -> dict[str, list[dict]]:
    """panel -> the rows its board table must show, from the ratings API and harness.battles, with
    the rank rule re-derived from its definition and the rounding the page promises."""
    store = views.open_for_viewing(path)
    config = views.suite_config(store, suite)
    stored = api.stored_ratings(suite, path)
    out = {}
    for judge, dimension in sorted({(r["judge_name"], r["dimension"]) for r in stored if r["method"] == method}):
        rows = [r for r in stored if (r["judge_name"], r["dimension"], r["method"]) == (judge, dimension, method)]
        digits = 0 if max(r["rating"] for r in rows) - min(r["rating"] for r in rows) >= 10 else 1
        fought = merged_battles(store, for_suite(config, judges=(judge,), dimension=dimension), config.ratings.merge)
        out[f"{judge} / {dimension}"] = expected = []
        for r in sorted(rows, key=lambda r: (-r["rating"], r["model"])):
            best, worst = expected_rank(rows, r)
            lo, hi = round(r["rating"] - r["ci_low"], digits), round(r["ci_high"] - r["rating"], digits)
            expected.append({"rank": best, "rank_range": str(best) if best == worst else f"{best}–{worst}",
                             "model": r["model"], "rating": round(r["rating"], digits),
                             "interval": f"+{hi:.{digits}f} / −{lo:.{digits}f}",
                             "win_rate": pytest.approx(win_rate_of(fought, r["model"])[0], abs=1e-9),
                             "battles": r["battles"]})
    return out


@pytest.mark.parametrize("method", ["bt", "elo"])
def test_board_table_numbers_are_the_ratings_api(board_store, monkeypatch, method):
    label, path = board_store
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("leaderboard", f_method=method, f_how_sure=False)
    stored = api.stored_ratings("synthetic", path)
    shown = board_tables(at)
    expected = expected_board(path, "synthetic", method)
    assert [p for p, _ in shown] == list(expected)
    for panel, table in shown:
        judge, dimension = panel.split(" / ")
        assert table[list(expected[panel][0])].to_dict("records") == expected[panel], (label, panel)
        if "baseline" in label:  # win rate and LC win rate against the baseline, as stored
            against = {r["model"]: r["rating"] for r in stored if (r["judge_name"], r["dimension"], r["method"])
                       == (judge, dimension, "win_rate")}
            lc = {r["model"]: r["rating"] for r in stored if (r["judge_name"], r["dimension"], r["method"])
                  == (judge, dimension, "lc_win_rate")}
            assert against and lc
            assert dict(zip(table["model"], table["vs_baseline"])) == pytest.approx(
                {m: against.get(m, float("nan")) for m in table["model"]}, nan_ok=True)
            assert dict(zip(table["model"], table["lc_vs_baseline"])) == pytest.approx(
                {m: lc.get(m, float("nan")) for m in table["model"]}, nan_ok=True)
        if "ties" in label:  # 1000 +- 1e-12: nothing printed beyond one decimal, nobody ranked apart
            assert set(table["rank_range"]) == {"1"} and all(r == round(r, 1) for r in table["rating"])


def test_the_paired_marks_fill_the_table_and_say_what_they_mean(board_store, monkeypatch):
    label, path = board_store
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("leaderboard", f_how_sure=True)
    assert "significantly above the next model: BT permutation test" in texts(at)
    store = views.open_for_viewing(path)
    for panel, table in board_tables(at):
        judge, dimension = panel.split(" / ")
        marks = views.board_marks(store, "synthetic", judge, dimension)
        expected = {m["above"]: "significantly above next" if m["significant"] else "not established" for m in marks}
        expected[marks[-1]["below"]] = "last"
        assert dict(zip(table["model"], table["mark"])) == expected
    off = run_page("leaderboard", f_how_sure=False)
    assert {m for _, t in board_tables(off) for m in t["mark"]} == {"not tested"}


# --- the reliability banner --------------------------------------------------------------------------
@pytest.mark.parametrize("flip, warned", [(0.9, True), (0.0, False)])
def test_a_banner_warns_about_an_unreliable_judge_and_links_its_card(tmp_path, monkeypatch, flip, warned):
    path = tmp_path / f"flip{flip}.duckdb"
    build_store(path, judges=("judge-x",), flip=flip, lineage=False)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("leaderboard", f_how_sure=False)
    banners = [w.value for w in at.warning if "is not reliable" in w.value]
    reliability = next(r for r in views.reliability(views.open_for_viewing(path)) if r["judge_name"] == "judge-x")
    if warned:
        assert reliability["first_position_win_rate"] > 0.9 and reliability["swap_flip_rate"] > 0.5
        assert len(banners) == 1 and "[Open the judge card](judges?judge=judge-x)" in banners[0]
        assert "position-A wins" in banners[0] and "swap flips" in banners[0]
    else:
        assert reliability["swap_flip_rate"] == 0 and banners == []


# --- the Battle viewer ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def viewer_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "viewer.duckdb"
    build_store(path, choice_logprobs=True, lineage=False)
    return path


def _battle_page(path: Path, monkeypatch, **params):
    from streamlit.testing.v1 import AppTest

    import streamlit as st

    from tests.test_app import _page

    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    st.cache_data.clear()
    at = AppTest.from_function(_page, args=("app.screens.battle",), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = str(v)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_viewer_shows_every_dimensions_output_per_order_the_merged_outcome_and_the_prompt(viewer_db, monkeypatch):
    store = views.open_for_viewing(viewer_db)
    config = views.suite_config(store, "synthetic")
    b = merged_battles(store, for_suite(config, judges=("judge-x",), dimension="accuracy"))[0]
    at = _battle_page(viewer_db, monkeypatch, suite="synthetic", set=b.set_name, q=b.question_id, turn=b.turn,
                      x=b.model_a, y=b.model_b)
    outputs = [c.value for c in at.code]
    for judge in ("judge-x", "judge-y"):
        for order in ("one", "two"):  # the store's outputs name their dimension and order
            for dim in ("accuracy", "helpfulness"):
                assert f"Reason ({dim}): answer {order} is clearer." in outputs, (judge, order, dim)
    # the judge's input, rebuilt by its own prompt function, carries both answers and the verdict tag
    prompts = [c for c in outputs if "<<<CONVERSATION WITH ASSISTANT A>>>" in c]
    answers = views.reads.answer_chain(store, b.answer_a)[-1], views.reads.answer_chain(store, b.answer_b)[-1]
    assert prompts and all(answers[0] in p and answers[1] in p and "VERDICT-" in p for p in prompts)
    # the merged outcome under the suite's policy, by judge and dimension: harness.battles' winners
    outcome = next(d.value for d in at.dataframe if "accuracy" in d.value.columns and "judge" == d.value.index.name)
    for judge in ("judge-x", "judge-y"):
        for dim in ("accuracy", "helpfulness"):
            mine = merged_battles(store, for_suite(config, judges=(judge,), dimension=dim))
            won = next(m for m in mine if (m.question_id, m.turn, m.model_a, m.model_b) ==
                       (b.question_id, b.turn, b.model_a, b.model_b))
            assert outcome.loc[judge, dim] == ("tie" if won.winner == "tie" else getattr(won, won.winner))
    # likelihoods and the answers' tokens and timing
    assert any("P(tie)" in d.value.columns for d in at.dataframe)
    assert any("10 prompt + 20 completion tokens" in c.value for c in at.caption)


def test_the_viewer_lists_a_pairs_battles_from_a_heatmap_link(viewer_db, monkeypatch):
    at = _battle_page(viewer_db, monkeypatch, suite="synthetic", judge="judge-y", dimension="helpfulness",
                      model="model-02", opponent="model-03")
    listed = next(d.value for d in at.dataframe if "winner" in d.value.columns)
    store = views.open_for_viewing(viewer_db)
    config = views.suite_config(store, "synthetic")
    expected = [b for b in merged_battles(store, for_suite(config, judges=("judge-y",), dimension="helpfulness"))
                if {b.model_a, b.model_b} == {"model-02", "model-03"}]
    assert len(listed) == len(expected) > 0
    assert set(listed["judge"]) == {"judge-y"} and set(listed["dimension"]) == {"helpfulness"}
    assert all(link.startswith("battle?suite=synthetic&set=synth&q=") for link in listed["open"])


def test_pairwise_cells_link_to_their_battles(viewer_db, monkeypatch):
    monkeypatch.setenv("HARNESS_APP_DB", str(viewer_db))
    at = run_page("pairwise", f_judge="judge-x", f_dimension="accuracy")
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert any(layer.get("encoding", {}).get("href") for layer in spec["layer"])
    from tests.test_app import chart_data

    cells = chart_data(at.get("vega_lite_chart")[0])
    assert set(cells["battles of the pair"]) == {
        f"battle?suite=synthetic&judge=judge-x&dimension=accuracy&model={m}&opponent={o}"
        for m, o in zip(cells["model"], cells["opponent"])}


# --- Annotate: the whole queue, progress, edit, undo, export -----------------------------------------
def test_annotate_shows_the_true_queue_and_progress_then_undo_and_edit(tmp_path, monkeypatch):
    path = tmp_path / "annotate.duckdb"
    build_store(path, n_battles=120, lineage=False)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    store = views.open_for_viewing(path, lock_wait_s=10)
    whole = views.annotation_queue(store, "synthetic", "zoe", limit=None)
    assert len(whole) > 25  # more than the old hard limit of 20 + 5
    at = run_page("annotate", ann_name="zoe")
    assert f"0 settled by you · {len(whole)} left in this queue" in at.get("progress")[0].proto.text
    at.button(key="ann_all_1").click().run()  # the "1" key: Response 1 on every dimension, saved
    assert not at.exception, [e.value for e in at.exception]
    mine = api.human_verdicts(path, "zoe")
    first = whole[0]
    assert {(r["set_name"], r["question_id"], r["turn"], r["x"], r["y"]) for r in mine} == {
        tuple(first[k] for k in ("set_name", "question_id", "turn", "x", "y"))}
    assert {r["verdict"] for r in mine} == {"A"} and {r["dimension"] for r in mine} == set(first["dimensions"])
    assert f"1 settled by you · {len(whole) - 1} left" in at.get("progress")[0].proto.text
    # edit: the same battle comes back blind; saving replaces the verdicts
    at.button(key="ann_undo").click().run()  # the "U" key
    assert api.human_verdicts(path, "zoe") == []
    assert f"0 settled by you · {len(whole)} left" in at.get("progress")[0].proto.text
    assert "Editing your verdict" in texts(at)
    at.button(key="ann_all_2").click().run()
    again = api.human_verdicts(path, "zoe")
    assert {r["verdict"] for r in again} == {"B"} and len(again) == len(mine)
    # undo through the API: the battle counts with the judges' verdicts again
    assert api.undo_human_verdicts(path, "zoe", again[0]) == len(again)
    assert api.human_verdicts(path, "zoe") == []


def test_the_battle_shown_stays_put_while_a_run_reorders_the_queue(tmp_path, monkeypatch):
    """A run writing judgments reorders the queue between reruns; the battle a person is choosing on
    must not change under them (their choices were lost on save when it did)."""
    from app import data

    path = tmp_path / "reorder.duckdb"
    build_store(path, lineage=False)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    real, calls = views.annotation_queue, []

    def reordered_after_the_first_read(*args, **kwargs):
        calls.append(1)
        queue = real(*args, **kwargs)
        return queue if len(calls) == 1 else queue[::-1]

    monkeypatch.setattr(views, "annotation_queue", reordered_after_the_first_read)
    data._cached.clear()
    at = run_page("annotate", ann_name="kim")
    radios = [r for r in at.radio if r.key.startswith("v-")]
    for r in radios:
        r.set_value("Response 1 is better")
    data._cached.clear()  # the next rerun reads the (now reversed) queue again
    at.run()
    assert len(calls) >= 2
    assert [(r.key, r.value) for r in at.radio if r.key.startswith("v-")] == [
        (r.key, "Response 1 is better") for r in radios]
    at.button(key="ann_save").click().run()
    saved = api.human_verdicts(path, "kim")
    shown = radios[0].key.split("-", 1)[1].rsplit("-", 1)[0]
    assert {"|".join(str(r[k]) for k in ("set_name", "question_id", "turn", "x", "y")) for r in saved} == {shown}


def test_the_note_is_a_text_area_and_saving_needs_every_dimension(tmp_path, monkeypatch):
    path = tmp_path / "note.duckdb"
    build_store(path, lineage=False)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("annotate", ann_name="yan")
    assert [t for t in at.text_area if t.key.startswith("note-")]  # Enter starts a line, never submits
    assert not at.text_input(key="ann_name").value == ""
    at.button(key="ann_save").click().run()
    assert "Choose a verdict for every dimension." in [e.value for e in at.error]
    assert api.human_verdicts(path, "yan") == []


def test_export_has_every_verdict_as_jsonl_and_csv(tmp_path, monkeypatch):
    path = tmp_path / "export.duckdb"
    build_store(path, lineage=False)
    store = views.open_for_viewing(path, lock_wait_s=10)
    for name in ("ann", "bo"):
        item = views.annotation_queue(store, "synthetic", name)[0]
        details = views.annotation_item(store, "synthetic", item)
        views.save_human_verdicts(store, name, item, item["x"], item["y"], details["answer_ids"][item["x"]],
                                  details["answer_ids"][item["y"]], {d: "tie" for d in item["dimensions"]}, "a note")
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    at = run_page("annotate")
    rows = api.human_verdicts(path)
    assert len(rows) == 4 and {r["annotator"] for r in rows} == {"ann", "bo"}
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert {"Download JSONL", "Download CSV"} <= set(buttons)
    assert "4 rows (one per battle and dimension) from 2 people." in texts(at)
