"""The backend registry: one entry per kind feeds the suite's model field, create_backend and the
closed-set mapping; plugins load from an entry-point group; local backends honour `device`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from harness.closed.backends import LMEvalModel, check_compatible, cli_command, model_args, open_lm
from harness.config import HFModelSpec, OpenAIModelSpec, ReferenceModelSpec, load_suite
from harness.errors import ConfigError
from harness.models.base import ChoiceScorer, Completion, create_backend
from harness.models.device import resolve_device
from harness.models.registry import (BUILTIN, LM_EVAL_MODEL, BackendEntry, Capabilities, LMEvalMapping, backend_kinds,
                                     get_entry, load_attr, register_backend, unregister_backend)
from harness.models.specs import ModelSpecBase
from harness.store import Store

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).parent / "plugins" / "echo_backend"

QUESTIONS = [{"id": "q1", "category": "misc", "turns": ["hello there", "and once more"]},
             {"id": "q2", "category": "misc", "turns": ["a second question"]}]


def _suite_yaml(tmp_path: Path, model: str, **extra) -> Path:
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    path = tmp_path / "suite.yaml"
    lines = ["name: reg", "models:", f"  - {model}", "sets:", "  - {name: regset, path: q.jsonl}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- plugins ----------------------------------------------------------------------------------------
def test_an_installed_plugin_backend_runs_a_suite_through_the_cli(tmp_path):
    """The echo plugin, installed like any distribution (pip, no network), is found through the
    `alignment_harness.backends` entry points: `backend: echo` validates, runs and is stored."""
    pytest.importorskip("setuptools", reason="the dev extra installs setuptools to build the test plugin")
    source, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(PLUGIN, source)  # the build writes build/ and *.egg-info next to its sources
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "--quiet", "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (target / "echo_backend" / "__init__.py").is_file()

    suite = _suite_yaml(tmp_path, '{name: parrot, backend: echo, model: none, prefix: "echo: "}')
    db = tmp_path / "x.duckdb"
    env = {**_clean_env(), "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--db", str(db)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        answers = con.execute("SELECT question_id, turn, text FROM answers ORDER BY 1, 2").fetchall()
        models = con.execute("SELECT name, backend, spec_json FROM models").fetchall()
    assert answers == [("q1", 1, "echo: hello there"), ("q1", 2, "echo: and once more"),
                       ("q2", 1, "echo: a second question")]
    assert [(m[0], m[1], json.loads(m[2])["prefix"]) for m in models] == [("parrot", "echo", "echo: ")]

    # Without the plugin on the path the same suite is a one-line config error listing the kinds.
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--db", str(db)],
                          capture_output=True, text=True, timeout=300, env=_clean_env(), cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "models.0" in lines[0] and "use backend: hf, openai, vllm or reference" in lines[0]


def _clean_env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1"}


def test_the_harness_package_never_names_the_plugin():
    mentions = [str(p.relative_to(REPO)) for p in (REPO / "harness").rglob("*.py")
                if "echo_backend" in p.read_text() or "EchoModelSpec" in p.read_text()]
    assert mentions == []


def test_a_broken_plugin_is_a_one_line_error_for_the_suites_that_use_it(tmp_path, monkeypatch):
    import importlib.metadata

    import harness.models.registry as registry

    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('half-installed\\nplugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("broken", "broken_plugin:ENTRY", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"broken": ep})
    assert "broken" in backend_kinds()  # listed without being imported
    with pytest.raises(ConfigError) as err:
        load_suite(_suite_yaml(tmp_path, "{name: b, backend: broken, model: x}"))
    message = str(err.value)
    assert "\n" not in message and "models.0" in message
    assert "backend plugin 'broken' (broken_plugin:ENTRY) failed to load: RuntimeError: half-installed plugin" in message
    suite, _ = load_suite(_suite_yaml(tmp_path, "{name: a, backend: openai, model: m, base_url: http://x/v1}"))
    assert suite.models[0].backend == "openai"  # suites that do not use it are unaffected


# --- one registry feeds the union, the factory and the closed-set mapping -------------------------------
class ToySpec(ModelSpecBase):
    """A runtime-registered kind's spec."""

    backend: Literal["toy"] = "toy"
    """The kind."""
    shout: bool = False
    """Upper-case the answers."""


