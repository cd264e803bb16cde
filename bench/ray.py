"""The Ray executor against the local one (issue 16), on one stub endpoint, in one run.

Starts bench/stub_endpoint.py (aiohttp, 127.0.0.1, --latency-ms per reply) and a Ray cluster on this
machine (`ray start`, the same commands as tests/test_ray.py), then runs one suite (M models x P
prompts, one pairwise judge, generate + judge at once) on a fresh store each time:

  local       executor local: every backend in this process (the baseline);
  ray 1 node  executor ray, a head node only: one actor per backend;
  ray 2 nodes the same after a second node joins: two actors per backend, calls spread over both.

calls/s is measured at the stub: calls / (last reply - first request), so actor start-up is not in it;
the wall time of each run (which includes it) is printed too. Ray's overhead per call is measured
apart: K calls one after another through the openai backend in this process, then through its
RayBackend (each call a Ray actor task), mean latency difference.

Both nodes share this machine's cores, so "2 nodes" shows the cost of spreading, not more hardware;
on a real cluster each node brings its own cores and GPUs.

vLLM replicas (`replicas: N` of a vllm spec), 1 vs 2 on the two nodes: the server command is the
tests' stub (tests/test_ray_replicas.py: the vllm kind with another `server_class`, each reply after
--latency-ms, no limit of its own), so what is measured is the harness's side: the placement group,
each server started on its node, requests balanced over the base URLs with `max_concurrency` per
replica. K prompts after the servers answer, calls/s = K / generate time. Two vLLM-CPU servers on
these 2 shared cores would compete for the same cores: vLLM replicas 2 vs 1 needs GPU nodes.

Run (repo root, harness venv with the [ray] extra):
    python bench/ray.py                          # 3 models x 400 prompts, C=32, 20 ms: about three minutes
    python bench/ray.py --models 4 --prompts 300 --replica-prompts 0
Prints a table, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python bench/ray.py` puts bench/ first on sys.path, where this file would shadow the ray package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=3, help="candidate models M (all on the stub)")
    p.add_argument("--prompts", type=int, default=400, help="prompts P (generated, numbered)")
    p.add_argument("--concurrency", type=int, default=32, help="max_concurrency C of every model and the judge")
    p.add_argument("--latency-ms", type=float, default=20.0, help="stub delay per reply")
    p.add_argument("--overhead-calls", type=int, default=200, help="sequential calls K for the per-call overhead")
    p.add_argument("--replica-prompts", type=int, default=400, help="prompts for replicas 1 vs 2 (0: skip)")
    p.add_argument("--replica-concurrency", type=int, default=8, help="max_concurrency per vLLM replica")
    args = p.parse_args(argv)
    if args.models < 2 or args.prompts < 1:
        p.error("need --models >= 2 and --prompts >= 1")
    return args


class Stub:
    """bench/stub_endpoint.py in its own process."""

    def __init__(self, latency_ms: float):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "stub_endpoint.py"), "--port", "0",
                                      "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise SystemExit(f"stub did not start: {line!r}")
        self.base_url = line.removeprefix("listening on ")
        self.root = self.base_url.removesuffix("/v1")

    def _call(self, method: str, path: str) -> dict:
        with urllib.request.urlopen(urllib.request.Request(self.root + path, method=method), timeout=30) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def write_suite(folder: Path, args, url: str, executor: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Prompt number {i}: explain {i}."]})
                                            + "\n" for i in range(args.prompts)))
    spec = ("{{name: {0}, backend: openai, model: {0}, base_url: '{1}', max_concurrency: {2}, timeout_s: 60,"
            " max_retries: 2}}")
    lines = ["name: bench-ray", "models:"]
    lines += [f"  - {spec.format(f'm{i}', url, args.concurrency)}" for i in range(args.models)]
    lines += ["sets:", "  - {name: qs, path: q.jsonl}", "judges:", "  - name: j", "    dimensions: [overall]",
              f"    model: {spec.format('judge', url, args.concurrency)}", f"executor: {executor}"]
    (folder / "suite.yaml").write_text("\n".join(lines) + "\n")
    return folder / "suite.yaml"


def phase(name: str, stub: Stub, suite: Path, db: Path) -> dict:
    from harness import api

    stub.reset()
    began = time.perf_counter()
    report = api.run(suite, db, stages=("generate", "judge"))
    wall = time.perf_counter() - began
    stats = stub.stats()
    calls = stats["served"]
    row = {"phase": name, "calls": calls, "wall_s": round(wall, 2), "span_s": round(stats["span_s"], 2),
           "calls_per_s": round(calls / stats["span_s"], 1) if stats["span_s"] else 0.0,
           "mean_in_flight": round(stats["mean_in_flight"], 1), "complete": report.complete}
    print(f"  {name:<12} {calls:>6} calls  {row['calls_per_s']:>8.1f} calls/s  (wall {wall:.1f} s, "
          f"{row['mean_in_flight']:.1f} in flight)", flush=True)
    return row


def overhead(stub: Stub, suite_path: Path, calls: int) -> dict:
    """Mean latency of one call, one at a time: the openai backend here vs its RayBackend."""
    from harness.config import load_suite
    from harness.executors import ray_backends
    from harness.models.base import GenerationParams, Message
    from harness.models.registry import create_backend

    suite, _ = load_suite(suite_path)
    params = GenerationParams(max_new_tokens=32)
    conversations = [(Message("user", f"overhead probe {i}"),) for i in range(calls)]

    async def sequential(backend) -> float:
        began = time.perf_counter()
        for conv in conversations:
            done = await backend.acomplete(conv, params)
            assert done.ok, done.error
        await backend.aclose()
        return (time.perf_counter() - began) / calls

    local = create_backend(suite.models[0])
    local_s = asyncio.run(sequential(local))
    backends, _ = ray_backends(suite, models=[suite.models[0].name], judges=[])
    remote = backends[suite.models[0].name]
    try:
        asyncio.run(sequential(remote))  # warm: the actor's HTTP client and Ray's connections
        ray_s = asyncio.run(sequential(remote))
    finally:
        remote.close()
    return {"local_ms": round(local_s * 1e3, 2), "ray_ms": round(ray_s * 1e3, 2),
            "overhead_ms": round((ray_s - local_s) * 1e3, 2), "actors": len(remote.infos)}


def replicas(cluster, args) -> list[dict]:
    """calls/s of a vllm spec with replicas 1 and 2 (stub servers, see the module docstring)."""
    from harness.config import Suite
    from harness.executors import ray_backends
    from harness.models.base import GenerationParams, Message
    from harness.models.catalog import resolve_model_path
    from harness.models.registry import register_backend, unregister_backend
    from tests.test_ray_replicas import stub_vllm

    path = str(resolve_model_path("smollm2-135m-instruct"))  # its fingerprint is read from a real folder
    register_backend("vllm", stub_vllm)
    rows = []
    try:
        for n in (1, 2):
            spec = {"name": f"rep{n}", "backend": "vllm", "model": path, "replicas": n, "replica_resources": {"CPU": 0.2},
                    "max_concurrency": args.replica_concurrency, "extra_args": [f"latency_ms:{args.latency_ms:g}"]}
            suite = Suite(name="bench-replicas", models=[spec], sets=[{"name": "quickstart"}],
                          executor={"kind": "ray", "address": cluster.address})
            began = time.perf_counter()
            rep = ray_backends(suite, models=[spec["name"]], judges=[])[0][spec["name"]]
            try:
                rep.start()
                ready_s = time.perf_counter() - began
                convs = [(Message("user", f"Replica prompt {i}."),) for i in range(args.replica_prompts)]
                began = time.perf_counter()
                done = rep.generate(convs, GenerationParams(max_new_tokens=32))
                span = time.perf_counter() - began
                assert all(c.ok for c in done), next(c.error for c in done if not c.ok)
                nodes = len(set(rep.nodes()))
            finally:
                rep.close()
            rows.append({"replicas": n, "nodes": nodes, "calls": len(done), "ready_s": round(ready_s, 2),
                         "calls_per_s": round(len(done) / span, 1)})
            print(f"  replicas {n}    {len(done):>6} calls  {rows[-1]['calls_per_s']:>8.1f} calls/s  (on {nodes} node(s),"
                  f" servers placed and answering after {ready_s:.1f} s)", flush=True)
    finally:
        unregister_backend("vllm")
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    import ray

    from tests.test_ray import Cluster  # the tests' cluster: `ray start` head + node, stopped by pid

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    stub = Stub(args.latency_ms)
    cluster = Cluster()
    rows = []
    try:
        print(f"{args.models} models x {args.prompts} prompts + 1 judge, C={args.concurrency}, "
              f"stub {args.latency_ms:g} ms", flush=True)
        rows.append(phase("local", stub, write_suite(work / "local", args, stub.base_url, "{kind: local}"),
                          work / "local.duckdb"))
        cluster.start_head()
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        on_ray = f"{{kind: ray, address: '{cluster.address}'}}"
        rows.append(phase("ray 1 node", stub, write_suite(work / "r1", args, stub.base_url, on_ray), work / "r1.duckdb"))
        cluster.add_node()
        deadline = time.monotonic() + 60
        while sum(n["Alive"] for n in ray.nodes()) < 2:  # bounded: the node registers within seconds
            if time.monotonic() > deadline:
                raise SystemExit("the second node did not join within 60 s")
            time.sleep(0.2)
        suite2 = write_suite(work / "r2", args, stub.base_url, on_ray)
        rows.append(phase("ray 2 nodes", stub, suite2, work / "r2.duckdb"))
        cost = overhead(stub, suite2, args.overhead_calls)
        replica_rows = replicas(cluster, args) if args.replica_prompts else []
    finally:  # each step on its own: a failed one must not leave the cluster or the stub running
        try:
            ray.shutdown()
        finally:
            try:
                cluster.stop()
            finally:
                stub.stop()
    base = rows[0]["calls_per_s"] or 1.0
    print("\nphase          calls/s   x local")
    for row in rows:
        print(f"  {row['phase']:<12} {row['calls_per_s']:>8.1f}   {row['calls_per_s'] / base:.2f}")
    print(f"one call at a time: local {cost['local_ms']} ms, through Ray {cost['ray_ms']} ms "
          f"({cost['actors']} actors): Ray adds {cost['overhead_ms']} ms per call")
    if len(replica_rows) == 2:
        print(f"vllm spec (stub servers), replicas 2 vs 1: {replica_rows[1]['calls_per_s'] / replica_rows[0]['calls_per_s']:.2f}x"
              f" calls/s at max_concurrency {args.replica_concurrency} per replica")
    print(json.dumps({"args": vars(args), "phases": rows, "overhead": cost, "replicas": replica_rows,
                      "ratios": {r["phase"]: round(r["calls_per_s"] / base, 3) for r in rows}}))


if __name__ == "__main__":
    main()
