"""Suite configuration: pydantic models loaded from YAML.

Every model forbids unknown fields, so a typo is an error that names the file and the dotted field,
never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PlainValidator, SerializeAsAny, ValidationError, field_validator,
                      model_validator)

from harness.errors import ConfigError
from harness.models.base import GenerationParams
from harness.models.registry import get_entry, kinds_text, kinds_where, validate_model_spec
from harness.models.specs import (FIELD_RULE, HFModelSpec, ModelSpecBase, OpenAIModelSpec,  # noqa: F401
                                  ReferenceModelSpec, VLLMModelSpec, rule_error)
from judges.base import DEFAULT_DIMENSIONS, DIMENSION_DEFINITIONS, dimension_names_problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The spec classes live with the backends (harness/models/specs.py) and are re-exported here, so
# `from harness.config import HFModelSpec` keeps working.
_ModelSpecBase = ModelSpecBase

# A suite's model: the spec class of whichever registered kind `backend` names (built in, registered
# at runtime or an installed plugin), chosen at validation time from the registry. Serialized as
# its own class, not as the common base, so stored suite JSON keeps every field.
ModelSpec = Annotated[ModelSpecBase, PlainValidator(validate_model_spec), SerializeAsAny()]


class SetSpec(_Strict):
    """One open-set benchmark in a suite."""

    name: str
    """Built-in set name (see `harness sets`) or the name to store a file-based set under."""
    path: str | None = None
    """Question file (JSONL); relative paths resolve against the suite file's folder."""
    format: Literal["jsonl", "mt_bench", "alpaca_eval"] = "jsonl"
    """jsonl: {id, category, turns, references?}; mt_bench: question.jsonl; alpaca_eval: {instruction}."""
    references: str | None = None
    """MT-Bench-style reference answer file (question_id, choices[0].turns)."""
    limit: int | None = Field(None, ge=1)
    """Use only the first N questions."""
    categories: list[str] | None = None
    """Keep only these categories."""


class ClosedTaskSpec(_Strict):
    """One closed-set benchmark, run through lm-evaluation-harness against every model of the suite.

    Three ways to name it: an lm-eval registry task (`task` alone, needs its data to be reachable),
    a folder of lm-eval task YAMLs (`include`), or one of the harness's templates over your own
    JSONL file (`template` + `data`).
    """

    task: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """lm-eval task name; with `template`, the name the generated task gets."""
    template: Literal["multiple_choice", "cloze", "numeric"] | None = None
    """multiple_choice: question + lettered choices, the letter scored by loglikelihood (MMLU's
    format); cloze: each choice's own text scored (ARC's format; small models show signal here);
    numeric: free-form answer, last number exact-matched (GSM8K's format)."""
    data: str | None = None
    """JSONL file for `template`; relative paths resolve against the suite file's folder;
    `builtin:NAME` is a file shipped with the harness (builtin:quickstart_knowledge)."""
    fields: dict[str, str] = {}
    """Template field -> your data's field, e.g. {answer: final_answer}. Template fields:
    question, choices, answer (multiple_choice, cloze); question, answer (numeric)."""
    include: str | None = None
    """Folder of lm-eval task YAMLs that defines `task` (relative to the suite file's folder)."""
    num_fewshot: int | None = Field(None, ge=0)
    """Few-shot examples per prompt (default: the task's own setting, else 0)."""
    limit: int | None = Field(None, ge=1)
    """Evaluate only the first N documents."""
    batch_size: int | None = Field(None, ge=1)
    """Batch size for lm-eval (default: the model spec's batch_size, or 1)."""
    apply_chat_template: bool = False
    """Wrap prompts in the model's chat template (lm-eval's --apply_chat_template)."""
    max_gen_toks: int = Field(256, ge=1)
    """Generation budget of the numeric template (generate_until tasks)."""
    models: list[str] | None = None
    """Run only for these suite models (default: all)."""

    @model_validator(mode="after")
    def _one_source(self) -> "ClosedTaskSpec":
        if self.template and not self.data:
            raise ValueError("a template needs `data`: the JSONL file to fill it with")
        if self.data and not self.template:
            raise ValueError("`data` is used only with `template` (multiple_choice or numeric)")
        if self.template and self.include:
            raise ValueError("use either `template` + `data` or `include`, not both")
        return self


class GenerationConfig(_Strict):
    """Generation parameters: one default, overridable per question category."""

    default: GenerationParams = GenerationParams()
    """Used for every category without an override."""
    per_category: dict[str, GenerationParams] = {}
    """Category name -> parameters (e.g. longer answers for coding)."""

    def for_category(self, category: str) -> GenerationParams:
        return self.per_category.get(category, self.default)


