"""`harness judge-eval`: agreement of judges with human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from harness.cli.render import DbOption, _agreement, _reliability, console, literal, say


def judge_eval(data: Path = typer.Option(Path("../shared/data"), help="Folder with mt_bench/ and pandalm/."),
               suite: Optional[str] = typer.Option(None, help="Also run this suite's first judge on MT-Bench pairs."),
               sample: int = typer.Option(40, help="MT-Bench human-voted pairs to judge (both orders each)."),
               fastchat_judgments: Optional[Path] = typer.Option(
                   None, help="A FastChat model_judgment/*_pair.jsonl file to score against the expert votes."),
               db: Path = DbOption) -> None:
    """Agreement of judges with human labels: released verdicts, human ceiling, and a live judge;
    stored in the DuckDB file (a rerun judges only what is not stored yet)."""
    from harness import api

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
    for judge, (w, wo) in report.fastchat.items():
        say(f"{judge} ({report.fastchat_file.name}) vs experts: {_agreement(w, wo)}")
    if report.live:
        _render_live(report.live, suite, db)


def _render_live(result, suite: str, db: Path) -> None:
    from harness import api

    say(f"judge {result.judge_name} on {result.pairs} MT-Bench pairs ({result.parsed_pairs} parsed in both "
        f"orders; {result.calls} calls made, {result.cached} from the store), agreement with experts: "
        f"{_agreement(result.with_ties, result.without_ties)}")
    if result.reliability is not None:
        console.print(f"reliability on these pairs: {_reliability(result.reliability)}")
        for note in result.reliability.explain():
            say(f"  caution: {note}")
    rel = api.judge_reliability(db, result.judge_name)
    if rel.calls:
        say(f"reliability of {rel.judge_name} in {db}'s suite judgments: {rel.calls} calls, {_reliability(rel)}")
    for model, rate in api.self_preference(suite, db, result.judge_name).items():
        say(f"self-preference: {model} (the judge's own model) wins {rate:.1%} under it")
