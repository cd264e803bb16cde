"""The service hands jobs to the Ray executor: the real `harness serve` (uvicorn + worker processes)
and the real two-node cluster of tests/test_ray.py, calls to tests/stub_server.py.

- A job whose suite says `executor: {kind: ray}` runs on the cluster the workers' operator gave
  them ($RAY_ADDRESS in the service's environment): every model's and the judge's actors on both
  nodes (Ray's GCS actor table), the job finished, the store what a local run stores.
- A submitted suite may not name the cluster (executor.address): refused with one line, nothing queued.
- `harness serve --executor ray --ray-address ADDR` (its workers' override) runs a plain suite's job there.
"""

from __future__ import annotations

import pytest

from tests.stub_server import StubServer
from tests.test_ray import JUDGMENTS, actors_named, cluster, table  # noqa: F401
from tests.test_service import Service, queue_rows, suite_text, token_for, wait_job, write_questions

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'alignment-harness[ray]'")

from harness import api  # noqa: E402

pytestmark = pytest.mark.slow
BACKENDS = ("model 'm1'", "model 'm2'", "model 'm3'", "judge 'j'")
ANSWER_KEYS = "SELECT answer_id, model_fingerprint, text FROM answers"


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


def placed_on(earlier: set[str]) -> dict[str, set[str]]:
    """backend -> the nodes its actors ran on, for the actors started since `earlier`."""
    return {name.removeprefix("harness "): {r["Address"]["NodeID"] for r in records}
            for name, records in actors_named("harness ", earlier).items()}


def local_store(tmp_path, stub, data) -> tuple:
    """(answers, judgments) of the same suite run in this process (executor local)."""
    (data / "local.yaml").write_text(suite_text(stub.base_url))
    assert api.run(data / "local.yaml", tmp_path / "local.duckdb", stages=("generate", "judge")).complete
    return sorted(table(tmp_path / "local.duckdb", ANSWER_KEYS)), sorted(table(tmp_path / "local.duckdb", JUDGMENTS))


def test_a_ray_suite_submitted_to_the_service_runs_on_both_nodes(cluster, stub, tmp_path):
    data = tmp_path / "data"
    write_questions(data, 5)
    db = tmp_path / "svc.duckdb"
    token = token_for(db)
    # the operator's choice of cluster: the workers inherit it ($RAY_ADDRESS is Ray's own variable)
    service = Service(db, tmp_path / "serve.log", "--workers", "1", "--data-root", str(data),
                      env={"RAY_ADDRESS": cluster.address})
    earlier = set(ray._private.state.actors())
    try:
        with service.client(token) as client:
            named = client.post("/v1/jobs", json={"suite": suite_text(stub.base_url) + "executor: {kind: ray,"
                                                  f" address: '{cluster.address}'}}\n", "filename": "named.yaml"})
            assert named.status_code == 422, named.text  # a ConfigError, as for any bad suite field
            assert named.json()["detail"].startswith("named.yaml: executor.address: the service's workers join")
            assert queue_rows(db) == ([], [])  # refused before anything was queued

            r = client.post("/v1/jobs", json={"suite": suite_text(stub.base_url) + "executor: {kind: ray}\n",
                                              "filename": "ray.yaml", "stages": ["generate", "judge"]})
            assert r.status_code == 201, r.text
            job = wait_job(client, r.json()["id"], timeout=300)
    finally:
        service.stop()
    finished_on_every_node(job, earlier, cluster)
    answers, judgments = local_store(tmp_path, stub, data)
    assert sorted(table(db, ANSWER_KEYS)) == answers and sorted(table(db, JUDGMENTS)) == judgments


def finished_on_every_node(job: dict, earlier: set, cluster) -> None:
    """The job finished complete, and every model's and judge's actors (started after `earlier`)
    ran on both nodes, by Ray's own records."""
    assert job["state"] == "finished" and job["result"]["complete"] is True, job
    placed = placed_on(earlier)
    for what in BACKENDS:
        assert placed.get(what) == set(cluster.nodes.values()), f"{what}: {placed}"


def test_harness_serve_with_the_ray_executor_runs_a_plain_suite_on_the_cluster(cluster, stub, tmp_path):
    """`harness serve --executor ray --ray-address ADDR`: its workers (`harness worker` with the same
    flags) run a suite that names no executor on the cluster."""
    data = tmp_path / "data"
    write_questions(data, 3)
    db = tmp_path / "w.duckdb"
    token = token_for(db)
    service = Service(db, tmp_path / "serve.log", "--workers", "1", "--data-root", str(data),
                      "--executor", "ray", "--ray-address", cluster.address)
    earlier = set(ray._private.state.actors())
    try:
        with service.client(token) as client:
            r = client.post("/v1/jobs", json={"suite": suite_text(stub.base_url, name="plain"), "filename": "p.yaml",
                                              "stages": ["generate", "judge"]})
            assert r.status_code == 201, r.text
            job = wait_job(client, r.json()["id"], timeout=300)
    finally:
        service.stop()
    finished_on_every_node(job, earlier, cluster)


def test_a_job_on_the_cluster_holds_no_resource_of_the_service_host(tiny_model_path):
    """resources() keeps two jobs on one host from loading the same local model at once; on Ray the
    models load on the cluster's nodes, placed by Ray's own resources."""
    from harness.config import Suite
    from harness.service.submission import resources

    spec = {"name": "local", "backend": "hf", "model": str(tiny_model_path)}
    here = Suite(name="r", models=[spec], sets=[{"name": "quickstart"}])
    assert resources(here, {}) == [f"local-model:{tiny_model_path}"]
    there = here.model_copy(update={"executor": here.executor.model_copy(update={"kind": "ray"})})
    assert resources(there, {}) == []
