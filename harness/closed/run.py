"""Run a suite's closed-set tasks through lm-eval's Python API and store every number it reports.

Everything that can be checked is checked before the first model loads: task names, data files,
and whether each backend can score each task type. A (model, task) result is keyed by the model's
fingerprint, the task's content hash (harness.closed.tasks, computed without lm-eval) and the
settings, so a rerun finds it, calls nothing and does not even import lm-eval.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.closed.backends import LM_EVAL_MODEL, check_compatible, cli_command, open_lm, probe_prompt_logprobs
from harness.closed.tasks import (ClosedTask, load_task, materialize, needs_loglikelihood, output_types,
                                  task_manager)
from harness.config import Suite
from harness.errors import MissingExtraError
from harness.models.base import create_backend, stable_hash
from harness.runner import Progress, _Silent, recorded_run
from harness.store import Store
from harness.store import closed as cq
from harness.verbosity import third_party_stderr


@dataclass
class _Unit:
    """One model x one task: what to run and under which key its results are stored."""

    spec: Any
    task: ClosedTask
    fingerprint: str
    settings: dict
    loaded: dict | None = None  # lm-eval's {"tasks": {leaf: Task}}: loaded only when it must run
    cached: bool = False  # the store holds its results (planned with a store)

    @property
    def task_hash(self) -> str:
        return self.task.hash

    def key(self, leaf: str) -> str:
        return stable_hash({"model": self.fingerprint, "task": self.task.spec.task, "leaf": leaf,
                            "task_hash": self.task_hash, "settings": self.settings})


@dataclass
class ClosedResult:
    model: str
    task: str
    cached: bool
    metrics: list[dict] = field(default_factory=list)  # {task, metric, filter, value, stderr}
    n_samples: int = 0
    wall_s: float = 0.0
    cli: str = ""


@dataclass
class ClosedSummary:
    run_id: str
    results: list[ClosedResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def n_cached(self) -> int:
        return sum(r.cached for r in self.results)


def plan_closed(suite: Suite, base_dir: Path, source: str | None = None,
                store: Store | None = None) -> list[_Unit]:
    """Validate every task and backend pairing; no model is loaded, no request sent.

    With `store`, each unit says whether its results are stored (`cached`), and a task whose
    content hash the store has seen is not loaded through lm-eval: it was checked when it ran, and
    its output types are in its stored rows. So a fully cached plan never imports lm-eval."""
    if not suite.closed_set:
        return []
    source = source or f"suite '{suite.name}'"
    tasks = [materialize(spec, i, base_dir, source) for i, spec in enumerate(suite.closed_set)]
    stored = _stored_rows(store, tasks)
    # First sight of a task's content: lm-eval checks its name and data now, before any model is
    # resolved (resolving a catalog model may convert it, which is slow). One TaskManager for all.
    fresh = [task for task in tasks if task.hash not in stored]
    manager = task_manager(fresh) if fresh else None
    units = []
    for task in tasks:
        rows = stored.get(task.hash, [])
        loaded = None if rows else load_task(manager, task)
        types = output_types(loaded) if loaded else {r[3] for r in rows}
        for spec in suite.models:
            if task.spec.models is not None and spec.name not in task.spec.models:
                continue
            check_compatible(spec, task.where, task.spec.task, needs_loglikelihood(types))
            units.append(_Unit(spec, task, "", _settings(task, spec), loaded))
    for unit in units:  # after every check: resolving a catalog model may convert it (slow)
        unit.fingerprint = _fingerprint(unit.spec)
        # A unit's leaves are written in one transaction (_evaluate), so one stored leaf under its
        # key means all are: the check needs no leaf names, hence no lm-eval.
        unit.cached = any(key == unit.key(leaf) for _, key, leaf, _ in stored.get(unit.task_hash, []))
    return units


def _stored_rows(store: Store | None, tasks: list[ClosedTask]) -> dict[str, list[tuple]]:
    """task hash -> its stored (task_hash, result_key, leaf, output_type) rows."""
    if store is None:
        return {}
    with store.read() as con:
        rows = cq.stored_results(con, sorted({t.hash for t in tasks}))
    by_hash: dict[str, list[tuple]] = {}
    for row in rows:
        by_hash.setdefault(row[0], []).append(row)
    return by_hash


def _settings(task: ClosedTask, spec) -> dict:
    import importlib.metadata

    try:  # read from the installed package's metadata: no lm-eval import
        version = importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError("lmeval", "lm-eval") from None
    return {
        "num_fewshot": task.spec.num_fewshot,
        "limit": task.spec.limit,
        "batch_size": task.spec.batch_size or getattr(spec, "batch_size", 1),
        # chat APIs take messages, so local-chat-completions always applies the server's template
        "apply_chat_template": task.spec.apply_chat_template or spec.backend == "openai",
        "max_gen_toks": task.spec.max_gen_toks if task.spec.template == "numeric" else None,
        "lm_eval_version": version,
    }


def _fingerprint(spec) -> str:
    backend = create_backend(spec)
    try:
        return backend.fingerprint()
    finally:
        backend.close()


def run_closed(suite: Suite, base_dir: Path, store: Store, progress: Progress | None = None,
               force: bool = False, source: str | None = None,
               servers: dict[str, str] | None = None, run_groups: Callable | None = None) -> ClosedSummary:
    """Run every (model, task) of `suite.closed_set` not already stored; `force` reruns them all.
    Relative paths resolve against `base_dir`; `source` (the suite file) names it in errors;
    `servers` maps vllm model names to the base URL of a server already running for them.
    `run_groups(groups, servers)` yields (unit, Evaluated) as lm-eval finishes each unit: by
    default `groups_here` (in this process, one group after the other); the Ray executor runs the
    groups on its nodes (harness.executors.ray_closed). Either way this process stores the rows."""
    progress = progress or _Silent()
    units = plan_closed(suite, base_dir, source, store)
    summary = ClosedSummary(run_id=uuid.uuid4().hex[:12])
    todo = [u for u in units if force or not u.cached]
    summary.results += [ClosedResult(u.spec.name, u.task.spec.task, cached=True)
                        for u in units if u.cached and not force]
    if not todo:
        return summary
    load_units(todo)

    def totals() -> dict:
        done = sum(not r.cached for r in summary.results)
        return {"planned": len(units), "cached": len(units) - len(todo), "generated": done,
                "failed": len(todo) - done}

    progress.start("closed-set (lm-eval)", len(todo))
    with recorded_run(store, summary.run_id, suite, progress, totals) as record:
        for unit, evaluated in (run_groups or groups_here)(_by_model_and_batch(todo), servers or {}):
            summary.results.append(_store(unit, evaluated, suite.name, store, summary.run_id))
            progress.advance(1)
    summary.wall_s = record["wall_s"]
    return summary


def load_units(units: list[_Unit]) -> None:
    """lm-eval loads the tasks that must run and that the plan did not load (seen before, under
    another model or settings); one TaskManager for them all, before any model loads."""
    tasks = {id(u.task): u.task for u in units if u.loaded is None}
    if not tasks:
        return
    manager = task_manager(list(tasks.values()))
    loaded = {key: load_task(manager, task) for key, task in tasks.items()}
    for unit in units:
        if unit.loaded is None:
            unit.loaded = loaded[id(unit.task)]


_load = load_units  # the name tests/test_closed.py uses


def _by_model_and_batch(units: list[_Unit]) -> list[list[_Unit]]:
    """One lm-eval model instance (and one server) per model spec and batch size."""
    groups: dict[tuple[str, int], list[_Unit]] = {}
    for unit in units:
        groups.setdefault((unit.spec.name, unit.settings["batch_size"]), []).append(unit)
    return list(groups.values())


@dataclass
class Evaluated:
    """What lm-eval returned for one unit and how it ran: all its stored rows are made from."""

    results: dict  # the parts of simple_evaluate's output the rows use (RESULT_PARTS)
    wall_s: float
    cli: str
    model_args: dict


RESULT_PARTS = ("results", "higher_is_better", "samples", "versions", "n-shot", "n-samples")


def groups_here(groups: list[list[_Unit]], servers: dict[str, str]) -> Iterator[tuple[_Unit, Evaluated]]:
    """The default `run_groups`: every group in this process, one after the other."""
    for group in groups:
        yield from evaluate_group(group, servers.get(group[0].spec.name))


def evaluate_group(units: list[_Unit], base_url: str | None = None) -> Iterator[tuple[_Unit, Evaluated]]:
    """One lm-eval model for the group's units (loaded tasks), each unit evaluated in turn."""
    spec = units[0].spec
    with open_lm(spec, units[0].settings["batch_size"], base_url) as lm:
        for unit in units:
            if spec.backend == "vllm" and needs_loglikelihood(output_types(unit.loaded)):
                probe_prompt_logprobs(lm)
            yield unit, _evaluate(unit, lm)


