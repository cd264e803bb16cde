"""Calibration, measured: a judge with and without MEC, BPC and HITLC on the same human-labelled
items, and the order in which people should settle a suite's battles (HITLC).

`calibrate_judge` judges every item in both orders with k independent samples of the judge
(`judges.calibration.sample_judges`), stores each call as a judge-eval item keyed by the sample's
fingerprint (a rerun makes zero calls), and scores every method from those same calls:

  vanilla      the first sample alone, each order one judgment (the paper's baseline)
  MEC          k samples per order, averaged, each order one judgment
  BPC          the first sample's two orders averaged: one judgment per item
  MEC+BPC      all 2k samples: per-order averages, averaged over the orders
  HITLC        MEC+BPC, with the top beta of items by diversity entropy settled by a person
               (simulated: the labelled data's majority label); its control draws the same
               number of items at random
and, for judges that score choices, the harness's existing merges of the first sample's orders
(inconsistent_tie and calibrated). Agreement with the human votes is FastChat's, with and
without ties, with bootstrap intervals (judges.agreement); each method's change against the one
it calibrates is a paired bootstrap over the same items.

`annotate_priority` ranks a suite's counted battles for people by the same entropy.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, DataError
from harness.judge_eval_live import judge_and_store
from harness.models.base import stable_hash
from harness.store import Store
from judges.agreement import Metric, agreement_metrics, agreement_per_item
from judges.base import Judge, PairItem
from judges.calibration import (Sample, bpc_distribution, bpc_margin, bpc_verdict, entropy_ranking, item_entropy,
                                margin_of, mec_verdict, paired_ratio_difference, sample_judges, top_fraction)
from judges.merge import JudgmentRow, merge_orders
from judges.labelled import LabelledPair, load_labelled
from judges.meta import Vote, votes_of
from judges.reliability import Reliability, reliability
from judges.parse import verdict_tag

# the shared data's human-labelled sets: (file under --data, judges.labelled format)
BENCHMARKS = {"pandalm": ("pandalm/testset-v1.json", "pandalm"),
              "mt_bench": ("mt_bench/human_judgments_turn1_with_text.jsonl", "mt_bench")}


# ---------------------------------------------------------------- the labelled items


def labelled_items(path: Path, fmt: str, sample: int | None = None, seed: int = 0) -> list[LabelledPair]:
    """The labelled pairs of `path` (a judges.labelled format), `sample` of them drawn with `seed`
    (None: all), in a fixed order."""
    if sample is not None and sample < 1:
        raise ConfigError(f"sample: {sample}: give the number of labelled pairs to judge (e.g. 150)")
    if not Path(path).exists():
        raise DataError(f"{path}: not found: pass --data pointing at the shared data folder, or --pairs FILE")
    pairs = load_labelled(Path(path), fmt)
    if sample is not None and sample < len(pairs):
        pairs = random.Random(seed).sample(pairs, sample)
    return pairs


# ---------------------------------------------------------------- judging, cached in the store


@dataclass(frozen=True)
class _Call:
    key: str
    sample: int  # 0-based index into the sample judges
    benchmark: str
    pair: LabelledPair
    order: int  # 1: response_a shown first, 2: swapped
    item: PairItem


def _calls(judges: list[Judge], pairs: list[LabelledPair], benchmark: str, salt: str) -> list[_Call]:
    calls = []
    for index, judge in enumerate(judges):
        fingerprint = judge.fingerprint()
        for p in pairs:
            for order, a, b in ((1, p.response_a, p.response_b), (2, p.response_b, p.response_a)):
                key = stable_hash([fingerprint, benchmark, p.id, order, [p.turns, p.history, p.reference, a, b]])
                item = PairItem(p.id, p.subset, p.turns, p.history + (a,), p.history + (b,), len(p.turns),
                                p.reference, nonce=verdict_tag(salt, key))
                calls.append(_Call(key, index, benchmark, p, order, item))
    return calls


def _row(call: _Call, judge: Judge, output, dimension: str) -> dict:
    from harness.store.judge_eval import ITEM_COLUMNS

    verdict = output.verdicts.get(dimension)
    lp = output.choice_logprobs or (None, None, None)
    shown = ("response_a", "response_b")[:: 1 if call.order == 1 else -1]
    names = call.pair.annotators or [f"annotator_{i}" for i in range(len(call.pair.labels))]
    row = dict.fromkeys(ITEM_COLUMNS)  # columns the cache gains later stay NULL
    row.update(item_key=call.key, judge_name=judge.name, judge_fingerprint=judge.fingerprint(),
               benchmark=call.benchmark, item_id=call.pair.id, item_order=call.order, model_a=shown[0],
               model_b=shown[1], verdict=verdict, parsed=verdict is not None, attempts=output.attempts,
               raw_output=output.raw, choice_lp_1=lp[0], choice_lp_2=lp[1], choice_lp_tie=lp[2],
               human_label=call.pair.gold, human_labels=[f"{n}={label}" for n, label in zip(names, call.pair.labels)])
    return row


def _judge_all(judges: list[Judge], calls: list[_Call], store: Store | None, progress) -> tuple[dict[str, dict], int]:
    """Every call's stored row (judged now or read back) and how many calls were made."""
    from harness.store import judge_eval as sql

    done = sql.cached_items(store, [c.key for c in calls]) if store is not None else {}
    todo = [c for c in calls if c.key not in done]
    for index, judge in enumerate(judges):
        mine = [c for c in todo if c.sample == index]
        dimension = judge.dimensions[0]
        done.update(judge_and_store(judge, mine, lambda c, o, _, judge=judge, d=dimension: _row(c, judge, o, d),
                                    store, progress, f"calibration judgments, sample {index + 1} of {len(judges)}",
                                    "run calibrate again"))
    return done, len(todo)


