"""How far a judge can be trusted, from its own verdicts: pure functions over judgment rows.

The rows are the ones that count (harness.battles.counted_rows): one per order and dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

from judges.merge import JudgmentRow


# Where a rate stops being noise and starts to say the judge cannot be trusted as it is.
PARSE_FAILURES_LIMIT = 0.1  # share of calls with a dimension unparsed
SWAP_FLIPS_LIMIT = 0.3  # share of battles whose two orders disagree
SWAP_FLIPS_NO_SIGNAL = 0.9  # ... so many that the verdict follows the position, not the answers
POSITION_SKEW_LIMIT = 0.2  # distance of the position-A win rate from 50%


@dataclass(frozen=True)
class Reliability:
    judge_name: str
    calls: int
    parse_failure_rate: float  # of calls, the share with any dimension unparsed
    swap_flip_rate: float | None  # of battles with both orders parsed, the share whose orders disagree
    first_position_win_rate: float | None  # of parsed non-tie verdicts, the share for position A
    longer_answer_win_rate: float | None  # of parsed non-tie verdicts between unequal lengths

    def explain(self) -> list[str]:
        """Plain-language warnings where a rate crosses its limit (the constants above): the rate,
        then what it means for the verdicts."""
        notes = []
        if self.parse_failure_rate > PARSE_FAILURES_LIMIT:
            notes.append(f"parse failures {self.parse_failure_rate:.0%}: that share of its calls broke the output "
                         "format, and their battles are missing from the board")
        flips = self.swap_flip_rate
        if flips is not None and flips >= SWAP_FLIPS_NO_SIGNAL:
            notes.append(f"swap flips {flips:.0%}: the verdict follows the position, not the answers: these "
                         "verdicts carry no signal (only `merge: calibrated` over a choice judge's likelihoods can recover "
                         "one)")
        elif flips is not None and flips > SWAP_FLIPS_LIMIT:
            notes.append(f"swap flips {flips:.0%}: its verdict changes when the answers swap places in {flips:.0%} "
                         "of battles, so those battles say little about which answer is better")
        first = self.first_position_win_rate
        if first is not None and abs(first - 0.5) > POSITION_SKEW_LIMIT:
            notes.append(f"position-A wins {first:.0%}: it picks the answer shown "
                         f"{'first' if first > 0.5 else 'second'} {max(first, 1 - first):.0%} of the time "
                         "(an unbiased judge: about 50%)")
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
