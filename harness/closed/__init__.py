"""Closed-set benchmarks through lm-evaluation-harness (MMLU, GSM8K, local JSONL tasks), stored in
the same DuckDB as the judged open-set results. lm-eval is imported only when a task runs or its
content is new to the store: stored results are found by a hash of the task's files alone."""

from harness.closed.run import ClosedResult, ClosedSummary, plan_closed, run_closed

__all__ = ["ClosedResult", "ClosedSummary", "plan_closed", "run_closed"]
