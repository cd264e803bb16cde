"""The Ray executor: every model's and judge's backend runs in Ray actors across a cluster.

Each backend gets N actors (default: one per alive node that has the requested resources, each
placed on its node). Every actor creates the real backend from the spec on its own node: an
in-process hf model or an OpenAI-compatible client. (A vllm spec runs `replicas` servers placed by
a placement group instead: harness/executors/ray_replicas.py.) In this process a `RayBackend`
stands in for the real one, so the runner, the pipeline and the judges see a plain backend:

- `fingerprint()` is the real backend's (checked equal on every node), so answer and judgment
  keys, hence the store, are those of a local run, and a rerun finds everything cached;
- `generate(chunk)` splits the chunk over the actors and gathers the parts in order;
- for kinds that stream (API endpoints), `acomplete` sends each call to the least busy actor and
  awaits its ObjectRef, so `max_concurrency` calls stay in flight across the cluster and each
  result is handed to the store's writer as soon as it is back.

Only this process writes the store (harness/store/writer.py); actors return completions.

Faults: actors have `max_restarts` and their calls `max_task_retries`. When an actor's process or
node dies, Ray retries its calls, restarts it (elsewhere when its node is gone: its placement is
soft), and a call still cut off is sent to another actor here (Ray takes seconds to notice a dead
node, so waiting for the restart alone would let calls fail meanwhile). A call that fails on every
attempt, or whose backend code raised, comes back as `Completion(error=...)`: a failure row the
next run retries, never an endless retry. Content keys make a retried call's row the same row,
so nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from functools import cache

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from harness.config import ExecutorSpec, Suite, VLLMModelSpec
from harness.errors import BackendError, ConfigError, HarnessError
from harness.models.base import Completion, Conversation, GenerationParams
from harness.models.openai_backend import endpoint_gate, one_line
from harness.models.registry import get_entry, load_attr
from harness.redact import register_secret

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOST_FOR_S = 10.0  # an actor that just lost a call gets new calls only when no other can take them


# --- the cluster -------------------------------------------------------------------------------------
def connect(address: str | None) -> bool:
    """Join the Ray cluster at `address`; True when this call opened the connection (the caller
    closes it with `disconnect`). A process already connected keeps its connection."""
    if ray.is_initialized():
        return False
    if address and address not in ("auto", "local"):
        _check_reachable(address)
    try:
        # log_to_driver off: the actors' logs stay in the cluster's log files, not in the CLI's tables
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except Exception as exc:
        raise BackendError(f"ray: cannot join the cluster at {address or 'auto'}: {_reason(exc)}"
                           " (executor.address / --ray-address)") from None
    return True


def disconnect() -> None:
    ray.shutdown()


def _check_reachable(address: str) -> None:
    """A closed port is one clear line now, instead of ray.init retrying for a minute."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"executor.address: '{address}' is not host:port (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise BackendError(f"ray: no cluster at {address} ({why}): start one with `ray start --head --port {port}`,"
                           " or fix executor.address / --ray-address") from None


def _reason(exc: BaseException) -> str:
    """An actor's or a call's failure as one line: the backend's own exception when there is one,
    else the last line of Ray's message (which holds the creation error or the death cause)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, ray.exceptions.RayError):
        return one_line(f"{type(cause).__name__}: {cause}")
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return one_line(f"{type(exc).__name__}: {lines[-1] if lines else exc}")


def _placements(executor: ExecutorSpec, what: str) -> list[dict]:
    """Ray options of each actor of one backend: one per fitting node (soft node affinity), or
    `executor.actors` spread over the fitting nodes."""
    wanted = {"CPU": executor.num_cpus, **executor.resources}
    custom = {k: v for k, v in wanted.items() if k not in ("CPU", "GPU")}
    base = {"num_cpus": wanted["CPU"], "num_gpus": wanted.get("GPU", 0), "resources": custom}
    alive = [n for n in ray.nodes() if n.get("Alive")]
    fitting = [n for n in alive if all(n["Resources"].get(k, 0) >= v for k, v in wanted.items() if v)]
    if not fitting:
        have = "; ".join(_text(n["Resources"]) for n in alive) or "none alive"
        raise HarnessError(f"{what}: no alive node of the Ray cluster has {_text(wanted)} (nodes: {have}): lower"
                           " executor.resources / num_cpus, or start nodes with them (ray start --resources)")
    if executor.actors:
        return [dict(base, scheduling_strategy="SPREAD") for _ in range(executor.actors)]
    # soft: Ray places the actor on its node while that node lives, and a restart goes elsewhere.
    # (An actor asking for zero resources ignores node affinity, hence num_cpus' small default.)
    return [dict(base, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=True)) for n in fitting]


def _text(resources: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items())
                     if not k.startswith(("node:", "memory", "object_store")))


def _forwarded_env(spec) -> dict[str, str]:
    """The API key a spec names, from this process's environment, so actors on other nodes can
    call the endpoint too. It travels in the actor's runtime_env (visible to the cluster's users)."""
    var = getattr(spec, "api_key_env", None)
    value = os.environ.get(var) if var else None
    if not value:
        return {}
    register_secret(value)
    return {var: value}


# --- the actors ----------------------------------------------------------------------------------------
class _Host:
    """Hosts one real backend on its node; calls run one at a time (in-process models, servers)."""

    def __init__(self, spec, factory):
        self.backend = load_attr(factory)(spec)

    def info(self) -> dict:
        return _info(self.backend)

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        return self.backend.generate(conversations, params)

    def score_choices(self, conversations: list[Conversation], choices: tuple[str, ...]) -> list[list[float]]:
        return self.backend.score_choices(conversations, choices)

    def close(self) -> None:
        self.backend.close()


class _StreamingHost:
    """Hosts a streaming backend (an API client) in the actor's event loop: many calls at once."""

    def __init__(self, spec, factory):
        self.backend = load_attr(factory)(spec)

    async def info(self) -> dict:
        return _info(self.backend)

    async def acomplete(self, conversation: Conversation, params: GenerationParams) -> Completion:
        return await self.backend.acomplete(conversation, params)

    async def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        return list(await asyncio.gather(*(self.backend.acomplete(c, params) for c in conversations)))

    async def close(self) -> None:
        await self.backend.aclose()
        self.backend.close()


