"""What every command shares: the console, the `--db` option, the progress bar, `literal` (how
stored or user-supplied text is printed) and the renderers of results more than one command prints
(leaderboard, judge reliability, closed-set scores).

Renderers take already computed rows and only print; nothing here touches the store. Text that came
from the store, a data file or the command line is only ever printed through `literal`/`line`:
rich would otherwise read `[/INST]` in a question as markup (and crash), and a model's answer could
send the terminal escape sequences.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Callable, Iterable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness.store import DEFAULT_DB

console = Console()
notes = Console(stderr=True)  # what is not the result: notes beside --json output, progress of a --json command
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
ReadOnlyDbOption = db_option("DuckDB file to browse (must exist; opened read-only).")
ReadDbOption = db_option("DuckDB file to read (must exist; written only to migrate one from an older harness).")
JsonOption = typer.Option(False, "--json", help="Print the result as JSON on stdout, and nothing else there.")


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


# --- JSON: a read command's --json output ---------------------------------------------------------
def jsonable(value: object) -> object:
    """An API return value as plain JSON data: dataclasses as objects (fields hidden from their repr,
    such as a board's battles, left out), pydantic models as they dump, tuple keys joined with '/',
    dates as ISO text, numpy values as Python ones, and NaN or infinity as null (JSON has neither)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr and not f.name.startswith("_")}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {"/".join(map(str, k)) if isinstance(k, tuple) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    return str(value)


def print_json(value: object) -> None:
    """jsonable(value) on stdout, alone (nothing else a command prints goes there)."""
    typer.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


# --- fitting a terminal -------------------------------------------------------------------------
MIN_NAME = 12  # no name is squeezed below this many characters


def short_names(names: Iterable[object], width: int) -> dict[str, str]:
    """Each name as shown in at most `width` characters, no two alike (the one owner of shortening
    model, judge and suite names). A name that fits stays whole; a longer one keeps its head and
    tail around a middle ellipsis ("smollm2-1…sft-lr1e-4"), all with the same split, the split
    tried from balanced outwards until every name shows differently. Only when no split can tell
    them apart does the width grow."""
    unique = list(dict.fromkeys(str(n) for n in names))
    longest = max(map(len, unique), default=0)
    for room in range(max(width, 3), longest + 1):
        for head in _splits(room - 1):
            shown = {n: _squeeze(n, head, room - 1 - head) for n in unique}
            if len(set(shown.values())) == len(unique):
                return shown
    return {n: n for n in unique}


def _splits(kept: int) -> list[int]:
    """Head lengths for `kept` kept characters, balanced first (a tail one longer), then outwards."""
    middle = kept // 2
    return sorted(range(kept + 1), key=lambda head: (abs(head - middle), head))


def _squeeze(name: str, head: int, tail: int) -> str:
    if len(name) <= head + tail + 1:
        return name
    return name[:head] + "…" + (name[-tail:] if tail else "")


def natural_width(renderable) -> int:
    """How wide `renderable` is when nothing in it wraps."""
    return console.measure(renderable, options=console.options.update_width(100_000)).maximum


def fitted(build: Callable[[Callable[[object], Text]], Table], names: Iterable[object],
           share: float | None = None) -> Table:
    """The table `build(show)` makes, where `show(name)` is how a name of `names` is printed: whole
    when the table fits the terminal, else shortened (short_names, down to MIN_NAME). By as much as
    the table is too wide, or, with `share`, to that share of the terminal's width when the other
    columns can wrap (a path, a description). Name columns should be no_wrap: they then keep the
    shortened width while other columns wrap."""
    table = build(literal)
    excess = natural_width(table) - console.width
    names = [str(n) for n in names]
    if excess <= 0 or not names:
        return table
    budget = max(map(len, names)) - excess if share is None else int(console.width * share)
    short = short_names(names, max(budget, MIN_NAME))
    return build(lambda name: literal(short.get(str(name), name)))


def print_table(title: str, columns: list[tuple[str, str]], rows: list[list[object]]) -> None:
    """A table whose first column names its rows (a model, a judge / dimension): whole when it fits
    the terminal; else with those names shortened (fitted) and, if still too wide, cut into several
    tables of consecutive columns, each repeating the first. `columns`: (header, 'left'|'right');
    cells are printed literally."""
    names = [str(r[0]) for r in rows]

    def build(show, picked: list[int], titled: bool = True) -> Table:
        table = Table(title=literal(title) if titled else None)
        for i in picked:
            header, justify = columns[i]
            table.add_column(literal(header), justify=justify, no_wrap=i == 0)
        for r in rows:
            table.add_row(*(show(r[0]) if i == 0 else literal(r[i]) for i in picked))
        return table

    everything = list(range(len(columns)))
    whole = fitted(lambda show: build(show, everything), names)
    if natural_width(whole) <= console.width:
        console.print(whole)
        return
    say((title, "italic"))
    for group in _column_groups(lambda picked: natural_width(build(literal, picked, False)), len(columns)):
        console.print(fitted(lambda show: build(show, group, False), names))


def _column_groups(width_of: Callable[[list[int]], int], n: int) -> list[list[int]]:
    """Consecutive columns 1..n-1 in groups, each with column 0 first, as many per group as fit."""
    groups, group = [], [0]
    for i in range(1, n):
        if len(group) > 1 and width_of(group + [i]) > console.width:
            groups.append(group)
            group = [0]
        group.append(i)
    return groups + [group]

def render_leaderboard(rows, suite_name: str, level: float | None, rounds: int, merge: str,
                       marks: dict | None = None) -> None:
    """The leaderboard of the 'all' category, mean grades aside. One table with a column per (judge,
    dimension, method) when it fits the terminal (model names shortened if that is what it takes),
    else one narrow table per judge and dimension. Models by their best Bradley–Terry rating. `rows`
    are rating rows (judge_name, dimension, category, method, model, rating, ci_low, ci_high, level,
    battles, ci_kind); `level` is the intervals' confidence level, `rounds` and `merge` the bootstrap
    rounds and order-merge policy behind them. `marks`: harness.leaderboard.paired_marks; a BT cell
    gets '*' when its model is significantly above the next one in that panel."""
    from harness.leaderboard import mark_meaning

    rows = [r for r in rows if r.category == "all" and r.method != "mean_grade"]
    if not rows:
        console.print("no parsed verdicts yet: nothing to rate")
        return
    heading = (f"leaderboard · {suite_name} · {int(level * 100) if level else ''}% bootstrap CIs ({rounds} rounds, "
               f"merge: {merge})")
    board = _Board(rows, marks or {})
    for judge_width in (None, 16):  # judge names whole in the headers, else shortened, else narrow tables
        wide = fitted(lambda show: board.wide(heading, show, judge_width), board.models)
        if natural_width(wide) <= console.width:
            console.print(wide)
            break
    else:
        say((heading, "italic"))
        for panel in board.panels:
            console.print(fitted(lambda show: board.narrow(panel, show), board.models))
    say(f"intervals: {_ci_kinds(rows)}")
    if marks is not None:
        say(f"* {mark_meaning()}; no mark: not established (not the same as equal)")


class _Board:
    """The leaderboard's cells, for either layout."""

    def __init__(self, rows, marks: dict) -> None:
        self.by_key = {(r.judge_name, r.dimension, r.method, r.model): r for r in rows}
        self.columns = sorted({(r.judge_name, r.dimension, r.method) for r in rows})
        self.panels = sorted({(r.judge_name, r.dimension) for r in rows})
        self.above = {(panel, a.above) for panel, adjacent in marks.items() for a in adjacent if a.significant}
        bt = [r for r in rows if r.method == "bt"]
        self.models = sorted({r.model for r in rows}, key=lambda m: (-max((r.rating for r in bt if r.model == m),
                                                                           default=0), m))
        self.battles = {m: max((r.battles for r in bt if r.model == m), default=0) for m in self.models}

    def cell(self, judge: str, dimension: str, method: str, model: str) -> str:
        mark = " *" if method == "bt" and ((judge, dimension), model) in self.above else ""
        return _cell(self.by_key.get((judge, dimension, method, model))) + mark

    def wide(self, heading: str, show, judge_width: int | None) -> Table:
        names = {j for j, _, _ in self.columns}
        judges = short_names(names, judge_width) if judge_width else {j: j for j in names}
        one_judge = len(judges) == 1  # then named once, in the title
        table = Table(title=literal(heading + (f" · judge {next(iter(judges))}" if one_judge else "")))
        table.add_column("model", no_wrap=True)
        table.add_column("battles", justify="right")
        for judge, dimension, method in self.columns:
            head = f"{dimension} {_METHOD.get(method, method)}"
            table.add_column(literal(head if one_judge else f"{judges[judge]}\n{head}"), justify="right")
        for model in self.models:
            table.add_row(show(model), str(self.battles[model]), *(self.cell(*column, model) for column in self.columns))
        return table

    def narrow(self, panel: tuple[str, str], show) -> Table:
        judge, dimension = panel
        methods = [m for j, d, m in self.columns if (j, d) == panel]
        table = Table(title=literal(f"{judge} · {dimension}"))
        table.add_column("model", no_wrap=True)
        table.add_column("battles", justify="right")
        for method in methods:
            table.add_column(_METHOD.get(method, method), justify="right")
        for model in sorted(self.models, key=lambda m: -getattr(self.by_key.get((judge, dimension, "bt", m)),
                                                                 "rating", float("-inf"))):
            ours = [self.by_key.get((judge, dimension, method, model)) for method in methods]
            if any(ours):
                battles = max(r.battles for r in ours if r is not None)
                table.add_row(show(model), str(battles), *(self.cell(judge, dimension, m, model) for m in methods))
        return table


_METHOD = {"bt": "BT", "elo": "Elo", "win_rate": "win rate", "lc_win_rate": "LC win rate"}


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
        render_reliability(f"judge {name}", rel)


def board_json(board) -> dict:
    """A harness.api.Leaderboard as --json prints it: its fields (rows of every category, each
    judge's reliability with its cautions as `notes`), plus `marks`, the paired tests behind '*'."""
    data = jsonable(board)
    for name, rel in board.reliability.items():
        data["reliability"][name]["notes"] = rel.explain()
    data["marks"] = [{"judge_name": judge, "dimension": dimension, **jsonable(a)}
                     for (judge, dimension), adjacent in board.marks().items() for a in adjacent]
    return data


def render_reliability(label: str, rel) -> None:
    """'LABEL reliability: parse failures …, swap flips …' and, under it, each caution of
    judges.reliability (what a rate past its threshold means for the verdicts), wrapped beside its
    label."""
    say(f"{label} reliability: {_reliability(rel)}")
    cautions = rel.explain()
    if cautions:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for note in cautions:
            grid.add_row(literal("  caution:", "yellow"), literal(note))
        console.print(grid)


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
    by_key = {(r["task"], r["metric"], r["filter"], r["model"]): r for r in rows}
    models = sorted({r["model"] for r in rows})

    def build(show) -> Table:
        table = Table(title=literal(f"closed-set (lm-eval) · {suite_name} · value ± stderr"))
        table.add_column("model", no_wrap=True)
        for task, metric, filt in columns:
            table.add_column(literal(f"{task}\n{metric}" + ("" if filt == "none" else f" ({filt})")), justify="right")
        for model in models:
            cells = [by_key.get((task, metric, filt, model)) for task, metric, filt in columns]
            table.add_row(show(model), *("-" if r is None or r["value"] is None else
                                         f"{r['value']:.3f}" + (f" ± {r['stderr']:.3f}" if r["stderr"] is not None
                                                                else "") + f" (n={r['n_samples']})" for r in cells))
        return table

    console.print(fitted(build, models))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _agreement(with_ties, without_ties) -> str:
    """'63.0% with ties (454/721), 81.0% without (388/479)'; n/a where nothing was comparable."""
    return ", ".join(f"{_pct(a.rate if a.total else None)} {label} ({a.agree}/{a.total})"
                     for a, label in ((with_ties, "with ties"), (without_ties, "without")))


def _reliability(rel) -> str:
    return (f"parse failures {rel.parse_failure_rate:.1%}, swap flips {_pct(rel.swap_flip_rate)}, "
            f"position-A wins {_pct(rel.first_position_win_rate)}, longer answer wins {_pct(rel.longer_answer_win_rate)}")
