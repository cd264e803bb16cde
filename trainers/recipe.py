"""Training recipes: typed YAML (pydantic, unknown fields are errors), checked before any model loads.

`load_recipe(path, method)` parses a recipe and then checks what can be checked without weights:
the data file exists, the base model resolves to an HF folder, and every LoRA target module names a
module of that model (read from the safetensors header, so no tensor is read).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config import load_yaml_model, resolve_named_yaml
from harness.errors import ConfigError, DataError

BUILTIN_DATA = Path(__file__).parent / "data"
BUILTIN_RECIPES = Path(__file__).parent / "recipes"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSpec(_Strict):
    """Parameter-efficient fine-tuning with a LoRA adapter (peft)."""

    r: int = Field(8, ge=1)
    """Rank of the low-rank update."""
    alpha: int = Field(16, ge=1)
    """Scaling numerator: the update is multiplied by alpha / r."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | Literal["all-linear"] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    """Module names to adapt (the last part of the dotted name, e.g. q_proj), or 'all-linear'."""


class StoreData(_Strict):
    """Training data mined from the judgments in the harness store (the DB the command is given)."""

    judge: str | None = None
    """Only this judge's verdicts (default: every pairwise judge)."""
    dimensions: list[str] | None = None
    """Only these judged dimensions (default: all). A pair whose dimensions disagree is dropped."""
    agreement: bool = True
    """Keep a battle only when both orders picked the same winner (the merged verdict). false: each
    order's verdict counts on its own, so a position-biased judge yields contradicting pairs."""
    calibrated: bool = False
    """Merge the two orders by balanced position calibration (likelihood-choice judges, decode:
    choice): each model's choice log-likelihoods are summed over both orders, which cancels a
    constant position bias that leaves `agreement` with no pairs. Overrides `agreement`."""
    models: list[str] | None = None
    """Only battles between these stored model names (default: all)."""
    sets: list[str] | None = None
    """Only questions of these sets (default: all)."""
    min_net_wins: int = Field(1, ge=1)
    """SFT: an answer is 'best-rated' when it is its question's top model by merged wins minus losses,
    with at least this margin."""


class DataSpec(_Strict):
    """Where the training rows come from: exactly one of `path` and `store`."""

    path: str | None = None
    """JSONL file: {"messages": [...]} per line for SFT, {"prompt", "chosen", "rejected"} for DPO.
    Relative paths resolve against the recipe's folder, then the shipped trainers/data/ folder."""
    format: Literal["jsonl", "pandalm"] = "jsonl"
    """jsonl: the formats above; pandalm (DPO): PandaLM's human-annotated testset-v1.json, each item
    whose 3-annotator majority is not a tie giving one pair (the preferred response is chosen)."""
    store: StoreData | None = None
    """Mine the store: DPO pairs from merged verdicts (winner = chosen), SFT rows from best-rated answers."""
    limit: int | None = Field(None, ge=1)
    """Use only the first N rows."""

    @model_validator(mode="after")
    def _one_source(self) -> "DataSpec":
        if (self.path is None) == (self.store is None):
            raise ValueError("give exactly one of data.path and data.store")
        return self


class TrainingSpec(_Strict):
    """Optimisation settings (TRL/transformers TrainingArguments underneath)."""

    epochs: float = Field(1.0, gt=0)
    """Passes over the data (ignored when max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimiser steps."""
    lr: float = Field(2e-4, gt=0)
    """Peak learning rate (2e-4 suits LoRA; use ~1e-5 for full fine-tuning)."""
    batch_size: int = Field(4, ge=1)
    """Rows per device step."""
    grad_accum: int = Field(1, ge=1)
    """Device steps per optimiser step."""
    max_length: int = Field(256, ge=16)
    """Tokens per row (prompt + completion); longer rows are truncated."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps."""
    seed: int = 0
    """Seed for data order, adapter initialisation and dropout."""
    logging_steps: int = Field(1, ge=1)
    """Log loss (and DPO rewards) every N steps: the curve stored in training_log."""
    threads: int | None = Field(None, ge=1)
    """torch intra-op threads (unset: torch's default). 1 is often faster on a busy shared machine."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where to train: auto = cuda if available, else mps, else cpu (the hf backend's rule); a device
    that is not there is a one-line error before any weights load."""


