"""The Ray executor on a real two-node Ray cluster on this machine (harness.executors).

A module fixture starts the cluster with the `ray` CLI: a head node and a second node that joins it,
1 CPU each, with custom resources shard_a / shard_b, so the two raylets are told apart in Ray's own
records. Ray turns 127.0.0.1 into this host's address for node addresses (it refuses loopback-only
multi-node clusters), so both nodes listen on this machine's own interface; nothing leaves it.
The cluster is stopped at the end, even when a test fails, by killing exactly its processes (those
whose command line names this cluster's temp dir or GCS port, and their children): `ray stop` would
stop every Ray process on the machine.

Calls go to the stub OpenAI-compatible server (tests/stub_server.py) and to an in-process model of a
kind registered here; stores are real DuckDB files. Nothing waits on timings: polls have deadlines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import duckdb
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'alignment-harness[ray]'")
psutil = pytest.importorskip("psutil")

from harness import api, runner  # noqa: E402
from harness.runner import load_questions  # noqa: E402
from harness.errors import HarnessError, MissingExtraError  # noqa: E402
from harness.models.base import Completion  # noqa: E402
from harness.models.registry import register_backend, unregister_backend  # noqa: E402
from harness.models.specs import ModelSpecBase  # noqa: E402
from tests.stub_server import StubServer  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
CALL_LOG = "HARNESS_TEST_RAY_CALL_LOG"  # set in the cluster's environment: the in-process model logs its node
NODE = "HARNESS_TEST_RAY_NODE"  # a or b, set in each node's environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(check, what: str, deadline_s: float = 90.0):
    """check() until it returns something truthy; fails after the deadline (a bound, not a timing)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what} after {deadline_s:g} s")


# --- the cluster ----------------------------------------------------------------------------------------
class Cluster:
    def __init__(self):
        # short: Ray's unix socket paths live under it and must stay under 108 characters
        self.temp = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.call_log = self.temp / "calls.log"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", CALL_LOG: str(self.call_log)}

    def ray_start(self, node: str, *args: str) -> None:
        # output to a file, never a pipe: the daemons `ray start` leaves behind inherit its stdout
        with open(self.temp / f"{node}.log", "w") as out:
            done = subprocess.run([RAY, "start", "--num-cpus", "1", "--disable-usage-stats",
                                   "--dashboard-agent-listen-port", str(free_port()),
                                   "--min-worker-port", "0", "--max-worker-port", "0", *args],
                                  stdout=out, stderr=subprocess.STDOUT, env={**self.env, NODE: node}, timeout=120)
        assert done.returncode == 0, (self.temp / f"{node}.log").read_text()[-2000:]

    def start(self) -> None:
        self.start_head()
        self.add_node()

    def start_head(self) -> None:
        self.ray_start("a", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                       "--resources", json.dumps({"shard_a": 1}), "--include-dashboard", "false",
                       "--ray-client-server-port", str(free_port()), "--temp-dir", str(self.temp),
                       # a dead node is noticed after ~5 s instead of ~30 (the fault test waits for it)
                       "--system-config", json.dumps({"health_check_period_ms": 1000,
                                                      "health_check_failure_threshold": 5}),
                       )

    def add_node(self) -> None:
        self.ray_start("b", "--address", self.address, "--resources", json.dumps({"shard_b": 1}))

    def calls(self) -> list[list[str]]:
        """The in-process model's chunks so far: [model, node id, conversations]."""
        return [line.split() for line in self.call_log.read_text().splitlines()] if self.call_log.exists() else []

    def processes(self) -> list:
        mine = []
        for p in psutil.process_iter(["cmdline"]):
            line = " ".join(p.info["cmdline"] or [])
            if str(self.temp) in line or re.search(rf":{self.port}(?!\d)", line):
                mine.append(p)
        for p in list(mine):
            try:
                mine += p.children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        return list({p.pid: p for p in mine if p.pid != os.getpid()}.values())

    def stop(self) -> None:
        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:  # gcs_server and raylets can ignore SIGTERM while busy
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        shutil.rmtree(self.temp, ignore_errors=True)  # sockets, session logs, the call log


