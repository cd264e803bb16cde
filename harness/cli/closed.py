"""`harness closed run|results|samples`: closed-set tasks through lm-eval, and their stored rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from harness.cli.render import (DbOption, JsonOption, ReadDbOption, RichProgress, console, line, literal, print_json,
                                render_closed_run, render_closed_scores)
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


@closed_app.command("results")
def closed_results(suite: str = typer.Argument(..., help="Suite YAML file, built-in suite name, or the name of a suite in the store."),
                   db: Path = ReadDbOption, as_json: bool = JsonOption) -> None:
    """The stored lm-eval scores of a suite's closed-set runs (nothing is run)."""
    from harness import api

    rows = api.closed_results(suite, db)
    if as_json:
        return print_json(rows)
    if not rows:
        raise HarnessError(f"{db}: no closed-set results for suite '{suite}': run `harness closed run {suite} "
                           f"--db {db}` first")
    render_closed_scores(rows, rows[0]["suite_name"])


@closed_app.command("samples")
def closed_samples(task: str = typer.Option(..., "--task", "-t", help="lm-eval task name."),
                   model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
                   limit: Optional[int] = typer.Option(20, help="Documents to show (0: all)."),
                   wrong: bool = typer.Option(False, "--wrong", help="Only documents scored 0."),
                   db: Path = ReadDbOption, as_json: bool = JsonOption) -> None:
    """Per-document rows of a stored closed-set result: the prompt, then each choice of a
    multiple-choice task with its log-likelihood (which was picked, which is the target), or the
    target and response of a generation task; metrics in the rule above."""
    from harness import api
    from harness.store.closed import known_tasks

    rows = api.closed_samples(task, model, db, limit or None, only_wrong=wrong)
    if not rows:
        known = ", ".join(f"{t}/{m}" for t, m in known_tasks(api.open_store(db, must_exist=True))) or "none"
        raise HarnessError(f"{db}: no closed-set samples for task '{task}' and model '{model}'"
                           f" (stored task/model pairs: {known})")
    if as_json:
        return print_json(rows)
    for row in rows:
        metrics = ", ".join(f"{k}={v:g}" for k, v in row["metrics"].items())
        console.rule(literal(f"{task} doc {row['doc_id']} · filter {row['filter']} · {metrics}"))
        console.print(literal(row["prompt"]))
        if "choices" in row:
            console.print(_choices(row))
            continue
        for label, value in (("target", row["target"]), ("response", _short(row["responses"])),
                             ("filtered", row["filtered_response"])):
            console.print(line((f"{label}: ", "bold"), value))


def _choices(row: dict) -> Table:
    """One line per choice: its text (or number), log-likelihood, and marks for the model's pick
    (highest log-likelihood, lm-eval's acc; per character, acc_norm's, when that differs) and the
    target; ✓ / ✗ on the pick."""
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("choice", overflow="fold")
    table.add_column("log-lik", justify="right")
    table.add_column("")
    for c in row["choices"]:
        i = c["index"]
        split = row["picked_norm"] is not None and row["picked_norm"] != row["picked"]
        marks = [m for m, on in (("picked (acc)" if split else "picked", i == row["picked"]),
                                 ("picked (acc_norm)", split and i == row["picked_norm"]),
                                 ("target", i == row["target_index"])) if on]
        hit = "✓" if i == row["target_index"] == row["picked"] else "✗" if i == row["picked"] else ""
        table.add_row(hit, literal(c["text"] if c["text"] is not None else f"choice {i}"),
                      f"{c['loglikelihood']:.2f}", literal(" · ".join(marks), "bold" if marks else ""))
    if row["target_index"] is None:
        table.add_row("", literal(f"target: {row['target']}"), "", "")
    return table


def _short(responses: list[str]) -> str:
    text = responses[0] if len(responses) == 1 else " | ".join(responses)
    return text if len(text) < 600 else text[:600] + " …"
