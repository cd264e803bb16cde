"""judges: everything about judging, and nothing about the store or the pipeline.

The Judge Protocol and its items (base.py), versioned prompts (prompts.py), strict nonce-tagged
parsers (parse.py), prompt and PandaLM-style judges on any model backend (llm.py), the merge
policies that turn a judgment's two orders into battles (merge.py), judge reliability metrics
(reliability.py), and meta-evaluation importers and metrics against human labels (meta.py).
It may import harness.models and harness.errors and nothing else of harness (tests/test_imports.py);
which stored rows count is harness.battles' job, and storing is harness/'s.
"""
