"""The read commands' data (`harness db info`, `models`, `sets`, `answers`, `closed samples`,
`closed results` and their --json): part of harness.api (`harness.api.store_info(...)`), kept here
so that module stays readable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.api import open_store, resolve_suite
from harness.config import Suite
from harness.store import DEFAULT_DB, Store


@dataclass
class StoreInfo:
    path: str
    schema_version: int
    tables: dict[str, int]  # table -> rows
    recent_runs: list[dict]  # the last ten runs, newest first


def store_info(db: Store | str | Path = DEFAULT_DB) -> StoreInfo:
    """Schema version, row counts and recent runs of an existing store."""
    from harness.store.queries import recent_runs, schema_version, table_counts

    store = open_store(db, must_exist=True)
    return StoreInfo(str(store.path), schema_version(store), table_counts(store), recent_runs(store))


@dataclass
class ModelList:
    catalog: list[dict]  # name, status (installed / converted / missing), description of each catalog model
    stored: list[dict] | None  # name, backend, source, fingerprint (prefix), last_used; None: no store given


def model_list(db: Store | str | Path | None = None) -> ModelList:
    """The catalog of real models and, with `db` (which must exist), the models stored in it."""
    from harness.models.catalog import CATALOG, catalog_status
    from harness.store.training import stored_models

    catalog = [{"name": name, "status": catalog_status(name), "description": entry.description}
               for name, entry in CATALOG.items()]
    if db is None:
        return ModelList(catalog, None)
    columns = ("name", "backend", "source", "fingerprint", "last_used")
    return ModelList(catalog, [dict(zip(columns, row)) for row in stored_models(open_store(db, must_exist=True))])


def set_list() -> list[dict]:
    """The built-in open-set benchmarks: name, questions, turns, categories."""
    from harness.sets import builtin_sets, load_jsonl

    out = []
    for name, path in builtin_sets().items():
        questions = load_jsonl(path, name)
        out.append({"name": name, "questions": len(questions), "turns": sum(len(q.turns) for q in questions),
                    "categories": sorted({q.category for q in questions})})
    return out


def stored_answers(model: str, db: Store | str | Path = DEFAULT_DB, set_name: str | None = None,
                   question: str | None = None, limit: int | None = None) -> list[dict]:
    """A model's answers from its current fingerprint, in (set, question, turn) order, with each
    turn's prompt; narrowed to a set and a question, at most `limit` of them."""
    from harness.store.queries import answers_for

    return answers_for(open_store(db, must_exist=True), model, set_name, question, limit)


def closed_samples(task: str, model: str, db: Store | str | Path = DEFAULT_DB, limit: int | None = None,
                   only_wrong: bool = False) -> list[dict]:
    """Per-document rows of the latest stored run of a closed-set task for a model: prompt, target,
    raw responses, filtered response, metrics; multiple-choice rows also get `choices` (text where
    the task's data can be read back, log-likelihood, greedy), `picked`, `picked_norm` and
    `target_index` (harness.closed.choices)."""
    import json

    from harness.closed.choices import choice_texts, choices
    from harness.store.closed import closed_samples as query, latest_result

    store = open_store(db, must_exist=True)
    rows = query(store, task, model, limit, only_wrong=only_wrong)
    latest = latest_result(store, task, model)
    if rows and latest and latest["output_type"] == "multiple_choice":
        cli = json.loads(latest["settings_json"] or "{}").get("cli", "")
        texts = choice_texts(cli, task, {r["doc_id"] for r in rows})
        for row in rows:
            row.update(choices(row["responses"], texts.get(row["doc_id"]), row["target"]))
    return rows


def closed_results(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB) -> list[dict]:
    """The latest stored lm-eval metrics of a suite's closed-set runs, per model, task, metric and
    filter. `suite`: a Suite, a YAML file, or the name the runs were stored under (a built-in
    suite's name is both)."""
    from harness.store.closed import closed_scores

    if not isinstance(suite, Suite) and (Path(suite).suffix in (".yaml", ".yml") or Path(suite).is_file()):
        suite = resolve_suite(suite)[0]
    name = suite.name if isinstance(suite, Suite) else str(suite)
    return closed_scores(open_store(db, must_exist=True), name)