def _evaluate(unit: _Unit, lm) -> Evaluated:
    from lm_eval import simple_evaluate

    name = unit.task.spec.task
    manager = task_manager([unit.task])
    logging.getLogger("lm_eval").setLevel(logging.WARNING)  # our progress bar, not its INFO lines
    started = time.perf_counter()
    with third_party_stderr():
        results = simple_evaluate(
            model=lm.instance, tasks=[name], task_manager=manager, num_fewshot=unit.settings["num_fewshot"],
            limit=unit.settings["limit"], apply_chat_template=unit.settings["apply_chat_template"],
            log_samples=True,
        )
    wall_s = time.perf_counter() - started
    cli = cli_command(lm, unit.task.include_dir, name, unit.settings)
    return Evaluated({k: results.get(k) for k in RESULT_PARTS}, wall_s, cli, dict(lm.args))


def _store(unit: _Unit, done: Evaluated, suite_name: str, store: Store, run_id: str) -> ClosedResult:
    """Write one unit's rows (every leaf task in one transaction)."""
    name, results, wall_s, cli = unit.task.spec.task, done.results, done.wall_s, done.cli
    result = ClosedResult(unit.spec.name, name, cached=False, wall_s=wall_s, cli=cli)
    with store.write() as con:
        for leaf in sorted(unit.loaded["tasks"]):
            row, metrics, samples = _rows(unit, leaf, results, suite_name, run_id, wall_s, done.model_args, cli)
            cq.insert_result(con, row, metrics, samples)
            result.n_samples += row["n_samples"]
            result.metrics += [{"task": leaf, "metric": m[1], "filter": m[2], "value": m[3], "stderr": m[4]}
                               for m in metrics]
    return result


