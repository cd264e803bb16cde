"""Performance at scale (issue 12): the harness against the simplest client, same endpoint, one run.

Starts bench/stub_endpoint.py (aiohttp, 127.0.0.1, --latency-ms per reply) in its own process and
measures, each in its own subprocess so each gets a core the way the harness CLI does:

  plain loop    openai.AsyncOpenAI + asyncio.Semaphore(C), N calls: the baseline (run before and
                after the harness phases; the mean is the baseline, both are printed);
  generate      `harness run SUITE --stages generate`: M models x P prompts (AlpacaEval instructions);
  judge         `harness run SUITE --stages judge`: one pairwise judge, all pairs, both orders
                (M*(M-1)/2 * P * 2 calls), with calls/s by decile of the run;
  overlapped    `harness run SUITE --stages generate,judge` on a fresh store: both stages at once, each pair
                judged as soon as its answers exist (harness/pipeline.py);
  cached rerun  `harness run SUITE --stages generate,judge` with every call stored (must make 0 calls),
                and the import/startup part of it measured alone, so planning + cache check is the rest;
  ratings       `harness ratings SUITE` with bootstrap_rounds 1000, and the board size (battles).

calls/s is measured at the stub: calls / (last reply - first request), the same definition for the
baseline and the harness; ratios are harness / baseline from this one run. Peak RSS comes from
os.wait4 on each subprocess. Goals (issue 12): >= 0.9x the plain loop, last decile no slower than
the first, cached rerun < 5 s, ratings < 5 s.

Run (repo root, harness venv):
    python bench/scale.py                              # 4 models x 100 prompts, C=64, 20 ms: minutes
    python bench/scale.py --models 8 --prompts 200
    python bench/scale.py --full                       # 8 x 805: 6,440 answers, 45,080 judge calls
Prints a table, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALPACA = REPO.parent / "shared" / "data" / "alpaca_eval" / "alpaca_eval_805_instructions.jsonl"
STARTUP_IMPORTS = "import harness.cli, harness.api"  # what every command pays before its work
GOAL_RATIO, GOAL_CACHED_S, GOAL_RATINGS_S = 0.9, 5.0, 5.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=4, help="candidate models M (all on the stub)")
    p.add_argument("--prompts", type=int, default=100, help="first P AlpacaEval instructions")
    p.add_argument("--concurrency", type=int, default=64, help="max_concurrency C (suite and plain loop)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="stub delay per reply")
    p.add_argument("--full", action="store_true", help="8 models x 805 prompts (45,080 judge calls)")
    p.add_argument("--plain-calls", type=int, default=None,
                   help="calls per plain-loop run (default: the judge calls, within 1,000..4,000)")
    p.add_argument("--data", type=Path, default=ALPACA, help="AlpacaEval instructions (JSONL)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds any one subprocess may take")
    p.add_argument("--keep", action="store_true", help="keep the work folder (suite, store, logs)")
    args = p.parse_args(argv)
    if args.full:
        args.models, args.prompts = 8, 805
    if args.models < 2 or args.prompts < 1 or args.concurrency < 1:
        p.error("need --models >= 2, --prompts >= 1, --concurrency >= 1")
    if args.plain_calls is None:
        args.plain_calls = min(4_000, max(1_000, judge_calls(args)))  # ~30 s: the rate settles in seconds
    return args


def judge_calls(args) -> int:
    return args.models * (args.models - 1) // 2 * args.prompts * 2


# --- subprocesses ---------------------------------------------------------------------------------
@dataclass
class Child:
    what: str
    rc: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(what: str, cmd: list[str], work: Path, timeout: float) -> Child:
    """Run `cmd` to the end; its own rusage (peak RSS) comes from wait4. Output goes to files, so a
    chatty child can never block on a full pipe."""
    out, err = work / f"{what}.stdout", work / f"{what}.stderr"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}  # measure this tree's code
    with out.open("w") as fo, err.open("w") as fe:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fo, stderr=fe, start_new_session=True)
        deadline, timed_out = started + timeout, False
        while True:  # bounded by the deadline
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
    proc.returncode = 124 if timed_out else os.waitstatus_to_exitcode(status)  # so Popen never waits again
    return Child(what, proc.returncode, wall, usage.ru_maxrss / 1024, out.read_text(), err.read_text())


def checked(child: Child, work: Path) -> Child:
    """A failed subprocess stops the benchmark with its own output shown."""
    if child.rc != 0:
        tail = lambda text: "\n".join(text.strip().splitlines()[-25:])  # noqa: E731
        print(f"\n!! {child.what} exited {child.rc}{' (timed out)' if child.rc == 124 else ''} "
              f"after {child.wall_s:.1f} s; logs in {work}\n-- stdout (tail) --\n{tail(child.stdout)}"
              f"\n-- stderr (tail) --\n{tail(child.stderr)}", file=sys.stderr)
        raise SystemExit(1)
    return child


class Stub:
    """bench/stub_endpoint.py in its own process group, on a port it picks and prints."""

    def __init__(self, latency_ms: float, work: Path):
        self.log = (work / "stub.stderr").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "stub_endpoint.py"), "--port", "0", "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)
        self.base_url = self._first_line(timeout=30).split()[-1]
        self.root = self.base_url.removesuffix("/v1")

    def _first_line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.close()
                raise SystemExit(f"the stub printed nothing in {timeout:.0f} s (log: {self.log.name})")
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.close()
            raise SystemExit(f"the stub did not start: {line!r} (log: {self.log.name})")
        return line.strip()

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(self.root + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=60) as reply:
            return json.loads(reply.read())

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


# --- the plain loop (run as `scale.py _plain URL N C DATA` in its own process) -----------------
def prompts_from(data: Path, n: int) -> list[str]:
    """The first instructions, cycled with a suffix past the end so every call differs."""
    lines = [json.loads(line)["instruction"] for line in data.read_text().splitlines() if line.strip()]
    return [lines[i] if i < len(lines) else f"{lines[i % len(lines)]} ({i // len(lines)})" for i in range(n)]


async def _plain(url: str, requests: list[dict], concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(request: dict) -> None:
        # A replayed request goes out as the harness sent it: create()'s own parameters as such, the
        # rest (what the harness passes through extra_body) through extra_body again.
        known = {k: v for k, v in request.items() if k in CREATE_PARAMS}
        extra = {k: v for k, v in request.items() if k not in CREATE_PARAMS and k != "stream"}
        async with gate:
            await client.chat.completions.create(**known, **({"extra_body": extra} if extra else {}))

    try:
        await asyncio.gather(*(one(r) for r in requests))
    finally:
        await client.close()


CREATE_PARAMS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
                 "n", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias", "user"}


def plain_main(url: str, n: str, concurrency: str, data: str) -> None:
    """The plain loop over short prompts (`data` a JSONL of instructions), or, when `data` is a JSON
    file of recorded requests, over those very requests (the judge's own prompts), cycled to n."""
    if data.endswith(".requests.json"):
        recorded = json.loads(Path(data).read_text())
        requests = [recorded[i % len(recorded)] for i in range(int(n))]
    else:
        requests = [{"model": f"plain{i % 8}", "messages": [{"role": "user", "content": prompt}], "max_tokens": 256,
                     "temperature": 0} for i, prompt in enumerate(prompts_from(Path(data), int(n)))]
    asyncio.run(_plain(url, requests, int(concurrency)))


# --- the suite --------------------------------------------------------------------------------------
def write_suite(work: Path, url: str, args) -> Path:
    c = args.concurrency
    lines = ["name: scale", "models:"]
    lines += [f"  - {{name: m{i}, backend: openai, model: m{i}, base_url: '{url}', max_concurrency: {c}}}"
              for i in range(args.models)]
    lines += ["sets:", f"  - {{name: alpaca, path: '{args.data.resolve()}', format: alpaca_eval, limit: {args.prompts}}}",
              "judges:", "  - name: j", "    dimensions: [accuracy]", "    max_parse_retries: 0",
              f"    model: {{name: jm, backend: openai, model: judge, base_url: '{url}', max_concurrency: {c}}}",
              "pairs: {mode: all}", "ratings: {bootstrap_rounds: 1000}"]
    suite = work / "scale.yaml"
    suite.write_text("\n".join(lines) + "\n")
    return suite


def harness_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *argv]


