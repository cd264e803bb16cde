"""User-facing errors.

Anything a user can fix (a bad YAML field, a missing file, an unknown model, a missing extra) is a
`HarnessError`: the CLI prints its message as one line and exits 2. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A user error, shown as one line that names the file, the field and the fix."""


class ConfigError(HarnessError):
    """A suite or recipe file that does not validate."""


class DataError(HarnessError):
    """A data file (benchmark JSONL, reference answers) that cannot be read."""


class ModelNotFoundError(HarnessError):
    """A model name that is neither in the catalog, a local folder, nor reachable."""


class MissingExtraError(HarnessError):
    """An optional dependency is not installed; the message carries the pip command."""

    def __init__(self, extra: str, package: str):
        super().__init__(
            f"{package} is not installed: pip install 'alignment-harness[{extra}]'"
            " (or: bash scripts/install.sh)"
        )


class BackendError(HarnessError):
    """A model server that cannot be started or reached."""


class StoreError(HarnessError):
    """A store file that cannot be used as it is (named in the message, with what to do)."""


class StoreBusyError(StoreError):
    """Another process held the database file for longer than we waited."""


class NotADatabaseError(StoreError):
    """The --db path exists but is not a DuckDB file."""


class StoreReadOnlyError(StoreError):
    """A write to a store whose file or folder cannot be written."""


class SchemaTooNewError(StoreError):
    """The store was migrated by a newer harness: this one must not read or write it."""


class SchemaOutdatedError(StoreError):
    """The store needs migrations this harness ships, and its file cannot be written to apply them."""
