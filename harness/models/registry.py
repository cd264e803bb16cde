"""The one registry of model backends.

Each backend kind is declared once, as a `BackendEntry`: its kind name (the `backend:` value in a
suite), its pydantic spec class, its factory, its capabilities and how lm-evaluation-harness runs
it. The suite's model field, `create_backend` and the closed-set mapping all read this registry,
so a new kind (built in, registered at runtime, or a plugin) shows up in all of them at once.

Plugins: an installed distribution declares, in its pyproject.toml,

    [project.entry-points."alignment_harness.backends"]
    mykind = "my_package:ENTRY"      # the entry point's name is the kind; the object a BackendEntry

Entry points are looked up by name only when a suite asks for a kind that is not built in or
registered, so a broken plugin affects only the suites that use it.

Nothing here imports torch, transformers or vllm: factories and lm-eval argument builders are
"module:attr" strings resolved on first use.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Callable, Literal

from pydantic import BaseModel, create_model
from pydantic_core import PydanticCustomError

from harness.errors import ConfigError
from harness.models.base import ModelBackend
from harness.models.specs import HFModelSpec, ModelSpecBase, OpenAIModelSpec, ReferenceModelSpec, VLLMModelSpec

ENTRY_POINT_GROUP = "alignment_harness.backends"

BackendFactory = Callable[[Any], ModelBackend]


def load_attr(target: str | Callable) -> Callable:
    """A callable, or the object a "module:attr" string names (imported now, not at registration)."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Capabilities:
    """What a backend kind can do besides generating text. Checked from the spec alone, before
    any model loads, so an impossible pairing fails as a config error."""

    score_choices: bool = False  # implements ChoiceScorer (judges with decode: choice)
    loglikelihood: bool = False  # its lm-eval model scores loglikelihood tasks (multiple choice, cloze)
    local_weights: bool = False  # runs an HF folder the harness resolves (catalog, trainers' parents)
    # answers one conversation at a time in an event loop (StreamingBackend) against an endpoint that
    # is already running: its generation and judging can overlap (harness.pipeline)
    streaming: bool = False


@dataclass(frozen=True)
class LMEvalMapping:
    """How a closed-set task runs this kind through lm-eval."""

    model: str  # lm-eval's model name: hf, local-completions, local-chat-completions, ...
    args: str | Callable  # "module:attr" of (spec, path, base_url) -> harness.closed.backends.LMEvalModel
    no_loglikelihood_why: str = ""  # shown when a loglikelihood task is refused (capabilities say no)


@dataclass(frozen=True)
class BackendEntry:
    """One backend kind, declared in one place."""

    kind: str
    spec: type[ModelSpecBase]  # its `backend` field is Literal[kind]
    factory: str | BackendFactory  # factory(spec) -> ModelBackend; "module:attr" keeps imports lazy
    capabilities: Capabilities = Capabilities()
    lm_eval: LMEvalMapping | None = None  # None: closed-set tasks are refused for this kind
    no_lm_eval_why: str = "has no lm-eval counterpart"  # completes "model 'x' ... and cannot run closed-set tasks"
    description: str = ""

    def __post_init__(self) -> None:
        field_info = getattr(self.spec, "model_fields", {}).get("backend")
        if not (isinstance(self.spec, type) and issubclass(self.spec, ModelSpecBase)) or field_info is None \
                or field_info.default != self.kind:
            raise TypeError(f"backend '{self.kind}': spec must subclass harness.models.specs.ModelSpecBase"
                            f" with `backend: Literal['{self.kind}'] = '{self.kind}'`")

    def create(self, spec: Any) -> ModelBackend:
        return load_attr(self.factory)(spec)


BUILTIN: tuple[BackendEntry, ...] = (
    BackendEntry(
        "hf", HFModelSpec, "harness.models.hf:HFBackend",
        Capabilities(score_choices=True, loglikelihood=True, local_weights=True),
        LMEvalMapping("hf", "harness.closed.backends:hf_model_args"),
        description="transformers in this process (CPU, CUDA or MPS)",
    ),
    BackendEntry(
        "openai", OpenAIModelSpec, "harness.models.openai_backend:OpenAIBackend",
        Capabilities(streaming=True),
        LMEvalMapping("local-chat-completions", "harness.closed.backends:openai_model_args",
                      no_loglikelihood_why="chat APIs return no prompt logprobs"),
        description="any OpenAI-compatible chat endpoint",
    ),
    BackendEntry(
        "vllm", VLLMModelSpec, "harness.models.vllm:VLLMBackend",
        # loglikelihood through the server's echo + prompt logprobs, probed before the first task
        Capabilities(loglikelihood=True, local_weights=True),
        LMEvalMapping("local-completions", "harness.closed.backends:vllm_model_args"),
        description="a vLLM server the harness starts and stops",
    ),
    BackendEntry(
        "reference", ReferenceModelSpec, "harness.models.reference:ReferenceBackend",
        no_lm_eval_why="is a reference outputs file",
        description="published outputs read from a file",
    ),
)

_builtin: dict[str, BackendEntry] = {e.kind: e for e in BUILTIN}
_registered: dict[str, BackendEntry] = {}  # runtime registrations (tests, embedding code) win over both
_plugins: dict[str, BackendEntry] = {}  # entry points loaded so far


@cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins by name. Built-in names are skipped: a plugin cannot silently replace the
    hf backend for every suite on the machine (register_backend can, deliberately)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _builtin:
            found.setdefault(ep.name, ep)  # two distributions with one name: the first on sys.path
    return found


