"""A judge on labelled pairs, both orders, stored: the one path every live judge-eval takes.

`evaluate_pairs` presents each pair in a seeded random order and then in the other one, judges the
items and orders not stored yet under the judge's fingerprint (a rerun makes zero calls), merges
each pair's two orders under a merge policy, and computes every metric per subset (judges.agreement)
with bootstrap intervals, plus tokens, seconds and cost per 1,000 calls. Any kind of judge works:
it is used only through the judges.base.Judge protocol.

An item's key is sha256(judge fingerprint, benchmark, pair id, orientation, the texts shown), where
orientation 1 shows response_a as A and 2 swaps them; which of the two was presented first is
settled by the seed at metric time, so another seed reuses the same stored verdicts.

Also here: the run bookkeeping every judge-eval part shares (`EvalRun`, `Part`, `save`).
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import harness
from harness.errors import BackendError, HarnessError
from harness.models.base import stable_hash
from harness.store import Store
from judges.agreement import Metric, PairOutcome, agreement_metrics, flip, pair_metrics, per_thousand
from judges.base import Judge, JudgeOutput, PairItem
from judges.labelled import LabelledPair, subsets
from judges.merge import POLICIES, JudgmentRow, merge_orders
from judges.meta import votes_of
from judges.panel import member_agreement
from judges.parse import choice_logprobs, verdict_tag

ALL = "all"


def file_hash(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of each file (a folder: every file below it), in order."""
    digests = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        digests += [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    return stable_hash(digests)


# ---------------------------------------------------------------- runs and their storage


@dataclass
class EvalRun:
    """One judge-eval run: stored as a row of judge_eval_runs when a store is given. `metrics` are
    the whole benchmark's; `subset_metrics` holds them per subset too (with 'all')."""

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
    subset_metrics: dict[str, dict[str, Metric]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    three_way: bool | None = None
    totals: dict = field(default_factory=dict)  # tokens_in, tokens_out, judge_seconds, cost_usd of calls made


@dataclass
class Part:
    """One run being computed: its row, the items it scored (new ones to insert), its metrics."""

    run: EvalRun
    data_files: list[Path]
    data_hash: str
    settings: dict
    started_at: object
    started: float
    item_keys: list[str] = field(default_factory=list)
    new_items: list[dict] = field(default_factory=list)
    rows: dict[str, dict] = field(default_factory=dict)  # item key -> its stored row, every call of the run


def new_part(judge_name: str, fingerprint: str, source: str, benchmark: str, files: list[Path], settings: dict,
             data_hash: str | None = None) -> Part:
    from harness.store.queries import now

    data_hash = data_hash or file_hash(files)
    run_id = stable_hash(["judge_eval", fingerprint, benchmark, data_hash, settings])
    run = EvalRun(run_id, judge_name, fingerprint, source, benchmark, 0, 0, 0, 0, {})
    return Part(run, list(files), data_hash, settings, now(), time.perf_counter())


def item_row(part: Part, item_key: str, item_id: str, order: int, model_a: str, model_b: str, verdict: str | None,
             parsed: bool, raw: str, human_labels: list[str], human_label: str | None = None, attempts: int = 1,
             logprobs: tuple | None = None, subset: str | None = None, tokens: tuple = (None, None),
             seconds: float | None = None) -> dict:
    lp = logprobs or (None, None, None)
    return {"item_key": item_key, "judge_name": part.run.judge_name, "judge_fingerprint": part.run.judge_fingerprint,
            "benchmark": part.run.benchmark, "item_id": item_id, "item_order": order, "model_a": model_a,
            "model_b": model_b, "verdict": verdict, "parsed": parsed, "attempts": attempts, "raw_output": raw,
            "choice_lp_1": lp[0], "choice_lp_2": lp[1], "choice_lp_tie": lp[2], "human_label": human_label,
            "human_labels": human_labels, "subset": subset, "tokens_in": tokens[0], "tokens_out": tokens[1],
            "seconds": seconds}


def set_metrics(run: EvalRun, by_subset: dict[str, dict[str, Metric]]) -> None:
    run.subset_metrics = by_subset
    run.metrics = by_subset[ALL]


def save(store: Store, part: Part) -> None:
    from harness.store import judge_eval as sql
    from harness.store.queries import now

    run = part.run
    if not run.subset_metrics:
        run.subset_metrics = {ALL: run.metrics}
    row = {"eval_run_id": run.eval_run_id, "judge_name": run.judge_name, "judge_fingerprint": run.judge_fingerprint,
           "source": run.source, "benchmark": run.benchmark, "data_hash": part.data_hash,
           "data_files": [str(p) for p in part.data_files], "n_items": run.n_items, "n_parsed": run.n_parsed,
           "n_calls": run.n_calls, "n_cached": run.n_cached, "settings_json": json.dumps(part.settings, sort_keys=True),
           "harness_version": harness.__version__, "started_at": part.started_at, "finished_at": now(),
           "wall_s": time.perf_counter() - part.started, "notes": list(run.notes), "three_way": run.three_way,
           **{k: run.totals.get(k) for k in ("tokens_in", "tokens_out", "judge_seconds", "cost_usd")}}
    metrics = [{"subset": subset, "metric": m.name, "value": m.value, "numerator": m.numerator,
                "denominator": m.denominator, "n": m.n, "ci_low": m.ci_low, "ci_high": m.ci_high, "level": m.level}
               for subset, metrics in run.subset_metrics.items() for m in metrics.values()]
    with store.write() as con:
        sql.insert_items(con, part.new_items)
        sql.save_run(con, row, part.item_keys, metrics)
    run.stored = True


def tag_salt(store: Store | None) -> str:
    """The store's verdict-tag secret, or a fresh one for a run without a store."""
    if store is None:
        return secrets.token_hex(16)
    from harness.store.queries import verdict_tag_salt

    with store.read() as con:
        return verdict_tag_salt(con)


# ---------------------------------------------------------------- judging labelled pairs


def first_orientation(pair_id: str, seed: int) -> int:
    """1 or 2: which orientation of the pair is presented first, a seeded coin per pair."""
    return 1 + random.Random(stable_hash(["presentation", seed, pair_id])).randrange(2)


@dataclass(frozen=True)
class Call:
    key: str
    pair: LabelledPair
    orientation: int  # 1: response_a shown as A; 2: swapped
    item: PairItem


def calls_for(pairs: Sequence[LabelledPair], fingerprint: str, benchmark: str, salt: str, seed: int) -> list[Call]:
    """Both orientations of every pair, the seeded first one first."""
    calls = []
    for p in pairs:
        first = first_orientation(p.id, seed)
        for orientation in (first, 3 - first):
            a, b = (p.response_a, p.response_b) if orientation == 1 else (p.response_b, p.response_a)
            key = stable_hash([fingerprint, benchmark, p.id, orientation, [p.turns, p.history, a, b, p.reference]])
            item = PairItem(p.id, p.subset, p.turns, p.history + (a,), p.history + (b,), len(p.turns), p.reference,
                            nonce=verdict_tag(salt, key))
            calls.append(Call(key, p, orientation, item))
    return calls


def _shown(orientation: int) -> tuple[str, str]:
    return ("response_a", "response_b") if orientation == 1 else ("response_b", "response_a")


def _labels_as_shown(pair: LabelledPair, orientation: int) -> list[str]:
    names = pair.annotators or [f"annotator_{i}" for i in range(len(pair.labels))]
    labels = pair.labels if orientation == 1 else [flip(x) for x in pair.labels]
    return [f"{name}={label}" for name, label in zip(names, labels)]


def _tokens(output) -> tuple[int | None, int | None]:
    """Token counts a judge kind reports on its outputs (prompt_tokens / completion_tokens), if any."""
    return getattr(output, "prompt_tokens", None), getattr(output, "completion_tokens", None)


def judge_calls(judge: Judge, calls: list[Call], part: Part, store: Store | None, progress=None) -> dict[str, dict]:
    """Every call's stored row, judging (and storing, chunk by chunk) those not stored yet."""
    from harness.store import judge_eval as sql

    dimension = judge.dimensions[0]
    done = sql.cached_items(store, [c.key for c in calls]) if store is not None else {}
    todo = list({c.key: c for c in calls if c.key not in done}.values())
    # similar lengths in one chunk: a local backend pads each batch to its longest prompt
    todo.sort(key=lambda c: sum(map(len, c.item.turns + c.item.answers_a + c.item.answers_b)))
    part.run.n_calls, part.run.n_cached = len(todo), len(calls) - len(todo)

    def row(c: Call, output, seconds: float) -> dict:
        verdict = output.verdicts.get(dimension)
        lp = getattr(output, "choice_logprobs", None) or choice_logprobs(output.raw)
        return item_row(part, c.key, c.pair.id, c.orientation, *_shown(c.orientation), verdict, verdict is not None,
                        output.raw, _labels_as_shown(c.pair, c.orientation),
                        c.pair.gold if c.orientation == 1 else flip(c.pair.gold), output.attempts, lp, c.pair.subset,
                        _tokens(output), seconds)

    label = f"judge {judge.name} on {part.run.benchmark}"
    done.update(judge_and_store(judge, todo, row, store, progress, label, "run judge-eval again"))
    return done


def judge_and_store(judge: Judge, todo: list, row_of, store: Store | None, progress, label: str,
                    retry: str) -> dict[str, dict]:
    """Judge `todo` (objects with .item and .key) chunk by chunk on the judge's first dimension; each
    chunk's rows (`row_of(call, output, seconds per call)`) are committed as it finishes, so a killed
    run keeps what it judged. A call the backend could not answer at all is not stored (a rerun asks
    again); any in a chunk stop the run there, since metrics over a partial sample would mislead."""
    from harness.store import judge_eval as sql

    dimension, rows_by_key = judge.dimensions[0], {}
    chunk = max(1, int(getattr(judge, "chunk_size", None) or 16))
    task = progress.start(label, len(todo)) if progress and todo else None
    for start in range(0, len(todo), chunk):
        batch = todo[start: start + chunk]
        began = time.perf_counter()
        outputs = [out[dimension] for out in judge.judge([c.item for c in batch])]
        seconds = (time.perf_counter() - began) / len(batch)
        rows = [row_of(c, o, seconds) for c, o in zip(batch, outputs) if not o.error]
        failed = [o.error for o in outputs if o.error]
        if store is not None:
            with store.write() as con:
                sql.insert_items(con, rows)
        rows_by_key.update((r["item_key"], r) for r in rows)
        if task is not None:
            progress.advance(len(batch), task)
        if failed:
            raise BackendError(f"judge '{judge.name}': {len(failed)} of {len(batch)} calls failed: {failed[0]}:"
                               f" {retry} to retry them (judged items are kept)")
    return rows_by_key


def panel_rows(panel, members: list[Part], calls: list[Call], part: Part, store: Store | None
               ) -> tuple[dict[str, dict], dict[str, dict]]:
    """A panel's row per call from its members' stored rows (`members`: each member's run on the same
    pairs), combined by the panel's own rule (judges.panel), and stored; no judge is asked again.
    Also each member's verdicts as shown, {member: {(pair id, orientation): verdict}}, for agreement."""
    from harness.store import judge_eval as sql

    dimension = panel.dimensions[0]
    shown = {m.run.judge_name: {(r["item_id"], r["item_order"]): r for r in m.rows.values()} for m in members}
    rows = {}
    for c in calls:
        mine = [shown[m.name][(c.pair.id, c.orientation)] for m in panel.members]
        output = panel.combined([JudgeOutput(raw=r["raw_output"], verdicts={dimension: r["verdict"]} if r["verdict"]
                                             else {}, attempts=r["attempts"]) for r in mine], dimension)
        verdict = output.verdicts.get(dimension)
        tokens = tuple(_sum_known(r[k] for r in mine) for k in ("tokens_in", "tokens_out"))
        rows[c.key] = item_row(part, c.key, c.pair.id, c.orientation, *_shown(c.orientation), verdict,
                               verdict is not None, output.raw, _labels_as_shown(c.pair, c.orientation),
                               c.pair.gold if c.orientation == 1 else flip(c.pair.gold), output.attempts, None,
                               c.pair.subset, tokens, _sum_known(r["seconds"] for r in mine))
    if store is not None:
        with store.write() as con:
            sql.insert_items(con, list(rows.values()))  # one already stored is kept as it is
    part.run.n_calls = sum(m.run.n_calls for m in members)
    part.run.n_cached = sum(m.run.n_cached for m in members)
    labels = {name: {unit: r["verdict"] for unit, r in by_unit.items() if r["verdict"] is not None}
              for name, by_unit in shown.items()}
    return rows, labels


def _sum_known(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _judgment_row(c: Call, stored: dict, judge_name: str, dimension: str) -> JudgmentRow:
    lp = (stored["choice_lp_1"], stored["choice_lp_2"], stored["choice_lp_tie"])
    a, b = c.item.answers_a[-1], c.item.answers_b[-1]
    return JudgmentRow(set_name=stored["benchmark"], question_id=c.pair.id, turn=c.item.turn, category=c.pair.subset,
                       judge_name=judge_name, dimension=dimension, model_a=stored["model_a"],
                       model_b=stored["model_b"], verdict=stored["verdict"], len_a=len(a), len_b=len(b),
                       choice_logprobs=lp if None not in lp else None)


def outcomes_of(calls: list[Call], done: dict[str, dict], judge_name: str, dimension: str, merge: str,
                seed: int) -> tuple[list[PairOutcome], dict[str, list[str]]]:
    """Per pair, its verdicts in the pair's own terms and its merged verdict; and the merged verdicts
    as labels per pair id (two under merge 'half' when the orders disagree)."""
    rows = {c.key: _judgment_row(c, done[c.key], judge_name, dimension) for c in calls}
    merged: dict[str, list[str]] = {}
    for battle in merge_orders(rows.values(), merge):  # 'response_a' sorts first: model_a is response_a
        merged.setdefault(battle.question_id, []).append({"model_a": "A", "model_b": "B"}.get(battle.winner, "tie"))
    by_pair: dict[str, dict[int, str | None]] = {}
    for c in calls:
        verdict = rows[c.key].verdict
        by_pair.setdefault(c.pair.id, {})[c.orientation] = verdict if c.orientation == 1 else flip(verdict)
    outcomes = []
    for p in {c.pair.id: c.pair for c in calls}.values():
        labels = merged.get(p.id, [])
        one = labels[0] if len(set(labels)) == 1 else ("tie" if labels else None)
        outcomes.append(PairOutcome(p.id, p.subset, p.gold, first_orientation(p.id, seed), by_pair[p.id], one,
                                    len(p.response_a), len(p.response_b)))
    return outcomes, merged


def metrics_by_subset(pairs: Sequence[LabelledPair], outcomes: list[PairOutcome], judge_votes: dict[str, list[str]],
                      judge_name: str, three_way: bool, rounds: int, level: float, seed: int) -> dict[str, dict]:
    """'all' and each subset (when there are several): pair_metrics, and FastChat agreement with the
    annotators' votes where pairs name their annotators."""
    groups = {ALL: list(pairs)}
    names = subsets(pairs)
    if len(names) > 1:
        groups |= {name: [p for p in pairs if p.subset == name] for name in names}
    by_id = {o.pair_id: o for o in outcomes}
    result = {}
    for name, group in groups.items():
        metrics = pair_metrics([by_id[p.id] for p in group], three_way, rounds, level, seed)
        if any(p.annotators for p in group):
            humans = [v for p in group for v in votes_of(p)]
            mine = [v for p in group for v in votes_of(p, judge_votes.get(p.id, []),
                                                      [judge_name] * len(judge_votes.get(p.id, [])))]
            metrics |= agreement_metrics(mine, humans, rounds, level, seed)[2]
        result[name] = metrics
    return result


def cost_metrics(rows: list[dict], judge_name: str, prices) -> tuple[dict[str, Metric], dict]:
    """tokens_per_1000, seconds_per_1000, cost_per_1000 over the calls behind `rows` (cached rows
    keep what their call cost), and the totals; a quantity unknown for any row is left out."""
    def total(column: str):
        values = [r.get(column) for r in rows]
        return None if not values or any(v is None for v in values) else sum(values)

    tokens_in, tokens_out, seconds = total("tokens_in"), total("tokens_out"), total("seconds")
    price = prices.for_judge(judge_name) if prices is not None else None
    cost = price.cost(tokens_in, tokens_out, seconds) if price is not None else None
    tokens = None if tokens_in is None or tokens_out is None else tokens_in + tokens_out
    found = (per_thousand("tokens_per_1000", tokens, len(rows)), per_thousand("seconds_per_1000", seconds, len(rows)),
             per_thousand("cost_per_1000", cost, len(rows)))
    totals = {"tokens_in": tokens_in, "tokens_out": tokens_out, "judge_seconds": seconds, "cost_usd": cost}
    return {m.name: m for m in found if m is not None}, totals


def evaluate_pairs(judge: Judge, pairs: Sequence[LabelledPair], benchmark: str, store: Store | None, *,
                   data_files: Sequence[Path], seed: int = 0, merge: str = "inconsistent_tie", rounds: int = 1000,
                   level: float = 0.95, prices=None, progress=None, settings: dict | None = None,
                   data_hash: str | None = None) -> tuple[Part, list[PairOutcome]]:
    """Judge `pairs` in both orders (cached items not again) and compute every metric per subset;
    stored as a run when a store is given. The caller owns `judge` (and closes it)."""
    if merge not in POLICIES:
        raise HarnessError(f"merge: '{merge}': use one of {', '.join(POLICIES)}")
    if judge.kind != "pairwise":
        raise HarnessError(f"judge '{judge.name}': judge-eval needs a pairwise judge, not {judge.kind!r}")
    if not pairs:
        raise HarnessError(f"benchmark '{benchmark}': no pairs to judge")
    fingerprint, dimension = judge.fingerprint(), judge.dimensions[0]
    three_way = any(p.gold == "tie" for p in pairs)
    settings = {**(settings or {}), "seed": seed, "merge": merge, "dimension": dimension, "bootstrap_rounds": rounds,
                "level": level, "pairs": len(pairs)}
    part = new_part(judge.name, fingerprint, "live", benchmark, list(data_files), settings, data_hash)
    calls = calls_for(pairs, fingerprint, benchmark, tag_salt(store), seed)
    member_labels = None
    if isinstance(getattr(judge, "members", None), list):  # a panel: its members' runs, their verdicts combined
        members = [evaluate_pairs(m, pairs, benchmark, store, data_files=data_files, seed=seed, merge=merge,
                                  rounds=rounds, level=level, prices=prices, progress=progress, settings=settings,
                                  data_hash=data_hash)[0] for m in judge.members]
        done, member_labels = panel_rows(judge, members, calls, part, store)
    else:
        done = judge_calls(judge, calls, part, store, progress)
    part.item_keys, part.rows = [c.key for c in calls], done
    outcomes, judge_votes = outcomes_of(calls, done, judge.name, dimension, merge, seed)
    by_subset = metrics_by_subset(pairs, outcomes, judge_votes, judge.name, three_way, rounds, level, seed)
    costs, part.run.totals = cost_metrics([done[c.key] for c in calls], judge.name, prices)
    by_subset[ALL] |= costs
    if member_labels is not None:
        by_subset[ALL] |= {m.name: m for m in member_agreement(member_labels, lambda unit: unit[0], rounds, level, seed)}
    set_metrics(part.run, by_subset)
    part.run.n_items = len(pairs)
    part.run.n_parsed = sum(all(v is not None for v in o.verdicts.values()) for o in outcomes)
    part.run.notes = tuple(getattr(judge, "card_notes", ()) or ())
    part.run.three_way = three_way
    if store is not None:
        save(store, part)
    return part, outcomes
