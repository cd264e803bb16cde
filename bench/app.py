"""Time to first render of the app's Leaderboard and Pairwise pages on a 1M-judgment store.

Builds two synthetic stores with the real schema (tests/app_store.py: 30 models, 2 judges x 3
dimensions, both orders stored): a big one with >= 1M judgment rows and a small baseline with
~1,200, the same models and ratings rows. Each page is rendered cold (Streamlit's data cache
cleared, a fresh AppTest session: every query runs against the file) --repeats times; it prints
the median seconds per page and store and the big/small ratio, measured in this one process.
Goal: the Leaderboard's first render < 3 s on the big store.

Run (repo root, harness venv; about a minute):  python bench/app.py [--battles 83334 --models 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.app_store import build_store  # noqa: E402

JUDGES = ("judge-x", "judge-y")
DIMENSIONS = ("accuracy", "helpfulness", "language")


def _page(module: str) -> None:
    import importlib

    importlib.import_module(module).render()


def first_render(db: Path, page: str, repeats: int) -> float:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_APP_DB"] = str(db)
    times = []
    for _ in range(repeats):
        st.cache_data.clear()
        at = AppTest.from_function(_page, args=(f"app.screens.{page}",), default_timeout=120)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(f"{page} on {db}: {at.exception[0].value}")
        if not at.get("vega_lite_chart"):
            raise RuntimeError(f"{page} on {db}: drew no chart")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=83_334, help="battles in the big store (x12 judgment rows)")
    parser.add_argument("--small-battles", type=int, default=100)
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows_per_battle = 2 * len(JUDGES) * len(DIMENSIONS)
    questions = max(40, -(-args.battles * 4 // (3 * args.models * (args.models - 1) // 2)) + 10)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for label, battles in (("small", args.small_battles), ("big", args.battles)):
            start = time.perf_counter()
            path = Path(tmp) / f"{label}.duckdb"
            store = build_store(path, n_models=args.models, n_battles=battles, judges=JUDGES, dimensions=DIMENSIONS,
                                n_questions=questions, real_ratings=False)
            with store.read() as con:
                n = con.execute("SELECT count(*) FROM judgments").fetchone()[0]
            print(f"{label} store: {n:,} judgments, {args.models} models, {questions} questions, "
                  f"built in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
            stores[label] = path
        assert rows_per_battle * args.battles >= 1_000_000 or args.battles != 83_334
        print(f"\nfirst render, cold cache, median of {args.repeats} (AppTest: script run incl. every query)")
        print(f"{'page':<12} {'small s':>8} {'big s':>8} {'big/small':>10}")
        for page in ("leaderboard", "pairwise"):
            small = first_render(stores["small"], page, args.repeats)
            big = first_render(stores["big"], page, args.repeats)
            goal = "  (goal < 3 s: " + ("met" if big < 3 else "MISSED") + ")" if page == "leaderboard" else ""
            print(f"{page:<12} {small:8.2f} {big:8.2f} {big / small:10.2f}{goal}")


if __name__ == "__main__":
    main()