# Judge styles and the fields only some of them use (a field set for another style is an error).
SCORING_STYLES = ("reward", "dpo_reward")  # score each answer; verdict by score difference
ONE_VERDICT_STYLES = ("fastchat", *SCORING_STYLES)  # one 'overall' verdict per call
STYLE_FIELDS = {"prompt_file": ("fastchat",), "prompt_name": ("fastchat",), "tie_margin": SCORING_STYLES,
                "beta": ("dpo_reward",), "reference": ("dpo_reward",), "members": ("panel",),
                "combine": ("panel",), "weights": ("panel",)}


class JudgeSpec(_Strict):
    """A judge: a model (any backend) plus a prompt style and what it judges; or a panel of judges."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    """Name the judge's verdicts are stored under."""
    model: ModelSpec | None = None
    """The judge's own model: GPT-4 via openai, a vLLM-served model, or an in-process one. Required,
    except for style: panel (its members have models)."""
    style: Literal["prompt", "pandalm", "fastchat", "reward", "dpo_reward", "panel"] = "prompt"
    """prompt: this team's prompts with tagged verdict lines; pandalm: PandaLM's layout, '1/2/Tie' first
    line; fastchat: FastChat's MT-Bench templates read from `prompt_file` ([[A]]/[[B]]/[[C]], [[rating]]);
    reward: a reward model (hf, sequence classification) scores each answer; dpo_reward: the DPO implicit
    reward beta*(log pi - log pi_ref) of `model` against `reference`; panel: `members` vote."""
    kind: Literal["pairwise", "single"] = "pairwise"
    """pairwise A/B/tie (judged in both orders) or single 1-10 grading."""
    dimensions: list[str] = list(DEFAULT_DIMENSIONS)
    """Pairwise dimensions, each with its own verdict; names are lowercase letters, digits and _,
    starting with a letter (judges.base.DIMENSION_NAME, the pattern the verdict parser reads).
    fastchat, reward and dpo_reward give one verdict, `overall`; a panel defaults to the dimensions
    all its members judge."""
    dimension_mode: Literal["joint", "per_dimension"] = "joint"
    """joint: one call returns every dimension; per_dimension: one call each."""
    chain_of_thought: bool = True
    """Ask for a short explanation before the verdict lines."""
    max_new_tokens: int = Field(512, ge=8)
    """Judge output budget per call."""
    max_parse_retries: int = Field(2, ge=0)
    """Fresh samples (temperature 0.7) drawn for an unparseable output before storing it as unparsed."""
    repeats: int = Field(1, ge=1)
    """Single grading: independent grades per answer (samples after the first use temperature 0.7)."""
    decode: Literal["generate", "choice"] = "generate"
    """generate: parse free text; choice (pandalm style, hf backend): pick 1 / 2 / Tie by likelihood."""
    prompt_file: str | None = None
    """style: fastchat: FastChat's judge_prompts.jsonl (fastchat/llm_judge/data/), or a file in its
    layout; relative paths resolve against the suite file's folder. Not shipped with the harness."""
    prompt_name: str | None = None
    """style: fastchat: the template, e.g. pair-v2 (kind: pairwise) or single-v1 (kind: single). As in
    FastChat, questions with a reference use its math variant and turn 2 its -multi-turn variant."""
    tie_margin: float = Field(0.0, ge=0)
    """reward, dpo_reward: |score(A) - score(B)| at or below this is a tie."""
    beta: float = Field(0.1, gt=0)
    """dpo_reward: the DPO beta the reward is scaled by (the one the policy was trained with)."""
    reference: ModelSpec | None = None
    """dpo_reward: the reference policy; none: `model` with its LoRA adapter switched off (needs
    model.adapter), the reference TRL's DPOTrainer used."""
    members: list["JudgeSpec"] = []
    """style: panel: the judges that vote (pairwise, at least two, unique names)."""
    combine: Literal["majority", "weighted"] = "majority"
    """style: panel: majority (one vote each) or weighted (`weights`); a shared top count is a tie."""
    weights: dict[str, float] = {}
    """style: panel, combine: weighted: member name -> weight > 0, e.g. log(a/(1-a)) of its measured
    accuracy a (judges.panel.log_odds_weight)."""

    @field_validator("dimensions")
    @classmethod
    def _readable_dimension_names(cls, dimensions: list[str]) -> list[str]:
        problem = dimension_names_problem(dimensions)
        if problem:
            raise rule_error(problem)
        return dimensions

    @field_validator("prompt_file")
    @classmethod
    def _relative_to_the_suite(cls, path: str | None, info) -> str | None:
        # load_suite passes the suite's folder; a spec built in code keeps its path as given.
        base = (info.context or {}).get("base_dir")
        if path is None or base is None or Path(path).expanduser().is_absolute():
            return path
        return str(Path(base) / path)

    @model_validator(mode="after")
    def _fields_fit_the_style(self) -> "JudgeSpec":
        for name, styles in STYLE_FIELDS.items():  # by value: a stored spec's JSON holds every default
            if getattr(self, name) != type(self).model_fields[name].get_default() and self.style not in styles:
                raise rule_error(f"{name} is used only with style: {' or '.join(styles)}, not {self.style}:"
                                 " remove it or change style")
        if (self.model is None) != (self.style == "panel"):
            raise rule_error("style: panel takes `members`, not `model`: remove model" if self.model is not None
                             else "model: missing: add the judge's model (only style: panel has none)")
        if self.style in ONE_VERDICT_STYLES:
            if "dimensions" in self.model_fields_set and self.dimensions != ["overall"]:
                raise rule_error(f"dimensions: style: {self.style} gives one verdict, 'overall': remove"
                                 " dimensions or use [overall]")
            self.dimensions = ["overall"]
        if self.decode == "choice" and self.style != "pandalm":
            raise rule_error(f"decode: choice picks PandaLM's 1 / 2 / Tie: use it with style: pandalm, not"
                             f" {self.style}")
        return self

    @model_validator(mode="after")
    def _style_has_what_it_needs(self) -> "JudgeSpec":
        if self.style == "fastchat" and not (self.prompt_file and self.prompt_name):
            raise rule_error("style: fastchat needs prompt_file (FastChat's judge_prompts.jsonl) and prompt_name"
                             " (e.g. pair-v2 or single-v1)")
        if self.style in SCORING_STYLES and self.kind != "pairwise":
            raise rule_error(f"kind: style: {self.style} compares two answers' scores: use kind: pairwise")
        if self.style == "dpo_reward" and self.reference is None and not self.model.adapter:
            raise rule_error("reference: missing: without it the reference is model with its LoRA adapter switched"
                             " off, and model has no adapter: give model.adapter or a reference model")
        if self.style == "panel":
            self._check_panel()
        return self

    def _check_panel(self) -> None:
        names = [m.name for m in self.members]
        if len(names) < 2 or len(set(names)) != len(names):
            raise rule_error("members: a panel needs at least two judges with unique names")
        if self.kind != "pairwise" or any(m.kind != "pairwise" for m in self.members):
            raise rule_error("kind: a panel and all its members must be pairwise")
        if self.combine == "weighted" and (sorted(self.weights) != sorted(names) or
                                          any(w <= 0 for w in self.weights.values())):
            raise rule_error(f"weights: combine: weighted needs a weight > 0 for each member ({', '.join(names)})")
        shared = [d for d in self.members[0].dimensions if all(d in m.dimensions for m in self.members)]
        if "dimensions" not in self.model_fields_set:
            self.dimensions = shared
        unknown = [d for d in self.dimensions if d not in shared]
        if unknown or not shared:
            raise rule_error(f"dimensions: '{(unknown or ['?'])[0]}' is not judged by every member (they share: "
                             f"{', '.join(shared) or 'nothing'}): use shared dimensions")

    @model_validator(mode="after")
    def _pandalm_knows_its_dimensions(self) -> "JudgeSpec":
        # PandaLM's layout carries a definition of the one aspect it judges; there is none for a new name.
        unknown = [d for d in self.dimensions if d not in DIMENSION_DEFINITIONS] if self.style == "pandalm" else []
        if unknown and self.dimensions != ["overall"]:
            raise rule_error(f"dimensions: style: pandalm has no definition for '{unknown[0]}': use some of "
                             f"{', '.join(DIMENSION_DEFINITIONS)}, or style: prompt")
        return self

    @model_validator(mode="after")
    def _choice_needs_a_scorer(self) -> "JudgeSpec":
        # Checked from the registry's capabilities, so the suite fails before any model loads.
        entry = get_entry(self.model.backend) if self.model is not None else None
        if self.decode == "choice" and entry is not None and not entry.capabilities.score_choices:
            able = kinds_where(lambda e: e.capabilities.score_choices)
            raise ValueError(f"decode: choice needs a backend that can score choices ({kinds_text(able)}),"
                             f" not {self.model.backend}: use decode: generate")
        return self

    def model_specs(self) -> list[tuple[str, ModelSpecBase]]:
        """(dotted field, spec) of every model this judge loads or calls: its model, its reference and
        its members' (recursively). For whoever must vet or place them (the service, executors)."""
        found = [(f, s) for f, s in (("model", self.model), ("reference", self.reference)) if s is not None]
        for i, member in enumerate(self.members):
            found += [(f"members.{i}.{f}", s) for f, s in member.model_specs()]
        return found

    def prompt_files(self) -> list[tuple[str, str]]:
        """(dotted field, path) of every prompt file this judge reads (style: fastchat), its members'
        included: files a service must confine to its data roots."""
        found = [("prompt_file", self.prompt_file)] if self.prompt_file else []
        for i, member in enumerate(self.members):
            found += [(f"members.{i}.{f}", path) for f, path in member.prompt_files()]
        return found

    def judge_on(self, backend):
        """This judge on `backend` (a ModelBackend for `model`; None for a panel): the one place a spec
        becomes a judge, so a local run and a Ray run (harness.executors) have the same fingerprints
        and call keys. A dpo_reward reference and a panel's members get backends of their own here."""
        from harness.models.base import create_backend

        params = GenerationParams(max_new_tokens=self.max_new_tokens)
        dims = tuple(self.dimensions)
        if self.style == "panel":
            from judges.panel import PanelJudge

            members = [m.judge_on(create_backend(m.model) if m.model is not None else None) for m in self.members]
            return PanelJudge(self.name, members, combine=self.combine, weights=self.weights, dimensions=dims)
        if self.style == "reward":
            from judges.reward import RewardModelJudge

            return RewardModelJudge(self.name, backend, dimensions=dims, tie_margin=self.tie_margin)
        if self.style == "dpo_reward":
            from judges.reward import DPORewardJudge

            reference = create_backend(self.reference) if self.reference is not None else None
            return DPORewardJudge(self.name, backend, reference=reference, beta=self.beta, dimensions=dims,
                                  tie_margin=self.tie_margin)
        common = dict(params=params, max_parse_retries=self.max_parse_retries, chain_of_thought=self.chain_of_thought)
        if self.style == "fastchat":
            from judges.fastchat import FastChatJudge, FastChatTemplates

            templates = FastChatTemplates(self.prompt_file, self.prompt_name, self.name)
            return FastChatJudge(self.name, backend, templates, kind=self.kind, **common)
        from judges.llm import LLMJudge

        return LLMJudge(self.name, backend, style=self.style, kind=self.kind, dimensions=dims,
                        dimension_mode=self.dimension_mode, decode=self.decode, **common)