@pytest.fixture(scope="module")
def cluster(request):
    c = Cluster()
    request.addfinalizer(c.stop)  # before starting: a half-started cluster is stopped too
    c.start()
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    request.addfinalizer(ray.shutdown)  # finalizers run last-in first-out: disconnect, then stop
    def both_alive():
        alive = [n for n in ray.nodes() if n["Alive"]]
        return alive if len(alive) == 2 else None

    nodes = poll(both_alive, "both nodes alive")
    c.nodes = {("a" if "shard_a" in n["Resources"] else "b"): n["NodeID"] for n in nodes}
    assert set(c.nodes) == {"a", "b"}
    return c


# --- an in-process model of a kind registered here (runs in the actors, like an hf model) --------------
class ScriptedSpec(ModelSpecBase):
    backend: Literal["ray_scripted"] = "ray_scripted"


class Scripted:
    """Answers from the conversation alone; logs the node of every chunk it generates (the cluster's
    environment names the file); a conversation containing 'CRASH' kills its process."""

    chunk_size = 3

    def __init__(self, spec):
        self.name = spec.name

    def fingerprint(self) -> str:
        return f"scripted-{self.name}"

    def generate(self, conversations, params):
        if any("CRASH" in c[-1].content for c in conversations):
            os._exit(1)  # a dying worker, as a segfaulting model would be
        trigger = Path(os.environ.get(CALL_LOG, "/nonexistent")).with_name(f"kill-node-{os.environ.get(NODE)}")
        if trigger.exists():  # the fault test asks this node to die now, with this chunk in flight
            trigger.unlink()
            die_with_my_node()
        log = os.environ.get(CALL_LOG)
        if log:
            with open(log, "a") as out:
                out.write(f"{self.name} {ray.get_runtime_context().get_node_id()} {len(conversations)}\n")
        return [Completion(text=f"{self.name} says {len(c)}: {c[-1].content[::-1]}", completion_tokens=3)
                for c in conversations]

    def close(self) -> None:
        pass


def die_with_my_node() -> None:
    """What a node's death looks like to Ray: its raylet and every worker under it gone at once."""
    raylet = psutil.Process().parent()
    for p in [raylet, *raylet.children(recursive=True)]:
        if p.pid != os.getpid():
            p.kill()
    os.kill(os.getpid(), signal.SIGKILL)


def scripted_factory(spec):
    return Scripted(spec)


@pytest.fixture(scope="module")
def scripted_kind():
    register_backend("ray_scripted", scripted_factory, spec=ScriptedSpec)
    yield
    unregister_backend("ray_scripted")


# --- suites -------------------------------------------------------------------------------------------
QUESTIONS = [[f"Question {i}?", f"And then {i}?"] for i in range(6)]


def write_suite(folder: Path, url: str, *, executor: str = "", in_process: bool = True,
                questions=QUESTIONS, key_env: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": t}) + "\n"
                                            for i, t in enumerate(questions)))
    api_model = "{{name: {0}, backend: openai, model: {0}, base_url: '{1}', max_concurrency: 4, max_retries: 0}}"
    m1 = api_model.format("m1", url)
    if key_env:  # the key is not part of any fingerprint: the store is the same with or without it
        m1 = m1[:-1] + f", api_key_env: {key_env}}}"
    lines = ["name: rayed", "models:", f"  - {m1}", f"  - {api_model.format('m2', url)}"]
    if in_process:
        lines.append("  - {name: local1, backend: ray_scripted, model: scripted}")
    lines += ["sets:", "  - {name: qs, path: q.jsonl}", "judges:", "  - name: j",
              f"    model: {api_model.format('judge', url)}"]
    if executor:
        lines.append(f"executor: {executor}")
    (folder / "suite.yaml").write_text("\n".join(lines) + "\n")
    return folder / "suite.yaml"


def on_cluster(c: Cluster, extra: str = "") -> str:
    return f"{{kind: ray, address: '{c.address}'{extra}}}"


