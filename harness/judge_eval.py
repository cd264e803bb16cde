"""Judge meta-evaluation: how well does a judge agree with people?

Four sources, all from human-labelled data (see ../shared/data/README.md):
- released verdicts of published judges on the PandaLM test set (no judge is run);
- MT-Bench human votes, human vs human (the ceiling a judge is measured against);
- a FastChat pairwise judgment file, scored against the same expert votes;
- a live judge of ours run over a sample of the MT-Bench human-vote pairs, in both orders.

`judge_eval` computes them all and, given a store, keeps each as a judge-eval run (migration 006):
the run, every judged item and order with its raw output and the human labels it is compared with,
and one row per metric with a bootstrap interval. A live item's key is
sha256(judge fingerprint, benchmark, item id, order, item content), so a rerun of the same judge
on the same items makes no judge call.

This module reads the data, runs the judge and stores; the metrics themselves (agreement,
accuracy, macro P/R/F1, bias rates and their bootstrap intervals) are pure functions in
judges.agreement. `Metric` and `agreement_per_item` are re-exported from here.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import harness
from harness.errors import BackendError, DataError, HarnessError
from harness.models.base import stable_hash
from harness.store import Store
from judges.agreement import (  # noqa: F401 (agreement_per_item: re-exported for callers)
    Metric,
    agreement_metrics,
    agreement_per_item,
    bias_metrics,
    classification_metrics,
    pair_key,
    parsed_in_both_orders,
)
from judges.base import Judge, PairItem
from judges.merge import POLICIES, JudgmentRow, merge_orders
from judges.meta import (
    Agreement,
    LabelledPair,
    Report,
    Vote,
    classification_report,
    fastchat_agreement,
    load_fastchat_pair_judgments,
    load_gpt35_released,
    load_mt_bench_pairs_with_text,
    load_mt_bench_votes,
    load_pandalm_released,
    load_pandalm_testset,
)
from judges.parse import choice_logprobs, verdict_tag
from judges.reliability import Reliability, reliability

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


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: not found: pass --data pointing at the shared data folder")
    return path


def file_hash(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of each file, in order."""
    return stable_hash([hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths])


# ---------------------------------------------------------------- results


@dataclass
class EvalRun:
    """One judge-eval run: stored as a row of judge_eval_runs when a store is given."""

    eval_run_id: str
    judge_name: str
    judge_fingerprint: str
    source: str  # live | released | human | fastchat_file
    benchmark: str
    n_items: int
    n_parsed: int
    n_calls: int
    n_cached: int
    metrics: dict[str, Metric]
    stored: bool = False


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
    reliability: Reliability | None = None  # on these MT-Bench items, both orders


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


# ---------------------------------------------------------------- the four sources


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


@dataclass
class _Part:
    """One run being computed: its row, the items it scored (new ones to insert), its metrics."""

    run: EvalRun
    data_files: list[Path]
    data_hash: str
    settings: dict
    started_at: object
    started: float
    item_keys: list[str] = field(default_factory=list)
    new_items: list[dict] = field(default_factory=list)


def _run_id(fingerprint: str, benchmark: str, data_hash: str, settings: dict) -> str:
    return stable_hash(["judge_eval", fingerprint, benchmark, data_hash, settings])


def _new_part(judge_name: str, fingerprint: str, source: str, benchmark: str, files: list[Path],
              settings: dict, data_hash: str | None = None) -> _Part:
    from harness.store.queries import now

    data_hash = data_hash or file_hash(files)
    run = EvalRun(_run_id(fingerprint, benchmark, data_hash, settings), judge_name, fingerprint, source, benchmark,
                  0, 0, 0, 0, {})
    return _Part(run, files, data_hash, settings, now(), time.perf_counter())


def _positional(winner_model: str, model_a: str, model_b: str) -> str:
    """'A', 'B' or 'tie' for a model-level winner (a model name or 'tie'), with model_a shown as A."""
    return {model_a: "A", model_b: "B"}.get(winner_model, "tie")


def _winner_model(vote: Vote) -> str:
    return {"model_a": vote.model_a, "model_b": vote.model_b}.get(vote.winner, "tie")


