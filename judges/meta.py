"""Meta-evaluation: how well a judge agrees with people.

Importers for human-labelled judge benchmarks (the MT-Bench human study, the PandaLM test set) and
for FastChat's judgment files, plus the agreement metrics those papers publish. Each metric follows
the authors' own code, not a textbook variant, so the published figures come out exactly:

- `fastchat_agreement`: FastChat `llm_judge/compute_agreement.py` (MT-Bench paper, Table 5).
- `classification_report`: PandaLM `data/compute_metrics.py`, which is sklearn's macro
  precision/recall/F1 with zero division scored as 0.
- `cohen_kappa`: the usual two-rater kappa (PandaLM's inter-annotator figure).

`mt_bench_pairs` and `pandalm_pairs` turn the two human-labelled sets into judges.labelled
LabelledPairs (the one pair type every benchmark uses); `votes_of` gives a pair's human votes back
as FastChat votes.

A file that cannot be read raises `DataError` with one line: `file:line: field '...': problem: fix`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from harness.errors import DataError
from judges.jsonl import read_jsonl
from judges.labelled import LabelledPair, field_of, json_array_rows

WINNERS = ("model_a", "model_b", "tie")
# FastChat's judge files say "model_1"/"model_2"; the human-study files say "model_a"/"model_b".
_FASTCHAT_WINNER = {"model_1": "model_a", "model_2": "model_b", "tie": "tie"}
PANDA_LABELS = (0, 1, 2)  # 0 = tie, 1 = response1 better, 2 = response2 better


# ---------------------------------------------------------------- reading files (judges.labelled: the
# readers and field checks shared with every labelled-pairs loader)


def _name(where: str, row: dict, key: str) -> str:
    value = field_of(where, row, key, str, "give a non-empty string")
    if not value.strip():
        raise DataError(f"{where}: field '{key}': empty: give a non-empty string")
    return value


def _turn(where: str, row: dict) -> int:
    turn = field_of(where, row, "turn", int, "give the turn number (1 or 2)")
    if turn < 1:
        raise DataError(f"{where}: field 'turn': {turn} is not a turn number: give 1 or 2")
    return turn


# ---------------------------------------------------------------- MT-Bench human votes


@dataclass(frozen=True)
class Vote:
    """One judge's verdict on one pair of answers; `winner` is "model_a", "model_b" or "tie"."""

    question_id: int | str
    model_a: str
    model_b: str
    turn: int
    judge: str
    winner: str

    @property
    def key(self) -> tuple:
        return (self.question_id, self.model_a, self.model_b, self.turn)


def _vote_from_row(where: str, row: dict) -> Vote:
    winner = field_of(where, row, "winner", str, f"use one of {', '.join(WINNERS)}")
    # The gpt4_pair split of lmsys/mt_bench_human_judgments writes "tie (inconsistent)";
    # FastChat counts any winner containing "tie" as a tie (compute_agreement.convertvote).
    if winner == "tie (inconsistent)":
        winner = "tie"
    if winner not in WINNERS:
        raise DataError(f"{where}: field 'winner': {winner!r} is not a verdict: use one of {', '.join(WINNERS)}")
    model_a, model_b = _name(where, row, "model_a"), _name(where, row, "model_b")
    if model_a == model_b:
        raise DataError(f"{where}: field 'model_b': same as model_a ({model_a!r}): a vote compares two models")
    return Vote(
        question_id=field_of(where, row, "question_id", (int, str), "give the MT-Bench question_id"),
        model_a=model_a,
        model_b=model_b,
        turn=_turn(where, row),
        judge=_name(where, row, "judge"),
        winner=winner,
    )


def load_mt_bench_votes(path: Path) -> list[Vote]:
    """Human votes from `human_judgments_turn1_votes.jsonl` or its `_with_text` variant, in file order."""
    votes = [_vote_from_row(f"{path}:{lineno}", row) for lineno, row in read_jsonl(path)]
    if not votes:
        raise DataError(f"{path}: no votes: the file is empty")
    return votes


