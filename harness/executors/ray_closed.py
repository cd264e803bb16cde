"""Closed-set tasks on a Ray cluster: each group of lm-eval units (one model and batch size, so one
model load or server) runs in its own Ray actor on a node, the groups spread over the fitting nodes
like the backends' actors (harness.executors.ray_executor._placements).

The plan, the cache check and the store stay in this process (harness.closed.run): only the lm-eval
calls move. An actor gets its units without lm-eval's task objects, loads them from the same task
folders (their paths must be the same on every node, as model folders must), runs
`evaluate_group`, and returns what lm-eval reported; this process stores each group's rows as it
arrives, under the same result keys as a local run.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from functools import cache
from typing import Callable, Iterator

import ray

from harness.closed.run import Evaluated, evaluate_group, load_units
from harness.errors import BackendError, HarnessError
from harness.executors.ray_executor import _kill, _placements, _reason


class _ClosedHost:
    def info(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def run(self, units: list) -> list[Evaluated]:
        load_units(units)  # lm-eval's task objects are made here, not shipped
        return [done for _, done in evaluate_group(units)]

    def close(self) -> None:
        """Nothing held between calls: evaluate_group closed its model and server."""


@cache
def _host_class():
    return ray.remote(_ClosedHost)


def runner(executor) -> Callable:
    """harness.closed.run_closed's `run_groups` for this cluster."""

    def run_groups(groups: list[list], servers: dict[str, str]) -> Iterator[tuple[object, Evaluated]]:
        del servers  # each actor starts its own vLLM server on its node: a local one is not reachable
        placements = _placements(executor, "closed-set tasks")
        token = uuid.uuid4().hex[:8]
        actors, pending = [], {}
        try:
            for i, group in enumerate(groups):
                spec = group[0].spec
                options = dict(placements[i % len(placements)], name=f"harness closed '{spec.name}' #{i} {token}",
                               max_restarts=executor.max_restarts, max_task_retries=executor.max_task_retries)
                actor = _host_class().options(**options).remote()
                actors.append(actor)
                pending[actor.run.remote([replace(u, loaded=None) for u in group])] = group
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(ref)
                yield from zip(group, _result(ref, group[0].spec.name))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            _kill(actors)

    return run_groups


def _result(ref, model: str) -> list[Evaluated]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HarnessError):  # the same one line a local run gives
            raise cause from None
        raise BackendError(f"closed set, model '{model}': failed in its Ray actor: {_reason(exc)}") from None
    except ray.exceptions.RayError as exc:
        raise BackendError(f"closed set, model '{model}': its Ray actor was lost: {_reason(exc)}") from None
