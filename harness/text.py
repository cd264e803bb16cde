"""Text from outside (endpoints, data files) made storable: one rule for every writer.

DuckDB stores UTF-8 and Python strings can hold what UTF-8 cannot: a lone surrogate ("\\ud800" is
valid JSON and the openai client hands it over as it is). A NUL is storable but truncates text in
some readers and terminals. `storable` replaces both with U+FFFD; `original_json` keeps the exact
original as ASCII JSON (json.loads gives it back) whenever something was replaced, so nothing is lost.
"""

from __future__ import annotations

import json
import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def storable(text: str) -> str:
    """`text` with lone surrogates and NUL replaced by U+FFFD (unchanged when there are none)."""
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def original_json(text: str) -> str | None:
    """The original as ASCII JSON when `storable` would change it, else None."""
    return json.dumps(text, ensure_ascii=True) if _UNSTORABLE.search(text) else None