def _rows(unit: _Unit, leaf: str, results: dict, suite_name: str, run_id: str, wall_s: float, model_args: dict,
          cli: str):
    key = unit.key(leaf)
    task_obj = unit.loaded["tasks"][leaf]
    metrics = _metric_rows(key, results["results"].get(leaf, {}), results["higher_is_better"].get(leaf, {}))
    samples = [_sample_row(key, s) for s in results.get("samples", {}).get(leaf, [])]
    row = {
        "result_key": key, "suite_name": suite_name, "model": unit.spec.name,
        "model_fingerprint": unit.fingerprint, "task": leaf, "task_hash": unit.task_hash,
        "task_version": str(results["versions"].get(leaf)), "num_fewshot": int(results["n-shot"].get(leaf, 0)),
        "n_samples": int(results["n-samples"][leaf]["effective"]),
        "settings_json": json.dumps({**unit.settings, "model_args": model_args, "cli": cli}, sort_keys=True),
        "lm_eval_backend": LM_EVAL_MODEL[unit.spec.backend], "lm_eval_version": unit.settings["lm_eval_version"],
        "output_type": task_obj.get_config("output_type"), "wall_s": wall_s, "run_id": run_id,
    }
    return row, metrics, samples


def _metric_rows(key: str, task_results: dict, higher: dict) -> list[tuple]:
    """lm-eval reports "acc,none" and "acc_stderr,none"; we store (metric, filter, value, stderr)."""
    rows = []
    for name, value in task_results.items():
        if "," not in name or "_stderr," in name:
            continue
        metric, filt = name.split(",", 1)
        stderr = task_results.get(f"{metric}_stderr,{filt}")
        rows.append((key, metric, filt, _number(value), _number(stderr), higher.get(metric)))
    return rows


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # lm-eval writes "N/A" for a stderr it could not compute
        return None


def _sample_row(key: str, sample: dict) -> tuple:
    metric_names = [m for m in sample["metrics"] if _number(sample.get(m)) is not None]
    return (
        key, int(sample["doc_id"]), sample["filter"], str(sample["arguments"][0][0]),
        None if sample.get("target") is None else str(sample["target"]),
        [_text(r[0] if isinstance(r, list) and len(r) == 1 else r) for r in sample["resps"]],
        _text(sample["filtered_resps"][0] if len(sample["filtered_resps"]) == 1 else sample["filtered_resps"]),
        metric_names, [_number(sample[m]) for m in metric_names],
    )


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
