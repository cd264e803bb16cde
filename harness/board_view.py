"""The leaderboard as a table people read at a glance: rank and rank range from the intervals (as
LMArena shows them), rating with its interval, win rate, battles per model, win rate and LC win
rate against a baseline, the paired-test mark, and each judge's reliability warnings. Pure
functions over rating rows (harness.store.ratings / harness.views.joint_ratings): nothing here
reads the store or draws (the app renders, harness.views reads)."""

from __future__ import annotations

from dataclasses import dataclass

from judges.reliability import Reliability

RATED = ("bt", "elo")
NOISE_DIGITS = 6  # bounds are compared at this many decimals: 1000.0000000000058 is 1000, not above it


def rank_ranges(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """Per model, (rank, worst rank) from the intervals, as LMArena ranks (FastChat's
    recompute_final_ranking): rank = 1 + the number of models whose lower bound is above this
    model's upper bound (the best rank it can claim); worst = 1 + the number of models whose upper
    bound is above this model's lower bound. Without intervals, the order of the points. Bounds
    are compared at NOISE_DIGITS decimals, so float noise never ranks equal models apart."""
    rows = [{**r, **{k: None if r[k] is None else round(r[k], NOISE_DIGITS) for k in ("rating", "ci_low", "ci_high")}}
            for r in rows]
    out = {}
    for me in rows:
        others = [r for r in rows if r["model"] != me["model"]]
        if me["ci_low"] is None or me["ci_high"] is None or any(r["ci_low"] is None for r in others):
            above = sum(r["rating"] > me["rating"] for r in others)
            out[me["model"]] = (1 + above, 1 + above)
            continue
        best = 1 + sum(r["ci_low"] > me["ci_high"] for r in others)
        worst = 1 + sum(r["ci_high"] > me["ci_low"] for r in others)
        out[me["model"]] = (best, worst)
    return out


def decimals(rows: list[dict]) -> int:
    """Digits worth printing: whole points on a board whose ratings spread over 10 points or more,
    one decimal on a flatter one (never float noise like 1000.0036)."""
    points = [r["rating"] for r in rows]
    return 0 if not points or max(points) - min(points) >= 10 else 1


@dataclass(frozen=True)
class BoardRow:
    """One model's line in one panel (judge, dimension) of one method."""

    rank: int
    rank_range: str  # "1" or "1–3"
    model: str
    rating: float  # rounded as printed
    minus: float | None  # rating - ci_low, rounded as printed
    plus: float | None  # ci_high - rating
    interval: str  # "+12 / −15", or "" without an interval
    win_rate: float | None  # against every opponent in the panel, ties half
    battles: int  # this model's battles in the panel
    vs_baseline: float | None = None  # win rate against the suite's baseline
    lc_vs_baseline: float | None = None  # AlpacaEval-style length-controlled win rate against it
    mark: str = "not tested"  # the paired test against the next model below (harness.leaderboard.paired_marks)


MARKS = {True: "significantly above next", False: "not established", None: "last"}


def board_rows(rows: list[dict], method: str, win_rates: dict[str, float] | None = None,
               marks: dict[str, bool | None] | None = None) -> list[BoardRow]:
    """The table of one panel: `rows` are its rating rows (every method: the `method` ones are
    ranked; win_rate / lc_win_rate rows fill the baseline columns), `win_rates` model -> win rate
    against every opponent, `marks` model -> significant against the next one (None: the last;
    absent: not tested). Best rating first."""
    rated = [r for r in rows if r["method"] == method]
    baseline = {r["model"]: r["rating"] for r in rows if r["method"] == "win_rate"}
    lc = {r["model"]: r["rating"] for r in rows if r["method"] == "lc_win_rate"}
    ranks = rank_ranges(rated)
    digits = decimals(rated)
    out = []
    for r in sorted(rated, key=lambda r: (-r["rating"], r["model"])):  # the chart's and the marks' order
        best, worst = ranks[r["model"]]
        point = round(r["rating"], digits)
        minus = None if r["ci_low"] is None else round(r["rating"] - r["ci_low"], digits)
        plus = None if r["ci_high"] is None else round(r["ci_high"] - r["rating"], digits)
        mark = "not tested" if marks is None or r["model"] not in marks else MARKS[marks[r["model"]]]
        out.append(BoardRow(best, f"{best}" if best == worst else f"{best}–{worst}", r["model"], point, minus, plus,
                            "" if minus is None else f"+{plus:.{digits}f} / −{minus:.{digits}f}",
                            (win_rates or {}).get(r["model"]), int(r["battles"]), baseline.get(r["model"]),
                            lc.get(r["model"]), mark))
    return out


def panel_marks(marks: list[dict], judge: str, dimension: str) -> dict[str, bool | None] | None:
    """model -> significant (None for the panel's last model) from views.board_marks' rows; None
    when the panel was not tested."""
    mine = [m for m in marks if (m["judge_name"], m["dimension"]) == (judge, dimension)]
    if not mine:
        return None
    out: dict[str, bool | None] = {m["above"]: m["significant"] for m in mine}
    out[mine[-1]["below"]] = None
    return out


def warnings(reliabilities: list[dict], judges: list[str]) -> dict[str, list[str]]:
    """judge -> judges.reliability's plain warnings (its thresholds; empty: none), for `judges`."""
    by_name = {r["judge_name"]: Reliability(**r) for r in reliabilities}
    return {j: by_name[j].explain() for j in judges if j in by_name and by_name[j].explain()}
