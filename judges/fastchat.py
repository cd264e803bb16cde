"""FastChat's MT-Bench judge prompts, read from the user's own `judge_prompts.jsonl`, rendered and
parsed as FastChat's `fastchat/llm_judge/common.py` renders and parses them, so single-grade scores
are comparable with published MT-Bench numbers. The project ships none of FastChat's text.

The file holds one JSON object per line: {name, type ("pairwise" | "single"), system_prompt,
prompt_template, description, category, output_format ("[[A]]", "[[rating]]" or
"[[rating_a,rating_b]]")}. A suite names one template (`prompt_name`, e.g. pair-v2 or single-v1);
per item the variant is picked as FastChat's gen_judgment.py picks it: the "math" variant
(pair-math-v1 / single-math-v1) where the question carries a reference answer (in MT-Bench exactly
the math, reasoning and coding questions, FastChat's NEED_REF_CATS), and the `-multi-turn` variant
for turn 2. FastChat has no template for a third turn: such an item is stored unparsed, with why.
Each call is a system message (the template's system_prompt) and a user message (prompt_template
filled in), as FastChat sends them to its OpenAI judges (gpt-4, gpt-3.5-turbo), whose scores are the
published ones.

Not injection-safe: the answers are pasted in verbatim and the verdict is the first [[A]] / [[B]] /
[[C]] (or [[rating]]) anywhere in the output, so an answer can plant the verdict (`card_notes`).
"""

from __future__ import annotations

import ast
import re
import string
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, DataError
from harness.models.base import Conversation, Message, stable_hash
from judges.base import JudgeOutput, PairItem, SingleItem
from judges.jsonl import read_jsonl
from judges.llm import LLMJudge

FASTCHAT_VERSION = "fastchat-v2"  # rendering, variant choice and parsing below; bump on any change
TIE_DELTA = 0.1  # FastChat: two ratings closer than this are a tie ([[rating_a,rating_b]])
FORMATS_OF = {"pairwise": ("[[A]]", "[[rating_a,rating_b]]"), "single": ("[[rating]]",)}  # what FastChat parses
TYPES = tuple(FORMATS_OF)
# FastChat's own pairing of a default template with its reference-guided one (gen_judgment.py).
MATH_VARIANT = {"pair-v2": "pair-math-v1", "single-v1": "single-math-v1"}
MULTI_TURN = "-multi-turn"

# FastChat's patterns (common.py), kept as they are: the backup forms accept single brackets.
_TWO_SCORES = re.compile(r"\[\[(\d+\.?\d*),\s?(\d+\.?\d*)\]\]")
_TWO_SCORES_BACKUP = re.compile(r"\[(\d+\.?\d*),\s?(\d+\.?\d*)\]")
_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

_REFS = {"ref_answer_1", "ref_answer_2"}
PLACEHOLDERS = {  # (type, multi-turn) -> the names FastChat's format() call passes
    ("pairwise", False): {"question", "answer_a", "answer_b"} | _REFS,
    ("pairwise", True): {"question_1", "question_2", "answer_a_1", "answer_b_1", "answer_a_2", "answer_b_2"} | _REFS,
    ("single", False): {"question", "answer"} | _REFS,
    ("single", True): {"question_1", "question_2", "answer_1", "answer_2"} | _REFS,
}

CARD_NOTES = (
    "FastChat templates are not injection-safe: the answers are pasted in verbatim and the verdict is the "
    "first [[A]]/[[B]]/[[C]] (or [[rating]]) anywhere in the judge's output, so an answer that contains such "
    "a marker, or talks the judge into repeating one, can decide the verdict. Use style: prompt (tagged "
    "verdict lines) where candidates may be adversarial.",
)


@dataclass(frozen=True)
class Template:
    """One line of judge_prompts.jsonl."""

    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str
    record: dict  # the whole line, hashed into the judge's fingerprint

    def placeholders(self) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(self.prompt_template) if field}


