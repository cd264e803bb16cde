"""Model backends: the ModelBackend and ChoiceScorer Protocols (base.py), the one registry of
backend kinds with their spec classes, factories, capabilities and lm-eval mappings, plugins from
the `alignment_harness.backends` entry-point group (registry.py, specs.py), the backends themselves
(hf, openai, vllm, reference: imported only when used), device choice, and the catalog of real
models shipped on PyPI as GGUF (catalog.py)."""
