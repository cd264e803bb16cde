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
        raise HarnessError(f"{db}: no such store: run `harness run SUITE --db {db}` first, or check the path")
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
    A run whose calls partly failed returns normally: `report.complete` is False and a rerun retries them.
    The suite's `executor` says where the calls run (harness.executors): here, or on a Ray cluster."""
    from harness.executors import check_executor, on_ray

    stages = tuple(stages)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise HarnessError(f"stages: unknown {', '.join(unknown)}: use some of {', '.join(STAGES)}")
    suite, base_dir, source = resolve_suite(suite, base_dir)
    check_executor(suite, source)
    questions = preflight(suite, base_dir, source, backends, judges)  # once: the stages reuse its questions
    stages_run = _Stages(suite, base_dir, source, stages, questions, progress, on_stage or (lambda stage, report: None))
    if suite.executor.kind != "ray":
        return stages_run(db, backends, judges)
    # backends in Ray actors on a cluster (stopped at the end, even on errors); this process writes the store
    with on_ray(suite, stages, backends, judges) as placed:
        return stages_run(db, placed.backends, placed.judges, placed.run_groups)


@dataclass
class _Stages:
    """harness.api.run's stages, given the checked input (one preflight) and where calls run."""

    suite: Suite
    base_dir: Path
    source: str
    stages: tuple
    questions: list
    progress: object
    done: Callable[[str, "RunReport"], None]

    def __call__(self, db, backends: dict | None, judges: dict | None, run_groups: Callable | None = None) -> RunReport:
        from harness import pipeline
        from harness.judging import JudgingSummary
        from harness.runner import RunSummary, new_run_id, recorded_run

        suite, stages, questions, progress, done = self.suite, self.stages, self.questions, self.progress, self.done
        store = open_store(db)
        report = RunReport(suite)
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
                report.generation = run_suite(suite, store, self.base_dir, progress=progress, backends=backends,
                                              run_id=run_id, questions=questions)
                report.generation.wall_s, report.generation.status = time.perf_counter() - started, "finished"
                done("generate", report)
            if suite.judges and "judge" in stages:
                from harness.judging import judge_suite

                report.judging = judge_suite(suite, store, run_id, self.base_dir, progress=progress, judges=judges,
                                             summary=judging, questions=questions)
                done("judge", report)
            if suite.judges and "rate" in stages:
                report.board = rate(suite, store)
                done("rate", report)
        if suite.closed_set and "closed" in stages:
            _closed_stage(report, self.base_dir, store, self.source, progress, run_groups=run_groups)
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
    from harness.executors import check_executor, on_ray

    suite, base_dir, source = resolve_suite(suite, base_dir)
    if not suite.closed_set:
        raise HarnessError(f"{source}: the suite has no closed_set tasks: add some")
    check_executor(suite, source)
    report = RunReport(suite)
    if suite.executor.kind != "ray":
        _closed_stage(report, base_dir, open_store(db), source, progress, force)
        return report
    with on_ray(suite, ("closed",)) as placed:
        _closed_stage(report, base_dir, open_store(db), source, progress, force, placed.run_groups)
    return report


def _closed_stage(report: RunReport, base_dir: Path, store: Store, source: str, progress, force: bool = False,
                  run_groups: Callable | None = None):
    from harness.closed import run_closed as run_tasks
    from harness.store.closed import closed_scores

    report.closed = run_tasks(report.suite, base_dir, store, progress, force=force, source=source,
                              run_groups=run_groups)
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


def suite_judge(suite: Suite | str | Path, judge: str | None = None, dimension: str | None = "overall"):
    """(a built pairwise judge of the suite: `judge` or its first, the suite's merge policy). With
    `dimension`, the judge judges that one dimension (judge-eval scores one verdict per pair)."""
    from harness.judging import build_judge

    suite, _, source = resolve_suite(suite)
    pairwise = [j for j in suite.judges if j.kind == "pairwise" and (judge is None or j.name == judge)]
    if not pairwise:
        raise ConfigError(f"{source}: " + (f"no pairwise judge named '{judge}'" if judge else "has no pairwise judge")
                          + ": add one under 'judges:' or pass --judge NAME")
    spec = pairwise[0]
    if dimension is not None and list(spec.dimensions) != [dimension]:
        spec = spec.model_copy(update={"dimensions": [dimension]})
    return build_judge(spec), suite.ratings.merge


