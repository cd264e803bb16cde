"""Training rows in TRL's conversational formats, from JSONL files or mined from the store.

SFT rows are prompt/completion pairs of message lists: TRL then computes the loss on the completion
only (training on `messages` would also train on the prompt and system text). DPO rows are
{prompt, chosen, rejected} message lists. Mining the store closes the loop: judge verdicts (the battles
that count, merged over both orders by harness.battles) become DPO pairs, and each question's best-rated
answer becomes an SFT row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError
from harness.models.base import stable_hash
from harness.sets import read_jsonl
from harness.store import Store
from harness.battles import Selection, battles
from harness.store.queries import answer_texts_by_id, first_turns
from judges.merge import Battle
from trainers.recipe import StoreData

ROLES = {"system", "user", "assistant"}


@dataclass
class TrainingData:
    rows: list[dict]
    source: str  # the file, or a description of the store query
    provenance: list[dict] = field(default_factory=list)  # mined rows: which models/answers they came from

    @property
    def hash(self) -> str:
        return stable_hash(self.rows)


def _messages(where: str, value, key: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field '{key}': must be a non-empty list of {{role, content}} messages")
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: field '{key}': each message needs role (system/user/assistant) and "
                            "content (a string)")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def load_chat_jsonl(path: Path, limit: int | None = None) -> TrainingData:
    """{"messages": [...]} per line, ending with the assistant turn to learn."""
    rows = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        messages = _messages(where, obj.get("messages"), "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise DataError(f"{where}: field 'messages': must end with an assistant message after a user one")
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return TrainingData(rows[:limit], str(path))


def _turn(where: str, value, key: str, role: str) -> list[dict]:
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    return _messages(where, value, key)


def load_pairs_jsonl(path: Path, limit: int | None = None) -> TrainingData:
    """{"prompt": str | messages, "chosen": str | messages, "rejected": str | messages} per line."""
    rows = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        for key in ("prompt", "chosen", "rejected"):
            if key not in obj:
                raise DataError(f"{where}: field '{key}': missing: each line needs prompt, chosen and rejected")
        rows.append({"prompt": _turn(where, obj["prompt"], "prompt", "user"),
                     "chosen": _turn(where, obj["chosen"], "chosen", "assistant"),
                     "rejected": _turn(where, obj["rejected"], "rejected", "assistant")})
    return TrainingData(rows[:limit], str(path))


def load_pandalm_pairs(path: Path, limit: int | None = None) -> TrainingData:
    """PandaLM's human-annotated test set: items whose annotator majority prefers one response."""
    from judges.meta import load_pandalm_testset

    rows, provenance = [], []
    for item in load_pandalm_testset(path):
        if item.majority == 0:
            continue  # a tie carries no preference
        prompt = item.instruction + (f"\n\n{item.input}" if item.input.strip() else "")
        chosen, rejected = (item.response1, item.response2) if item.majority == 1 else (item.response2, item.response1)
        if not chosen.strip() or not rejected.strip():
            continue
        rows.append({"prompt": [{"role": "user", "content": prompt}],
                     "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": rejected}]})
        provenance.append({"idx": item.idx, "votes": item.annotators})
    return TrainingData(rows[:limit], f"{path} (pandalm human majority)", provenance[:limit])


# --- mining the store -----------------------------------------------------------------------------
def _battles(store: Store, spec: StoreData) -> tuple[list[Battle], dict[str, str], dict[tuple, str]]:
    """First-turn battles that count (harness.battles: current models and judge versions), merged
    by the recipe's rule: 'drop' keeps only battles whose two orders agree; 'half' keeps each order
    as its own battle; 'calibrated' decides each by both orders' summed choice log-likelihoods.
    First turns only: a later turn's conversation holds each model's own earlier answers, so the
    two answers do not share a prompt and cannot form a preference pair. Also returns the answer
    texts and first-turn prompts the battles refer to."""
    policy = "calibrated" if spec.calibrated else "drop" if spec.agreement else "half"
    selection = Selection(judges=(spec.judge,) if spec.judge else None, sets=tuple(spec.sets) if spec.sets else None,
                          models=tuple(spec.models) if spec.models else None, turn=1)
    fought = [b for b in battles(store, selection, policy) if not spec.dimensions or b.dimension in spec.dimensions]
    texts = answer_texts_by_id(store, sorted({a for b in fought for a in (b.answer_a, b.answer_b)}))
    prompts = first_turns(store, sorted({(b.set_name, b.question_id) for b in fought}))
    return fought, texts, prompts


