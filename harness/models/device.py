"""Which torch device a local model runs on: one rule for the hf backend, lm-eval's hf model and
the trainers, so a spec means the same hardware everywhere."""

from __future__ import annotations

import os
import sys

from harness.errors import ConfigError, MissingExtraError

DEVICES = ("auto", "cpu", "cuda", "mps")


# Device nodes a Linux GPU driver creates (NVIDIA, WSL's GPU bridge, AMD ROCm); without any, torch
# cannot see a GPU either.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")


def resolve_device(requested: str, model_name: str) -> str:
    """auto -> cuda if torch sees a GPU, else mps (Apple silicon), else cpu. An explicit cuda or
    mps that is not there is a one-line ConfigError: a silent CPU fallback would make a GPU run
    look like it worked while taking 50x longer."""
    if requested == "cpu":
        return "cpu"  # no torch import: cheap on CPU-only machines and for cached reruns
    if requested not in DEVICES:
        raise ConfigError(f"model '{model_name}': device: {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "auto" and sys.platform.startswith("linux") and not any(map(os.path.exists, _GPU_NODES)):
        return "cpu"  # no GPU device node: no torch import (2-3 s) just to learn that, e.g. on a cached rerun
    try:
        import torch
    except ImportError:
        raise MissingExtraError("hf", "torch") from None
    cuda = torch.cuda.is_available()
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
        raise ConfigError(f"model '{model_name}': device: cuda, but torch {torch.__version__} ({build}) sees no"
                          " CUDA GPU: use device: auto or cpu, or install a CUDA build of torch on a GPU machine")
    if requested == "mps" and not mps:
        raise ConfigError(f"model '{model_name}': device: mps, but torch sees no Apple MPS device: use"
                          " device: auto or cpu")
    return requested