# --- measurements ------------------------------------------------------------------------------------
def rate(stats: dict) -> float:
    return stats["served"] / stats["span_s"] if stats["span_s"] else 0.0


def deciles(stats: dict) -> list[float]:
    """calls/s of each tenth of the calls, in completion order (the first starts at the first request)."""
    done, n = stats["done_s"], stats["served"]
    if n < 10:
        return []
    edges = [stats["first_start_s"]] + [done[(k * n) // 10 - 1] for k in range(1, 11)]
    counts = [(k * n) // 10 - ((k - 1) * n) // 10 for k in range(1, 11)]
    return [c / max(edges[k + 1] - edges[k], 1e-9) for k, c in enumerate(counts)]


def phase(name: str, stub: Stub, child: Child, expected: int | None, by_decile: bool) -> dict:
    stats = stub.stats()
    if expected is not None and stats["served"] != expected:
        print(f"!! {name}: the stub served {stats['served']} calls, expected {expected}", file=sys.stderr)
    return {"calls": stats["served"], "expected": expected, "stub_span_s": round(stats["span_s"], 3),
            "calls_per_s": round(rate(stats), 1), "wall_s": round(child.wall_s, 2),
            "e2e_calls_per_s": round(stats["served"] / child.wall_s, 1), "stub_cpu_s": round(stats["cpu_s"], 2),
            "peak_rss_mb": round(child.peak_rss_mb, 1), "mean_in_flight": round(stats["mean_in_flight"], 1),
            "peak_in_flight": stats["peak_in_flight"], "served_twice": stats["served_twice"],
            **({"deciles_calls_per_s": [round(x, 1) for x in deciles(stats)]} if by_decile else {})}


def run_phase(name: str, stub: Stub, cmd: list[str], work: Path, args, expected: int | None,
              by_decile: bool = False) -> dict:
    stub.reset()
    child = checked(run_child(name, cmd, work, args.timeout), work)
    print(f"   {name:<13} done in {child.wall_s:6.1f} s   (load1 {os.getloadavg()[0]:.2f})", flush=True)
    return phase(name, stub, child, expected, by_decile)


def board_battles(db: Path) -> dict:
    """Battles on the stored board: per model and in total (each battle counts for two models)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT model, max(battles) FROM ratings WHERE category = 'all' AND method = 'bt' "
                           "AND suite_name = 'scale' GROUP BY model").fetchall()
    except duckdb.Error as exc:  # the schema may move under a rewrite: report, do not crash
        return {"error": str(exc).splitlines()[0]}
    finally:
        con.close()
    per_model = sum(n for _, n in rows) / max(len(rows), 1)
    return {"models_on_board": len(rows), "battles_per_model": per_model, "battles": sum(n for _, n in rows) // 2}


def measure(args, work: Path) -> dict:
    n_gen, n_judge = args.models * args.prompts, judge_calls(args)
    stub = Stub(args.latency_ms, work)
    try:
        suite, db = write_suite(work, stub.base_url, args), work / "scale.duckdb"
        plain = [sys.executable, str(Path(__file__).resolve()), "_plain", stub.base_url, str(args.plain_calls),
                 str(args.concurrency), str(args.data)]
        r = {"plain_before": run_phase("plain_before", stub, plain, work, args, args.plain_calls)}
        r["generate"] = run_phase("generate", stub, harness_cmd("run", str(suite), "--db", str(db), "--stages",
                                                                "generate"), work, args, n_gen)
        recorded_answers = work / "generate.requests.json"  # the same-request baseline for generation
        recorded_answers.write_text(json.dumps(stub._call("GET", "/recorded")))
        r["judge"] = run_phase("judge", stub, harness_cmd("run", str(suite), "--db", str(db), "--stages", "judge"),
                               work, args, n_judge, by_decile=True)
        # The judge's own requests (long prompts, two messages), replayed below by the plain loop:
        # the same-request baseline for judging. Read now: the next phase resets the stub.
        recorded = work / "judge.requests.json"
        recorded.write_text(json.dumps(stub._call("GET", "/recorded")))
        r["plain_after"] = run_phase("plain_after", stub, plain, work, args, args.plain_calls)
        r["plain_judge"] = run_phase("plain_judge", stub, plain[:-1] + [str(recorded)], work, args, args.plain_calls)
        r["plain_generate"] = run_phase("plain_generate", stub, plain[:-1] + [str(recorded_answers)], work, args,
                                        args.plain_calls)
        r["cached_rerun"] = run_phase("cached_rerun", stub, harness_cmd("run", str(suite), "--db", str(db),
                                                                        "--stages", "generate,judge"), work, args, 0)
        # Both stages as one run on a fresh store (harness.pipeline: pairs judged as answers arrive).
        r["overlapped"] = run_phase("overlapped", stub, harness_cmd("run", str(suite), "--db", str(work / "o.duckdb"),
                                                                    "--stages", "generate,judge"),
                                    work, args, n_gen + n_judge, by_decile=True)
        r["startup"] = run_phase("startup", stub, [sys.executable, "-c", STARTUP_IMPORTS], work, args, 0)
        r["ratings"] = run_phase("ratings", stub, harness_cmd("ratings", str(suite), "--db", str(db)), work, args, 0)
        r["board"] = board_battles(db)
        return r
    finally:
        stub.close()


def summarise(r: dict, args, total_s: float, code: str) -> dict:
    base = (r["plain_before"]["calls_per_s"] + r["plain_after"]["calls_per_s"]) / 2
    e2e_base = (r["plain_before"]["e2e_calls_per_s"] + r["plain_after"]["e2e_calls_per_s"]) / 2
    for name in ("generate", "judge", "overlapped"):
        r[name]["ratio_to_plain"] = round(r[name]["calls_per_s"] / base, 3) if base else None
        r[name]["e2e_ratio_to_plain"] = round(r[name]["e2e_calls_per_s"] / e2e_base, 3) if e2e_base else None
    for name, plain in (("judge", "plain_judge"), ("generate", "plain_generate")):
        same = r[plain]["calls_per_s"]
        r[name]["ratio_to_same_requests"] = round(r[name]["calls_per_s"] / same, 3) if same else None
    dec = r["judge"]["deciles_calls_per_s"]
    r["judge"]["last_over_first_decile"] = round(dec[-1] / dec[0], 3) if dec and dec[0] else None
    r["overlapped"]["over_stages_wall"] = round(r["overlapped"]["wall_s"] / (r["generate"]["wall_s"] + r["judge"]["wall_s"]), 3)
    r["cached_rerun"]["planning_s"] = round(r["cached_rerun"]["wall_s"] - r["startup"]["wall_s"], 2)
    r["settings"] = {"code": code, "code_changed_during_run": code != code_hash(), "models": args.models,
                     "prompts": args.prompts, "concurrency": args.concurrency, "latency_ms": args.latency_ms, "plain_calls": args.plain_calls, "cpus": os.cpu_count(),
                     "loadavg": [round(x, 2) for x in os.getloadavg()], "git": _git_head()}
    r["plain_calls_per_s"], r["plain_e2e_calls_per_s"] = round(base, 1), round(e2e_base, 1)
    r["total_s"] = round(total_s, 1)
    return r


def code_hash() -> str:
    """Content hash of the code measured: the tree is shared while it is rewritten, so a git sha says
    little; a different hash at the end means the code changed during the run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for pkg in ("harness", "judges") for p in (REPO / pkg).rglob("*") if p.is_file()
                       and p.suffix in (".py", ".sql")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _git_head() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "") if sha else None
    except (OSError, subprocess.SubprocessError):
        return None


def print_table(r: dict) -> None:
    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\n{'phase':<13} {'calls':>7} {'stub s':>8} {'calls/s':>8} {'ratio':>6} {'wall s':>7} {'e2e/s':>7} "
          f"{'ratio':>6} {'RSS MB':>7} {'in flight':>9}  note")
    for name in ("plain_before", "plain_after", "plain_judge", "plain_generate", "generate", "judge", "overlapped",
                 "cached_rerun", "startup", "ratings"):
        p = r[name]
        ratio, e2e = p.get("ratio_to_plain"), p.get("e2e_ratio_to_plain")
        note = {"plain_before": f"baseline {r['plain_calls_per_s']} calls/s (mean of both plain runs)",
                "generate": f"goal >= {GOAL_RATIO}x: {mark((ratio or 0) >= GOAL_RATIO)}; vs the same requests "
                            f"(plain_generate): {p.get('ratio_to_same_requests')}x "
                            f"{mark((p.get('ratio_to_same_requests') or 0) >= GOAL_RATIO)}",
                "plain_generate": "the plain loop replaying the harness's own generation requests",
                "judge": f"goal >= {GOAL_RATIO}x: {mark((ratio or 0) >= GOAL_RATIO)}; vs the same requests "
                         f"(plain_judge): {p.get('ratio_to_same_requests')}x "
                         f"{mark((p.get('ratio_to_same_requests') or 0) >= GOAL_RATIO)}",
                "plain_judge": "the plain loop replaying the judge's own requests",
                "overlapped": f"both stages in one run: {p.get('over_stages_wall')}x the wall time of the two "
                              f"stages run one after the other; goal >= {GOAL_RATIO}x: {mark((ratio or 0) >= GOAL_RATIO)}",
                "cached_rerun": f"planning+cache check ~{p.get('planning_s')} s; goal < {GOAL_CACHED_S} s: "
                                f"{mark(p['wall_s'] < GOAL_CACHED_S)}",
                "startup": "python + harness imports alone",
                "ratings": f"{r['board'].get('battles', r['board'])} battles; goal < {GOAL_RATINGS_S} s: "
                           f"{mark(p['wall_s'] < GOAL_RATINGS_S)}"}.get(name, "")
        in_flight = f"{p['mean_in_flight']:.0f}/{p['peak_in_flight']}" if p["calls"] else "-"
        print(f"{name:<13} {p['calls']:>7} {p['stub_span_s']:>8.2f} {p['calls_per_s']:>8.1f} "
              f"{'' if ratio is None else f'{ratio:.3f}':>6} {p['wall_s']:>7.1f} {p['e2e_calls_per_s']:>7.1f} "
              f"{'' if e2e is None else f'{e2e:.3f}':>6} {p['peak_rss_mb']:>7.0f} {in_flight:>9}  {note}")
    if r["settings"]["code_changed_during_run"]:
        print("!! harness/ or judges/ changed during the run: the phases may have measured different code")
    j = r["judge"]
    print(f"judge calls/s by decile: {' '.join(f'{x:.0f}' for x in j['deciles_calls_per_s'])}"
          f"   last/first {j['last_over_first_decile']} (goal >= 1.0)"
          + ("   (too few calls to mean much: < 10 x concurrency)"
             if j["calls"] < 10 * r["settings"]["concurrency"] else ""))
    print("(calls/s: calls / (last reply - first request) at the stub; e2e/s: calls / the subprocess's wall "
          "time, startup and final writes included; in flight: mean/peak requests at the stub; stub CPU "
          f"{r['judge']['stub_cpu_s']} s during judge; total {r['total_s']} s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_plain":
        return plain_main(*sys.argv[2:6])
    args = parse_args(sys.argv[1:])
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data}: no such file (AlpacaEval's 805 instructions, JSONL)")
    work = Path(tempfile.mkdtemp(prefix="harness-scale-"))
    started = time.perf_counter()
    print(f"scale: {args.models} models x {args.prompts} prompts, C={args.concurrency}, {args.latency_ms:g} ms; "
          f"{args.models * args.prompts} answers, {judge_calls(args)} judge calls; plain loop "
          f"{args.plain_calls} calls; work {work}", flush=True)
    try:
        code = code_hash()
        r = summarise(measure(args, work), args, time.perf_counter() - started, code)
    except BaseException:
        print(f"(work folder kept: {work})", file=sys.stderr)
        raise
    print_table(r)
    print(json.dumps(r, separators=(",", ":")))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"(work folder kept: {work})")


if __name__ == "__main__":
    main()