class ToyBackend:
    def __init__(self, spec):
        self.spec, self.chunk_size = spec, 8

    def fingerprint(self) -> str:
        return f"toy-{self.spec.shout}"

    def generate(self, conversations, params):
        text = [c[-1].content.upper() if self.spec.shout else c[-1].content for c in conversations]
        return [Completion(t) for t in text]

    def close(self) -> None:
        pass


def _toy_lm_args(spec, path, base_url=None) -> LMEvalModel:
    return LMEvalModel(LM_EVAL_MODEL[spec.backend], {"model": spec.model, "base_url": "http://toy/v1"})


@pytest.fixture
def toy():
    entry = register_backend(BackendEntry("toy", ToySpec, ToyBackend, Capabilities(),
                                          LMEvalMapping("local-chat-completions", _toy_lm_args, "toys have no logprobs")))
    yield entry
    unregister_backend("toy")


def test_a_registered_kind_is_in_the_suite_union_the_factory_and_the_closed_mapping(toy, tmp_path):
    suite, base = load_suite(_suite_yaml(tmp_path, "{name: t, backend: toy, model: m, shout: true}"))
    spec = suite.models[0]
    assert type(spec) is ToySpec and spec.shout is True
    assert json.loads(suite.model_dump_json())["models"][0]["shout"] is True  # dumped as its own class

    backend = create_backend(spec)
    assert isinstance(backend, ToyBackend) and backend.fingerprint() == "toy-True"

    assert LM_EVAL_MODEL["toy"] == "local-chat-completions" and "toy" in dict(LM_EVAL_MODEL.items())
    assert model_args(spec, None).args == {"model": "m", "base_url": "http://toy/v1"}
    check_compatible(spec, "closed_set[0]", "gen", loglikelihood=False)
    with pytest.raises(ConfigError, match=r"backend toy -> lm-eval local-chat-completions\) cannot score"
                                          r" loglikelihood task 'mc': toys have no logprobs; use a hf or vllm spec"):
        check_compatible(spec, "closed_set[0]", "mc", loglikelihood=True)

    from harness.runner import run_suite

    summary = run_suite(suite, Store(tmp_path / "h.duckdb"), base_dir=base)  # no `backends=`: the registry's
    with Store(tmp_path / "h.duckdb").read() as con:
        texts = sorted(r[0] for r in con.execute("SELECT text FROM answers").fetchall())
    assert summary.models and texts == ["A SECOND QUESTION", "AND ONCE MORE", "HELLO THERE"]

    # a typo in the toy's own field is the usual one-line error with the dotted field
    with pytest.raises(ConfigError, match=r"models\.0\.shoutt: Extra inputs are not permitted"):
        load_suite(_suite_yaml(tmp_path, "{name: t, backend: toy, model: m, shoutt: true}"))


def test_unknown_kinds_are_one_line_errors_listing_the_registered_kinds(toy, tmp_path):
    path = _suite_yaml(tmp_path, "{name: t, backend: ollama, model: m}")
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "models.0: Input tag 'ollama'" in message and message.endswith("use backend: hf, openai, vllm, reference or toy")
    with pytest.raises(ConfigError, match=r"models\.0: .*: add backend: hf, openai, vllm, reference or toy"):
        load_suite(_suite_yaml(tmp_path, "{name: t, model: m}"))

    unregister_backend("toy")
    with pytest.raises(ConfigError, match=r"unknown backend 'toy' \(known: hf, openai, vllm, reference\)$"):
        create_backend(ToySpec(name="t", model="m"))
    with pytest.raises(ConfigError, match="use backend: hf, openai, vllm or reference$"):
        load_suite(_suite_yaml(tmp_path, "{name: t, backend: toy, model: m}"))


def test_reregistering_a_builtin_kind_swaps_only_its_factory(scripted):
    spec = HFModelSpec(name="a", model="scripted-a")
    register_backend("hf", lambda s: scripted(s.name))
    try:
        assert get_entry("hf").spec is HFModelSpec and get_entry("hf").capabilities.score_choices
        assert create_backend(spec).fingerprint() == "scripted-a"
    finally:
        unregister_backend("hf")
    assert get_entry("hf").factory == "harness.models.hf:HFBackend"


