"""Judge meta-evaluation: how well does a judge agree with people (or with the truth)?

Sources, all labelled by others (see ../shared/data/README.md and judges/labelled.py):
- any labelled-pairs benchmark in BENCHMARKS (MT-Bench human votes, the PandaLM test set, HH-RLHF,
  and the peers' own files: LLMBar, JudgeBench, RewardBench, EvalBiasBench, AlpacaEval
  cross-annotations, or our labelled-pairs JSONL), a live judge run on it in both orders
  (`evaluate_benchmark`, through harness.judge_eval_live);
- released verdicts of published judges on the PandaLM test set (no judge is run);
- MT-Bench human votes, human vs human (the ceiling a judge is measured against);
- a FastChat pairwise judgment file, scored against the same expert votes.

Given a store, each is kept as a judge-eval run (migrations 006, 010): the run, every judged item
and order with its raw output, the human labels and its cost, and one row per subset and metric
with a bootstrap interval. A live rerun makes zero judge calls (harness.judge_eval_live).
`judge_eval` is the original entry point (released verdicts, the human ceiling, a FastChat file,
and a live judge on a sample of MT-Bench pairs); its published figures come out unchanged.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.judge_eval_live import (  # noqa: F401 (EvalRun, file_hash: re-exported for callers)
    EvalRun, Part, evaluate_pairs, file_hash, item_row, metrics_by_subset, new_part, save, set_metrics)
from harness.models.base import stable_hash
from harness.store import Store
from judges.agreement import (  # noqa: F401 (Metric, agreement_per_item: re-exported for callers)
    Metric, PairOutcome, agreement_metrics, agreement_per_item, pair_key)
from judges.base import Judge
from judges.labelled import LabelledPair, load_labelled
from judges.meta import (Agreement, Report, Vote, classification_report, fastchat_agreement,
                         load_fastchat_pair_judgments, load_gpt35_released, load_mt_bench_votes, load_pandalm_released,
                         load_pandalm_testset, mt_bench_pairs, pandalm_pairs)

RELEASED = {"pandalm-7b": ("pandalm-7b-testset-v1.json", load_pandalm_released),
            "gpt-3.5-turbo": ("gpt-3.5-turbo-testset-v1.json", load_gpt35_released)}
# The released files' verdict and reason fields, kept as the stored raw output.
_RELEASED_FIELDS = {"pandalm-7b": ("pandalm_result", "pandalm_reason"),
                    "gpt-3.5-turbo": ("gpt_result", "gpt_reason")}

MT_BENCH = "mt_bench_human"
PANDALM = "pandalm_testset"
HUMAN_JUDGE = "mt-bench experts (human vs human)"
_VOTES = ("mt_bench", "human_judgments_turn1_votes.jsonl")
_WITH_TEXT = ("mt_bench", "human_judgments_turn1_with_text.jsonl")
_TESTSET = ("pandalm", "testset-v1.json")
_PANDA_POSITION = {0: "tie", 1: "A", 2: "B"}  # PandaLM label -> verdict with response1 shown as A


@dataclass(frozen=True)
class Benchmark:
    """A labelled benchmark: its judges.labelled format and, for the shared data, its file."""

    format: str
    path: tuple[str, ...] | None  # relative to the data folder; None: pass --file
    about: str


BENCHMARKS = {
    MT_BENCH: Benchmark("mt_bench", _WITH_TEXT, "MT-Bench turn-1 pairs with expert votes (3-way)"),
    PANDALM: Benchmark("pandalm", _TESTSET, "PandaLM test set, 3 annotators (3-way)"),
    "hh_rlhf_harmless": Benchmark("hh_rlhf", ("hh_rlhf", "harmless_base_test.jsonl.gz"),
                                  "Anthropic HH-RLHF harmless-base test (chosen vs rejected)"),
    "llmbar": Benchmark("llmbar", None, "LLMBar dataset.json (a file, or a folder of them)"),
    "judgebench": Benchmark("judgebench", None, "JudgeBench JSONL"),
    "rewardbench": Benchmark("rewardbench", None, "RewardBench rows (chosen vs rejected)"),
    "evalbiasbench": Benchmark("evalbiasbench", None, "EvalBiasBench / OffsetBias biasbench.json"),
    "alpaca_eval_human": Benchmark("alpaca_eval", None, "AlpacaEval human cross-annotations"),
    "labelled": Benchmark("labelled", None, "a labelled-pairs JSONL file (judges/labelled.py)"),
}


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: not found: pass --data pointing at the shared data folder")
    return path


def benchmark_name(benchmark: str, file: Path | None) -> str:
    """The name runs are stored under: the benchmark, or for our own format 'labelled:<file stem>'."""
    return f"labelled:{Path(file).stem}" if benchmark == "labelled" and file is not None else benchmark


def load_benchmark(benchmark: str, data: Path = Path("../shared/data"), file: Path | None = None,
                   limit: int | None = None, seed: int = 0) -> tuple[list[LabelledPair], Path]:
    """The benchmark's pairs (a seeded sample of `limit` of them, in file order) and the file read."""
    if benchmark not in BENCHMARKS:
        raise HarnessError(f"benchmark '{benchmark}': unknown: use one of {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[benchmark]
    if file is None and spec.path is None:
        raise HarnessError(f"benchmark '{benchmark}': no shared copy: pass --file PATH to the {spec.about}")
    path = Path(file) if file is not None else _require(Path(data).joinpath(*spec.path))
    pairs = load_labelled(path, spec.format)
    if limit is not None:
        if limit < 1:
            raise HarnessError(f"limit: {limit}: give a positive number of pairs (or leave it out: all)")
        if limit < len(pairs):
            chosen = set(random.Random(seed).sample(range(len(pairs)), limit))
            pairs = [p for i, p in enumerate(pairs) if i in chosen]
    return pairs, path


# ---------------------------------------------------------------- results


@dataclass
class LiveJudgeResult:
    judge_name: str
    pairs: int
    parsed_pairs: int  # both orders parsed
    with_ties: Agreement
    without_ties: Agreement
    calls: int = 0  # judge calls made (items x orders not found in the store)
    cached: int = 0  # items x orders read back from the store instead
    merge: str = "inconsistent_tie"
    metrics: dict[str, Metric] = field(default_factory=dict)  # every metric on these pairs


@dataclass
class JudgeEvalReport:
    """Everything `harness judge-eval` prints, and the runs stored for it."""

    released: dict[str, Report]  # judge -> accuracy, macro P/R/F1 (percent) on the PandaLM test set
    human_with_ties: Agreement  # MT-Bench turn 1, expert vs expert
    human_without_ties: Agreement
    fastchat: dict[str, tuple[Agreement, Agreement]] = field(default_factory=dict)  # judge -> (with, without)
    fastchat_file: Path | None = None
    live: LiveJudgeResult | None = None
    runs: list[EvalRun] = field(default_factory=list)

    @property
    def judge_calls(self) -> int:
        return self.live.calls if self.live else 0


@dataclass
class BenchmarkReport:
    """One benchmark: the live judge's run, and the reference runs stored beside it (released
    verdicts on PandaLM, the human ceiling on MT-Bench)."""

    benchmark: str
    run: EvalRun
    outcomes: list[PairOutcome]
    references: list[EvalRun] = field(default_factory=list)


# ---------------------------------------------------------------- reference parts (no judge is run)


def released_pandalm_reports(data: Path) -> dict[str, Report]:
    """Published judges' released verdicts vs the 3-annotator majority of the PandaLM test set."""
    gold = {item.idx: item.majority for item in load_pandalm_testset(_require(data.joinpath(*_TESTSET)))}
    return {name: classification_report(loader(_require(data / "pandalm" / file)), gold)
            for name, (file, loader) in RELEASED.items()}


def mt_bench_human_agreement(data: Path) -> tuple[Agreement, Agreement]:
    """Human vs human on MT-Bench turn 1 (expert votes), with and without ties."""
    votes = load_mt_bench_votes(_require(data.joinpath(*_VOTES)))
    return fastchat_agreement(votes, include_ties=True), fastchat_agreement(votes, include_ties=False)


def fastchat_file_agreement(path: Path, data: Path) -> dict[str, tuple[Agreement, Agreement]]:
    """Agreement with the MT-Bench expert votes of each judge in a FastChat pairwise judgment file
    (`model_judgment/*_pair.jsonl`): published judges scored without running them."""
    humans = load_mt_bench_votes(_require(data.joinpath(*_VOTES)))
    votes = load_fastchat_pair_judgments(_require(path))
    result = {}
    for judge in sorted({v.judge for v in votes}):
        mine = [v for v in votes if v.judge == judge]
        result[judge] = (fastchat_agreement(mine, humans, include_ties=True),
                         fastchat_agreement(mine, humans, include_ties=False))
    return result


def _positional(winner_model: str, model_a: str, model_b: str) -> str:
    """'A', 'B' or 'tie' for a model-level winner (a model name or 'tie'), with model_a shown as A."""
    return {model_a: "A", model_b: "B"}.get(winner_model, "tie")


def _winner_model(vote: Vote) -> str:
    return {"model_a": vote.model_a, "model_b": vote.model_b}.get(vote.winner, "tie")


def _released_parts(data: Path, rounds: int, level: float, seed: int) -> tuple[dict[str, Report], list[Part]]:
    """Each released judge as a run on the PandaLM test set: its verdict in the file's one order,
    scored by the same pair metrics as a live judge ('garbage' unparsed, and a tie when scored, as
    PandaLM scored it: the published accuracy / macro F1 come out of `accuracy_3way` / `macro_f1`)."""
    testset_path = _require(data.joinpath(*_TESTSET))
    items = load_pandalm_testset(testset_path)
    pairs = pandalm_pairs(items)
    gold = {item.idx: item.majority for item in items}
    reports, parts = {}, []
    settings = {"gold": "annotator majority", "bootstrap_rounds": rounds, "level": level, "seed": seed}
    for name, (file, loader) in RELEASED.items():
        path = _require(data / "pandalm" / file)
        predicted = loader(path)
        reports[name] = classification_report(predicted, gold)
        verdict_field, reason_field = _RELEASED_FIELDS[name]
        raw = {row["idx"]: row for row in json.loads(path.read_text(encoding="utf-8"))}
        fingerprint = stable_hash(["released", name, file_hash([path])])
        part = new_part(f"{name} (released)", fingerprint, "released", PANDALM, [testset_path, path], settings)
        outcomes = []
        for item, pair in zip(items, pairs):
            row = raw[item.idx]
            text, verdict = str(row[verdict_field]), _PANDA_POSITION[predicted[item.idx]]
            parsed = text != "garbage"
            key = stable_hash([fingerprint, PANDALM, str(item.idx), 1,
                               [item.instruction, item.input, item.response1, item.response2]])
            part.item_keys.append(key)
            part.new_items.append(item_row(
                part, key, str(item.idx), 1, "response1", "response2", verdict, parsed=parsed,
                raw=f"{text}\n{row.get(reason_field) or ''}".rstrip(),
                human_labels=[f"annotator{k}={_PANDA_POSITION[label]}" for k, label in enumerate(item.annotators, 1)],
                human_label=_PANDA_POSITION[item.majority], subset=pair.subset))
            outcomes.append(PairOutcome(pair.id, pair.subset, pair.gold, 1, {1: verdict if parsed else None}, verdict,
                                        len(pair.response_a), len(pair.response_b)))
        set_metrics(part.run, metrics_by_subset(pairs, outcomes, {o.pair_id: [o.merged] for o in outcomes},
                                                part.run.judge_name, True, rounds, level, seed))
        part.run.n_items, part.run.n_parsed = len(items), sum(i["parsed"] for i in part.new_items)
        part.run.three_way = True
        parts.append(part)
    return reports, parts


def _human_part(data: Path, rounds: int, level: float, seed: int) -> tuple[Agreement, Agreement, Part]:
    path = _require(data.joinpath(*_VOTES))
    votes = load_mt_bench_votes(path)
    settings = {"expert_only": True, "bootstrap_rounds": rounds, "level": level, "seed": seed}
    digest = file_hash([path])
    part = new_part(HUMAN_JUDGE, stable_hash(["human", digest]), "human", MT_BENCH, [path], settings, digest)
    with_ties, without, part.run.metrics = agreement_metrics(votes, None, rounds, level, seed)
    part.run.n_items = part.run.n_parsed = part.run.metrics["agreement_with_ties"].n
    part.run.three_way = True
    return with_ties, without, part


def _fastchat_parts(path: Path, data: Path, rounds: int, level: float,
                    seed: int) -> tuple[dict[str, tuple[Agreement, Agreement]], list[Part]]:
    votes_path = _require(data.joinpath(*_VOTES))
    humans = load_mt_bench_votes(votes_path)
    votes = load_fastchat_pair_judgments(_require(path))
    by_pair: dict[tuple, list[Vote]] = defaultdict(list)
    for h in humans:
        by_pair[pair_key(h)].append(h)
    settings = {"file": Path(path).name, "expert_only": True, "bootstrap_rounds": rounds, "level": level,
                "seed": seed}
    digest = file_hash([path, votes_path])
    result, parts = {}, []
    for judge in sorted({v.judge for v in votes}):
        mine = [v for v in votes if v.judge == judge]
        fingerprint = stable_hash(["fastchat_file", judge, file_hash([path])])
        part = new_part(f"{judge} (FastChat file)", fingerprint, "fastchat_file", MT_BENCH, [path, votes_path],
                        settings, digest)
        with_ties, without, part.run.metrics = agreement_metrics(mine, humans, rounds, level, seed)
        result[judge] = (with_ties, without)
        for v in mine:
            item_id = f"{v.question_id}:{v.model_a}:{v.model_b}:{v.turn}"
            key = stable_hash([fingerprint, MT_BENCH, item_id, 0, v.winner])
            if key in part.item_keys:
                continue
            part.item_keys.append(key)
            labels = [f"{h.judge}={_positional(_winner_model(h), v.model_a, v.model_b)}" for h in by_pair[pair_key(v)]]
            part.new_items.append(item_row(part, key, item_id, 0, v.model_a, v.model_b,
                                           _positional(_winner_model(v), v.model_a, v.model_b), True, v.winner, labels))
        part.run.n_items = part.run.n_parsed = len(part.item_keys)
        part.run.three_way = True
        parts.append(part)
    return result, parts


def reference_runs(benchmark: str, data: Path, store: Store | None, rounds: int = 1000, level: float = 0.95,
                   seed: int = 0) -> list[EvalRun]:
    """The runs stored beside a live judge's on `benchmark`: released verdicts on the PandaLM test
    set, the human ceiling on MT-Bench; none elsewhere, or when the shared files are not there."""
    parts: list[Part] = []
    try:
        if benchmark == PANDALM:
            parts = _released_parts(Path(data), rounds, level, seed)[1]
        elif benchmark == MT_BENCH:
            parts = [_human_part(Path(data), rounds, level, seed)[2]]
    except DataError:  # a benchmark read from --file without the shared folder: nothing to add
        return []
    for part in parts:
        if store is not None:
            save(store, part)
    return [p.run for p in parts]


# ---------------------------------------------------------------- a live judge on any benchmark


def _check_store(store: Store | None) -> None:
    if store is None:
        return
    from harness.store import judge_eval as sql

    with store.read() as con:
        if not sql.has_tables(con):
            raise HarnessError(f"{store.path}: has no judge-eval tables (migrations 006, 010): open it with "
                               "Store(path), which migrates, before storing judge-eval runs")


def evaluate_benchmark(judge: Judge, benchmark: str, store: Store | None = None, *,
                       data: Path = Path("../shared/data"), file: Path | None = None, limit: int | None = None,
                       seed: int = 0, merge: str = "inconsistent_tie", bootstrap_rounds: int = 1000,
                       level: float = 0.95, prices=None, progress=None) -> BenchmarkReport:
    """`judge` on `benchmark` (a seeded sample of `limit` pairs, or all), both orders, every metric
    per subset with bootstrap intervals; stored with the benchmark's reference runs when a store is
    given. The caller owns `judge` (and closes it)."""
    _check_store(store)
    pairs, path = load_benchmark(benchmark, data, file, limit, seed)
    name = benchmark_name(benchmark, file)
    references = reference_runs(name, data, store, bootstrap_rounds, level, seed)
    settings = {"limit": limit, "file": path.name}
    part, outcomes = evaluate_pairs(judge, pairs, name, store, data_files=[path], seed=seed, merge=merge,
                                    rounds=bootstrap_rounds, level=level, prices=prices, progress=progress,
                                    settings=settings)
    return BenchmarkReport(name, part.run, outcomes, references)


def sample_mt_bench_pairs(data: Path, sample: int, seed: int = 0) -> list[LabelledPair]:
    """`sample` MT-Bench pairs with at least one expert vote (labelled by the experts), drawn with `seed`."""
    pairs = mt_bench_pairs(_require(Path(data).joinpath(*_WITH_TEXT)))
    return random.Random(seed).sample(pairs, min(sample, len(pairs)))


def _live_result(judge_name: str, part: Part, merge: str) -> LiveJudgeResult:
    m = part.run.metrics

    def agreement(name: str) -> Agreement:
        metric = m.get(name)
        if metric is None or not metric.denominator:
            return Agreement(0, 0, float("nan"))
        return Agreement(metric.numerator, metric.denominator, metric.value)

    return LiveJudgeResult(judge_name, part.run.n_items, part.run.n_parsed, agreement("agreement_with_ties"),
                           agreement("agreement_without_ties"), part.run.n_calls, part.run.n_cached, merge, m)


# ---------------------------------------------------------------- the original entry point


def judge_eval(data: Path, store: Store | None = None, judge: Judge | None = None, sample: int = 40,
               fastchat_judgments: Path | None = None, seed: int = 0, merge: str = "inconsistent_tie",
               bootstrap_rounds: int = 1000, level: float = 0.95) -> JudgeEvalReport:
    """Agreement of judges with human labels: PandaLM's and gpt-3.5's released verdicts, MT-Bench
    human vs human, optionally a FastChat judgment file, and optionally `judge` run live on
    `sample` human-voted MT-Bench pairs in both orders (its two orders merged by `merge`).

    With a store, every part is kept as a judge-eval run (released verdicts as runs of
    '<name> (released)' with zero calls), and the live judge is asked only about items and orders
    not stored yet under its fingerprint. The caller owns `judge` (and closes it).
    """
    data = Path(data)
    _check_store(store)
    released, parts = _released_parts(data, bootstrap_rounds, level, seed)
    human_with, human_without, human = _human_part(data, bootstrap_rounds, level, seed)
    parts.append(human)
    report = JudgeEvalReport(released, human_with, human_without, fastchat_file=fastchat_judgments)
    if fastchat_judgments is not None:
        report.fastchat, fastchat = _fastchat_parts(Path(fastchat_judgments), data, bootstrap_rounds, level, seed)
        parts += fastchat
    if store is not None:  # stored before the live judge runs, which may take long or fail
        for part in parts:
            save(store, part)
    if judge is not None:
        report.live, live = run_live(judge, data, store, sample, seed, merge, bootstrap_rounds, level)
        parts.append(live)
    report.runs = [p.run for p in parts]
    return report


def run_live(judge: Judge, data: Path, store: Store | None, sample: int, seed: int = 0,
             merge: str = "inconsistent_tie", rounds: int = 0, level: float = 0.95) -> tuple[LiveJudgeResult, Part]:
    """`judge` on `sample` human-voted MT-Bench pairs, stored (with its items) when a store is given."""
    chosen = sample_mt_bench_pairs(data, sample, seed)
    path = _require(Path(data).joinpath(*_WITH_TEXT))
    part, _ = evaluate_pairs(judge, chosen, MT_BENCH, store, data_files=[path], seed=seed, merge=merge, rounds=rounds,
                             level=level, settings={"sample": sample, "expert_only": True})
    return _live_result(judge.name, part, merge), part


def run_judge_on_mt_bench(judge: Judge, data: Path, sample: int, seed: int = 0, store: Store | None = None,
                          merge: str = "inconsistent_tie") -> LiveJudgeResult:
    """Judge `sample` human-voted MT-Bench pairs in both orders; a pair whose orders disagree is a
    tie (FastChat's rule, merge 'inconsistent_tie'); agreement with the expert votes as FastChat
    computes it. With a store, cached items are not judged again and the run is stored."""
    return run_live(judge, Path(data), store, sample, seed, merge, 0, 0.95)[0]

