"""LoRA vs full fine-tuning: seconds per optimiser step and peak memory, as ratios.

One run trains the same model on the same rows (the shipped instructions.jsonl, same seed, same
batch and length) twice through `trainers.train_sft`: full fine-tuning (the baseline) and LoRA.
Each variant runs in its own subprocess, because peak RSS (ru_maxrss) is a process-lifetime peak:
measured in one process, the second variant would inherit the first one's peak. Both subprocesses
run one after the other within this run, with the same thread count, so the ratio compares like
with like on a shared machine (absolute seconds do not). s/step is the TRL train loop's own time
divided by its steps (model loading and saving excluded); the first step is included in both.

Run (harness venv, repo root; ~2-4 minutes with the defaults on 2 cores):
    HARNESS_CACHE=/tmp/hcache python bench/train.py [--model smollm2-135m-instruct --steps 8 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def child(variant: str, model: str, steps: int, threads: int, out: Path) -> dict:
    """One training run in this (fresh) process; returns its measurements."""
    from harness.store import Store
    from trainers import Recipe, train_sft

    recipe = Recipe.model_validate({
        "name": f"bench-{variant}", "base": model, "data": {"path": "instructions.jsonl"},
        "lora": LORA if variant == "lora" else None, "output_dir": str(out / variant),
        # The usual learning rates of each method; the rate does not change the cost of a step.
        "training": {"max_steps": steps, "batch_size": 4, "max_length": 256, "seed": 0, "threads": threads,
                     "lr": 2e-4 if variant == "lora" else 1e-5},
    })
    result = train_sft(recipe, Store(out / f"{variant}.duckdb"))
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    losses = result.curve("loss")
    return {"variant": variant, "steps": result.steps, "s_per_step": result.s_per_step,
            "peak_rss_mb": result.peak_rss_mb, "trainable": trainable, "loss_first": losses[0],
            "loss_last": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog name or HF folder")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each run (1 on a shared machine)")
    parser.add_argument("--child", choices=["full", "lora"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.model, args.steps, args.threads, args.out)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for variant in ("full", "lora"):  # full fine-tuning is the baseline
            cmd = [sys.executable, __file__, "--child", variant, "--model", args.model, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--out", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{variant} run failed:\n{proc.stderr[-3000:]}")
            results[variant] = json.loads(line[len("RESULT "):])
    print(f"model {args.model} · {args.steps} steps · batch 4 · max length 256 · {args.threads} thread(s)")
    print(f"{'variant':8} {'trainable':>12} {'s/step':>8} {'peak RSS MB':>12} {'loss first→last':>18}")
    for r in results.values():
        print(f"{r['variant']:8} {r['trainable']:>12,} {r['s_per_step']:>8.2f} {r['peak_rss_mb']:>12.0f} "
              f"{r['loss_first']:>8.3f} → {r['loss_last']:.3f}")
    full, lora = results["full"], results["lora"]
    print(f"LoRA / full: s/step {lora['s_per_step'] / full['s_per_step']:.2f}x, "
          f"peak RSS {lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}x, "
          f"trainable parameters {lora['trainable'] / full['trainable']:.4f}x")


if __name__ == "__main__":
    main()
