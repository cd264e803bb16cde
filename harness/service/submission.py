"""A submitted job, checked: the request model, the suite it names, its paths and its resources.

Everything a job needs is decided here, before anything is stored: a bad suite, a path outside the
data roots or a missing API-key variable is refused with the CLI's one line, and the queue never
sees it. The worker rebuilds the job from its row with `job_suite` and checks the paths again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.config import BUILTIN_SUITES, Suite
from harness.errors import ConfigError, HarnessError
from harness.service.security import Settings, check_suite_paths, confine, parse_suite

KINDS = ("run", "closed", "ratings", "judge-eval", "train")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RECIPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class SubmitRequest(BaseModel):
    """POST /v1/jobs. Give the suite as `suite` (YAML text, or the suite as a JSON object) or as
    `suite_name` (a built-in suite, or one the store holds from an earlier run)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["run", "closed", "ratings", "judge-eval", "train"] = "run"
    """run: generate, judge, rate, closed set; closed: only the closed set; ratings: recompute the
    board; judge-eval: judges against human labels; train: sft/dpo, optionally evaluated after."""
    suite: str | dict | None = None
    """The suite: YAML text or a JSON object."""
    suite_name: str | None = Field(None, max_length=200)
    """A built-in suite (quickstart) or a suite name stored by an earlier run."""
    filename: str = Field("suite", max_length=500)
    """What error messages call the suite (the client sends the file name it read)."""
    priority: int = Field(0, ge=-1000, le=1000)
    """Higher runs first."""
    stages: list[str] | None = None
    """run: a subset of generate, judge, rate, closed (default: all)."""
    force: bool = False
    """closed: rerun tasks already stored."""
    data: str | None = Field(None, max_length=4096)
    """judge-eval: the human-label data folder (under a data root)."""
    sample: int = Field(40, ge=1, le=10000)
    """judge-eval: pairs the suite's first judge is run on."""
    method: Literal["sft", "dpo"] | None = None
    """train: the method."""
    recipe: str | None = Field(None, max_length=200)
    """train: a built-in recipe name (see trainers/recipes)."""
    then_eval: bool = False
    """train: evaluate the trained model beside its parent on the suite."""


def build_job(req: SubmitRequest, settings: Settings, store, submitter: str) -> dict:
    """The keyword arguments of harness.store.jobs.submit; HarnessError for anything wrong."""
    suite, builtin = _suite_of(req, settings, store)
    source = req.suite_name if builtin else req.filename
    if suite is not None:
        _no_ray_address(suite, source)
    params: dict = {"source": source, "builtin": builtin}
    if req.kind == "run":
        params["stages"] = _stages(req, source)
    elif req.kind == "closed":
        if not suite.closed_set:
            raise HarnessError(f"{source}: the suite has no closed_set tasks: add some")
        params["force"] = req.force
    elif req.kind == "ratings":
        if not suite.judges:
            raise HarnessError(f"{source}: has no judges: add a 'judges:' entry")
    elif req.kind == "judge-eval":
        params.update(_judge_eval_params(req, settings))
    elif req.kind == "train":
        params.update(_train_params(req))
    if req.kind == "run" and {"generate", "judge"} & set(params["stages"]):
        from harness.api import preflight

        preflight(suite, base_dir(params, settings.data_roots), source)  # data files, key variables
    return {"kind": req.kind, "suite_name": suite.name if suite else None,
            "suite_json": suite.model_dump_json() if suite else None, "params": params,
            "data_roots": [str(r) for r in settings.data_roots], "resources": resources(suite, params),
            "submitter": submitter, "priority": req.priority}


def _suite_of(req: SubmitRequest, settings: Settings, store) -> tuple[Suite | None, bool]:
    """(suite, whether it is a built-in one: shipped files are trusted, every other path is confined)."""
    if req.suite is not None and req.suite_name is not None:
        raise ConfigError("give either `suite` (the text) or `suite_name`, not both")
    if req.suite is not None:
        suite = parse_suite(req.suite, req.filename, settings.max_suite_bytes)
        check_suite_paths(suite, req.filename, settings.data_roots)
        return suite, False
    if req.suite_name is not None:
        return _named_suite(req.suite_name, settings, store)
    if req.kind == "judge-eval" or (req.kind == "train" and not req.then_eval):
        return None, False
    raise ConfigError("suite: missing: send the suite's YAML as `suite`, or a built-in or stored suite as `suite_name`")