def _load_plugin(kind: str) -> BackendEntry | None:
    ep = _entry_points().get(kind)
    if ep is None:
        return None
    if kind not in _plugins:
        dist = getattr(ep.dist, "name", None) or "its distribution"
        try:
            entry = ep.load()
        except Exception as exc:  # a plugin's bug is reported as a one-line config error
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ConfigError(f"backend plugin '{kind}' ({ep.value}) failed to load: {detail}: fix or"
                              f" uninstall {dist}") from None
        if not isinstance(entry, BackendEntry) or entry.kind != kind:
            raise ConfigError(f"backend plugin '{kind}' ({ep.value}) is not a BackendEntry with kind"
                              f" '{kind}': fix {dist}")
        _plugins[kind] = entry
    return _plugins[kind]


def get_entry(kind: str) -> BackendEntry | None:
    """The entry for a kind, or None when no backend of that name exists."""
    return _registered.get(kind) or _builtin.get(kind) or _load_plugin(kind)


def backend_kinds() -> list[str]:
    """Every kind a suite may use: built-in ones first (in declaration order), then registered,
    then installed plugins (not loaded to list them)."""
    kinds = list(_builtin)
    kinds += [k for k in _registered if k not in kinds]
    kinds += sorted(k for k in _entry_points() if k not in kinds)
    return kinds


def kinds_where(test: Callable[[BackendEntry], bool]) -> list[str]:
    """The kinds whose entry passes `test`, e.g. those that can score choices (loads plugins)."""
    return [k for k in backend_kinds() if (e := get_entry(k)) is not None and test(e)]


def kinds_text(kinds: list[str] | None = None, last: str = "or") -> str:
    """'hf, openai, vllm or reference': how error messages list the choices."""
    kinds = backend_kinds() if kinds is None else kinds
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} {last} {kinds[-1]}"


def register_backend(kind: str | BackendEntry, factory: str | BackendFactory | None = None, *,
                     spec: type[ModelSpecBase] | None = None, capabilities: Capabilities | None = None,
                     lm_eval: LMEvalMapping | None = None) -> BackendEntry:
    """Add (or, for tests, replace) a backend kind at runtime; `factory(spec)` returns a ModelBackend.

    Re-registering an existing kind with only a new factory keeps its spec class, capabilities and
    lm-eval mapping (a test swaps hf for a scripted backend). A new kind without a spec class gets
    one with just the common fields. Undo with `unregister_backend`.
    """
    if isinstance(kind, BackendEntry):
        entry = kind
    else:
        if factory is None:
            raise TypeError("register_backend(kind, factory): factory is required")
        known = get_entry(kind)
        if known is not None:
            entry = replace(known, factory=factory, spec=spec or known.spec,
                            capabilities=capabilities or known.capabilities, lm_eval=lm_eval or known.lm_eval)
        else:
            entry = BackendEntry(kind, spec or _plain_spec(kind), factory, capabilities or Capabilities(), lm_eval)
    _registered[entry.kind] = entry
    return entry


def unregister_backend(kind: str) -> None:
    """Drop a runtime registration; a built-in kind it replaced comes back."""
    _registered.pop(kind, None)


def _plain_spec(kind: str) -> type[ModelSpecBase]:
    name = "".join(part.capitalize() for part in kind.replace("-", "_").split("_")) + "ModelSpec"
    return create_model(name, __base__=ModelSpecBase, __doc__=f"A model of the runtime-registered '{kind}' backend.",
                        backend=(Literal[kind], kind))  # type: ignore[valid-type]


def create_backend(spec: Any) -> ModelBackend:
    """Instantiate the backend named by `spec.backend`."""
    entry = get_entry(spec.backend)
    if entry is None:
        raise ConfigError(f"model '{spec.name}': unknown backend '{spec.backend}' (known: {', '.join(backend_kinds())})")
    return entry.create(spec)


def validate_model_spec(value: Any) -> ModelSpecBase:
    """The suite's model field: pick the spec class by `backend`, then validate with it.

    A validator instead of a fixed discriminated Union so that kinds registered after
    `harness.config` was imported (plugins, tests) validate too. Field errors keep their dotted
    location (models.0.batch_size): pydantic merges the inner ValidationError into the outer one.
    """
    if isinstance(value, BaseModel):
        entry = get_entry(getattr(value, "backend", ""))
        if entry is not None and isinstance(value, entry.spec):
            return value  # type: ignore[return-value]
        value = value.model_dump()
    if not isinstance(value, dict):
        raise PydanticCustomError("model_type", "Input should be a mapping with a `backend` field")
    kind = value.get("backend")
    if kind is None:
        raise PydanticCustomError("union_tag_not_found", "Unable to extract tag using discriminator 'backend'")
    try:
        entry = get_entry(kind) if isinstance(kind, str) else None
    except ConfigError as exc:
        raise PydanticCustomError("backend_plugin_error", "{error}", {"error": str(exc)}) from None
    if entry is None:
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag '{tag}' found using 'backend' does not match any of the expected tags: {expected}",
            {"tag": str(kind), "expected": ", ".join(repr(k) for k in backend_kinds())},
        )
    return entry.spec.model_validate(value)


class _LMEvalNames(Mapping):
    """kind -> lm-eval model name, read from the registry at each lookup (the closed-set table), so
    a kind registered later is in it too. Kinds without a mapping (reference) are absent."""

    def __getitem__(self, kind: str) -> str:
        entry = get_entry(kind)
        if entry is None or entry.lm_eval is None:
            raise KeyError(kind)
        return entry.lm_eval.model

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in backend_kinds() if (e := get_entry(k)) is not None and e.lm_eval is not None])

    def __len__(self) -> int:
        return len(list(iter(self)))


LM_EVAL_MODEL: Mapping[str, str] = _LMEvalNames()
