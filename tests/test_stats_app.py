"""The app's Leaderboard shows "How sure": paired-test marks (Holm), both interval kinds, style
coefficients, computed from the same battles as harness.leaderboard.paired_marks, which also colour
its chart; the Judges page flags a judge whose null probe outrates a real model."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from harness import views  # noqa: E402
from harness.battles import battles, for_suite  # noqa: E402
from harness.leaderboard import paired_marks  # noqa: E402
from tests.app_store import build_store  # noqa: E402
from tests.test_app import chart_data  # noqa: E402


def _page() -> None:
    from app.screens import leaderboard

    leaderboard.render()


def test_leaderboard_shows_paired_marks_interval_kinds_and_style(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    store = build_store(path, n_models=4, n_battles=120, n_questions=30)
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_function(_page, default_timeout=60)
    at.session_state["f_judge"] = "judge-x"
    at.session_state["f_how_sure"] = True  # the paired tests (on by default only for small panels)
    at.session_state["f_how_sure_more"] = True  # interval widths and style control: off by default, they refit
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(str(p.value) for p in [*at.caption, *at.subheader])
    assert "How sure" in text and "Holm" in text and "resampling battles" in text and "Style control" in text
    def table_with(column):  # the How-sure tables, after the board's own table per panel
        return next(t.value for t in at.dataframe if column in t.value.columns)

    marks, widths, coefficients = table_with("p (Holm)"), table_with("width ratio"), table_with("feature")
    config = views.suite_config(views.open_for_viewing(path), "synthetic")
    fought = battles(store, for_suite(config, judges=("judge-x",)), config.ratings.merge)
    expected = paired_marks(fought)
    assert len(marks) == sum(len(a) for a in expected.values())
    first = expected[("judge-x", "accuracy")]
    shown = marks[marks["panel"] == "judge-x / accuracy"]
    assert shown["model"].tolist() == [a.above for a in first]
    assert shown["p (Holm)"].tolist() == pytest.approx([a.p_holm for a in first])
    assert set(widths["panel"]) == {"judge-x / accuracy", "judge-x / helpfulness"} and len(widths) == 8
    assert set(coefficients["feature"]) == {"length"} and len(coefficients) == 2  # one per panel

    # Off by the sidebar toggle: nothing refitted, a note says how to turn it on.
    at.sidebar.toggle(key="f_how_sure").set_value(False).run()
    assert not at.exception
    assert "turn on 'Paired tests' in the sidebar" in "\n".join(str(c.value) for c in at.caption)
    assert not any("p (Holm)" in t.value.columns for t in at.dataframe)


def test_the_charts_colour_is_the_paired_test_and_off_means_not_tested(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    # 1,500 battles on 40 questions: some neighbours separated by the paired tests, some not
    store = build_store(path, n_models=5, n_battles=1500, n_questions=40, judges=("judge-x",))
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    import streamlit as st

    config = views.suite_config(views.open_for_viewing(path), "synthetic")
    marks = paired_marks(battles(store, for_suite(config), config.ratings.merge), seed=config.ratings.seed)
    expected = {(f"{j} / {d}", a.above): "significantly above next" if a.significant else "not established"
                for (j, d), adjacent in marks.items() for a in adjacent}
    assert set(expected.values()) == {"significantly above next", "not established"}
    for method in ("bt", "elo"):  # the Elo chart shows the same (BT-order) test
        st.cache_data.clear()
        at = AppTest.from_function(_page, default_timeout=60)
        at.session_state["f_method"] = method
        at.session_state["f_how_sure"] = True
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        colour = {}  # one chart per panel (judge / dimension), beside its table
        for chart in at.get("vega_lite_chart"):
            shown = chart_data(chart)
            if "vs next below" in shown:
                colour |= {(p, m): v for p, m, v in zip(shown["panel"], shown["model"], shown["vs next below"])}
        assert {k: v for k, v in colour.items() if v != "last"} == expected
        assert sum(v == "last" for v in colour.values()) == len(marks)
        assert "Holm-corrected across adjacent pairs" in "\n".join(str(c.value) for c in at.caption)
    at.sidebar.toggle(key="f_how_sure").set_value(False).run()
    assert set(chart_data(at.get("vega_lite_chart")[0])["vs next below"]) == {"not tested"}


def test_the_judges_page_flags_a_judge_whose_null_model_beats_a_real_model(tmp_path, monkeypatch):
    from harness.stats.probes import ProbeRow
    from harness.store.stats import save_probe_results

    path = tmp_path / "app.duckdb"
    store = build_store(path, n_models=3, judges=("judge-x",))
    rows = [ProbeRow("judge-x", "accuracy", "null", "probe-null", "model-00", 1010.0, 990.0, 1000.0, 1000.0),
            ProbeRow("judge-x", "helpfulness", "null", "probe-null", "model-00", 900.0, 905.0, 1000.0, 1000.0),
            ProbeRow("judge-x", "accuracy", "length", "probe-length-model-00", "model-00", 1100.0, 1020.0, 1000.0,
                     1000.0)]
    save_probe_results(store, "synthetic", rows)
    assert [(r["dimension"], r["kind"], r["flagged"]) for r in views.probe_results(store, "synthetic")] == [
        ("accuracy", "length", False), ("accuracy", "null", True), ("helpfulness", "null", False)]
    monkeypatch.setenv("HARNESS_APP_DB", str(path))
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_function(_judges_page, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    flags = [e.value for e in at.error]
    assert len(flags) == 1 and "judge-x / accuracy" in flags[0] and "null model" in flags[0], flags
    table = next(t.value for t in at.dataframe if "raw gain" in t.value.columns)
    assert table["raw gain"].tolist() == [100.0, 10.0, -100.0]


def _judges_page() -> None:
    from app.screens import judges

    judges.render()
