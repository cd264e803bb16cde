"""Trainers: SFT and DPO (LoRA or full) over TRL + peft, feeding straight back into evaluation.

    from trainers import train_sft, train_dpo, evaluate_against_parent, lineage
    result = train_sft("trainers/recipes/gemma3-270m-sft.yaml", Store("harness.duckdb"))

Names resolve lazily, so `import trainers` does not import torch, trl or peft.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "train_sft": "trainers.sft",
    "train_dpo": "trainers.dpo",
    "train_reward": "trainers.reward",
    "TrainResult": "trainers.common",
    "Recipe": "trainers.recipe",
    "load_recipe": "trainers.recipe",
    "model_name_of": "trainers.recipe",
    "evaluate_against_parent": "trainers.evaluate",
    "lineage": "trainers.evaluate",
    "mine_pairs": "trainers.data",
    "mine_best_answers": "trainers.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
