"""The evaluation service: an HTTP API over the store's job queue, worker processes, tokens, a client.

    harness tokens create alice --db team.duckdb          # prints a token once
    harness serve --db team.duckdb --workers 2 --data-root /data/suites
    HARNESS_TOKEN=... harness submit my-suite.yaml --wait

Modules: `app` (FastAPI endpoints), `worker` (claims and runs jobs through harness.api),
`security` (tokens, data roots, size limits, suite text), `submission` (a job checked before it is
queued), `serve` (uvicorn plus supervised workers), `client` (httpx). FastAPI, uvicorn and httpx
(the `service` extra) are imported by those modules only, never by `import harness`.
"""

from __future__ import annotations

from importlib.util import find_spec

from harness.errors import MissingExtraError


def require_service_extra() -> None:
    """MissingExtraError naming the pip command when fastapi or uvicorn is not installed."""
    for package in ("fastapi", "uvicorn", "httpx"):
        if find_spec(package) is None:
            raise MissingExtraError("service", package)
