"""Planning, the cache check and memory at 500,000 judge calls (issue 12), without a network.

The models and the judge are in-process backends that answer instantly, exactly as the test stub
does (tests/stub_server.reply_text: answers by (model, question), verdicts in the harness's tagged
format), so the harness's own work is all that is measured. Each phase runs in its own subprocess
(peak RSS from os.wait4):

  fill          harness.api.run(stages generate+judge) on an empty store: every answer and judge call
                goes through the runner, the pipeline (pairs judged as answers arrive) and the writer;
                calls/s here is the harness's own ceiling per core (no endpoint to wait for);
  cached rerun  the same run again: it must make zero calls; its time is planning + cache check
                (startup, the imports, measured alone and subtracted);
  ratings       harness.api.rate over the stored battles (1,000 bootstrap rounds).

Run (repo root, harness venv):
    python bench/planning.py                        # 8 models x 805 prompts: 45,080 judge calls
    python bench/planning.py --full                 # 8 models x 8,929 prompts: 500,024 judge calls
Prints a table, then one JSON line. Goals: cached rerun < 5 s, 500,000-call run < 1.5 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GOAL_CACHED_S, GOAL_RSS_MB = 5.0, 1536


class InstantBackend:
    """A streaming backend that answers at once, as tests/stub_server.py would over HTTP."""

    chunk_size = 256
    max_concurrency = 64

    def __init__(self, name: str):
        self.name, self.calls = name, 0

    def fingerprint(self) -> str:
        return f"instant-{self.name}"

    def _reply(self, conversation) -> "Completion":
        from harness.models.base import Completion
        from tests.stub_server import reply_text

        self.calls += 1
        _, text = reply_text(self.name, [{"role": m.role, "content": m.content} for m in conversation])
        return Completion(text, completion_tokens=len(text) // 4)

    def generate(self, conversations, params):
        return [self._reply(c) for c in conversations]

    async def acomplete(self, conversation, params):
        return self._reply(conversation)

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass


def suite(models: int, prompts: int):
    from harness.config import Suite

    url = "http://127.0.0.1:9/v1"  # never contacted: the backends are given
    return Suite.model_validate({
        "name": "planning",
        "models": [{"name": f"m{i}", "backend": "openai", "model": f"m{i}", "base_url": url} for i in range(models)],
        "sets": [{"name": "synthetic", "path": "prompts.jsonl"}],
        "judges": [{"name": "j", "dimensions": ["accuracy"], "max_parse_retries": 0,
                    "model": {"name": "jm", "backend": "openai", "model": "judge", "base_url": url}}],
        "pairs": {"mode": "all"}, "ratings": {"bootstrap_rounds": 1000}})


def child(what: str, work: str, models: str, prompts: str) -> None:
    """One phase, in this process; prints one JSON line."""
    from harness import api
    from judges.llm import LLMJudge

    started = time.perf_counter()
    the_suite = suite(int(models), int(prompts))
    if what == "ratings":
        board = api.rate(the_suite, Path(work) / "p.duckdb")
        print(json.dumps({"s": time.perf_counter() - started, "rows": len(board.rows)}))
        return
    backends = {m.name: InstantBackend(m.name) for m in the_suite.models}
    judge_backend = InstantBackend("judge")
    judge = LLMJudge("j", judge_backend, dimensions=("accuracy",), max_parse_retries=0)
    report = api.run(the_suite, Path(work) / "p.duckdb", stages=("generate", "judge"), base_dir=Path(work),
                     backends=backends, judges={"j": judge})
    calls = sum(b.calls for b in backends.values()) + judge_backend.calls
    print(json.dumps({"s": time.perf_counter() - started, "calls": calls, **report.judging.totals(),
                      **report.generation.totals()}))


def run_child(*argv: str) -> dict:
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_child", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if status != 0:
        raise SystemExit(f"{argv[0]} failed:\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall_s": round(time.perf_counter() - began, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        return child(*sys.argv[2:6])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--prompts", type=int, default=805)
    p.add_argument("--full", action="store_true", help="8 models x 8,929 prompts: 500,024 judge calls")
    args = p.parse_args()
    if args.full:
        args.models, args.prompts = 8, 8929
    work = Path(tempfile.mkdtemp(prefix="harness-planning-"))
    (work / "prompts.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "turns": [f"Instruction {i}: explain item {i * 7} in a sentence or two."]}) + "\n"
        for i in range(args.prompts)))
    n_judge = args.models * (args.models - 1) * args.prompts
    print(f"planning: {args.models} models x {args.prompts} prompts = {args.models * args.prompts} answers, "
          f"{n_judge} judge calls; work {work}", flush=True)
    r = {}
    for name, what in (("fill", "run"), ("cached_rerun", "run"), ("ratings", "ratings")):
        r[name] = run_child(what, str(work), str(args.models), str(args.prompts))
        print(f"   {name:<13} {r[name]['wall_s']:7.1f} s  peak RSS {r[name]['peak_rss_mb']} MB", flush=True)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import harness.api, judges.llm"], check=True, cwd=REPO)
    r["startup_s"] = round(time.perf_counter() - began, 2)
    fill, cached = r["fill"], r["cached_rerun"]
    assert cached["calls"] == 0, f"the cached rerun made {cached['calls']} calls"
    r["fill_calls_per_s"] = round(fill["calls"] / fill["s"], 1)
    r["planning_s"] = round(cached["wall_s"] - r["startup_s"], 2)
    print(f"\nfill          {fill['calls']} calls in {fill['s']:.1f} s in-process: {r['fill_calls_per_s']} calls/s "
          f"(the harness's ceiling on one core); peak RSS {fill['peak_rss_mb']} MB (goal < {GOAL_RSS_MB} MB: "
          f"{'ok' if fill['peak_rss_mb'] < GOAL_RSS_MB else 'MISSED'})")
    print(f"cached rerun  {cached['wall_s']:.2f} s wall, of which startup {r['startup_s']} s: planning + cache check "
          f"{r['planning_s']} s for {cached['judge_calls'] + cached['planned']} planned calls (goal < {GOAL_CACHED_S} s: "
          f"{'ok' if cached['wall_s'] < GOAL_CACHED_S else 'MISSED'}); peak RSS {cached['peak_rss_mb']} MB")
    print(f"ratings       {r['ratings']['wall_s']:.2f} s wall ({r['ratings']['rows']} rating rows)")
    print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()