class PairsSpec(_Strict):
    """Which model pairs pairwise judges compare."""

    mode: Literal["all", "baseline", "sample"] = "all"
    """all pairs; each model against `baseline` (AlpacaEval-style); or a random `budget` of battles."""
    baseline: str | None = None
    """Model name every other model is compared with (mode: baseline)."""
    budget: int | None = Field(None, ge=1)
    """Number of (question, turn, pair) battles to sample (mode: sample)."""
    seed: int = 0
    """Seed for sampling."""


class RatingSpec(_Strict):
    """How verdicts become ratings."""

    merge: Literal["inconsistent_tie", "drop", "half", "calibrated"] = "inconsistent_tie"
    """Both orders disagree: count a tie, drop the battle, or keep both as half-weight battles;
    calibrated (likelihood-choice judges): decide by both orders' summed choice log-likelihoods."""
    bootstrap_rounds: int = Field(1000, ge=10)
    """Bootstrap resamples for confidence intervals."""
    level: float = Field(0.95, gt=0, lt=1)
    """Confidence level of the intervals."""
    seed: int = 0
    """Bootstrap seed."""
    ci: Literal["question", "battle"] = "question"
    """What the Bradley–Terry bootstrap resamples: whole questions with all their battles (battles
    on one question are correlated, so resampling single battles makes the intervals too narrow),
    or single battles (FastChat's, kept for comparison). Elo and win-rate intervals always
    resample battles."""


