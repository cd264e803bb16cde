"""Alignment evaluation harness.

The Python API is `harness.api`, re-exported here: `harness.run`, `harness.rate`,
`harness.stored_ratings`, `harness.evaluate_judges`, `harness.train`, `harness.judge_reliability`;
`harness.battles.battles` gives the merged battles every result is computed from. Importing this package stays cheap: names resolve on first
use, and heavy backends (torch, vLLM, transformers) load only when a model of that kind runs.
"""

from importlib import import_module

from harness.errors import HarnessError

__version__ = "0.1.0"

# Names that are not also module names of this package (harness.ratings is the rating maths).
_API = {name: "harness.api" for name in ("run", "rate", "stored_ratings", "evaluate_judges", "train", "open_store",
                                         "judge_reliability", "self_preference", "RunReport", "Leaderboard",
                                         "compare", "how_sure", "probe")}
_API |= {"Selection": "harness.battles", "Suite": "harness.config", "load_suite": "harness.config",
         "Store": "harness.store"}
__all__ = ["HarnessError", "__version__", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
