"""Import directions follow the data flow: suite -> runner -> backends -> store -> battles -> ratings
-> app/service. A module may import what comes before it, never what comes after.

Every .py file under harness/, judges/, trainers/ and app/ is parsed with `ast` (nothing is
imported or run). Every import counts, wherever it sits: module level, inside a function, under
`if TYPE_CHECKING:`, plus `importlib.import_module("literal")` / `__import__("literal")` calls.
`from x import y` counts as importing `x.y` when that is a module of this repo, else `x`; relative
imports are resolved against the file's package.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "judges", "trainers", "app")


@dataclass(frozen=True)
class Rule:
    importer: str  # a module prefix: the rule applies to this module and everything under it
    forbidden: tuple[str, ...]  # module prefixes the importer must not import
    allowed: tuple[str, ...] = ()  # carve-outs inside `forbidden` (e.g. `harness.errors` in `harness`)
    lazy_ok_in: tuple[str, ...] = ()  # importers that may still import `forbidden`, but only inside a function
    why: str = ""


_AFTER_MODELS = ("harness.runner", "harness.judging", "harness.battles", "harness.ratings", "harness.leaderboard",
                 "harness.api", "harness.cli", "harness.views")

# The rules, as data: importer prefix -> forbidden imported prefixes.
RULES: tuple[Rule, ...] = (
    Rule("judges", ("harness",), allowed=("harness.models", "harness.errors"),
         why="judges see models and errors only; the harness pipeline calls judges, not the reverse"),
    Rule("harness.models", ("harness.store", *_AFTER_MODELS, "judges", "trainers", "app"),
         why="backends come before the store and everything built on it"),
    Rule("harness.store", (*_AFTER_MODELS, "trainers", "app"),
         why="the store persists rows; it does not know who produces or reads them"),
    Rule("harness.ratings", ("harness.store",),
         why="ratings are pure functions over rows"),
    Rule("harness", ("app",),
         why="the app reads the harness, never the reverse"),
    Rule("harness", ("trainers",), lazy_ok_in=("harness.api", "harness.cli"),
         why="trainers sit on top of the harness; only the API and CLI reach them, lazily"),
    Rule("app", ("harness.store.queries",),
         why="the app reads through harness.views / harness.api, not raw queries"),
    Rule("harness.executors", ("harness.store", *_AFTER_MODELS, "trainers", "app"),
         why="executors host backends on a cluster; the driver's runner alone writes the store"),
)


@dataclass(frozen=True)
class Import:
    path: str  # repo-relative file
    line: int
    importer: str  # the importing module
    imported: str  # the imported module, resolved
    lazy: bool  # inside a function (runs on call, not on import)


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def repo_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def collect(source: str, importer: str, is_package: bool, modules: set[str], path: str = "<src>") -> list[Import]:
    """Every import in one file's source, resolved to module names."""
    tree = ast.parse(source, filename=path)
    package = importer if is_package else importer.rpartition(".")[0]
    found: list[Import] = []

    def add(node: ast.AST, imported: str, lazy: bool) -> None:
        found.append(Import(path, node.lineno, importer, imported, lazy))

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, lazy)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                add(node, candidate if candidate in modules else base, lazy)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            add(node, node.args[0].value, lazy)
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, lazy=False)
    return found


def all_imports() -> list[Import]:
    files = repo_files()
    modules = {module_name(p) for p in files}
    out: list[Import] = []
    for p in files:
        out += collect(p.read_text(encoding="utf-8"), module_name(p), p.name == "__init__.py", modules,
                       str(p.relative_to(REPO)))
    return out


def violations(imports: list[Import], rules: tuple[Rule, ...] = RULES) -> list[str]:
    found = []
    for imp in imports:
        for rule in rules:
            if not under(imp.importer, rule.importer):
                continue
            if not any(under(imp.imported, f) for f in rule.forbidden):
                continue
            if any(under(imp.imported, a) for a in rule.allowed):
                continue
            if imp.lazy and any(under(imp.importer, m) for m in rule.lazy_ok_in):
                continue
            where = " (lazily)" if imp.lazy else ""
            found.append(f"{imp.path}:{imp.line}: {imp.importer} imports {imp.imported}{where}; "
                         f"rule {rule.importer} -/-> {', '.join(rule.forbidden)}: {rule.why}")
    return sorted(set(found))


