"""Lifecycle of the vLLM servers the harness starts: start-up failure, stop after a run, and stop
on Ctrl-C / SIGTERM of `harness run`. Each test starts its own server (this module runs before
test_vllm_server.py, whose shared server would otherwise compete for the 2 cores)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from harness.config import SetSpec, Suite, VLLMModelSpec
from harness.errors import BackendError
from harness.models.vllm import VLLMServer
from harness.runner import run_suite
from harness.store import Store

from .test_resume import count_answers

pytestmark = pytest.mark.slow


def test_server_that_cannot_start_fails_fast_with_its_log(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    server = VLLMServer(broken, "broken", VLLMModelSpec(name="broken", model=str(broken), startup_timeout_s=240),
                        log_dir=tmp_path)
    started = time.monotonic()
    with pytest.raises(BackendError, match="exited with code") as err:
        server.start()
    assert time.monotonic() - started < 240
    assert str(server.log_path) in str(err.value) and server.log_path.is_file()
    assert server.process is None


def test_vllm_spec_in_a_suite_starts_and_stops_its_server(tmp_path, smollm2_path):
    """The full lifecycle through the runner: start on demand, generate, always stop."""
    spec = VLLMModelSpec(name="smollm2-vllm", model=str(smollm2_path), kv_cache_gib=1)
    suite = Suite(name="v", models=[spec], sets=[SetSpec(name="quickstart", categories=["math"], limit=2)],
                  generation={"default": {"max_new_tokens": 16}})
    store = Store(tmp_path / "h.duckdb")
    summary = run_suite(suite, store)
    assert summary.totals()["generated"] >= 2 and summary.totals()["failed"] == 0
    assert server_pids(spec.name) == [], "the runner must stop the server it started"
    again = run_suite(suite, store)  # cached: must not even start a server
    assert again.totals()["generated"] == 0 and again.models[0].generate_s == 0.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_cli_run_stops_its_vllm_server(tmp_path, smollm2_path, sig):
    name = f"interrupt-{sig.name.lower()}"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
name: interrupt
models:
  - {{name: {name}, backend: vllm, model: {smollm2_path}, kv_cache_gib: 1, max_concurrency: 1}}
sets: [{{name: quickstart}}]
generation: {{default: {{max_new_tokens: 48}}}}
""")
    db = tmp_path / "h.duckdb"
    # A terminal's Ctrl-C reaches a process whose SIGINT is at its default. The test runner itself may
    # have been started with SIGINT ignored (POSIX: `cmd &` in a non-interactive shell), and children
    # inherit that, so the child gets the default back explicitly.
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(suite), "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and count_answers(db) < 1:
        time.sleep(0.2)  # polling for a condition (server up, first chunk stored), bounded
    assert proc.poll() is None, proc.stderr.read().decode()[-800:]
    assert server_pids(name), "the server should be running mid-run"
    proc.send_signal(sig)
    # VLLMServer.stop allows up to 2 x 20 s for a graceful SIGTERM, then 2 x 5 s after SIGKILL;
    # on a loaded 2-core machine the graceful part can take most of it
    assert proc.wait(timeout=120) == 130
    assert server_pids(name) == []
    with Store(db).read() as con:
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"


def server_pids(served_name: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"served-model-name {served_name} "], capture_output=True, text=True)
    return out.stdout.split()
