"""Executors: where a suite's model and judge calls run.

`local` (the default) runs every backend in this process. `ray` wraps each model's and judge's
backend in Ray actors spread over a cluster (harness/executors/ray_executor.py): the runner,
the pipeline, the cache keys and the single store writer stay exactly as they are, because a
wrapped backend is just another backend whose calls happen to run on other nodes.

Nothing here imports Ray: `import harness` and `harness --help` stay fast, and a missing Ray is a
one-line error naming the extra to install, raised only when a suite asks for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from harness.errors import MissingExtraError


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


@contextmanager
def on_ray(suite, stages: Iterable[str], backends: dict | None = None,
           judges: dict | None = None) -> Iterator[dict | None]:
    """harness.api.run's Ray step: yields {"backends": ..., "judges": ...} with every model and
    judge the run's stages call wrapped in Ray actors (the given ones kept as they are), or None
    when there is nothing to wrap. On exit, even after an error or Ctrl-C, every actor made here
    is killed and a Ray connection opened here is closed."""
    stages = set(stages)
    models = [m.name for m in suite.models if "generate" in stages and m.name not in (backends or {})]
    judged = [j.name for j in suite.judges if "judge" in stages and j.name not in (judges or {})]
    if not models and not judged:
        yield None
        return
    require_ray()
    from harness.executors.ray_executor import connect, disconnect, wrap_suite

    opened = connect(suite.executor.address)
    made_backends: dict = {}
    made_judges: dict = {}
    try:
        made_backends, made_judges = wrap_suite(suite, models, judged)
        yield {"backends": {**(backends or {}), **made_backends}, "judges": {**(judges or {}), **made_judges}}
    finally:
        for made in (*made_backends.values(), *made_judges.values()):
            made.close()
        if opened:
            disconnect()
