"""`harness serve`: the API (uvicorn, in this process) plus N supervised worker processes.

Workers are separate processes, each doing short transactions through the Store, so one stuck or
crashed job never takes the API down, and a model's memory is freed when its process ends. The
supervisor restarts a worker that dies. Workers die with the service: on Linux the kernel kills
them when it goes (PR_SET_PDEATHSIG), elsewhere they notice their parent is gone within a tick.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from harness.service.security import Settings

log = logging.getLogger("harness.service")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # A wake-up (SIGUSR2) sent while the worker is still importing would kill it (the default
    # action): keep it pending until the worker has installed its handler (Worker.install_signals).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class Supervisor:
    """Keeps `n` worker processes running; `wake()` nudges the idle ones after a submission."""

    def __init__(self, settings: Settings, n: int, poll_s: float = 1.0, executor: str | None = None,
                 ray_address: str | None = None):
        self.settings, self.n, self.poll_s = settings, n, poll_s
        self.executor, self.ray_address = executor, ray_address
        self.procs: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def worker_command(self) -> list[str]:
        cmd = [sys.executable, "-m", "harness.cli", "worker", "--db", str(self.settings.db),
               "--lease-s", str(self.settings.lease_s), "--poll-s", str(self.poll_s), "--parent-pid", str(os.getpid())]
        cmd += ["--executor", self.executor] if self.executor else []
        return cmd + (["--ray-address", self.ray_address] if self.ray_address else [])

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.worker_command(), preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.n)]
        if self.n:
            threading.Thread(target=self._watch, name="harness-supervisor", daemon=True).start()
        log.info("started %d worker(s): %s", self.n, ", ".join(str(p.pid) for p in self.procs))

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            with self.lock:
                for i, proc in enumerate(self.procs):
                    if proc.poll() is not None and not self.stopping.is_set():
                        log.warning("worker %d exited with %s: restarting it", proc.pid, proc.returncode)
                        self.procs[i] = self._spawn()

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def wake(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGUSR2)
                except ProcessLookupError:
                    pass

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM each worker (a running job goes back to the queue), then wait; SIGKILL stragglers."""
        self.stopping.set()
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + grace_s
            for proc in self.procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()


def serve(settings: Settings, host: str, port: int, workers: int, poll_s: float = 1.0, log_level: str = "info",
          executor: str | None = None, ray_address: str | None = None) -> None:
    import uvicorn

    from harness.service.app import create_app

    supervisor = Supervisor(settings, workers, poll_s, executor, ray_address)
    app = create_app(settings, on_submit=supervisor.wake, workers_alive=supervisor.alive)  # migrates first
    supervisor.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    finally:
        supervisor.stop()
