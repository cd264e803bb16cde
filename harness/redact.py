"""Secret values never reach the store, a log line, a response or the terminal.

Keys are read from the environment (api_key_env) and registered here as they are read; `redact`
replaces every registered value, and the value of every environment variable whose name says it
holds a secret (…KEY, …TOKEN, …SECRET, …PASSWORD), wherever it appears in a text. Servers that
echo the key in an error body (some 401 pages do) then cannot leak it through our error rows.
"""

from __future__ import annotations

import os
import re

MASK = "***"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_MIN_LEN = 6  # shorter values ("EMPTY", "1") would mask ordinary words
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (an API key read from the environment) so `redact` masks it."""
    if value and len(value) >= _MIN_LEN:
        _registered.add(value)


def known_secrets() -> list[str]:
    """Registered values plus secret-named environment variables, longest first (so a key that
    contains another is masked whole)."""
    found = set(_registered)
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and value and len(value) >= _MIN_LEN:
            found.add(value)
    return sorted(found, key=len, reverse=True)


def redact(text: str | None) -> str | None:
    """`text` with every known secret value replaced by ***; None stays None."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    return text
