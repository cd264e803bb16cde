"""Suite YAML: validation errors are one line naming the file, the dotted field and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import config_error_line

from harness.config import HFModelSpec, OpenAIModelSpec, load_suite
from harness.errors import ConfigError, ModelNotFoundError

GOOD = """
name: t
models:
  - {name: a, backend: hf, model: smollm2-135m-instruct}
  - {name: b, backend: openai, model: gpt-x, base_url: http://127.0.0.1:1/v1}
sets:
  - {name: quickstart}
generation:
  default: {max_new_tokens: 32}
  per_category: {coding: {max_new_tokens: 64}}
"""


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_suite_parses_into_typed_specs(tmp_path):
    suite, base = load_suite(write(tmp_path, GOOD))
    assert isinstance(suite.models[0], HFModelSpec) and isinstance(suite.models[1], OpenAIModelSpec)
    assert base == tmp_path
    assert suite.generation.for_category("coding").max_new_tokens == 64
    assert suite.generation.for_category("writing").max_new_tokens == 32


def test_builtin_quickstart_suite_loads():
    suite, _ = load_suite("quickstart")
    assert [m.name for m in suite.models] == ["smollm2-135m-instruct", "gemma3-270m"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD.replace("model: smollm2-135m-instruct}", "model: x, batchsize: 4}"),
         "models.0.batchsize: Extra inputs are not permitted: remove it or fix its spelling"),
        (GOOD.replace("max_new_tokens: 32", "max_new_tokens: 0"), "generation.default.max_new_tokens"),
        (GOOD.replace("backend: openai", "backend: ollama"), "use backend: hf, openai, vllm or reference"),
        (GOOD.replace("base_url: http://127.0.0.1:1/v1", "api_key_env: K"), "models.1.base_url: Field required: add it"),
        (GOOD.replace("name: b,", "name: a,"), "model names must be unique, repeated: a"),
        ("name: t\nmodels: [\n", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_suite_is_one_line_naming_file_and_field(tmp_path, text, expected):
    assert expected in config_error_line(write(tmp_path, text))


def test_unknown_suite_name_lists_builtins():
    with pytest.raises(ConfigError, match="built-in: quickstart"):
        load_suite("no-such-suite")


def test_unknown_model_is_a_one_line_error(tmp_path):
    from harness.models.catalog import resolve_model_path

    with pytest.raises(ModelNotFoundError, match="not in the catalog .*smollm2-135m-instruct"):
        resolve_model_path("smollm3-9000b")


def test_cli_prints_one_line_and_exits_2_for_user_errors(tmp_path):
    bad = write(tmp_path, GOOD.replace("model: smollm2-135m-instruct}", "model: x, batchsize: 4}"))
    unknown = write(tmp_path, GOOD.replace("model: smollm2-135m-instruct", "model: smollm3-9000b"), "u.yaml")
    for path, needle in [(bad, "batchsize"), (unknown, "smollm3-9000b")]:
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--db", str(tmp_path / "x.duckdb")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_importing_harness_and_help_do_not_import_torch_or_vllm():
    code = (
        "import sys; import harness, harness.cli, harness.runner, harness.store.queries;"
        "from typer.testing import CliRunner;"
        "r = CliRunner().invoke(harness.cli.app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'vllm', 'transformers') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