def _info(backend) -> dict:
    return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "fingerprint": backend.fingerprint(), "chunk_size": getattr(backend, "chunk_size", 16),
            "max_concurrency": getattr(backend, "max_concurrency", 1)}


@cache
def _actor_class(streaming: bool):
    return ray.remote(_StreamingHost if streaming else _Host)


# --- the stand-ins ---------------------------------------------------------------------------------------
class RayBackend:
    """A backend whose calls run in Ray actors (see the module docstring)."""

    def __init__(self, what: str, actors: list, infos: list[dict], attempts: int = 4):
        self.what, self.actors, self.infos = what, actors, infos
        self._fingerprint = infos[0]["fingerprint"]
        # a full chunk for every actor per call: each call's results are committed together
        self.chunk_size = infos[0]["chunk_size"] * len(actors)
        self.attempts = attempts  # per call, each on another actor where there is one
        self.resent = 0  # calls sent again because an actor's process or node was lost
        self._busy = [0] * len(actors)
        self._lost_at = [float("-inf")] * len(actors)

    def fingerprint(self) -> str:
        return self._fingerprint

    def nodes(self) -> list[str]:
        """The node each actor runs on now (asked of the actors: after a restart, the new node)."""
        return [info["node_id"] for info in ray.get([a.info.remote() for a in self.actors])]

    def _pick(self, tried: set[int]) -> int:
        """The actor for a call: one it has not tried, then one that lost no call lately (Ray takes
        seconds to notice a dead node and restart its actors elsewhere), then the least busy."""
        now = time.monotonic()
        return min(range(len(self.actors)),
                   key=lambda i: (i in tried, now - self._lost_at[i] < LOST_FOR_S, self._busy[i], i))

    def _next(self, attempt: int, tried: set[int]) -> tuple[int, float]:
        """(actor, seconds to back off first) for attempt n > 0 of a call: a restart needs time
        when every actor has been tried."""
        i = self._pick(tried)
        self.resent += 1
        return i, (min(4.0, 0.5 * 2 ** attempt) if i in tried else 0.0)

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        parts = _split(list(conversations), len(self.actors))
        sent = [(i, part, self.actors[i].generate.remote(part, params)) for i, part in enumerate(parts) if part]
        return [c for i, part, ref in sent for c in self._settle(i, part, ref, params)]

    def _settle(self, i: int, part: list, ref, params: GenerationParams) -> list[Completion]:
        tried: set[int] = set()
        for attempt in range(self.attempts):
            if attempt:
                i, wait = self._next(attempt, tried)
                time.sleep(wait)
                ref = self.actors[i].generate.remote(part, params)
            tried.add(i)
            try:
                return ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # its process or node is gone (Ray retried already)
                self._lost_at[i], last = time.monotonic(), exc
            except ray.exceptions.RayError as exc:  # the backend's own exception: asking again will not help
                return [self._failed(exc)] * len(part)
        return [self._failed(last)] * len(part)  # a failure row each, retried by the next run

    def _failed(self, exc: BaseException) -> Completion:
        return Completion(text="", finish_reason="error", error=f"ray: {_reason(exc)}")

    def close(self) -> None:
        actors, self.actors = self.actors, []
        _kill(actors)


