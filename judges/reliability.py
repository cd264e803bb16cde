"""How far a judge can be trusted, from its own verdicts: pure functions over judgment rows.

The rows are the ones that count (harness.battles.counted_rows): one per order and dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

from judges.merge import JudgmentRow


@dataclass(frozen=True)
class Reliability:
    judge_name: str
    calls: int
    parse_failure_rate: float  # of calls, the share with any dimension unparsed
    swap_flip_rate: float | None  # of battles with both orders parsed, the share whose orders disagree
    first_position_win_rate: float | None  # of parsed non-tie verdicts, the share for position A
    longer_answer_win_rate: float | None  # of parsed non-tie verdicts between unequal lengths

    def explain(self) -> list[str]:
        """Plain-language warnings where a rate shows the judge cannot be trusted as it is."""
        notes = []
        if self.parse_failure_rate > 0.1:
            notes.append(f"{self.parse_failure_rate:.0%} of its calls broke the output format")
        if self.swap_flip_rate is not None and self.swap_flip_rate > 0.3:
            notes.append(f"it changes its verdict when the answers swap places in {self.swap_flip_rate:.0%} of "
                         "battles")
        if self.first_position_win_rate is not None and abs(self.first_position_win_rate - 0.5) > 0.2:
            notes.append(f"it picks the answer shown {'first' if self.first_position_win_rate > 0.5 else 'second'} "
                         f"{max(self.first_position_win_rate, 1 - self.first_position_win_rate):.0%} of the time")
        return notes


def _outcome(row: JudgmentRow) -> str | None:
    return {"A": row.model_a, "B": row.model_b, "tie": "tie"}.get(row.verdict or "")


def reliability(judge_name: str, rows: list[JudgmentRow], calls: list[tuple[str, bool]]) -> Reliability:
    """`rows`: the judge's counted rows; `calls`: (call id, parsed in every dimension) of its calls."""
    mine = [r for r in rows if r.judge_name == judge_name]
    decided = [r for r in mine if r.verdict in ("A", "B")]
    first = [r.verdict == "A" for r in decided]
    unequal = [(r.verdict == "A") == (r.len_a > r.len_b) for r in decided if r.len_a != r.len_b]
    orders: dict[tuple, list[str]] = {}
    for r in mine:
        outcome = _outcome(r)
        if outcome is not None:
            key = (r.set_name, r.question_id, r.turn, r.dimension, min(r.model_a, r.model_b), max(r.model_a, r.model_b))
            orders.setdefault(key, []).append(outcome)
    both = [o for o in orders.values() if len(o) == 2]
    failed = sum(not ok for _, ok in calls)
    return Reliability(
        judge_name, len(calls), failed / len(calls) if calls else 0.0,
        sum(o[0] != o[1] for o in both) / len(both) if both else None,
        sum(first) / len(first) if first else None,
        sum(unequal) / len(unequal) if unequal else None,
    )
