"""Alignment evaluation harness.

Importing this package stays cheap: no torch, no vLLM, no transformers. Heavy backends are imported
only when a model of that kind is actually used.
"""

from harness.errors import HarnessError

__version__ = "0.1.0"
__all__ = ["HarnessError", "__version__"]