class RayStreamingBackend(RayBackend):
    """For kinds that stream (StreamingBackend): one call at a time to the least busy actor."""

    def __init__(self, what: str, actors: list, infos: list[dict], attempts: int, spec):
        super().__init__(what, actors, infos, attempts)
        self.max_concurrency = infos[0]["max_concurrency"]
        base_url = getattr(spec, "base_url", None)
        # models and judges on one endpoint share its limit, as they do in a local run
        self._urls = [base_url] if isinstance(base_url, str) else list(base_url or [])

    async def acomplete(self, conversation: Conversation, params: GenerationParams) -> Completion:
        if not self._urls:
            return await self._route(conversation, params)
        async with endpoint_gate(self._urls, self.max_concurrency):
            return await self._route(conversation, params)

    async def _route(self, conversation: Conversation, params: GenerationParams) -> Completion:
        tried: set[int] = set()
        i = self._pick(tried)
        for attempt in range(self.attempts):
            if attempt:
                i, wait = self._next(attempt, tried)
                await asyncio.sleep(wait)
            tried.add(i)
            self._busy[i] += 1
            ref = self.actors[i].acomplete.remote(conversation, params)
            try:
                return await ref
            except asyncio.CancelledError:  # Ctrl-C: stop the call on its node too
                ray.cancel(ref)
                raise
            except ray.exceptions.RayActorError as exc:  # its process or node is gone (Ray retried already)
                self._lost_at[i], last = time.monotonic(), exc
            except ray.exceptions.RayError as exc:  # the backend's own exception: asking again will not help
                return self._failed(exc)
            finally:
                self._busy[i] -= 1
        return self._failed(last)  # a failure row, retried by the next run

    async def aclose(self) -> None:
        """Nothing to release in this event loop: the clients live in the actors (close kills them)."""


class _Scores:
    """Likelihood scoring split over the actors like `generate`; a failure raises (no failure rows here)."""

    def score_choices(self, conversations: list[Conversation], choices: tuple[str, ...]) -> list[list[float]]:
        parts = _split(list(conversations), len(self.actors))
        refs = [actor.score_choices.remote(part, choices) for actor, part in zip(self.actors, parts) if part]
        try:
            return [row for part in ray.get(refs) for row in part]
        except ray.exceptions.RayError as exc:
            raise BackendError(f"{self.what}: scoring choices failed in a Ray actor: {_reason(exc)}") from None


class RayScoringBackend(_Scores, RayBackend):
    """For kinds that can score choices (hf): a likelihood judge runs on the cluster too."""


