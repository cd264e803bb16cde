"""OpenAI-compatible endpoints that are wrong or down: the config rejects what cannot be a URL, and
what fails at run time is one line naming the URL that failed, with the fix where there is one,
and never the API key (even when the server echoes it back).

Real processes throughout: `harness run` in a subprocess against real HTTP servers on 127.0.0.1
(ThreadingHTTPServer in a thread) and a port nothing listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import config_error_line

from harness.config import load_suite
from harness.errors import ConfigError

SECRET = "sk-test-secret-123456"


# --- config ----------------------------------------------------------------------------------------
def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def suite_text(base_url: str, api_key_env: str | None = None, extra: str = "", sets: str = "[{name: quickstart}]"):
    key = f", api_key_env: {api_key_env}" if api_key_env else ""
    return (f"name: t\nmodels:\n  - {{name: x, backend: openai, model: m, base_url: {base_url}{key}{extra}}}\n"
            f"sets: {sets}\n")


@pytest.mark.parametrize("base_url, expected", [
    ("[]", "models.0.base_url: an empty list names no endpoint: give its URL (e.g. http://127.0.0.1:8000/v1)"),
    ("localhost:8000/v1", "models.0.base_url: 'localhost:8000/v1' is not an http(s) URL: write it as"
                          " http(s)://host[:port]/v1 (try 'http://localhost:8000/v1')"),
    ("'127.0.0.1:8000'", "models.0.base_url: '127.0.0.1:8000' is not an http(s) URL"),
    ("[http://127.0.0.1:1/v1, ftp://h/v1]", "models.0.base_url: 'ftp://h/v1' is not an http(s) URL"),
    ("'http:///v1'", "models.0.base_url: 'http:///v1' is not an http(s) URL"),
    ("http://127.0.0.1:99999/v1", "models.0.base_url: 'http://127.0.0.1:99999/v1' is not a valid URL"),
])
def test_base_url_that_is_not_an_endpoint_is_a_one_line_config_error(tmp_path, base_url, expected):
    path = write(tmp_path, suite_text(base_url))
    message = config_error_line(path)
    assert message.startswith(f"{path}: {expected}"), message


def test_a_judge_models_base_url_is_checked_too(tmp_path):
    text = suite_text("http://127.0.0.1:1/v1") + (
        "judges:\n  - {name: j, model: {name: jm, backend: openai, model: m, base_url: []}}\n")
    with pytest.raises(ConfigError, match=r"judges\.0\.model\.base_url: an empty list names no endpoint"):
        load_suite(write(tmp_path, text))


def test_good_urls_and_replica_lists_still_load(tmp_path):
    suite, _ = load_suite(write(tmp_path, suite_text("[http://127.0.0.1:8000/v1, 'https://api.example.com/v1']")))
    assert suite.models[0].base_url == ["http://127.0.0.1:8000/v1", "https://api.example.com/v1"]


def test_a_backend_built_in_python_with_no_replicas_is_a_config_error():
    from harness.models.openai_backend import OpenAIBackend, RequestSettings
    from harness.models.specs import OpenAIModelSpec

    spec = OpenAIModelSpec(name="x", model="m", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="model 'x': base_url is an empty list"):
        OpenAIBackend(spec, RequestSettings(model="m", base_urls=[], api_key="EMPTY"))


# --- real servers ----------------------------------------------------------------------------------
def chat_reply(text: str) -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }).encode()


def make_handler(mode: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def answer(self, status: int, body: bytes, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(404, b"404 page not found", "text/plain")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if mode == "404":
                self.answer(404, b"404 page not found", "text/plain")
            elif mode == "echo-401" or (mode == "mixed" and "fine" not in body):
                # Some servers quote the credentials they refused: the key must still never leak.
                echoed = self.headers.get("Authorization", "")
                self.answer(401, json.dumps({"error": {"message": f"invalid credentials: {echoed}"}}).encode())
            else:
                self.answer(200, chat_reply("ok"))

    return Handler


@pytest.fixture
def http_server():
    servers = []

    def start(mode: str) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(mode))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def refused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on leaving: nothing listens there


def harness_run(tmp_path, text: str, **env_extra):
    suite = write(tmp_path, text)
    db = tmp_path / "h.duckdb"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(HF_HUB_OFFLINE="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **env_extra)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--db", str(db)],
                          capture_output=True, text=True, timeout=120, env=env)
    return proc, db


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def stored_texts(db) -> dict[str, str]:
    """Every table of the store, dumped as text (read-only)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        return {t: repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    finally:
        con.close()


def run_errors(db) -> list[str]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT error FROM runs WHERE error IS NOT NULL").fetchall()]
    finally:
        con.close()


def test_a_404_names_the_url_asked_and_suggests_v1(tmp_path, http_server):
    port = http_server("404")
    proc, db = harness_run(tmp_path, suite_text(f"http://127.0.0.1:{port}", extra=", max_retries: 1"))
    line = one_error_line(proc)
    expected = (f"HTTP 404 from http://127.0.0.1:{port}/chat/completions: base_url usually ends in /v1"
                f" (try http://127.0.0.1:{port}/v1)")
    assert expected in line, line
    assert "model 'x'" in line
    assert any(expected in e for e in run_errors(db))


def test_a_404_under_v1_shows_the_servers_reply_instead(tmp_path, http_server):
    port = http_server("404")
    proc, _ = harness_run(tmp_path, suite_text(f"http://127.0.0.1:{port}/v1", extra=", max_retries: 0"))
    line = one_error_line(proc)
    assert f"HTTP 404 from http://127.0.0.1:{port}/v1/chat/completions: 404 page not found" in line, line
    assert "try " not in line


def test_a_refused_connection_names_the_replica(tmp_path, http_server):
    port = refused_port()
    proc, db = harness_run(tmp_path, suite_text(f"http://127.0.0.1:{port}/v1", extra=", max_retries: 0"))
    line = one_error_line(proc)
    assert f"http://127.0.0.1:{port}/v1: connection refused (is the server running?)" in line, line
    assert any(f"127.0.0.1:{port}/v1: connection refused" in e for e in run_errors(db))


@pytest.mark.parametrize("key_var", ["MY_KEY", "ENDPOINT_AUTH"])  # the second: a name redact cannot guess
def test_a_401_that_echoes_the_key_never_puts_it_anywhere(tmp_path, http_server, key_var):
    port = http_server("echo-401")
    url = f"http://127.0.0.1:{port}/v1"
    proc, db = harness_run(tmp_path, suite_text(url, api_key_env=key_var, extra=", max_retries: 1"),
                           **{key_var: SECRET})
    line = one_error_line(proc)
    assert f"HTTP 401 from {url}/chat/completions: " in line, line
    assert "Bearer ***" in line  # the server did echo it, and it was masked
    assert SECRET not in proc.stdout + proc.stderr
    tables = stored_texts(db)
    assert "runs" in tables and "generation_failures" in tables
    assert all(SECRET not in text for text in tables.values()), [t for t, text in tables.items() if SECRET in text]
    assert any("Bearer ***" in e for e in run_errors(db))


def test_failed_requests_stored_as_rows_are_redacted_too(tmp_path, http_server):
    """Some requests succeed, so the failed ones become generation_failures rows (no BackendError)."""
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "q1", "category": "general", "turns": ["a fine question"]}\n'
                         '{"id": "q2", "category": "general", "turns": ["another question"]}\n')
    port = http_server("mixed")
    url = f"http://127.0.0.1:{port}/v1"
    proc, db = harness_run(tmp_path, suite_text(url, api_key_env="ENDPOINT_AUTH", extra=", max_retries: 0",
                                                sets=f"[{{name: mine, path: {questions}}}]"),
                           ENDPOINT_AUTH=SECRET)
    assert "Traceback" not in proc.stderr, proc.stderr  # finished, though incomplete (a rerun retries q2)
    assert SECRET not in proc.stdout + proc.stderr
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        errors = [r[0] for r in con.execute("SELECT error FROM generation_failures").fetchall()]
    finally:
        con.close()
    assert len(errors) == 1 and errors[0].startswith(f"HTTP 401 from {url}/chat/completions: "), errors
    assert "Bearer ***" in errors[0] and "\n" not in errors[0]
    assert all(SECRET not in text for text in stored_texts(db).values())
