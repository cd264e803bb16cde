"""`harness train sft|dpo|eval` and `harness lineage MODEL`.

Each command parses, calls one function of `trainers`, and renders. Nothing here imports torch,
trl or peft at import time: `harness --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.tree import Tree

from harness.cli.render import (JsonOption, ReadDbOption, RichProgress, console, db_option, line, literal, print_json,
                                 print_table, say)

train_app = typer.Typer(no_args_is_help=True, help="Fine-tune a model (TRL + peft), register it with its lineage, "
                                                   "optionally evaluate it against its parent.")
TrainDbOption = db_option("DuckDB file: mined data comes from it, the new model goes in it.")
ThenEvalOption = typer.Option(None, "--then-eval", help="Suite YAML (or built-in name) to evaluate the new model "
                                                         "with, beside its parent.")
RecipeArg = typer.Argument(..., help="Recipe YAML file, or a shipped recipe name (trainers/recipes/).")


@train_app.command("sft")
def sft(recipe: str = RecipeArg, db: Path = TrainDbOption, then_eval: Optional[str] = ThenEvalOption) -> None:
    """Supervised fine-tuning (LoRA or full) on chat JSONL or the store's best-rated answers."""
    _train("sft", recipe, db, then_eval)


@train_app.command("dpo")
def dpo(recipe: str = RecipeArg, db: Path = TrainDbOption, then_eval: Optional[str] = ThenEvalOption) -> None:
    """DPO (LoRA or full) on (prompt, chosen, rejected) JSONL or pairs mined from the store's verdicts."""
    _train("dpo", recipe, db, then_eval)


@train_app.command("reward")
def reward(recipe: str = RecipeArg, db: Path = TrainDbOption) -> None:
    """Reward model (LoRA or full, TRL RewardTrainer) on labelled pairs; its held-out pairs are scored
    right after, in both orders, and stored as a judge-eval run."""
    _train("reward", recipe, db, None)


def _train(method: str, recipe: str, db: Path, then_eval: Optional[str]) -> None:
    from harness import api

    _, report = api.train(method, recipe, db, then_eval=then_eval, progress=RichProgress(),
                          on_trained=_render_training)
    if report is not None:
        _render_eval(report)


@train_app.command("eval")
def eval_(model: str = typer.Argument(..., help="A trained model's name (as in its recipe)."),
          suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
          db: Path = TrainDbOption) -> None:
    """Evaluate an already trained model beside its parent (what --then-eval does after training)."""
    from harness import api

    _render_eval(api.evaluate_trained(model, suite, db, progress=RichProgress()))


def lineage(model: str = typer.Argument(..., help="Any model of the family: base, trained, or a descendant."),
            db: Path = ReadDbOption, as_json: bool = JsonOption) -> None:
    """Show a model's family tree: parents, methods, data, costs, loss, and deltas against the parent."""
    from harness import api

    tree = api.lineage(model, db)
    if as_json:
        return print_json(tree)
    _render_lineage(tree, model)


def _fmt(values: list[float]) -> str:
    return f"{values[0]:.3f} → {values[-1]:.3f}" if values else "-"


def _render_training(result) -> None:
    say((result.name, "bold"), f" ← {result.parent} · {result.method} · {result.data_rows} rows · "
        f"{result.steps} steps · {result.s_per_step:.2f} s/step · wall {result.wall_s:.1f} s · "
        f"peak RSS {result.peak_rss_mb:.0f} MB")
    say(f"loss {_fmt(result.curve('loss'))}")
    if result.method == "dpo":
        say(f"rewards/accuracies {_fmt(result.curve('rewards/accuracies'))} · "
            f"rewards/margins {_fmt(result.curve('rewards/margins'))}")
    held = getattr(result, "held_out", None)
    if held is not None:
        m = held.run.subset_metrics.get("all", {})
        shown = [f"{name} {m[name].value:.3f} [{m[name].ci_low:.3f}, {m[name].ci_high:.3f}]" for name in
                 ("accuracy", "pair_accuracy", "p_prefer_longer") if name in m and m[name].ci_low is not None]
        say(f"held out: {held.run.n_items} pairs ({held.run.benchmark}), both orders · " + " · ".join(shown))
    say(f"saved: {result.adapter_path or ''} {result.merged_path or ''}".rstrip())


