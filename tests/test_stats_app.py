"""The app's Leaderboard shows "How sure": paired-test marks (Holm), both interval kinds, style
coefficients, computed from the same battles as harness.leaderboard.paired_marks."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from harness import views  # noqa: E402
from harness.battles import battles, for_suite  # noqa: E402
from harness.leaderboard import paired_marks  # noqa: E402
from tests.app_store import build_store  # noqa: E402


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
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(str(p.value) for p in [*at.caption, *at.subheader])
    assert "How sure" in text and "Holm" in text and "resampling battles" in text and "Style control" in text
    marks, widths, coefficients = (t.value for t in at.dataframe[:3])
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
    assert "turn on 'How sure' in the sidebar" in "\n".join(str(c.value) for c in at.caption)
    assert not any("p (Holm)" in t.value.columns for t in at.dataframe)
