"""A "model" whose answers are published outputs read from a file (AlpacaEval-style baselines such
as gpt4_1106_preview), so a reference can be judged against without running it.

Accepted files: AlpacaEval's JSON array of {instruction, output, generator?}, or JSONL with
{instruction | prompt, output}. Answers are matched on the exact instruction text, first turn only.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import DataError
from harness.models.base import Completion, Conversation, GenerationParams, stable_hash
from harness.models.catalog import sha256_file
from harness.sets import read_jsonl


class ReferenceBackend:
    def __init__(self, spec):
        self.spec = spec
        self.path = Path(spec.model).expanduser()
        self.outputs = _load_outputs(self.path)
        self.chunk_size = 256

    def fingerprint(self) -> str:
        return stable_hash({"kind": "reference", "file": sha256_file(self.path)})

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        out = []
        for conv in conversations:
            if sum(m.role == "user" for m in conv) > 1:
                out.append(Completion("", finish_reason="error", error="reference outputs cover the first turn only"))
                continue
            text = self.outputs.get(conv[-1].content.strip())
            out.append(Completion(text) if text is not None else
                       Completion("", finish_reason="error", error=f"{self.path}: no output for this instruction"))
        return out

    def close(self) -> None:
        pass


def _load_outputs(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"{path}: reference outputs file not found: check the model's 'model' path")
    if path.suffix == ".json":
        try:
            rows = list(enumerate(json.loads(path.read_text()), 1))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg}): expected AlpacaEval's output list") from None
    else:
        rows = list(read_jsonl(path))
    outputs = {}
    for where, row in rows:
        prompt, output = row.get("instruction", row.get("prompt")), row.get("output")
        if not isinstance(prompt, str) or not isinstance(output, str):
            raise DataError(f"{path}:{where}: fields 'instruction' and 'output' must be strings")
        outputs[prompt.strip()] = output
    return outputs
