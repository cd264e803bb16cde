"""`harness judge-eval`: agreement of judges with human labels, on any labelled benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from harness.cli.render import DbOption, RichProgress, _agreement, console, literal, say


def judge_eval(data: Path = typer.Option(Path("../shared/data"), help="Folder with mt_bench/, pandalm/, hh_rlhf/."),
               suite: Optional[str] = typer.Option(None, help="Run this suite's pairwise judge (see --judge)."),
               benchmark: Optional[List[str]] = typer.Option(
                   None, help="Labelled benchmark to judge (repeatable): mt_bench_human, pandalm_testset, "
                              "hh_rlhf_harmless, llmbar, judgebench, rewardbench, evalbiasbench, "
                              "alpaca_eval_human, labelled. Without it: the released verdicts, the human "
                              "ceiling and --sample MT-Bench pairs."),
               file: Optional[Path] = typer.Option(None, help="The benchmark's file (needed for those not in --data)."),
               limit: Optional[int] = typer.Option(None, help="A seeded sample of this many pairs (default: all)."),
               judge: Optional[str] = typer.Option(None, help="The suite's judge to run (default: its first pairwise)."),
               dimension: str = typer.Option("overall", help="The one dimension the judge decides."),
               merge: Optional[str] = typer.Option(None, help="How a pair's two orders merge (default: the suite's)."),
               seed: int = typer.Option(0, help="Seed of the sample, the presentation order and the bootstrap."),
               prices: Optional[Path] = typer.Option(None, help="Price table YAML (harness/prices.py): cost per 1,000."),
               rounds: int = typer.Option(1000, help="Bootstrap rounds of each interval."),
               sample: int = typer.Option(40, help="Without --benchmark: MT-Bench pairs to judge (both orders each)."),
               fastchat_judgments: Optional[Path] = typer.Option(
                   None, help="A FastChat model_judgment/*_pair.jsonl file to score against the expert votes."),
               db: Path = DbOption) -> None:
    """Agreement of judges with human labels, stored in the DuckDB file (a rerun judges only what is
    not stored yet). With --benchmark: every metric with bootstrap CIs per subset, both orders."""
    from harness import api

    if benchmark:
        if suite is None:
            raise typer.BadParameter("--benchmark needs --suite S (the suite whose judge is evaluated)")
        for name in benchmark:
            progress = RichProgress()
            try:
                report = api.evaluate_judge(benchmark=name, suite=suite, judge_name=judge, file=file, data=data,
                                            limit=limit, seed=seed, merge=merge, dimension=dimension, db=db,
                                            prices=prices, bootstrap_rounds=rounds, progress=progress)
            finally:
                progress.stop()
            render_benchmark(report)
        return
    report = api.evaluate_judges(data, db, suite=suite, sample=sample, fastchat_judgments=fastchat_judgments)
    table = Table(title="PandaLM test set: released verdicts vs 3-annotator majority (%)")
    for col in ("judge", "accuracy", "precision", "recall", "F1", "n"):
        table.add_column(col, justify="left" if col == "judge" else "right")
    for name, rep in report.released.items():
        table.add_row(literal(name), *(f"{v:.2f}" for v in (rep.accuracy, rep.macro_precision, rep.macro_recall,
                                                    rep.macro_f1)), str(rep.n))
    console.print(table)
    console.print("MT-Bench turn 1, human vs human (experts): "
                  f"{_agreement(report.human_with_ties, report.human_without_ties)}")
    for name, (w, wo) in report.fastchat.items():
        say(f"{name} ({report.fastchat_file.name}) vs experts: {_agreement(w, wo)}")
    if report.live:
        live = report.live
        say(f"judge {live.judge_name} on {live.pairs} MT-Bench pairs ({live.parsed_pairs} parsed in both orders; "
            f"{live.calls} calls made, {live.cached} from the store), agreement with experts: "
            f"{_agreement(live.with_ties, live.without_ties)}")
        render_metrics(live.metrics, f"{live.judge_name} on mt_bench_human")


def render_metrics(metrics: dict, title: str) -> None:
    """Every metric of one run and subset: value, interval and count, one per line (fits 80 columns)."""
    from harness.judge_eval_board import METRIC_LABELS, format_ci, format_value

    table = Table(title=title, title_justify="left")
    for col, justify in (("metric", "left"), ("value", "right"), ("95% CI", "right"), ("count", "right")):
        table.add_column(col, justify=justify)
    for name in sorted(metrics, key=lambda n: list(METRIC_LABELS).index(n) if n in METRIC_LABELS else 99):
        m = metrics[name]
        row = {"ci_low": m.ci_low, "ci_high": m.ci_high}
        count = f"{m.numerator}/{m.denominator}" if m.denominator else f"n={m.n}"
        table.add_row(METRIC_LABELS.get(name, name), format_value(name, m.value), format_ci(name, row), count)
    console.print(table)


def _cell(metrics: dict, name: str) -> str:
    from harness.judge_eval_board import format_value

    m = metrics.get(name)
    if m is None:
        return ""
    ci = f" [{100 * m.ci_low:.0f},{100 * m.ci_high:.0f}]" if m.ci_low is not None else ""
    return f"{format_value(name, m.value)}{ci}"


def render_benchmark(report) -> None:
    """A live run: its facts, every metric of the whole benchmark, a compact table per subset, and a
    plain warning where the judge is at or below chance."""
    from harness.judge_eval_board import chance, chance_warning

    run = report.run
    say(f"{run.judge_name} on {report.benchmark}: {run.n_items} pairs, both orders ({run.n_parsed} parsed in "
        f"both); {run.n_calls} judge calls made, {run.n_cached} read from the store")
    for ref in report.references:
        headline = ref.metrics.get("accuracy_3way") or ref.metrics.get("agreement_with_ties")
        if headline is not None:
            say(f"  beside it: {ref.judge_name}, {headline.name} {headline.value:.1%}")
    render_metrics(run.metrics, f"{run.judge_name} on {report.benchmark} (all pairs)")
    subsets = {s: m for s, m in run.subset_metrics.items() if s != "all"}
    if subsets:
        table = Table(title="per subset (value [95% CI], %)", title_justify="left")
        for col in ("subset", "pairs", "accuracy", "pair acc.", "pos. agr."):
            table.add_column(col, justify="left" if col == "subset" else "right")
        for subset, metrics in subsets.items():
            n = next((m.n for m in metrics.values() if m.name == "positional_agreement"), "")
            table.add_row(literal(subset), str(n), _cell(metrics, "accuracy"), _cell(metrics, "pair_accuracy"),
                          _cell(metrics, "positional_agreement"))
        console.print(table)
    for subset, metrics in run.subset_metrics.items():
        acc = metrics.get("accuracy")
        row = None if acc is None else {"value": acc.value, "ci_low": acc.ci_low, "ci_high": acc.ci_high,
                                        "level": acc.level}
        if chance(row):
            where = report.benchmark if subset == "all" else f"{report.benchmark} / {subset}"
            say(f"warning: {chance_warning(run.judge_name, where, row)}")
    for note in run.notes:
        say(f"note: {note}")
