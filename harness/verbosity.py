"""One switch for third-party output: progress bars, INFO logs and deprecation warnings of the
libraries the harness drives (tqdm, datasets, transformers, TRL, lm-eval, setuptools'
pkg_resources) stay quiet unless `harness --verbose` or HARNESS_VERBOSE=1 asks for them. The
harness draws its own progress (rich) and prints its own results."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

ENV = "HARNESS_VERBOSE"
# Read by each library when it is imported (the harness imports them lazily, after the switch is set)
# and inherited by the processes the harness starts (vLLM servers, service workers).
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}
QUIET_LOGGERS = ("lm_eval", "lm-eval", "datasets", "transformers", "trl", "peft", "accelerate", "filelock", "httpx")


def verbose() -> bool:
    """Whether third-party output was asked for (--verbose, or HARNESS_VERBOSE set and not 0)."""
    return os.environ.get(ENV, "") not in ("", "0")


def apply(verbose_flag: bool = False) -> None:
    """Set the switch (`verbose_flag` turns it on for this process and its children), then, unless
    it is on, quiet the libraries: their environment variables (a value the user set is kept),
    deprecation and future warnings, and their loggers below ERROR."""
    if verbose_flag:
        os.environ[ENV] = "1"
    if verbose():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def third_party_stderr():
    """A context in which what libraries write to stderr is dropped, unless verbose: lm-eval's tqdm
    bars (opened with an explicit `disable=False` that TQDM_DISABLE cannot override) and what their
    subprocesses print (lm-eval runs `git describe`, which prints "fatal: not a git repository"
    outside a checkout). File descriptor 2 itself is pointed at /dev/null for the context, so the
    harness's own rich bar, drawn on that descriptor, pauses and redraws after it."""
    return contextlib.nullcontext() if verbose() else _stderr_to_devnull()


@contextlib.contextmanager
def _stderr_to_devnull():
    # sys.stderr too: under a capture (pytest) it is not descriptor 2
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