def table(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


ANSWERS = "SELECT answer_id, model_fingerprint, turn, text FROM answers"
JUDGMENTS = ("SELECT judgment_id, call_id, judge_fingerprint, model_a, model_b, answer_a, answer_b, dimension,"
             " verdict, status FROM judgments")


def actors_named(prefix: str, skip: set[str] = frozenset()) -> dict[str, list[dict]]:
    """Ray's own record (the GCS actor table) of the harness's actors: backend -> [records], leaving
    out the actor ids in `skip` (earlier runs')."""
    found: dict[str, list[dict]] = {}
    for actor_id, record in ray._private.state.actors().items():
        name = record.get("Name") or ""
        if name.startswith(prefix) and actor_id not in skip:
            found.setdefault(name.rsplit(" #", 1)[0], []).append(record)
    return found


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, stub, scripted_kind):
    """The reference: the same suite in this process (executor local)."""
    folder = tmp_path_factory.mktemp("local")
    before = stub.served_calls()
    report = api.run(write_suite(folder, stub.base_url), folder / "h.duckdb", stages=("generate", "judge"))
    assert report.complete
    return {"db": folder / "h.duckdb", "calls": stub.served_calls() - before}


# --- tests ----------------------------------------------------------------------------------------------
def test_a_suite_runs_on_both_nodes_and_stores_what_a_local_run_stores(cluster, stub, local_run, tmp_path,
                                                                        monkeypatch):
    # set only here, after the cluster started without it: the actors must get it from this process
    monkeypatch.setenv("HARNESS_TEST_RAY_KEY", "sk-test-forwarded")
    suite = write_suite(tmp_path, stub.base_url, executor=on_cluster(cluster), key_env="HARNESS_TEST_RAY_KEY")
    before, earlier = stub.served_calls(), set(ray._private.state.actors())
    reads = []
    monkeypatch.setattr(runner, "load_questions", lambda *a, **kw: reads.append(a) or load_questions(*a, **kw))
    report = api.run(suite, tmp_path / "h.duckdb", stages=("generate", "judge"))
    assert report.complete
    assert len(reads) == 1, "the suite's data files were read more than once (one preflight per run)"
    assert stub.served_calls() - before == local_run["calls"], "the Ray run made a different number of calls"
    assert sorted(table(tmp_path / "h.duckdb", ANSWERS)) == sorted(table(local_run["db"], ANSWERS))
    judged = sorted(table(tmp_path / "h.duckdb", JUDGMENTS))
    assert judged == sorted(table(local_run["db"], JUDGMENTS)) and len(judged) == 3 * 6 * 2 * 2 * 3  # pairs x q x turns x orders x dims

    # Ray's records: every backend had an actor on each node, and the in-process model generated on both
    records = actors_named("harness ", earlier)
    for what in ("model 'm1'", "model 'm2'", "model 'local1'", "judge 'j'"):
        placed = {r["Address"]["NodeID"] for name, rs in records.items() if name.startswith(f"harness {what}") for r in rs}
        assert placed == set(cluster.nodes.values()), f"{what}: actors on {placed}"
    assert all(r["State"] == "DEAD" for rs in records.values() for r in rs), "actors outlived the run"
    chunks = [c for c in cluster.calls() if c[0] == "local1"]
    assert {node for _, node, _ in chunks} == set(cluster.nodes.values())
    assert sum(int(n) for *_, n in chunks) == 12  # 6 questions x 2 turns, each generated once

    again = stub.served_calls()
    rerun = api.run(suite, tmp_path / "h.duckdb", stages=("generate", "judge"))
    assert stub.served_calls() == again, "a rerun of a finished suite called the endpoint"
    assert rerun.generation.totals()["generated"] == 0 and rerun.judging.totals()["judge_cached"] == len(judged) // 3


def test_resources_choose_the_nodes(cluster, stub, tmp_path, scripted_kind):
    from harness.executors import ray_backends
    from harness.config import load_suite

    suite, _ = load_suite(write_suite(tmp_path, stub.base_url, executor=on_cluster(cluster, ", resources: {shard_b: 0.01}")))
    backends, judges = ray_backends(suite, models=["local1"], judges=[])
    try:
        assert set(backends) == {"local1"} and not judges
        assert backends["local1"].nodes() == [cluster.nodes["b"]]  # only node 2 has shard_b
    finally:
        backends["local1"].close()
    bad = suite.model_copy(update={"executor": suite.executor.model_copy(update={"resources": {"GPU": 1}})})
    with pytest.raises(HarnessError, match=r"no alive node of the Ray cluster has .*GPU=1"):
        ray_backends(bad, models=["local1"], judges=[])


