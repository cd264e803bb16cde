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
from harness.models.base import GenerationParams, create_backend, stable_hash
from harness.runner import Progress, _Silent, load_questions, stored_conversations
from harness.sets import Question
from harness.store import Store
from harness.store import queries as q
from harness.store.writer import RowWriter
from harness.streaming import drain
from harness.errors import BackendError
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
            self.item = SingleItem(q.question_id, q.category, q.turns, texts_a, turn, _reference(q, turn), nonce=tag)
        else:
            self.item = PairItem(q.question_id, q.category, q.turns, texts_a, tuple(t for _, t in self.chain_b), turn,
                                 _reference(q, turn), nonce=tag)
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
    from judges.llm import LLMJudge

    return LLMJudge(spec.name, create_backend(spec.model), style=spec.style, kind=spec.kind,
                    dimensions=tuple(spec.dimensions), dimension_mode=spec.dimension_mode,
                    chain_of_thought=spec.chain_of_thought,
                    params=GenerationParams(max_new_tokens=spec.max_new_tokens),
                    max_parse_retries=spec.max_parse_retries, decode=spec.decode)


def judge_suite(suite: Suite, store: Store, run_id: str, base_dir: Path = Path("."),
                progress: Progress | None = None, judges: dict[str, Judge] | None = None,
                summary: JudgingSummary | None = None, questions: list[Question] | None = None) -> JudgingSummary:
    """Run every judge of `suite` over the stored answers of its models. Stats land in `summary`
    as each judge finishes (the caller's run row counts them even when a later judge fails).
    `questions`: the suite's questions when the caller loaded them already."""
    progress = progress or _Silent()
    questions = load_questions(suite, base_dir) if questions is None else questions
    chains = _model_chains(suite, store, questions)
    with store.read() as con:
        salt = q.verdict_tag_salt(con)
    summary = summary or JudgingSummary(run_id=run_id)
    for spec in suite.judges:
        given = (judges or {}).get(spec.name)
        judge = given or build_judge(spec)
        try:
            repeats = spec.repeats if judge.kind == "single" else 1
            samples = [judge if sample == 0 else judge.resampled(sample) for sample in range(repeats)]
            with store.write() as con:  # these fingerprints are now the judge's current ones (harness.battles)
                q.register_judge(con, spec.name, [s.fingerprint() for s in samples], judge.kind,
                                 spec.model_dump_json())
            for current in samples:
                stats = JudgeStats(name=current.name)
                summary.judges.append(stats)
                _run_judge(current, suite, questions, chains, store, run_id, progress, salt, stats)
        finally:
            if given is None:
                judge.close()
    return summary


def _model_chains(suite, store, questions) -> dict[str, dict]:
    chains = {}
    with store.read() as con:
        fingerprints = {m.name: q.current_fingerprint(con, m.name) for m in suite.models}
    for name, fingerprint in fingerprints.items():
        chains[name] = stored_conversations(store, suite, fingerprint, questions) if fingerprint else {}
    return chains


def _run_judge(judge: Judge, suite, questions, chains, store, run_id, progress, salt: str,
               stats: JudgeStats) -> None:
    fingerprint = judge.fingerprint()
    calls = (_pair_calls if judge.kind == "pairwise" else _single_calls)(suite, questions, chains, fingerprint)
    stats.planned = len(calls)
    with store.read() as con:
        done = q.existing_call_ids(con, [c.call_id for c in calls])
    todo = [c.with_item(salt) for c in calls if c.call_id not in done]
    stats.cached = len(calls) - len(todo)
    if not todo:
        return
    task = progress.start(f"judge {judge.name}", len(todo))

    def record(call: _Call, outputs: dict[str, JudgeOutput]) -> str | None:
        # A call the backend could not answer is a failure row, never a judgment: the cache does not
        # count it, so the next run asks again. Its other dimensions are dropped with it, for the same reason.
        error = next((o.error for o in outputs.values() if o.error), None)
        if error is None:
            writer.put("judgments", list(_rows(call, outputs, judge, fingerprint, run_id)))
            stats.judged += 1
            stats.unparsed += not all(o.parsed for o in outputs.values())
        else:
            writer.put("judge_failures", [_failure_row(call, judge, fingerprint, error, run_id)])
            stats.failed += 1
        progress.advance(1, task)
        return error

    with RowWriter(store) as writer:
        if isinstance(judge, StreamingJudge) and judge.streaming:
            asyncio.run(_stream_judge(judge, todo, record))
            return
        for start in range(0, len(todo), judge.chunk_size):
            batch = todo[start: start + judge.chunk_size]
            errors = [record(c, out) for c, out in zip(batch, judge.judge([c.item for c in batch]))]
            if all(errors):
                raise BackendError(f"judge '{judge.name}': all {len(batch)} calls of a chunk failed: {errors[0]}")


async def _stream_judge(judge, todo: list[_Call], record) -> None:
    try:
        await drain(todo, lambda c: judge.ajudge(c.item), record, workers=judge.max_concurrency,
                    give_up_after=judge.chunk_size, who=f"judge '{judge.name}'")
    finally:
        await judge.aclose()


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
    lists = ",".join("[" + ",".join(f'"{i}"' for i in ids) + "]" for ids in id_lists)
    text = f'["{fingerprint}",{_names_json(set_name, question_id)},{turn},{lists}]'
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
        for (a, ca), (b, cb) in (((x, cx[:turn]), (y, cy[:turn])), ((y, cy[:turn]), (x, cx[:turn]))):  # both orders
            ids_a, ids_b = [i for i, _ in ca], [i for i, _ in cb]
            call_id = call_key(fingerprint, question.set_name, question.question_id, turn, ids_a, ids_b)
            calls.append(_Call(call_id, question, turn, a, b, ca, cb))
    return calls


def _single_calls(suite, questions, chains, fingerprint) -> list[_Call]:
    calls = []
    for model in sorted(chains):
        for question in questions:
            chain = chains[model].get((question.set_name, question.question_id), [])
            for turn in range(1, len(chain) + 1):
                ids = [i for i, _ in chain[:turn]]
                call_id = call_key(fingerprint, question.set_name, question.question_id, turn, ids)
                calls.append(_Call(call_id, question, turn, model, None, chain[:turn], None))
    return calls


def _reference(question: Question, turn: int) -> str | None:
    """Reference-guided judging happens automatically where the question carries a reference."""
    return question.references[turn - 1] if len(question.references) >= turn else None