# ---------------------------------------------------------------- the report


@dataclass
class MethodResult:
    """One method's agreement with the human votes, and its change against `before` on the same items."""

    method: str
    before: str | None
    with_ties: Metric
    without_ties: Metric
    judge_calls_per_item: int
    human_labels: int = 0  # items settled by a (simulated) person
    delta_with_ties: tuple[float | None, float | None, float | None] = (None, None, None)  # value, low, high
    delta_without_ties: tuple[float | None, float | None, float | None] = (None, None, None)


@dataclass
class CalibrationReport:
    judge_name: str
    benchmark: str
    k: int
    beta: float
    n_items: int
    calls: int  # judge calls made now
    cached: int  # read back from the store
    wall_s: float
    methods: list[MethodResult]
    reliability: Reliability | None = None  # the first sample's parse failures, swap flips, position, length
    entropy: dict[str, float] = field(default_factory=dict)  # item id -> diversity entropy of its 2k verdicts
    level: float = 0.95

    def method(self, name: str) -> MethodResult:
        return next(m for m in self.methods if m.method == name)


def _votes(pair: LabelledPair, sides: list[str | None], judge_name: str) -> list[Vote]:
    """A judge's verdicts on a pair's own sides as FastChat votes, grouped with the pair's human votes."""
    given = [side for side in sides if side is not None]
    return votes_of(pair, given, [judge_name] * len(given))


def _samples(calls: list[_Call], rows: dict[str, dict]) -> dict[str, list[tuple[int, Sample]]]:
    """pair id -> (sample index, Sample) of every stored call."""
    out: dict[str, list[tuple[int, Sample]]] = {}
    for c in calls:
        r = rows[c.key]
        lp = (r["choice_lp_1"], r["choice_lp_2"], r["choice_lp_tie"])
        out.setdefault(c.pair.id, []).append((c.sample, Sample(c.order, r["verdict"], None if None in lp else lp)))
    return out


def _first_sample_rows(calls: list[_Call], rows: dict[str, dict], judge: Judge) -> list[JudgmentRow]:
    """The first sample's calls as judgment rows (both orders): the harness's merges and reliability."""
    out = []
    for c in calls:
        if c.sample != 0:
            continue
        r = rows[c.key]
        lp = (r["choice_lp_1"], r["choice_lp_2"], r["choice_lp_tie"])
        out.append(JudgmentRow(c.benchmark, c.pair.id, 1, c.pair.subset, judge.name, judge.dimensions[0],
                               r["model_a"], r["model_b"], r["verdict"], len(c.item.answers_a[-1]),
                               len(c.item.answers_b[-1]), None if None in lp else lp))
    return out


def _merged_sides(rows: list[JudgmentRow], policy: str) -> dict[str, list[str]]:
    """pair id -> [side] of the first sample's two orders merged by a judges.merge policy."""
    out: dict[str, list[str]] = {}
    for b in merge_orders(rows, policy):  # x = response_a, y = response_b (alphabetical)
        out[b.question_id] = [{"model_a": "A", "model_b": "B"}.get(b.winner, "tie")]
    return out


