"""Reward-model training (RLHF stage 2) with TRL's RewardTrainer, LoRA or full, on labelled pairs:
load -> split -> train -> save and register -> score the held-out pairs.

1. The recipe's labelled pairs (any judges.labelled format: HH-RLHF, the PandaLM test set, MT-Bench
   human votes, the labelled-pairs JSONL, ...) are shuffled with the recipe's seed; the first
   `data.held_out` are set aside, never trained on.
2. Training rows are the rest whose gold label prefers one response (ties carry no preference),
   as TRL's conversational {prompt, chosen, rejected}, keeping only rows that fit
   `training.max_length` (TRL would drop longer ones itself; filtering first makes the row count
   the recipe asks for the count trained on).
3. The parent loads as AutoModelForSequenceClassification with one label (a new scalar head);
   LoRA (task_type SEQ_CLS) also trains and saves that head.
4. The model is saved and registered like an SFT/DPO model (trainers.common.save_and_register:
   `models`, `trained_models` with method 'reward', `training_log`).
5. The held-out pairs are written as labelled-pairs JSONL next to the model and scored through the
   judge-eval API (harness.api.evaluate_judge, benchmark 'labelled') by a reward judge that loads
   the saved model from disk: both orders, every metric with bootstrap CIs, stored in the same
   DuckDB, so the model is on the evaluator leaderboard as soon as it exists.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.config import HFModelSpec
from harness.errors import ConfigError
from harness.models.device import resolve_device
from harness.store import Store
from judges.labelled import FORMATS, LabelledPair, load_labelled, write_pairs
from trainers.common import (Plan, TrainResult, load_model, require_train_extra, resolve_parent, save_and_register,
                             training_arguments)
from trainers.data import TrainingData
from trainers.recipe import Recipe, _Strict, check_target_modules, data_path, resolve_recipe_path

METHOD = "reward"


class RewardData(_Strict):
    """Labelled pairs to train on, and how many to hold out for scoring."""

    path: str
    """The pairs file; relative paths resolve against the recipe's folder, then trainers/data/."""
    format: Literal[FORMATS] = "labelled"  # type: ignore[valid-type]
    """Its layout (judges.labelled): labelled, hh_rlhf, pandalm, mt_bench, rewardbench, llmbar, ..."""
    limit: int | None = Field(None, ge=1)
    """Train on at most this many pairs (after the held-out split and the length filter)."""
    held_out: int = Field(200, ge=1)
    """Pairs set aside before training and scored by the trained model right after it."""
    seed: int = 0
    """Seed of the shuffle that splits held-out from training pairs."""


class RewardEval(_Strict):
    """How the held-out pairs are scored."""

    tie_margin: float = Field(0.0, ge=0)
    """The reward judge's tie margin: |r(A) - r(B)| at or below it is a tie."""
    batch_size: int = Field(8, ge=1)
    """Conversations scored per forward pass."""
    bootstrap_rounds: int = Field(1000, ge=10)
    """Resamples for the metrics' confidence intervals."""


class RewardRecipe(Recipe):
    """A reward-model recipe: a Recipe whose data are labelled pairs, plus held-out scoring."""

    data: RewardData  # type: ignore[assignment]
    """Labelled pairs and the held-out split."""
    reward: RewardEval = RewardEval()
    """Scoring of the held-out pairs."""


@dataclass
class RewardTrainResult(TrainResult):
    held_out: object = None  # harness.judge_eval.BenchmarkReport of the held-out pairs
    held_out_file: Path | None = None

    def metric(self, name: str, subset: str = "all"):
        """A held-out metric (judges.agreement.Metric), e.g. 'accuracy' or 'mean_accuracy'."""
        return self.held_out.run.subset_metrics.get(subset, {}).get(name) if self.held_out else None


def load_reward_recipe(recipe: RewardRecipe | str | Path, base_dir: Path | None = None
                       ) -> tuple[RewardRecipe, str, Path]:
    """(recipe, the file it came from, the folder its paths resolve against)."""
    if isinstance(recipe, RewardRecipe):
        return recipe, "recipe", Path(base_dir or ".")
    from harness.config import load_yaml_model

    path = resolve_recipe_path(str(recipe))
    return load_yaml_model(path, RewardRecipe, "'name', 'base', 'data', 'output_dir'"), str(path), path.parent


def train_reward(recipe: RewardRecipe | str | Path, store: Store, base_dir: Path | None = None,
                 progress=None) -> RewardTrainResult:
    """Train a reward model on the recipe's labelled pairs, register it, score its held-out pairs."""
    started = time.perf_counter()
    checked, held_out = plan_reward(recipe, store, base_dir)  # a bad recipe fails here, before any weights load

    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    model, tokenizer = load_reward_model(checked)
    args = RewardConfig(**training_arguments(checked))
    with _quiet_datasets():
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(checked.data.rows),
                                processing_class=tokenizer, peft_config=lora_config_seq_cls(checked.recipe))
    began = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - began
    result = save_and_register(checked, trainer, tokenizer, time.perf_counter() - started, train_s, store)
    file = checked.output_dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', checked.recipe.name)}-heldout.jsonl"
    write_pairs(held_out, file)
    report = score_held_out(result.spec, checked.recipe, file, store, progress)
    return RewardTrainResult(**vars(result), held_out=report, held_out_file=file)