def _turn_texts(where: str, row: dict, side: str, turn: int) -> tuple[str, str]:
    """(user message, assistant answer) of `turn` in conversation_<side>."""
    key = f"conversation_{side}"
    conversation = field_of(where, row, key, list, "give the conversation as a list of {role, content} messages")
    first = 2 * (turn - 1)
    messages = conversation[first : first + 2]
    expected = ("user", "assistant")
    if len(messages) != 2 or not all(
        isinstance(m, dict) and m.get("role") == role and isinstance(m.get("content"), str)
        for m, role in zip(messages, expected)
    ):
        raise DataError(f"{where}: field '{key}': turn {turn} is not a user message then an assistant answer")
    # An empty answer is real data (llama-13b on question 127), so it is kept, not rejected.
    return messages[0]["content"], messages[1]["content"]


def load_mt_bench_pairs_with_text(path: Path) -> list[LabelledPair]:
    """Turn-1 pairs from `human_judgments_turn1_with_text.jsonl`, one per (question_id, model_a,
    model_b, turn) in first-seen order, each holding all the votes cast on it.

    The key keeps the file's model order: a pair shown both ways round is two LabelledPairs.
    """
    pairs: dict[tuple, dict] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        vote = _vote_from_row(where, row)
        if vote.turn != 1:
            # A turn-2 verdict depends on the whole conversation, which LabelledPair does not carry.
            raise DataError(
                f"{where}: field 'turn': {vote.turn}: only turn-1 votes are supported: drop turn-2 rows"
            )
        question, answer_a = _turn_texts(where, row, "a", vote.turn)
        question_b, answer_b = _turn_texts(where, row, "b", vote.turn)
        if question_b != question:
            raise DataError(f"{where}: field 'conversation_b': its question differs from conversation_a's")
        texts = (_name(where, row, "category"), question, answer_a, answer_b)
        seen = pairs.setdefault(vote.key, {"texts": texts, "votes": []})
        if seen["texts"] != texts:
            raise DataError(
                f"{where}: field 'conversation_a': texts differ from an earlier row with the same pair"
            )
        seen["votes"].append(vote)
    if not pairs:
        raise DataError(f"{path}: no votes: the file is empty")
    return [_mt_bench_pair(entry["texts"], entry["votes"]) for entry in pairs.values()]


_POSITIONAL = {"model_a": "A", "model_b": "B", "tie": "tie"}
_WINNER = {label: winner for winner, label in _POSITIONAL.items()}


def _mt_bench_pair(texts: tuple[str, str, str, str], votes: list[Vote]) -> LabelledPair:
    """A LabelledPair whose labels are the votes (judge names as annotators, the models as tags)."""
    category, question, answer_a, answer_b = texts
    v = votes[0]
    tags = {"question_id": str(v.question_id), "model_a": v.model_a, "model_b": v.model_b, "turn": str(v.turn)}
    return LabelledPair(f"{v.question_id}:{v.model_a}:{v.model_b}:{v.turn}", category, (question,), answer_a,
                        answer_b, tuple(_POSITIONAL[x.winner] for x in votes), annotators=tuple(x.judge for x in votes),
                        tags=tags)


def mt_bench_pairs(path: Path) -> list[LabelledPair]:
    """The MT-Bench pairs with at least one expert vote, labelled by the experts' votes only (FastChat's
    "human" judge leaves the paper authors' votes out), in file order."""
    pairs = []
    for pair in load_mt_bench_pairs_with_text(path):
        experts = [i for i, name in enumerate(pair.annotators) if not name.startswith("author")]
        if experts:
            pairs.append(replace(pair, labels=tuple(pair.labels[i] for i in experts),
                                 annotators=tuple(pair.annotators[i] for i in experts)))
    return pairs


def votes_of(pair: LabelledPair, labels: Sequence[str] | None = None,
             annotators: Sequence[str] | None = None) -> list[Vote]:
    """A pair's labels as FastChat votes (the pair's own by default), so `fastchat_agreement` groups
    them by question and unordered model pair; pairs without model tags are their own group."""
    labels = pair.labels if labels is None else labels
    names = annotators if annotators is not None else (pair.annotators or [f"annotator_{i}" for i in
                                                                          range(len(labels))])
    question = pair.tags.get("question_id", pair.id)
    model_a, model_b = pair.tags.get("model_a", "response_a"), pair.tags.get("model_b", "response_b")
    turn = int(pair.tags.get("turn", 1))
    return [Vote(question, model_a, model_b, turn, name, _WINNER[label]) for name, label in zip(names, labels)]


# ---------------------------------------------------------------- FastChat judgment files


class SingleScore(NamedTuple):
    """One single-answer grade from a FastChat `*_single.jsonl` file."""

    model: str
    question_id: int | str
    turn: int
    score: float


