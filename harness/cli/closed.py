"""`harness closed run|samples`: closed-set tasks through lm-eval, and their stored rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from harness.cli.render import DbOption, ReadDbOption, RichProgress, console, line, literal, render_closed_run
from harness.errors import HarnessError

closed_app = typer.Typer(no_args_is_help=True, help="Closed-set benchmarks through lm-evaluation-harness.")


@closed_app.command("run")
def closed_run(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
               db: Path = DbOption,
               force: bool = typer.Option(False, help="Rerun tasks that are already stored.")) -> None:
    """Run the suite's closed_set tasks (only those not stored yet) and print their scores."""
    from harness import api

    report = api.run_closed(suite, db, force=force, progress=RichProgress())
    render_closed_run(report.closed, report.closed_scores, report.suite.name)


@closed_app.command("samples")
def closed_samples(task: str = typer.Option(..., "--task", "-t", help="lm-eval task name."),
                   model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
                   limit: Optional[int] = typer.Option(20, help="Documents to show (0: all)."),
                   wrong: bool = typer.Option(False, "--wrong", help="Only documents scored 0."),
                   db: Path = ReadDbOption) -> None:
    """Per-document rows of a stored closed-set result: prompt, target, response, metrics."""
    from harness.api import open_store
    from harness.store.closed import closed_samples as query, known_tasks

    store = open_store(db, must_exist=True)
    rows = query(store, task, model, limit or None, only_wrong=wrong)
    if not rows:
        known = ", ".join(f"{t}/{m}" for t, m in known_tasks(store)) or "none"
        raise HarnessError(f"{db}: no closed-set samples for task '{task}' and model '{model}'"
                           f" (stored task/model pairs: {known})")
    for row in rows:
        metrics = ", ".join(f"{k}={v:g}" for k, v in row["metrics"].items())
        console.rule(literal(f"{task} doc {row['doc_id']} · filter {row['filter']} · {metrics}"))
        console.print(literal(row["prompt"]))
        for label, value in (("target", row["target"]), ("response", _short(row["responses"])),
                             ("filtered", row["filtered_response"])):
            console.print(line((f"{label}: ", "bold"), value))


def _short(responses: list[str]) -> str:
    text = responses[0] if len(responses) == 1 else " | ".join(responses)
    return text if len(text) < 600 else text[:600] + " …"
