"""OpenAI-compatible chat backend: bounded concurrency, replicas, retries with jittered backoff.

Used directly for any endpoint (OpenAI, a vLLM or `transformers serve` server, a proxy) and by the
vllm backend once its server is up. The API key is read from the environment at call time and kept
only in the client object: it is never part of a fingerprint, a config dump or a log line.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.models.base import Completion, Conversation, GenerationParams, stable_hash

# Status codes worth another try: rate limits, server errors, and gateway timeouts.
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class MalformedResponse(Exception):
    """A 200 reply without usable text (no choices, null content, unparseable body)."""


@dataclass
class RequestSettings:
    """What a request loop needs; built from a model spec, never from a dumped config."""

    model: str
    base_urls: list[str]
    api_key: str
    max_concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0


def api_key_from_env(var: str | None, model_name: str) -> str:
    if var is None:
        return "EMPTY"  # local servers accept any key; the client requires a non-empty one
    key = os.environ.get(var)
    if not key:
        raise ConfigError(f"model '{model_name}': api_key_env names ${var}, which is not set: export it")
    return key


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class OpenAIBackend:
    def __init__(self, spec, settings: RequestSettings | None = None):
        self.spec = spec
        self.settings = settings or RequestSettings(
            model=spec.model,
            base_urls=[spec.base_url] if isinstance(spec.base_url, str) else list(spec.base_url),
            api_key=api_key_from_env(spec.api_key_env, spec.name),
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
        )
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        # Enough per call to keep every slot busy; each chunk is one committed resume point.
        self.chunk_size = self.settings.max_concurrency * 4

    def fingerprint(self) -> str:
        # Replicas and keys do not change what is generated; the served model and its revision do.
        return stable_hash(
            {"kind": "openai", "model": self.spec.model, "revision": getattr(self.spec, "revision", "")}
        )

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        return asyncio.run(self.agenerate(conversations, params))

    async def agenerate(
        self, conversations: list[Conversation], params: GenerationParams
    ) -> list[Completion]:
        import openai

        s = self.settings
        # max_retries=0: retries are ours, so they are counted, jittered and spread over replicas.
        clients = [
            openai.AsyncOpenAI(base_url=url, api_key=s.api_key, max_retries=0, timeout=s.timeout_s)
            for url in s.base_urls
        ]
        replicas = itertools.cycle(clients)
        gate = asyncio.Semaphore(s.max_concurrency)

        async def one(conv: Conversation) -> Completion:
            async with gate:
                return await self._request_with_retries(replicas, conv, params)

        try:
            return list(await asyncio.gather(*(one(c) for c in conversations)))
        finally:
            for client in clients:
                await client.close()

    async def _request_with_retries(self, replicas, conv: Conversation, params: GenerationParams):
        import openai

        s = self.settings
        last_error = ""
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
                delay = min(s.backoff_cap_s, s.backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            self.stats["requests"] += 1
            try:
                return await self._request(next(replicas), conv, params)
            except openai.APIStatusError as exc:
                last_error = f"HTTP {exc.status_code}: {str(exc)[:200]}"
                if exc.status_code not in RETRY_STATUS:
                    break  # a 400/401/404 will not get better by asking again
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if _being_cancelled():  # Ctrl-C cancels our tasks; the client reports it as a
                    raise asyncio.CancelledError from exc  # connection error, which is not to retry
                last_error = f"{type(exc).__name__}: {exc}"
            except (MalformedResponse, openai.APIResponseValidationError, ValueError) as exc:
                last_error = f"malformed response: {str(exc)[:200]}"
        self.stats["failures"] += 1
        return Completion(text="", finish_reason="error", error=last_error)

    async def _request(self, client, conv: Conversation, params: GenerationParams) -> Completion:
        started = time.perf_counter()
        response = await client.chat.completions.create(
            model=self.settings.model,
            messages=[{"role": m.role, "content": m.content} for m in conv],
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop) or None,
        )
        choices = getattr(response, "choices", None)
        if not choices or choices[0].message is None or choices[0].message.content is None:
            raise MalformedResponse(f"no message content in {str(response)[:120]!r}")
        usage = getattr(response, "usage", None)
        return Completion(
            text=choices[0].message.content.strip(),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            finish_reason=choices[0].finish_reason or "stop",
            latency_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        pass