def _item(part: _Part, item_key: str, item_id: str, order: int, model_a: str, model_b: str, verdict: str | None,
          parsed: bool, raw: str, human_labels: list[str], human_label: str | None = None, attempts: int = 1,
          logprobs: tuple[float, float, float] | None = None) -> dict:
    lp = logprobs or (None, None, None)
    return {"item_key": item_key, "judge_name": part.run.judge_name, "judge_fingerprint": part.run.judge_fingerprint,
            "benchmark": part.run.benchmark, "item_id": item_id, "item_order": order, "model_a": model_a,
            "model_b": model_b, "verdict": verdict, "parsed": parsed, "attempts": attempts, "raw_output": raw,
            "choice_lp_1": lp[0], "choice_lp_2": lp[1], "choice_lp_tie": lp[2], "human_label": human_label,
            "human_labels": human_labels}


def _released_parts(data: Path, rounds: int, level: float, seed: int) -> tuple[dict[str, Report], list[_Part]]:
    testset_path = _require(data.joinpath(*_TESTSET))
    items = load_pandalm_testset(testset_path)
    gold = {item.idx: item.majority for item in items}
    reports, parts = {}, []
    settings = {"gold": "annotator majority", "bootstrap_rounds": rounds, "level": level, "seed": seed}
    for name, (file, loader) in RELEASED.items():
        path = _require(data / "pandalm" / file)
        predicted = loader(path)
        report = reports[name] = classification_report(predicted, gold)
        verdict_field, reason_field = _RELEASED_FIELDS[name]
        raw = {row["idx"]: row for row in json.loads(path.read_text(encoding="utf-8"))}
        fingerprint = stable_hash(["released", name, file_hash([path])])
        part = _new_part(f"{name} (released)", fingerprint, "released", PANDALM, [testset_path, path], settings)
        for item in items:
            row = raw[item.idx]
            text = str(row[verdict_field])
            key = stable_hash([fingerprint, PANDALM, str(item.idx), 1,
                               [item.instruction, item.input, item.response1, item.response2]])
            part.item_keys.append(key)
            part.new_items.append(_item(
                part, key, str(item.idx), 1, "response1", "response2", _PANDA_POSITION[predicted[item.idx]],
                parsed=text != "garbage", raw=f"{text}\n{row.get(reason_field) or ''}".rstrip(),
                human_labels=[f"annotator{k}={_PANDA_POSITION[label]}" for k, label in enumerate(item.annotators, 1)],
                human_label=_PANDA_POSITION[item.majority]))
        part.run.metrics = classification_metrics(predicted, gold, rounds, level, seed)
        part.run.n_items, part.run.n_parsed = report.n, sum(i["parsed"] for i in part.new_items)
        parts.append(part)
    return reports, parts


def _human_part(data: Path, rounds: int, level: float, seed: int) -> tuple[Agreement, Agreement, _Part]:
    path = _require(data.joinpath(*_VOTES))
    votes = load_mt_bench_votes(path)
    settings = {"expert_only": True, "bootstrap_rounds": rounds, "level": level, "seed": seed}
    digest = file_hash([path])
    part = _new_part(HUMAN_JUDGE, stable_hash(["human", digest]), "human", MT_BENCH, [path], settings, digest)
    with_ties, without, part.run.metrics = agreement_metrics(votes, None, rounds, level, seed)
    part.run.n_items = part.run.n_parsed = part.run.metrics["agreement_with_ties"].n
    return with_ties, without, part


