"""`replicas: N` of a vllm spec on a Ray cluster: N servers placed by one placement group.

One bundle per replica (the spec's `replica_resources`, strategy `placement`), one actor per
bundle. Each actor builds the spec's real backend on its node (its fingerprint, checked equal on
every node) and, on the first call of the run, launches that backend's own server (the command line
harness.models.vllm builds, one owner) on the node's address, so this process can reach it. In this
process `RayReplicas` stands in for the vllm backend: it waits until every server answers, then
sends requests over all of them through the openai backend (which spreads a list of base_urls), so
a rerun with everything cached starts no server at all.

Stopping: `close()` stops every server (SIGTERM to its process group, then SIGKILL, on its node),
then kills the actors and removes the placement group; harness.executors.on_ray calls it at the
end of a run, after an error and on Ctrl-C. Each actor polls its server in short calls, so a close
is never queued behind a start-up. Should an actor die anyway (its node, or a SIGKILLed driver),
its server gets SIGTERM from the kernel (`die_with_parent`).
"""

from __future__ import annotations

import os
import time
import uuid
from functools import cache

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from harness.errors import BackendError, HarnessError
from harness.executors.ray_executor import _reason, _text
from harness.models.base import Completion, Conversation, GenerationParams
from harness.models.registry import load_attr

PLACEMENT_WAIT_S = 120.0  # a placement group that fits no node's free resources by then is an error
STOP_WAIT_S = 60.0  # VLLMServer.stop: up to 20 s after SIGTERM, then 5 s after SIGKILL
POLL_S = 0.5


class _ServerHost:
    """One replica: the spec's backend on this node, and its server once launched."""

    def __init__(self, spec, factory):
        self.backend = load_attr(factory)(spec)  # resolves the weights here; starts nothing
        self.server = None

    def info(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
                "pid": os.getpid(), "fingerprint": self.backend.fingerprint()}

    def launch(self) -> str:
        if self.server is None:
            self.server = self.backend.new_server(host=ray.util.get_node_ip_address(), die_with_parent=True)
            self.server.launch()
        return self.server.base_url

    def ready(self) -> bool:
        return self.server.ready()

    def server_pid(self) -> int | None:
        """The server's process (group leader), for `ray list actors`-style checks in tests."""
        return self.server.process.pid if self.server is not None and self.server.process else None

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.backend.close()


@cache
def _host_class():
    return ray.remote(_ServerHost)


