"""A small HTTP proxy on 127.0.0.1 that forwards to a real server and breaks some replies.

Each request draws from a seeded RNG: with probability `rate` it gets one fault, cycling through
429 (with Retry-After), 500, a garbage 200 body, a truncated JSON body, and a hang past the
client's timeout. `always_fail(body)` forces faults for chosen requests. Counts are kept per fault.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from http.server import ThreadingHTTPServer

import httpx

from tests.stub_server import JSONHandler

FAULTS = ("429", "500", "garbage", "truncated", "hang")


class FaultProxy:
    def __init__(self, upstream: str, rate: float = 0.2, seed: int = 0, hang_s: float = 8.0,
                 always_fail=None):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:8000 (no /v1)
        self.rate, self.hang_s = rate, hang_s
        self.always_fail = always_fail or (lambda body: False)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.next_fault = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _choose(self, body: bytes) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            forced = self.always_fail(body)
            if not forced and self.rng.random() >= self.rate:
                return None
            fault = FAULTS[self.next_fault % len(FAULTS)]
            self.next_fault += 1
            self.counts[fault] += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                reply = httpx.get(proxy.upstream + self.path, timeout=30)
                self._send(reply.status_code, reply.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._choose(body)
                if self.send_fault(fault, proxy.hang_s):
                    return None
                reply = httpx.post(proxy.upstream + self.path, content=body, timeout=300,
                                   headers={"Content-Type": "application/json"})
                content = reply.content[: len(reply.content) // 2] if fault == "truncated" else reply.content
                return self._send(reply.status_code, content)

        return Handler
