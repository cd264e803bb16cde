"""Direct preference optimisation with TRL's DPOTrainer: load -> format -> train -> save.

With LoRA and `ref_model=None`, TRL uses the parent with the adapter switched off as the reference,
so no second copy of the model is held. Full fine-tuning lets TRL copy the model as the reference.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.store import Store
from trainers.common import TrainResult, load_model, lora_config, plan, save_and_register, training_arguments
from trainers.recipe import Recipe


def train_dpo(recipe: Recipe | str | Path, store: Store, base_dir: Path | None = None) -> TrainResult:
    """Preference-tune the recipe's base on (prompt, chosen, rejected) rows; returns the registered model."""
    started = time.perf_counter()
    checked = plan(recipe, "dpo", store, base_dir)  # a bad recipe fails here, before any weights load

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tokenizer = load_model(checked)
    dataset = Dataset.from_list(checked.data.rows)
    args = DPOConfig(**training_arguments(checked), beta=checked.recipe.dpo.beta)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(checked.recipe))
    began = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - began
    return save_and_register(checked, trainer, tokenizer, time.perf_counter() - started, train_s, store)
