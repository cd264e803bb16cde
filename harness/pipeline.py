"""Generation and judging at once: a pair is judged as soon as both its answers exist.

When every model of a suite and every judge streams (API endpoints: `StreamingBackend`, a judge whose
`streaming` is true), `harness.api.run` runs the two stages as one: all models generate concurrently
(each endpoint's limit shared by the models on it), every answer, stored or new, is handed to
`judging.ReadyCalls`, and each judge drains a `Feed` of the calls it makes possible while the
models are still generating. A suite then finishes close to its slowest model plus the judging of
the last answers, not generation followed by all of judging.

What is judged is exactly what the stages one after the other judge (the same call keys:
tests/test_pipeline.py), and one writer commits every row, an answer always in the same or an
earlier transaction than any judgment of it, so every committed batch is still a resume point.
Other suites (a local model, a vLLM server the harness starts, a likelihood judge) run the stages
one after the other.
"""

from __future__ import annotations

import asyncio

from harness.config import Suite
from harness.errors import HarnessError
from harness.judging import JudgeRun, JudgingSummary, ReadyCalls, build_judge, registered_samples, tag_salt
from harness.models.base import StreamingBackend, create_backend
from harness.models.registry import get_entry
from harness.runner import ModelJob, ModelStats, Progress, RunSummary, _Silent, made_for, stream_models
from harness.sets import Question
from harness.store import Store
from harness.store import queries as q
from harness.store.writer import RowWriter
from harness.streaming import Feed
from judges.base import StreamingJudge


def streams(suite: Suite, backends: dict | None = None, judges: dict | None = None) -> bool:
    """True when every model and judge of `suite` streams, decided from the specs (and the given
    objects) before anything is created: only then can the stages overlap."""
    def model_streams(spec, given) -> bool:
        if given is not None:
            return isinstance(given, StreamingBackend)
        return get_entry(spec.backend).capabilities.streaming

    models = all(model_streams(m, (backends or {}).get(m.name)) for m in suite.models)
    judged = all(
        isinstance(given, StreamingJudge) and given.streaming if (given := (judges or {}).get(j.name)) is not None
        else j.decode != "choice" and model_streams(j.model, None)
        for j in suite.judges)
    return bool(suite.models) and bool(suite.judges) and models and judged


def generate_and_judge(suite: Suite, store: Store, run_id: str, questions: list[Question], progress: Progress | None,
                       summary: RunSummary, judging: JudgingSummary, backends: dict | None = None,
                       judges: dict | None = None) -> None:
    """Both stages of `harness.api.run` as one (see the module docstring); counts land in `summary`
    and `judging` as they happen, so the run row holds them even when a stage fails."""
    progress = progress or _Silent()
    with store.write() as con:
        q.upsert_questions(con, questions)
    with made_for(suite.models, backends, create_backend) as made, made_for(suite.judges, judges, build_judge) as built:
        salt = tag_salt(store)
        runs = [JudgeRun(sample, store, run_id, progress, salt)
                for spec in suite.judges for sample in registered_samples(spec, built[spec.name], store)]
        judging.judges.extend(run.stats for run in runs)
        summary.models.extend(ModelStats(name=m.name) for m in suite.models)
        jobs = [ModelJob(m, made[m.name], stats, suite, questions, store, run_id, progress)
                for m, stats in zip(suite.models, summary.models)]
        with RowWriter(store) as writer:
            for run in runs:
                run.writer = writer
            asyncio.run(_overlapped(jobs, runs, ReadyCalls(suite, questions), writer))


async def _overlapped(jobs: list[ModelJob], runs: list[JudgeRun], ready: ReadyCalls, writer: RowWriter) -> None:
    feeds = [Feed() for _ in runs]
    for run in runs:  # the bar counts every possible call; stored ones count as done once found
        run.task = run.progress.start(f"judge {run.judge.name} (as answers arrive)", ready.possible(run.judge.kind))

    def on_answers(model: str, answers: list[tuple]) -> None:
        pairs, singles = ready.add(model, answers)
        for run, feed in zip(runs, feeds):
            stored, fresh = ready.calls(run.judge.kind, run.fingerprint, pairs, singles)
            todo = run.plan(stored) + run.plan(fresh, maybe_stored=False)
            for call in todo:
                feed.put(call)
            if len(todo) < len(stored) + len(fresh):
                run.progress.advance(len(stored) + len(fresh) - len(todo), run.task)

    for job in jobs:
        job.on_answers = lambda answers, model=job.spec.name: on_answers(model, answers)

    async def generate() -> None:
        try:
            await stream_models(jobs, writer)
        finally:
            for feed in feeds:
                feed.close()  # every answer is in: the judges finish what is queued and stop

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(generate())
            for run, feed in zip(runs, feeds):
                group.create_task(run.stream(feed))
    except* HarnessError as errors:
        raise errors.exceptions[0] from None
