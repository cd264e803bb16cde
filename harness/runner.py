"""Run a suite: plan what is missing from the store, generate only that, store every chunk.

Each answer's key is a hash of (model fingerprint, sampling params, conversation so far). Turn n's
conversation holds the model's own stored answers to turns < n, so a finished suite plans nothing,
and a run killed at any point resumes where its last committed chunk ended.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import harness
from harness.config import Suite
from harness.errors import HarnessError
from harness.models.base import (
    Conversation,
    GenerationParams,
    Message,
    ModelBackend,
    CANONICAL_JSON,
    StreamingBackend,
    create_backend,
)
from harness.sets import Question, load_set
from harness.store import Store
from harness.store import queries as q
from harness.store.writer import RowWriter
from harness.streaming import GiveUp, drain


class Progress(Protocol):
    """How the runner reports progress; the CLI renders it with rich, tests pass nothing.
    `start` returns a handle for one bar; `advance` without one moves the latest bar."""

    def start(self, label: str, total: int) -> object: ...
    def advance(self, n: int, task: object = None) -> None: ...
    def stop(self) -> None: ...


class _Silent:
    def start(self, label: str, total: int) -> object: ...
    def advance(self, n: int, task: object = None) -> None: ...
    def stop(self) -> None: ...


@dataclass
class ModelStats:
    name: str
    fingerprint: str = ""
    planned: int = 0
    cached: int = 0
    generated: int = 0
    failed: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generate_s if self.generate_s else 0.0


@dataclass
class RunSummary:
    run_id: str
    suite_name: str
    db_path: Path
    models: list[ModelStats] = field(default_factory=list)
    wall_s: float = 0.0
    status: str = "running"

    def totals(self) -> dict[str, int]:
        keys = ("planned", "cached", "generated", "failed")
        return {k: sum(getattr(m, k) for m in self.models) for k in keys}


@dataclass
class _Pending:
    question: Question
    turn: int
    conversation: Conversation
    params: GenerationParams
    answer_id: str


def answer_key(fingerprint: str, params: GenerationParams, conversation: Conversation) -> str:
    """stable_hash({"model": fingerprint, "params": params.key(), "conversation": [(role, content)...]}),
    written out with the same encoder (keys in sorted order): planning keys every answer of a suite
    on every run. tests/test_runner.py pins it to stable_hash."""
    text = ('{"conversation":' + CANONICAL_JSON.encode([(m.role, m.content) for m in conversation])
            + ',"model":' + CANONICAL_JSON.encode(fingerprint) + ',"params":"' + _params_key(params) + '"}')
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=256)
def _params_key(params: GenerationParams) -> str:
    return params.key()


def load_questions(suite: Suite, base_dir: Path) -> list[Question]:
    return [question for spec in suite.sets for question in load_set(spec, base_dir)]


def run_suite(
    suite: Suite,
    store: Store,
    base_dir: Path = Path("."),
    progress: Progress | None = None,
    backends: dict[str, ModelBackend] | None = None,
    run_id: str | None = None,
    questions: list[Question] | None = None,
) -> RunSummary:
    """Generate every missing answer of every model in `suite` and store it.

    `backends` maps model names to ready backends (tests, the vLLM fixture); others are created
    from their specs and closed at the end. With `run_id`, the caller records the run (harness.api.run
    keeps one `runs` row open over generation and judging); without, this call records its own.
    `questions`: the suite's questions when the caller loaded them already (harness.api.run).
    """
    progress = progress or _Silent()
    if questions is None:
        questions = load_questions(suite, base_dir)  # bad data fails here, before any model loads
    summary = RunSummary(run_id=run_id or new_run_id(), suite_name=suite.name, db_path=store.path)
    with store.write() as con:
        q.upsert_questions(con, questions)
    if run_id is not None:
        _run_models(suite, store, questions, summary, progress, backends)
        return summary
    with recorded_run(store, summary.run_id, suite, progress, summary.totals) as record:
        _run_models(suite, store, questions, summary, progress, backends)
    summary.wall_s, summary.status = record["wall_s"], record["status"]
    return summary


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _run_models(suite, store, questions, summary: RunSummary, progress, backends) -> None:
    """Models on streaming backends (API endpoints) generate all at once, each endpoint's limit shared
    by the models on it; the others (in-process models, servers the harness starts) one at a time.
    One writer thread commits every model's rows."""
    with made_for(suite.models, backends, create_backend) as made:
        summary.models.extend(ModelStats(name=spec.name) for spec in suite.models)
        jobs = [ModelJob(spec, made[spec.name], stats, suite, questions, store, summary.run_id, progress)
                for spec, stats in zip(suite.models, summary.models)]
        with RowWriter(store) as writer:
            for job in jobs:
                if not isinstance(job.backend, StreamingBackend):
                    job.run_chunked(writer)
            streaming = [job for job in jobs if isinstance(job.backend, StreamingBackend)]
            if streaming:
                asyncio.run(stream_models(streaming, writer))


