"""OpenAI-compatible chat backend: bounded concurrency, replicas, retries with jittered backoff.

Used directly for any endpoint (OpenAI, a vLLM or `transformers serve` server, a proxy) and by the
vllm backend once its server is up. The API key is read from the environment at call time and kept
only in the client object: it is never part of a fingerprint, a config dump or a log line. Every
error text made here names the replica that failed, is one short line, and goes through
`harness.redact.redact`, so a server that echoes the key back cannot put it into a stored row.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

from harness.errors import ConfigError
from harness.models.base import Completion, Conversation, GenerationParams, stable_hash
from harness.redact import redact, register_secret

# Status codes worth another try: rate limits, server errors, and gateway timeouts.
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_ERROR_CHARS = 300  # a stored error text: enough for a server's message, never a whole page


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
    register_secret(key)  # from now on redact() masks it, whatever the variable is called
    return key


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` redacted, on one line, at most `limit` characters. Redacted before it is cut, so a
    cut can never leave part of a key unmasked."""
    text = " ".join((redact(text) or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from (bounded: exception chains can loop)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def status_error_text(url: str, exc) -> str:
    """An HTTP error reply as one line naming the URL asked; a 404 on a base_url without /v1 says so."""
    request = getattr(exc, "request", None)
    asked = str(request.url) if request is not None else url
    code = exc.status_code
    base = url.rstrip("/")
    if code == 404 and not base.endswith("/v1"):
        return one_line(f"HTTP 404 from {asked}: base_url usually ends in /v1 (try {base}/v1)")
    response = getattr(exc, "response", None)
    body = response.text if response is not None else str(exc)
    return one_line(f"HTTP {code} from {asked}: {body.strip() or 'empty body'}")


def connection_error_text(url: str, exc, timeout_s: float) -> str:
    """A request that got no HTTP reply, as one line naming the replica."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return one_line(f"{url}: no reply within {timeout_s:g} s (timeout_s)")
    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower() for e in chain):
        return one_line(f"{url}: connection refused (is the server running?)")
    cause = next((e for e in reversed(chain) if str(e)), exc)
    return one_line(f"{url}: cannot connect ({type(cause).__name__}: {cause}): check the host and port")


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@dataclass
class _Session:
    """What requests need inside one event loop: clients per replica and the endpoint's gate."""

    loop: asyncio.AbstractEventLoop
    clients: list
    replicas: Iterator
    gate: asyncio.Semaphore


_GATES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Semaphore]]" = \
    weakref.WeakKeyDictionary()


def endpoint_gate(base_urls: list[str], limit: int) -> asyncio.Semaphore:
    """The running loop's semaphore for these replicas: models (and judges) that share a base_url share
    its limit, set by the first of them to send a request."""
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    key = tuple(sorted(u.rstrip("/") for u in base_urls))
    if key not in gates:
        gates[key] = asyncio.Semaphore(limit)
    return gates[key]


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
        if not self.settings.base_urls:
            raise ConfigError(f"model '{getattr(spec, 'name', spec)}': base_url is an empty list:"
                              " give the endpoint URL (e.g. http://127.0.0.1:8000/v1) or a list of replicas")
        register_secret(self.settings.api_key)
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        self._loop_session: _Session | None = None
        # Enough per call to keep every slot busy; each chunk is one committed resume point.
        self.chunk_size = self.settings.max_concurrency * 4

    def fingerprint(self) -> str:
        # Replicas and keys do not change what is generated; the served model and its revision do.
        return stable_hash(
            {"kind": "openai", "model": self.spec.model, "revision": getattr(self.spec, "revision", "")}
        )

    @property
    def max_concurrency(self) -> int:
        return self.settings.max_concurrency

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        return asyncio.run(self.agenerate(conversations, params))

    async def agenerate(
        self, conversations: list[Conversation], params: GenerationParams
    ) -> list[Completion]:
        try:
            return list(await asyncio.gather(*(self.acomplete(c, params) for c in conversations)))
        finally:
            await self.aclose()

    async def acomplete(self, conversation: Conversation, params: GenerationParams) -> Completion:
        """One request in the running event loop. Its HTTP clients are made once per loop, and its
        gate is shared with every other backend on the same endpoint (`endpoint_gate`)."""
        session = self._session()
        async with session.gate:
            return await self._request_with_retries(session.replicas, conversation, params)

    async def aclose(self) -> None:
        session, self._loop_session = self._loop_session, None
        if session is not None:
            for _, client in session.clients:
                await client.close()

    def _session(self) -> "_Session":
        loop = asyncio.get_running_loop()
        if self._loop_session is None or self._loop_session.loop is not loop:
            import openai

            s = self.settings
            # max_retries=0: retries are ours, so they are counted, jittered and spread over replicas.
            clients = [(url, openai.AsyncOpenAI(base_url=url, api_key=s.api_key, max_retries=0,
                                                timeout=s.timeout_s)) for url in s.base_urls]
            self._loop_session = _Session(loop, clients, itertools.cycle(clients),  # (url, client): errors
                                          endpoint_gate(s.base_urls, s.max_concurrency))  # name the replica
        return self._loop_session

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
            url, client = next(replicas)
            try:
                return await self._request(client, conv, params)
            except openai.APIStatusError as exc:
                last_error = status_error_text(url, exc)
                if exc.status_code not in RETRY_STATUS:
                    break  # a 400/401/404 will not get better by asking again
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if _being_cancelled():  # Ctrl-C cancels our tasks; the client reports it as a
                    raise asyncio.CancelledError from exc  # connection error, which is not to retry
                last_error = connection_error_text(url, exc, s.timeout_s)
            except (MalformedResponse, openai.APIResponseValidationError, ValueError) as exc:
                last_error = one_line(f"{url}: malformed response: {exc}")
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
