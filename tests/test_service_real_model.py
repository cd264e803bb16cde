"""Jobs on a real catalog model (SmolLM2-135M, in process) through the service, with two workers:
two jobs that load the same local model never run at once, and the second reuses the first's
answers from the store."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.test_service import Service, token_for, wait_job

pytestmark = pytest.mark.slow


def suite(name: str, limit: int) -> str:
    return (f"name: {name}\nmodels:\n  - {{name: smollm2, backend: hf, model: smollm2-135m-instruct, batch_size: 2,"
            f" threads: 1}}\nsets:\n  - {{name: quickstart, limit: {limit}}}\ngeneration:\n"
            "  default: {max_new_tokens: 8}\n")


def test_two_jobs_on_one_local_model_take_turns_and_share_the_cache(tmp_path, smollm2_path):
    db = tmp_path / "hf.duckdb"
    token = token_for(db)
    service = Service(db, tmp_path / "serve.log", "--workers", "2")
    try:
        with service.client(token) as client:
            ids = [client.post("/v1/jobs", json={"suite": suite(f"hf{n}", n), "filename": f"hf{n}.yaml"}).json()["id"]
                   for n in (2, 3)]
            first, second = (wait_job(client, job_id, 300) for job_id in ids)
    finally:
        service.stop()
    assert first["state"] == second["state"] == "finished", (first, second)
    when = lambda job, key: datetime.fromisoformat(job[key])  # noqa: E731
    # Both hold local-model:smollm2-135m-instruct: the second waited although a worker was free.
    assert when(second, "started_at") >= when(first, "finished_at")
    assert first["calls"]["made"] > 0 and first["calls"]["cached"] == 0
    assert second["calls"]["cached"] == first["calls"]["made"]  # the first two questions' answers, reused
    assert second["calls"]["made"] > 0
