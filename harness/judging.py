"""Judge stored answers: schedule pairs, judge every pair in both orders, store one row per call
ordering and dimension, and skip every call whose key is already stored.

A call's key hashes the judge's fingerprint, the question, turn, and the answer ids shown as A and
as B (all turns up to the judged one). Rerunning a suite makes zero judge calls; adding a model
judges only the pairs it is in.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import JudgeSpec, Suite
from harness.models.base import create_backend, stable_hash
from harness.runner import Progress, _Silent, load_questions, stored_conversations
from harness.sets import Question
from harness.store import Store
from harness.store import queries as q
from harness.store.writer import RowWriter
from harness.streaming import Feed, GiveUp, drain
from judges.base import Judge, JudgeOutput, PairItem, SingleItem, StreamingJudge
from judges.parse import verdict_tag


@dataclass(slots=True)
class _Call:
    """One planned judge call. The item the judge sees is built only for calls not in the store
    (`with_item`): a cached rerun of a large suite plans keys, not prompts."""

    call_id: str
    question: Question
    turn: int
    model_a: str
    model_b: str | None
    chain_a: list  # [(answer_id, text)] up to `turn`
    chain_b: list | None
    item: PairItem | SingleItem | None = None

    @property
    def set_name(self) -> str:
        return self.question.set_name

    @property
    def answer_a(self) -> str:
        return self.chain_a[-1][0]

    @property
    def answer_b(self) -> str | None:
        return self.chain_b[-1][0] if self.chain_b else None

    def with_item(self, salt: str) -> "_Call":
        q, turn, tag = self.question, self.turn, verdict_tag(salt, self.call_id)
        texts_a = tuple(t for _, t in self.chain_a)
        if self.chain_b is None:
            self.item = SingleItem(q.question_id, q.category, q.turns, texts_a, turn, _reference(q, turn), nonce=tag,
                                   references=tuple(q.references))
        else:
            self.item = PairItem(q.question_id, q.category, q.turns, texts_a, tuple(t for _, t in self.chain_b), turn,
                                 _reference(q, turn), nonce=tag, references=tuple(q.references))
        return self


@dataclass
class JudgeStats:
    name: str
    planned: int = 0
    cached: int = 0
    judged: int = 0  # calls whose output was stored (parsed or not)
    unparsed: int = 0  # stored outputs that broke the format after every retry
    failed: int = 0  # calls the backend could not answer: failure rows, retried by the next run


@dataclass
class JudgingSummary:
    run_id: str
    judges: list[JudgeStats] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {"judge_calls": sum(j.planned for j in self.judges), "judge_cached": sum(j.cached for j in self.judges),
                "judge_failed": sum(j.failed for j in self.judges)}


def build_judge(spec: JudgeSpec) -> Judge:
    # A panel has no model of its own: judge_on builds its members' backends.
    return spec.judge_on(create_backend(spec.model) if spec.model is not None else None)


def judge_suite(suite: Suite, store: Store, run_id: str, base_dir: Path = Path("."),
                progress: Progress | None = None, judges: dict[str, Judge] | None = None,
                summary: JudgingSummary | None = None, questions: list[Question] | None = None) -> JudgingSummary:
    """Run every judge of `suite` over the stored answers of its models. Stats land in `summary`
    as each judge finishes (the caller's run row counts them even when a later judge fails).
    `questions`: the suite's questions when the caller loaded them already."""
    progress = progress or _Silent()
    questions = load_questions(suite, base_dir) if questions is None else questions
    chains = _model_chains(suite, store, questions)
    salt = tag_salt(store)
    summary = summary or JudgingSummary(run_id=run_id)
    for spec in suite.judges:
        given = (judges or {}).get(spec.name)
        judge = given or build_judge(spec)
        try:
            for current in registered_samples(spec, judge, store):
                run = JudgeRun(current, store, run_id, progress, salt)
                summary.judges.append(run.stats)
                make = _pair_calls if current.kind == "pairwise" else _single_calls
                run.judge_all(make(suite, questions, chains, run.fingerprint))
        finally:
            if given is None:
                judge.close()
    return summary


def tag_salt(store: Store) -> str:
    with store.read() as con:
        return q.verdict_tag_salt(con)


def registered_samples(spec: JudgeSpec, judge: Judge, store: Store) -> list[Judge]:
    """The judge's samples (a single-answer judge with `repeats` gets resampled copies), registered
    as the judge's current fingerprints (harness.battles counts those only)."""
    repeats = spec.repeats if judge.kind == "single" else 1
    samples = [judge if sample == 0 else judge.resampled(sample) for sample in range(repeats)]
    with store.write() as con:
        q.register_judge(con, spec.name, [s.fingerprint() for s in samples], judge.kind, spec.model_dump_json())
    return samples


def _model_chains(suite, store, questions) -> dict[str, dict]:
    chains = {}
    with store.read() as con:
        fingerprints = {m.name: q.current_fingerprint(con, m.name) for m in suite.models}
    for name, fingerprint in fingerprints.items():
        chains[name] = stored_conversations(store, suite, fingerprint, questions) if fingerprint else {}
    return chains


class JudgeRun:
    """One judge's calls in one run: the cache check, the rows each result becomes, its counts and
    its progress bar. `judge_all` judges a list of planned calls; harness.pipeline instead feeds it
    calls as answers arrive (`plan`, then `record` per result) inside a writer it shares."""

    def __init__(self, judge: Judge, store: Store, run_id: str, progress: Progress, salt: str):
        self.judge, self.store, self.run_id, self.progress, self.salt = judge, store, run_id, progress, salt
        self.fingerprint = judge.fingerprint()
        self.stats = JudgeStats(name=judge.name)
        self.writer: RowWriter | None = None
        self.task = None
        self.give_up = GiveUp(f"judge '{judge.name}'", judge.chunk_size)

    def plan(self, calls: list[_Call], maybe_stored: bool = True) -> list[_Call]:
        """The calls of `calls` that are not stored yet, with their items built. `maybe_stored=False`
        when each call shows an answer made in this run: no stored judgment can name it."""
        self.stats.planned += len(calls)
        done: set[str] = set()
        if maybe_stored and calls:
            with self.store.read() as con:
                done = q.existing_call_ids(con, [c.call_id for c in calls])
        self.stats.cached += len(done)
        return [c.with_item(self.salt) for c in calls if c.call_id not in done]

    def record(self, call: _Call, outputs: dict[str, JudgeOutput]) -> str | None:
        """Queue one call's rows; its error text, or None."""
        # A call the backend could not answer is a failure row, never a judgment: the cache does not
        # count it, so the next run asks again. Its other dimensions are dropped with it, for the same reason.
        error = next((o.error for o in outputs.values() if o.error), None)
        if error is None:
            self.writer.put("judgments", list(_rows(call, outputs, self.judge, self.fingerprint, self.run_id)))
            self.stats.judged += 1
            self.stats.unparsed += not all(o.parsed for o in outputs.values())
        else:
            self.writer.put("judge_failures", [_failure_row(call, self.judge, self.fingerprint, error, self.run_id)])
            self.stats.failed += 1
        self.progress.advance(1, self.task)
        return error

    def judge_all(self, calls: list[_Call]) -> None:
        todo = self.plan(calls)
        if not todo:
            return
        self.task = self.progress.start(f"judge {self.judge.name}", len(todo))
        with RowWriter(self.store) as self.writer:
            if isinstance(self.judge, StreamingJudge) and self.judge.streaming:
                asyncio.run(self.stream(todo))
                return
            for start in range(0, len(todo), self.judge.chunk_size):
                batch = todo[start: start + self.judge.chunk_size]
                for call, outputs in zip(batch, self.judge.judge([c.item for c in batch])):
                    error = self.record(call, outputs)
                    self.give_up.failed(error, len(todo)) if error else self.give_up.succeeded()

    async def stream(self, calls: list[_Call] | Feed[_Call]) -> None:
        try:
            await drain(calls, lambda c: self.judge.ajudge(c.item), self.record, workers=self.judge.max_concurrency,
                        give_up_after=self.judge.chunk_size, who=f"judge '{self.judge.name}'")
        finally:
            await self.judge.aclose()


def _failure_row(call: _Call, judge: Judge, fingerprint: str, error: str, run_id: str) -> tuple:
    return (call.call_id, judge.name, fingerprint, call.set_name, call.question.question_id, call.turn,
            call.model_a, call.model_b, error, run_id)


def _rows(call: _Call, outputs: dict[str, JudgeOutput], judge: Judge, fingerprint: str, run_id: str):
    for dimension, out in outputs.items():
        yield (stable_hash([call.call_id, dimension]), call.call_id, judge.name, fingerprint, judge.kind,
               call.set_name, call.question.question_id, call.turn, call.model_a, call.model_b,
               call.answer_a, call.answer_b, dimension, out.verdicts.get(dimension), out.score,
               "ok" if out.parsed else "unparsed", out.attempts, out.raw, run_id, *(out.choice_logprobs or (None,) * 3))


def scheduled_pairs(suite: Suite, questions: list[Question]) -> list[tuple[Question, int, str, str]]:
    """(question, turn, model x, model y) battles, x < y, per the suite's pair schedule."""
    names = sorted(m.name for m in suite.models)
    pairs = list(itertools.combinations(names, 2))
    if suite.pairs.mode == "baseline":
        pairs = [p for p in pairs if suite.pairs.baseline in p]
    battles = [(qn, t, x, y) for qn in questions for t in range(1, len(qn.turns) + 1) for x, y in pairs]
    if suite.pairs.mode == "sample":
        battles = random.Random(suite.pairs.seed).sample(battles, min(suite.pairs.budget, len(battles)))
    return battles


def call_key(fingerprint: str, set_name: str, question_id: str, turn: int, *id_lists: list[str]) -> str:
    """stable_hash([fingerprint, set, question, turn, *id_lists]), written out: planning hashes every
    call of a run (500,000 in a large one) and the generic encoder is most of that time. Fingerprints
    and answer ids are hex, so only the set and question names need JSON escaping.
    tests/test_judges.py pins it to stable_hash."""
    return _key_of(_key_head(fingerprint, set_name, question_id, turn), *map(_ids_json, id_lists))


def _key_head(fingerprint: str, set_name: str, question_id: str, turn: int) -> str:
    return f'["{fingerprint}",{_names_json(set_name, question_id)},{turn},'


def _ids_json(ids: list[str]) -> str:
    return '["' + '","'.join(ids) + '"]' if ids else "[]"


def _key_of(head: str, *lists_json: str) -> str:
    return hashlib.sha256((head + ",".join(lists_json) + "]").encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=65536)
def _names_json(set_name: str, question_id: str) -> str:
    return json.dumps(set_name, ensure_ascii=False) + "," + json.dumps(question_id, ensure_ascii=False)


def _pair_calls(suite, questions, chains, fingerprint) -> list[_Call]:
    calls = []
    for question, turn, x, y in scheduled_pairs(suite, questions):
        key = (question.set_name, question.question_id)
        cx, cy = chains[x].get(key, []), chains[y].get(key, [])
        if len(cx) < turn or len(cy) < turn:
            continue  # an answer is missing (failed generation): nothing to judge yet
        calls += both_orders(fingerprint, question, turn, x, cx[:turn], y, cy[:turn])
    return calls


def both_orders(fingerprint: str, question: Question, turn: int, x: str, cx: list, y: str, cy: list,
                jx: str | None = None, jy: str | None = None) -> list[_Call]:
    """The two calls of one battle: x's answers shown as A, then y's (each key as call_key gives it).
    `jx`, `jy`: the chains' ids as JSON when the caller has them already."""
    head = _key_head(fingerprint, question.set_name, question.question_id, turn)
    jx = jx or _ids_json([i for i, _ in cx])
    jy = jy or _ids_json([i for i, _ in cy])
    return [_Call(_key_of(head, jx, jy), question, turn, x, y, cx, cy),
            _Call(_key_of(head, jy, jx), question, turn, y, x, cy, cx)]


def single_call(fingerprint: str, question: Question, turn: int, model: str, chain: list) -> _Call:
    ids = [i for i, _ in chain]
    return _Call(call_key(fingerprint, question.set_name, question.question_id, turn, ids), question, turn,
                 model, None, chain, None)


def _single_calls(suite, questions, chains, fingerprint) -> list[_Call]:
    return [single_call(fingerprint, question, turn, model, chain[:turn])
            for model in sorted(chains) for question in questions
            for chain in [chains[model].get((question.set_name, question.question_id), [])]
            for turn in range(1, len(chain) + 1)]


class ReadyCalls:
    """The battles (and single answers) that become judgeable as answers arrive, for judging while
    generation runs (harness.pipeline): a scheduled pair on a question's turn once both models hold
    their answers up to it. Over a whole run it yields exactly what `_pair_calls` / `_single_calls`
    plan from the finished store (tests/test_pipeline.py pins that)."""

    def __init__(self, suite: Suite, questions: list[Question]):
        self.partners: dict[tuple, list[str]] = {}  # (set, question, turn, model) -> scheduled opponents
        for question, turn, x, y in scheduled_pairs(suite, questions):
            for model, other in ((x, y), (y, x)):
                self.partners.setdefault((question.set_name, question.question_id, turn, model), []).append(other)
        self.chains: dict[str, dict] = {m.name: {} for m in suite.models}  # model -> (set, question) -> [(id, text)]
        self.fresh: set[str] = set()  # answer ids made in this run: no stored judgment can show them
        self.turns = sum(len(question.turns) for question in questions)
        self.singles = any(j.kind == "single" for j in suite.judges)
        # answer id -> the ids of its chain (turns 1..its own) as JSON, computed once, not per call
        self.ids_json: dict[str, str] = {}

    def possible(self, kind: str) -> int:
        """How many calls a judge of `kind` makes at most: every scheduled battle in both orders, or
        every model's answer to every turn."""
        if kind == "pairwise":
            return sum(len(opponents) for opponents in self.partners.values())  # each battle counted from both sides
        return len(self.chains) * self.turns

    def add(self, model: str, answers: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """Take `answers` of `model` [(question, turn, answer_id, text, was_stored)], each turn after
        the one before; return the (pairs, singles) they complete: (question, turn, x, chain_x, y,
        chain_y) with x < y, and (question, turn, model, chain)."""
        pairs, singles = [], []
        for question, turn, answer_id, text, was_stored in answers:
            key = (question.set_name, question.question_id)
            chain = self.chains[model].setdefault(key, [])
            chain.append((answer_id, text))
            if not was_stored:
                self.fresh.add(answer_id)
            mine = chain[:turn]
            self.ids_json[answer_id] = _ids_json([i for i, _ in mine])
            if self.singles:
                singles.append((question, turn, model, mine))
            for other in self.partners.get((*key, turn, model), ()):
                theirs = self.chains[other].get(key)
                if theirs is not None and len(theirs) >= turn:
                    pairs.append((question, turn, model, mine, other, theirs[:turn]) if model < other
                                 else (question, turn, other, theirs[:turn], model, mine))
        return pairs, singles

    def calls(self, kind: str, fingerprint: str, pairs: list[tuple], singles: list[tuple]
              ) -> tuple[list[_Call], list[_Call]]:
        """A judge's calls for what `add` returned: (calls that may be stored, calls on a fresh answer)."""
        stored, fresh = [], []
        if kind == "pairwise":
            for pair in pairs:  # the last answers decide: an earlier turn made now makes the later ones new too
                last_x, last_y = pair[3][-1][0], pair[5][-1][0]
                new = last_x in self.fresh or last_y in self.fresh
                (fresh if new else stored).extend(
                    both_orders(fingerprint, *pair, self.ids_json[last_x], self.ids_json[last_y]))
        else:
            for single in singles:
                (fresh if single[3][-1][0] in self.fresh else stored).append(single_call(fingerprint, *single))
        return stored, fresh


def _reference(question: Question, turn: int) -> str | None:
    """Reference-guided judging happens automatically where the question carries a reference."""
    return question.references[turn - 1] if len(question.references) >= turn else None
