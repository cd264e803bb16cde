"""Which lm-eval model runs a harness model spec. The mapping is declared per backend kind in the
registry (harness.models.registry: `lm_eval` and `capabilities` of each entry); the builders of
the built-in kinds' model arguments live here. The README's table says the same:

  hf spec     -> lm-eval `hf` (same folder, dtype, device and peft adapter): every task type.
  vllm spec   -> lm-eval `local-completions` against the server the harness starts: every task
                 type; loglikelihood tasks need echo + prompt logprobs, probed before the first one.
                 (lm-eval's own `vllm` model is the GPU path; it runs vLLM in-process.)
  openai spec -> lm-eval `local-chat-completions`: generate_until only; chat APIs return no prompt
                 logprobs, so a loglikelihood task is refused before any request.
  reference   -> refused: a file of published outputs cannot score anything.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx

from harness.errors import BackendError, ConfigError, MissingExtraError
from harness.models.device import resolve_device
from harness.models.registry import LM_EVAL_MODEL, get_entry, kinds_text, kinds_where, load_attr
from harness.models.specs import HFModelSpec, VLLMModelSpec


@dataclass
class LMEvalModel:
    """What `simple_evaluate` gets, and what is stored about it (never the API key)."""

    kind: str  # the lm-eval model name
    args: dict[str, Any]  # model_args as stored and as printed for the CLI
    secret_args: dict[str, Any] = field(default_factory=dict)  # auth token: passed, never stored
    instance: Any = None
    # Resolved torch device of a local model (None for API models). Passed as lm-eval's `device`
    # and `--device`, not inside `args`: lm-eval would get it twice when both are given.
    device: str | None = None


def _entry(spec):
    entry = get_entry(spec.backend)
    if entry is None:
        raise ConfigError(f"model '{spec.name}': unknown backend '{spec.backend}' (known: {kinds_text(last='and')})")
    return entry


def check_compatible(spec, task_where: str, task_name: str, loglikelihood: bool) -> None:
    """Refuse, before any model loads or request is sent, a task this backend cannot score
    (from the registry entry: its lm-eval mapping and its loglikelihood capability)."""
    entry = _entry(spec)
    if entry.lm_eval is None:
        raise ConfigError(f"{task_where}: model '{spec.name}' {entry.no_lm_eval_why} and cannot run"
                          " closed-set tasks: list the other models under the task's `models:`")
    if loglikelihood and not entry.capabilities.loglikelihood:
        able = kinds_where(lambda e: e.lm_eval is not None and e.capabilities.loglikelihood)
        why = entry.lm_eval.no_loglikelihood_why or "its lm-eval model scores no loglikelihood requests"
        raise ConfigError(
            f"{task_where}: model '{spec.name}' (backend {spec.backend} -> lm-eval {entry.lm_eval.model}) cannot"
            f" score loglikelihood task '{task_name}': {why}; use a {kinds_text(able)} spec for it, or"
            " restrict the task with `models:`"
        )


def model_args(spec, path, base_url: str | None = None) -> LMEvalModel:
    """The lm-eval model name and arguments for a spec (`path`: the resolved HF folder, if any)."""
    entry = _entry(spec)
    if entry.lm_eval is None:
        raise ConfigError(f"model '{spec.name}': backend {spec.backend} has no lm-eval counterpart")
    return load_attr(entry.lm_eval.args)(spec, path, base_url)


# The built-in kinds' argument builders, named by their registry entries. They take the lm-eval
# model name from LM_EVAL_MODEL: the registry entry is the one place that says it.
def hf_model_args(spec: HFModelSpec, path, base_url: str | None = None) -> LMEvalModel:
    args = {"pretrained": str(path), "dtype": spec.dtype}
    if spec.adapter:
        args["peft"] = spec.adapter
    return LMEvalModel(LM_EVAL_MODEL[spec.backend], args, device=resolve_device(spec.device, spec.name))


def vllm_model_args(spec: VLLMModelSpec, path, base_url: str | None = None) -> LMEvalModel:
    served = f"{spec.name}-lora" if spec.adapter else spec.name
    args = {"model": served, "base_url": f"{base_url}/completions", "tokenizer": str(path),
            "tokenizer_backend": "huggingface", "num_concurrent": spec.max_concurrency,
            "max_retries": spec.max_retries, "timeout": int(spec.timeout_s),
            "max_length": spec.max_model_len}
    return LMEvalModel(LM_EVAL_MODEL[spec.backend], args)


def openai_model_args(spec, path=None, base_url: str | None = None) -> LMEvalModel:
    from harness.models.openai_backend import api_key_from_env

    url = spec.base_url[0] if isinstance(spec.base_url, list) else spec.base_url
    args = {"model": spec.model, "base_url": f"{url.rstrip('/')}/chat/completions",
            "num_concurrent": spec.max_concurrency, "max_retries": spec.max_retries,
            "timeout": int(spec.timeout_s)}
    secret = {"auth_token": api_key_from_env(spec.api_key_env, spec.name)} if spec.api_key_env else {}
    return LMEvalModel(LM_EVAL_MODEL[spec.backend], args, secret)


@contextmanager
def open_lm(spec, batch_size: int, base_url: str | None = None) -> Iterator[LMEvalModel]:
    """Instantiate the lm-eval model and clean up. A vllm spec gets its own server unless
    `base_url` points at one already running for it (the runner's, a test fixture's)."""
    try:
        import lm_eval.api.registry as registry
    except ImportError:
        raise MissingExtraError("lmeval", "lm-eval") from None
    server = None
    try:
        path = None
        if _entry(spec).capabilities.local_weights:
            from harness.models.catalog import resolve_model_path

            path = resolve_model_path(spec.model)
        if isinstance(spec, VLLMModelSpec) and base_url is None:
            from harness.models.vllm import VLLMServer

            server = VLLMServer(path, spec.name, spec).start()
            base_url = server.base_url
        model = model_args(spec, path, base_url)
        if isinstance(spec, HFModelSpec) and spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        model.instance = registry.get_model(model.kind).create_from_arg_obj(
            {**model.args, **model.secret_args}, {"batch_size": batch_size, "device": model.device}
        )
        yield model
    finally:
        if server is not None:
            server.stop()


def probe_prompt_logprobs(model: LMEvalModel) -> None:
    """Loglikelihood through a completions server needs `echo` with prompt logprobs; some servers
    ignore echo or shift the logprobs. One tiny request tells, before hundreds are sent."""
    url = model.args["base_url"]
    body = {"model": model.args["model"], "prompt": "The sky is blue", "max_tokens": 1,
            "echo": True, "logprobs": 1, "temperature": 0}
    try:
        reply = httpx.post(url, json=body, timeout=120).json()
        logprobs = reply["choices"][0]["logprobs"]["token_logprobs"]
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise BackendError(f"{url}: the server returned no prompt logprobs for echo=True"
                           f" ({type(exc).__name__}); loglikelihood tasks need them: use an hf spec,"
                           " or a vLLM server") from None
    if len(logprobs) < 3:  # only the generated token: echo was ignored
        raise BackendError(f"{url}: echo=True returned {len(logprobs)} token logprobs for a 4-word"
                           " prompt (no prompt logprobs); loglikelihood tasks need them: use an hf spec")


def cli_command(model: LMEvalModel, include_dir, task: str, settings: dict) -> str:
    """The `lm_eval` command that reproduces a stored result (model args as stored, no secrets)."""
    args = ",".join(f"{k}={v}" for k, v in model.args.items())
    parts = ["lm_eval", "--model", model.kind, "--model_args", args, "--tasks", task,
             "--batch_size", str(settings["batch_size"])]
    if settings["num_fewshot"] is not None:
        parts += ["--num_fewshot", str(settings["num_fewshot"])]
    if model.device:
        parts += ["--device", model.device]
    if include_dir:
        parts += ["--include_path", str(include_dir)]
    if settings.get("limit"):
        parts += ["--limit", str(settings["limit"])]
    if settings.get("apply_chat_template"):
        parts += ["--apply_chat_template"]
    return " ".join(parts)