def load_judge_prompts(path: Path | str) -> dict[str, Template]:
    """name -> Template; a line that FastChat could not use is a one-line DataError naming it."""
    templates: dict[str, Template] = {}
    for lineno, row in read_jsonl(Path(path)):
        where = f"{path}:{lineno}"
        for key in ("name", "type", "system_prompt", "prompt_template", "output_format"):
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: field '{key}': missing or not a string: FastChat's judge_prompts.jsonl "
                                "layout has name, type, system_prompt, prompt_template, output_format")
        if row["type"] not in TYPES:
            raise DataError(f"{where}: field 'type': {row['type']!r}: use pairwise or single")
        formats = FORMATS_OF[row["type"]]
        if row["output_format"] not in formats:
            raise DataError(f"{where}: field 'output_format': {row['output_format']!r}: a {row['type']} template "
                            f"uses {' or '.join(formats)}")
        template = Template(row["name"], row["type"], row["system_prompt"], row["prompt_template"],
                            row["output_format"], row)
        allowed = PLACEHOLDERS[(template.type, template.name.endswith(MULTI_TURN))]
        try:
            unknown = sorted(template.placeholders() - allowed)
        except ValueError as exc:  # an unmatched brace: FastChat's format() would fail on it too
            raise DataError(f"{where}: field 'prompt_template': {exc}: escape literal braces as {{{{ }}}}") from None
        if unknown:
            raise DataError(f"{where}: field 'prompt_template': placeholder {{{unknown[0]}}} is not one FastChat "
                            f"fills for a {template.type} template: use {', '.join(sorted(allowed))}")
        templates[template.name] = template
    return templates


class FastChatTemplates:
    """The templates one judge may use: `name` and the variants FastChat pairs with it."""

    def __init__(self, path: Path | str, name: str, judge: str = "judge"):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"judge '{judge}': prompt_file: {self.path} does not exist: point it at FastChat's "
                              "fastchat/llm_judge/data/judge_prompts.jsonl (or a file in its layout)")
        self.all = load_judge_prompts(self.path)
        if name not in self.all:
            raise ConfigError(f"judge '{judge}': prompt_name: {name!r} is not in {self.path} (it has: "
                              f"{', '.join(sorted(self.all))})")
        self.name = name
        self.type = self.all[name].type
        wanted = {self.variant(math, multi) for math in (False, True) for multi in (False, True)}
        # FastChat's own families must be complete; a template of your own may stand alone.
        missing = sorted(w for w in wanted if w not in self.all) if name in MATH_VARIANT else []
        if missing:
            raise ConfigError(f"judge '{judge}': prompt_file: {self.path} lacks {', '.join(missing)}, which FastChat "
                              f"uses with {name} (reference-guided / turn 2): use FastChat's full judge_prompts.jsonl")
        self.used = {w: self.all[w] for w in sorted(wanted) if w in self.all}

    def variant(self, reference: bool, multi_turn: bool) -> str:
        base = MATH_VARIANT.get(self.name, self.name) if reference else self.name
        return base + MULTI_TURN if multi_turn else base

    def for_item(self, item: PairItem | SingleItem) -> Template | str:
        """The template FastChat would use for `item`, or why there is none."""
        if item.turn > 2:
            return f"FastChat's templates judge turns 1 and 2 only; this is turn {item.turn}"
        name = self.variant(bool(item.reference), item.turn == 2)
        if name not in self.all:
            return f"{self.path} has no template {name!r} (needed for this item)"
        return self.all[name]

    def fingerprint(self) -> str:
        return stable_hash([t.record for t in self.used.values()])


def render(template: Template, item: PairItem | SingleItem) -> tuple[str, str] | str:
    """(system prompt, user prompt) exactly as FastChat's run_judge_pair / run_judge_single build
    them, or why the item cannot be rendered."""
    refs = _references(item)
    if isinstance(refs, str):
        return refs
    t = item.turns
    if isinstance(item, PairItem):
        a, b = item.answers_a, item.answers_b
        fields = (dict(question_1=t[0], question_2=t[1], answer_a_1=a[0], answer_b_1=b[0], answer_a_2=a[1],
                       answer_b_2=b[1]) if item.turn == 2 else dict(question=t[0], answer_a=a[0], answer_b=b[0]))
    else:
        a = item.answers
        fields = (dict(question_1=t[0], question_2=t[1], answer_1=a[0], answer_2=a[1]) if item.turn == 2
                  else dict(question=t[0], answer=a[0]))
    needed = template.placeholders() & _REFS
    if needed - set(refs):
        return f"template {template.name!r} needs {', '.join(sorted(needed - set(refs)))}, which this item lacks"
    return template.system_prompt, template.prompt_template.format(**fields, **refs)


