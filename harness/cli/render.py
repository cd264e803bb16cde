"""What every command shares: the console, the `--db` option, the progress bar, `literal` (how
stored or user-supplied text is printed) and the renderers of results more than one command prints
(leaderboard, judge reliability, closed-set scores).

Renderers take already computed rows and only print; nothing here touches the store. Text that came
from the store, a data file or the command line is only ever printed through `literal`/`line`:
rich would otherwise read `[/INST]` in a question as markup (and crash), and a model's answer could
send the terminal escape sequences.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness.store import DEFAULT_DB

console = Console()
# C0 controls but tab and newline, DEL, C1 controls (0x9b is CSI on some terminals), bidi overrides
# (they reorder what the reader sees) and lone surrogates (not encodable: printing one would crash).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(text: object, style: str = "", one_line: bool = False) -> Text:
    """`text` as it is stored, safe on a terminal: never read as markup, and every control
    character but newline and tab (newline too with one_line) shown as a visible escape (\\x1b)."""
    return Text((_UNSAFE_LINE if one_line else _UNSAFE).sub(_visible, str(text)), style=style)


def line(*parts: object) -> Text:
    """One printable text of literal parts; a (text, style) pair is styled, e.g.
    line(("Q: ", "bold"), prompt); a Text (already literal) is kept as it is."""
    return Text.assemble(*(p if isinstance(p, Text) else literal(*p) if isinstance(p, tuple) else literal(p)
                           for p in parts))


def say(*parts: object, **print_options) -> None:
    """Print line(*parts)."""
    console.print(line(*parts), **print_options)


def db_option(help: str = "DuckDB file (created if missing).") -> Path:
    """The `--db` option; `help` says what the command does with the file."""
    return typer.Option(DEFAULT_DB, "--db", help=help)


DbOption = db_option()
ReadOnlyDbOption = db_option("DuckDB file to browse (opened read-only).")
ReadDbOption = db_option("DuckDB file to read (written only to migrate one from an older harness).")


class RichProgress:
    """The runner's Progress, drawn with rich."""

    def __init__(self) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False)
        self._task = None

    def start(self, label: str, total: int) -> object:
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)
        return self._task

    def advance(self, n: int, task: object = None) -> None:
        self._bar.advance(self._task if task is None else task, n)

    def stop(self) -> None:
        self._bar.stop()


def render_leaderboard(rows, suite_name: str, level: float | None, rounds: int, merge: str,
                       marks: dict | None = None) -> None:
    """The leaderboard of the 'all' category: one column per (judge, dimension, method) but mean
    grades, models by their best Bradley–Terry rating. `rows` are rating rows (judge_name, dimension,
    category, method, model, rating, ci_low, ci_high, level, battles, ci_kind); `level` is the
    intervals' confidence level, `rounds` and `merge` the bootstrap rounds and order-merge policy
    behind them. `marks`: harness.leaderboard.paired_marks; a BT cell gets '*' when its model is
    significantly above the next one in that panel."""
    from harness.leaderboard import mark_meaning

    rows = [r for r in rows if r.category == "all"]
    if not rows:
        console.print("no parsed verdicts yet: nothing to rate")
        return
    columns = sorted({(r.judge_name, r.dimension, r.method) for r in rows if r.method != "mean_grade"})
    table = Table(title=literal(f"leaderboard · {suite_name} · {int(level * 100) if level else ''}% "
                                f"bootstrap CIs ({rounds} rounds, merge: {merge})"))
    table.add_column("model")
    table.add_column("battles", justify="right")
    for judge, dimension, method in columns:
        table.add_column(literal(f"{judge}\n{dimension} {method.upper()}"), justify="right")
    by_key = {(r.judge_name, r.dimension, r.method, r.model): r for r in rows}
    above = {(panel, a.above) for panel, adjacent in (marks or {}).items() for a in adjacent if a.significant}
    models = sorted({r.model for r in rows}, key=lambda m: -max(
        (r.rating for r in rows if r.model == m and r.method == "bt"), default=0))
    for model in models:
        cells = [_cell(by_key.get((judge, dimension, method, model)))
                 + (" *" if method == "bt" and ((judge, dimension), model) in above else "")
                 for judge, dimension, method in columns]
        battles = max((r.battles for r in rows if r.model == model and r.method == "bt"), default=0)
        table.add_row(literal(model), str(battles), *cells)
    console.print(table)
    say(f"intervals: {_ci_kinds(rows)}", soft_wrap=True)
    if marks is not None:
        say(f"* {mark_meaning()}; no mark: not established (not the same as equal)", soft_wrap=True)