def _fastchat_parts(path: Path, data: Path, rounds: int, level: float,
                    seed: int) -> tuple[dict[str, tuple[Agreement, Agreement]], list[_Part]]:
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
        part = _new_part(f"{judge} (FastChat file)", fingerprint, "fastchat_file", MT_BENCH, [path, votes_path],
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
            part.new_items.append(_item(part, key, item_id, 0, v.model_a, v.model_b,
                                        _positional(_winner_model(v), v.model_a, v.model_b), True, v.winner, labels))
        part.run.n_items = part.run.n_parsed = len(part.item_keys)
        parts.append(part)
    return result, parts


@dataclass(frozen=True)
class _Call:
    key: str
    pair: LabelledPair
    item_id: str
    order: int
    model_a: str  # shown as A
    model_b: str
    item: PairItem


def _live_calls(chosen: list[LabelledPair], fingerprint: str, salt: str) -> list[_Call]:
    calls = []
    for p in chosen:
        item_id = f"{p.question_id}:{p.model_a}:{p.model_b}:{p.turn}"
        shown = ((1, p.model_a, p.model_b, p.answer_a, p.answer_b), (2, p.model_b, p.model_a, p.answer_b, p.answer_a))
        for order, model_a, model_b, a, b in shown:
            key = stable_hash([fingerprint, MT_BENCH, item_id, order, [p.category, p.question, a, b]])
            item = PairItem(str(p.question_id), p.category, (p.question,), (a,), (b,), p.turn,
                            nonce=verdict_tag(salt, key))
            calls.append(_Call(key, p, item_id, order, model_a, model_b, item))
    return calls


def _tag_salt(store: Store | None) -> str:
    """The store's verdict-tag secret, or a fresh one for a run without a store."""
    if store is None:
        return secrets.token_hex(16)
    from harness.store.queries import verdict_tag_salt

    with store.read() as con:
        return verdict_tag_salt(con)


def sample_mt_bench_pairs(data: Path, sample: int, seed: int = 0) -> list[LabelledPair]:
    """`sample` MT-Bench pairs with at least one expert vote, drawn with `seed`."""
    pairs = load_mt_bench_pairs_with_text(_require(data.joinpath(*_WITH_TEXT)))
    pairs = [p for p in pairs if any(not v.judge.startswith("author") for v in p.votes)]
    return random.Random(seed).sample(pairs, min(sample, len(pairs)))


def _live_part(judge: Judge, data: Path, store: Store | None, sample: int, seed: int, merge: str, rounds: int,
               level: float) -> tuple[LiveJudgeResult, _Part]:
    from harness.store import judge_eval as sql

    if merge not in POLICIES:
        raise HarnessError(f"merge: '{merge}': use one of {', '.join(POLICIES)}")
    if judge.kind != "pairwise":
        raise HarnessError(f"judge '{judge.name}': judge-eval needs a pairwise judge, not {judge.kind!r}")
    path = _require(data.joinpath(*_WITH_TEXT))
    chosen = sample_mt_bench_pairs(data, sample, seed)
    fingerprint, dimension = judge.fingerprint(), judge.dimensions[0]
    settings = {"sample": sample, "seed": seed, "merge": merge, "dimension": dimension, "expert_only": True,
                "bootstrap_rounds": rounds, "level": level}
    part = _new_part(judge.name, fingerprint, "live", MT_BENCH, [path], settings)
    salt = _tag_salt(store)
    calls = _live_calls(chosen, fingerprint, salt)
    done = sql.cached_items(store, [c.key for c in calls]) if store is not None else {}
    todo = list({c.key: c for c in calls if c.key not in done}.values())
    chunk = max(1, int(getattr(judge, "chunk_size", None) or 16))
    for start in range(0, len(todo), chunk):
        batch = todo[start: start + chunk]
        outputs = judge.judge([c.item for c in batch])
        rows, failed = [], []
        for c, out in zip(batch, outputs):
            output = out[dimension]
            if output.error:  # no output at all: not an item to cache (a rerun asks again)
                failed.append(output.error)
                continue
            verdict = output.verdicts.get(dimension)
            lp = getattr(output, "choice_logprobs", None) or choice_logprobs(output.raw)
            labels = [f"{v.judge}={_positional(_winner_model(v), c.model_a, c.model_b)}" for v in c.pair.votes]
            rows.append(_item(part, c.key, c.item_id, c.order, c.model_a, c.model_b, verdict, verdict is not None,
                              output.raw, labels, attempts=output.attempts, logprobs=lp))
        if store is not None:
            with store.write() as con:  # each chunk commits: a killed run keeps what it judged
                sql.insert_items(con, rows)
        done.update((r["item_key"], r) for r in rows)
        if failed:  # agreement over a partial sample would mislead: stop, keep what was judged
            raise BackendError(f"judge '{judge.name}': {len(failed)} of {len(batch)} calls failed: {failed[0]}:"
                               " run judge-eval again to retry them")
    part.item_keys = [c.key for c in calls]
    part.run.n_calls, part.run.n_cached = len(todo), len(calls) - len(todo)

    rows = []
    for c in calls:
        stored = done[c.key]
        lp = (stored["choice_lp_1"], stored["choice_lp_2"], stored["choice_lp_tie"])
        rows.append(JudgmentRow(
            set_name=MT_BENCH, question_id=c.item_id, turn=c.pair.turn, category=c.pair.category,
            judge_name=judge.name, dimension=dimension, model_a=c.model_a, model_b=c.model_b,
            verdict=stored["verdict"], len_a=len(c.item.answers_a[0]), len_b=len(c.item.answers_b[0]),
            choice_logprobs=lp if None not in lp else None))
    parsed = parsed_in_both_orders(rows)
    pairs = {c.item_id: c.pair for c in calls}
    votes = [Vote(pairs[b.question_id].question_id, b.model_a, b.model_b, b.turn, judge.name, b.winner)
             for b in merge_orders(rows, merge)]
    humans = [v for p in chosen for v in p.votes]
    with_ties, without, part.run.metrics = agreement_metrics(votes, humans, rounds, level, seed)
    rel = reliability(judge.name, rows, [(c.key, done[c.key]["parsed"]) for c in calls])
    part.run.metrics.update(bias_metrics(rows, [done[c.key]["parsed"] for c in calls]))
    part.run.n_items, part.run.n_parsed = len(chosen), parsed
    return LiveJudgeResult(judge.name, len(chosen), parsed, with_ties, without, len(todo), len(calls) - len(todo),
                           merge, rel), part


def _save(store: Store, part: _Part) -> None:
    from harness.store import judge_eval as sql
    from harness.store.queries import now

    run = part.run
    row = {"eval_run_id": run.eval_run_id, "judge_name": run.judge_name, "judge_fingerprint": run.judge_fingerprint,
           "source": run.source, "benchmark": run.benchmark, "data_hash": part.data_hash,
           "data_files": [str(p) for p in part.data_files], "n_items": run.n_items, "n_parsed": run.n_parsed,
           "n_calls": run.n_calls, "n_cached": run.n_cached, "settings_json": json.dumps(part.settings, sort_keys=True),
           "harness_version": harness.__version__, "started_at": part.started_at, "finished_at": now(),
           "wall_s": time.perf_counter() - part.started}
    metrics = [{"metric": m.name, "value": m.value, "numerator": m.numerator, "denominator": m.denominator,
                "n": m.n, "ci_low": m.ci_low, "ci_high": m.ci_high, "level": m.level} for m in run.metrics.values()]
    with store.write() as con:
        sql.insert_items(con, part.new_items)
        sql.save_run(con, row, part.item_keys, metrics)
    run.stored = True


# ---------------------------------------------------------------- the API


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
    if store is not None:
        from harness.store import judge_eval as sql

        with store.read() as con:
            if not sql.has_tables(con):
                raise HarnessError(f"{store.path}: has no judge-eval tables (migration 006): open it with "
                                   "Store(path), which migrates, before storing judge-eval runs")
    released, parts = _released_parts(data, bootstrap_rounds, level, seed)
    human_with, human_without, human = _human_part(data, bootstrap_rounds, level, seed)
    parts.append(human)
    report = JudgeEvalReport(released, human_with, human_without, fastchat_file=fastchat_judgments)
    if fastchat_judgments is not None:
        report.fastchat, fastchat = _fastchat_parts(Path(fastchat_judgments), data, bootstrap_rounds, level, seed)
        parts += fastchat
    if store is not None:  # stored before the live judge runs, which may take long or fail
        for part in parts:
            _save(store, part)
    if judge is not None:
        report.live, live = _live_part(judge, data, store, sample, seed, merge, bootstrap_rounds, level)
        if store is not None:
            _save(store, live)
        parts.append(live)
    report.runs = [p.run for p in parts]
    return report


def run_judge_on_mt_bench(judge: Judge, data: Path, sample: int, seed: int = 0, store: Store | None = None,
                          merge: str = "inconsistent_tie") -> LiveJudgeResult:
    """Judge `sample` human-voted MT-Bench pairs in both orders; a pair whose orders disagree is a
    tie (FastChat's rule, merge 'inconsistent_tie'); agreement with the expert votes as FastChat
    computes it. With a store, cached items are not judged again and the run is stored."""
    result, part = _live_part(judge, Path(data), store, sample, seed, merge, 0, 0.95)
    if store is not None:
        _save(store, part)
    return result
