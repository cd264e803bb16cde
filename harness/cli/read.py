"""Read-side commands: `harness models`, `sets`, `answers` and `db info`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from harness.cli.render import DbOption, console
from harness.errors import HarnessError

db_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB store.")


def models(db: Path = DbOption) -> None:
    """The model catalog (real models shipped on PyPI) and the models already in the store."""
    from harness.models.catalog import CATALOG, catalog_status

    table = Table(title="catalog")
    for col in ("name", "status", "description"):
        table.add_column(col)
    for name, entry in CATALOG.items():
        table.add_row(name, catalog_status(name), entry.description)
    console.print(table)
    if db.exists():
        from harness.store import Store
        from harness.store.training import stored_models

        rows = stored_models(Store(db))
        stored = Table(title=f"models in {db}")
        for col in ("name", "backend", "source", "fingerprint", "last used"):
            stored.add_column(col)
        for row in rows:
            stored.add_row(*(str(v) for v in row))
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
        table.add_row(name, str(len(questions)), str(sum(len(q.turns) for q in questions)), ", ".join(cats))
    console.print(table)


def answers(model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
            set_name: Optional[str] = typer.Option(None, "--set", "-s", help="Only this set."),
            db: Path = DbOption) -> None:
    """Show a model's stored answers."""
    from harness.store import Store
    from harness.store.queries import answers_for

    rows = answers_for(Store(db), model, set_name)
    if not rows:
        raise HarnessError(f"{db}: no answers for model '{model}'" + (f" in set '{set_name}'" if set_name else ""))
    for row in rows:
        console.rule(f"{row['set_name']}/{row['question_id']} [{row['category']}] turn {row['turn']}")
        console.print(f"[bold]Q:[/bold] {row['prompt']}")
        console.print("A: " + row["text"], markup=False, highlight=False)
        console.print(f"[dim]{row['completion_tokens']} tokens · {row['finish_reason']}[/dim]")


@db_app.command("info")
def db_info(db: Path = DbOption) -> None:
    """Schema version, row counts and recent runs."""
    from harness.store import Store
    from harness.store.queries import recent_runs, schema_version, table_counts

    if not db.exists():
        raise HarnessError(f"{db}: no such database: run 'harness run quickstart' first or pass --db")
    store = Store(db)
    console.print(f"{db} · schema version {schema_version(store)}")
    counts = Table(title="rows")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for table, n in table_counts(store).items():
        counts.add_row(table, str(n))
    console.print(counts)
    runs = recent_runs(store)
    if runs:
        table = Table(title="recent runs")
        for col in runs[0]:
            table.add_column(col)
        for r in runs:
            table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values()))
        console.print(table)