_CI_KIND = {"question": "questions resampled (question-clustered)", "battle": "battles resampled"}


def _ci_kinds(rows) -> str:
    """'BT: questions resampled (question-clustered); ELO: battles resampled' from the rows' ci_kind
    (rows stored before the kind was recorded were battle-level)."""
    kinds: dict[str, set] = {}
    for r in rows:
        if r.ci_low is not None:
            kinds.setdefault(r.method, set()).add(r.ci_kind or "battle")
    return "; ".join(f"{method.upper().replace('_', ' ')}: {' / '.join(_CI_KIND[k] for k in sorted(ks))}"
                     for method, ks in sorted(kinds.items()))


def _cell(r) -> str:
    if r is None:
        return "-"
    if r.method in ("win_rate", "lc_win_rate"):
        return f"{r.rating:.1%}" + (f" [{r.ci_low:.1%}, {r.ci_high:.1%}]" if r.ci_low is not None else "")
    return f"{r.rating:.0f} [{r.ci_low:.0f}, {r.ci_high:.0f}]" if r.ci_low is not None else f"{r.rating:.2f}"


def render_board(board) -> None:
    """harness.api.Leaderboard: the table with the paired-test marks, models it holds beyond the
    suite file, each judge's reliability."""
    cfg = board.suite.ratings
    render_leaderboard(board.rows, board.suite.name, cfg.level, cfg.bootstrap_rounds, cfg.merge, board.marks())
    if board.models_not_in_suite:
        say("also on this board, judged earlier by the same judges on the same sets: ",
            ", ".join(board.models_not_in_suite))
    for name, rel in board.reliability.items():
        say(f"judge {name} reliability: {_reliability(rel)}")
        for note in rel.explain():
            say(("  caution:", "yellow"), f" {note}")


def render_closed_run(summary, scores: list[dict], suite_name: str) -> None:
    """What a closed-set stage ran (with the command that reproduces each run), then its scores."""
    ran = [r for r in summary.results if not r.cached]
    console.print(f"closed-set: {len(ran)} task runs made, {summary.n_cached} from cache"
                  + (f" · {summary.wall_s:.1f} s" if ran else ""))
    for r in ran:
        say((f"reproduce {r.model}/{r.task}: {r.cli}", "dim"), soft_wrap=True)
    render_closed_scores(scores, suite_name)


def render_closed_scores(rows: list[dict], suite_name: str) -> None:
    """The closed-set leaderboard: value ± stderr (n) per model and (task, metric, filter); nothing
    when no rows are stored."""
    if not rows:
        return
    columns = sorted({(r["task"], r["metric"], r["filter"]) for r in rows})
    table = Table(title=literal(f"closed-set (lm-eval) · {suite_name} · value ± stderr"))
    table.add_column("model")
    for task, metric, filt in columns:
        table.add_column(literal(f"{task}\n{metric}" + ("" if filt == "none" else f" ({filt})")), justify="right")
    by_key = {(r["task"], r["metric"], r["filter"], r["model"]): r for r in rows}
    for model in sorted({r["model"] for r in rows}):
        cells = []
        for task, metric, filt in columns:
            r = by_key.get((task, metric, filt, model))
            cells.append("-" if r is None or r["value"] is None else
                         f"{r['value']:.3f}" + (f" ± {r['stderr']:.3f}" if r["stderr"] is not None else "")
                         + f" (n={r['n_samples']})")
        table.add_row(literal(model), *cells)
    console.print(table)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _agreement(with_ties, without_ties) -> str:
    """'63.0% with ties (454/721), 81.0% without (388/479)'; n/a where nothing was comparable."""
    return ", ".join(f"{_pct(a.rate if a.total else None)} {label} ({a.agree}/{a.total})"
                     for a, label in ((with_ties, "with ties"), (without_ties, "without")))


def _reliability(rel) -> str:
    return (f"parse failures {rel.parse_failure_rate:.1%}, swap flips {_pct(rel.swap_flip_rate)}, "
            f"position-A wins {_pct(rel.first_position_win_rate)}, longer answer wins {_pct(rel.longer_answer_win_rate)}")
