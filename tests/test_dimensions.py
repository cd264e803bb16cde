"""Dimension names: one rule (judges.base.DIMENSION_NAME) for the suite validator, LLMJudge and the
verdict-line parser, so a name the config accepts is a name the parser can read."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import config_error_line

from harness.config import load_suite
from harness.errors import ConfigError
from harness.models.base import Completion
from judges.base import DEFAULT_DIMENSIONS, PairItem
from judges.llm import LLMJudge
from judges.parse import parse_pairwise

SUITE = """
name: t
models:
  - {name: a, backend: openai, model: m, base_url: http://127.0.0.1:1/v1}
sets:
  - {name: quickstart}
judges:
  - name: j
    model: {name: jm, backend: openai, model: m, base_url: http://127.0.0.1:1/v1}
    dimensions: DIMS
"""


def suite_file(tmp_path, dims: str):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("DIMS", dims))
    return path


@pytest.mark.parametrize("dims, expected", [
    ("[Accuracy]", "judges.0.dimensions: 'Accuracy' is not a dimension name: use lowercase letters, digits and _"
                   " (e.g. 'accuracy')"),
    ("[accuracy, Safety]", "judges.0.dimensions: 'Safety' is not a dimension name: use lowercase letters, digits"
                           " and _ (e.g. 'safety')"),
    ("[bad-name]", "judges.0.dimensions: 'bad-name' is not a dimension name: use lowercase letters, digits and _"
                   " (e.g. 'bad_name')"),
    ("[2nd]", "judges.0.dimensions: '2nd' is not a dimension name"),
    ("[accuracy, language, accuracy]", "judges.0.dimensions: dimension names must be unique, repeated: accuracy"),
    ("[]", "judges.0.dimensions: no dimensions: give at least one"),
])
def test_unreadable_dimension_names_are_a_one_line_config_error(tmp_path, dims, expected):
    path = suite_file(tmp_path, dims)
    message = config_error_line(path)
    assert message.startswith(f"{path}: {expected}"), message


def test_cli_rejects_a_bad_dimension_with_one_line_and_exit_2(tmp_path):
    path = suite_file(tmp_path, "[accuracy, Accuracy]")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--db", str(tmp_path / "x.duckdb")],
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "judges.0.dimensions: 'Accuracy' is not a dimension name" in lines[0]
    assert not (tmp_path / "x.duckdb").exists()  # rejected before anything ran


def test_digits_and_underscores_are_accepted_and_parsed(tmp_path):
    suite, _ = load_suite(suite_file(tmp_path, "[safety2, code_quality_2]"))
    assert suite.judges[0].dimensions == ["safety2", "code_quality_2"]
    output = ("Both are fine, B is safer.\n"
              "VERDICT-n0nce safety2: A\n"
              "VERDICT-n0nce code_quality_2: [[tie]]\n")
    assert parse_pairwise(output, "n0nce", ("safety2", "code_quality_2")) == {"safety2": "A", "code_quality_2": "tie"}


def test_the_parser_reads_the_old_names_as_before():
    """The pattern widened (digits) without changing what the old names parse to: PARSER_VERSION stays."""
    output = "VERDICT-x Accuracy: B\nVERDICT-x helpfulness = A\nVERDICT-x language: tie\nVERDICT-y accuracy: A\n"
    assert parse_pairwise(output, "x", DEFAULT_DIMENSIONS) == {"accuracy": "B", "helpfulness": "A", "language": "tie"}
    assert parse_pairwise("VERDICT-x accuracy: A\nVERDICT-x accuracy: B\n", "x", ("accuracy",)) is None
    # A longer name that merely starts with a wanted one is another dimension, not a verdict for it.
    assert parse_pairwise("VERDICT-x accuracy2: A\n", "x", ("accuracy",)) is None


class Answers:
    """A judge backend that fills in exactly the verdict lines the prompt asks for."""

    chunk_size = 4

    def __init__(self):
        self.calls = 0

    def fingerprint(self) -> str:
        return "answers"

    def generate(self, conversations, params):
        self.calls += len(conversations)
        out = []
        for conv in conversations:
            asked = re.findall(r"^(VERDICT-\S+ \S+): <A, B or tie>$", conv[-1].content, re.MULTILINE)
            out.append(Completion(text="\n".join(f"{line}: A" for line in asked)))
        return out

    def close(self) -> None:
        pass


def test_a_judge_with_digit_dimensions_parses_its_first_answer():
    backend = Answers()
    judge = LLMJudge("j", backend, dimensions=("safety2", "code_quality_2"), max_parse_retries=2)
    item = PairItem("q1", "general", ("hi",), ("hello",), ("hey",), turn=1, nonce="abc123")
    [result] = judge.judge([item])
    assert {d: out.verdicts[d] for d, out in result.items()} == {"safety2": "A", "code_quality_2": "A"}
    assert all(out.attempts == 1 for out in result.values()) and backend.calls == 1


@pytest.mark.parametrize("dims, needle", [
    (("Accuracy",), "'Accuracy' is not a dimension name"),
    (("safety", "safety"), "repeated: safety"),
    ((), "no dimensions"),
])
def test_llm_judge_built_in_python_rejects_bad_dimensions(dims, needle):
    with pytest.raises(ConfigError, match=re.escape("judge 'j': dimensions: ") + ".*" + re.escape(needle)):
        LLMJudge("j", Answers(), dimensions=dims)


def test_a_pandalm_judge_refuses_a_dimension_it_has_no_definition_for(tmp_path):
    text = SUITE.replace("DIMS", "[accuracy, safety2]").replace("    model: {name: jm", "    style: pandalm\n    model: {name: jm")
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="judges.0: dimensions: style: pandalm has no definition for 'safety2'"):
        load_suite(path)
    path.write_text(text.replace("safety2", "helpfulness"))
    assert load_suite(path)[0].judges[0].dimensions == ["accuracy", "helpfulness"]
