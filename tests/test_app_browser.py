"""The app in a real browser: `harness app` on stores filled by real `harness run` subprocesses,
driven by headless Debian Chromium through Playwright. Screenshots land in $HARNESS_ARTIFACTS
(default tests/artifacts/)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from tests.conftest import wait_until

CHROMIUM = "/usr/bin/chromium"
# Every browser test's one condition (here, the Judges page's in test_judge_eval, the service's Submit page)
NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
REPO = Path(__file__).resolve().parents[1]
HARNESS = [str(Path(sys.executable).parent / "harness")] if (Path(sys.executable).parent / "harness").exists() \
    else [sys.executable, "-m", "harness.cli"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"": "Leaderboard", "leaderboard": "Leaderboard", "pairwise": "Pairwise", "answers": "Answers",
         "battle": "Battle", "judges": "Judges", "runs": "Runs and lineage", "annotate": "Annotate"}
LAST = {"": "Closed-set metrics", "leaderboard": "Closed-set metrics", "pairwise": "Per category",
        "answers": "Verdicts", "battle": "Model", "judges": "Self-preference", "runs": "Trained models",
        "annotate": "Export everyone's verdicts"}  # text near each page's end: it has run that far


def artifacts() -> Path:
    out = Path(os.environ.get("HARNESS_ARTIFACTS", REPO / "tests" / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def harness_run(suite: Path, db: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(HARNESS + ["run", str(suite), "--db", str(db)], env=env, cwd=REPO, **popen)


def write_suite(path: Path, suite) -> Path:
    path.write_text(yaml.safe_dump(suite.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def app_and_browser(db: Path, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen(HARNESS + ["app", "--db", str(db), "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, 60, "harness app to listen")
        assert proc.poll() is None, (tmp_path / "app.log").read_text()
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
                viewport={"width": 1400, "height": 1000})
            try:
                yield url, context.new_page()
            finally:
                context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def open_page(page, url: str, path: str, shot: str | None = None, last: str | None = None):
    """Go to a page (a path, with query parameters after '?'), wait until Streamlit has finished
    running it and every chart has drawn."""
    from playwright.sync_api import expect

    page.goto(f"{url}/{path}")
    name = path.split("?")[0]
    expect(page.get_by_role("heading", name=PAGES[name], exact=True).first).to_be_visible(timeout=120_000)
    expect(page.get_by_text(last or LAST[name]).first).to_be_visible(timeout=120_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").first.inner_text()
    if shot:
        full_page_shot(page, shot)


def full_page_shot(page, name: str) -> None:
    """A screenshot of the whole page as drawn. Playwright's full_page capture alone neither sees
    Streamlit's own scrolling block nor waits for the charts that redraw when the capture resizes
    the viewport (a blank chart): so grow the viewport to the page, let the charts redraw, capture."""
    size = page.viewport_size
    # Streamlit scrolls its main block itself, so the document is only as tall as the window
    height = page.evaluate("() => Math.max(document.documentElement.scrollHeight,"
                           " ...[...document.querySelectorAll('[data-testid=\"stMain\"], section')]"
                           "      .map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        settle(page)
        page.wait_for_timeout(500)  # the redraw starts on the resize event, after settle may have looked
        settle(page)
        page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)


def settle(page) -> None:
    """Streamlit idle and every chart drawn: an svg with marks in it (vega-embed adds the svg element
    before it draws, so a bare svg can still be blank in a screenshot), or a canvas."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && [...document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]')]"
        "      .every(c => c.querySelector('canvas')"
        "                  || c.querySelectorAll('svg g[class*=\"mark-\"] > path, svg g[class*=\"mark-\"] > text')"
        "                      .length > 0)", timeout=60_000)


def chart_texts(page, index: int) -> list[str]:
    """The values chart `index` of the page wrote on its marks (not its axes or legend)."""
    chart = page.locator("[data-testid='stVegaLiteChart']").nth(index)
    return [t.strip() for t in chart.locator("svg g.mark-text.role-mark text").all_text_contents()]


def chart_axis_labels(page, index: int) -> list[str]:
    """The labels chart `index` shows on its axes (Vega keeps the ones it hides, at opacity 0)."""
    chart = page.locator("[data-testid='stVegaLiteChart']").nth(index)
    return chart.locator("svg g.role-axis-label text").evaluate_all(
        "els => els.filter(e => getComputedStyle(e).opacity !== '0' && e.getAttribute('opacity') !== '0')"
        ".map(e => e.textContent.trim())")