def test_builtin_entries_map_to_lm_eval_as_documented():
    assert dict(LM_EVAL_MODEL) == {"hf": "hf", "openai": "local-chat-completions", "vllm": "local-completions"}
    ref = ReferenceModelSpec(name="gpt4_ref", model="outputs.json")
    with pytest.raises(ConfigError, match="model 'gpt4_ref' is a reference outputs file and cannot run closed-set"):
        check_compatible(ref, "closed_set[0]", "mc", loglikelihood=False)
    api = OpenAIModelSpec(name="api", model="gpt-x", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="chat APIs return no prompt logprobs; use a hf or vllm spec"):
        check_compatible(api, "closed_set[0]", "mc", loglikelihood=True)


def test_capabilities_agree_with_the_choice_scorer_protocol():
    for entry in BUILTIN:
        backend_class = load_attr(entry.factory)
        assert issubclass(backend_class, ChoiceScorer) == entry.capabilities.score_choices, entry.kind


def test_decode_choice_needs_a_scoring_kind_at_config_time(tmp_path):
    judge = ("[{name: j, style: pandalm, decode: choice,"
             " model: {name: jm, backend: openai, model: gpt-x, base_url: http://127.0.0.1:1/v1}}]")
    path = _suite_yaml(tmp_path, "{name: a, backend: hf, model: smollm2-135m-instruct}", judges=judge)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert "\n" not in str(err.value)
    assert "judges.0: Value error, decode: choice needs a backend that can score choices (hf), not openai" in str(err.value)


def test_llm_judge_checks_the_protocol_not_an_attribute_name(scripted):
    from judges.llm import LLMJudge

    class Scorer(type(scripted("x"))):
        def score_choices(self, conversations, choices):
            return [[0.0] * len(choices) for _ in conversations]

    assert isinstance(Scorer("s"), ChoiceScorer) and not isinstance(scripted("g"), ChoiceScorer)
    assert LLMJudge("j", Scorer("s"), style="pandalm", decode="choice").decode == "choice"
    with pytest.raises(ConfigError, match="decode: choice needs style: pandalm and a backend that can score"):
        LLMJudge("j", scripted("g"), style="pandalm", decode="choice")


# --- device --------------------------------------------------------------------------------------------
def _cuda(monkeypatch, available: bool, mps: bool = False):
    import torch

    import harness.models.device as device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    # a machine with a GPU has its driver's device node; "/" stands in for one that exists
    monkeypatch.setattr(device, "_GPU_NODES", ("/",) if available or mps else ())


def test_auto_on_a_linux_machine_without_gpu_device_nodes_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, harness.models.device as d; d._GPU_NODES = (); "
            "print(d.resolve_device('auto', 'm'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    expected = "cpu False" if sys.platform.startswith("linux") else None
    assert expected is None or out.stdout.strip() == expected, out.stdout + out.stderr


def test_auto_resolves_to_what_torch_sees():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto", "m") == expected
    assert HFModelSpec(name="m", model="x").device == "auto"


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _cuda(monkeypatch, True, mps=True)
    assert resolve_device("auto", "m") == "cuda"
    _cuda(monkeypatch, False, mps=True)
    assert resolve_device("auto", "m") == "mps"
    _cuda(monkeypatch, False, mps=False)
    assert resolve_device("auto", "m") == "cpu"


def test_a_missing_gpu_is_a_one_line_error_naming_model_and_fix(monkeypatch, tmp_path):
    _cuda(monkeypatch, False)
    for device, needle in [("cuda", "sees no CUDA GPU: use device: auto or cpu"),
                           ("mps", "sees no Apple MPS device: use device: auto or cpu")]:
        with pytest.raises(ConfigError) as err:
            resolve_device(device, "big-model")
        assert "\n" not in str(err.value) and str(err.value).startswith(f"model 'big-model': device: {device}")
        assert needle in str(err.value)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="model 'g': device: cuda"):  # before any weights or answers
        create_backend(HFModelSpec(name="g", model=str(folder), device="cuda"))
    with pytest.raises(ConfigError, match=r"models\.0\.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'"):
        load_suite(_suite_yaml(tmp_path, "{name: a, backend: hf, model: x, device: gpu}"))


