"""Command line: each command parses its arguments, calls one API function and renders the result.

User errors (HarnessError) print as one line and exit 2; anything else keeps its traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import HarnessError
from harness.store import DEFAULT_DB

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Alignment evaluation harness: generate, judge, rate, train, browse.")
db_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB store.")
app.add_typer(db_app, name="db")
console = Console()
DbOption = typer.Option(DEFAULT_DB, "--db", help="DuckDB file (created if missing).")

# No model hub at run time unless the user opts in explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class RichProgress:
    """The runner's Progress, drawn with rich."""

    def __init__(self) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False)
        self._task = None

    def start(self, label: str, total: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def stop(self) -> None:
        self._bar.stop()


@app.command()
def run(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name (quickstart)."),
        db: Path = DbOption) -> None:
    """Generate every missing answer of a suite and store it."""
    from harness.config import load_suite
    from harness.runner import run_suite
    from harness.store import Store

    suite_obj, base_dir = load_suite(suite)
    summary = run_suite(suite_obj, Store(db), base_dir, progress=RichProgress())
    table = Table(title=f"suite {summary.suite_name} · run {summary.run_id} · {summary.wall_s:.1f} s")
    for col in ("model", "answers", "cached", "generated", "failed", "tokens", "tok/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in summary.models:
        table.add_row(m.name, str(m.planned), str(m.cached), str(m.generated), str(m.failed),
                      str(m.completion_tokens), f"{m.tokens_per_s:.1f}")
    console.print(table)
    totals = summary.totals()
    console.print(f"{totals['generated']} answers generated, {totals['cached']} from cache, "
                  f"{totals['failed']} failed · stored in {summary.db_path}")


@app.command()
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

        with Store(db).read() as con:
            rows = con.execute(
                "SELECT name, backend, source, left(fingerprint, 12), last_used FROM models ORDER BY name"
            ).fetchall()
        stored = Table(title=f"models in {db}")
        for col in ("name", "backend", "source", "fingerprint", "last used"):
            stored.add_column(col)
        for row in rows:
            stored.add_row(*(str(v) for v in row))
        console.print(stored)


@app.command()
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


@app.command()
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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same cleanup path as Ctrl-C (servers stopped, run marked)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except HarnessError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: answers stored so far are kept; run again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
