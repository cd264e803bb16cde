"""Training rows in TRL's conversational formats, from JSONL files or mined from the store.

SFT rows are prompt/completion pairs of message lists: TRL then computes the loss on the completion
only (training on `messages` would also train on the prompt and system text). DPO rows are
{prompt, chosen, rejected} message lists. Mining the store closes the loop: judge verdicts (merged
over both orders, as the leaderboard merges them) become DPO pairs, and each question's best-rated
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
from judges.merge import Battle, JudgmentRow, merge_orders
from judges.parse import choice_logprobs
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
@dataclass(frozen=True)
class _Judged:
    row: JudgmentRow
    answer_a: tuple[str, str]  # (answer_id, text) shown as A
    answer_b: tuple[str, str]
    prompt: str


def _judged_rows(store: Store, spec: StoreData) -> list[_Judged]:
    """Pairwise first-turn judgments among the current version of each model, after the filters.
    First turns only: a later turn's conversation holds each model's own earlier answers, so the
    two answers do not share a prompt and cannot form a preference pair."""
    with store.read() as con:
        current = dict(con.execute(
            "SELECT name, arg_max(fingerprint, last_used) FROM models GROUP BY name").fetchall())
        raw = con.execute(
            "SELECT j.set_name, j.question_id, j.turn, q.category, j.judge_name, j.dimension, j.model_a,"
            " j.model_b, CASE WHEN j.status = 'ok' THEN j.verdict END, j.answer_a, aa.text, aa.model_fingerprint,"
            " j.answer_b, ab.text, ab.model_fingerprint, q.turns[1], j.raw_output"
            " FROM judgments j JOIN questions q USING (set_name, question_id)"
            " JOIN answers aa ON aa.answer_id = j.answer_a JOIN answers ab ON ab.answer_id = j.answer_b"
            " WHERE j.kind = 'pairwise' AND j.turn = 1 ORDER BY j.set_name, j.question_id, j.judge_name").fetchall()
    out = []
    for (set_name, qid, turn, cat, judge, dim, ma, mb, verdict, ida, texta, fpa, idb, textb, fpb, prompt,
         raw_output) in raw:
        if current.get(ma) != fpa or current.get(mb) != fpb:
            continue  # an older version of the model: its answers are not the model's answers now
        if (spec.judge and judge != spec.judge) or (spec.dimensions and dim not in spec.dimensions):
            continue
        if (spec.models and not {ma, mb} <= set(spec.models)) or (spec.sets and set_name not in spec.sets):
            continue
        row = JudgmentRow(set_name, qid, turn, cat, judge, dim, ma, mb, verdict, len(texta), len(textb),
                          choice_logprobs(raw_output) if spec.calibrated else None)
        out.append(_Judged(row, (ida, texta), (idb, textb), prompt))
    return out


def _battles(judged: list[_Judged], spec: StoreData) -> tuple[list[tuple[tuple, Battle]], dict]:
    """(question, battle) for every merged battle. Battles do not name their question, so each
    question's rows are merged on their own. 'drop' keeps only battles whose two orders agree (the
    merged winner); 'half' keeps each order as its own battle; 'calibrated' decides each battle by
    both orders' summed choice log-likelihoods."""
    policy = "calibrated" if spec.calibrated else "drop" if spec.agreement else "half"
    by_question: dict[tuple, list[JudgmentRow]] = {}
    for j in judged:
        by_question.setdefault((j.row.set_name, j.row.question_id), []).append(j.row)
    battles = [(question, b) for question, rows in by_question.items()
               for b in merge_orders(rows, policy)]
    answers = {(j.row.set_name, j.row.question_id, m): a for j in judged
               for m, a in ((j.row.model_a, j.answer_a), (j.row.model_b, j.answer_b))}
    prompts = {(j.row.set_name, j.row.question_id): j.prompt for j in judged}
    return battles, {"answers": answers, "prompts": prompts}


def _describe(spec: StoreData) -> str:
    return "store judgments: " + json.dumps(spec.model_dump(exclude_defaults=True) | {"agreement": spec.agreement},
                                            sort_keys=True)


def mine_pairs(store: Store, spec: StoreData, limit: int | None = None, where: str = "recipe") -> TrainingData:
    """DPO pairs: each decided battle's winner is chosen, its loser rejected. A pair whose
    dimensions disagree on the winner is dropped; agreeing dimensions give one pair."""
    judged = _judged_rows(store, spec)
    battles, lookup = _battles(judged, spec)
    directed: dict[tuple, int] = {}
    for question, b in battles:
        if b.winner == "tie":
            continue
        winner, loser = (b.model_a, b.model_b) if b.winner == "model_a" else (b.model_b, b.model_a)
        key = (question, winner, loser)
        directed[key] = directed.get(key, 0) + 1
    rows, provenance = [], []
    for (question, winner, loser), votes in sorted(directed.items()):
        if (question, loser, winner) in directed:
            continue  # contradicting verdicts on the same pair: no preference to learn
        chosen, rejected = lookup["answers"][(*question, winner)], lookup["answers"][(*question, loser)]
        rows.append({"prompt": [{"role": "user", "content": lookup["prompts"][question]}],
                     "chosen": [{"role": "assistant", "content": chosen[1]}],
                     "rejected": [{"role": "assistant", "content": rejected[1]}]})
        provenance.append({"set": question[0], "question": question[1], "chosen_model": winner,
                           "rejected_model": loser, "chosen_answer": chosen[0], "rejected_answer": rejected[0],
                           "votes": votes})
    if not rows:
        decided = sum(b.winner != "tie" for _, b in battles)
        raise DataError(f"{where}: data.store: 0 preference pairs after filtering ({len(judged)} judgment rows, "
                        f"{len(battles)} battles, {decided} with a winner{' in both orders' if spec.agreement else ''}"
                        "): relax judge/dimensions/models, set calibrated: true (likelihood-choice judges), or use a judge"
                        " that decides")
    return TrainingData(rows[:limit], _describe(spec), provenance[:limit])


def mine_best_answers(store: Store, spec: StoreData, limit: int | None = None, where: str = "recipe") -> TrainingData:
    """SFT rows: per question, the answer of the model with the most merged wins minus losses over
    its battles (all judges/dimensions passing the filters), if it leads by `min_net_wins`."""
    judged = _judged_rows(store, spec)
    battles, lookup = _battles(judged, spec)
    net: dict[tuple, dict[str, float]] = {}
    for question, b in battles:
        scores = net.setdefault(question, {})
        for model in (b.model_a, b.model_b):
            scores[model] = scores.get(model, 0.0) + b.weight * (2 * b.score_for(model) - 1)
    rows, provenance = [], []
    for question, scores in sorted(net.items()):
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        best, top = ranked[0]
        if top < spec.min_net_wins or (len(ranked) > 1 and ranked[1][1] == top):
            continue
        answer = lookup["answers"][(*question, best)]
        rows.append({"prompt": [{"role": "user", "content": lookup["prompts"][question]}],
                     "completion": [{"role": "assistant", "content": answer[1]}]})
        provenance.append({"set": question[0], "question": question[1], "model": best, "answer": answer[0],
                           "net_wins": top})
    if not rows:
        raise DataError(f"{where}: data.store: 0 best-rated answers after filtering ({len(judged)} judgment rows, "
                        f"{len(battles)} battles): relax the filters or lower min_net_wins")
    return TrainingData(rows[:limit], _describe(spec), provenance[:limit])