def _render_eval(report) -> None:
    if report.ratings:
        _render_ratings(report)
    table = Table(title=literal(f"{report.model} vs parent {report.parent} · suite {report.suite.name}"))
    numbers = ("delta", "CI", "p", "MDE @80%", "battles / questions / n")
    for col in ("judge", "dimension / task", "method", *numbers):
        table.add_column(col, justify="right" if col in numbers else "left")
    for c in report.comparisons:
        ci = f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}]" if c.ci_low is not None else "-"
        p = "-" if c.p_value is None else f"{c.p_value:.3g}"
        mde = "-" if c.mde is None else f"±{c.mde:.3g}"
        table.add_row(literal(c.judge_name), literal(c.dimension), c.method, f"{c.delta:+.3g}", ci, p, mde,
                      str(c.battles))
    console.print(table if report.comparisons else "no judged battles or closed-set results to compare yet")
    if report.paired:
        say("bt: BT(model) - BT(parent), question-clustered CI, p from the permutation test (names swapped within "
            "questions); win_rate: the model's paired win rate over the parent per question (ties half), "
            "question-clustered CI, per-question permutation p. MDE: the smallest difference these questions "
            "detect with 80% power at alpha 0.05 (`harness compare` for the full paired report).", soft_wrap=True)
        for panel in report.paired:
            p = panel.paired
            if p.questions and p.questions_needed != float("inf"):
                say(f"{panel.judge_name} / {panel.dimension}: about {p.questions_needed:.0f} questions would detect "
                    f"the observed win-rate gap ({p.win_rate - 0.5:+.1%}) with 80% power", soft_wrap=True)


def _render_ratings(report) -> None:
    """Bradley–Terry only, models by name: the trained model and its parent side by side."""
    rows = [r for r in report.ratings if r.method == "bt"]
    columns = sorted({(r.judge_name, r.dimension) for r in rows})
    resampled = "questions" if rows and all(r.ci_kind == "question" for r in rows) else "battles"
    by_key = {(r.judge_name, r.dimension, r.model): r for r in rows}
    models = sorted({r.model for r in rows})
    print_table(f"leaderboard · {report.suite.name} · Bradley–Terry, {int(report.suite.ratings.level * 100)}% "
                f"bootstrap CIs ({resampled} resampled)",
                [("model", "left")] + [(f"{judge}\n{dimension}", "right") for judge, dimension in columns],
                [[model, *(f"{r.rating:.0f} [{r.ci_low:.0f}, {r.ci_high:.0f}]" if r else "-"
                           for r in (by_key.get((j, d, model)) for j, d in columns))] for model in models])


def _render_lineage(root, highlight: str) -> None:
    tree = Tree(_label(root, highlight))
    _add_children(tree, root, highlight)
    console.print(tree)


def _add_children(tree: Tree, node, highlight: str) -> None:
    for child in node.children:
        branch = tree.add(_label(child, highlight))
        for c in child.comparisons:
            ci = f" [{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]" if c["ci_low"] is not None else ""
            p = f", p={c['p_value']:.3g}" if c.get("p_value") is not None else ""
            branch.add(literal(f"vs {c['parent']} · {c['suite_name']} · {c['judge_name']}/{c['dimension']} "
                               f"{c['method']}: {c['delta']:+.3g}{ci}{p}", style="dim"))
        _add_children(branch, child, highlight)


def _label(node, highlight: str):
    name = (node.name, "bold" if node.name == highlight else "")
    row = node.row
    if row is None:
        return line(name)
    steps = row["steps"] or 0
    return line(name, f" · {row['method']}/{row['finetune']} · {row['data_rows']} rows ({row['data_hash'][:8]}) · "
                f"{steps} steps · {row['wall_s']:.0f} s · peak {row['peak_rss_mb']:.0f} MB · loss {_fmt(node.losses)}")