def _judge_name(where: str, row: dict) -> str:
    judge = row.get("judge")
    if not (isinstance(judge, list) and len(judge) == 2 and all(isinstance(j, str) and j for j in judge)):
        raise DataError(f"{where}: field 'judge': {judge!r}: expected FastChat's [judge model, prompt name]")
    return f"{judge[0]}/{judge[1]}"


def load_fastchat_pair_judgments(path: Path) -> list[Vote]:
    """Votes from a FastChat pairwise judgment file (`model_judgment/gpt-4_pair.jsonl`).

    Each row judged the pair twice, once in each order (g1: model_1 shown first, g2: swapped, its
    winner already mapped back). As in FastChat's `load_pairwise_model_judgments`, the vote is the
    common winner when g1 and g2 agree; otherwise it is inconsistent, which agreement counts as a tie.
    Rows where either game is "error" (no verdict could be parsed) are left out, as FastChat's
    show_result.py does. The judge is named "model/prompt", e.g. "gpt-4/pair-v2".
    """
    votes = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        games = []
        for key in ("g1_winner", "g2_winner"):
            winner = field_of(where, row, key, str, "use model_1, model_2, tie or error")
            if winner not in _FASTCHAT_WINNER and winner != "error":
                raise DataError(
                    f"{where}: field '{key}': {winner!r} is not a verdict: use model_1, model_2, tie or error"
                )
            games.append(winner)
        judge = _judge_name(where, row)
        if "error" in games:
            continue
        winner = _FASTCHAT_WINNER[games[0]] if games[0] == games[1] else "tie"
        model_a, model_b = _name(where, row, "model_1"), _name(where, row, "model_2")
        question_id = field_of(where, row, "question_id", (int, str), "give the question_id")
        votes.append(Vote(question_id, model_a, model_b, _turn(where, row), judge, winner))
    return votes


def load_fastchat_single_judgments(path: Path) -> list[SingleScore]:
    """Grades from a FastChat single-answer judgment file (`model_judgment/gpt-4_single.jsonl`).

    A score of -1 means FastChat could not find a "[[rating]]" in the judge's text; those rows are
    left out, as FastChat's show_result.py does.
    """
    scores = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        _judge_name(where, row)
        score = field_of(where, row, "score", (int, float), "give the numeric score (-1 when unparsed)")
        if score == -1:
            continue
        question_id = field_of(where, row, "question_id", (int, str), "give the question_id")
        scores.append(SingleScore(_name(where, row, "model"), question_id, _turn(where, row), float(score)))
    return scores


# ---------------------------------------------------------------- agreement (FastChat)


@dataclass(frozen=True)
class Agreement:
    """`agree` of `total` compared pairs of votes; `rate` is agree / total (a fraction; nan if total is 0)."""

    agree: int
    total: int
    rate: float


_REVERSED = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


def _votes_by_pair(votes: Iterable[Vote], expert_only: bool, turn: int | None) -> dict[tuple, list[str]]:
    """Winners per (question_id, model, model, turn) with the models in sorted order; a vote cast
    with the models the other way round is reverted, as FastChat's get_mt_bench_votes_data does."""
    by_pair: dict[tuple, list[str]] = defaultdict(list)
    for vote in votes:
        # FastChat's "human" judge is the experts; the authors' votes ("author_N") are a group it
        # never compares. LLM judges are not named author_*, so this only filters people.
        if expert_only and vote.judge.startswith("author"):
            continue
        if turn is not None and vote.turn != turn:
            continue
        if vote.model_a < vote.model_b:
            by_pair[(vote.question_id, vote.model_a, vote.model_b, vote.turn)].append(vote.winner)
        else:
            by_pair[(vote.question_id, vote.model_b, vote.model_a, vote.turn)].append(_REVERSED[vote.winner])
    return by_pair