# --- the real tree -------------------------------------------------------------------------------
def test_no_module_imports_against_the_data_flow():
    found = violations(all_imports())
    assert not found, f"{len(found)} forbidden import(s):\n" + "\n".join(found)


def test_the_walk_sees_every_package_and_every_rule_applies_to_real_modules():
    """Guards against a vacuous pass: a renamed package or a typo in RULES would check nothing."""
    modules = {module_name(p) for p in repo_files()}
    assert all(any(under(m, pkg) for m in modules) for pkg in PACKAGES)
    for rule in RULES:
        assert any(under(m, rule.importer) for m in modules), f"rule for {rule.importer!r} matches no module"
    imports = all_imports()
    assert any(i.importer.startswith("judges.") and under(i.imported, "harness.models") for i in imports)
    assert any(i.lazy for i in imports), "function-level imports were not collected"


# --- the checker itself --------------------------------------------------------------------------
MODULES = {"harness", "harness.store", "harness.store.queries", "harness.models", "harness.models.base",
           "harness.errors", "harness.sets", "judges", "judges.jsonl", "trainers", "app", "app.data"}


def test_collect_resolves_every_import_shape():
    source = (
        "import os\n"
        "import harness.store.queries as q\n"
        "from harness.store import queries, Store\n"
        "from harness import store\n"
        "from . import base\n"
        "from ..store import queries as q2\n"
        "from .. import errors\n"
        "def f():\n"
        "    from trainers import train_sft\n"
        "    import importlib\n"
        "    importlib.import_module('app.data')\n"
        "class C:\n"
        "    def m(self):\n"
        "        import app\n"
    )
    got = {(i.imported, i.lazy) for i in collect(source, "harness.models.hf", False, MODULES | {"harness.models.hf"})}
    assert got == {
        ("os", False), ("harness.store.queries", False), ("harness.store", False),  # Store is a name
        ("harness.models.base", False), ("harness.errors", False),
        ("trainers", True), ("importlib", True), ("app.data", True), ("app", True),
    }
    # In a package's __init__, `from . import x` is relative to the package itself.
    init = {i.imported for i in collect("from . import queries\n", "harness.store", True, MODULES)}
    assert init == {"harness.store.queries"}


@pytest.mark.parametrize("importer, source, expected", [
    ("judges.meta", "from harness.sets import read_jsonl\n", 1),
    ("judges.meta", "import harness\n", 1),
    ("judges.meta", "from judges.jsonl import read_jsonl\nfrom harness.errors import DataError\n", 0),
    ("judges.llm", "from harness.models.base import Message\n", 0),
    ("judges.llm", "def f():\n    from harness.store import Store\n", 1),  # lazily is still forbidden
    ("harness.models.base", "from harness.store import Store\n", 1),
    ("harness.models.base", "import judges.parse\n", 1),
    ("harness.store.queries", "from harness.battles import battles\n", 1),
    ("harness.store.queries", "from harness.store import Store\n", 0),
    ("harness.ratings", "from harness.store import queries\n", 1),
    ("harness.runner", "from harness.store import Store\n", 0),
    ("harness.views", "import app.data\n", 1),
    ("harness.runner", "def f():\n    import trainers\n", 1),
    ("harness.api", "def f():\n    import trainers\n", 0),
    ("harness.api", "import trainers\n", 1),  # allowed only lazily
    ("harness.cli.train", "def f():\n    from trainers import train_sft\n", 0),
    ("app.data", "from harness.store.queries import leaderboard\n", 1),
    ("app.data", "from harness.store import queries\n", 1),
    ("app.data", "from harness import views\n", 0),
])
def test_rules_flag_exactly_the_forbidden_directions(importer, source, expected):
    modules = MODULES | {importer, "harness.views", "harness.battles", "harness.ratings", "judges.parse"}
    found = violations(collect(source, importer, False, modules))
    assert len(found) == expected, found