def _method_sides(samples: dict[str, list[tuple[int, Sample]]], k: int, beta: float, gold: dict[str, str],
                  seed: int) -> tuple[dict[str, dict[str, list[str | None]]], dict[str, float], dict[str, int]]:
    """method -> pair id -> its judgment(s) on the pair's sides; the entropies; human labels used."""
    first = {i: [s for n, s in got if n == 0] for i, got in samples.items()}
    every = {i: [s for _, s in got] for i, got in samples.items()}
    sides: dict[str, dict[str, list[str | None]]] = {
        "vanilla": {i: [s.aligned_verdict() for s in sorted(got, key=lambda s: s.order)] for i, got in first.items()},
        "BPC": {i: [bpc_verdict(got)] for i, got in first.items()}}
    top = "BPC"
    if k > 1:
        sides["MEC"] = {i: [mec_verdict(got, 1), mec_verdict(got, 2)] for i, got in every.items()}
        sides["MEC+BPC"] = {i: [bpc_verdict(got)] for i, got in every.items()}
        top = "MEC+BPC"
    entropy = {i: item_entropy(got) for i, got in every.items()}
    ranking = entropy_ranking(entropy, {i: bpc_margin(got) for i, got in every.items()})
    settled = set(top_fraction(ranking, beta))
    drawn = set(random.Random(seed).sample(sorted(ranking), len(settled)))
    for name, chosen in ((hitlc_name(beta), settled), (control_name(beta), drawn)):
        sides[name] = {i: [gold[i]] if i in chosen else list(v) for i, v in sides[top].items()}
    return sides, entropy, {hitlc_name(beta): len(settled), control_name(beta): len(drawn)}


def hitlc_name(beta: float) -> str:
    return f"HITLC (beta={beta:g})"


def control_name(beta: float) -> str:
    return f"random {beta:g} to people (control)"


def _score(method: str, before: str | None, sides: dict[str, dict[str, list[str | None]]],
           pairs: dict[str, LabelledPair], judge_name: str, calls_per_item: int, humans_used: int,
           rounds: int, level: float, seed: int) -> MethodResult:
    humans = [v for p in pairs.values() for v in votes_of(p)]
    votes = [v for i, got in sides[method].items() for v in _votes(pairs[i], got, judge_name)]
    _, _, metrics = agreement_metrics(votes, humans, rounds, level, seed)
    result = MethodResult(method, before, metrics["agreement_with_ties"], metrics["agreement_without_ties"],
                          calls_per_item, humans_used)
    if before is not None:
        for include_ties, attr in ((True, "delta_with_ties"), (False, "delta_without_ties")):
            per = [_per_item(sides[name], pairs, judge_name, include_ties) for name in (before, method)]
            setattr(result, attr, paired_ratio_difference(*per, rounds=rounds, level=level, seed=seed))
    return result


def _per_item(sides: dict[str, list[str | None]], pairs: dict[str, LabelledPair], judge_name: str,
              include_ties: bool) -> tuple[list[int], list[int]]:
    """(agreeing, compared) vote pairs per pair, in a fixed order (0, 0 where nothing compares)."""
    num, den = [], []
    for i in sorted(pairs):
        found = agreement_per_item(_votes(pairs[i], sides.get(i, []), judge_name), votes_of(pairs[i]), include_ties)
        num.append(sum(a.agree for a in found))
        den.append(sum(a.total for a in found))
    return num, den


