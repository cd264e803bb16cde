"""A worker process: claim a job, run it through harness.api, report progress, repeat.

One job at a time, in the main thread. A ticker thread renews the job's lease and writes coalesced
progress events a few times a second. When it sees the job cancelled (or its lease taken away) it
signals the main thread (SIGUSR1), whose handler raises `Stop` inside the running job: the run
unwinds like Ctrl-C, so the rows already produced are committed and the `runs` row is marked
interrupted; nothing half-written stays behind. A kill -9 leaves the lease to run out (or, on the
same host, the next claim sees the pid is gone) and the job resumes from the cache elsewhere.

SIGTERM stops the worker: a running job is given back to the queue. SIGUSR2 wakes an idle worker
(serve sends it after a submission) so a new job starts without waiting for the next poll.

Ray: a job whose suite says `executor: {kind: ray}`, or any run / closed-set job of a worker made
with `executor="ray"`, runs its calls on the Ray cluster (harness.executors); this worker still
plans them and alone writes the store, and a Stop unwinds the run like Ctrl-C, stopping its actors.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from harness.errors import HarnessError
from harness.redact import redact
from harness.store import Store
from harness.store import jobs as queue

log = logging.getLogger("harness.worker")
# How often moved progress is written: the event stream's resolution. Each write is a transaction
# that the job's own writes wait for; 0.1 s cost a 1.5 s endpoint job ~25% (bench/service.py).
TICK_S = float(os.environ.get("HARNESS_PROGRESS_S", "0.5"))
RENEW_S = 1.0  # at least this often the lease is renewed, which is also when a cancel is seen


class Stop(KeyboardInterrupt):
    """Raised inside a running job: cancelled by a user, or its lease lost. A KeyboardInterrupt,
    so every layer (the runner's writer, recorded_run, asyncio) unwinds exactly as for Ctrl-C."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class JobProgress:
    """harness.runner.Progress for a job: counts kept in memory, written by the ticker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bars: dict[str, list[int]] = {}
        self.moved: set[str] = set()
        self.latest: str | None = None
        self.ended: list[tuple[str, str]] = []  # (stage, summary) not written yet

    def start(self, label: str, total: int) -> object:
        with self.lock:
            base, n = label, 2
            while label in self.bars:  # a second bar of the same name (a rerun stage) keeps the first
                label, n = f"{base} ({n})", n + 1
            self.bars[label] = [0, total]
            self.moved.add(label)
            self.latest = label
        return label

    def advance(self, n: int, task: object = None) -> None:
        with self.lock:
            label = task if task in self.bars else self.latest
            if label is not None:
                self.bars[label][0] += n
                self.moved.add(label)

    def stop(self) -> None:
        pass

    def stage_done(self, stage: str, summary: str) -> None:
        with self.lock:
            self.ended.append((stage, summary))

    def take(self) -> dict:
        """What to write: the latest label (stage), every bar (progress), the bars that moved
        (updates) and the stages that ended (stages) since the last take."""
        with self.lock:
            moved = [(label, *self.bars[label]) for label in sorted(self.moved)]
            ended, self.ended = self.ended, []
            self.moved.clear()
            return {"stage": self.latest, "progress": {k: list(v) for k, v in self.bars.items()}, "updates": moved,
                    "stages": ended}


class Worker:
    def __init__(self, db: str | Path, lease_s: float = 30.0, poll_s: float = 1.0, parent_pid: int | None = None,
                 executor: str | None = None, ray_address: str | None = None):
        """`executor` / `ray_address` override every run and closed-set job's suite, as `harness run
        --executor ray --ray-address ADDR` does: this worker hands its jobs to that Ray cluster."""
        self.store = Store(db)
        self.executor = (executor, ray_address)
        self.id = queue.worker_id()
        self.lease_s, self.poll_s, self.parent_pid = lease_s, poll_s, parent_pid
        self.wake = threading.Event()
        self.armed = False  # a Stop may be raised (only while a job's code runs)
        self.stop_reason: str | None = None

    # --- signals -----------------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_stop)
        signal.signal(signal.SIGUSR2, lambda signum, frame: self.wake.set())
        signal.signal(signal.SIGTERM, self._on_term)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2})  # blocked by serve until now

    def _on_stop(self, signum, frame) -> None:
        if self.armed and self.stop_reason:
            self.armed = False  # once: a second signal must not interrupt the unwinding
            raise Stop(self.stop_reason)

    def _on_term(self, signum, frame) -> None:
        raise KeyboardInterrupt

    def _orphaned(self) -> bool:
        """serve started this worker and is gone (kill -9): a worker must not outlive its service."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    # --- the loop ----------------------------------------------------------------------------------
    def serve_forever(self, once: bool = False) -> None:
        log.info("worker %s polling %s", self.id, self.store.path)
        try:
            busy = False  # after a job, claim at once; idle, look first (a read, not the write lock)
            while not self._orphaned():
                job = queue.claim(self.store, self.id, self.lease_s) if busy or queue.has_work(self.store) else None
                busy = job is not None
                if busy:
                    self.run_job(job)
                    continue
                if once:
                    return
                self.wake.wait(self.poll_s)
                self.wake.clear()
        except KeyboardInterrupt:
            log.info("worker %s stopping", self.id)

    def run_job(self, job: dict) -> None:
        job_id = job["job_id"]
        log.info("job %s claimed by %s (attempt %d)", job_id, self.id, job["attempts"])
        progress = JobProgress()
        ticker = threading.Thread(target=self._tick, args=(job_id, progress), daemon=True)
        self.stop_reason, done = None, threading.Event()
        self._done = done
        ticker.start()
        state, result, error = "failed", None, None
        try:
            try:
                self.armed = True
                result = execute(job, self.store, progress, progress.stage_done, self.executor)
                state = "finished"
                error = result.pop("error", None)
            finally:
                self.armed = False
        except Stop as stop:
            state, error = "cancelled", stop.reason
        except KeyboardInterrupt:
            done.set()
            ticker.join()
            queue.release(self.store, job_id, self.id, "its worker was stopped: re-queued")
            raise
        except HarnessError as exc:
            error = str(exc).replace("\n", " ")
        except Exception as exc:  # a bug: keep the traceback in the log, one line in the job
            log.error("job %s crashed:\n%s", job_id, redact(traceback.format_exc()))
            error = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        done.set()
        ticker.join()
        if self.stop_reason == "lost":
            log.info("job %s: lease lost, left to its new holder", job_id)
            return
        pending = progress.take()
        del pending["stage"]
        queue.finish(self.store, job_id, self.id, state, result, error, **pending)
        log.info("job %s %s%s", job_id, state, f": {redact(error)}" if error else "")

    def _tick(self, job_id: str, progress: JobProgress) -> None:
        """Renew the lease every second (at most lease_s / 3); write progress when it moved; stop the
        job when it was cancelled or its lease went to another worker."""
        renew_at = time.monotonic() + min(RENEW_S, self.lease_s / 3)  # the claim has just set the lease
        while not self._done.wait(TICK_S):
            if self._orphaned():
                os._exit(1)
            if not progress.moved and not progress.ended and time.monotonic() < renew_at:
                continue
            pending = progress.take()
            try:
                state = queue.heartbeat(self.store, job_id, self.id, self.lease_s, **pending)
            except Exception as exc:  # a busy store: try again next tick, the lease has slack. Never let
                # this thread die: a job whose lease lapses while it runs would be run twice.
                log.warning("job %s: heartbeat failed (its progress is dropped): %s", job_id, redact(str(exc)))
                continue
            renew_at = time.monotonic() + min(RENEW_S, self.lease_s / 3)
            if state in (None, "cancelling") and self.stop_reason is None:
                self.stop_reason = "lost" if state is None else "cancelled by request"
                os.kill(os.getpid(), signal.SIGUSR1)


def execute(job: dict, store: Store, progress: JobProgress, on_stage,
            executor: tuple[str | None, str | None] = (None, None)) -> dict:
    """Run one job through harness.api; returns its counts (plus an `error` line when calls failed).
    `executor`: (kind, Ray address) overriding a run or closed-set job's suite (the worker's own)."""
    from harness import api
    from harness.service.submission import base_dir, job_suite

    params = json.loads(job["params_json"])
    suite = job_suite(job)
    base = base_dir(params, job["data_roots"])
    kind = job["kind"]
    if suite is not None and kind in ("run", "closed"):
        from harness.executors import with_executor

        suite = with_executor(suite, *executor)  # a suite saying `executor: ray` runs there anyway
    if kind == "run":
        report = api.run(suite, store, stages=params["stages"], base_dir=base, progress=progress,
                         on_stage=lambda stage, rep: on_stage(stage, _stage_line(stage, rep)))
        return run_result(report)
    if kind == "closed":
        report = api.run_closed(suite, store, force=params.get("force", False), base_dir=base, progress=progress)
        ran = [r for r in report.closed.results if not r.cached]
        return {"made": len(ran), "cached": report.closed.n_cached, "failed": 0}
    if kind == "ratings":
        board = api.rate(suite, store)
        return {"made": 0, "cached": 0, "failed": 0, "rows": len(board.rows)}
    if kind == "judge-eval":
        from harness.service.security import confine

        confine("judge-eval", [("data", params["data"])], [Path(r) for r in job["data_roots"]])  # again, now
        data = Path(params["data"]) if Path(params["data"]).is_absolute() else base / params["data"]
        api.evaluate_judges(data, store, suite, sample=params["sample"])
        return {"made": 0, "cached": 0, "failed": 0}
    if kind == "train":
        then_eval = suite if params["then_eval"] else None
        trained, _ = api.train(params["method"], params["recipe"], store, then_eval=then_eval, progress=progress)
        return {"made": 0, "cached": 0, "failed": 0, "model": trained.name}
    raise HarnessError(f"kind: '{kind}': unknown")


def run_result(report) -> dict:
    gen = report.generation.totals() if report.generation else {"planned": 0, "cached": 0, "generated": 0, "failed": 0}
    judged = report.judging.totals() if report.judging else {"judge_calls": 0, "judge_cached": 0, "judge_failed": 0}
    judge_made = judged["judge_calls"] - judged["judge_cached"] - judged["judge_failed"]
    result = {"answers": gen, "judging": judged, "made": gen["generated"] + judge_made,
              "cached": gen["cached"] + judged["judge_cached"], "failed": gen["failed"] + judged["judge_failed"],
              "complete": report.complete, "run_id": report.run_id}
    if not report.complete:
        failed = ", ".join(f"{n} {what}" for what, n in report.failures().items() if n)
        result["error"] = f"incomplete: {failed} failed and are not stored: submit the job again to retry them"
    return result


def _stage_line(stage: str, report) -> str:
    if stage == "generate" and report.generation:
        t = report.generation.totals()
        return f"{t['generated']} answers generated, {t['cached']} from cache, {t['failed']} failed"
    if stage == "judge" and report.judging:
        t = report.judging.totals()
        return f"{t['judge_calls']} judge calls, {t['judge_cached']} from cache, {t['judge_failed']} failed"
    return stage