def _describe(spec: StoreData) -> str:
    return "store judgments: " + json.dumps(spec.model_dump(exclude_defaults=True) | {"agreement": spec.agreement},
                                            sort_keys=True)


def mine_pairs(store: Store, spec: StoreData, limit: int | None = None, where: str = "recipe") -> TrainingData:
    """DPO pairs: each decided battle's winner is chosen, its loser rejected. A pair whose
    dimensions disagree on the winner is dropped; agreeing dimensions give one pair."""
    fought, texts, prompts = _battles(store, spec)
    directed: dict[tuple, int] = {}
    answers: dict[tuple, str] = {}
    for b in fought:
        if b.winner == "tie":
            continue
        question = (b.set_name, b.question_id)
        (winner, won_with), (loser, lost_with) = sorted(((b.model_a, b.answer_a), (b.model_b, b.answer_b)),
                                                        key=lambda m: m[0] != getattr(b, b.winner))
        answers[(*question, winner)], answers[(*question, loser)] = won_with, lost_with
        directed[(question, winner, loser)] = directed.get((question, winner, loser), 0) + 1
    rows, provenance = [], []
    for (question, winner, loser), votes in sorted(directed.items()):
        if (question, loser, winner) in directed:
            continue  # contradicting verdicts on the same pair: no preference to learn
        chosen, rejected = answers[(*question, winner)], answers[(*question, loser)]
        rows.append({"prompt": [{"role": "user", "content": prompts[question]}],
                     "chosen": [{"role": "assistant", "content": texts[chosen]}],
                     "rejected": [{"role": "assistant", "content": texts[rejected]}]})
        provenance.append({"set": question[0], "question": question[1], "chosen_model": winner,
                           "rejected_model": loser, "chosen_answer": chosen, "rejected_answer": rejected,
                           "votes": votes})
    if not rows:
        decided = sum(b.winner != "tie" for b in fought)
        raise DataError(f"{where}: data.store: 0 preference pairs after filtering ({len(fought)} battles, "
                        f"{decided} with a winner{' in both orders' if spec.agreement else ''}"
                        "): relax judge/dimensions/models, set calibrated: true (likelihood-choice judges), or use a judge"
                        " that decides")
    return TrainingData(rows[:limit], _describe(spec), provenance[:limit])


def mine_best_answers(store: Store, spec: StoreData, limit: int | None = None, where: str = "recipe") -> TrainingData:
    """SFT rows: per question, the answer of the model with the most merged wins minus losses over
    its battles (all judges/dimensions passing the filters), if it leads by `min_net_wins`."""
    fought, texts, prompts = _battles(store, spec)
    net: dict[tuple, dict[str, float]] = {}
    answers: dict[tuple, str] = {}
    for b in fought:
        scores = net.setdefault((b.set_name, b.question_id), {})
        for model, answer in ((b.model_a, b.answer_a), (b.model_b, b.answer_b)):
            scores[model] = scores.get(model, 0.0) + b.weight * (2 * b.score_for(model) - 1)
            answers[(b.set_name, b.question_id, model)] = answer
    rows, provenance = [], []
    for question, scores in sorted(net.items()):
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        best, top = ranked[0]
        if top < spec.min_net_wins or (len(ranked) > 1 and ranked[1][1] == top):
            continue
        answer = answers[(*question, best)]
        rows.append({"prompt": [{"role": "user", "content": prompts[question]}],
                     "completion": [{"role": "assistant", "content": texts[answer]}]})
        provenance.append({"set": question[0], "question": question[1], "model": best, "answer": answer,
                           "net_wins": top})
    if not rows:
        raise DataError(f"{where}: data.store: 0 best-rated answers after filtering ({len(fought)} battles): "
                        "relax the filters or lower min_net_wins")
    return TrainingData(rows[:limit], _describe(spec), provenance[:limit])
