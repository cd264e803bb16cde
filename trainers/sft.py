"""Supervised fine-tuning with TRL's SFTTrainer: load -> format -> train -> save.

Rows are conversational prompt/completion pairs, so the loss covers the assistant's answer only.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.store import Store
from trainers.common import TrainResult, load_model, lora_config, plan, save_and_register, training_arguments
from trainers.recipe import Recipe


def train_sft(recipe: Recipe | str | Path, store: Store, base_dir: Path | None = None) -> TrainResult:
    """Fine-tune the recipe's base on its chat data; returns the registered model."""
    started = time.perf_counter()
    checked = plan(recipe, "sft", store, base_dir)  # a bad recipe fails here, before any weights load

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_model(checked)
    dataset = Dataset.from_list(checked.data.rows)
    args = SFTConfig(**training_arguments(checked), completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(checked.recipe))
    began = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - began
    return save_and_register(checked, trainer, tokenizer, time.perf_counter() - started, train_s, store)