class Starting:
    """The placement group and actors of one spec, asked for and not waited on yet."""

    def __init__(self, what: str, spec, factory: str, executor):
        self.what, self.spec = what, spec
        bundle = dict(spec.replica_resources)
        self.bundles = [bundle] * spec.replicas
        _check_fits(what, bundle, spec.replicas, spec.placement)
        token = uuid.uuid4().hex[:8]
        self.group = placement_group(self.bundles, strategy=spec.placement, name=f"harness {what} {token}")
        self.actors = []
        for i in range(spec.replicas):
            # the actor holds its whole bundle: Ray then shows the server (its child) exactly the
            # bundle's GPUs (CUDA_VISIBLE_DEVICES), tensor_parallel_size of them with {GPU: N}
            strategy = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=i)
            custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU")}
            options = {"num_cpus": bundle.get("CPU", 0), "num_gpus": bundle.get("GPU", 0), "resources": custom,
                       "name": f"harness {what} replica #{i} {token}", "scheduling_strategy": strategy,
                       "max_restarts": 0}
            self.actors.append(_host_class().options(**options).remote(spec, factory))

    def ready(self) -> "RayReplicas":
        ready, _ = ray.wait([self.group.ready()], timeout=PLACEMENT_WAIT_S)
        if not ready:
            raise HarnessError(f"{self.what}: Ray could not place {len(self.bundles)} replica(s) of {_text(self.bundles[0])}"
                               f" ({self.spec.placement}) within {PLACEMENT_WAIT_S:.0f} s: free resources, lower"
                               " replicas / replica_resources, or add nodes")
        try:
            infos = ray.get([a.info.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            raise BackendError(f"{self.what}: a replica failed to start in its Ray actor: {_reason(exc)}") from None
        prints = sorted({info["fingerprint"] for info in infos})
        if len(prints) > 1:
            raise BackendError(f"{self.what}: the Ray nodes disagree on its fingerprint ({', '.join(p[:12] for p in prints)}):"
                               " give every node the same weights and settings")
        return RayReplicas(self.what, self.spec, self.group, self.actors, infos)

    def abort(self) -> None:
        _stop(self.actors, self.group)


class RayReplicas:
    """The vllm backend of a spec with replicas, for this process (see the module docstring)."""

    def __init__(self, what: str, spec, group, actors: list, infos: list[dict]):
        self.what, self.spec, self.group, self.actors, self.infos = what, spec, group, actors, infos
        self._fingerprint = infos[0]["fingerprint"]
        self.chunk_size = spec.max_concurrency * 4 * len(actors)  # every server busy per committed chunk
        self.base_urls: list[str] = []
        self._client = None

    def fingerprint(self) -> str:
        return self._fingerprint

    def nodes(self) -> list[str]:
        return [info["node_id"] for info in self.infos]

    def start(self) -> list[str]:
        """Launch every replica's server at once and wait until all answer; their base URLs."""
        if self._client is not None:
            return self.base_urls
        urls = self._ask([a.launch.remote() for a in self.actors], "could not launch its server")
        deadline = time.monotonic() + self.spec.startup_timeout_s
        waiting = list(range(len(self.actors)))
        while waiting:
            answers = self._ask([self.actors[i].ready.remote() for i in waiting], "server failed to start")
            waiting = [i for i, ok in zip(waiting, answers) if not ok]
            if waiting and time.monotonic() > deadline:
                raise BackendError(f"{self.what}: replica server(s) at {', '.join(urls[i] for i in waiting)} not ready"
                                   f" after {self.spec.startup_timeout_s:.0f} s (startup_timeout_s); logs under the"
                                   " harness cache's vllm/logs on their nodes")
            if waiting:
                time.sleep(POLL_S)  # polling a condition, bounded by the deadline
        from harness.models.vllm import served_client

        self.base_urls, self._client = urls, served_client(self.spec, urls)
        return urls

    def _ask(self, refs: list, doing: str) -> list:
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise BackendError(f"{self.what}: a replica {doing}: {_reason(exc)}") from None

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        self.start()
        return self._client.generate(conversations, params)

    def server_pids(self) -> list[int | None]:
        return ray.get([a.server_pid.remote() for a in self.actors])

    def close(self) -> None:
        actors, self.actors, self._client = self.actors, [], None
        _stop(actors, self.group)


def _stop(actors: list, group) -> None:
    """Stop every server on its node, then kill the actors and free the bundles."""
    try:
        if actors:
            ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=STOP_WAIT_S)
    finally:
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        try:
            remove_placement_group(group)
        except Exception:  # noqa: BLE001 - already removed, or the cluster is gone
            pass


def _check_fits(what: str, bundle: dict, replicas: int, strategy: str) -> None:
    """A bundle no alive node could ever hold (or too few nodes for STRICT_SPREAD) is one line now,
    not a placement group pending forever."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    fitting = [n for n in alive if all(n["Resources"].get(k, 0) >= v for k, v in bundle.items())]
    needed = replicas if strategy == "STRICT_SPREAD" else 1
    if len(fitting) < needed:
        have = "; ".join(_text(n["Resources"]) for n in alive) or "none alive"
        raise HarnessError(f"{what}: {needed} node(s) with {_text(bundle)} needed for {replicas} replica(s)"
                           f" ({strategy}), the Ray cluster has {len(fitting)} (nodes: {have}): lower"
                           " replica_resources, choose placement SPREAD, or start nodes with them")