def fastchat_agreement(
    votes_1: Iterable[Vote],
    votes_2: Iterable[Vote] | None = None,
    include_ties: bool = True,
    expert_only: bool = True,
    turn: int | None = None,
) -> Agreement:
    """Agreement between judges, computed exactly as FastChat's compute_agreement.py.

    For each pair of answers (question, unordered model pair, turn):
    - votes_2 None: every two votes in votes_1 are compared (human vs human). Like FastChat this
      does not check that the two votes come from different judges; in the shared MT-Bench data
      only author_0 voted twice on one pair, so with expert_only it makes no difference.
    - votes_2 given: every vote in votes_1 is compared with every vote in votes_2 (FastChat's
      "gpt4-pair" vs "human", where votes_1 holds the single LLM vote per pair).
    Two ties agree. include_ties=False drops every comparison in which either vote is a tie.

    expert_only=True (the default) leaves out the paper authors' votes (judge "author_N"), as
    FastChat's "human" judge does; it is what reproduces the paper's 63% (454/721) and 81% (388/479)
    on the turn-1 human votes. turn=None pools all turns (FastChat reports turns separately).
    """
    group_1 = _votes_by_pair(votes_1, expert_only, turn)
    group_2 = None if votes_2 is None else _votes_by_pair(votes_2, expert_only, turn)
    agree = total = 0
    for key, winners in group_1.items():
        if group_2 is None:
            compared = combinations(winners, 2)
        else:
            compared = ((w1, w2) for w1 in winners for w2 in group_2.get(key, ()))
        for w1, w2 in compared:
            if not include_ties and "tie" in (w1, w2):
                continue
            total += 1
            agree += w1 == w2
    return Agreement(agree, total, agree / total if total else float("nan"))


# ---------------------------------------------------------------- PandaLM test set


@dataclass(frozen=True)
class PandaItem:
    """One PandaLM test item; labels are 0 = tie, 1 = response1 better, 2 = response2 better."""

    idx: int
    instruction: str
    input: str
    response1: str
    response2: str
    annotators: tuple[int, int, int]
    majority: int


def majority_label(labels: Sequence[int]) -> int:
    """The most common label; on a three-way split, the first annotator's label.

    That is what PandaLM's compute_metrics.py does (max over a dict in insertion order). The v1
    test set has no three-way split, so its label counts (105/422/472) do not depend on this rule.
    """
    counts = Counter(labels)  # Counter keeps first-seen order, so max() picks the earliest on a tie
    return max(counts, key=counts.__getitem__)


def _panda_label(where: str, row: dict, key: str) -> int:
    value = field_of(where, row, key, int, "use 0 (tie), 1 (response1 better) or 2 (response2 better)")
    if value not in PANDA_LABELS:
        raise DataError(f"{where}: field '{key}': {value} is not a label: use 0, 1 or 2")
    return value


def _panda_idx(where: str, row: dict, seen: set[int]) -> int:
    idx = field_of(where, row, "idx", int, "give the item's integer idx")
    if idx in seen:
        raise DataError(f"{where}: field 'idx': duplicate idx {idx}: each item once")
    seen.add(idx)
    return idx


def _panda_text(where: str, row: dict, key: str) -> str:
    if key not in row:
        raise DataError(f"{where}: field '{key}': missing: give the text (may be empty)")
    value = row[key]
    # Upstream stores six one-word answers "True" as JSON true (idx 157-164): read them back as text.
    if isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}': {value!r} is not text: give the text as a string")
    return value


def load_pandalm_testset(path: Path) -> list[PandaItem]:
    """PandaLM's human-annotated `testset-v1.json` (999 items, three annotators each)."""
    items, seen = [], set()
    for where, row in json_array_rows(path):
        idx = _panda_idx(where, row, seen)
        where = f"{where} (idx {idx})"
        annotators = tuple(_panda_label(where, row, f"annotator{i}") for i in (1, 2, 3))
        texts = [_panda_text(where, row, k) for k in ("instruction", "input", "response1", "response2")]
        items.append(PandaItem(idx, *texts, annotators=annotators, majority=majority_label(annotators)))
    if not items:
        raise DataError(f"{path}: no items: the file is empty")
    return items


_PANDA_POSITION = {0: "tie", 1: "A", 2: "B"}  # PandaLM label -> LabelledPair label (response1 is A)


def pandalm_pairs(items: Sequence[PandaItem]) -> list[LabelledPair]:
    """PandaLM test items as LabelledPairs: the instruction (and its input) as the prompt, response1
    as A, the three annotators' labels; the pair's gold is then the same majority as `majority_label`."""
    return [LabelledPair(str(item.idx), "all", (f"{item.instruction}\n\n{item.input}" if item.input else item.instruction,),
                         item.response1, item.response2, tuple(_PANDA_POSITION[a] for a in item.annotators),
                         annotators=("annotator1", "annotator2", "annotator3"))
            for item in items]


