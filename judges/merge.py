"""Merge policies: from the two orders of a pairwise judgment to model-level battles.

Pure functions over rows; which rows count (current fingerprints, latest answers) is decided
before they get here, by harness.battles. A row's verdict is positional (A = the model shown first); merging turns
the pair of rows for (X first, Y first) into model-level outcomes under one of three policies:
  inconsistent_tie  orders disagree -> one tie (FastChat's rule)
  drop              orders disagree -> no battle
  half              each order is its own battle of weight 0.5 (agreeing orders add up to 1)
  calibrated        for likelihood-choice judges: sum each outcome's log-likelihood over the two
                    orders (X wins = P("1" | X first) and P("2" | X second)), which cancels a
                    constant position bias (balanced position calibration, Wang et al. 2023, "Large
                    Language Models are not Fair Evaluators"); rows without likelihoods merge as
                    inconsistent_tie
A battle with an order missing or unparsed counts only under `half` (its one order, weight 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

POLICIES = ("inconsistent_tie", "drop", "half", "calibrated")


@dataclass(frozen=True)
class JudgmentRow:
    set_name: str
    question_id: str
    turn: int
    category: str
    judge_name: str
    dimension: str
    model_a: str  # shown first
    model_b: str
    verdict: str | None  # "A" | "B" | "tie" | None (unparsed)
    len_a: int = 0  # characters of the answers shown as A and B (for length-controlled win rates)
    len_b: int = 0
    choice_logprobs: tuple[float, float, float] | None = None  # log P("1"), P("2"), P("Tie"): choice judges
    answer_a: str = ""  # answer ids shown as A and B
    answer_b: str = ""


@dataclass(frozen=True)
class Battle:
    model_a: str  # alphabetically first of the pair
    model_b: str
    winner: str  # "model_a" | "model_b" | "tie"
    weight: float
    category: str
    consistent: bool  # both orders gave the same model-level outcome
    judge_name: str = ""
    dimension: str = ""
    len_a: int = 0  # answer lengths of model_a and model_b
    len_b: int = 0
    set_name: str = ""  # the question and turn this battle was fought on
    question_id: str = ""
    turn: int = 0
    answer_a: str = ""  # answer ids of model_a and model_b
    answer_b: str = ""

    def score_for(self, model: str) -> float:
        """1 if `model` won this battle, 0.5 for a tie, 0 if it lost."""
        return 0.5 if self.winner == "tie" else float(getattr(self, self.winner) == model)


def _model_outcome(row: JudgmentRow) -> str | None:
    """The winning model's name, 'tie', or None when unparsed."""
    return {"A": row.model_a, "B": row.model_b, "tie": "tie"}.get(row.verdict or "")


def merge_orders(rows: Iterable[JudgmentRow], policy: str = "inconsistent_tie") -> list[Battle]:
    if policy not in POLICIES:
        raise ValueError(f"merge policy must be one of {POLICIES}, got {policy!r}")
    grouped: dict[tuple, list[JudgmentRow]] = {}
    for row in rows:
        x, y = sorted((row.model_a, row.model_b))
        grouped.setdefault((row.set_name, row.question_id, row.turn, row.judge_name, row.dimension, x, y), []).append(row)
    battles = []
    for (*_, x, y), group in grouped.items():
        outcomes = [o for o in (_model_outcome(r) for r in group) if o is not None]
        first = group[0]
        x_is_a = first.model_a == x
        lengths = (first.len_a, first.len_b) if x_is_a else (first.len_b, first.len_a)
        answers = (first.answer_a, first.answer_b) if x_is_a else (first.answer_b, first.answer_a)

        def battle(outcome: str, weight: float, consistent: bool) -> Battle:
            winner = "tie" if outcome == "tie" else ("model_a" if outcome == x else "model_b")
            return Battle(x, y, winner, weight, first.category, consistent, first.judge_name, first.dimension,
                          *lengths, first.set_name, first.question_id, first.turn, *answers)

        calibrated = _calibrated_outcome(group, x, y) if policy == "calibrated" else None
        if calibrated is not None:
            battles.append(battle(calibrated, 1.0, len(outcomes) == 2 and outcomes[0] == outcomes[1]))
        elif len(outcomes) == 2 and outcomes[0] == outcomes[1]:
            battles.append(battle(outcomes[0], 1.0, True))
        elif policy == "half":
            battles += [battle(o, 0.5, False) for o in outcomes]
        elif len(outcomes) == 2 and policy in ("inconsistent_tie", "calibrated"):
            battles.append(battle("tie", 1.0, False))
    return battles


def _calibrated_outcome(group: list[JudgmentRow], x: str, y: str) -> str | None:
    """x, y or 'tie' by the two orders' summed choice log-likelihoods; None without both orders."""
    x_first = [r for r in group if r.model_a == x and r.choice_logprobs]
    y_first = [r for r in group if r.model_a == y and r.choice_logprobs]
    if len(x_first) != 1 or len(y_first) != 1:
        return None
    (one_xy, two_xy, tie_xy), (one_yx, two_yx, tie_yx) = x_first[0].choice_logprobs, y_first[0].choice_logprobs
    scores = {x: one_xy + two_yx, y: two_xy + one_yx, "tie": tie_xy + tie_yx}
    return max(scores, key=scores.__getitem__)
