"""Closed-set tasks through lm-evaluation-harness: stored rows, reruns that call nothing, the
`lm_eval` CLI giving the same number, and one-line errors before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.closed import plan_closed, run_closed
from harness.closed import run as closed_run
from harness.config import ClosedTaskSpec, HFModelSpec, Suite, load_suite
from harness.errors import ConfigError, DataError
from harness.store import Store
from harness.store.closed import closed_samples, closed_scores


def mmlu(shared_data, **kw) -> ClosedTaskSpec:
    return ClosedTaskSpec(task="mmlu_subset", template="multiple_choice",
                          data=str(shared_data / "closed_set" / "mmlu_test_subset.jsonl"), **kw)


def gsm8k(shared_data, **kw) -> ClosedTaskSpec:
    return ClosedTaskSpec(task="gsm8k_sample", template="numeric", fields={"answer": "final_answer"},
                          data=str(shared_data / "closed_set" / "gsm8k_test_with_final_answer.jsonl"), **kw)


def tiny_suite(tiny_model_path, tasks) -> Suite:
    return Suite(name="closed-test", models=[HFModelSpec(name="tiny", model=str(tiny_model_path), batch_size=8)],
                 closed_set=tasks)


@pytest.fixture(scope="module")
def stored(tmp_path_factory, tiny_model_path, shared_data):
    """MMLU (loglikelihood) and GSM8K (generate_until) on the tiny model, stored once."""
    store = Store(tmp_path_factory.mktemp("closed") / "h.duckdb")
    suite = tiny_suite(tiny_model_path, [mmlu(shared_data, limit=12), gsm8k(shared_data, limit=3, max_gen_toks=8)])
    summary = run_closed(suite, Path("."), store)
    return suite, store, summary


def test_every_metric_and_document_is_stored(stored):
    suite, store, summary = stored
    assert [(r.task, r.cached, r.n_samples) for r in summary.results] == [
        ("mmlu_subset", False, 12), ("gsm8k_sample", False, 3)]
    scores = {(r["task"], r["metric"], r["filter"]): r for r in closed_scores(store, suite.name)}
    assert set(scores) == {("mmlu_subset", "acc", "none"), ("gsm8k_sample", "exact_match", "final-number")}
    for (task, metric, _), score in scores.items():
        docs = closed_samples(store, task, "tiny")
        assert len(docs) == score["n_samples"]
        # the task's metric is the mean of its documents' metrics: rows and aggregate agree
        assert score["value"] == pytest.approx(sum(d["metrics"][metric] for d in docs) / len(docs))
        assert score["stderr"] is not None
    mc = closed_samples(store, "mmlu_subset", "tiny")[0]
    assert mc["prompt"].endswith("Answer:") and "\nA. " in mc["prompt"]
    assert len(mc["responses"]) == 4  # one loglikelihood request per lettered choice
    gen = closed_samples(store, "gsm8k_sample", "tiny")[0]
    assert gen["prompt"].startswith("Question: ") and gen["target"] == "18"
    with store.read() as con:
        backend, version, settings = con.execute(
            "SELECT lm_eval_backend, lm_eval_version, settings_json FROM closed_tasks WHERE task = 'gsm8k_sample'"
        ).fetchone()
    assert backend == "hf" and version == "0.4.13"
    assert json.loads(settings)["cli"].startswith("lm_eval --model hf --model_args pretrained=")


def test_rerun_calls_nothing(stored, monkeypatch):
    suite, store, _ = stored

    def no_model(*args, **kwargs):
        raise AssertionError("a stored result must not load a model")

    monkeypatch.setattr(closed_run, "open_lm", no_model)
    with store.read() as con:
        runs_before = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    again = run_closed(suite, Path("."), store)
    assert [r.cached for r in again.results] == [True, True]
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before


def test_changed_settings_are_a_new_result(stored, shared_data):
    suite, store, _ = stored
    changed = suite.model_copy(update={"closed_set": [mmlu(shared_data, limit=4)]})
    [unit] = plan_closed(changed, Path("."))
    with store.read() as con:
        stored_keys = {k for (k,) in con.execute("SELECT result_key FROM closed_tasks").fetchall()}
    assert unit.key("mmlu_subset") not in stored_keys


def test_a_stored_task_is_checked_from_its_rows_and_loaded_only_to_run(stored, shared_data):
    """A task whose content the store has seen is not loaded while planning: its output types come
    from its stored rows (so a chat API is still refused a loglikelihood task), and lm-eval loads
    it only for a unit that must run."""
    suite, store, _ = stored
    changed = suite.model_copy(update={"closed_set": [mmlu(shared_data, limit=4)]})
    [unit] = plan_closed(changed, Path("."), store=store)
    assert not unit.cached and unit.loaded is None
    closed_run._load([unit])
    assert sorted(unit.loaded["tasks"]) == ["mmlu_subset"]

    chat = {"name": "chat", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    with_chat = suite.model_copy(update={"models": [*suite.models, chat]})
    with pytest.raises(ConfigError, match="cannot score loglikelihood task 'mmlu_subset'"):
        plan_closed(Suite.model_validate(with_chat.model_dump()), Path("."), store=store)


@pytest.mark.slow
def test_stored_accuracy_equals_the_lm_eval_cli(stored, tmp_path):
    """The reproduce command stored with a result, run as the real `lm_eval` CLI, prints the same number."""
    _, store, summary = stored
    result = next(r for r in summary.results if r.task == "mmlu_subset")
    out = tmp_path / "out"
    cli = result.cli.split()
    cli[0] = str(Path(sys.executable).parent / "lm_eval")
    subprocess.run(cli + ["--output_path", str(out)], check=True, capture_output=True, timeout=600)
    [results_file] = out.rglob("results_*.json")
    printed = json.loads(results_file.read_text())["results"]["mmlu_subset"]
    [mine] = [m for m in result.metrics if m["metric"] == "acc"]
    assert mine["value"] == printed["acc,none"] and mine["stderr"] == printed["acc_stderr,none"]


# --- one-line errors, before any model loads -----------------------------------------------------
def write_suite(tmp_path, closed_set, models=None) -> Path:
    path = tmp_path / "suite.yaml"
    models = models or [{"name": "tiny", "backend": "hf", "model": "smollm2-135m-instruct"}]
    path.write_text(yaml.safe_dump({"name": "bad", "models": models, "closed_set": closed_set}))
    return path


def plan(path: Path):
    suite, base_dir = load_suite(path)
    return plan_closed(suite, base_dir, str(path))


def test_unknown_task_name_is_one_line(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    path = write_suite(tmp_path, [{"task": "no_such_task", "include": "tasks"}])
    with pytest.raises(ConfigError) as err:
        plan(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "closed_set[0]" in message
    assert "no task named 'no_such_task'" in message


def test_missing_template_data_file_is_one_line(tmp_path):
    path = write_suite(tmp_path, [{"task": "t", "template": "numeric", "data": "missing.jsonl"}])
    with pytest.raises(DataError, match=r"closed_set\[0\].*missing\.jsonl not found: fix `data`"):
        plan(path)


def test_missing_data_file_inside_an_lm_eval_task_folder_is_one_line(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump({
        "task": "mine", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(tmp_path / "gone.jsonl")}},
        "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{q}}", "doc_to_target": "{{a}}",
        "metric_list": [{"metric": "exact_match"}]}))
    path = write_suite(tmp_path, [{"task": "mine", "include": "tasks"}])
    with pytest.raises(DataError) as err:
        plan(path)
    assert "\n" not in str(err.value) and "could not load the task's data" in str(err.value)


def test_wrong_field_name_names_the_data_file_and_the_fix(tmp_path, shared_data):
    data = shared_data / "closed_set" / "gsm8k_test_with_final_answer.jsonl"
    path = write_suite(tmp_path, [{"task": "g", "template": "numeric", "data": str(data)}])
    with pytest.raises(DataError, match=r"no field 'answer'.*set fields\.answer to one of"):
        plan(path)


def test_loglikelihood_task_on_a_chat_api_fails_before_any_request(tmp_path, shared_data):
    # Nothing listens on this port: the error must come from the plan, not from a request.
    models = [{"name": "chat", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}]
    path = write_suite(tmp_path, [{"task": "m", "template": "multiple_choice",
                                   "data": str(shared_data / "closed_set" / "mmlu_test_subset.jsonl")}], models)
    with pytest.raises(ConfigError) as err:
        plan(path)
    assert "\n" not in str(err.value) and "local-chat-completions" in str(err.value)
    assert "cannot score loglikelihood task 'm'" in str(err.value)


def test_cli_errors_exit_2_with_one_line(tmp_path):
    path = write_suite(tmp_path, [{"task": "t", "template": "numeric", "data": "missing.jsonl"}])
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "closed", "run", str(path), "--db",
                           str(tmp_path / "h.duckdb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.jsonl" in proc.stderr


def test_cli_samples_shows_stored_documents(stored):
    _, store, _ = stored
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "closed", "samples", "--task", "gsm8k_sample",
                           "--model", "tiny", "--db", str(store.path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("gsm8k_sample doc ") == 3 and "target: 18" in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "harness.cli", "closed", "samples", "--task", "nope",
                              "--model", "tiny", "--db", str(store.path)], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "stored task/model pairs: gsm8k_sample/tiny" in missing.stderr


def test_a_server_without_prompt_logprobs_fails_fast(tmp_path):
    """A completions server that ignores `echo` (returns only the generated token's logprob) is
    refused by one probe request, with a message saying what to use instead."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from harness.closed.backends import LMEvalModel, probe_prompt_logprobs
    from harness.errors import BackendError

    class NoEcho(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"choices": [{"text": " x", "logprobs": {"token_logprobs": [-0.5], "tokens": [" x"]}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NoEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/completions"
    try:
        with pytest.raises(BackendError, match="no prompt logprobs.*use an hf spec"):
            probe_prompt_logprobs(LMEvalModel("local-completions", {"base_url": url, "model": "m"}))
    finally:
        server.shutdown()


def test_registry_task_whose_data_is_on_the_hub_says_so_offline(tmp_path, monkeypatch):
    """A registry name resolves through lm-eval's own task index; with no hub its data cannot be
    fetched, and the error says how to run it from a local copy."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = write_suite(tmp_path, [{"task": "arc_easy"}])
    with pytest.raises(DataError) as err:
        plan(path)
    assert "\n" not in str(err.value) and "task 'arc_easy'" in str(err.value) and "local copy" in str(err.value)


def test_quickstart_closed_set_task_is_built_in(tmp_path):
    """The quickstart's own task ships inside the package (builtin:), so the suite works wherever
    it is copied."""
    from harness.closed.tasks import materialize

    suite, _ = load_suite("quickstart")
    [spec] = suite.closed_set
    task = materialize(spec, 0, tmp_path, "quickstart")  # a folder unrelated to the package
    text = next(task.include_dir.glob("*.yaml")).read_text()
    assert "quickstart_knowledge.jsonl" in text and "output_type: multiple_choice" in text


@pytest.mark.parametrize("verbose", ["", "1"])
def test_lm_evals_own_progress_bars_show_only_when_asked_for(tmp_path, tiny_model_path, shared_data, capsys,
                                                             monkeypatch, verbose):
    monkeypatch.setenv("HARNESS_VERBOSE", verbose)
    run_closed(tiny_suite(tiny_model_path, [mmlu(shared_data, limit=2)]), Path("."), Store(tmp_path / "h.duckdb"))
    assert ("Running loglikelihood requests" in capsys.readouterr().err) is bool(verbose)
