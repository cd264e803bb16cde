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
from harness.cli_closed import closed_app  # noqa: E402 (lm-eval is imported only when a task runs)

app.add_typer(closed_app, name="closed")
from harness.cli_train import lineage, train_app  # noqa: E402 (torch/trl load inside the commands)

app.add_typer(train_app, name="train")
app.command("lineage")(lineage)
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
    """Generate every missing answer of a suite, judge and rate them, run its closed-set tasks."""
    from harness.config import load_suite
    from harness.runner import run_suite
    from harness.store import Store

    suite_obj, base_dir = load_suite(suite)
    store = Store(db)
    summary = run_suite(suite_obj, store, base_dir, progress=RichProgress())
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
    if suite_obj.judges:
        from harness.judging import judge_suite

        judged = judge_suite(suite_obj, store, summary.run_id, base_dir, progress=RichProgress())
        for j in judged.judges:
            console.print(f"judge {j.name}: {j.planned} calls, {j.cached} from cache, {j.judged} made, "
                          f"{j.unparsed} unparsed")
        _print_leaderboard(suite_obj, store)
        _print_reliability(suite_obj, store)
    if suite_obj.closed_set:
        from harness.cli_closed import run_and_print
        from harness.config import resolve_suite_path

        run_and_print(suite_obj, base_dir, store, str(resolve_suite_path(suite)))


def _print_reliability(suite_obj, store) -> None:
    from harness.leaderboard import judge_reliability

    for spec in suite_obj.judges:
        if spec.kind != "pairwise":
            continue
        console.print(f"judge {spec.name} reliability: {_reliability(judge_reliability(store, spec.name))}")


def _print_leaderboard(suite_obj, store) -> None:
    from harness.leaderboard import compute_ratings

    rows = [r for r in compute_ratings(store, suite_obj) if r.category == "all"]
    if not rows:
        console.print("no parsed verdicts yet: nothing to rate")
        return
    columns = sorted({(r.judge_name, r.dimension, r.method) for r in rows if r.method != "mean_grade"})
    table = Table(title=f"leaderboard · {suite_obj.name} · {int(rows[0].level * 100) if rows[0].level else ''}% "
                        f"bootstrap CIs ({suite_obj.ratings.bootstrap_rounds} rounds, merge: {suite_obj.ratings.merge})")
    table.add_column("model")
    for judge, dimension, method in columns:
        table.add_column(f"{judge}\n{dimension} {method.upper()}", justify="right")
    by_key = {(r.judge_name, r.dimension, r.method, r.model): r for r in rows}
    models = sorted({r.model for r in rows}, key=lambda m: -max(
        (r.rating for r in rows if r.model == m and r.method == "bt"), default=0))
    for model in models:
        cells = []
        for judge, dimension, method in columns:
            r = by_key.get((judge, dimension, method, model))
            cells.append(f"{r.rating:.0f} [{r.ci_low:.0f}, {r.ci_high:.0f}]" if r else "-")
        table.add_row(model, *cells)
    console.print(table)
    battles = {(r.judge_name, r.dimension): r.battles for r in rows}
    console.print("battles per judge/dimension: " + ", ".join(f"{j}/{d}: {n}" for (j, d), n in sorted(battles.items())))


@app.command()
def ratings(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
            db: Path = DbOption) -> None:
    """Recompute ratings from the stored judgments and print the leaderboard."""
    from harness.config import load_suite
    from harness.store import Store

    suite_obj, _ = load_suite(suite)
    _print_leaderboard(suite_obj, Store(db))


@app.command("judge-eval")
def judge_eval(data: Path = typer.Option(Path("../shared/data"), help="Folder with mt_bench/ and pandalm/."),
               suite: Optional[str] = typer.Option(None, help="Also run this suite's first judge on MT-Bench pairs."),
               sample: int = typer.Option(40, help="MT-Bench human-voted pairs to judge (both orders each)."),
               fastchat_judgments: Optional[Path] = typer.Option(
                   None, help="A FastChat model_judgment/*_pair.jsonl file to score against the expert votes."),
               db: Path = DbOption) -> None:
    """Agreement of judges with human labels: released verdicts, human ceiling, and a live judge."""
    from harness.judge_eval import mt_bench_human_agreement, released_pandalm_reports

    table = Table(title="PandaLM test set: released verdicts vs 3-annotator majority (%)")
    for col in ("judge", "accuracy", "precision", "recall", "F1", "n"):
        table.add_column(col, justify="left" if col == "judge" else "right")
    for name, rep in released_pandalm_reports(data).items():
        table.add_row(name, *(f"{v:.2f}" for v in (rep.accuracy, rep.macro_precision, rep.macro_recall,
                                                    rep.macro_f1)), str(rep.n))
    console.print(table)
    with_ties, without = mt_bench_human_agreement(data)
    console.print(f"MT-Bench turn 1, human vs human (experts): {_agreement(with_ties, without)}")
    if fastchat_judgments:
        from harness.judge_eval import fastchat_file_agreement

        for judge, (w, wo) in fastchat_file_agreement(fastchat_judgments, data).items():
            console.print(f"{judge} ({fastchat_judgments.name}) vs experts: {_agreement(w, wo)}")
    if suite:
        from harness.config import load_suite
        from harness.judge_eval import run_judge_on_mt_bench
        from harness.judging import build_judge
        from harness.leaderboard import judge_reliability, self_preference
        from harness.store import Store

        suite_obj, _ = load_suite(suite)
        if not suite_obj.judges:
            raise HarnessError(f"{suite}: has no judges: add a 'judges:' entry")
        judge = build_judge(suite_obj.judges[0])
        try:
            result = run_judge_on_mt_bench(judge, data, sample)
        finally:
            judge.close()
        console.print(f"judge {result.judge_name} on {result.pairs} MT-Bench pairs ({result.parsed_pairs} parsed in both "
                      f"orders), agreement with experts: {_agreement(result.with_ties, result.without_ties)}")
        if db.exists():
            rel = judge_reliability(Store(db), result.judge_name)
            console.print(f"reliability of {rel.judge_name} in {db}: {rel.calls} calls, {_reliability(rel)}")
            for model, rate in self_preference(Store(db), suite_obj, result.judge_name).items():
                console.print(f"self-preference: {model} (the judge's own model) wins {rate:.1%} under it")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _agreement(with_ties, without_ties) -> str:
    """'63.0% with ties (454/721), 81.0% without (388/479)'; n/a where nothing was comparable."""
    return ", ".join(f"{_pct(a.rate if a.total else None)} {label} ({a.agree}/{a.total})"
                     for a, label in ((with_ties, "with ties"), (without_ties, "without")))


def _reliability(rel) -> str:
    return (f"parse failures {rel.parse_failure_rate:.1%}, swap flips {_pct(rel.swap_flip_rate)}, "
            f"position-A wins {_pct(rel.first_position_win_rate)}, longer answer wins {_pct(rel.longer_answer_win_rate)}")


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


from harness.cli_app import app_command  # noqa: E402 (streamlit is imported only by the subprocess)

app.command("app")(app_command)


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
