"""What the SFT and DPO trainers share: the checks before loading, loading, TRL arguments, saving
and registering the result with its lineage.

torch, transformers, trl and peft are imported inside functions: `import trainers` (and so
`harness --help`) stays light.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import HFModelSpec
from harness.errors import ConfigError, HarnessError, MissingExtraError
from harness.models.catalog import CATALOG, resolve_model_path
from harness.models.device import resolve_device
from harness.models.registry import get_entry, kinds_where
from harness.store import Store
from harness.store import queries as q
from harness.store.training import latest_model, save_trained
from trainers.data import (TrainingData, load_chat_jsonl, load_pairs_jsonl, load_pandalm_pairs, mine_best_answers,
                           mine_pairs)
from trainers.recipe import Recipe, check_target_modules, data_path, parse_recipe, resolve_recipe_path


@dataclass
class Parent:
    name: str  # as given in the recipe: catalog name, folder, or stored model name
    folder: Path  # the HF folder the weights load from
    adapter: str | None  # the parent's own adapter (a trained model), merged in before training
    fingerprint: str


@dataclass
class Plan:
    """A recipe checked against everything that can be checked without loading weights."""

    recipe: Recipe
    method: str  # sft | dpo
    recipe_file: str
    output_dir: Path
    parent: Parent
    data: TrainingData
    device: str = "cpu"  # resolved torch device (cpu, cuda, mps) the model trains on


@dataclass
class TrainResult:
    name: str
    method: str
    parent: str
    spec: HFModelSpec  # how a suite evaluates the new model
    adapter_path: Path | None
    merged_path: Path | None
    steps: int
    wall_s: float  # the whole call: load, train, save
    train_s: float  # the TRL train loop alone (what s/step is computed from)
    peak_rss_mb: float  # process-lifetime peak (ru_maxrss)
    data_rows: int
    log: list[dict] = field(default_factory=list)  # TRL's log_history
    model: object = field(default=None, repr=False)  # the trained model in memory (not persisted)

    @property
    def s_per_step(self) -> float:
        return self.train_s / self.steps if self.steps else 0.0

    def curve(self, name: str) -> list[float]:
        return [e[name] for e in self.log if name in e]


def require_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("train", exc.name or "trl/peft") from None


def resolve_parent(base: str, store: Store, where: str) -> Parent:
    """A model in the store (by name) first: its spec says which folder and adapter it runs with.
    Otherwise a catalog name or an HF folder."""
    from harness.models.hf import HFBackend

    row = latest_model(store, base)
    if row is not None:
        spec = json.loads(row["spec_json"])
        entry = get_entry(row["backend"])
        if entry is None or not entry.capabilities.local_weights:
            able = "/".join(kinds_where(lambda e: e.capabilities.local_weights))
            raise ConfigError(f"{where}: base: '{base}' is a {row['backend']} model in the store: only {able} models "
                              "(local weights) can be trained")
        folder = resolve_model_path(spec["model"])
        return Parent(base, folder, spec.get("adapter"), row["fingerprint"])
    try:
        folder = resolve_model_path(base)
    except HarnessError as exc:
        raise ConfigError(f"{where}: base: {exc}: use a catalog name ({', '.join(CATALOG)}), an HF folder "
                          "or a model name from `harness models --db ...`") from None
    return Parent(base, folder, None, HFBackend(HFModelSpec(name="parent", model=str(folder))).fingerprint())


def plan(recipe: Recipe | str | Path, method: str, store: Store, base_dir: Path | None = None) -> Plan:
    """Every check that needs no weights: the recipe, the data (loaded and non-empty), the parent
    model, the LoRA targets. A bad recipe fails here, before any model loads."""
    if isinstance(recipe, Recipe):
        recipe_file, base_dir = "recipe", Path(base_dir or ".")
    else:
        path = resolve_recipe_path(str(recipe))
        recipe, recipe_file, base_dir = parse_recipe(path), str(path), path.parent
    data = _load_data(recipe, method, store, base_dir, recipe_file)
    parent = resolve_parent(recipe.base, store, recipe_file)
    check_target_modules(recipe, parent.folder, recipe_file)
    require_train_extra()
    # The hf backend's rule (auto: cuda, else mps, else cpu), checked before any weights load.
    device = resolve_device(recipe.training.device, recipe.name)
    return Plan(recipe, method, recipe_file, Path(recipe.output_dir).absolute(), parent, data, device)


def _load_data(recipe: Recipe, method: str, store: Store, base_dir: Path, where: str) -> TrainingData:
    spec = recipe.data
    if spec.store is not None:
        mine = mine_pairs if method == "dpo" else mine_best_answers
        return mine(store, spec.store, spec.limit, where)
    path = data_path(recipe, base_dir, where)
    if spec.format == "pandalm":
        if method != "dpo":
            raise ConfigError(f"{where}: data.format: pandalm holds preference pairs: use it with `train dpo`")
        data = load_pandalm_pairs(path, spec.limit)
    else:
        data = (load_pairs_jsonl if method == "dpo" else load_chat_jsonl)(path, spec.limit)
    if not data.rows:
        raise ConfigError(f"{where}: data.path: {path} has no rows: add examples or point at another file")
    return data


def load_model(plan: Plan):
    """Tokenizer and fp32 model of the parent. A parent with its own adapter is merged into its
    base and written to output_dir/parent-merged: the new adapter applies to those weights, and the
    merged parent is the DPO reference (the adapter switched off)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if plan.recipe.training.threads:
        torch.set_num_threads(plan.recipe.training.threads)
    tokenizer = AutoTokenizer.from_pretrained(plan.parent.folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(plan.parent.folder, dtype=torch.float32)
    if plan.parent.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, plan.parent.adapter).merge_and_unload()
        merged = plan.output_dir / "parent-merged"
        _save_full(model, tokenizer, merged)
        plan.parent.folder = merged.resolve()
    # Placed here so the model is where TRL will train it (TrainingArguments' device follows
    # use_cpu, see training_arguments); the Trainer would move it too, but only when it is built.
    return model.to(plan.device), tokenizer


