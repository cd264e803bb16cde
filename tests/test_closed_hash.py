"""The closed-set task hash: computed from files alone (no lm-eval import), it changes exactly when
what a result depends on changes, and a stored task is found again without importing lm-eval."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.closed import run_closed
from harness.closed import tasks as closed_tasks
from harness.closed.tasks import include_hash, materialize
from harness.config import ClosedTaskSpec, HFModelSpec, Suite, load_suite
from harness.store import Store

ROW = {"question": "2 + 2 =", "choices": ["3", "4", "5", "22"], "answer": "B"}


def template_hash(data: Path, tmp_path: Path, **kw) -> str:
    spec = ClosedTaskSpec(task="t", template=kw.pop("template", "cloze"), data=str(data), **kw)
    return materialize(spec, 0, tmp_path, "suite.yaml").hash


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_template_hash_follows_template_text_and_data_bytes_only(tmp_path, monkeypatch):
    data = write_rows(tmp_path / "a" / "data.jsonl", [ROW])
    first = template_hash(data, tmp_path)
    assert template_hash(data, tmp_path) == first  # same inputs, same hash

    # the same bytes elsewhere (a reinstall, a copied suite folder): same hash
    moved = shutil.copy(data, tmp_path / "b.jsonl")
    assert template_hash(Path(moved), tmp_path) == first

    # different data bytes at the same path: another hash
    write_rows(data, [ROW, {**ROW, "question": "3 + 3 ="}])
    changed_data = template_hash(data, tmp_path)
    assert changed_data != first
    write_rows(data, [ROW])
    assert template_hash(data, tmp_path) == first

    # the template's text: another hash (even a comment: the YAML is hashed as text)
    original = closed_tasks._template_text
    monkeypatch.setattr(closed_tasks, "_template_text", lambda name: original(name) + "# edited\n")
    assert template_hash(data, tmp_path) not in (first, changed_data)
    monkeypatch.setattr(closed_tasks, "_template_text", original)

    # what is substituted into it: another template, a field mapping, the task name
    assert template_hash(data, tmp_path, template="multiple_choice") != first
    write_rows(data, [{**ROW, "q": ROW["question"]}])
    renamed = template_hash(data, tmp_path, fields={"question": "q"})
    assert renamed != template_hash(data, tmp_path)


def make_include(folder: Path, data: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.yaml").write_text(yaml.safe_dump({
        "task": "mine", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{question}}",
        "doc_to_target": "{{answer}}", "metric_list": [{"metric": "exact_match"}]}))
    # lm-eval's own tags (`!function`) must not stop the hash, and the module they name counts
    (folder / "mine.yaml").write_text((folder / "mine.yaml").read_text() + "process_docs: !function utils.keep\n")
    (folder / "utils.py").write_text("def keep(docs):\n    return docs\n")
    return folder


def test_include_hash_follows_task_files_and_named_data_only(tmp_path):
    data = write_rows(tmp_path / "data.jsonl", [ROW])
    folder = make_include(tmp_path / "tasks", data)
    first = include_hash(folder)
    assert include_hash(folder) == first

    (folder / "harness.duckdb").write_bytes(b"a store written beside the tasks")
    (folder / "notes.txt").write_text("not read by lm-eval")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "utils.cpython-311.pyc").write_bytes(b"\0")
    assert include_hash(folder) == first

    write_rows(data, [ROW, ROW])  # the data file the YAML names, outside the folder
    assert include_hash(folder) != first
    write_rows(data, [ROW])
    assert include_hash(folder) == first

    (folder / "utils.py").write_text("def keep(docs):\n    return docs[:1]\n")
    assert include_hash(folder) != first
    (folder / "utils.py").write_text("def keep(docs):\n    return docs\n")
    assert include_hash(folder) == first

    (folder / "mine.yaml").write_text((folder / "mine.yaml").read_text().replace("{{question}}", "Q: {{question}}"))
    assert include_hash(folder) != first


def test_include_hash_follows_included_yaml_outside_the_folder(tmp_path):
    base = tmp_path / "shared" / "base.yaml"
    base.parent.mkdir()
    base.write_text("output_type: generate_until\n")
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "t.yaml").write_text("include: ../shared/base.yaml\ntask: t\n")
    first = include_hash(folder)
    base.write_text("output_type: multiple_choice\n")
    assert include_hash(folder) != first


def test_registry_task_hash_is_its_name(tmp_path):
    one = materialize(ClosedTaskSpec(task="arc_easy"), 0, tmp_path, "s")
    assert one.hash == materialize(ClosedTaskSpec(task="arc_easy"), 0, tmp_path / "x", "s").hash
    assert one.hash != materialize(ClosedTaskSpec(task="arc_challenge"), 0, tmp_path, "s").hash


# --- a stored task is found without lm-eval -------------------------------------------------------
CACHED_RERUN = """
import sys
from pathlib import Path
from harness.closed import plan_closed, run_closed
from harness.config import Suite
from harness.store import Store

suite = Suite.model_validate_json(Path(sys.argv[1]).read_text())
store = Store(sys.argv[2])
units = plan_closed(suite, Path("."), store=store)
assert units and all(u.cached for u in units), [(u.spec.name, u.cached) for u in units]
summary = run_closed(suite, Path("."), store)
assert [r.cached for r in summary.results] == [True], summary.results
loaded = sorted(m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval."))
assert not loaded, loaded
print("ok")
"""


@pytest.mark.slow
def test_cached_quickstart_closed_task_does_not_import_lm_eval(tmp_path, tiny_model_path):
    """The quickstart's own task (builtin data, cloze template) run once on the tiny model; then a
    fresh process plans and reruns it: stored, nothing run, and lm_eval never imported."""
    quickstart, _ = load_suite("quickstart")
    [task] = quickstart.closed_set
    model = HFModelSpec(name="tiny", model=str(tiny_model_path), batch_size=8, device="cpu")
    suite = Suite(name="qs-closed", models=[model], closed_set=[task.model_copy(update={"limit": 4})])
    store = Store(tmp_path / "h.duckdb")
    [first] = run_closed(suite, Path("."), store).results
    assert not first.cached and first.n_samples == 4

    suite_file = tmp_path / "suite.json"
    suite_file.write_text(suite.model_dump_json())
    proc = subprocess.run([sys.executable, "-c", CACHED_RERUN, str(suite_file), str(store.path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
