"""The built-in backends' model specs: what a suite's `models:` entry says for each backend kind.

Plain pydantic, no heavy imports: the registry (harness.models.registry) names these classes and
`harness.config` validates suites with them, so importing this module must stay cheap. A plugin's
spec class subclasses `ModelSpecBase` and sets `backend: Literal["its-kind"]`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# The pydantic error type of a message that already says what is wrong and how to fix it:
# harness.config prints it as it is, after the file and the field.
FIELD_RULE = "field_rule"


def rule_error(message: str) -> PydanticCustomError:
    """A field error shown as `file: field: message` (message: one line, with the fix)."""
    return PydanticCustomError(FIELD_RULE, "{message}", {"message": message})


def endpoint_url_problem(url: object) -> str | None:
    """Why `url` cannot be an OpenAI-compatible endpoint (one line with the fix), or None."""
    example = "http://127.0.0.1:8000/v1"
    if not isinstance(url, str) or not url.strip():
        return f"{url!r} is not a URL: write the endpoint as http(s)://host[:port]/v1 (e.g. {example})"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in 0..65535
    except ValueError:
        return f"{url!r} is not a valid URL: write it as http(s)://host[:port]/v1 (e.g. {example})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        guess = url if "://" in url else f"http://{url}"
        hint = f"try {guess!r}" if urlsplit(guess).scheme in ("http", "https") else f"e.g. {example}"
        return f"{url!r} is not an http(s) URL: write it as http(s)://host[:port]/v1 ({hint})"
    return None


class ModelSpecBase(BaseModel):
    """Fields every backend kind shares. Unknown fields are errors, so a typo is never ignored."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    """Name the model is stored and shown under (letters, digits, . _ : / -)."""
    model: str
    """Catalog name (see `harness models`), a local HF folder, or a hub id (online only)."""
    adapter: str | None = None
    """Optional LoRA adapter folder (peft format) applied on top of `model`."""
    chat_template: str | None = None
    """Jinja chat template file overriding the tokenizer's own."""


class HFModelSpec(ModelSpecBase):
    """A model run in this process with transformers, on the CPU or a GPU."""

    backend: Literal["hf"] = "hf"
    """In-process transformers."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype; float32 is fastest on CPUs without bf16 units (bfloat16 suits GPUs)."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where the weights and inputs go: auto picks cuda if torch sees a GPU, else mps (Apple),
    else cpu. Asking for cuda or mps on a machine without it is an error, not a silent CPU run."""
    batch_size: int = Field(16, ge=1)
    """Conversations generated together (left padding)."""
    threads: int | None = Field(None, ge=1)
    """torch intra-op threads; unset keeps torch's default (all cores). Measured on 2 cores: 2
    threads 145 tok/s vs 1 thread 85 when the machine is quiet, but 41 vs 80 when another process
    keeps one core busy. Set 1 on a shared machine."""


class OpenAIModelSpec(ModelSpecBase):
    """Any OpenAI-compatible chat endpoint (OpenAI, vLLM, transformers serve, ...)."""

    backend: Literal["openai"] = "openai"
    """Requests go through the `openai` client."""
    base_url: str | list[str]
    """Endpoint URL, http(s)://host[:port]/v1, or a list of replicas that requests are spread over."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    revision: str = ""
    """Free text that changes the fingerprint when the served weights change behind the same name."""
    max_concurrency: int = Field(16, ge=1)
    """Requests in flight at once (over all replicas)."""
    timeout_s: float = Field(120.0, gt=0)
    """Per-request timeout."""
    max_retries: int = Field(5, ge=0)
    """Retries on 429/5xx/timeouts/malformed replies, with jittered exponential backoff."""

    @field_validator("base_url")
    @classmethod
    def _http_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise rule_error("an empty list names no endpoint: give its URL (e.g. http://127.0.0.1:8000/v1)"
                             " or a list of replicas")
        for url in urls:
            problem = endpoint_url_problem(url)
            if problem:
                raise rule_error(problem)
        return value


class VLLMModelSpec(ModelSpecBase):
    """A vLLM server the harness starts, supervises and stops itself."""

    backend: Literal["vllm"] = "vllm"
    """`python -m vllm.entrypoints.openai.api_server` on a free 127.0.0.1 port."""
    dtype: str = "float32"
    """--dtype; float32 on CPU (bf16 is slower there and changes greedy output)."""
    max_model_len: int = Field(2048, ge=128)
    """--max-model-len."""
    tensor_parallel_size: int = Field(1, ge=1)
    """--tensor-parallel-size."""
    data_parallel_size: int = Field(1, ge=1)
    """--data-parallel-size."""
    kv_cache_gib: int = Field(2, ge=1)
    """VLLM_CPU_KVCACHE_SPACE on CPU builds (else vLLM reserves most of RAM)."""
    optimization_level: int = Field(0, ge=0, le=3)
    """vLLM -O level. 0 skips compilation: CPU start-up ~40 s instead of ~225 s, ~10% less throughput."""
    extra_args: list[str] = []
    """More `vllm serve` arguments, passed through as they are."""
    startup_timeout_s: float = Field(600.0, gt=0)
    """How long to wait for GET /v1/models before giving up."""
    max_concurrency: int = Field(16, ge=1)
    """Requests in flight at once."""
    timeout_s: float = Field(300.0, gt=0)
    """Per-request timeout."""
    max_retries: int = Field(3, ge=0)
    """Retries per request."""
    replicas: int = Field(1, ge=1)
    """Servers under the Ray executor, one per bundle of a Ray placement group, each started on its
    node with the same command line; requests are balanced over them and `max_concurrency` is per
    replica. A local run needs 1 (several engines on one machine: data_parallel_size)."""
    replica_resources: dict[str, float] = {"CPU": 1.0}
    """Ray resources each replica's bundle reserves: {GPU: 1} (x tensor_parallel_size) on GPU nodes,
    or a custom resource given to `ray start --resources` to pick the nodes."""
    placement: Literal["SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK"] = "SPREAD"
    """Ray placement-group strategy of the replicas: SPREAD puts them on different nodes where it can,
    STRICT_SPREAD must (one node per replica), PACK / STRICT_PACK fill one node first."""

    @field_validator("replica_resources")
    @classmethod
    def _some_resource(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(v <= 0 for v in value.values()):
            raise rule_error("each replica's bundle must reserve something, every amount > 0 (e.g. {CPU: 1} or"
                             " {GPU: 1}): Ray cannot place an empty bundle on a node")
        return value


class ReferenceModelSpec(ModelSpecBase):
    """Published outputs read from a file (e.g. AlpacaEval's reference model), used as a model."""

    backend: Literal["reference"] = "reference"
    """`model` is the path of the outputs file (JSON array or JSONL of {instruction, output})."""
