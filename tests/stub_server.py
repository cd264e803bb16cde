"""A local OpenAI-compatible server for tests: answers, judges, faults, hostile answers, echoes.

Real HTTP on 127.0.0.1 (a ThreadingHTTPServer in a thread of the test process), spoken to by the
real `openai` client, so everything between the harness and an endpoint is exercised. It plays both
roles a suite needs:

- a candidate model: a deterministic answer per (model, conversation), or `answer_for(model,
  messages)`'s text (hostile answers, lone surrogates, ...);
- a judge: it recognises the harness's prompts (tagged `VERDICT-<tag> <dimension>:` lines, a
  `SCORE-<tag>:` line, PandaLM's `### Evaluation:`) and answers in their format with the tag it was
  given. The verdict is `verdict_for(text_a, text_b)` (default: the longer conversation wins, equal
  is a tie, so both orders agree). `echo="before"` repeats both assistants' conversations before its
  verdict lines, `echo="only"` repeats them and gives no verdict of its own.

Faults: each request draws from a seeded RNG; with probability `fault_rate` it gets one fault,
cycling through `faults` (429 with Retry-After, 500, a garbage 200 body, truncated JSON, a hang past
the client's timeout, a dropped connection). `fail_when(body) -> status | None` fails chosen requests
with that status (the body echoes the request's Authorization header, as some 401 pages do).

Counters: `counts` (requests, each fault, answers, judgments) and `served`, successful replies per
request (model, messages, temperature, seed): a call made twice shows up as a count of 2.

The reply logic is module-level and pure (`reply_text`, `completion_json`, `call_key`), so the
benchmarks' aiohttp endpoint (bench/stub_endpoint.py) answers exactly as this server does.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULTS = ("429", "500", "garbage", "truncated", "hang", "drop")
_VERDICT_LINE = re.compile(r"^VERDICT-(\w+) ([a-z0-9_]+): <A, B or tie>$", re.MULTILINE)
_SCORE_LINE = re.compile(r"^SCORE-(\w+): <1-10>$", re.MULTILINE)
_BLOCK = re.compile(r"<<<CONVERSATION WITH ASSISTANT ([AB])>>>\n(.*?)\n<<<END \1>>>", re.DOTALL)
_PANDALM = re.compile(r"### Response 1:\n(.*?)\n\n### Response 2:\n(.*?)\n\n### Evaluation:", re.DOTALL)


def judged_turn(prompt: str) -> tuple[str, str, str, list[str]]:
    """(tag, A's answer to the judged turn, B's, the dimensions asked) of a harness pairwise judge
    prompt in the tagged style: what scripted judges decide from."""
    tag = re.search(r"VERDICT-(\w+) ", prompt).group(1)
    a = re.findall(r"\[Assistant A, turn \d+\]\n(.*?)\n<<<END A>>>", prompt, re.S)[-1]
    b = re.findall(r"\[Assistant B, turn \d+\]\n(.*?)\n<<<END B>>>", prompt, re.S)[-1]
    return tag, a, b, re.findall(rf"VERDICT-{tag} (\w+): <", prompt)


def longer_wins(text_a: str, text_b: str) -> str:
    return "A" if len(text_a) > len(text_b) else "B" if len(text_b) > len(text_a) else "tie"


def default_answer(model: str, messages: list[dict]) -> str:
    """Deterministic, with lengths that vary by question, so judges see wins, losses and ties."""
    last = messages[-1]["content"]
    words = re.findall(r"\w+", last)[:6]
    extra = int(hashlib.sha256((model + last).encode()).hexdigest(), 16) % 4
    return f"{model} answers: {' '.join(words)}" + " indeed" * extra


def reply_text(model: str, messages: list[dict], *,
               answer_for: Callable[[str, list[dict]], str | None] | None = None,
               verdict_for: Callable[[str, str], str] = longer_wins, echo: str = "none") -> tuple[str, str]:
    """(kind, text) for a request: 'judge' when the prompt is one of the harness's judge prompts.

    Pure, so the threaded test server and bench/stub_endpoint.py (aiohttp) answer identically."""
    prompt = messages[-1]["content"]
    lines = _VERDICT_LINE.findall(prompt)
    if lines:
        blocks = dict(_BLOCK.findall(prompt))
        a, b = blocks.get("A", ""), blocks.get("B", "")
        own = "\n".join(f"VERDICT-{tag} {dim}: {verdict_for(a, b)}" for tag, dim in lines)
        echoed = f"{a}\n{b}"
        text = {"none": f"Compared.\n{own}", "before": f"{echoed}\n\n{own}", "only": echoed}[echo]
        return "judge", text
    score = _SCORE_LINE.search(prompt)
    if score:
        return "judge", f"Fine.\nSCORE-{score.group(1)}: {min(10, 1 + len(prompt) % 10)}"
    panda = _PANDALM.search(prompt)
    if panda:
        return "judge", {"A": "1", "B": "2", "tie": "Tie"}[verdict_for(*panda.groups())]
    given = answer_for(model, messages) if answer_for else None
    return "answer", given if given is not None else default_answer(model, messages)


def completion_json(model: str, text: str, request_bytes: int) -> bytes:
    """The chat.completion body for `text` (ensure_ascii: a lone surrogate travels as the valid
    JSON escape \\ud800)."""
    return json.dumps({
        "id": "stub", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": request_bytes // 4, "completion_tokens": len(text) // 4,
                  "total_tokens": (request_bytes + len(text)) // 4},
    }).encode()


def call_key(body: dict) -> str:
    """What makes two requests the same call (model, messages, temperature, seed)."""
    return hashlib.sha256(json.dumps([body.get("model"), body["messages"], body.get("temperature"),
                                      body.get("seed")], sort_keys=True).encode()).hexdigest()


MODELS_JSON = json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode()


class JSONHandler(BaseHTTPRequestHandler):
    """What the stub and tests/fault_proxy.py share: JSON replies and the faults they inject."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_fault(self, fault: str | None, hang_s: float) -> bool:
        """Answer with `fault` and return True; False for no fault or 'truncated' (the caller cuts
        its real reply in half)."""
        if fault == "429":
            self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
        elif fault == "500":
            self._send(500, b'{"error": "internal"}')
        elif fault == "garbage":
            self._send(200, b"<html>upstream exploded</html>")
        elif fault in ("hang", "drop"):
            if fault == "hang":
                time.sleep(hang_s)  # the server is slow: longer than the client's timeout
            self.close_connection = True
        else:
            return False
        return True


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client killed mid-request (the kill -9 tests) resets its connection: expected, not news."""


class StubServer:
    def __init__(self, *, fault_rate: float = 0.0, seed: int = 0, faults: tuple[str, ...] = FAULTS,
                 hang_s: float = 3.0, fail_when: Callable[[dict], int | None] | None = None,
                 answer_for: Callable[[str, list[dict]], str | None] | None = None,
                 verdict_for: Callable[[str, str], str] = longer_wins, echo: str = "none"):
        if echo not in ("none", "before", "only"):
            raise ValueError(f"echo: {echo!r}")
        self.fault_rate, self.faults, self.hang_s = fault_rate, faults, hang_s
        self.fail_when = fail_when or (lambda body: None)
        self.answer_for = answer_for
        self.verdict_for, self.echo = verdict_for, echo
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self._next_fault = 0
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def served_calls(self, kind: str | None = None) -> int:
        """Successful replies so far (of one kind: 'answer' or 'judge')."""
        with self.lock:
            return self.counts[f"served:{kind}"] if kind else sum(self.served.values())

    def served_twice(self) -> int:
        """Requests answered successfully more than once (beyond the first time)."""
        with self.lock:
            return sum(n - 1 for n in self.served.values() if n > 1)

    # --- what a request gets ------------------------------------------------------------------------
    def _draw_fault(self, body: dict) -> str | int | None:
        with self.lock:
            self.counts["requests"] += 1
            status = self.fail_when(body)
            if status:
                self.counts[f"status:{status}"] += 1
                return status
            if self.rng.random() >= self.fault_rate:
                return None
            fault = self.faults[self._next_fault % len(self.faults)]
            self._next_fault += 1
            self.counts[fault] += 1
            return fault

    def reply_text(self, model: str, messages: list[dict]) -> tuple[str, str]:
        """(kind, text) for a request, with this server's answer/verdict/echo behaviour."""
        return reply_text(model, messages, answer_for=self.answer_for, verdict_for=self.verdict_for, echo=self.echo)

    def _handler(self):
        stub = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, MODELS_JSON)
                return self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                body = json.loads(raw)
                fault = stub._draw_fault(body)
                if isinstance(fault, int):
                    auth = self.headers.get("Authorization", "")
                    return self._send(fault, json.dumps({"error": f"refused request with {auth}"}).encode())
                if self.send_fault(fault, stub.hang_s):
                    return None
                kind, text = stub.reply_text(body.get("model", ""), body["messages"])
                reply = completion_json(body.get("model", ""), text, len(raw))
                if fault == "truncated":
                    return self._send(200, reply[: len(reply) // 2])
                self._send(200, reply)
                key = call_key(body)
                with stub.lock:
                    stub.served[key] += 1
                    stub.counts[f"served:{kind}"] += 1

        return Handler