def test_lm_eval_model_and_its_command_carry_the_device(monkeypatch, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    settings = {"batch_size": 4, "num_fewshot": None}
    cpu = model_args(HFModelSpec(name="m", model=str(folder), device="cpu"), folder)
    assert (cpu.kind, cpu.device) == ("hf", "cpu") and "--device cpu" in cli_command(cpu, None, "t", settings)
    _cuda(monkeypatch, True)
    gpu = model_args(HFModelSpec(name="m", model=str(folder)), folder)  # auto, with a GPU
    assert gpu.device == "cuda" and cli_command(gpu, None, "t", settings).endswith("--batch_size 4 --device cuda")
    api = model_args(OpenAIModelSpec(name="a", model="x", base_url="http://h/v1"), None)
    assert api.device is None and "--device" not in cli_command(api, None, "t", settings)

    pytest.importorskip("lm_eval")
    import lm_eval.api.registry

    made = {}

    class FakeLM:
        @classmethod
        def create_from_arg_obj(cls, args, extra):
            made.update(args=args, extra=extra)
            return cls()

    monkeypatch.setattr(lm_eval.api.registry, "get_model", lambda name: FakeLM)
    with open_lm(HFModelSpec(name="m", model=str(folder), device="cuda"), 8) as lm:
        assert isinstance(lm.instance, FakeLM)
    assert made["extra"] == {"batch_size": 8, "device": "cuda"} and "device" not in made["args"]


def test_trainer_arguments_follow_the_resolved_device(tmp_path, tiny_model_path, monkeypatch):
    pytest.importorskip("trl")
    from trainers.common import load_model, plan, training_arguments
    from trainers.recipe import Recipe

    recipe = Recipe.model_validate({"name": "r", "base": str(tiny_model_path), "data": {"path": "instructions.jsonl",
                                    "limit": 2}, "training": {"max_steps": 1}, "output_dir": str(tmp_path / "out")})
    checked = plan(recipe, "sft", Store(tmp_path / "h.duckdb"))
    assert checked.device == resolve_device("auto", "r")
    assert training_arguments(checked)["use_cpu"] is (checked.device == "cpu")
    checked.device = "cpu"
    assert training_arguments(checked)["use_cpu"] is True
    model, _ = load_model(checked)
    assert model.device.type == "cpu"
    checked.device = "cuda"
    assert training_arguments(checked)["use_cpu"] is False


def test_fingerprint_carries_the_device_type_but_not_auto_or_cpu(monkeypatch, tiny_model_path):
    from harness.models.hf import HFBackend

    def fp(device):
        return HFBackend(HFModelSpec(name="t", model=str(tiny_model_path), device=device)).fingerprint()

    _cuda(monkeypatch, False)
    on_cpu = fp("cpu")
    assert fp("auto") == on_cpu  # auto on a CPU machine: the same answers as device: cpu
    _cuda(monkeypatch, True)
    assert fp("cuda") == fp("auto") != on_cpu


@pytest.mark.slow
def test_device_cpu_generates_and_scores_on_the_cpu(tiny_model_path):
    from harness.models.base import GenerationParams, Message
    from harness.models.hf import HFBackend

    backend = HFBackend(HFModelSpec(name="t", model=str(tiny_model_path), device="cpu", batch_size=2))
    convs = [(Message("user", "Hi"),), (Message("user", "What is 2 + 2?"),)]
    out = backend.generate(convs, GenerationParams(max_new_tokens=4))
    assert backend._model.device.type == "cpu"
    assert [c.ok for c in out] == [True, True] and [c.completion_tokens for c in out] == [4, 4]
    scores = backend.score_choices(convs, ("1", "2", "Tie"))
    assert len(scores) == 2 and all(len(row) == 3 and all(v < 0 for v in row) for row in scores)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
def test_cuda_generates_on_the_gpu_and_scores_like_the_cpu(tiny_model_path):
    from harness.models.base import GenerationParams, Message
    from harness.models.hf import HFBackend

    gpu = HFBackend(HFModelSpec(name="t", model=str(tiny_model_path), device="cuda", batch_size=2))
    cpu = HFBackend(HFModelSpec(name="t", model=str(tiny_model_path), device="cpu", batch_size=2))
    convs = [(Message("user", "Hi"),), (Message("user", "What is 2 + 2?"),)]
    out = gpu.generate(convs, GenerationParams(max_new_tokens=4))
    assert next(gpu._model.parameters()).device.type == "cuda"
    assert [c.completion_tokens for c in out] == [4, 4]
    on_gpu, on_cpu = gpu.score_choices(convs, ("1", "Tie")), cpu.score_choices(convs, ("1", "Tie"))
    assert all(abs(g - c) < 1e-3 for gr, cr in zip(on_gpu, on_cpu) for g, c in zip(gr, cr))
    assert gpu.fingerprint() != cpu.fingerprint()