def test_a_call_that_keeps_killing_its_actor_is_a_failure_row_not_an_endless_retry(cluster, stub, tmp_path,
                                                                                      scripted_kind):
    questions = [["Fine?"], ["CRASH now?"], ["Fine again?"], ["Also fine?"]]
    suite = write_suite(tmp_path, stub.base_url, questions=questions,
                        executor=on_cluster(cluster, ", max_restarts: 1, max_task_retries: 1"))
    report = api.run(suite, tmp_path / "h.duckdb", stages=("generate",))
    local1 = next(m for m in report.generation.models if m.name == "local1")
    assert not report.complete and local1.failed >= 1 and local1.generated + local1.failed == 4
    failures = table(tmp_path / "h.duckdb", "SELECT question_id, error FROM generation_failures")
    assert ("q1" in {q for q, _ in failures}) and all(e.startswith("ray: ") for _, e in failures)
    stored = {q for (q,) in table(tmp_path / "h.duckdb", "SELECT question_id FROM answers WHERE model_fingerprint ="
                                                          " 'scripted-local1'")}
    assert "q1" not in stored and len(stored) == local1.generated


def test_an_hf_model_in_the_actors_answers_as_it_does_in_this_process(cluster, tiny_model_path, tmp_path):
    """transformers in each node's actor (torch on its CPU): the same greedy answers, the same keys."""
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}?"]}) + "\n"
                                              for i in range(6)))
    stores = {}
    for name, executor in (("local", "{kind: local}"), ("ray", on_cluster(cluster))):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: hfr\nmodels:\n  - {{name: tiny, backend: hf, model: '{tiny_model_path}', threads: 1,"
            f" batch_size: 3}}\nsets:\n  - {{name: qs, path: q.jsonl}}\n"
            f"generation: {{default: {{max_new_tokens: 8}}}}\nexecutor: {executor}\n")
        report = api.run(tmp_path / f"{name}.yaml", tmp_path / f"{name}.duckdb", stages=("generate",))
        assert report.complete and report.generation.totals()["generated"] == 6
        stores[name] = sorted(table(tmp_path / f"{name}.duckdb", ANSWERS))
    assert stores["ray"] == stores["local"]


CLOSED_ROWS = ("SELECT result_key, model, model_fingerprint, task, task_hash, n_samples, output_type, lm_eval_backend"
               " FROM closed_tasks")
CLOSED_VALUES = ("SELECT result_key, metric, filter, value, stderr FROM closed_metrics UNION ALL"
                 " SELECT result_key, 'doc' || doc_id, filter, map_extract(metrics, 'acc')[1], NULL FROM closed_samples")


def test_closed_set_tasks_run_in_actors_on_both_nodes_and_store_what_a_local_run_stores(cluster, tiny_model_path,
                                                                                          shared_data, tmp_path):
    """lm-eval in the actors (one per model, placed on both nodes), rows written here: the same result
    keys, metrics and per-document values as a local run; a rerun runs nothing."""
    data = shared_data / "closed_set" / "mmlu_test_subset.jsonl"
    stores, earlier = {}, set(ray._private.state.actors())
    for name, executor in (("local", "{kind: local}"), ("ray", on_cluster(cluster))):
        # one weights folder: the batch size (in the result key's settings) keeps their results apart
        models = "".join(f"  - {{name: {m}, backend: hf, model: '{tiny_model_path}', threads: 1, batch_size: {b}}}\n"
                         for m, b in (("tiny_a", 4), ("tiny_b", 3)))
        (tmp_path / f"{name}.yaml").write_text(
            f"name: closed-ray\nmodels:\n{models}closed_set:\n  - {{task: mmlu_subset, template: multiple_choice,"
            f" data: '{data}', limit: 6}}\nexecutor: {executor}\n")
        report = api.run(tmp_path / f"{name}.yaml", tmp_path / f"{name}.duckdb", stages=("closed",))
        assert sorted((r.model, r.cached) for r in report.closed.results) == [("tiny_a", False), ("tiny_b", False)]
        stores[name] = [sorted(table(tmp_path / f"{name}.duckdb", sql)) for sql in (CLOSED_ROWS, CLOSED_VALUES)]
    assert stores["ray"] == stores["local"] and len(stores["ray"][0]) == 2 and len(stores["ray"][1]) > 12
    records = actors_named("harness closed ", earlier)
    placed = {r["Address"]["NodeID"] for rs in records.values() for r in rs}
    assert len(records) == 2 and placed == set(cluster.nodes.values()), records.keys()
    assert all(r["State"] == "DEAD" for rs in records.values() for r in rs), "closed-set actors outlived the run"
    again = api.run_closed(tmp_path / "ray.yaml", tmp_path / "ray.duckdb")  # `harness closed run`: all cached
    assert [r.cached for r in again.closed.results] == [True, True]
    assert len(actors_named("harness closed ", earlier)) == 2, "a cached rerun started closed-set actors"


def test_missing_ray_and_an_unreachable_cluster_are_one_line_errors(tmp_path, stub, monkeypatch):
    suite = write_suite(tmp_path, stub.base_url, in_process=False, executor="{kind: ray}")
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is missing
        with pytest.raises(MissingExtraError) as missing:
            api.run(suite, tmp_path / "h.duckdb")
    assert str(missing.value).startswith("ray is not installed: pip install 'alignment-harness[ray]'")

    closed = free_port()  # nothing listens there; a fresh process, since this one is connected to the cluster
    code = ("import sys; from harness.cli import main; sys.argv = ['harness'] + sys.argv[1:]; main()")
    out = subprocess.run([sys.executable, "-c", code, "run", str(suite), "--db", str(tmp_path / "c.duckdb"),
                          "--ray-address", f"127.0.0.1:{closed}"], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert f"no cluster at 127.0.0.1:{closed}" in lines[0] and "ray start --head" in lines[0]
    assert not (tmp_path / "c.duckdb").exists(), "the store was touched before the cluster was reached"


RAY_MODULES = {"harness.executors.ray_executor", "harness.executors.ray_replicas", "harness.executors.ray_closed"}


def test_only_the_ray_executor_imports_ray():
    """Ray is an optional extra: the executor's ray_* modules import it, the rest of
    harness.executors only inside functions, nothing else at all (read with ast: tests/test_imports.py)."""
    from tests.test_imports import all_imports, under

    found = [f"{i.path}:{i.line}" for i in all_imports() if under(i.imported, "ray")
             and i.importer not in RAY_MODULES and not (i.lazy and under(i.importer, "harness.executors"))]
    assert not found
    assert {i.importer for i in all_imports() if under(i.imported, "ray") and not i.lazy} == RAY_MODULES


def test_importing_the_harness_and_its_help_do_not_import_ray():
    code = ("import sys, harness, harness.cli, harness.cli.run, harness.executors, harness.api\n"
            "from typer.testing import CliRunner\n"
            "from harness.cli import app\n"
            "assert CliRunner().invoke(app, ['run', '--help']).exit_code == 0\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_a_node_killed_mid_run_loses_nothing_and_duplicates_nothing(cluster, stub, local_run, tmp_path):
    """Last in this module: node 2 stays dead. It dies (raylet and workers SIGKILLed at once) while
    it is generating the in-process model's chunk; that chunk and every later call go to the head
    node, where the run finishes."""
    trigger = cluster.call_log.with_name("kill-node-b")
    trigger.touch()
    logged = len(cluster.calls())
    report = api.run(write_suite(tmp_path, stub.base_url, executor=on_cluster(cluster)), tmp_path / "h.duckdb",
                     stages=("generate", "judge"))
    assert not trigger.exists(), "node 2 never ran the chunk that kills it"
    assert report.complete, report.failures()
    db = tmp_path / "h.duckdb"
    for what, key in (("answers", "answer_id"), ("judgments", "judgment_id")):
        total, distinct = table(db, f"SELECT count(*), count(DISTINCT {key}) FROM {what}")[0]
        assert total == distinct, f"{what}: {total - distinct} duplicated rows"
        assert {k for (k,) in table(db, f"SELECT {key} FROM {what}")} == \
            {k for (k,) in table(local_run["db"], f"SELECT {key} FROM {what}")}
    # the head node generated every conversation of the in-process model, node 2's chunk included
    chunks = cluster.calls()[logged:]
    assert {node for _, node, _ in chunks} == {cluster.nodes["a"]}
    assert sum(int(n) for name, _, n in chunks if name == "local1") == 12
    # and Ray's own record says node 2 died
    poll(lambda: not any(n["Alive"] and n["NodeID"] == cluster.nodes["b"] for n in ray.nodes()), "node 2 marked dead")