class DPOSpec(_Strict):
    """DPO-specific settings."""

    beta: float = Field(0.1, gt=0)
    """Strength of the KL pull towards the reference (the parent model)."""


class Recipe(_Strict):
    """One training run: base model + data + method settings -> a new model in the store."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    """Name the trained model is stored, evaluated and shown under."""
    base: str
    """Parent model: catalog name, local HF folder, or the name of a model already in the store."""
    data: DataSpec
    """Training rows."""
    lora: LoraSpec | None = LoraSpec()
    """LoRA settings; `lora: null` means full fine-tuning (every weight trains)."""
    training: TrainingSpec = TrainingSpec()
    """Optimisation settings."""
    dpo: DPOSpec = DPOSpec()
    """DPO settings (ignored by SFT)."""
    output_dir: str
    """Where the adapter (or full model) is written; relative paths resolve against the working
    directory (like --db), so a shipped recipe never writes into the installed package."""
    merge: bool = False
    """Also write a merged model folder (base + adapter) to output_dir/merged."""


def resolve_recipe_path(name_or_path: str) -> Path:
    """A recipe YAML file, or the name of one shipped in trainers/recipes/."""
    return resolve_named_yaml(name_or_path, BUILTIN_RECIPES, "recipe")


def parse_recipe(path: Path) -> Recipe:
    """YAML -> Recipe, with every error as one line naming the file and the field."""
    return load_yaml_model(path, Recipe, "'name', 'base', 'data', 'output_dir'")


def data_path(recipe: Recipe, recipe_dir: Path, recipe_file: Path | str = "recipe") -> Path:
    """The data file: relative to the recipe's folder first, then the shipped trainers/data/."""
    given = Path(recipe.data.path)  # type: ignore[arg-type]
    for candidate in (given if given.is_absolute() else recipe_dir / given, BUILTIN_DATA / given):
        if candidate.is_file():
            return candidate.resolve()
    raise DataError(f"{recipe_file}: data.path: {given} not found (looked in {recipe_dir} and {BUILTIN_DATA}): "
                    "fix the path or use data.store")


def module_names(folder: Path) -> set[str]:
    """Every dotted suffix of the model's parameter-owning modules, read from the safetensors
    header(s) only, so checking LoRA targets costs no tensor reads."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        keys = list(json.loads(index.read_text())["weight_map"])
    else:
        keys = []
        for file in sorted(folder.glob("*.safetensors")):
            with file.open("rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                keys += [k for k in json.loads(fh.read(size)) if k != "__metadata__"]
    names = set()
    for key in keys:
        parts = key.rsplit(".", 1)[0].split(".")  # drop .weight / .bias
        names.update(".".join(parts[i:]) for i in range(len(parts)))
    return names


def check_target_modules(recipe: Recipe, folder: Path, recipe_file: Path | str) -> None:
    if recipe.lora is None or recipe.lora.target_modules == "all-linear":
        return
    names = module_names(folder)
    if not names:
        return  # no safetensors (a .bin checkpoint): peft reports a bad target itself
    missing = [t for t in recipe.lora.target_modules if t not in names]
    if missing:
        sample = sorted({n.split(".")[-1] for n in names if "proj" in n or "fc" in n or "dense" in n})[:10]
        raise ConfigError(f"{recipe_file}: lora.target_modules: {', '.join(missing)} not in {folder.name} "
                          f"(its modules include: {', '.join(sample)}): use names from that list or 'all-linear'")


def load_recipe(name_or_path: str | Path) -> tuple[Recipe, Path]:
    """Parse a recipe file (or shipped recipe name); returns it with the folder its paths resolve against."""
    path = resolve_recipe_path(str(name_or_path))
    return parse_recipe(path), path.parent


def model_name_of(name_or_path: str | Path) -> str:
    """The model name a recipe trains (what --then-eval evaluates)."""
    return load_recipe(name_or_path)[0].name