def _references(item: PairItem | SingleItem) -> dict[str, str] | str:
    """FastChat passes ref_answer_1 and ref_answer_2 (both turns' references): an item's
    `references` where it has them, else the judged turn's `reference` alone."""
    if item.references:
        return {f"ref_answer_{i + 1}": r for i, r in enumerate(item.references[:2])}
    if not item.reference:
        return {}
    return {f"ref_answer_{item.turn}": item.reference}


def parse(output_format: str, text: str) -> tuple[str | None, float | None]:
    """(verdict 'A' | 'B' | 'tie', rating) as FastChat reads them; (None, None) where FastChat
    records 'error' / -1 (we store those as unparsed instead of as a -1 score)."""
    if output_format == "[[A]]":
        for marker, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
            if marker in text:
                return verdict, None
        return None, None
    if output_format == "[[rating_a,rating_b]]":
        match = _TWO_SCORES.search(text) or _TWO_SCORES_BACKUP.search(text)
        if not match:
            return None, None
        a, b = (float(ast.literal_eval(s.strip())) for s in match.groups())
        return ("tie" if abs(a - b) <= TIE_DELTA else "A" if a > b else "B"), None
    match = _ONE_SCORE.search(text) or _ONE_SCORE_BACKUP.search(text)
    return None, (float(ast.literal_eval(match.group(1))) if match else None)


class FastChatJudge(LLMJudge):
    """An LLMJudge (same backends, batching, streaming and parse retries) whose prompts and parser
    are FastChat's. kind follows the template's type: pairwise templates give one 'overall' verdict
    per call, single ones a rating."""

    card_notes = CARD_NOTES

    def __init__(self, name: str, backend, templates: FastChatTemplates, *, kind: str = "pairwise", **kwargs):
        if templates.type != kind:
            fix = "kind: single" if templates.type == "single" else "kind: pairwise"
            raise ConfigError(f"judge '{name}': prompt_name: {templates.name} is a FastChat {templates.type} "
                              f"template: set {fix}")
        super().__init__(name, backend, style="prompt", kind=kind, dimensions=("overall",), **kwargs)
        self.style, self.templates = "fastchat", templates

    def resampled(self, sample: int) -> "FastChatJudge":
        copy = super().resampled(sample)
        copy.__class__ = FastChatJudge  # LLMJudge.resampled builds an LLMJudge; keep FastChat's prompts
        return copy

    def fingerprint(self) -> str:
        return stable_hash({"llm": super().fingerprint(), "fastchat": [FASTCHAT_VERSION, self.templates.name,
                                                                       self.templates.fingerprint()]})

    def _call_with_retries(self, items, dims: tuple[str, ...]) -> list[JudgeOutput]:
        outputs: list[JudgeOutput | None] = [self._unrenderable(item) for item in items]
        todo = [i for i, out in enumerate(outputs) if out is None]
        if todo:
            for i, out in zip(todo, super()._call_with_retries([items[i] for i in todo], dims)):
                outputs[i] = out
        return outputs  # type: ignore[return-value]

    async def ajudge(self, item) -> dict[str, JudgeOutput]:
        skipped = self._unrenderable(item)
        if skipped is not None:
            return {d: skipped for d in self.dimensions}
        return await super().ajudge(item)

    def _unrenderable(self, item) -> JudgeOutput | None:
        """An unparsed output saying why FastChat has no prompt for `item` (no model call)."""
        template = self.templates.for_item(item)
        why = template if isinstance(template, str) else render(template, item)
        return JudgeOutput(raw=f"not judged: {why}") if isinstance(why, str) else None

    def _conversation(self, item, dims: tuple[str, ...]) -> Conversation:
        system, user = render(self.templates.for_item(item), item)  # type: ignore[misc, arg-type]
        return ((Message("system", system),) if system else ()) + (Message("user", user),)

    def _parse(self, text: str, item, dims: tuple[str, ...], attempt: int) -> JudgeOutput:
        template = self.templates.for_item(item)
        verdict, rating = parse(template.output_format, text)  # type: ignore[union-attr]
        output = JudgeOutput(raw=text, attempts=attempt, score=rating if self.kind == "single" else None)
        if self.kind == "pairwise" and verdict is not None:
            output.verdicts = {d: verdict for d in dims}
        return output
