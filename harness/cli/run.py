"""`harness run SUITE` and `harness ratings SUITE`: parse, call harness.api, render each stage."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from harness.cli.render import (DbOption, JsonOption, RichProgress, board_json, console, db_option, line, literal, notes,
                                 print_json, render_board, render_closed_run, say)


def run(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name (quickstart)."),
        db: Path = DbOption,
        stages: str = typer.Option("generate,judge,rate,closed", "--stages",
                                   help="Comma-separated stages to run, in this order: generate, judge, rate, closed."),
        executor: str | None = typer.Option(None, "--executor", help="local or ray: where model and judge calls run"
                                            " (overrides the suite's executor.kind)."),
        ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster host:port (implies"
                                               " --executor ray; overrides executor.address).")
        ) -> None:
    """Generate every missing answer of a suite, judge and rate them, run its closed-set tasks.
    Exit 0: everything is stored; 1: some calls failed (run again to retry them); 2: bad input."""
    from harness import api

    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    base_dir = None
    if executor or ray_address:  # the flags override the suite's executor field
        from harness.executors import with_executor

        suite, base_dir, _ = api.resolve_suite(suite)
        suite = with_executor(suite, executor, ray_address)
    report = api.run(suite, db, stages=chosen, base_dir=base_dir, progress=RichProgress(), on_stage=_render_stage)
    if not report.complete:  # exit 1: finished, but some calls failed; a rerun retries exactly those
        failed = ", ".join(f"{n} {what}" for what, n in report.failures().items() if n)
        say(f"incomplete: {failed} failed and are not stored: run the same command again to retry them")
        raise typer.Exit(1)


def ratings(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
            db: Path = db_option("DuckDB file holding the suite's judgments (must exist)."),
            save: bool = typer.Option(True, "--save/--no-save",
                                      help="Store the board (skipped with a note when the file is read-only)."),
            as_json: bool = JsonOption) -> None:
    """Recompute ratings from the stored judgments and print the leaderboard."""
    from harness import api

    # Per-category rows are stored (the app shows them) and in --json, never in the table: a board
    # neither stored nor printed as JSON skips their bootstrap.
    board = api.rate(suite, api.open_store(db, must_exist=True), save=save, categories=save or as_json)
    if as_json:
        print_json(board_json(board))
    else:
        render_board(board)
    if board.not_saved:
        (notes if as_json else console).print(line(("note:", "yellow"), f" the board was not stored: {board.not_saved}"))


def _render_stage(stage: str, report) -> None:
    if stage == "generate":
        _render_generation(report.generation)
    elif stage == "judge":
        for j in report.judging.judges:
            say(f"judge {j.name}: {j.planned} calls, {j.cached} from cache, {j.judged} made, "
                f"{j.unparsed} unparsed, {j.failed} failed")
    elif stage == "rate":
        render_board(report.board)
    elif stage == "closed":
        render_closed_run(report.closed, report.closed_scores, report.suite.name)


def _render_generation(summary) -> None:
    table = Table(title=literal(f"suite {summary.suite_name} · run {summary.run_id} · {summary.wall_s:.1f} s"))
    for col in ("model", "answers", "cached", "generated", "failed", "tokens", "tok/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in summary.models:
        table.add_row(literal(m.name), str(m.planned), str(m.cached), str(m.generated), str(m.failed),
                      str(m.completion_tokens), f"{m.tokens_per_s:.1f}")
    console.print(table)
    totals = summary.totals()
    say(f"{totals['generated']} answers generated, {totals['cached']} from cache, "
        f"{totals['failed']} failed · stored in {summary.db_path}")
