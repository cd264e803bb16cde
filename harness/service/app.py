"""The HTTP API: `create_app(settings)` returns a FastAPI app over one store (OpenAPI docs at /docs).

Handlers are plain `def`s: each does one or two short store transactions (harness.store.jobs,
harness.api, harness.views), which block, so FastAPI runs them in its thread pool. Nothing here
runs a model: jobs are queued, and worker processes (harness.service.worker) run them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from dataclasses import asdict, is_dataclass
from typing import Callable, Optional

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from harness.errors import HarnessError, StoreBusyError
from harness.redact import redact
from harness.service.security import Forbidden, Settings, TokenCheck, TooLarge, Unauthorized
from harness.service.submission import SubmitRequest, build_job
from harness.store import jobs as queue

log = logging.getLogger("harness.service")
_STATUS = {Unauthorized: 401, Forbidden: 403, TooLarge: 413, StoreBusyError: 503}
CSV_COLUMNS = ("judge_name", "dimension", "category", "method", "model", "rating", "ci_low", "ci_high", "level",
               "battles", "merge_policy", "computed_at")


class NotFound(HarnessError):
    """An unknown job, suite or model (404)."""


def create_app(settings: Settings, on_submit: Callable[[], None] | None = None,
               workers_alive: Callable[[], int] | None = None, sse_poll_s: float = 0.2) -> FastAPI:
    """`on_submit` is called after a job is queued (serve wakes its idle workers there);
    `workers_alive` reports the worker processes serve supervises (for /healthz and /metrics)."""
    from harness.api import open_store

    store = open_store(settings.db)  # creates or migrates the file once, before the first request
    app = FastAPI(title="alignment-harness service", version="1",
                  description="Submit evaluation jobs, follow them, read leaderboards. Write endpoints need "
                              "`Authorization: Bearer <token>` (`harness tokens create NAME`).")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _errors(app)
    check_token = TokenCheck(store)

    def writer(authorization: Optional[str] = Header(None)) -> str:
        return check_token(authorization)

    def reader(authorization: Optional[str] = Header(None)) -> str | None:
        return None if settings.public_reads else check_token(authorization)

    @app.post("/v1/jobs", status_code=201, tags=["jobs"])
    def submit(req: SubmitRequest, who: str = Depends(writer)) -> dict:
        """Queue a job; returns its id. Bad input: 422 (403 for a path outside the data roots) and nothing stored."""
        job = build_job(req, settings, store, who)
        job_id = queue.submit(store, **job)
        log.info("job %s queued: %s %r by %s", job_id, req.kind, job["suite_name"], who)  # %r: no forged log lines
        if on_submit is not None:
            on_submit()
        return {"id": job_id, "state": "queued", "url": f"/v1/jobs/{job_id}"}

    @app.get("/v1/jobs", tags=["jobs"])
    def list_jobs(state: Optional[str] = None, suite: Optional[str] = None, submitter: Optional[str] = None,
                  limit: int = Query(100, ge=1, le=1000), _: Optional[str] = Depends(reader)) -> list[dict]:
        return [job_view(j) for j in queue.list_jobs(store, state, suite, submitter, limit)]

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, _: Optional[str] = Depends(reader)) -> dict:
        return job_view(_job(store, job_id))

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel(job_id: str, who: str = Depends(writer)) -> dict:
        state = queue.cancel(store, job_id)
        if state is None:
            raise NotFound(f"job '{job_id}': no such job")
        log.info("job %r cancel asked by %s: %s", job_id, who, state)
        return {"id": job_id, "state": state}

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    def job_events(job_id: str, request: Request, after: int = 0, _: Optional[str] = Depends(reader)):
        """Server-Sent Events: every event of the job after `after` (or Last-Event-ID), live, until it ends."""
        _job(store, job_id)
        start = int(request.headers.get("last-event-id") or after)
        return StreamingResponse(_event_stream(store, job_id, start, sse_poll_s), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    _results(app, store, reader)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict:
        return {"ok": True, "db": str(settings.db), "workers": workers_alive() if workers_alive else None}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    def metrics(_: Optional[str] = Depends(reader)) -> str:
        return prometheus(queue.metrics(store), workers_alive() if workers_alive else None)

    return app


def _job(store, job_id: str) -> dict:
    job = queue.get_job(store, job_id)
    if job is None:
        raise NotFound(f"job '{job_id}': no such job")
    return job


def job_view(row: dict) -> dict:
    """A job row as the API shows it: timings in seconds, progress and result parsed."""
    seconds = lambda a, b: (b - a).total_seconds() if a and b else None  # noqa: E731
    params = json.loads(row["params_json"])
    return jsonable_encoder({
        "id": row["job_id"], "kind": row["kind"], "state": row["state"], "priority": row["priority"],
        "suite": row["suite_name"], "submitter": row["submitter"], "params": params,
        "submitted_at": row["submitted_at"], "started_at": row["started_at"], "finished_at": row["finished_at"],
        "queue_wait_s": seconds(row["submitted_at"], row["started_at"]),
        "run_s": seconds(row["started_at"], row["finished_at"]),
        "worker": row["worker"], "attempts": row["attempts"], "stage": row["stage"],
        "progress": {k: {"done": d, "total": t} for k, (d, t) in json.loads(row["progress_json"] or "{}").items()},
        "result": json.loads(row["result_json"]) if row["result_json"] else None,
        "calls": {"made": row["n_made"], "cached": row["n_cached"], "failed": row["n_failed"]},
        "error": row["error"],
    })


async def _event_stream(store, job_id: str, after: int, poll_s: float):
    """Poll the job's events (one read transaction each time) and send the new ones; stop after
    its final state. A comment line every ~10 s keeps proxies from closing an idle stream."""
    idle = 0.0
    while True:
        rows, state = await run_in_threadpool(queue.events_and_state, store, job_id, after)
        for row in rows:
            after = row["seq"]
            yield f"id: {row['seq']}\nevent: {row['kind']}\ndata: {json.dumps(jsonable_encoder(row))}\n\n"
        if state is None or state in queue.DONE:
            return  # same snapshot: its final event was just sent, or before `after`
        idle = 0.0 if rows else idle + poll_s
        if idle >= 10:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_s)


# --- results -----------------------------------------------------------------------------------------
def _results(app: FastAPI, store, reader) -> None:
    from harness import api, views

    @app.get("/v1/suites", tags=["results"])
    def suites(_: Optional[str] = Depends(reader)) -> list[str]:
        return views.filter_options(store)["suites"]

    @app.get("/v1/leaderboard", tags=["results"])
    def leaderboard(suite: str, judge: Optional[str] = None, dimension: Optional[str] = None,
                    method: Optional[str] = None, category: str = "all",
                    format: str = Query("json", pattern="^(json|csv)$"),
                    _: Optional[str] = Depends(reader)):
        """The suite's stored board (rows with CIs) with each judge's reliability beside it; format=csv for a table."""
        rows = [r for r in api.stored_ratings(suite, store, category)
                if (judge is None or r["judge_name"] == judge) and (dimension is None or r["dimension"] == dimension)
                and (method is None or r["method"] == method)]
        if not rows:
            raise NotFound(f"suite '{suite}': no stored ratings match: run it (kind run or ratings) first")
        if format == "csv":
            return _csv(rows)
        judges = sorted({r["judge_name"] for r in rows if not r["judge_name"].startswith("human:")})
        return jsonable_encoder({"suite": suite, "category": category, "rows": rows,
                                 "reliability": {j: _plain(api.judge_reliability(store, j)) for j in judges}})

    @app.get("/v1/leaderboard.csv", tags=["results"], response_class=PlainTextResponse)
    def leaderboard_csv(suite: str, judge: Optional[str] = None, dimension: Optional[str] = None,
                        method: Optional[str] = None, category: str = "all", who: Optional[str] = Depends(reader)):
        return leaderboard(suite, judge, dimension, method, category, "csv", who)

    @app.get("/v1/pairwise", tags=["results"])
    def pairwise(suite: str, judge: Optional[str] = None, dimension: Optional[str] = None,
                 _: Optional[str] = Depends(reader)) -> list[dict]:
        """Per ordered (model, opponent): battles, wins, ties, losses, win rate."""
        return jsonable_encoder(views.pairwise_matrix(store, suite, judge, dimension))

    @app.get("/v1/reliability", tags=["results"])
    def reliability(judge: Optional[str] = None, _: Optional[str] = Depends(reader)):
        """Parse failures, swap flips, position and length bias: of one judge, or of every judge."""
        if judge is None:
            return jsonable_encoder(views.reliability(store))
        return _plain(api.judge_reliability(store, judge))

    @app.get("/v1/closed", tags=["results"])
    def closed(suite: Optional[str] = None, _: Optional[str] = Depends(reader)) -> list[dict]:
        """lm-eval metrics, latest per (model, task, metric, filter)."""
        return jsonable_encoder(views.closed_metrics(store, suite))

    @app.get("/v1/lineage/{model}", tags=["results"])
    def lineage(model: str, _: Optional[str] = Depends(reader)):
        return _plain(api.lineage(model, store))


def _plain(obj):
    return jsonable_encoder(asdict(obj) if is_dataclass(obj) else obj)


def _csv(rows: list[dict]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv")


def prometheus(m: dict, workers: int | None) -> str:
    def metric(name: str, kind: str, help_text: str, *samples: str) -> list[str]:
        return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]

    lines = metric("harness_jobs", "gauge", "Jobs in the queue by state.",
                   *(f'harness_jobs{{state="{s}"}} {n}' for s, n in m["states"].items()))
    lines += metric("harness_calls_total", "counter", "Model and judge calls of ended jobs, made or from the cache.",
                    f'harness_calls_total{{source="made"}} {m["made"]}',
                    f'harness_calls_total{{source="cached"}} {m["cached"]}')
    lines += metric("harness_call_failures_total", "counter", "Calls that failed (retried by the next run).",
                    f"harness_call_failures_total {m['failed']}")
    lines += metric("harness_job_errors_total", "counter", "Jobs that failed.",
                    f"harness_job_errors_total {m['states']['failed']}")
    lines += metric("harness_queue_wait_seconds", "summary", "Submission to first claim.",
                    f"harness_queue_wait_seconds_sum {m['wait_s_sum']:.6f}",
                    f"harness_queue_wait_seconds_count {m['wait_count']}")
    lines += metric("harness_queue_oldest_wait_seconds", "gauge", "Age of the oldest queued job.",
                    f"harness_queue_oldest_wait_seconds {m['oldest_queued_s']:.3f}")
    if workers is not None:
        lines += metric("harness_workers", "gauge", "Worker processes alive.", f"harness_workers {workers}")
    return "\n".join(lines) + "\n"


# --- errors and limits -----------------------------------------------------------------------------
def _errors(app: FastAPI) -> None:
    @app.exception_handler(HarnessError)
    async def harness_error(request: Request, exc: HarnessError) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)),
                      404 if isinstance(exc, NotFound) else 422)
        line = redact(str(exc)).replace("\n", " ")
        log.info("%s %r -> %d: %s", request.method, request.url.path, status, line)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": line}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return JSONResponse({"detail": redact(f"request: {where}: {err.get('msg')}{more}")}, status_code=422)


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, by its Content-Length or, when it is sent
    in chunks, as soon as the chunks pass the limit; the handler never sees such a body. Bodies are
    read whole here (at most `limit` bytes) and handed on as one message."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await self._refuse(send)
            more = message.get("more_body", False)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for a disconnect as usual
            sent = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body over the service's limit of {self.limit} bytes:"
                                     " send a smaller suite"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
