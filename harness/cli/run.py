"""`harness run SUITE` and `harness ratings SUITE`: parse, call harness.api, render each stage."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from harness.cli.render import DbOption, RichProgress, console, render_board, render_closed_run


def run(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name (quickstart)."),
        db: Path = DbOption) -> None:
    """Generate every missing answer of a suite, judge and rate them, run its closed-set tasks."""
    from harness import api

    api.run(suite, db, progress=RichProgress(), on_stage=_render_stage)


def ratings(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
            db: Path = DbOption) -> None:
    """Recompute ratings from the stored judgments and print the leaderboard."""
    from harness import api

    render_board(api.rate(suite, api.open_store(db, must_exist=True)))


def _render_stage(stage: str, report) -> None:
    if stage == "generate":
        _render_generation(report.generation)
    elif stage == "judge":
        for j in report.judging.judges:
            console.print(f"judge {j.name}: {j.planned} calls, {j.cached} from cache, {j.judged} made, "
                          f"{j.unparsed} unparsed")
    elif stage == "rate":
        render_board(report.board)
    elif stage == "closed":
        render_closed_run(report.closed, report.closed_scores, report.suite.name)


def _render_generation(summary) -> None:
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
