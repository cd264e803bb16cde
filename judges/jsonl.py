"""The one JSONL reader, shared by benchmark sets (`harness.sets`) and judge-evaluation data
(`judges.meta`), so both report a bad line the same way: `file:line: problem`.

Why here: `judges` may import nothing from `harness` except `harness.models` and `harness.errors`
(tests/test_imports.py), so a reader in `harness.sets` is out of its reach; the harness pipeline, on
the other hand, may import `judges`. This module needs only `harness.errors.DataError`, which both
sides may use. `harness.sets` re-exports `read_jsonl`, so existing callers keep working.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from harness.errors import DataError


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line (of a .jsonl or .jsonl.gz file); a bad line is a
    one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found: check the path")
    opener = gzip.open if path.suffix == ".gz" else open  # HH-RLHF ships gzipped
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}): one object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
