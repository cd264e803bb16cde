"""The Python API: what the CLI, the service, the app and the trainers call.

    import harness
    report = harness.run("quickstart", db="harness.duckdb")      # generate, judge, rate, closed set
    board = harness.rate("quickstart", db="harness.duckdb")      # recompute the board from judgments
    for row in board.rows_for("all"):
        print(row.judge_name, row.dimension, row.method, row.model, round(row.rating), row.ci_low, row.ci_high)

Each function takes a suite (a Suite, a YAML path or a built-in name) and a store (a Store or a
path), does one job, and returns plain dataclasses; nothing here prints. Battles always come from
harness.battles, so every caller sees the same results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from harness.battles import Selection, battles, counted, for_suite, grades
from harness.config import Suite, load_suite, resolve_suite_path
from harness.errors import ConfigError, HarnessError, StoreReadOnlyError
from harness import leaderboard
from harness.leaderboard import RatingRow
from harness.store import DEFAULT_DB, Store
from judges.reliability import Reliability, reliability

STAGES = ("generate", "judge", "rate", "closed")


def open_store(db: Store | str | Path = DEFAULT_DB, *, must_exist: bool = False) -> Store:
    """A Store for `db` at this version's schema: a current file is only read (so readers work on a
    read-only one), an older one migrated, a newer one refused; with must_exist, a missing file is
    a one-line error instead of a new, empty store."""
    if isinstance(db, Store):
        return db
    if must_exist and not Path(db).exists():
        raise HarnessError(f"{db}: no such database: run `harness run quickstart --db {db}` first, or pass --db")
    return Store(db)


def resolve_suite(suite: Suite | str | Path, base_dir: Path | None = None) -> tuple[Suite, Path, str]:
    """(suite, folder its relative paths resolve against, source label for messages)."""
    if isinstance(suite, Suite):
        return suite, base_dir or Path("."), f"suite '{suite.name}'"
    loaded, folder = load_suite(suite)
    return loaded, base_dir or folder, str(resolve_suite_path(str(suite)))


# --- the board --------------------------------------------------------------------------------------
@dataclass
class Leaderboard:
    """A suite's leaderboard: rating rows (every category), each judge's reliability, and the
    models on the board that the suite file does not list (judged earlier by the same judges)."""

    suite: Suite
    rows: list[RatingRow]
    reliability: dict[str, Reliability] = field(default_factory=dict)
    models_not_in_suite: list[str] = field(default_factory=list)
    not_saved: str | None = None  # why rate(save=True) could not store the rows (a read-only file)
    battles: list = field(default_factory=list, repr=False)  # the battles rated (for `marks`)
    _marks: dict | None = field(default=None, init=False, repr=False)

    def rows_for(self, category: str = "all") -> list[RatingRow]:
        return [r for r in self.rows if r.category == category]

    def marks(self) -> dict:
        """Per (judge, dimension): harness.leaderboard.paired_marks of the rated battles (BT order,
        Holm-corrected permutation tests of neighbours). Computed on first use: a few seconds of
        BT refits on a large board that a caller storing the rows need not pay."""
        if self._marks is None:
            self._marks = leaderboard.paired_marks(self.battles, seed=self.suite.ratings.seed)
        return self._marks


def rate(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB, *, save: bool = True,
         categories: bool = True) -> Leaderboard:
    """Rate the suite's current battles (harness.battles) and grades; store the rows unless save=False
    or the file is read-only (then the board says why in `not_saved`). BT intervals resample what
    the suite's `ratings.ci` says (questions, by default); `board.marks()` are the paired tests."""
    from harness.store.ratings import save_ratings

    suite, _, _ = resolve_suite(suite)
    store = open_store(db, must_exist=not save)
    cfg = suite.ratings
    fought = battles(store, for_suite(suite), cfg.merge)
    baseline = suite.pairs.baseline if suite.pairs.mode == "baseline" else None
    rows = leaderboard.rate(fought, cfg.bootstrap_rounds, cfg.level, cfg.seed, baseline, categories, ci=cfg.ci)
    single = tuple(j.name for j in suite.judges if j.kind == "single")
    if single:
        rows += leaderboard.grade_rows(grades(store, single, tuple(s.name for s in suite.sets)))
    not_saved = None
    if save:
        try:
            save_ratings(store, suite.name, cfg.merge, rows)
        except StoreReadOnlyError as exc:  # the board is still worth showing
            not_saved = str(exc)
    listed = {m.name for m in suite.models}
    on_board = {m for b in fought for m in (b.model_a, b.model_b)}
    judged = [j.name for j in suite.judges if j.kind == "pairwise"]
    return Leaderboard(suite, rows, {name: judge_reliability(store, name) for name in judged},
                       sorted(on_board - listed), not_saved, fought)


def stored_ratings(suite: str, db: Store | str | Path = DEFAULT_DB, category: str | None = "all") -> list[dict]:
    """The board as last stored for suite name `suite` (no recomputation)."""
    from harness.store.ratings import latest_ratings

    return latest_ratings(open_store(db, must_exist=True), suite, category)


