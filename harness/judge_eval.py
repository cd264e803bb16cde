"""Judge meta-evaluation: how well does a judge agree with people?

Three sources, all from human-labelled data (see ../shared/data/README.md):
- released verdicts of published judges on the PandaLM test set (no judge is run);
- MT-Bench human votes, human vs human (the ceiling a judge is measured against);
- a live judge of ours run over a sample of the MT-Bench human-vote pairs, in both orders.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError
from judges.base import Judge, PairItem
from judges.meta import (
    Agreement,
    Report,
    Vote,
    classification_report,
    fastchat_agreement,
    load_fastchat_pair_judgments,
    load_gpt35_released,
    load_mt_bench_pairs_with_text,
    load_mt_bench_votes,
    load_pandalm_released,
    load_pandalm_testset,
)

RELEASED = {"pandalm-7b": ("pandalm-7b-testset-v1.json", load_pandalm_released),
            "gpt-3.5-turbo": ("gpt-3.5-turbo-testset-v1.json", load_gpt35_released)}


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: not found: pass --data pointing at the shared data folder")
    return path


def released_pandalm_reports(data: Path) -> dict[str, Report]:
    """Published judges' released verdicts vs the 3-annotator majority of the PandaLM test set."""
    gold = {item.idx: item.majority for item in load_pandalm_testset(_require(data / "pandalm" / "testset-v1.json"))}
    return {name: classification_report(loader(_require(data / "pandalm" / file)), gold)
            for name, (file, loader) in RELEASED.items()}


def mt_bench_human_agreement(data: Path) -> tuple[Agreement, Agreement]:
    """Human vs human on MT-Bench turn 1 (expert votes), with and without ties."""
    votes = load_mt_bench_votes(_require(data / "mt_bench" / "human_judgments_turn1_votes.jsonl"))
    return fastchat_agreement(votes, include_ties=True), fastchat_agreement(votes, include_ties=False)


def fastchat_file_agreement(path: Path, data: Path) -> dict[str, tuple[Agreement, Agreement]]:
    """Agreement with the MT-Bench expert votes of each judge in a FastChat pairwise judgment file
    (`model_judgment/*_pair.jsonl`): published judges scored without running them."""
    humans = load_mt_bench_votes(_require(data / "mt_bench" / "human_judgments_turn1_votes.jsonl"))
    votes = load_fastchat_pair_judgments(_require(path))
    result = {}
    for judge in sorted({v.judge for v in votes}):
        mine = [v for v in votes if v.judge == judge]
        result[judge] = (fastchat_agreement(mine, humans, include_ties=True),
                         fastchat_agreement(mine, humans, include_ties=False))
    return result


@dataclass
class LiveJudgeResult:
    judge_name: str
    pairs: int
    parsed_pairs: int  # both orders parsed
    with_ties: Agreement
    without_ties: Agreement


def run_judge_on_mt_bench(judge: Judge, data: Path, sample: int, seed: int = 0) -> LiveJudgeResult:
    """Judge `sample` human-voted MT-Bench pairs in both orders; a pair whose orders disagree is a
    tie (FastChat's rule); agreement with the expert votes as FastChat computes it."""
    pairs = load_mt_bench_pairs_with_text(_require(data / "mt_bench" / "human_judgments_turn1_with_text.jsonl"))
    pairs = [p for p in pairs if any(not v.judge.startswith("author") for v in p.votes)]
    chosen = random.Random(seed).sample(pairs, min(sample, len(pairs)))
    items = []
    for i, p in enumerate(chosen):
        for j, (a, b) in enumerate(((p.answer_a, p.answer_b), (p.answer_b, p.answer_a))):
            items.append(PairItem(str(p.question_id), p.category, (p.question,), (a,), (b,), 1,
                                  nonce=f"mt{i:04d}{j}"))
    outputs = judge.judge(items)
    dimension = judge.dimensions[0]
    votes, parsed = [], 0
    for i, p in enumerate(chosen):
        first, second = (outputs[2 * i][dimension], outputs[2 * i + 1][dimension])
        v1, v2 = first.verdicts.get(dimension), second.verdicts.get(dimension)
        if v1 is None or v2 is None:
            continue
        parsed += 1
        # Order 1 shows model_a as A; order 2 shows model_b as A.
        w1 = {"A": "model_a", "B": "model_b", "tie": "tie"}[v1]
        w2 = {"A": "model_b", "B": "model_a", "tie": "tie"}[v2]
        winner = w1 if w1 == w2 else "tie"
        votes.append(Vote(p.question_id, p.model_a, p.model_b, p.turn, judge.name, winner))
    humans = [v for p in chosen for v in p.votes]
    return LiveJudgeResult(judge.name, len(chosen), parsed,
                           fastchat_agreement(votes, humans, include_ties=True),
                           fastchat_agreement(votes, humans, include_ties=False))
