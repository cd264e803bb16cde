"""`harness calibrate`: a judge's agreement with people before and after MEC, BPC and HITLC."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from harness.cli.render import DbOption, _reliability, console, print_table, say


def calibrate(suite: str = typer.Option("quickstart", help="Suite whose pairwise judge is calibrated."),
              judge: Optional[str] = typer.Option(None, help="That judge (default: the suite's first pairwise)."),
              data: Path = typer.Option(Path("../shared/data"), help="Folder with pandalm/ and mt_bench/."),
              benchmark: str = typer.Option("pandalm", help="pandalm (3 annotators) or mt_bench (expert votes)."),
              pairs: Optional[Path] = typer.Option(None, help="Instead of --benchmark: a labelled-pairs file."),
              pairs_format: str = typer.Option("labelled", "--format", help="Its format (judges.labelled.FORMATS)."),
              sample: int = typer.Option(150, help="Labelled pairs to judge, drawn with --seed (both orders each);"
                                                   " 0: all."),
              k: int = typer.Option(3, help="Samples per order (MEC); 1 for a deterministic judge."),
              beta: float = typer.Option(0.2, help="HITLC: fraction of items, most uncertain first, given to people."),
              evidence: int = typer.Option(0, help="Judge evidence-first: sample this many tokens of evidence with"
                                                   " the judge's model, then pick 1/2/Tie by likelihood (0: the"
                                                   " judge as is)."),
              seed: int = typer.Option(0, help="Sample and bootstrap seed."),
              db: Path = DbOption) -> None:
    """Agreement with human labels before vs after each calibration, on the same items, with
    bootstrap intervals; judgments are stored in the DuckDB file (a rerun makes no judge calls)."""
    from harness import api
    from harness.cli.render import RichProgress

    progress = RichProgress()
    try:
        report = api.calibrate(data, db, suite=suite, judge=judge, benchmark=benchmark, pairs=pairs,
                               pairs_format=pairs_format, sample=sample or None, k=k, beta=beta, seed=seed,
                               evidence_tokens=evidence or None, progress=progress)
    finally:
        progress.stop()
    render(report)


def _ci(metric) -> str:
    if metric.value is None:
        return "n/a"
    interval = f" [{metric.ci_low:.1%}, {metric.ci_high:.1%}]" if metric.ci_low is not None else ""
    return f"{metric.value:.1%}{interval} ({metric.numerator}/{metric.denominator})"


def _delta(delta) -> str:
    value, low, high = delta
    if value is None:
        return ""
    return f"{value:+.1%}" + (f" [{low:+.1%}, {high:+.1%}]" if low is not None else "")


def render(report) -> None:
    columns = [("method", "left"), ("with ties", "right"), ("change", "right"), ("without ties", "right"),
               ("change", "right"), ("vs", "left"), ("calls/item", "right"), ("people", "right")]
    rows = [[m.method, _ci(m.with_ties), _delta(m.delta_with_ties), _ci(m.without_ties), _delta(m.delta_without_ties),
             m.before or "", m.judge_calls_per_item, m.human_labels] for m in report.methods]
    # print_table splits the columns over several tables at 80 columns: no cell is cut ("(399/9…")
    print_table(f"{report.judge_name} on {report.n_items} {report.benchmark} pairs, both orders, k={report.k}:"
                f" agreement with people ({report.level:.0%} bootstrap intervals)", columns, rows)
    if report.reliability is not None:
        console.print(f"first sample: {_reliability(report.reliability)}")
        for note in report.reliability.explain():
            say(f"  caution: {note}")
    uncertain = sum(e > 0 for e in report.entropy.values())
    say(f"{report.calls} judge calls made, {report.cached} read from the store, {report.wall_s:.0f} s; "
        f"{uncertain} of {len(report.entropy)} items have verdicts that disagree (entropy > 0)")
