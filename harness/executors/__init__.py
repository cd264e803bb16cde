"""Executors: where a suite's model and judge calls run.

`local` (the default) runs every backend in this process. `ray` wraps each model's and judge's
backend in Ray actors spread over a cluster (harness/executors/ray_executor.py), runs a vllm
spec's `replicas` servers in a placement group (ray_replicas.py) and the closed-set groups in
actors (ray_closed.py): the runner, the pipeline, the cache keys and the single store writer stay
exactly as they are, because a wrapped backend is just another backend whose calls happen to run
on other nodes.

Nothing here imports Ray: `import harness` and `harness --help` stay fast, and a missing Ray is a
one-line error naming the extra to install, raised only when a suite asks for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from harness.errors import ConfigError, HarnessError, MissingExtraError


def require_ray():
    """The ray module, or a one-line MissingExtraError naming the `[ray]` extra."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray") from None
    return ray


def ray_backends(suite, address: str | None = None, *, models: Iterable[str] | None = None,
                 judges: Iterable[str] | None = None) -> tuple[dict, dict]:
    """(backends, judges) for the named models and judges of `suite` (default: all of them), each
    backed by Ray actors on the cluster at `address` (default: `suite.executor.address`). Connects
    to Ray when this process is not connected yet. Close each returned object when done: that kills
    its actors."""
    require_ray()
    from harness.executors.ray_executor import connect, wrap_suite

    connect(suite.executor.address if address is None else address)
    return wrap_suite(suite, models, judges)


@dataclass
class OnRay:
    """What harness.api.run uses on the cluster: the backends and judges of its stages (the given
    ones kept as they are) and, when it has closed-set tasks, harness.closed's `run_groups`."""

    backends: dict | None = None
    judges: dict | None = None
    run_groups: Callable | None = None


@contextmanager
def on_ray(suite, stages: Iterable[str], backends: dict | None = None,
           judges: dict | None = None) -> Iterator[OnRay]:
    """harness.api.run's Ray step: every model and judge the run's stages call wrapped in Ray
    actors, closed-set groups sent to actors. Joins the cluster only when something is to run there.
    On exit, even after an error or Ctrl-C, every actor (and vLLM server) made here is stopped and
    a Ray connection opened here is closed."""
    stages = set(stages)
    models = [m.name for m in suite.models if "generate" in stages and m.name not in (backends or {})]
    judged = [j.name for j in suite.judges if "judge" in stages and j.name not in (judges or {})]
    closed = bool(suite.closed_set) and "closed" in stages
    if not models and not judged and not closed:
        yield OnRay(backends, judges)
        return
    require_ray()
    from harness.executors.ray_executor import connect, disconnect, wrap_suite

    opened = connect(suite.executor.address)
    made_backends: dict = {}
    made_judges: dict = {}
    try:
        if models or judged:
            made_backends, made_judges = wrap_suite(suite, models, judged)
        run_groups = None
        if closed:
            from harness.executors.ray_closed import runner

            run_groups = runner(suite.executor)
        yield OnRay({**(backends or {}), **made_backends}, {**(judges or {}), **made_judges}, run_groups)
    finally:
        try:
            _close_all([*made_backends.values(), *made_judges.values()])
        finally:
            if opened:
                disconnect()


def _close_all(things: list) -> None:
    """Close each (one failing to close must not leave the others' actors and servers running)."""
    errors = []
    for thing in things:
        try:
            thing.close()
        except Exception as exc:  # noqa: BLE001 - raised below, after the rest are closed
            errors.append(exc)
    if errors:
        raise errors[0]


def check_kind(kind: str | None) -> None:
    """An `--executor` value is local, ray or not given."""
    if kind not in (None, "local", "ray"):
        raise HarnessError(f"--executor: '{kind}': use local or ray")


def with_executor(suite, kind: str | None = None, address: str | None = None):
    """`suite` with its executor overridden (`harness run --executor/--ray-address`, a worker's):
    an address alone implies kind ray."""
    check_kind(kind)
    if kind is None and address is None:
        return suite
    update = {"kind": kind or "ray"} | ({"address": address} if address else {})
    return suite.model_copy(update={"executor": suite.executor.model_copy(update=update)})


def check_executor(suite, source: str) -> None:
    """What needs Ray is refused on the local executor, and what the Ray executor cannot place yet
    on it, before anything is written."""
    if suite.executor.kind == "ray":
        for judge in suite.judges:
            # A panel's members, a DPO reference and a reward model's scoring would each need actors of
            # their own: not built yet (harness/executors/ray_executor.py wraps one backend per judge).
            if judge.style in ("panel", "reward", "dpo_reward"):
                raise ConfigError(f"{source}: judge '{judge.name}': style: {judge.style} runs on the local executor"
                                  " only: use executor: {kind: local} (or drop --executor ray) for this suite")
        return
    for spec in [*suite.models, *(j.model for j in suite.judges)]:
        if getattr(spec, "replicas", 1) > 1:
            raise ConfigError(f"{source}: model '{spec.name}': replicas: {spec.replicas} needs the Ray executor"
                              " (executor: {kind: ray} or --executor ray); on one machine use data_parallel_size")