@contextmanager
def made_for(specs, given: dict | None, make: Callable) -> Iterator[dict]:
    """{name: the given object, or make(spec)} for `specs`; on leaving, closes what was made here
    (what the caller gave stays open: it is the caller's)."""
    given = given or {}
    made = {spec.name: given.get(spec.name) or make(spec) for spec in specs}
    try:
        yield made
    finally:
        for name, thing in made.items():
            if name not in given:
                thing.close()


async def stream_models(jobs: list["ModelJob"], writer: RowWriter) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job.run_streaming(writer))
    except* HarnessError as errors:
        raise errors.exceptions[0] from None
    finally:
        for job in jobs:
            await job.backend.aclose()


@contextmanager
def recorded_run(store: Store, run_id: str, suite: Suite, progress, totals: Callable[[], dict]) -> Iterator[dict]:
    """A `runs` row from start to finish: finished, interrupted (Ctrl-C, SIGTERM) or failed, with
    wall time and the counts `totals()` gives at the end. Shared by suite and closed-set runs.
    A run killed outright (kill -9) stays 'running' until the next run starts and marks it interrupted."""
    with store.write() as con:
        q.mark_dead_runs_interrupted(con)
        q.start_run(con, run_id, suite.name, suite.model_dump_json(), harness.__version__, _git_sha())
    record = {"status": "failed", "error": None, "wall_s": 0.0}
    started = time.perf_counter()
    try:
        yield record
        record["status"] = "finished"
    except KeyboardInterrupt:
        record.update(status="interrupted", error="KeyboardInterrupt")
        raise
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        (progress or _Silent()).stop()
        record["wall_s"] = time.perf_counter() - started
        with store.write() as con:
            q.finish_run(con, run_id, record["status"], totals(), record["wall_s"], record["error"])


@dataclass
class ModelJob:
    """One model's generation: turn 1 of every question, then turn 2 (which needs them), and so on;
    each turn generates only the answers whose keys the store lacks."""

    spec: object
    backend: ModelBackend
    stats: ModelStats
    suite: Suite
    questions: list[Question]
    store: Store
    run_id: str
    progress: Progress
    history: dict = field(default_factory=dict)  # (set, question) -> this model's answers so far
    task: object = None  # this model's progress bar
    # Told of every answer this suite's model has, stored ones as each turn is planned and new ones as
    # they arrive, as [(question, turn, answer_id, text, was_stored)]: harness.pipeline judges from it.
    on_answers: Callable[[list[tuple]], None] | None = None

    def turns(self) -> Iterator[list[_Pending]]:
        """The answers to generate, turn by turn; the next turn is planned once the caller has
        generated this one (its conversations hold this turn's answers)."""
        self.stats.fingerprint = fingerprint = self.backend.fingerprint()
        with self.store.write() as con:
            q.upsert_model(con, self.spec.name, fingerprint, self.spec.backend, self.spec.model,
                           self.spec.model_dump_json())
        for turn in range(1, max(len(question.turns) for question in self.questions) + 1):
            pending = _plan_turn(self.questions, turn, self.history, fingerprint, self.suite)
            with self.store.read() as con:
                cached = _take_stored(con, pending, self.history)
            todo = [p for p in pending if p.answer_id not in cached]
            if self.on_answers and cached:
                self.on_answers([(p.question, turn, p.answer_id, cached[p.answer_id], True)
                                 for p in pending if p.answer_id in cached])
            self.stats.planned += len(pending)
            self.stats.cached += len(pending) - len(todo)
            if todo:
                self.task = self.progress.start(f"{self.spec.name} turn {turn}", len(todo))
                yield todo

    def record(self, p: _Pending, c, writer: RowWriter) -> str | None:
        """Hand one result to the writer; its error text, or None."""
        where = (p.question.set_name, p.question.question_id, p.turn)
        if c.ok:
            writer.put("answers", [(p.answer_id, self.stats.fingerprint, *where, c.text, c.prompt_tokens,
                                    c.completion_tokens, c.finish_reason, c.latency_s, _params_json(p.params),
                                    self.run_id, c.original_json)])
            self.history[where[:2]].append(c.text)
            self.stats.completion_tokens += c.completion_tokens
            self.stats.generated += 1
            if self.on_answers:  # after the row is queued: the writer commits it before any judgment of it
                self.on_answers([(p.question, p.turn, p.answer_id, c.text, False)])
        else:
            writer.put("generation_failures", [(self.run_id, self.stats.fingerprint, *where, c.error)])
            self.stats.failed += 1
        self.progress.advance(1, self.task)
        return c.error

    def run_chunked(self, writer: RowWriter) -> None:
        chunk_size = getattr(self.backend, "chunk_size", 16)
        give_up = GiveUp(f"model '{self.stats.name}'", chunk_size)
        for todo in self.turns():
            for params, chunk in _chunks(todo, chunk_size):
                began = time.perf_counter()
                completions = self.backend.generate([p.conversation for p in chunk], params)
                self.stats.generate_s += time.perf_counter() - began
                for p, c in zip(chunk, completions):
                    error = self.record(p, c, writer)
                    give_up.failed(error, len(todo)) if error else give_up.succeeded()

    async def run_streaming(self, writer: RowWriter) -> None:
        backend = self.backend
        for todo in self.turns():
            began = time.perf_counter()
            await drain(todo, lambda p: backend.acomplete(p.conversation, p.params),
                        lambda p, c: self.record(p, c, writer), workers=backend.max_concurrency,
                        give_up_after=getattr(backend, "chunk_size", 4 * backend.max_concurrency),
                        who=f"model '{self.stats.name}'")
            self.stats.generate_s += time.perf_counter() - began