def _named_suite(name: str, settings: Settings, store) -> tuple[Suite, bool]:
    from harness.config import load_suite
    from harness.views import suite_config

    if _NAME.match(name) and (BUILTIN_SUITES / f"{name}.yaml").is_file():
        return load_suite(BUILTIN_SUITES / f"{name}.yaml")[0], True
    stored = suite_config(store, name)
    if stored is None:
        known = ", ".join(sorted(p.stem for p in BUILTIN_SUITES.glob("*.yaml")))
        raise ConfigError(f"suite '{name}': neither built in ({known}) nor stored by an earlier run: send its YAML")
    check_suite_paths(stored, f"suite '{name}'", settings.data_roots)
    return stored, False


def _stages(req: SubmitRequest, source: str) -> list[str]:
    from harness.api import STAGES

    stages = req.stages or list(STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise HarnessError(f"stages: unknown {', '.join(unknown)}: use some of {', '.join(STAGES)}")
    return stages


def _judge_eval_params(req: SubmitRequest, settings: Settings) -> dict:
    if not req.data:
        raise ConfigError("data: missing: give the human-label data folder (under a --data-root of the server)")
    confine("judge-eval", [("data", req.data)], settings.data_roots)
    return {"data": req.data, "sample": req.sample}


def _train_params(req: SubmitRequest) -> dict:
    if req.method is None or req.recipe is None:
        raise ConfigError("train: give `method` (sft or dpo) and `recipe` (a built-in recipe name)")
    # A recipe names its data, base model and output folder: over HTTP only the shipped ones run.
    # A bare name (no dot, no slash) that is not a file here is looked up among the built-in
    # recipes by harness.api.train; an unknown one fails the job with the trainers' own line.
    if not (_RECIPE.match(req.recipe) and not Path(req.recipe).exists()):
        raise ConfigError(f"recipe: '{req.recipe}': the service runs built-in recipes only: give one by name"
                          " (e.g. gemma3-270m-sft)")
    return {"method": req.method, "recipe": req.recipe, "then_eval": req.then_eval}


def _no_ray_address(suite: Suite, source: str) -> None:
    """A submitter does not choose the Ray cluster: joining one is trusting it with the job's specs
    and the API keys its actors get, so the operator decides (the worker's --ray-address, else
    $RAY_ADDRESS, else the cluster `ray start` began on the worker's machine)."""
    if suite.executor.kind == "ray" and suite.executor.address:
        raise ConfigError(f"{source}: executor.address: the service's workers join the Ray cluster their operator"
                          " set up (harness worker --ray-address, or $RAY_ADDRESS): leave executor.address out")


def base_dir(params: dict, roots: list[str] | list[Path]) -> Path:
    """Where the job's relative paths resolve: the built-in suites' folder, else the first data root."""
    if params.get("builtin"):
        return BUILTIN_SUITES
    return Path(roots[0]) if roots else BUILTIN_SUITES


def resources(suite: Suite | None, params: dict) -> list[str]:
    """What two jobs on one host must not hold at once: a local model's weights (loaded in process)
    and the GPU a vLLM server or a training run takes. Endpoint models hold nothing, and neither
    does a suite whose calls run on a Ray cluster (Ray places them by its own resources)."""
    held: set[str] = set()
    on_host = suite is not None and suite.executor.kind != "ray"
    specs = [*suite.models, *(spec for j in suite.judges for _, spec in j.model_specs())] if on_host else []
    for spec in specs:
        if spec.backend == "hf":
            held.add(f"local-model:{spec.model}")
        elif spec.backend == "vllm":
            held |= {"gpu", f"local-model:{spec.model}"}
    if params.get("method"):
        held.add("gpu")
    return sorted(held)


def job_suite(row: dict) -> Suite | None:
    """The worker's view of a claimed job: its suite, its paths checked against its data roots again
    (a file swapped for a symlink since submission is refused now)."""
    if row["suite_json"] is None:
        return None
    import json

    suite = Suite.model_validate_json(row["suite_json"])
    params = json.loads(row["params_json"])
    if not params.get("builtin"):
        check_suite_paths(suite, params.get("source") or "suite", [Path(r) for r in row["data_roots"]])
    return suite