class ExecutorSpec(_Strict):
    """Where the model and judge calls run: in this process, or in Ray actors across a cluster
    (harness.executors). Either way this process plans the calls and alone writes the store."""

    kind: Literal["local", "ray"] = "local"
    """local: backends in this process; ray: each model's and judge's backend in Ray actors."""
    address: str | None = None
    """Ray cluster to join: host:port of `ray start --head` (or ray://host:10001); none: $RAY_ADDRESS,
    else the cluster `ray start` started on this machine, else a new one in this process."""
    resources: dict[str, float] = {}
    """Ray resources each actor asks for, e.g. {GPU: 1} for an in-process model or {shard: 0.01} (a
    custom resource given to `ray start --resources`); actors go only to nodes that have them."""
    num_cpus: float = Field(0.01, ge=0)
    """CPUs each actor reserves: a sliver by default (API clients mostly wait), 1+ for in-process models."""
    actors: int | None = Field(None, ge=1)
    """Actors per model and per judge, spread over the nodes; default: one per alive node that has
    `resources`, each placed on its node (softly: a restart after the node dies goes elsewhere).
    A vllm model runs its own `replicas` servers instead (placed by its `replica_resources`)."""
    max_restarts: int = Field(3, ge=0)
    """Times Ray restarts an actor whose process or node died (on another node when its node is gone)."""
    max_task_retries: int = Field(3, ge=0)
    """Times a call cut off by an actor's death is sent again (to another actor where there is one);
    after that it is stored as a failure row, retried by the next run."""


