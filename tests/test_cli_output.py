"""Stored and user-supplied text reaches the terminal literally and harmlessly: never read as rich
markup (a question may well contain `[/INST]`), and no control character a terminal acts on (ESC
sequences that recolour, retitle or clear; BEL; NUL) gets through; each is shown as a visible escape.
Every test goes through the real CLI in a subprocess over a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import api
from harness.config import HFModelSpec, SetSpec, Suite
from harness.models.base import Completion
from harness.store import Store
from harness.store.queries import answers_for
from tests.conftest import ScriptedBackend

REPO = Path(__file__).resolve().parents[1]
QUESTION = "[/INST] [bold]x"
CATEGORY = "cat[/b]\x1b[2J"
SET_NAME = "mine[/y]"
SUITE_NAME = "s[/x]"
ANSWER = "plain \x1b[31mRED\x1b[0m then \x1b]0;pwned\x07 and nul\x00end [bold]not markup[/bold]"
# What a terminal must never receive from stored text: ESC, BEL, NUL (and no C1 CSI either).
FORBIDDEN = (b"\x1b", b"\x07", b"\x00", "\x9b".encode())


class FixedAnswer(ScriptedBackend):
    def generate(self, conversations, params):
        self.calls.extend(conversations)
        return [Completion(text=ANSWER, prompt_tokens=3, completion_tokens=9) for _ in conversations]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`harness ARGS` as a user runs it: a real process, output captured as bytes."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1", **(env or {})})


def assert_terminal_safe(data: bytes) -> None:
    for byte in FORBIDDEN:
        assert byte not in data, f"{byte!r} reached the terminal: {data!r}"


@pytest.fixture
def nasty_db(tmp_path) -> Path:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q1", "category": CATEGORY, "turns": [QUESTION]}) + "\n")
    suite = Suite(name=SUITE_NAME, models=[HFModelSpec(name="a", model="scripted-a")],
                  sets=[SetSpec(name=SET_NAME, path=str(questions))])
    db = tmp_path / "nasty.duckdb"
    api.run(suite, db, stages=("generate",), backends={"a": FixedAnswer("a")})
    store = Store(db)
    if answers_for(store, "a")[0]["text"] != ANSWER:
        # The runner may make text storable on the way in (NUL -> U+FFFD, harness.text); a file
        # written by another version can still hold it, and DuckDB stores NUL in a VARCHAR as is.
        with store.write() as con:
            con.execute("UPDATE answers SET text = ?", [ANSWER])
    assert answers_for(store, "a")[0]["text"] == ANSWER  # the store really holds ESC, BEL and NUL
    return db


def test_answers_prints_stored_markup_and_control_characters_literally(nasty_db):
    result = cli("answers", "-m", "a", "--db", str(nasty_db))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert_terminal_safe(result.stdout)
    out = result.stdout.decode()
    assert "Q: [/INST] [bold]x" in out  # the question as stored, brackets and all
    assert "\\x1b[31mRED\\x1b[0m" in out and "\\x1b]0;pwned\\x07" in out and "nul\\x00end" in out
    assert "[bold]not markup[/bold]" in out
    assert "cat[/b]\\x1b[2J" in out and SET_NAME in out  # the rule above each answer


def test_db_info_prints_stored_names_literally(nasty_db):
    result = cli("db", "info", "--db", str(nasty_db))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert_terminal_safe(result.stdout)
    assert SUITE_NAME in result.stdout.decode()  # the recent-runs table cell


def test_closed_samples_print_stored_text_literally(nasty_db):
    from harness.store.closed import insert_result

    key = "k1"
    task_row = {"result_key": key, "suite_name": SUITE_NAME, "model": "a", "model_fingerprint": "fp",
                "task": "t1", "task_hash": "h", "task_version": "1", "num_fewshot": 0, "n_samples": 1,
                "settings_json": "{}", "lm_eval_backend": "hf", "lm_eval_version": "0", "output_type": "generate_until",
                "wall_s": 1.0, "run_id": "r"}
    sample = (key, 0, "none[/f]", QUESTION + "\x1b[2J", "[/target]\x07", [ANSWER], "\x1b]0;x\x07", ["acc"], [0.0])
    with Store(nasty_db).write() as con:
        insert_result(con, task_row, [(key, "acc", "none[/f]", 0.0, None, True)], [sample])
    result = cli("closed", "samples", "-t", "t1", "-m", "a", "--db", str(nasty_db))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert_terminal_safe(result.stdout)
    out = result.stdout.decode()
    assert "[/INST] [bold]x\\x1b[2J" in out and "target: [/target]\\x07" in out
    assert "\\x1b[31mRED" in out and "filtered: \\x1b]0;x\\x07" in out and "filter none[/f]" in out


def test_an_error_line_shows_user_text_literally_and_masks_secrets(nasty_db):
    secret = "sk-test-0123456789abcdef"
    result = cli("answers", "-m", "a", "--set", f"[/nope]\x1b[31m{secret}", "--db", str(nasty_db),
                 env={"DEMO_API_KEY": secret})
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert_terminal_safe(result.stderr)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "no answers for model 'a' in set '[/nope]\\x1b[31m***'" in err
    assert secret not in err


def test_literal_escapes_controls_and_never_reads_markup():
    from harness.cli.render import literal

    text = literal("a[/b]\x1b[1m\r\x7f\x9b\ud800\u202e\tz\nnext")
    assert text.plain == "a[/b]\\x1b[1m\\x0d\\x7f\\x9b\\ud800\\u202e\tz\nnext"
    assert not text.spans  # nothing in the text became a style