def load_pandalm_released(path: Path) -> dict[int, int]:
    """PandaLM-7B's released verdicts (`pandalm-7b-testset-v1.json`): idx -> 0/1/2."""
    verdicts: dict[int, int] = {}
    seen: set[int] = set()
    for where, row in json_array_rows(path):
        idx = _panda_idx(where, row, seen)
        verdicts[idx] = _panda_label(f"{where} (idx {idx})", row, "pandalm_result")
    return verdicts


# gpt-3.5-turbo's verdicts are text. PandaLM's compute_metrics.py scores "Tie"/"tie" as a tie and
# int() of anything else, except "garbage" (25 items with no usable answer), which it also scores
# as a tie; the published 71.07/58.79/57.36/57.55 depend on that, so it is kept here.
_GPT_VERDICTS = {"0": 0, "1": 1, "2": 2, "Tie": 0, "tie": 0, "garbage": 0}


def load_gpt35_released(path: Path) -> dict[int, int]:
    """gpt-3.5-turbo's released verdicts (`gpt-3.5-turbo-testset-v1.json`): idx -> 0/1/2.

    `gpt_result` must be exactly "1", "2", "0", "Tie"/"tie" or "garbage" (no answer, scored as a
    tie as PandaLM did); any other text is an error rather than a guess.
    """
    verdicts: dict[int, int] = {}
    seen: set[int] = set()
    for where, row in json_array_rows(path):
        idx = _panda_idx(where, row, seen)
        text = field_of(f"{where} (idx {idx})", row, "gpt_result", str, "give the verdict as text")
        if text not in _GPT_VERDICTS:
            raise DataError(
                f"{where} (idx {idx}): field 'gpt_result': {text[:40]!r} is not a verdict: "
                "use '1', '2', 'Tie' or 'garbage'"
            )
        verdicts[idx] = _GPT_VERDICTS[text]
    return verdicts


# ---------------------------------------------------------------- classification metrics


@dataclass(frozen=True)
class Report:
    """Accuracy and macro-averaged precision/recall/F1, in percent, over `n` items."""

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    n: int


def _ratio(num: float, den: float) -> float:
    # sklearn's zero_division default: an undefined precision/recall/F1 counts as 0.
    return num / den if den else 0.0


def classification_report(
    predicted: dict[int, int], gold: dict[int, int], labels: Sequence[int] = PANDA_LABELS
) -> Report:
    """Score `predicted` against `gold` on every gold item, like sklearn's
    precision_recall_fscore_support(average="macro", labels=labels) and accuracy_score.

    A predicted label outside `labels` still counts as wrong. Every gold item needs a prediction.
    """
    missing = [idx for idx in gold if idx not in predicted]
    if missing:
        raise DataError(f"predictions: no verdict for {len(missing)} gold items (first idx {missing[0]}): "
                        "predict every item or score a subset of gold")
    if not gold:
        raise DataError("gold: no items to score: give at least one gold label")
    y_true = np.array([gold[idx] for idx in gold])
    y_pred = np.array([predicted[idx] for idx in gold])
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = int(np.sum((y_true == label) & (y_pred == label)))
        fp = int(np.sum((y_true != label) & (y_pred == label)))
        fn = int(np.sum((y_true == label) & (y_pred != label)))
        precisions.append(_ratio(tp, tp + fp))
        recalls.append(_ratio(tp, tp + fn))
        f1s.append(_ratio(2 * tp, 2 * tp + fp + fn))  # = 2PR/(P+R), as sklearn computes it
    return Report(
        accuracy=100 * float(np.mean(y_true == y_pred)),
        macro_precision=100 * float(np.mean(precisions)),
        macro_recall=100 * float(np.mean(recalls)),
        macro_f1=100 * float(np.mean(f1s)),
        n=len(y_true),
    )


def cohen_kappa(labels_1: Sequence, labels_2: Sequence) -> float:
    """Cohen's kappa between two raters' labels on the same items (nan when both always give one
    and the same label, where chance agreement is 1 and kappa is undefined)."""
    a, b = np.asarray(labels_1), np.asarray(labels_2)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"cohen_kappa: need two equal-length, non-empty label lists, got {a.shape} and {b.shape}"
        )
    observed = float(np.mean(a == b))
    chance = sum(float(np.mean(a == label)) * float(np.mean(b == label)) for label in np.union1d(a, b))
    if chance == 1.0:
        return float("nan")
    return (observed - chance) / (1 - chance)
