"""What the service trusts and what it refuses: bearer tokens, data roots, sizes, suite text.

- Tokens: `Authorization: Bearer <token>`; the store holds only sha256 hashes (harness.store.jobs).
  Every write endpoint needs one; reads too unless the server runs with --public-reads. A revoked
  token is refused within a second (TokenCheck).
- Data roots: a suite sent over HTTP reads files only under the folders the operator allowed
  (--data-root). Every path field is resolved (symlinks followed, `..` collapsed) and must land
  inside a root; relative paths resolve against the first root. The worker checks again before it
  runs the job, so a file swapped for a symlink after submission is refused too.
- Sizes: request bodies and suite texts have limits (413).
- Suite text gets the same one-line errors the CLI gives for a suite file.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from harness.config import Suite, format_validation_error
from harness.errors import ConfigError, HarnessError

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a suite is a few KiB; anything near this is a mistake or an attack
MAX_SUITE_BYTES = 256 << 10
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class Unauthorized(HarnessError):
    """No token, or one this service never issued (401)."""


class Forbidden(HarnessError):
    """A revoked token, or a path outside the data roots (403)."""


class TooLarge(HarnessError):
    """A body or a suite over its size limit (413)."""


@dataclass
class Settings:
    """How one service runs; `harness serve` fills it from its options."""

    db: Path
    data_roots: list[Path] = field(default_factory=list)
    public_reads: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    max_suite_bytes: int = MAX_SUITE_BYTES
    lease_s: float = 30.0

    def __post_init__(self) -> None:
        self.db = Path(self.db)
        self.data_roots = [Path(r).expanduser().resolve() for r in self.data_roots]
        missing = [str(r) for r in self.data_roots if not r.is_dir()]
        if missing:
            raise HarnessError(f"--data-root {missing[0]}: no such folder: create it or pass another")


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header (Unauthorized when there is none)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("no token: send `Authorization: Bearer <token>`"
                           " (create one with `harness tokens create NAME`)")
    return token.strip()


class TokenCheck:
    """Token -> its name, remembered for `ttl_s`: every request would otherwise pay one more store
    read (~20 ms on a busy 2-core machine: half a status read). A revoked token therefore stops
    working within `ttl_s`; a new one works at once (unknown tokens are never cached)."""

    def __init__(self, store, ttl_s: float = 1.0):
        self.store, self.ttl_s = store, ttl_s
        self.known: dict[str, tuple[str, bool, float]] = {}
        self.lock = threading.Lock()

    def __call__(self, header: str | None) -> str:
        """The name of the caller's token; Unauthorized / Forbidden otherwise."""
        from harness.store.jobs import token_hash, verify_token

        token = bearer(header)
        key, clock = token_hash(token), time.monotonic()
        with self.lock:
            cached = self.known.get(key)
        if cached is None or cached[2] < clock:
            found = verify_token(self.store, token)
            if found is None:
                raise Unauthorized("unknown token: use one printed by `harness tokens create NAME` on the server")
            cached = (*found, clock + self.ttl_s)
            with self.lock:
                self.known[key] = cached
        name, revoked, _ = cached
        if revoked:
            raise Forbidden(f"token '{name}' was revoked: ask the operator for a new one")
        return name


# --- suite text ------------------------------------------------------------------------------------
def parse_suite(text: str | dict, source: str, max_bytes: int = MAX_SUITE_BYTES) -> Suite:
    """YAML text (or an already parsed JSON object) -> Suite, every error one line naming `source`
    and the field, exactly as `harness run FILE` reports it for a file named `source`."""
    size = len(text.encode()) if isinstance(text, str) else len(repr(text))
    if size > max_bytes:
        raise TooLarge(f"{source}: the suite is {size} bytes, over the service's limit of {max_bytes}: split it")
    raw = text
    if isinstance(text, str):
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = exc.__class__.__name__
            raise ConfigError(f"{source}:{where} is not valid YAML: fix the syntax ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with 'name', 'models', 'sets' at the top level")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


# --- data roots ------------------------------------------------------------------------------------
def suite_paths(suite: Suite) -> list[tuple[str, str]]:
    """(dotted field, value) of every field of `suite` that names a file or folder to read."""
    found: list[tuple[str, str]] = []
    for i, s in enumerate(suite.sets):
        found += [(f"sets.{i}.{name}", value) for name in ("path", "references") if (value := getattr(s, name))]
    for i, task in enumerate(suite.closed_set):
        if task.data and not task.data.startswith("builtin:"):
            found.append((f"closed_set.{i}.data", task.data))
        if task.include:
            found.append((f"closed_set.{i}.include", task.include))
    specs = [(f"models.{i}", m) for i, m in enumerate(suite.models)]
    for i, judge in enumerate(suite.judges):  # a judge's model, a DPO reference, a panel's members
        specs += [(f"judges.{i}.{field}", spec) for field, spec in judge.model_specs()]
        found += [(f"judges.{i}.{field}", path) for field, path in judge.prompt_files()]
    for where, spec in specs:
        found += [(f"{where}.{name}", value) for name in ("adapter", "chat_template")
                  if (value := getattr(spec, name, None))]
        if _model_is_a_path(spec):
            found.append((f"{where}.model", spec.model))
    return found


def _model_is_a_path(spec) -> bool:
    """A served name (openai) or catalog name is not a file; a hub id reads nothing local (the
    service runs offline); anything else a local backend would open as a folder or file."""
    from harness.models.catalog import CATALOG

    if spec.backend == "reference":
        return True
    if spec.backend not in ("hf", "vllm") or spec.model in CATALOG:
        return False
    return not (_HUB_ID.match(spec.model) and not Path(spec.model).exists())


def confine(source: str, fields: list[tuple[str, str]], roots: list[Path]) -> None:
    """Forbidden unless every path resolves (symlinks followed) inside one of `roots`; relative
    paths resolve against the first root, as the job will read them."""
    for where, value in fields:
        if not roots:
            raise Forbidden(f"{source}: {where}: {value!r}: this service reads no data files"
                            " (it was started without --data-root): use built-in sets, or ask the operator")
        given = Path(value).expanduser()
        path = given if given.is_absolute() else roots[0] / given
        real = path.resolve()
        if any(real.is_relative_to(root) for root in roots):
            continue
        listed = ", ".join(str(r) for r in roots)
        lexical = Path(os.path.normpath(path))  # `..` collapsed, symlinks not followed
        if any(lexical.is_relative_to(root) for root in roots):
            why = "leads outside the data roots through a symlink"
        elif ".." in given.parts:
            why = "escapes the data roots with '..'"
        else:
            why = "is outside the data roots"
        raise Forbidden(f"{source}: {where}: {value!r} {why} ({listed}): put the file under a --data-root")


def check_suite_paths(suite: Suite, source: str, roots: list[Path]) -> None:
    confine(source, suite_paths(suite), roots)
