"""The echo plugin's registry entry: loaded whenever a suite names `backend: echo`, so it stays
light (the spec class here, the backend behind a "module:attr" string)."""

from __future__ import annotations

from typing import Literal

from harness.models.registry import BackendEntry
from harness.models.specs import ModelSpecBase


class EchoModelSpec(ModelSpecBase):
    """A model that answers with the last user message."""

    backend: Literal["echo"] = "echo"
    """The plugin's kind."""
    prefix: str = ""
    """Text put before every echoed message (part of the fingerprint)."""


ENTRY = BackendEntry("echo", EchoModelSpec, "echo_backend.backend:EchoBackend",
                     description="echoes the last user message (test plugin)")
