"""Time to first render of every page of the app on a 135k- and a 1M-judgment store.

Builds synthetic stores with the real schema (tests/app_store.py; 3 dimensions, both orders
stored): the issue's large store (8 models, one judge, 22,540 battles = 135,240 judgment rows), a
1M-judgment store (two judges, 83,334 battles = 1,000,008 rows), each with 8 and with 30 models,
and a ~1,200-row baseline with the same models. Each page is rendered cold (Streamlit's data cache
cleared, a fresh AppTest session: every query runs against the file) --repeats times, in its
default state (the Annotate page with a name typed in); it prints the median seconds per page and
store, and each store's time over the baseline's, measured in this one process. A page's seconds
are its script run (every query, every chart built), not AppTest's wall time, which adds 2-3 s per
fresh session that a running server spends once at start (see render_once).
Goal (issue 12): every page's first render < 2 s on both stores.

Run (repo root, harness venv; a few minutes):  python bench/app.py [--models 8 30 --repeats 3]
`--profile PAGE` also prints the top of a cProfile of that page's render on the largest store.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.app_store import build_store  # noqa: E402

DIMENSIONS = ("accuracy", "helpfulness", "language")
PAGES = ("leaderboard", "pairwise", "answers", "judges", "runs", "annotate")
# the page's state a user would have typed in before its first render (the Annotate page asks a name)
PAGE_STATE = {"annotate": {"ann_name": "bench"}}
GOAL_S = 2.0


@dataclass(frozen=True)
class StoreSpec:
    label: str
    judges: tuple[str, ...]
    battles: int  # judgment rows = battles x 2 orders x judges x dimensions

    def rows(self) -> int:
        return self.battles * 2 * len(self.judges) * len(DIMENSIONS)


STORES = (
    StoreSpec("base", ("judge-x", "judge-y"), 100),
    StoreSpec("135k", ("judge-x",), 22_540),  # the suite: 8 models x 805 questions, one judge, all pairs
    StoreSpec("1M", ("judge-x", "judge-y"), 83_334),
)


def _page(module: str, state: dict) -> None:
    import importlib
    import time

    import streamlit as st

    for key, value in state.items():
        st.session_state.setdefault(key, value)
    profiler = None
    if st.session_state.get("_bench_profile"):  # AppTest runs the script in its own thread: profile it there
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    importlib.import_module(module).render()
    st.session_state["_bench_script_s"] = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        st.session_state["_bench_profile"] = profiler


def render_once(db: Path, page: str, profile: bool = False):
    """A cold first render: (seconds the page's script ran, the AppTest after it). AppTest's own
    wall time adds ~2-3 s here that a running server does not spend per page: each fresh AppTest
    scans every installed package for components (a server does it once at start) and polls."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_APP_DB"] = str(db)
    st.cache_data.clear()
    at = AppTest.from_function(_page, args=(f"app.screens.{page}", PAGE_STATE.get(page, {})), default_timeout=600)
    at.session_state["_bench_profile"] = profile
    at.run()
    if at.exception:
        raise RuntimeError(f"{page} on {db}: {at.exception[0].value}")
    return at.session_state["_bench_script_s"], at


def first_render(db: Path, page: str, repeats: int) -> float:
    return statistics.median(render_once(db, page)[0] for _ in range(repeats))


def questions_for(battles: int, models: int) -> int:
    """Enough questions for `battles` distinct (question, turn, pair) battles (a third have 2 turns)."""
    return max(40, -(-battles * 3 // (4 * (models * (models - 1) // 2))) + 10)


def build(tmp: Path, spec: StoreSpec, models: int) -> Path:
    start = time.perf_counter()
    path = tmp / f"{spec.label}-{models}.duckdb"
    questions = questions_for(spec.battles, models)
    store = build_store(path, n_models=models, n_battles=spec.battles, judges=spec.judges, dimensions=DIMENSIONS,
                        n_questions=questions, real_ratings=False)
    with store.read() as con:
        n = con.execute("SELECT count(*) FROM judgments").fetchone()[0]
    print(f"store {spec.label:>4} x {models} models: {n:,} judgments, {len(spec.judges)} judge(s),"
          f" {questions} questions, built in {time.perf_counter() - start:.1f} s"
          f" ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    return path


def profile(db: Path, page: str, top: int = 40) -> None:
    import pstats

    render_once(db, page)  # imports and the page's modules loaded: the profile shows the queries
    seconds, at = render_once(db, page, profile=True)
    print(f"\nprofile of {page} on {db.name} ({seconds:.2f} s, cumulative):")
    pstats.Stats(at.session_state["_bench_profile"]).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[8, 30])
    parser.add_argument("--stores", nargs="+", default=[s.label for s in STORES[1:]],
                        choices=[s.label for s in STORES[1:]])
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=PAGES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", choices=PAGES, help="cProfile this page on the last store")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # AppTest's "no runtime" notes on every render
    specs = [STORES[0]] + [s for s in STORES[1:] if s.label in args.stores]
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[tuple[str, int], dict[str, float]] = {}
        for models in args.models:
            paths = {spec.label: build(Path(tmp), spec, models) for spec in specs}
            render_once(paths["base"], "leaderboard")  # imports (streamlit, altair, pandas) are not a page's time
            for spec in specs:
                results[(spec.label, models)] = {page: first_render(paths[spec.label], page, args.repeats)
                                                 for page in args.pages}
                print(f"  rendered every page on {spec.label} x {models}", flush=True)
            if args.profile and models == args.models[-1]:
                profile(paths[specs[-1].label], args.profile)
            for path in paths.values():
                path.unlink()
        report(results, [(spec.label, models) for models in args.models for spec in specs], args)


def report(results: dict[tuple[str, int], dict[str, float]], columns: list[tuple[str, int]], args) -> None:
    print(f"\nfirst render in seconds, cold cache, median of {args.repeats} (the page's script run under"
          " AppTest: every query and chart built); x base: over the ~1,200-row store with the same models")
    print(f"{'page':<12}" + "".join(f"{f'{label} x{m}':>12}" for label, m in columns) + "   goal < 2 s")
    for page in args.pages:
        cells = "".join(f"{results[c][page]:12.2f}" for c in columns)
        missed = [f"{label} x{m}" for label, m in columns
                  if label != "base" and results[(label, m)][page] >= GOAL_S]
        print(f"{page:<12}{cells}   " + ("met" if not missed else "MISSED on " + ", ".join(missed)))
    ratios = []
    for label, m in columns:
        ratio = statistics.median(results[(label, m)][p] / results[("base", m)][p] for p in args.pages)
        ratios.append("" if label == "base" else f"x{ratio:.1f} base")
    print(f"{'':<12}" + "".join(f"{r:>12}" for r in ratios) + "   (median over pages)")

if __name__ == "__main__":
    main()