def lora_config(recipe: Recipe):
    if recipe.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules=recipe.lora.target_modules, task_type="CAUSAL_LM")


def training_arguments(plan: Plan) -> dict:
    """TrainingArguments shared by SFTConfig and DPOConfig, set for a CPU without bf16 units:
    bf16 was ~17x slower there and gradient checkpointing ~1.4x slower (SEEN-HERE.md). On a GPU
    the weights stay fp32 too: mixed precision would change the results, so it is not switched on
    behind the recipe's back."""
    t = plan.recipe.training
    return dict(
        output_dir=str(plan.output_dir / "trainer"), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        learning_rate=t.lr, per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        warmup_steps=t.warmup_steps, seed=t.seed, data_seed=t.seed, logging_steps=t.logging_steps,
        max_length=t.max_length, bf16=False, fp16=False, gradient_checkpointing=False,
        use_cpu=plan.device == "cpu",  # else transformers picks the accelerator: cuda, or mps on a Mac
        report_to="none", dataloader_num_workers=0, save_strategy="no", disable_tqdm=True,
    )


@contextlib.contextmanager
def reporting_to(progress=None):
    """While in this block, every Trainer draws one bar on `progress` (the harness's Progress
    protocol: start / advance / stop; None draws nothing) over its steps, instead of printing TRL's
    dict of numbers at every logging step: the numbers stay in the log history (training_log), and
    the caller prints the final ones once (TrainResult). With HARNESS_VERBOSE (harness --verbose)
    transformers' own printing stays. The bar is installed the way transformers installs its
    notebook bar: as the module's default progress callback (and printer), put back on exit."""
    from harness import verbosity

    if verbosity.verbose():
        yield
        return
    import transformers.trainer as hf_trainer

    saved = hf_trainer.PrinterCallback, hf_trainer.DEFAULT_PROGRESS_CALLBACK
    hf_trainer.PrinterCallback = hf_trainer.DEFAULT_PROGRESS_CALLBACK = _progress_callback(progress)
    try:
        yield
    finally:
        hf_trainer.PrinterCallback, hf_trainer.DEFAULT_PROGRESS_CALLBACK = saved


def _progress_callback(progress):
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        """Feeds the harness's Progress: one bar per training run, advanced per optimizer step."""

        task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if progress is not None:
                self.task = progress.start("training", state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress.advance(1, self.task)

        def on_train_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress.stop()

    return StepBar()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _save_full(model, tokenizer, out: Path) -> None:
    # A GGUF-loaded model keeps a quantizer that blocks save_pretrained; its weights are dense fp32.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def save_and_register(plan: Plan, trainer, tokenizer, wall_s: float, train_s: float, store: Store) -> TrainResult:
    """Write the adapter (and optionally a merged folder), or the full model; register the new model
    in `models` and its lineage, curve and costs in `trained_models` / `training_log`."""
    from harness.models.hf import HFBackend

    out, recipe = plan.output_dir, plan.recipe
    adapter = merged = None
    if recipe.lora is not None:
        adapter = out / "adapter"
        shutil.rmtree(adapter, ignore_errors=True)
        trainer.model.save_pretrained(adapter)
        spec = HFModelSpec(name=recipe.name, model=str(plan.parent.folder), adapter=str(adapter.resolve()))
        if recipe.merge:
            merged = out / "merged"
            _save_full(trainer.model.merge_and_unload(), tokenizer, merged)
    else:
        merged = out / "model"
        _save_full(trainer.model, tokenizer, merged)
        spec = HFModelSpec(name=recipe.name, model=str(merged.resolve()))
    steps = trainer.state.global_step
    result = TrainResult(recipe.name, plan.method, plan.parent.name, spec, adapter, merged, steps, wall_s, train_s,
                         peak_rss_mb(), len(plan.data.rows), list(trainer.state.log_history), trainer.model)
    fingerprint = HFBackend(spec).fingerprint()
    losses = result.curve("loss")
    with store.write() as con:
        q.upsert_model(con, recipe.name, fingerprint, "hf", spec.model, spec.model_dump_json())
        save_trained(con, {
            "model": recipe.name, "parent": plan.parent.name, "parent_fingerprint": plan.parent.fingerprint,
            "method": plan.method, "finetune": "lora" if recipe.lora else "full", "recipe_json": recipe.model_dump_json(),
            "data_source": plan.data.source, "data_hash": plan.data.hash, "data_rows": len(plan.data.rows),
            "base_model_path": spec.model, "adapter_path": str(adapter.resolve()) if adapter else None,
            "merged_path": str(merged.resolve()) if merged else None, "steps": steps, "wall_s": wall_s,
            "peak_rss_mb": result.peak_rss_mb, "final_loss": losses[-1] if losses else None,
        }, _log_rows(recipe.name, result.log))
    return result


def _log_rows(model: str, log: list[dict]) -> list[tuple]:
    rows = []
    for entry in log:
        step = int(entry.get("step", 0))
        rows += [(model, step, k, float(v)) for k, v in entry.items()
                 if k not in ("step", "epoch") and isinstance(v, (int, float)) and v == v]
    return rows