def judge_reliability(store: Store | str | Path, judge_name: str) -> Reliability:
    """Parse failures, swap flips, position and length bias of a judge, from its counted rows."""
    store = open_store(store, must_exist=True)
    selection = Selection(judges=(judge_name,))
    return reliability(judge_name, *counted(store, selection))


def self_preference(suite: Suite | str | Path, db: Store | str | Path, judge_name: str) -> dict[str, float]:
    """Win rate (ties half) under `judge_name` of each candidate that runs on the judge's own model;
    compare it with the same candidate's win rate under other judges to see self-preference."""
    suite, _, _ = resolve_suite(suite)
    spec = next(j for j in suite.judges if j.name == judge_name)
    same = sorted(m.name for m in suite.models if m.model == spec.model.model)
    fought = battles(open_store(db, must_exist=True), for_suite(suite, judges=(judge_name,)), suite.ratings.merge)
    rates = {model: leaderboard.win_rate_of(fought, model) for model in same}
    return {model: rate_[0] for model, rate_ in rates.items() if rate_}


# --- running a suite ----------------------------------------------------------------------------------
@dataclass
class RunReport:
    suite: Suite
    generation: object = None  # harness.runner.RunSummary
    judging: object = None  # harness.judging.JudgingSummary
    board: Leaderboard | None = None
    closed: object = None  # harness.closed.ClosedSummary
    closed_scores: list[dict] = field(default_factory=list)  # latest lm-eval metrics of the suite's models

    @property
    def run_id(self) -> str:
        return self.generation.run_id if self.generation else ""

    def failures(self) -> dict[str, int]:
        """Calls that failed in this run and are retried by the next: {"answers": n, "judge calls": m}."""
        answers = self.generation.totals()["failed"] if self.generation else 0
        judged = self.judging.totals()["judge_failed"] if self.judging else 0
        return {"answers": answers, "judge calls": judged}

    @property
    def complete(self) -> bool:
        """True when every planned answer and judgment is stored (nothing failed)."""
        return not any(self.failures().values())


def run(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB, *, stages: Iterable[str] = STAGES,
        base_dir: Path | None = None, progress=None, backends: dict | None = None, judges: dict | None = None,
        on_stage: Callable[[str, RunReport], None] | None = None) -> RunReport:
    """Generate every missing answer, judge what is not judged, rate, run the closed-set tasks.

    Each stage skips what the store already holds, so a finished suite makes no model, judge or
    lm-eval call. `backends` / `judges` map names to ready objects (tests, fixtures); `on_stage`
    is called after each stage (the CLI prints its table there). Input is checked before the store is
    touched; one `runs` row covers generation, judging and rating (closed-set tasks record their own).
    A run whose calls partly failed returns normally: `report.complete` is False and a rerun retries them."""
    from harness import pipeline
    from harness.judging import JudgingSummary
    from harness.runner import RunSummary, new_run_id, recorded_run

    stages = tuple(stages)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise HarnessError(f"stages: unknown {', '.join(unknown)}: use some of {', '.join(STAGES)}")
    suite, base_dir, source = resolve_suite(suite, base_dir)
    questions = preflight(suite, base_dir, source, backends, judges)
    if suite.executor.kind == "ray":  # backends in Ray actors on a cluster; this process still writes the store
        from harness.executors import on_ray

        with on_ray(suite, stages, backends, judges) as wrapped:  # actors killed at the end, even on errors
            if wrapped is not None:  # None: every model and judge of these stages was given
                return run(suite, db, stages=stages, base_dir=base_dir, progress=progress, on_stage=on_stage, **wrapped)
    store = open_store(db)
    report = RunReport(suite)
    done = on_stage or (lambda stage, report: None)
    run_id = new_run_id()
    judging = JudgingSummary(run_id=run_id)

    def totals() -> dict:
        generated = report.generation.totals() if report.generation else dict.fromkeys(
            ("planned", "cached", "generated", "failed"), 0)
        return {**generated, **judging.totals()}

    with recorded_run(store, run_id, suite, progress, totals):
        if {"generate", "judge"} <= set(stages) and pipeline.streams(suite, backends, judges):
            # every model and judge is an API endpoint: judge each pair as soon as both answers exist
            report.generation = RunSummary(run_id=run_id, suite_name=suite.name, db_path=store.path)
            started = time.perf_counter()
            pipeline.generate_and_judge(suite, store, run_id, questions, progress, report.generation, judging,
                                        backends, judges)
            report.generation.wall_s, report.generation.status = time.perf_counter() - started, "finished"
            report.judging = judging
            done("generate", report)
            done("judge", report)
            stages = tuple(s for s in stages if s not in ("generate", "judge"))
        if "generate" in stages:
            from harness.runner import run_suite

            started = time.perf_counter()
            report.generation = run_suite(suite, store, base_dir, progress=progress, backends=backends, run_id=run_id,
                                          questions=questions)
            report.generation.wall_s, report.generation.status = time.perf_counter() - started, "finished"
            done("generate", report)
        if suite.judges and "judge" in stages:
            from harness.judging import judge_suite

            report.judging = judge_suite(suite, store, run_id, base_dir, progress=progress, judges=judges,
                                         summary=judging, questions=questions)
            done("judge", report)
        if suite.judges and "rate" in stages:
            report.board = rate(suite, store)
            done("rate", report)
    if suite.closed_set and "closed" in stages:
        _closed_stage(report, base_dir, store, source, progress)
        done("closed", report)
    return report


