"""Open-set benchmarks: questions with one or more turns and optional reference answers.

Loaders read a file into `Question`s and report a bad line as `file:line: field: problem: fix`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError
from harness.text import storable
from judges.jsonl import read_jsonl  # re-exported: the one JSONL reader (see judges/jsonl.py)

BUILTIN_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Question:
    set_name: str
    question_id: str
    category: str
    turns: tuple[str, ...]
    references: tuple[str, ...] = ()  # one per turn where given (math, reasoning, coding)
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Data files are outside text too: a lone surrogate in a JSONL line must not stop a suite.
        for name in ("question_id", "category"):
            object.__setattr__(self, name, storable(getattr(self, name)))
        for name in ("turns", "references", "tags"):
            object.__setattr__(self, name, tuple(storable(t) for t in getattr(self, name)))


def builtin_sets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.jsonl"))}


def _text_list(path: Path, lineno: int, row: dict, key: str, required: bool) -> tuple[str, ...]:
    value = row.get(key)
    if value is None and not required:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise DataError(f"{path}:{lineno}: field '{key}': must be a non-empty list of non-empty strings")
    return tuple(value)


def load_jsonl(path: Path, set_name: str) -> list[Question]:
    """Generic format: {"id", "category", "turns": [..], "references"?: [..], "tags"?: [..]}.

    `question_id` is accepted for `id` and a single `prompt`/`instruction` string for `turns`.
    """
    questions, seen = [], set()
    for lineno, row in read_jsonl(path):
        qid = row.get("id", row.get("question_id", row.get("idx")))
        if qid is None:
            raise DataError(f"{path}:{lineno}: field 'id': missing: give every question a unique id")
        if str(qid) in seen:
            raise DataError(f"{path}:{lineno}: field 'id': duplicate id {qid!r}: ids must be unique")
        seen.add(str(qid))
        turn_key = next((k for k in ("turns", "prompt", "instruction") if k in row), "turns")
        turns = _text_list(path, lineno, row, turn_key, required=True)
        refs = _text_list(path, lineno, row, "references", required=False)
        if len(refs) > len(turns):
            raise DataError(f"{path}:{lineno}: field 'references': more references than turns")
        questions.append(
            Question(
                set_name=set_name,
                question_id=str(qid),
                category=str(row.get("category", "general")),
                turns=turns,
                references=refs,
                tags=tuple(str(t) for t in row.get("tags", [])),
            )
        )
    if not questions:
        raise DataError(f"{path}: no questions: the file is empty")
    return questions


def load_mt_bench(path: Path, set_name: str, references: Path | None = None) -> list[Question]:
    """FastChat's question.jsonl (question_id, category, turns) plus optional reference answers."""
    refs: dict[str, tuple[str, ...]] = {}
    if references is not None:
        for lineno, row in read_jsonl(references):
            try:
                refs[str(row["question_id"])] = tuple(row["choices"][0]["turns"])
            except (KeyError, IndexError, TypeError):
                raise DataError(
                    f"{references}:{lineno}: field 'choices[0].turns': missing: expected FastChat's reference format"
                ) from None
    questions = []
    for q in load_jsonl(path, set_name):
        questions.append(Question(q.set_name, q.question_id, q.category, q.turns, refs.get(q.question_id, ())))
    return questions


def load_alpaca_eval(path: Path, set_name: str) -> list[Question]:
    """AlpacaEval-style instruction lists: JSONL or a JSON array of {instruction, dataset?}."""
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read as a JSON array ({exc}): check the file") from None
        numbered = list(enumerate(rows, 1))
    else:
        numbered = list(read_jsonl(path))
    questions = []
    for lineno, row in numbered:
        turns = _text_list(path, lineno, row, "instruction", required=True)
        qid = str(row.get("idx", lineno - 1))
        questions.append(Question(set_name, qid, str(row.get("dataset", "alpaca_eval")), turns))
    return questions


def load_set(spec, base_dir: Path = Path(".")) -> list[Question]:
    """Questions for one SetSpec: a built-in set, or a file in one of the supported formats."""
    if spec.path is None:
        builtins = builtin_sets()
        if spec.name not in builtins:
            known = ", ".join(builtins)
            raise DataError(f"set '{spec.name}': not built in ({known}): give a 'path' to a JSONL file")
        questions = load_jsonl(builtins[spec.name], spec.name)
    else:
        path = (base_dir / spec.path).expanduser()
        if spec.format == "mt_bench":
            ref = (base_dir / spec.references) if spec.references else None
            questions = load_mt_bench(path, spec.name, ref)
        elif spec.format == "alpaca_eval":
            questions = load_alpaca_eval(path, spec.name)
        else:
            questions = load_jsonl(path, spec.name)
    if spec.categories:
        questions = [q for q in questions if q.category in set(spec.categories)]
    if spec.limit:
        questions = questions[: spec.limit]
    return questions