def plan_reward(recipe: RewardRecipe | str | Path, store: Store, base_dir: Path | None = None
                ) -> tuple[Plan, list[LabelledPair]]:
    """Every check that needs no weights, and the split: (plan with the training rows, held-out pairs)."""
    recipe, recipe_file, base_dir = load_reward_recipe(recipe, base_dir)
    pairs = load_labelled(data_path(recipe, base_dir, recipe_file), recipe.data.format)
    random.Random(recipe.data.seed).shuffle(pairs)
    held_out, rest = pairs[: recipe.data.held_out], pairs[recipe.data.held_out:]
    if not held_out or not rest:
        raise ConfigError(f"{recipe_file}: data.held_out: {recipe.data.held_out} of {len(pairs)} pairs leaves "
                          f"{'no pair to train on' if held_out else 'nothing to score'}: hold out fewer")
    parent = resolve_parent(recipe.base, store, recipe_file)
    check_target_modules(recipe, parent.folder, recipe_file)
    require_train_extra()
    device = resolve_device(recipe.training.device, recipe.name)
    rows = training_rows(rest, parent.folder, recipe.training.max_length, recipe.data.limit)
    if not rows:
        raise ConfigError(f"{recipe_file}: data: no pair with a preferred response fits training.max_length "
                          f"{recipe.training.max_length}: raise max_length or use other data")
    data = TrainingData(rows, f"{recipe.data.path} ({recipe.data.format}; {len(held_out)} held out, seed "
                              f"{recipe.data.seed})")
    checked = Plan(recipe, METHOD, recipe_file, Path(recipe.output_dir).absolute(), parent, data, device)
    return checked, held_out


def preference_row(pair: LabelledPair) -> dict | None:
    """TRL's conversational preference row for a pair whose gold label prefers a response, else None."""
    if pair.gold not in ("A", "B"):
        return None
    prompt = []
    for turn, reply in zip(pair.turns, pair.history):
        prompt += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
    prompt.append({"role": "user", "content": pair.turns[-1]})
    chosen, rejected = (pair.response_a, pair.response_b) if pair.gold == "A" else (pair.response_b, pair.response_a)
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def training_rows(pairs: list[LabelledPair], folder: Path, max_length: int, limit: int | None) -> list[dict]:
    """The first `limit` preference rows whose chosen and rejected conversations both fit max_length
    tokens, counted as TRL's RewardTrainer tokenizes them (the chat template, no generation prompt)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = []
    for pair in pairs:
        row = preference_row(pair)
        if row is None:
            continue
        lengths = [len(tokenizer.apply_chat_template(row["prompt"] + row[k], tokenize=True, return_dict=True)
                       ["input_ids"]) for k in ("chosen", "rejected")]
        if max(lengths) <= max_length:
            rows.append(row)
        if limit is not None and len(rows) == limit:
            break
    return rows


def load_reward_model(plan: Plan):
    """Tokenizer and fp32 AutoModelForSequenceClassification (num_labels=1) of the parent. A parent
    with its own adapter is merged first (trainers.common.load_model writes output_dir/parent-merged)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if plan.parent.adapter:
        load_model(plan)  # merges the parent's adapter into a folder and points plan.parent.folder at it
    if plan.recipe.training.threads:
        torch.set_num_threads(plan.recipe.training.threads)
    tokenizer = AutoTokenizer.from_pretrained(plan.parent.folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized": the point of reward training
    try:
        model = AutoModelForSequenceClassification.from_pretrained(plan.parent.folder, num_labels=1,
                                                                   dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(plan.device), tokenizer


def lora_config_seq_cls(recipe: Recipe):
    """The recipe's LoRA for a sequence classifier: task_type SEQ_CLS makes peft train and save the
    new reward head (`score`) in full beside the adapter."""
    if recipe.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules=recipe.lora.target_modules, task_type="SEQ_CLS")


def score_held_out(spec: HFModelSpec, recipe: RewardRecipe, file: Path, store: Store, progress=None):
    """The saved reward model, loaded from disk as a reward judge, on the held-out pairs (both
    orders, stored as a judge-eval run of benchmark 'labelled:<file stem>')."""
    from harness import api
    from harness.models.hf import HFBackend
    from judges.reward import RewardModelJudge

    scoring = spec.model_copy(update={"batch_size": recipe.reward.batch_size, "threads": recipe.training.threads})
    judge = RewardModelJudge(recipe.name, HFBackend(scoring), tie_margin=recipe.reward.tie_margin)
    try:
        return api.evaluate_judge(judge, benchmark="labelled", file=file, db=store,
                                  bootstrap_rounds=recipe.reward.bootstrap_rounds, progress=progress)
    finally:
        judge.close()


class _quiet_datasets:
    """datasets' map/filter bars ("Tokenizing train dataset") off while TRL prepares the data."""

    def __enter__(self):
        import datasets

        self.was = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()

    def __exit__(self, *exc):
        import datasets

        if self.was:
            datasets.enable_progress_bars()
