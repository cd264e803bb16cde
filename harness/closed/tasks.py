"""Closed-set tasks: from a suite's `closed_set` entries to lm-eval Task objects, with a content hash.

A template entry becomes a real lm-eval task folder (one YAML, absolute data path) under the cache,
so the same folder can be handed to the `lm_eval` CLI to reproduce a stored number exactly.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.config import ClosedTaskSpec
from harness.errors import ConfigError, DataError, MissingExtraError
from harness.models.base import stable_hash
from harness.models.catalog import cache_root

# Template field -> default data field. Users remap with `fields:`.
TEMPLATE_FIELDS = {
    "multiple_choice": {"question": "question", "choices": "choices", "answer": "answer"},
    "cloze": {"question": "question", "choices": "choices", "answer": "answer"},
    "numeric": {"question": "question", "answer": "answer"},
}
LOGLIKELIHOOD_TYPES = {"loglikelihood", "loglikelihood_rolling", "multiple_choice"}


@dataclass
class ClosedTask:
    """One suite entry, made concrete: where lm-eval finds it and what its result depends on."""

    spec: ClosedTaskSpec
    include_dir: Path | None  # None: lm-eval's built-in registry
    where: str  # for error messages: "suite.yaml: closed_set[0] (task 'x')"


def materialize(spec: ClosedTaskSpec, index: int, base_dir: Path, source: str) -> ClosedTask:
    """Check the entry's files and, for a template, write its task folder. `source` names the
    suite file in error messages."""
    where = f"{source}: closed_set[{index}] (task '{spec.task}')"
    if spec.template:
        return ClosedTask(spec, _write_template_task(spec, base_dir, where), where)
    if spec.include:
        folder = (base_dir / spec.include).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{where}: include folder {folder} does not exist: fix `include`"
                              " (relative paths resolve against the suite file's folder)")
        return ClosedTask(spec, folder, where)
    return ClosedTask(spec, None, where)


def data_path(spec: ClosedTaskSpec, base_dir: Path) -> Path:
    """`builtin:NAME` is a data file shipped with the harness; anything else is a path."""
    if spec.data.startswith("builtin:"):
        return Path(str(resources.files("harness.closed").joinpath("data", spec.data[8:] + ".jsonl")))
    return (base_dir / spec.data).resolve()


def _write_template_task(spec: ClosedTaskSpec, base_dir: Path, where: str) -> Path:
    data = data_path(spec, base_dir)
    if not data.is_file():
        raise DataError(f"{where}: data file {data} not found: fix `data`"
                        " (relative paths resolve against the suite file's folder)")
    fields = dict(TEMPLATE_FIELDS[spec.template])
    unknown = sorted(set(spec.fields) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: fields.{unknown[0]} is not a field of the {spec.template} template:"
                          f" use {', '.join(sorted(fields))}")
    fields.update(spec.fields)
    _check_first_row(data, fields, where)
    text = string.Template(_template_text(spec.template)).substitute(
        task=spec.task, data_file=json.dumps(str(data)), max_gen_toks=spec.max_gen_toks, **fields
    )
    folder = cache_root() / "closed-tasks" / f"{spec.task}-{stable_hash(text)[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{spec.task}.yaml").write_text(text)
    return folder


def _template_text(name: str) -> str:
    return resources.files("harness.closed").joinpath("templates", f"{name}.yaml").read_text()


def _check_first_row(data: Path, fields: dict[str, str], where: str) -> None:
    """Catch a wrong field name here, in one line, rather than as a Jinja error mid-run."""
    with data.open() as fh:
        first = fh.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError as exc:
        raise DataError(f"{data}:1: not valid JSON ({exc.msg}): each line must be one JSON object") from None
    for template_field, data_field in fields.items():
        if data_field not in row:
            raise DataError(f"{data}:1: no field '{data_field}' (the template's {template_field}):"
                            f" {where}: set fields.{template_field} to one of {', '.join(sorted(row))}")


def task_manager(tasks: list[ClosedTask]) -> Any:
    """One lm-eval TaskManager over every include folder; the (slow) built-in index only if needed."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise MissingExtraError("lmeval", "lm-eval") from None
    includes = sorted({str(t.include_dir) for t in tasks if t.include_dir})
    needs_registry = any(t.include_dir is None for t in tasks)
    manager = TaskManager(include_path=includes or None, include_defaults=needs_registry)
    for task in tasks:
        if task.spec.task not in manager.all_tasks:
            looked = f"in {task.include_dir}" if task.include_dir else "in lm-eval's registry"
            raise ConfigError(f"{task.where}: lm-eval has no task named '{task.spec.task}' ({looked}):"
                              " fix the name (`lm_eval ls tasks` lists the registry)")
    return manager


def load_task(manager: Any, task: ClosedTask) -> dict:
    """lm-eval's {"tasks": {leaf: Task}, "groups": ...} for one entry; data errors become one line."""
    try:
        return manager.load([task.spec.task])
    except Exception as exc:  # datasets raises many types for missing files, bad JSON, no network
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (": the hub is off (HF_HUB_OFFLINE=1); point a template or an `include` task at a local copy"
                if "offline" in first.lower() else "")
        raise DataError(f"{task.where}: lm-eval could not load the task's data: {first[:300]}{hint}") from None


def task_hash(loaded: dict) -> str:
    """Every leaf task's resolved config plus the bytes of its local data files."""
    parts = []
    for name, task_obj in sorted(loaded["tasks"].items()):
        config = task_obj.dump_config()
        parts.append({"task": name, "config": config, "data": _local_data_hashes(config)})
    return stable_hash(parts)


def _local_data_hashes(config: dict) -> dict[str, str]:
    files = ((config.get("dataset_kwargs") or {}).get("data_files")) or {}
    paths = files.values() if isinstance(files, dict) else files if isinstance(files, list) else [files]
    hashes = {}
    for path in paths:
        for one in path if isinstance(path, list) else [path]:
            if Path(str(one)).is_file():
                hashes[str(one)] = hashlib.sha256(Path(str(one)).read_bytes()).hexdigest()
    return hashes


def output_types(loaded: dict) -> set[str]:
    return {t.get_config("output_type") for t in loaded["tasks"].values()}


def needs_loglikelihood(loaded: dict) -> bool:
    return bool(output_types(loaded) & LOGLIKELIHOOD_TYPES)