def annotate_in_browser(page, url: str, name: str, shot: str | None = None) -> None:
    from playwright.sync_api import expect

    open_page(page, url, "annotate")
    field = page.get_by_label("Your name (verdicts are stored as judge human:<name>)")
    field.fill(name)
    field.press("Enter")
    save = page.get_by_role("button", name="Save verdicts")
    expect(save).to_be_visible(timeout=60_000)
    settle(page)  # the rerun the name's Enter started must finish before choosing
    groups = page.locator("[data-testid='stRadio']")
    if shot:
        groups.first.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts() / f"{shot}.png"))
    for i in range(groups.count()):
        # click the visible label, as a person does (the input itself is hidden behind it); each
        # choice reruns the page, so wait for it before the next one
        groups.nth(i).get_by_text("Response 1 is better").click()
        expect(groups.nth(i).get_by_role("radio", name="Response 1 is better")).to_be_checked()
        settle(page)
    assert all(groups.nth(i).get_by_role("radio", name="Response 1 is better").is_checked()
               for i in range(groups.count()))
    save.click()
    expect(page.get_by_text(f"as human:{name}")).to_be_visible(timeout=60_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0


def js_fixed(value: float, places: int = 2) -> str:
    """How Vega's d3-format ".2f" writes `value` (JavaScript's toFixed: an exact half rounds up, 0.125 ->
    '0.13', where Python's format gives '0.12')."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def pairwise_numbers_are_the_views(page, db: Path, suite: str) -> None:
    """The Pairwise page draws the suite's matrix and per-category win rates as views computes them
    from harness.battles, for the judge and dimension its caption names."""
    import re

    from harness.views import category_breakdown, open_for_viewing, pairwise_matrix

    caption = page.get_by_text(re.compile(r"^Judge \S+, dimension \S+:")).first.inner_text()
    judge, dimension = re.match(r"Judge (\S+), dimension (\S+):", caption).groups()
    store = open_for_viewing(db, lock_wait_s=30)
    matrix = pairwise_matrix(store, suite, judge, dimension)
    assert matrix, f"no battles for {suite} / {judge} / {dimension}"
    assert sorted(chart_texts(page, 0)) == sorted(js_fixed(r["win_rate"]) for r in matrix)
    assert sorted(chart_texts(page, 1)) == sorted(str(r["battles"]) for r in matrix)
    # every model labels both axes of the matrix (at 8 models Vega hid every other slanted x label)
    models = {r["model"] for r in matrix} | {r["opponent"] for r in matrix}
    assert sorted(chart_axis_labels(page, 0)) == sorted(list(models) * 2)
    assert sorted(chart_texts(page, 2)) == sorted(js_fixed(r["win_rate"]) for r in
                                                  category_breakdown(store, suite, judge, dimension))


def human_rows(db: Path, name: str) -> list[tuple]:
    from harness.views import open_for_viewing

    with open_for_viewing(db, lock_wait_s=30).read() as con:
        return con.execute("SELECT dimension, verdict, model_a, model_b FROM judgments WHERE judge_name = ?",
                           [f"human:{name}"]).fetchall()


# --- the quickstart suite, real models ------------------------------------------------------------
@pytest.fixture(scope="session")
def quickstart_db(tmp_path_factory) -> Path:
    """`harness run` on the quickstart suite (both real models and the SmolLM2 judge), 4 questions.
    HARNESS_QUICKSTART_DB names a store this fixture built before, to reuse it (it is copied)."""
    from harness.config import load_suite

    if os.environ.get("HARNESS_QUICKSTART_DB"):
        return Path(os.environ["HARNESS_QUICKSTART_DB"])

    suite, _ = load_suite("quickstart")
    # 4 questions for CI time; the closed-set task (lm-eval, 32 documents) runs as in the real suite
    suite = suite.model_copy(update={"sets": [suite.sets[0].model_copy(update={"limit": 4})]})
    folder = tmp_path_factory.mktemp("quickstart")
    db = folder / "quickstart.duckdb"
    proc = harness_run(write_suite(folder / "quickstart4.yaml", suite), db, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return db


def test_every_page_in_chromium_and_an_annotation_lands_in_the_store(quickstart_db, tmp_path):
    from playwright.sync_api import expect

    db = tmp_path / "browse.duckdb"
    shutil.copy(quickstart_db, db)
    with app_and_browser(db, tmp_path) as (url, page):
        open_page(page, url, "")
        # the closed-set (lm-eval) scores beside the ratings: the page's last element, drawn last
        expect(page.get_by_text("lm-eval tasks: quickstart_knowledge")).to_be_visible(timeout=60_000)
        settle(page)
        full_page_shot(page, "leaderboard")
        body = page.locator("[data-testid='stMain']").inner_text()
        assert "smollm2-135m-instruct" in body and "gemma3-270m" in body
        for path in ("pairwise", "answers", "judges", "runs"):
            open_page(page, url, path, shot=path)
            if path == "pairwise":
                pairwise_numbers_are_the_views(page, db, "quickstart")  # the sidebar's only suite
        annotate_in_browser(page, url, "tester", shot="annotate")
        full_page_shot(page, "annotate-saved")
        rows = human_rows(db, "tester")
        assert {r[0] for r in rows} == {"accuracy", "helpfulness", "language"}
        assert {r[1] for r in rows} == {"A"}  # "Response 1" = the answer shown first = position A
        assert {frozenset(r[2:]) for r in rows} == {frozenset({"smollm2-135m-instruct", "gemma3-270m"})}
        open_page(page, url, "judges", shot="judges-after-annotation")
        assert "tester" in page.locator("[data-testid='stMain']").inner_text() or \
            page.locator("[data-testid='stVegaLiteChart']").count() >= 3


# --- browsing while `harness run` writes ------------------------------------------------------------
def tiny_suite(name: str, model: Path, limit: int, max_new_tokens: int):
    from harness.config import Suite

    return Suite.model_validate({
        "name": name,
        "models": [{"name": "tiny-a", "backend": "hf", "model": str(model), "threads": 1},
                   {"name": "tiny-b", "backend": "hf", "model": str(model), "dtype": "bfloat16", "threads": 1}],
        "sets": [{"name": "quickstart", "limit": limit}],
        "generation": {"default": {"max_new_tokens": max_new_tokens, "temperature": 0.0}},
        "judges": [{"name": "tiny-judge", "style": "pandalm", "decode": "choice", "dimensions": ["accuracy", "helpfulness"],
                    "model": {"name": "tiny-judge-model", "backend": "hf", "model": str(model), "threads": 1}}],
        "ratings": {"bootstrap_rounds": 100},
    })


def test_browsing_and_annotating_while_harness_run_writes(tiny_model_path, tmp_path):
    from harness.views import open_for_viewing, runs

    db = tmp_path / "live.duckdb"
    first = harness_run(write_suite(tmp_path / "first.yaml", tiny_suite("live", tiny_model_path, 3, 16)), db,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    with app_and_browser(db, tmp_path) as (url, page):
        open_page(page, url, "", shot="live-before-run")
        log = open(tmp_path / "run.log", "w")
        second = harness_run(write_suite(tmp_path / "second.yaml", tiny_suite("live", tiny_model_path, 20, 192)), db,
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            store = open_for_viewing(db, lock_wait_s=30)
            running = lambda: [r for r in runs(store) if r["status"] == "running"]  # noqa: E731
            run_id = wait_until(running, 120, "the second run to start")[0]["run_id"]
            for path in ("pairwise", "answers", "runs", ""):
                open_page(page, url, path, shot=f"live-during-{path or 'leaderboard'}")
            annotate_in_browser(page, url, "live", shot="live-during-annotate")
            status_after_save = next(r["status"] for r in runs(store) if r["run_id"] == run_id)
            assert human_rows(db, "live"), "the annotation was not stored"
            assert status_after_save == "running", "the run ended before the annotation was saved: make it longer"
            assert second.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            if second.poll() is None:
                second.terminate()
                second.wait(timeout=60)
            log.close()
        assert next(r["status"] for r in runs(store) if r["run_id"] == run_id) == "finished"
        page.get_by_role("button", name="Refresh data").click()
        open_page(page, url, "runs", shot="live-after-run")
        open_page(page, url, "", shot="live-after-leaderboard")


# --- the board, the banner, the Battle viewer and deep links, against the API ------------------------
BOARD_JS = """() => {
  const out = []; let panel = null;
  for (const el of document.querySelectorAll('h3, [data-testid="stDataFrame"]')) {
    if (el.tagName === 'H3') { panel = el.innerText.trim(); continue; }
    const heads = [...el.querySelectorAll('table[role="grid"] th')].map(t => t.innerText.trim());
    if (heads[0] !== 'rank') continue;
    const rows = [...el.querySelectorAll('table[role="grid"] tbody tr')].map(
      tr => Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
    out.push([panel, rows]);
  }
  return out;
}"""


def _number(text: str) -> float:
    return float(text.rstrip("%")) / 100 if text.endswith("%") else float(text.replace(",", ""))


def board_in_browser(page) -> dict[str, list[dict]]:
    """panel -> the rows of its board table as drawn (the grid's accessible table)."""
    return {panel: rows for panel, rows in page.evaluate(BOARD_JS)}


def assert_board_is_the_api(page, db: Path, suite: str) -> None:
    from tests.test_app_board import expected_board

    expected = expected_board(db, suite, "bt")
    # each grid fills its accessible table after it draws, on its own schedule: wait for all of them
    page.wait_for_function(f"() => ({BOARD_JS})().filter(p => p[1].length > 0).length >= {len(expected)}",
                           timeout=60_000)
    drawn = board_in_browser(page)
    assert list(drawn) == list(expected)
    for panel, rows in expected.items():
        got = drawn[panel]
        assert [r["model"] for r in got] == [r["model"] for r in rows], panel
        for g, e in zip(got, rows):
            assert (int(g["rank"]), g["range"], g["95% CI"], int(g["battles"])) == (
                e["rank"], e["rank_range"], e["interval"], e["battles"]), (panel, g, e)
            assert _number(g["rating"]) == e["rating"] and _number(g["win rate"]) == pytest.approx(
                e["win_rate"].expected, abs=1e-4), (panel, g, e)


def banners_in_browser(page) -> dict[str, str]:
    """judge -> the href of the judge-card link of its reliability banner."""
    out = {}
    for alert in page.locator("[data-testid='stAlert']").all():
        text = alert.inner_text()
        if "is not reliable" in text:
            judge = text.split("Judge ", 1)[1].split(" is not reliable")[0]
            out[judge] = alert.get_by_role("link", name="Open the judge card").get_attribute("href")
    return out


def first_battle(db: Path, suite: str) -> dict:
    from harness import views
    from harness.battles import battles, for_suite

    store = views.open_for_viewing(db, lock_wait_s=30)
    b = battles(store, for_suite(views.suite_config(store, suite)), views.merge_policy(store, suite))[0]
    return {"suite": suite, "set": b.set_name, "q": b.question_id, "turn": b.turn, "x": b.model_a, "y": b.model_b}


def assert_viewer_shows_every_dimension(page, url: str, db: Path, suite: str) -> None:
    """The Battle viewer, opened by its link, shows every stored output of the battle: each order's,
    each dimension's (a per-dimension judge has one output per dimension)."""
    from urllib.parse import urlencode

    from harness import views

    b = first_battle(db, suite)
    open_page(page, url, f"battle?{urlencode(b)}", last="Judges: input and output")
    settle(page)
    conv = views.conversation(views.open_for_viewing(db, lock_wait_s=30), suite, b["set"], b["q"], b["x"], b["y"])
    stored = [j for j in conv.judgments if j["turn"] == b["turn"] and j["counted"]]
    assert {j["dimension"] for j in stored} == set(views.suite_config(views.open_for_viewing(db), suite)
                                                   .judges[0].dimensions)
    shown = page.locator("[data-testid='stCode']").all_inner_texts()
    for j in stored:
        assert any(j["raw_output"].strip() in s for s in shown), (j["dimension"], j["raw_output"][:80])
    labels = page.get_by_text("Output for ").all_inner_texts()  # "Output for accuracy, helpfulness"
    calls = {(j["judge"], j["shown_first"]) for j in stored}
    assert len(labels) >= len(calls)
    assert {d for label in labels for d in label.removeprefix("Output for ").split(", ")} == \
        {j["dimension"] for j in stored}


def assert_deep_links_open_their_pages(page, url: str, db: Path, suite: str) -> None:
    from urllib.parse import urlencode

    for path in ("leaderboard", "pairwise", "answers", "judges", "runs", "annotate",
                 f"battle?{urlencode(first_battle(db, suite))}", f"judges?judge={judge_of(db, suite)}"):
        name = path.split("?")[0]
        open_page(page, url, path, last="Judges: input and output" if name == "battle" else None)
        assert page.url.endswith("/" + path.replace(" ", "+")) or name in page.url


def judge_of(db: Path, suite: str) -> str:
    from harness import views

    return views.suite_config(views.open_for_viewing(db, lock_wait_s=30), suite).judges[0].name


BROWSER_STORES = {
    "4 models, 2 judges": {},
    "8 models, drop": {"n_models": 8, "n_battles": 200, "n_questions": 30, "merge": "drop"},
    "unreliable judge": {"judges": ("judge-x",), "flip": 0.9},
    "reliable judge": {"judges": ("judge-x",), "flip": 0.0},
}


@pytest.mark.parametrize("label", list(BROWSER_STORES))
def test_board_banner_viewer_and_deep_links_in_chromium(label, tmp_path):
    from harness import views
    from judges.reliability import Reliability
    from tests.app_store import build_store

    db = tmp_path / "board.duckdb"
    build_store(db, lineage=False, **BROWSER_STORES[label])
    reliabilities = {r["judge_name"]: Reliability(**r) for r in views.reliability(views.open_for_viewing(db))}
    with app_and_browser(db, tmp_path) as (url, page):
        open_page(page, url, "leaderboard")
        assert_board_is_the_api(page, db, "synthetic")
        warned = {j for j, r in reliabilities.items() if r.explain()}  # judges.reliability's limits
        assert banners_in_browser(page) == {j: f"judges?judge={j}" for j in warned}
        if label == "unreliable judge":
            assert warned == {"judge-x"}
        if label == "reliable judge":
            assert warned == set()
        assert_viewer_shows_every_dimension(page, url, db, "synthetic")
        assert_deep_links_open_their_pages(page, url, db, "synthetic")
        if label == "8 models, drop":
            open_page(page, url, "pairwise")
            pairwise_numbers_are_the_views(page, db, "synthetic")


def test_the_quickstart_board_banner_and_viewer_in_chromium(quickstart_db, tmp_path):
    """The real quickstart store: a PandaLM judge asked once per dimension, so each order of a
    battle has three outputs, each shown."""
    db = tmp_path / "qs.duckdb"
    shutil.copy(quickstart_db, db)
    with app_and_browser(db, tmp_path) as (url, page):
        open_page(page, url, "leaderboard")
        assert_board_is_the_api(page, db, "quickstart")
        assert_viewer_shows_every_dimension(page, url, db, "quickstart")
        assert_deep_links_open_their_pages(page, url, db, "quickstart")


def test_enter_in_the_note_does_not_save(tmp_path):
    from playwright.sync_api import expect

    from tests.app_store import build_store

    db = tmp_path / "note.duckdb"
    build_store(db, lineage=False)
    with app_and_browser(db, tmp_path) as (url, page):
        open_page(page, url, "annotate")
        field = page.get_by_label("Your name (verdicts are stored as judge human:<name>)")
        field.fill("noor")
        field.press("Enter")
        note = page.get_by_label("Note (optional; Enter starts a new line)")
        expect(note).to_be_visible(timeout=60_000)
        settle(page)
        note.fill("first line")
        note.press("Enter")
        note.type("second line 1 2 T")  # the shortcut keys typed in the note are text, not verdicts
        expect(note).to_have_value("first line\nsecond line 1 2 T")
        note.press("Tab")  # leaves the note: the page reruns with it, and nothing is saved
        settle(page)
        assert human_rows(db, "noor") == []


# --- screenshots of every page at two widths ------------------------------------------------------
SHOT_PAGES = ("leaderboard", "pairwise", "answers", "battle", "judges", "runs", "annotate")


def shoot_every_page(db: Path, suite: str, name: str, tmp_path: Path) -> list[str]:
    """Full-page screenshots of every page at 1400 and 800 px wide, named NAME-PAGE-WIDTH.png."""
    from urllib.parse import urlencode

    taken = []
    with app_and_browser(db, tmp_path) as (url, page):
        for width in (1400, 800):
            page.set_viewport_size({"width": width, "height": 1000})
            for path in SHOT_PAGES:
                target = f"battle?{urlencode(first_battle(db, suite))}" if path == "battle" else path
                open_page(page, url, target, last="Judges: input and output" if path == "battle" else None)
                if path == "annotate":
                    field = page.get_by_label("Your name (verdicts are stored as judge human:<name>)")
                    field.fill("screenshot")
                    field.press("Enter")
                    page.get_by_text("left in this queue").first.wait_for(timeout=120_000)
                    settle(page)
                full_page_shot(page, f"{name}-{path}-{width}")
                taken.append(f"{name}-{path}-{width}")
    return taken


@pytest.mark.skipif(not os.environ.get("HARNESS_SHOT_STORES"), reason="HARNESS_SHOT_STORES=name=suite@path;... names "
                    "the stores to photograph (HARNESS_ARTIFACTS says where)")
def test_screenshots_of_every_page_at_1400_and_800_px(tmp_path):
    for spec in os.environ["HARNESS_SHOT_STORES"].split(";"):
        name, rest = spec.split("=", 1)
        suite, path = rest.split("@", 1)
        db = tmp_path / f"{name}.duckdb"
        shutil.copy(path, db)
        assert len(shoot_every_page(db, suite, name, tmp_path)) == 2 * len(SHOT_PAGES)
