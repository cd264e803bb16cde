"""Closed-set tasks: from a suite's `closed_set` entries to lm-eval task folders, with a content hash.

A template entry becomes a real lm-eval task folder (one YAML, absolute data path) under the cache,
so the same folder can be handed to the `lm_eval` CLI to reproduce a stored number exactly.

The content hash (`ClosedTask.hash`, stored as `closed_tasks.task_hash`) is computed from files
alone, without importing lm-eval: importing it and indexing tasks with a TaskManager costs seconds,
and a cached rerun needs nothing but the hash to find its stored results. The definition, per kind:

  template  sha256 of the task YAML as rendered from the template, with the data file named by the
            sha256 of its bytes instead of its path: the template text, task name, field mapping,
            max_gen_toks and data bytes, and nothing about where the file lives.
  include   sha256 of every .yaml/.yml/.py file in the folder (relative path -> bytes), of the YAML
            they `include:` and the `!function` modules they name outside it, and of the bytes of
            each local data file their `dataset_kwargs` (data_files, data_dir) or `dataset_path`
            name (keyed as written).
  registry  the task name only: lm-eval's own YAML is fixed by its version, which is in every
            result key's settings; hub data is not hashed (it is not local).

lm-eval's version is in every result key's settings too, so how it reads the same YAML is pinned.
The same inputs always give the same hash; lm-eval loads a task only when one must run, or when a
store has never seen its hash (to check its name and data before any model is resolved).
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

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
TASK_FILE_SUFFIXES = {".yaml", ".yml", ".py"}  # what lm-eval reads from an include folder


@dataclass
class ClosedTask:
    """One suite entry, made concrete: where lm-eval finds it and what its result depends on."""

    spec: ClosedTaskSpec
    include_dir: Path | None  # None: lm-eval's built-in registry
    where: str  # for error messages: "suite.yaml: closed_set[0] (task 'x')"
    hash: str = ""  # content hash, see the module docstring


def materialize(spec: ClosedTaskSpec, index: int, base_dir: Path, source: str) -> ClosedTask:
    """Check the entry's files, write a template's task folder, hash the task (no lm-eval import).
    `source` names the suite file in error messages."""
    where = f"{source}: closed_set[{index}] (task '{spec.task}')"
    if spec.template:
        folder, task_hash = _write_template_task(spec, base_dir, where)
        return ClosedTask(spec, folder, where, task_hash)
    if spec.include:
        folder = (base_dir / spec.include).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{where}: include folder {folder} does not exist: fix `include`"
                              " (relative paths resolve against the suite file's folder)")
        return ClosedTask(spec, folder, where, include_hash(folder))
    return ClosedTask(spec, None, where, stable_hash({"registry": spec.task}))


def data_path(spec: ClosedTaskSpec, base_dir: Path) -> Path:
    """`builtin:NAME` is a data file shipped with the harness; anything else is a path."""
    if spec.data.startswith("builtin:"):
        return Path(str(resources.files("harness.closed").joinpath("data", spec.data[8:] + ".jsonl")))
    return (base_dir / spec.data).resolve()


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _write_template_task(spec: ClosedTaskSpec, base_dir: Path, where: str) -> tuple[Path, str]:
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
    template = string.Template(_template_text(spec.template))
    values = {"task": spec.task, "max_gen_toks": spec.max_gen_toks, **fields}
    text = template.substitute(data_file=json.dumps(str(data)), **values)
    # Hashed with the data file named by its bytes, not its path: the same data installed or
    # copied elsewhere keeps its stored results, and changed bytes at the same path do not.
    task_hash = stable_hash({"template": template.substitute(
        data_file=json.dumps("sha256:" + file_sha256(data)), **values)})
    folder = cache_root() / "closed-tasks" / f"{spec.task}-{stable_hash(text)[:12]}"
    yaml_file = folder / f"{spec.task}.yaml"
    if not yaml_file.is_file() or yaml_file.read_text() != text:  # a cached rerun writes nothing
        folder.mkdir(parents=True, exist_ok=True)
        yaml_file.write_text(text)
    return folder, task_hash


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


# --- include folders: hashed from their files, without lm-eval ------------------------------------
class _Tagged(dict):
    """A tagged YAML value (`!function utils.f`), kept so the file it names can be hashed."""


class _TolerantLoader(yaml.SafeLoader):
    """Reads lm-eval YAML without lm-eval: tags become _Tagged values instead of imports."""


_TolerantLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: _Tagged(tag=suffix, value=loader.construct_scalar(node)
                                              if isinstance(node, yaml.ScalarNode) else None))


def include_hash(folder: Path) -> str:
    """See the module docstring. The whole folder, not one file: groups name their tasks across
    files and lm-eval indexes every YAML in it. Other files (a store, logs, data that no YAML
    names) are left out, so writing next to the tasks does not invalidate them."""
    own = _task_files(folder)
    files = {str(p.relative_to(folder)): file_sha256(p) for p in own}
    outside: dict[str, str] = {}  # files the folder's YAML names elsewhere: written -> sha256
    data: dict[str, Any] = {}  # local data named by dataset_* keys: as written -> digest
    queue = [p for p in own if p.suffix != ".py"]
    seen = set(queue)
    while queue:
        path = queue.pop()
        config = _read_yaml(path)
        for written in _data_references(config):
            data[written] = _local_digest(Path(written))
        for written, named in _file_references(config, path.parent):
            if named.is_file() and not named.is_relative_to(folder):
                outside[written] = file_sha256(named)
            if named.suffix in (".yaml", ".yml") and named.is_file() and named not in seen:
                seen.add(named)
                queue.append(named)
    return stable_hash({"include": {"files": files, "outside": outside, "data": data}})


def _task_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in TASK_FILE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") or part == "__pycache__"
                              for part in p.relative_to(folder).parts))


def _read_yaml(path: Path) -> dict:
    try:
        config = yaml.load(path.read_text(), Loader=_TolerantLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}  # hashed by its bytes above; lm-eval reports the error if the task must run
    return config if isinstance(config, dict) else {}


def _file_references(config: dict, here: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) of YAML this one `include:`s and of `!function` modules, resolved
    the way lm-eval does: relative to the YAML's own folder."""
    refs = []
    includes = config.get("include")
    for inc in includes if isinstance(includes, list) else [includes]:
        if isinstance(inc, str):
            refs.append((inc, (here / inc).resolve()))
    for tagged in _tagged(config):
        if tagged.get("tag") == "function" and isinstance(tagged.get("value"), str):
            module = tagged["value"].rpartition(".")[0]
            if Path(module).is_absolute():
                path = Path(module if module.endswith(".py") else module + ".py")
            else:  # "utils.f" -> utils.py beside the YAML (an importable module is lm-eval's or pinned)
                path = here / (module.replace(".", "/") + ".py")
            refs.append((tagged["value"], path.resolve()))
    return refs


