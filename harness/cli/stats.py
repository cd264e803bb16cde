"""`harness compare A B` and `harness how-sure SUITE`: parse, call harness.api, render.

Both read the suite's current battles (harness.battles) and print, per judge and dimension, what
harness.stats measures: paired tests of two models, or the board's intervals under both resampling
units, Holm-corrected neighbour tests, the tie parameter, style coefficients and separability.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from harness.cli.render import JsonOption, console, db_option, literal, print_json, print_table, say

ReadDb = db_option("DuckDB file holding the suite's judgments (must exist).")
SuiteOption = typer.Option("quickstart", "--suite", help="Suite YAML file or built-in suite name.")
JudgeOption = typer.Option(None, "--judge", help="Only this judge's battles (default: every pairwise judge).")
DimensionOption = typer.Option(None, "--dimension", help="Only this dimension (default: every dimension).")
RoundsOption = typer.Option(None, "--rounds", help="Bootstrap rounds (default: the suite's ratings.bootstrap_rounds).")
SeedOption = typer.Option(None, "--seed", help="Bootstrap and permutation seed (default: the suite's ratings.seed).")
AlphaOption = typer.Option(0.05, "--alpha", help="Significance level of the paired tests.")


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def compare(model_a: str = typer.Argument(..., help="The model you hope is better (e.g. a fine-tuned one)."),
            model_b: str = typer.Argument(..., help="The model to compare it with (e.g. its parent)."),
            suite: str = SuiteOption, db: Path = ReadDb, judge: str = JudgeOption, dimension: str = DimensionOption,
            rounds: int = RoundsOption, seed: int = SeedOption, alpha: float = AlphaOption,
            power: float = typer.Option(0.8, "--power", help="Power for the minimum detectable effect."),
            as_json: bool = JsonOption) -> None:
    """Is A better than B, and how sure are we? Paired by question, per judge and dimension."""
    from harness import api

    result = api.compare(model_a, model_b, suite, db, judge=judge, dimension=dimension, rounds=rounds, seed=seed,
                         alpha=alpha, power=power)
    if as_json:
        return print_json(result)
    columns = [("judge / dimension", "left")] + [(c, "right") for c in (
        "questions", "A better / worse / even", "paired win rate [CI]", "BT diff [CI]", "p (BT, names swapped)",
        "p (per question)", "p (sign)", f"MDE @{power:.0%}", "questions needed")]
    print_table(f"{model_a} vs {model_b} · suite {result.suite.name} · paired by question, {result.rounds} "
                "question-clustered bootstrap rounds", columns, [_compare_row(panel) for panel in result.panels])
    say(f"* BT test p <= {alpha}. p (BT, names swapped): A's and B's names swapped within random halves of "
        "the questions and BT refitted, every battle used; p (per question) and p (sign): their own games "
        "only. Paired win rate: A's question-averaged win rate against B (ties half; questions where they "
        "did not meet compare them through common opponents). MDE: the smallest gap from 50% (and in BT "
        f"points) these questions detect with {power:.0%} power at alpha {alpha}; questions needed: for the "
        "observed win-rate gap.")


def _compare_row(panel) -> list[str]:
    p = panel.paired
    bt = f"{p.bt_difference:+.0f} [{p.bt_low:+.0f}, {p.bt_high:+.0f}]"
    mark = " *" if p.significant else ""
    if p.questions == 0:
        return [f"{panel.judge_name} / {panel.dimension}", "0", "-", "-", bt, _p(p.p_bt) + mark, "n/a", "n/a",
                f"±{p.mde_bt:.0f} pts", "-"]
    return [f"{panel.judge_name} / {panel.dimension}", f"{p.questions}",
            f"{p.question_wins} / {p.question_losses} / {p.question_ties}",
            f"{p.win_rate:.1%} [{p.win_rate_low:.1%}, {p.win_rate_high:.1%}]", bt, _p(p.p_bt) + mark,
            _p(p.p_permutation), _p(p.p_sign), f"±{p.mde_win_rate:.1%} / ±{p.mde_bt:.0f} pts",
            "∞" if math.isinf(p.questions_needed) else f"{p.questions_needed:.0f}"]


def how_sure(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
             db: Path = ReadDb, judge: str = JudgeOption, dimension: str = DimensionOption,
             rounds: int = RoundsOption, seed: int = SeedOption, alpha: float = AlphaOption,
             reference: Path = typer.Option(None, "--reference",
                                            help="JSON or CSV file of model -> rating to check rank agreement with."),
             as_json: bool = JsonOption) -> None:
    """How sure is the board? Clustered vs battle-level CIs, Holm-corrected neighbour tests, ties,
    style control and separability, per judge and dimension."""
    from harness import api

    report = api.how_sure(suite, db, judge=judge, dimension=dimension, rounds=rounds, seed=seed, alpha=alpha,
                          reference=reference)
    if as_json:
        return print_json(report)
    for panel in report.panels:
        _render_panel(panel, report)
    if not report.markdown_features:
        say("note: answer texts were not all found in the store: style control used length only")


def _render_panel(panel, report) -> None:
    level = f"{report.level:.0%}"
    below = {a.above: a for a in panel.adjacent}
    rows = []
    for w in panel.widths:
        adj = below.get(w.model)
        mark = "last" if adj is None else (f"{'above' if adj.significant else 'not separated'} "
                                           f"(p={_p(adj.p_holm)})")
        controlled = panel.style.controlled[w.model]
        rows.append([w.model, f"{w.point:.0f}", f"[{w.battle.low:.0f}, {w.battle.high:.0f}]",
                     f"[{w.question.low:.0f}, {w.question.high:.0f}]", f"{w.inflation:.2f}", mark,
                     f"{controlled.point:.0f} [{controlled.low:.0f}, {controlled.high:.0f}]",
                     f"{panel.ties.ratings[w.model]:.0f}"])
    columns = [("model", "left")] + [(c, "right") for c in (
        "BT", "CI, battles resampled", "CI, questions resampled", "width x", "vs next below (Holm)",
        "style-controlled [CI]", "Davidson")]
    print_table(f"{report.suite.name} · {panel.judge_name} / {panel.dimension} · {panel.battles} battles on "
                f"{panel.questions} questions · {level} CIs, {report.rounds} rounds", columns, rows)
    coefficients = ", ".join(f"{name} {iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"
                             for name, iv in panel.style.coefficients.items()) or "none (no style feature varies)"
    say(f"style coefficients (log-odds per unit of the normalised difference): {coefficients}")
    raw, controlled = panel.style.ranking(controlled=False), panel.style.ranking(controlled=True)
    say("ranking raw: ", ", ".join(raw))
    if controlled != raw:
        say("ranking style-controlled: ", ", ".join(controlled))
    t = panel.ties
    say(f"ties: {t.tie_share:.1%} of battles; Davidson nu {t.nu:.3f} [{t.nu_low:.3f}, {t.nu_high:.3f}] "
        f"(P(tie) between equal models {t.tie_at_equal_strength:.1%})")
    say(f"separability: {panel.separability_ci:.0%} of pairs with non-overlapping question-clustered CIs, "
        f"{panel.separability_tested:.0%} separated by BT permutation tests (Holm over pairs, alpha {report.alpha})")
    if panel.held_out is not None:
        h = panel.held_out
        say(f"held-out Brier ({h.folds}-fold by question, {h.battles} battles): {h.brier:.4f} (coin: {h.brier_coin:.4f})")
    if panel.agreement is not None:
        a = panel.agreement
        say(f"agreement with the reference over {len(a.models)} models: Spearman {a.spearman:.3f}, "
            f"Kendall tau-b {a.kendall:.3f}, pairs in the same order {a.pairs_same_order:.0%}")
        if a.only_here:
            say("not in the reference: ", ", ".join(a.only_here))


def probe(suite: str = typer.Argument(..., help="Suite YAML file or built-in suite name."),
          db: Path = ReadDb,
          base: str = typer.Option(None, "--base", help="Model whose answers the length and markdown probes copy "
                                                        "(default: the suite's first model)."),
          keep: Path = typer.Option(None, "--keep", help="Where to keep the store copy the probes are judged in "
                                                         "(reused when it exists; default: a temporary folder).")
          ) -> None:
    """Gaming probes: a constant-output null model and longer / markdown-heavy copies of a real
    model's answers, judged by the suite's judges in a copy of the store; rating moves raw and
    style-controlled."""
    from harness import api
    from harness.cli.render import RichProgress

    report = api.probe(suite, db, base_model=base, keep=keep, progress=RichProgress())
    table = Table(title=literal(f"gaming probes · suite {report.suite.name} · copies of {report.base_model}"))
    for column in ("judge / dimension", "probe", "measured against", "raw gain", "style-controlled gain"):
        table.add_column(column, justify="left" if column in ("judge / dimension", "probe", "measured against")
                         else "right")
    for r in report.rows:
        table.add_row(literal(f"{r.judge_name} / {r.dimension}"), literal(r.model), literal(r.against),
                      f"{r.raw_gain:+.0f}" + (" !" if r.flagged else ""), f"{r.controlled_gain:+.0f}")
    console.print(table)
    say("gain: the probe's BT rating minus that of the model it is measured against (a copy: the model it "
        "copies; the null model: the weakest real model). Style control holds length"
        + (" and markdown" if report.markdown_features else "") + " equal.", soft_wrap=True)
    for flag in report.flags():
        say(("flag:", "red"), f" {flag}: this judge rewards content-free answers", soft_wrap=True)
    say(f"probe store: {report.probe_db}", soft_wrap=True)
    if report.not_saved:
        say(("note:", "yellow"), f" the results were not stored: {report.not_saved}", soft_wrap=True)
    else:
        say(f"results stored in {db} (table probe_results): the app's Judges page shows them and the flags",
            soft_wrap=True)
