"""A fast OpenAI-compatible stub endpoint for benchmarks (aiohttp, one process, loopback only).

It answers exactly as the tests' stub does (tests/stub_server.py `reply_text`: deterministic
candidate answers; the harness's judge prompts get verdict lines with the tag they carry), after
`--latency-ms` of asyncio.sleep, so any number of requests overlap the way they would on a real
server. Unlike the tests' threaded server it is cheap per request, so a benchmark measures the
client, not the stub.

Routes:
  POST /v1/chat/completions   the reply (model, messages; everything else is ignored)
  GET  /v1/models             one model, "stub"
  GET  /stats                 counts, completion times (s since the last reset), per-second
                              histogram, peak and mean requests in flight, calls served twice,
                              the stub's own CPU seconds
  POST /reset                 zero all of the above (between benchmark phases)

Run:  python bench/stub_endpoint.py --port 0 --latency-ms 20
With --port 0 it picks a free port; either way its first stdout line is `listening on URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.stub_server import MODELS_JSON, call_key, completion_json, reply_text  # noqa: E402


class Stats:
    """What the benchmark reads back: when each call finished, and how many were in flight."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0, self.cpu0 = time.monotonic(), time.process_time()
        self.counts: Counter[str] = Counter()
        self.done: list[float] = []        # completion times, seconds since reset, in order
        self.first_start: float | None = None
        self.in_flight = self.peak_in_flight = 0
        self.busy_s = 0.0                  # sum of request durations: busy_s / span = mean in flight
        self.served: Counter[str] = Counter()
        self.recorded: list[dict] = []     # the first requests of a phase, as sent (the same-request baseline)

    def started(self) -> float:
        now = time.monotonic() - self.t0
        if self.first_start is None:
            self.first_start = now
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return now

    def finished(self, started: float, kind: str, key: str | None) -> None:
        now = time.monotonic() - self.t0
        self.in_flight -= 1
        self.busy_s += now - started
        self.done.append(now)
        self.counts[f"served:{kind}"] += 1
        if key is not None:
            self.served[key] += 1

    def as_json(self) -> dict:
        span = (self.done[-1] - self.first_start) if self.done else 0.0
        histogram = Counter(int(t) for t in self.done)
        return {
            "counts": dict(self.counts), "served": len(self.done),
            "served_twice": sum(n - 1 for n in self.served.values() if n > 1),
            "first_start_s": self.first_start, "span_s": span,
            "cpu_s": time.process_time() - self.cpu0,  # near span_s: the stub, not the client, is the limit
            "peak_in_flight": self.peak_in_flight, "mean_in_flight": self.busy_s / span if span else 0.0,
            "done_s": [round(t, 4) for t in self.done],
            "per_second": [histogram.get(s, 0) for s in range(int(self.done[-1]) + 1)] if self.done else [],
        }


RECORD = 2000  # requests kept for GET /recorded (each phase's first ones)


def build_app(latency_s: float, track_keys: bool = True) -> web.Application:
    stats = Stats()

    async def chat(request: web.Request) -> web.Response:
        raw = await request.read()
        stats.counts["requests"] += 1
        started = stats.started()
        kind = "error"
        try:
            body = json.loads(raw)
            await asyncio.sleep(latency_s)  # the model "thinking": overlaps with every other request
            model = body.get("model", "")
            kind, text = reply_text(model, body["messages"])
            if len(stats.recorded) < RECORD:
                stats.recorded.append(body)
            key = call_key(body) if track_keys else None
            return web.Response(body=completion_json(model, text, len(raw)), content_type="application/json")
        except (ValueError, KeyError, TypeError) as exc:  # a bad request is the client's bug: say so
            key = None
            return web.json_response({"error": f"bad request: {exc!r}"}, status=400)
        finally:
            stats.finished(started, kind, key)

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=MODELS_JSON, content_type="application/json")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats.as_json())

    async def recorded(request: web.Request) -> web.Response:
        return web.json_response(stats.recorded)

    async def reset(request: web.Request) -> web.Response:
        stats.reset()
        return web.json_response({"reset": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)  # judge prompts of long answers are big
    app.add_routes([web.post("/v1/chat/completions", chat), web.get("/v1/models", models),
                    web.get("/stats", get_stats), web.get("/recorded", recorded), web.post("/reset", reset)])
    return app


async def serve(port: int, latency_s: float, track_keys: bool) -> None:
    runner = web.AppRunner(build_app(latency_s, track_keys), access_log=None)  # a log line per call is slow
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"listening on http://{host}:{bound}/v1", flush=True)
    try:
        await asyncio.Event().wait()  # until the process is terminated
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on the first line)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay before each reply")
    parser.add_argument("--no-keys", action="store_true", help="skip hashing requests (no served_twice count)")
    args = parser.parse_args()
    try:
        import uvloop  # optional: a cheaper event loop leaves more of a shared CPU to the client measured

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.port, args.latency_ms / 1000, not args.no_keys))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
