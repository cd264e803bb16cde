"""A small client of the service (httpx), used by `harness submit/jobs/job/cancel` and the app.

    from harness.service.client import Client
    client = Client("http://127.0.0.1:8008")            # token from $HARNESS_TOKEN
    job = client.submit_suite("my-suite.yaml")           # a file is sent as text, a name as a name
    final = client.wait(job, on_event=print)             # follows the event stream
    board = client.leaderboard("my-suite")

An error answer (4xx/5xx) raises ServiceError with the service's one line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx

from harness.errors import HarnessError

DEFAULT_SERVER = "http://127.0.0.1:8008"
FINAL = ("finished", "failed", "cancelled")


class ServiceError(HarnessError):
    """The service refused a request; the message is its one line."""

    def __init__(self, status: int, line: str):
        super().__init__(line)
        self.status = status


class Client:
    def __init__(self, server: str | None = None, token: str | None = None, timeout_s: float = 60.0):
        self.server = (server or os.environ.get("HARNESS_SERVER") or DEFAULT_SERVER).rstrip("/")
        token = token if token is not None else os.environ.get("HARNESS_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(0, f"{self.server}: cannot reach the service ({type(exc).__name__}): start it with "
                                  "`harness serve`, or pass --server") from None
        if response.status_code >= 400:
            try:
                line = response.json()["detail"]
            except (ValueError, KeyError, TypeError):
                line = response.text.strip().splitlines()[0] if response.text.strip() else response.reason_phrase
            raise ServiceError(response.status_code, str(line))
        return response

    # --- jobs --------------------------------------------------------------------------------------
    def submit(self, **request) -> str:
        """POST /v1/jobs with the fields of harness.service.submission.SubmitRequest; returns the id."""
        return self._call("POST", "/v1/jobs", json=request).json()["id"]

    def submit_suite(self, suite: str | Path, kind: str = "run", **fields) -> str:
        """A suite file is sent as its text (error lines name it as given); anything else as a name."""
        path = Path(suite)
        if path.is_file():
            return self.submit(kind=kind, suite=path.read_text(), filename=str(suite), **fields)
        return self.submit(kind=kind, suite_name=str(suite), **fields)

    def jobs(self, **filters) -> list[dict]:
        return self._call("GET", "/v1/jobs", params={k: v for k, v in filters.items() if v is not None}).json()

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel").json()

    def events(self, job_id: str, after: int = 0, reconnect_s: float = 60.0) -> Iterator[dict]:
        """Every event after `after`, live, until the job ends. A dropped stream (the service
        restarting) is resumed after the last event seen, for up to `reconnect_s` of failures."""
        failing_since = None
        while True:
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", params={"after": after},
                                      timeout=httpx.Timeout(self.http.timeout.connect, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise(response)
                    failing_since = None
                    for event in parse_sse(response.iter_lines()):
                        after = event["seq"]
                        yield event
                        if event["kind"] == "state" and event["state"] in FINAL:
                            return
            except httpx.TransportError as exc:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > reconnect_s:
                    raise ServiceError(0, f"{self.server}: lost the event stream ({type(exc).__name__}) for"
                                          f" {reconnect_s:.0f} s: is the service running?") from None
                time.sleep(0.5)  # back off while the service restarts
                continue
            if self.job(job_id)["state"] in FINAL:
                return  # ended before `after`: every event was seen already

    def _raise(self, response: httpx.Response) -> None:
        try:
            line = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            line = response.reason_phrase
        raise ServiceError(response.status_code, str(line))

    def wait(self, job_id: str, on_event: Callable[[dict], None] | None = None) -> dict:
        """Follow the job's events until it ends; returns the job as GET /v1/jobs/ID shows it then."""
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return self.job(job_id)

    # --- results -----------------------------------------------------------------------------------
    def leaderboard(self, suite: str, **filters) -> dict:
        return self._call("GET", "/v1/leaderboard", params={"suite": suite, **filters}).json()

    def leaderboard_csv(self, suite: str, **filters) -> str:
        return self._call("GET", "/v1/leaderboard", params={"suite": suite, "format": "csv", **filters}).text


def parse_sse(lines: Iterator[str]) -> Iterator[dict]:
    """The `data:` JSON of each Server-Sent Event (comments and other fields skipped)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield json.loads("\n".join(data))