def evaluate_judge(judge=None, *, benchmark: str, suite: Suite | str | Path | None = None,
                   judge_name: str | None = None, file: Path | None = None, data: Path = Path("../shared/data"),
                   limit: int | None = None, seed: int = 0, merge: str | None = None,
                   dimension: str | None = "overall", db: Store | str | Path | None = None, prices=None,
                   bootstrap_rounds: int = 1000, progress=None):
    """A judge on a labelled benchmark (harness.judge_eval.BENCHMARKS; `file` for one without a
    shared copy), a seeded sample of `limit` pairs or all, judged in both orders; every metric per
    subset with bootstrap intervals, stored in `db` when given (a rerun makes zero judge calls).

    `judge`: any judges.base.Judge (the caller closes it), or None to build the suite's pairwise judge
    `judge_name` (or its first) on `dimension`, merged under the suite's policy unless `merge` says
    otherwise. `prices`: a harness.prices.PriceTable or a YAML path (cost per 1,000 calls).
    Returns a harness.judge_eval.BenchmarkReport."""
    from harness import judge_eval as evaluation
    from harness.prices import PriceTable, load_prices

    owned, policy = None, "inconsistent_tie"
    if judge is None:
        if suite is None:
            raise HarnessError("evaluate_judge: give a judge, or a suite (--suite S) to take its judge from")
        judge, policy = suite_judge(suite, judge_name, dimension)
        owned = judge
    prices = prices if isinstance(prices, PriceTable) else load_prices(prices)
    store = open_store(db) if db is not None else None
    try:
        return evaluation.evaluate_benchmark(judge, benchmark, store, data=Path(data), file=file, limit=limit,
                                             seed=seed, merge=merge or policy, bootstrap_rounds=bootstrap_rounds,
                                             prices=prices, progress=progress)
    finally:
        if owned is not None:
            owned.close()


def judge_leaderboard(db: Store | str | Path = DEFAULT_DB) -> list[dict]:
    """The evaluator leaderboard: one entry per judge x benchmark of the stored judge-eval runs
    (harness.judge_eval_board.leaderboard), what the app's Judges page shows."""
    from harness.judge_eval_board import leaderboard
    from harness.store.judge_eval import judge_eval_results

    return leaderboard(judge_eval_results(open_store(db, must_exist=True)))


def judge_card(judge: str, db: Store | str | Path = DEFAULT_DB) -> dict:
    """A judge's card: every stored judge-eval metric per benchmark and subset, its notes, and a
    warning per benchmark where it is at or below chance (harness.judge_eval_board.card)."""
    from harness.judge_eval_board import card
    from harness.store.judge_eval import judge_eval_results

    return card(judge_eval_results(open_store(db, must_exist=True)), judge)


def train(method: str, recipe: str | Path, db: Store | str | Path = DEFAULT_DB, *,
          then_eval: str | Path | None = None, progress=None, on_trained: Callable | None = None):
    """Train (method 'sft', 'dpo' or 'reward') from a recipe, register the model with its lineage,
    and with then_eval evaluate it beside its parent on that suite (a reward model is scored on its
    held-out pairs instead: then_eval does not apply). `on_trained(result)` is called between the
    two (the CLI prints the training summary there). Returns (TrainResult, EvalReport | None)."""
    import trainers

    methods = {"sft": "train_sft", "dpo": "train_dpo", "reward": "train_reward"}
    if method not in methods:
        raise HarnessError(f"method: '{method}': use sft, dpo or reward")
    if method == "reward" and then_eval:
        raise HarnessError("--then-eval: a reward model is a judge, not a candidate: it is scored on its recipe's"
                           " held-out pairs; use it as a judge (style: reward) in a suite")
    from trainers.common import reporting_to

    store = open_store(db)
    with reporting_to(progress):  # a step bar instead of TRL's dict per logging step
        extra = {"progress": progress} if method == "reward" else {}  # its held-out scoring has a bar
        result = getattr(trainers, methods[method])(recipe, store, **extra)
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



# --- parts of this API kept in their own modules, loaded on first use ---------------------------------
# how sure are we: harness/stats/api.py (numpy-heavy); the read commands' data: harness/api_reads.py
_ELSEWHERE = {name: "harness.stats.api" for name in ("compare", "how_sure", "probe", "Comparison", "PanelComparison",
                                                     "Certainty", "PanelCertainty", "ProbeReport")}
_ELSEWHERE |= {name: "harness.api_reads" for name in ("StoreInfo", "store_info", "ModelList", "model_list", "set_list",
                                                      "stored_answers", "closed_samples", "closed_results")}


