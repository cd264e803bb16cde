"""`harness closed run|samples`: closed-set tasks through lm-eval, and their stored rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError
from harness.store import DEFAULT_DB

closed_app = typer.Typer(no_args_is_help=True, help="Closed-set benchmarks through lm-evaluation-harness.")
console = Console()
DbOption = typer.Option(DEFAULT_DB, "--db", help="DuckDB file (created if missing).")


@closed_app.command("run")
def closed_run(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
               db: Path = DbOption,
               force: bool = typer.Option(False, help="Rerun tasks that are already stored.")) -> None:
    """Run the suite's closed_set tasks (only those not stored yet) and print their scores."""
    from harness.config import load_suite, resolve_suite_path
    from harness.store import Store

    suite_obj, base_dir = load_suite(suite)
    if not suite_obj.closed_set:
        raise HarnessError(f"{resolve_suite_path(suite)}: the suite has no closed_set tasks: add some")
    run_and_print(suite_obj, base_dir, Store(db), str(resolve_suite_path(suite)), force)


def run_and_print(suite_obj, base_dir: Path, store, source: str, force: bool = False) -> None:
    """Shared with `harness run`: run what is missing, then the closed-set leaderboard."""
    from harness.cli import RichProgress
    from harness.closed import run_closed

    summary = run_closed(suite_obj, base_dir, store, RichProgress(), force=force, source=source)
    ran = [r for r in summary.results if not r.cached]
    console.print(f"closed-set: {len(ran)} task runs made, {summary.n_cached} from cache"
                  + (f" · {summary.wall_s:.1f} s" if ran else ""))
    for r in ran:
        console.print(f"[dim]reproduce {r.model}/{r.task}: {r.cli}[/dim]", highlight=False, soft_wrap=True)
    print_closed_scores(store, suite_obj)


def print_closed_scores(store, suite_obj) -> None:
    from harness.store.closed import closed_scores

    rows = closed_scores(store, suite_obj.name, [m.name for m in suite_obj.models])
    if not rows:
        return
    columns = sorted({(r["task"], r["metric"], r["filter"]) for r in rows})
    table = Table(title=f"closed-set (lm-eval) · {suite_obj.name} · value ± stderr")
    table.add_column("model")
    for task, metric, filt in columns:
        table.add_column(f"{task}\n{metric}" + ("" if filt == "none" else f" ({filt})"), justify="right")
    by_key = {(r["task"], r["metric"], r["filter"], r["model"]): r for r in rows}
    for model in sorted({r["model"] for r in rows}):
        cells = []
        for task, metric, filt in columns:
            r = by_key.get((task, metric, filt, model))
            cells.append("-" if r is None or r["value"] is None else
                         f"{r['value']:.3f}" + (f" ± {r['stderr']:.3f}" if r["stderr"] is not None else "")
                         + f" (n={r['n_samples']})")
        table.add_row(model, *cells)
    console.print(table)


@closed_app.command("samples")
def closed_samples(task: str = typer.Option(..., "--task", "-t", help="lm-eval task name."),
                   model: str = typer.Option(..., "--model", "-m", help="Model name as in the suite."),
                   limit: Optional[int] = typer.Option(20, help="Documents to show (0: all)."),
                   wrong: bool = typer.Option(False, "--wrong", help="Only documents scored 0."),
                   db: Path = DbOption) -> None:
    """Per-document rows of a stored closed-set result: prompt, target, response, metrics."""
    from harness.store import Store
    from harness.store.closed import closed_samples as query, known_tasks

    store = Store(db)
    rows = query(store, task, model, limit or None, only_wrong=wrong)
    if not rows:
        known = ", ".join(f"{t}/{m}" for t, m in known_tasks(store)) or "none"
        raise HarnessError(f"{db}: no closed-set samples for task '{task}' and model '{model}'"
                           f" (stored task/model pairs: {known})")
    for row in rows:
        metrics = ", ".join(f"{k}={v:g}" for k, v in row["metrics"].items())
        console.rule(f"{task} doc {row['doc_id']} · filter {row['filter']} · {metrics}")
        console.print(row["prompt"], markup=False, highlight=False)
        for label, value in (("target", row["target"]), ("response", _short(row["responses"])),
                             ("filtered", row["filtered_response"])):
            console.print(Text.assemble((f"{label}: ", "bold"), str(value)), highlight=False)


def _short(responses: list[str]) -> str:
    text = responses[0] if len(responses) == 1 else " | ".join(responses)
    return text if len(text) < 600 else text[:600] + " …"