@functools.lru_cache(maxsize=64)
def _params_json(params: GenerationParams) -> str:
    """Stored with every answer; a suite has a handful of settings, so each is dumped once."""
    return params.model_dump_json()


def _chunks(todo: list[_Pending], size: int) -> Iterator[tuple[GenerationParams, list[_Pending]]]:
    """Chunks of one sampling setting each, similar lengths together: less padding in batched
    backends, fewer stragglers in the others."""
    by_params: dict[GenerationParams, list[_Pending]] = {}
    for p in sorted(todo, key=lambda p: sum(len(m.content) for m in p.conversation)):
        by_params.setdefault(p.params, []).append(p)
    for params, group in by_params.items():
        for start in range(0, len(group), size):
            yield params, group[start: start + size]


def _plan_turn(questions, turn, history, fingerprint, suite) -> list[_Pending]:
    pending = []
    for question in questions:
        key = (question.set_name, question.question_id)
        previous = history.setdefault(key, [])
        if len(question.turns) < turn or len(previous) != turn - 1:
            continue  # no such turn, or an earlier turn failed: it will be retried next run
        messages: list[Message] = []
        for user, answer in zip(question.turns, previous):
            messages += [Message("user", user), Message("assistant", answer)]
        messages.append(Message("user", question.turns[turn - 1]))
        conversation = tuple(messages)
        params = suite.generation.for_category(question.category)
        answer_id = answer_key(fingerprint, params, conversation)
        pending.append(_Pending(question, turn, conversation, params, answer_id))
    return pending


def _take_stored(con, pending: list[_Pending], history) -> dict[str, str]:
    """Texts of the planned answers already in the store; each one extends its question's history
    so the next turn's conversation (and key) can be built."""
    found = q.answer_texts(con, [p.answer_id for p in pending])
    for p in pending:
        if p.answer_id in found:
            history[(p.question.set_name, p.question.question_id)].append(found[p.answer_id])
    return found


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def stored_conversations(store: Store, suite: Suite, fingerprint: str, questions: list[Question]
                         ) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(set, question) -> [(answer_id, text) per turn] for the answers this suite's settings
    produce, found by walking the same keys the runner writes (turn n needs turn n-1's text)."""
    chains: dict[tuple[str, str], list[tuple[str, str]]] = {}
    history: dict[tuple[str, str], list[str]] = {}
    max_turns = max(len(question.turns) for question in questions)
    with store.read() as con:
        for turn in range(1, max_turns + 1):
            pending = _plan_turn(questions, turn, history, fingerprint, suite)
            found = _take_stored(con, pending, history)
            for p in pending:
                if p.answer_id in found:
                    key = (p.question.set_name, p.question.question_id)
                    chains.setdefault(key, []).append((p.answer_id, found[p.answer_id]))
    return chains