def _tagged(value: Any) -> list[_Tagged]:
    if isinstance(value, _Tagged):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tagged(v)]
    if isinstance(value, list):
        return [t for v in value for t in _tagged(v)]
    return []


def _data_references(config: dict) -> list[str]:
    """Local paths a task's data is read from, as written (relative ones resolve against the working
    directory, as `datasets` resolves them)."""
    kwargs = config.get("dataset_kwargs") if isinstance(config.get("dataset_kwargs"), dict) else {}
    files = kwargs.get("data_files")
    values = list(files.values()) if isinstance(files, dict) else [files]
    written = [one for value in values for one in (value if isinstance(value, list) else [value])]
    written += [kwargs.get("data_dir"), config.get("dataset_path")]
    return [w for w in written if isinstance(w, str) and Path(w).exists()]


def _local_digest(path: Path) -> str | dict[str, str]:
    if path.is_file():
        return file_sha256(path)
    return {str(p.relative_to(path)): file_sha256(p) for p in sorted(path.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)}


# --- lm-eval: imported only here, when a task must be loaded or run ------------------------------
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


def output_types(loaded: dict) -> set[str]:
    return {t.get_config("output_type") for t in loaded["tasks"].values()}


def needs_loglikelihood(types: set[str]) -> bool:
    return bool(set(types) & LOGLIKELIHOOD_TYPES)
