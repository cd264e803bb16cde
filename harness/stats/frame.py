"""Battles as numpy arrays that remember their question.

Battles on one question are not independent (the same prompt is easy or hard for a model in every
turn, judge and order), so every statistic of harness.stats resamples or pairs by question, the
cluster (set_name, question_id). A `Frame` is the battle list of harness.battles with that cluster
kept as an index; models are indexed in sorted name order, as harness.ratings.battles_from_rows
does, so ratings computed from either agree model by model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.ratings import Battles
from judges.merge import Battle

_SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}


@dataclass(frozen=True, eq=False)  # eq=False: == on numpy fields is elementwise, not a bool
class Frame:
    """One row per battle; `question[i]` indexes `questions`, the (set_name, question_id) clusters."""

    models: tuple[str, ...]
    a: np.ndarray  # model index of side a
    b: np.ndarray
    score_a: np.ndarray  # 1 a won, 0.5 tie, 0 b won
    weight: np.ndarray
    question: np.ndarray  # cluster index per battle
    questions: tuple  # cluster keys, index -> (set_name, question_id)
    len_a: np.ndarray  # answer lengths (characters) of sides a and b
    len_b: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    def battles(self) -> Battles:
        """The same battles as harness.ratings.Battles (for bradley_terry, bootstrap, elo)."""
        return Battles(self.models, self.a, self.b, self.score_a, self.weight)

    def take(self, rows: np.ndarray) -> Frame:
        """The battles at `rows` (indices or a mask); models and question keys are kept."""
        return Frame(self.models, self.a[rows], self.b[rows], self.score_a[rows], self.weight[rows],
                     self.question[rows], self.questions, self.len_a[rows], self.len_b[rows])

    def index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise KeyError(model) from None


def from_arrays(models: Sequence[str], a, b, score_a, weight=None, question=None, questions: Sequence | None = None,
                len_a=None, len_b=None) -> Frame:
    """A Frame from columns (simulations, tests). `question` defaults to one question per battle
    (battle-level resampling is then the same as question-level); `questions` to 0..n-1."""
    a = np.asarray(a, dtype=np.intp).reshape(-1)
    n = len(a)
    question = np.arange(n, dtype=np.intp) if question is None else np.asarray(question, dtype=np.intp).reshape(-1)
    n_questions = int(question.max()) + 1 if n else 0
    questions = tuple(range(n_questions)) if questions is None else tuple(questions)
    column = lambda values, default: (np.full(n, default, dtype=np.float64) if values is None  # noqa: E731
                                      else np.asarray(values, dtype=np.float64).reshape(-1))
    frame = Frame(tuple(models), a, np.asarray(b, dtype=np.intp).reshape(-1), column(score_a, 0.0),
                  column(weight, 1.0), question, questions, column(len_a, 0.0), column(len_b, 0.0))
    Battles(frame.models, frame.a, frame.b, frame.score_a, frame.weight)  # the same checks as Battles
    if not (len(frame.b) == len(question) == len(frame.len_a) == len(frame.len_b) == n):
        raise ValueError("Frame: every column must have one entry per battle")
    if n and (question.min() < 0 or question.max() >= len(questions)):
        raise ValueError("Frame: a question index is outside `questions`")
    return frame


def from_battles(battles: Iterable[Battle]) -> Frame:
    """The battles of harness.battles (any mix of judges and dimensions: pass one panel's battles
    for one panel's statistics) as a Frame; the cluster of a battle is (set_name, question_id)."""
    battles = list(battles)
    models = tuple(sorted({m for b in battles for m in (b.model_a, b.model_b)}))
    model_index = {m: i for i, m in enumerate(models)}
    keys = sorted({(b.set_name, b.question_id) for b in battles})
    key_index = {k: i for i, k in enumerate(keys)}
    n = len(battles)
    column = lambda get, dtype: np.fromiter(map(get, battles), dtype=dtype, count=n)  # noqa: E731
    return from_arrays(
        models,
        column(lambda b: model_index[b.model_a], np.intp),
        column(lambda b: model_index[b.model_b], np.intp),
        column(lambda b: _SCORE[b.winner], np.float64),
        column(lambda b: b.weight, np.float64),
        column(lambda b: key_index[(b.set_name, b.question_id)], np.intp),
        keys,
        column(lambda b: b.len_a, np.float64),
        column(lambda b: b.len_b, np.float64),
    )


def panels(battles: Iterable[Battle]) -> dict[tuple[str, str], list[Battle]]:
    """Battles per (judge, dimension), in name order: the board's panels, each rated on its own."""
    groups: dict[tuple[str, str], list[Battle]] = {}
    for battle in battles:
        groups.setdefault((battle.judge_name, battle.dimension), []).append(battle)
    return dict(sorted(groups.items()))


def to_points(theta: np.ndarray, scale: float = 400.0, base: float = 10.0, initial: float = 1000.0) -> np.ndarray:
    """Natural-scale strengths (log-odds, mean 0) as ratings on the Elo scale, mean `initial`: the
    conversion harness.ratings uses (P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale)))."""
    return initial + scale * np.asarray(theta) / np.log(base)
