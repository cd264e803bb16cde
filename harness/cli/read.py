"""Read-side commands: `harness models`, `sets`, `answers` and `db info`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from harness.cli.render import ReadDbOption, console, line, literal
from harness.errors import HarnessError

db_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB store.")


def models(db: Path = ReadDbOption) -> None:
    """The model catalog (real models shipped on PyPI) and the models already in the store."""
    from harness.models.catalog import CATALOG, catalog_status

    table = Table(title="catalog")
    for col in ("name", "status", "description"):
        table.add_column(col)
    for name, entry in CATALOG.items():
        table.add_row(name, catalog_status(name), entry.description)
    console.print(table)
    if db.exists():
        from harness.api import open_store
        from harness.store.training import stored_models

        rows = stored_models(open_store(db, must_exist=True))
        stored = Table(title=literal(f"models in {db}"))
        for col in ("name", "backend", "source", "fingerprint", "last used"):
            stored.add_column(col)
        for row in rows:
            stored.add_row(*(literal(v) for v in row))
        console.print(stored)


def sets() -> None:
    """Built-in open-set benchmarks."""
    from harness.sets import builtin_sets, load_jsonl

    table = Table(title="built-in sets")
    for col in ("name", "questions", "turns", "categories"):
        table.add_column(col)
    for name, path in builtin_sets().items():
        questions = load_jsonl(path, name)
        cats = sorted({q.category for q in questions})
        table.add_row(literal(name), str(len(questions)), str(sum(len(q.turns) for q in questions)),
                      literal(", ".join(cats)))
    console.print(table)


def answers(model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
            set_name: Optional[str] = typer.Option(None, "--set", "-s", help="Only this set."),
            question: Optional[str] = typer.Option(None, "--question", "-q", help="Only this question id."),
            limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show at most this many answers (0: all)."),
            db: Path = ReadDbOption) -> None:
    """Show a model's stored answers (the first 20 unless --limit says otherwise)."""
    from harness.api import open_store
    from harness.store.queries import answers_for

    rows = answers_for(open_store(db, must_exist=True), model, set_name, question, limit or None)
    if not rows:
        where = "".join(f" {what} '{v}'" for what, v in (("in set", set_name), ("for question", question)) if v)
        raise HarnessError(f"{db}: no answers for model '{model}'{where}")
    for row in rows:
        console.rule(literal(f"{row['set_name']}/{row['question_id']} [{row['category']}] turn {row['turn']}"))
        console.print(line(("Q:", "bold"), " ", row["prompt"]))
        console.print(line("A: ", row["text"]))
        console.print(literal(f"{row['completion_tokens']} tokens · {row['finish_reason']}", "dim"))
    if limit and len(rows) == limit:
        console.print(literal(f"(the first {limit}: --limit N shows more, --limit 0 all, --question ID one question)",
                              "dim"))


@db_app.command("info")
def db_info(db: Path = ReadDbOption) -> None:
    """Schema version, row counts and recent runs."""
    from harness.api import open_store
    from harness.store.queries import recent_runs, schema_version, table_counts

    store = open_store(db, must_exist=True)
    console.print(literal(f"{db} · schema version {schema_version(store)}"))
    counts = Table(title="rows")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for table, n in table_counts(store).items():
        counts.add_row(literal(table), str(n))
    console.print(counts)
    runs = recent_runs(store)
    if runs:
        table = Table(title="recent runs")
        for col in runs[0]:
            table.add_column(col)
        for r in runs:
            table.add_row(*(literal(f"{v:.1f}" if isinstance(v, float) else v) for v in r.values()))
        console.print(table)