def _kill(actors: list) -> None:
    """Let each real backend release what it holds (a vLLM server, a model), then kill the actors."""
    if not actors:
        return
    try:
        ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=10)
    except Exception:  # noqa: BLE001 - a dead actor has nothing left to release
        pass
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _split(items: list, n: int) -> list[list]:
    """`items` in n contiguous parts whose sizes differ by at most one (order kept for gathering)."""
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        parts.append(items[start:end])
        start = end
    return parts


# --- a suite's backends and judges -----------------------------------------------------------------------
@dataclass
class _Starting:
    what: str
    spec: object
    streaming: bool
    scores: bool
    actors: list
    attempts: int

    def ready(self) -> RayBackend:
        return _ready(self)

    def abort(self) -> None:
        _kill(self.actors)


def _start(spec, executor: ExecutorSpec, what: str):
    """The actors of one backend, asked for (a _Starting, or a vllm spec's replicas); `.ready()`
    waits for them, `.abort()` stops them."""
    entry = get_entry(spec.backend)
    if entry is None:
        raise ConfigError(f"{what}: unknown backend '{spec.backend}'")
    if isinstance(spec, VLLMModelSpec):  # `replicas` servers in a placement group, not one actor per node
        from harness.executors.ray_replicas import Starting

        return Starting(what, spec, entry.factory, executor)
    streaming = entry.capabilities.streaming
    env = _forwarded_env(spec)
    actors = []
    token = uuid.uuid4().hex[:8]
    for i, options in enumerate(_placements(executor, what)):
        # named for `ray list actors` and the GCS actor table (tests/test_ray.py reads their nodes there)
        options.update(name=f"harness {what} #{i} {token}", max_restarts=executor.max_restarts,
                       max_task_retries=executor.max_task_retries)
        if env:
            options["runtime_env"] = {"env_vars": env}
        actors.append(_actor_class(streaming).options(**options).remote(spec, entry.factory))
    return _Starting(what, spec, streaming, entry.capabilities.score_choices, actors, executor.max_task_retries + 1)


def _ready(starting: _Starting) -> RayBackend:
    s = starting
    try:
        infos = ray.get([a.info.remote() for a in s.actors])
    except ray.exceptions.RayError as exc:  # the caller kills every actor it started
        raise BackendError(f"{s.what}: its backend failed to start in a Ray actor: {_reason(exc)}") from None
    prints = sorted({info["fingerprint"] for info in infos})
    if len(prints) > 1:  # different weights or settings on some node: its answers would not be interchangeable
        raise BackendError(f"{s.what}: the Ray nodes disagree on its fingerprint ({', '.join(p[:12] for p in prints)}):"
                           " give every node the same weights and settings")
    if s.streaming:
        return RayStreamingBackend(s.what, s.actors, infos, s.attempts, s.spec)
    return (RayScoringBackend if s.scores else RayBackend)(s.what, s.actors, infos, s.attempts)


def wrap_suite(suite: Suite, models=None, judges=None) -> tuple[dict, dict]:
    """(model name -> RayBackend, judge name -> LLMJudge on a RayBackend) for the named models and
    judges (None: all). Every actor is started first and then waited for, so they start in parallel."""
    want_models = None if models is None else set(models)
    want_judges = None if judges is None else set(judges)
    model_specs = [m for m in suite.models if want_models is None or m.name in want_models]
    judge_specs = [j for j in suite.judges if want_judges is None or j.name in want_judges]
    starting: list = []
    done: list = []
    try:
        for spec in model_specs:
            starting.append(_start(spec, suite.executor, f"model '{spec.name}'"))
        for spec in judge_specs:
            starting.append(_start(spec.model, suite.executor, f"judge '{spec.name}'"))
        for s in list(starting):
            done.append(s.ready())
            starting.remove(s)
    except BaseException:
        for backend in done:
            backend.close()
        for s in starting:
            s.abort()
        raise
    backends = {spec.name: b for spec, b in zip(model_specs, done)}
    wrapped = {spec.name: spec.judge_on(b) for spec, b in zip(judge_specs, done[len(model_specs):])}
    return backends, wrapped