def calibrate_judge(judge: Judge, pairs: list[LabelledPair], store: Store | None = None, *, k: int = 3,
                    beta: float = 0.2, benchmark: str = "labelled", rounds: int = 1000, level: float = 0.95,
                    seed: int = 0, progress=None) -> CalibrationReport:
    """Judge `pairs` in both orders with k samples of `judge` (k = 1: the judge itself) and score
    vanilla, MEC, BPC, MEC+BPC and HITLC against the pairs' human labels on these same pairs.
    With a store, calls already stored under a sample's fingerprint are read back, not made.
    The caller owns `judge` (and closes it)."""
    started = time.perf_counter()
    if judge.kind != "pairwise":
        raise ConfigError(f"judge '{judge.name}': calibration needs a pairwise judge, not {judge.kind!r}")
    if len({p.id for p in pairs}) != len(pairs):
        raise DataError(f"{benchmark}: pair ids repeat: every labelled pair needs its own id")
    top_fraction([], beta)  # checks beta before any call
    judges = sample_judges(judge, k)
    salt = secrets.token_hex(16)
    if store is not None:
        from harness.judging import tag_salt

        salt = tag_salt(store)
    calls = _calls(judges, pairs, benchmark, salt)
    rows, made = _judge_all(judges, calls, store, progress)
    by_id = {p.id: p for p in pairs}
    sides, entropy, used = _method_sides(_samples(calls, rows), k, beta, {i: p.gold for i, p in by_id.items()}, seed)
    first = _first_sample_rows(calls, rows, judge)
    plans = [("vanilla", None, 2), ("BPC", "vanilla", 2)]
    if any(r.choice_logprobs for r in first):  # the harness's merges of the same two orders
        for policy in ("inconsistent_tie", "calibrated"):
            sides[f"orders merged: {policy}"] = _merged_sides(first, policy)
            plans.append((f"orders merged: {policy}", "vanilla", 2))
    top = "BPC"
    if k > 1:
        plans += [("MEC", "vanilla", 2 * k), ("MEC+BPC", "vanilla", 2 * k)]
        top = "MEC+BPC"
    plans += [(hitlc_name(beta), top, 2 * k), (control_name(beta), top, 2 * k)]
    methods = [_score(m, before, sides, by_id, judge.name, n, used.get(m, 0), rounds, level, seed)
               for m, before, n in plans]
    parsed = [(c.key, rows[c.key]["parsed"]) for c in calls if c.sample == 0]
    return CalibrationReport(judge.name, benchmark, k, beta, len(pairs), made, len(calls) - made,
                             time.perf_counter() - started, methods, reliability(judge.name, first, parsed), entropy,
                             level)


# ---------------------------------------------------------------- HITLC over a suite's battles


@dataclass(frozen=True)
class BattlePriority:
    """A counted battle of a suite and how unsure its judge is of it: the highest diversity entropy
    over its dimensions (of every current sample, both orders), then the smallest BPC margin."""

    set_name: str
    question_id: str
    turn: int
    x: str  # the models, alphabetically (the Annotate queue's and Selection.battles' key)
    y: str
    entropy: float
    margin: float
    verdicts: int  # parsed verdicts it was computed from (entropy is inf when none parsed)

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        return (self.set_name, self.question_id, self.turn, self.x, self.y)


def annotate_priority(db, suite, judge: str, beta: float | None = None) -> list[BattlePriority]:
    """The suite's counted battles of `judge`, most uncertain first (Balanced Position Diversity
    Entropy of their verdicts; among equals, the closest calls); with `beta`, only the top beta."""
    from harness.api import open_store, resolve_suite
    from harness.battles import counted_rows, for_suite
    from harness.store.calibration import current_samples

    suite, _, source = resolve_suite(suite)
    if judge not in {j.name for j in suite.judges if j.kind == "pairwise"}:
        raise ConfigError(f"{source}: judge '{judge}': not a pairwise judge of this suite")
    store = open_store(db, must_exist=True)
    counted = counted_rows(store, for_suite(suite, judges=(judge,)))
    keys = sorted({(r.set_name, r.question_id, r.turn, r.dimension, r.answer_a, r.answer_b) for r in counted})
    with store.read() as con:
        found = current_samples(con, judge, keys)
    per: dict[tuple, list[Sample]] = {}
    for s, q, t, dim, ma, mb, _, _, verdict, lp1, lp2, lpt, _ in found:
        x, y = sorted((ma, mb))
        lp = None if None in (lp1, lp2, lpt) else (lp1, lp2, lpt)
        per.setdefault(((s, q, t, x, y), dim), []).append(Sample(1 if ma == x else 2, verdict, lp))
    battles: dict[tuple, tuple[float, float, int]] = {}
    for (battle, _), got in per.items():
        distribution = bpc_distribution(got)  # once: it is most of this loop's time on a large store
        # nothing parsed: as unsure as it gets
        entropy = item_entropy(got) if distribution is not None else float("inf")
        margin = margin_of(distribution)
        old = battles.get(battle, (-1.0, 2.0, 0))
        battles[battle] = (max(old[0], entropy), min(old[1], margin), old[2] + sum(x.verdict is not None for x in got))
    ranked = entropy_ranking({b: v[0] for b, v in battles.items()}, {b: v[1] for b, v in battles.items()})
    chosen = ranked if beta is None else top_fraction(ranked, beta)
    return [BattlePriority(*b, *battles[b]) for b in chosen]
