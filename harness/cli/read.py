"""Read-side commands: `harness models`, `sets`, `answers` and `db info`. Each calls one
harness.api read function and prints its result as tables, or as JSON with --json."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from harness.cli.render import JsonOption, ReadDbOption, console, fitted, line, literal, print_json
from harness.errors import HarnessError

db_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB store.")


def models(db: Optional[Path] = typer.Option(None, "--db", help="Also list the models stored in this DuckDB file "
                                                                "(must exist; default: harness.duckdb when it exists)."),
           as_json: bool = JsonOption) -> None:
    """The model catalog (real models shipped on PyPI) and the models already in the store."""
    from harness import api
    from harness.store import DEFAULT_DB

    if db is None and Path(DEFAULT_DB).exists():
        db = Path(DEFAULT_DB)
    result = api.model_list(db)
    if as_json:
        return print_json(result)
    table = Table(title="catalog")
    table.add_column("name", no_wrap=True)
    table.add_column("status")
    table.add_column("description")
    for row in result.catalog:
        table.add_row(literal(row["name"]), literal(row["status"]), literal(row["description"]))
    console.print(table)
    if result.stored is not None:
        console.print(fitted(lambda show: _stored_models(result.stored, db, show), [r["name"] for r in result.stored],
                            share=0.35))


def _stored_models(rows: list[dict], db: Path, show) -> Table:
    table = Table(title=literal(f"models in {db}"))
    table.add_column("name", no_wrap=True)
    for col in ("backend", "source", "fingerprint", "last used"):
        table.add_column(col, overflow="fold", no_wrap=col == "fingerprint")
    for row in rows:
        table.add_row(show(row["name"]), literal(row["backend"]), literal(row["source"]), literal(row["fingerprint"]),
                      literal(str(row["last_used"] or "")[:16]))
    return table


def sets(as_json: bool = JsonOption) -> None:
    """Built-in open-set benchmarks."""
    from harness import api

    rows = api.set_list()
    if as_json:
        return print_json(rows)
    table = Table(title="built-in sets")
    for col in ("name", "questions", "turns", "categories"):
        table.add_column(col)
    for row in rows:
        table.add_row(literal(row["name"]), str(row["questions"]), str(row["turns"]), literal(", ".join(row["categories"])))
    console.print(table)


def answers(model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
            set_name: Optional[str] = typer.Option(None, "--set", "-s", help="Only this set."),
            question: Optional[str] = typer.Option(None, "--question", "-q", help="Only this question id."),
            limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show at most this many answers (0: all)."),
            db: Path = ReadDbOption, as_json: bool = JsonOption) -> None:
    """Show a model's stored answers (the first 20 unless --limit says otherwise)."""
    from harness import api

    rows = api.stored_answers(model, db, set_name, question, limit or None)
    if not rows:
        where = "".join(f" {what} '{v}'" for what, v in (("in set", set_name), ("for question", question)) if v)
        raise HarnessError(f"{db}: no answers for model '{model}'{where}")
    if as_json:
        return print_json(rows)
    for row in rows:
        console.rule(literal(f"{row['set_name']}/{row['question_id']} [{row['category']}] turn {row['turn']}"))
        console.print(line(("Q:", "bold"), " ", row["prompt"]))
        console.print(line("A: ", row["text"]))
        console.print(literal(f"{row['completion_tokens']} tokens · {row['finish_reason']}", "dim"))
    if limit and len(rows) == limit:
        console.print(literal(f"(the first {limit}: --limit N shows more, --limit 0 all, --question ID one question)",
                              "dim"))


@db_app.command("info")
def db_info(db: Path = ReadDbOption, as_json: bool = JsonOption) -> None:
    """Schema version, row counts and recent runs."""
    from harness import api

    info = api.store_info(db)
    if as_json:
        return print_json(info)
    console.print(literal(f"{db} · schema version {info.schema_version}"))
    counts = Table(title="rows")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for table, n in info.tables.items():
        counts.add_row(literal(table), str(n))
    console.print(counts)
    if info.recent_runs:
        console.print(fitted(lambda show: _runs(info.recent_runs, show), [r["suite_name"] for r in info.recent_runs],
                             share=0.2))


def _runs(runs: list[dict], show) -> Table:
    """Recent runs, narrow enough for 80 columns: the run id's first 8 characters (--json has it
    whole), the suite name (shortened to fit), and the answers as planned/cached/made/failed."""
    table = Table(title="recent runs", caption="answers: planned/cached/made/failed")
    for title in ("run", "suite", "status", "started", "wall s", "answers"):
        table.add_column(title, no_wrap=title in ("suite", "started"),
                         justify="right" if title.startswith(("wall", "ans")) else "left")
    for r in runs:
        counts = "/".join(str(r[k]) for k in ("n_planned", "n_cached", "n_generated", "n_failed"))
        wall = "" if r["wall_s"] is None else f"{r['wall_s']:.1f}"
        table.add_row(literal(str(r["run_id"])[:8]), show(r["suite_name"]), literal(r["status"]),
                      literal(str(r["started_at"] or "")[:16]), wall, counts)
    return table