def preflight(suite: Suite, base_dir: Path, source: str, backends: dict | None = None,
              judges: dict | None = None) -> list:
    """Everything about the input that can be checked without a model: the data files and the
    environment variables keys come from. Raises before anything is written; returns the suite's
    questions, so the stages do not read the data files again."""
    from harness.models.openai_backend import api_key_from_env
    from harness.runner import load_questions

    questions = load_questions(suite, base_dir)
    specs = [m for m in suite.models if m.name not in (backends or {})]
    specs += [j.model for j in suite.judges if j.name not in (judges or {})]
    for spec in specs:
        try:  # the backends' own check, run before anything is written
            api_key_from_env(getattr(spec, "api_key_env", None), spec.name)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return questions


def run_closed(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB, *, force: bool = False,
               base_dir: Path | None = None, progress=None) -> RunReport:
    """Only the closed-set tasks (lm-eval); `force` reruns tasks already stored."""
    suite, base_dir, source = resolve_suite(suite, base_dir)
    if not suite.closed_set:
        raise HarnessError(f"{source}: the suite has no closed_set tasks: add some")
    report = RunReport(suite)
    _closed_stage(report, base_dir, open_store(db), source, progress, force)
    return report


def _closed_stage(report: RunReport, base_dir: Path, store: Store, source: str, progress, force: bool = False):
    from harness.closed import run_closed as run_tasks
    from harness.store.closed import closed_scores

    report.closed = run_tasks(report.suite, base_dir, store, progress, force=force, source=source)
    report.closed_scores = closed_scores(store, report.suite.name, [m.name for m in report.suite.models])


# --- judges against people, training -------------------------------------------------------------------
def evaluate_judges(data: Path, db: Store | str | Path | None = None, suite: Suite | str | Path | None = None,
               sample: int = 40, fastchat_judgments: Path | None = None, seed: int = 0):
    """Agreement of judges with human labels (released verdicts, the human ceiling, a FastChat
    judgment file, and the suite's first judge run live on `sample` MT-Bench pairs), stored in
    the store when one is given; cached live items are not judged again."""
    from harness import judge_eval as evaluation
    from harness.judging import build_judge

    judge = None
    if suite is not None:
        suite, _, source = resolve_suite(suite)
        if not suite.judges:
            raise HarnessError(f"{source}: has no judges: add a 'judges:' entry")
        judge = build_judge(suite.judges[0])
    store = open_store(db) if db is not None else None
    try:
        return evaluation.judge_eval(data, store, judge=judge, sample=sample, fastchat_judgments=fastchat_judgments,
                                     seed=seed)
    finally:
        if judge is not None:
            judge.close()


def train(method: str, recipe: str | Path, db: Store | str | Path = DEFAULT_DB, *,
          then_eval: str | Path | None = None, progress=None, on_trained: Callable | None = None):
    """Train (method 'sft' or 'dpo') from a recipe, register the model with its lineage, and with
    then_eval evaluate it beside its parent on that suite. `on_trained(result)` is called between the
    two (the CLI prints the training summary there). Returns (TrainResult, EvalReport | None)."""
    import trainers

    if method not in ("sft", "dpo"):
        raise HarnessError(f"method: '{method}': use sft or dpo")
    store = open_store(db)
    result = (trainers.train_sft if method == "sft" else trainers.train_dpo)(recipe, store)
    if on_trained is not None:
        on_trained(result)
    report = evaluate_trained(result.name, then_eval, store, progress=progress) if then_eval else None
    return result, report


def evaluate_trained(model: str, suite: str | Path, db: Store | str | Path = DEFAULT_DB, *, progress=None):
    """Run the suite with a trained model and its parent added, and store the comparison between them."""
    import trainers

    return trainers.evaluate_against_parent(model, suite, open_store(db, must_exist=True), progress)


def lineage(model: str, db: Store | str | Path = DEFAULT_DB):
    """The family tree `model` belongs to (trainers.lineage), with costs, losses and parent deltas."""
    import trainers

    return trainers.lineage(open_store(db, must_exist=True), model)



# --- how sure are we (harness/stats/api.py: compare, how_sure, probe) ---------------------------------
_STATS = ("compare", "how_sure", "probe", "Comparison", "PanelComparison", "Certainty", "PanelCertainty", "ProbeReport")


def __getattr__(name: str):
    """The statistics API lives in harness.stats.api (numpy-heavy, loaded on first use) and is part
    of this one: `harness.api.compare(...)`."""
    if name in _STATS:
        from harness.stats import api as stats_api

        return getattr(stats_api, name)
    raise AttributeError(f"module 'harness.api' has no attribute {name!r}")