class Suite(_Strict):
    """An evaluation suite: which models answer which benchmarks, and how."""

    name: str
    """Suite name, stored with every run."""
    models: list[ModelSpec] = Field(min_length=1)
    """Candidate models."""
    sets: list[SetSpec] = []
    """Open-set benchmarks every model answers."""
    closed_set: list[ClosedTaskSpec] = []
    """Closed-set benchmarks run through lm-evaluation-harness."""
    generation: GenerationConfig = GenerationConfig()
    """Sampling settings."""
    judges: list[JudgeSpec] = []
    """Judges that score the answers (none: generation only)."""
    pairs: PairsSpec = PairsSpec()
    """Pair scheduling for pairwise judges."""
    ratings: RatingSpec = RatingSpec()
    """Merge policy and bootstrap settings."""
    executor: ExecutorSpec = ExecutorSpec()
    """Where calls run: local (default) or ray (`harness run --executor ray --ray-address ADDR`)."""

    @model_validator(mode="after")
    def _baseline_is_a_model(self) -> "Suite":
        names = {m.name for m in self.models}
        if not self.sets and not self.closed_set:
            raise ValueError("a suite needs `sets` (open-set benchmarks) or `closed_set` tasks")
        for i, task in enumerate(self.closed_set):
            unknown = sorted(set(task.models or []) - names)
            if unknown:
                raise ValueError(f"closed_set[{i}].models names {', '.join(unknown)}, not a suite model")
        if self.pairs.mode == "baseline" and self.pairs.baseline not in names:
            raise ValueError(f"pairs.baseline must be one of the suite's models ({', '.join(sorted(names))})")
        if self.pairs.mode == "sample" and not self.pairs.budget:
            raise ValueError("pairs.budget is required with pairs.mode: sample")
        return self

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: list) -> list:
        names = [m.name for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique, repeated: {', '.join(dupes)}")
        return models


BUILTIN_SUITES = Path(__file__).parent / "suites"


def resolve_suite_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a built-in suite (e.g. `quickstart`)."""
    return resolve_named_yaml(name_or_path, BUILTIN_SUITES, "suite")


def resolve_named_yaml(name_or_path: str, folder: Path, kind: str) -> Path:
    """A path to a YAML file, or the stem of one shipped in `folder` (suites, recipes)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = folder / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise ConfigError(f"{name_or_path}: no such file or built-in {kind} (built-in: {known})")


def load_suite(name_or_path: str | Path) -> tuple[Suite, Path]:
    """Parse and validate a suite; returns it with the folder relative paths resolve against."""
    path = resolve_suite_path(str(name_or_path))
    suite = load_yaml_model(path, Suite, "'name', 'models', 'sets' at the top level", {"base_dir": path.parent})
    return suite, path.parent


def load_yaml_model(path: Path, model: type[BaseModel], top_level: str, context: dict | None = None):
    """YAML file -> pydantic model (suites, recipes); every error one line naming file and field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: fix the syntax ({exc.__class__.__name__})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with {top_level}")
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    """First error as one line: file, dotted field, what is wrong, how to fix it."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        fix = "remove it or fix its spelling"
    elif kind == "missing":
        fix = "add it"
    elif kind == "union_tag_invalid":  # the kinds come from the backend registry, plugins included
        fix = f"use backend: {kinds_text()}"
    elif kind == "union_tag_not_found":
        fix = f"add backend: {kinds_text()}"
    elif kind in ("backend_plugin_error", FIELD_RULE):  # the message already says what to fix
        fix = ""
    else:
        fix = f"got {err.get('input')!r}"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: {loc or '<top>'}: {err['msg']}{': ' + fix if fix else ''}{more}"
