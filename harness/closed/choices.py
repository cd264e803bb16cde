"""The choices of stored multiple-choice samples: their texts, read back from the task's own files,
beside each choice's log-likelihood, which one the model picked and which one is the target.

A closed_samples row keeps the context and each choice's `[log-likelihood, is-greedy]` but not the
choices' texts. The stored `lm_eval` command names the task folder (`--include_path`); a task the
harness wrote from a template (or any local JSON task) names its data file and its `doc_to_choice`
there, so the doc_id-th row of that file, rendered through `doc_to_choice` as lm-eval renders it,
gives the texts back. No lm-eval import (it costs seconds): Jinja, which lm-eval renders with. For a
registry task, a task that processes its documents in Python, or a data file that has moved, the
texts are None and the choices are shown by number.
"""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

from harness.closed.tasks import _read_yaml


def choice_texts(cli: str, task: str, doc_ids: set[int]) -> dict[int, list[str]]:
    """{doc_id: choice texts} for the documents of `task` that can be read back (see the module
    docstring); `cli` is the stored `lm_eval` command."""
    try:
        import jinja2  # lm-eval's own dependency: there whenever closed-set results are
    except ImportError:
        return {}
    config = _task_config(cli, task)
    data = _data_file(config) if config else None
    if data is None:
        return {}
    wanted, out = set(doc_ids), {}
    try:
        with data.open(encoding="utf-8") as fh:
            docs = (json.loads(line) for line in fh if line.strip())
            for doc_id, doc in enumerate(docs):
                if doc_id in wanted:
                    out[doc_id] = [str(c) for c in _render_choices(config["doc_to_choice"], doc)]
                if len(out) == len(wanted):
                    break
    except (OSError, ValueError, SyntaxError, TypeError, LookupError, jinja2.TemplateError):
        return {}  # the file changed shape since the run: show the choices by number
    return out


def choices(responses: list[str], texts: list[str] | None, target: str | None) -> dict:
    """One sample's choices: [{index, text, loglikelihood, greedy}], `picked` (highest
    log-likelihood: lm-eval's acc), `picked_norm` (highest per character of the choice's text:
    acc_norm; None without texts) and `target_index` (None when the target names no choice)."""
    scored = [json.loads(r) for r in responses]
    rows = [{"index": i, "text": texts[i] if texts and i < len(texts) else None, "loglikelihood": float(ll),
             "greedy": bool(greedy)} for i, (ll, greedy) in enumerate(scored)]
    picked = max(range(len(rows)), key=lambda i: rows[i]["loglikelihood"]) if rows else None
    normed = None
    if rows and texts and len(texts) == len(rows):
        normed = max(range(len(rows)), key=lambda i: rows[i]["loglikelihood"] / max(len(texts[i]), 1))
    return {"choices": rows, "picked": picked, "picked_norm": normed, "target_index": _target_index(target, texts)}


def _target_index(target: str | None, texts: list[str] | None) -> int | None:
    if target is None:
        return None
    if target.strip().isdigit():
        return int(target)
    return texts.index(target) if texts and target in texts else None


def _task_config(cli: str, task: str) -> dict | None:
    args = shlex.split(cli or "")
    if "--include_path" not in args or args.index("--include_path") + 1 >= len(args):
        return None
    folder = Path(args[args.index("--include_path") + 1])
    for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        config = _read_yaml(path)
        if config.get("task") == task and "process_docs" not in config and config.get("doc_to_choice"):
            return config
    return None


def _data_file(config: dict) -> Path | None:
    if config.get("dataset_path") != "json":
        return None
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    test = files.get(config.get("test_split", "test")) if isinstance(files, dict) else files
    path = Path(test) if isinstance(test, str) else None
    return path if path is not None and path.is_absolute() and path.is_file() else None


def _render_choices(template, doc: dict) -> list:
    """lm-eval's Task.doc_to_choice for a YAML value: a field name, a literal list or mapping, or a
    Jinja template rendering a Python list."""
    if isinstance(template, list):
        return template
    if isinstance(template, dict):
        return list(template.values())
    if template in doc:
        return doc[template]
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return ast.literal_eval(env.from_string(template).render(**doc))