def __getattr__(name: str):
    """`harness.api.compare(...)`, `harness.api.store_info(...)`: part of this API, defined elsewhere."""
    if name in _ELSEWHERE:
        from importlib import import_module

        return getattr(import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'harness.api' has no attribute {name!r}")


# --- calibration (harness/calibration.py: MEC, BPC, HITLC measured; people's queue by entropy) ---------
def calibrate(data: Path, db: Store | str | Path | None = None, *, suite: Suite | str | Path,
              judge: str | None = None, benchmark: str = "pandalm", pairs: Path | None = None,
              pairs_format: str = "labelled", sample: int | None = 150, k: int = 3,
              beta: float = 0.2, seed: int = 0, evidence_tokens: int | None = None, temperature: float = 0.7,
              bootstrap_rounds: int = 1000, level: float = 0.95, progress=None):
    """Agreement with human labels of a suite's pairwise judge (`judge`, or its first) before and
    after MEC (k samples per order), BPC and HITLC (top `beta` to people), on `sample` seeded pairs
    (None: all) of `benchmark` in `data` ('pandalm' or 'mt_bench'), or of the file `pairs` in
    `pairs_format` (judges.labelled.FORMATS), every number on the same pairs. With
    `evidence_tokens`, the judge's model judges evidence-first instead (a sampled explanation of
    that many tokens, then 1 / 2 / Tie by likelihood). Judgments are stored when `db` is given and
    never asked again. Returns a harness.calibration.CalibrationReport."""
    from harness import calibration
    from harness.judging import build_judge
    from harness.models.base import create_backend
    from judges.calibration import EvidenceFirstJudge

    suite, _, source = resolve_suite(suite)
    pairwise = [j for j in suite.judges if j.kind == "pairwise" and (judge is None or j.name == judge)]
    if not pairwise:
        raise ConfigError(f"{source}: " + (f"no pairwise judge named '{judge}'" if judge else "has no pairwise judge")
                          + ": add one under 'judges:' or pass --judge NAME")
    if pairs is None:
        if benchmark not in calibration.BENCHMARKS:
            raise ConfigError(f"benchmark: '{benchmark}': use one of {', '.join(calibration.BENCHMARKS)}, or pass a"
                              " labelled-pairs file")
        file, pairs_format = calibration.BENCHMARKS[benchmark]
        pairs = Path(data) / file
    else:
        benchmark = Path(pairs).stem
    labelled = calibration.labelled_items(pairs, pairs_format, sample, seed)
    spec = pairwise[0]
    built = (EvidenceFirstJudge(f"{spec.name}+evidence", create_backend(spec.model), max_new_tokens=evidence_tokens,
                                temperature=temperature) if evidence_tokens else build_judge(spec))
    store = open_store(db) if db is not None else None
    try:
        return calibration.calibrate_judge(built, labelled, store, k=k, beta=beta, benchmark=benchmark,
                                           rounds=bootstrap_rounds, level=level, seed=seed, progress=progress)
    finally:
        built.close()


def annotate_priority(db: Store | str | Path, suite: Suite | str | Path, judge: str, beta: float | None = None):
    """A suite's counted battles of `judge`, most uncertain first (HITLC: diversity entropy of every
    current verdict in both orders); with `beta` only the top fraction. harness.calibration.BattlePriority."""
    from harness.calibration import annotate_priority as ranked

    return ranked(db, suite, judge, beta)


# --- people's verdicts (the app's Annotate page writes them) -------------------------------------------
def human_verdicts(db: Store | str | Path = DEFAULT_DB, annotator: str | None = None) -> list[dict]:
    """Every stored verdict of people (one person's with `annotator`), newest first: one dict per
    battle and dimension with the person, the battle (set_name, question_id, turn, x, y), the order
    it was shown in, the verdict ('A' = shown first), the winner it names, the note and the queue
    reason. What the app exports as JSONL and CSV."""
    from harness.store.views import human_verdicts as read

    return read(open_store(db, must_exist=True), annotator)


def undo_human_verdicts(db: Store | str | Path, annotator: str, battle: dict) -> int:
    """Remove `annotator`'s verdicts (every dimension) on `battle` {set_name, question_id, turn, x,
    y}: the battle counts with the judges' verdicts again. Returns the number of rows removed."""
    from harness import views

    return views.undo_human_verdicts(open_store(db, must_exist=True), annotator, battle)
