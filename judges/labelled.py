"""Labelled pairs: two responses to one prompt and which one people (or the truth) prefer.

One format for every judge benchmark, and loaders that read the peers' own files into it.

The labelled-pairs JSONL format (one object per line; `write_pairs` / `read_pairs` round-trip it):

    {"id": "q81:gpt-4:claude-v1",          # unique within the file
     "subset": "writing",                  # category the metrics are split by ("all" when there is none)
     "prompt": "Write a haiku ...",        # a single-turn prompt, or instead:
     "conversation": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."},
                      {"role": "user", "content": "..."}],   # earlier turns, shared, ending with the user
     "response_a": "...", "response_b": "...",               # the two replies to the last user message
     "label": "A",                          # "A" | "B" | "tie" (A: response_a is better), or one per
                                            # annotator: ["A", "tie", "A"]
     "annotators": ["expert_0", "expert_3"],# optional: names for a per-annotator label list
     "reference": "...",                    # optional reference answer
     "tags": {"bias": "length bias"}}       # optional string tags (source, models, bias type ...)

The gold label of a pair with several annotators is their majority; on a split, the first
annotator's label (PandaLM's rule, judges.meta.majority_label).

Loaders for the peers' files (each returns LabelledPairs; a bad row is one DataError line naming
the file, the row, the field and the fix):

- `load_llmbar`: LLMBar `dataset.json` (JSON array of {input, output_1, output_2, label: 1|2}); a
  folder is read recursively, each dataset.json's folder being its subset (Natural, Adversarial/...).
- `load_judgebench`: JudgeBench JSONL ({pair_id, original_id, source, question, response_model,
  response_A, response_B, label: "A>B"|"B>A"}); subset = source.
- `load_rewardbench`: RewardBench ({id, subset, prompt, chosen, rejected}, chosen is better),
  JSON Lines or a JSON array.
- `load_evalbiasbench`: EvalBiasBench/OffsetBias (array of {bias, instruction, response1,
  response2, label: 1|2}, or the repository's object of such arrays by bias); subset = bias.
- `load_alpaca_crossannotations`: AlpacaEval human cross-annotations ({instruction, output_1,
  output_2, preference, annotator_index}); the rows of one (instruction, output_1, output_2) become
  one pair with a per-annotator label list. Preference as AlpacaEval encodes it: 1 = output_1,
  2 = output_2, 1.5 or 0 = a draw (alpaca_eval.metrics.winrate).
- `load_hh_rlhf`: Anthropic HH-RLHF ({chosen, rejected} full "\\n\\nHuman: ... \\n\\nAssistant: ..."
  dialogues, optionally gzipped); the shared dialogue before the last Assistant reply is the
  conversation, the two last replies the responses. Rows whose two dialogues differ before the last
  reply (5 of the 2,312 harmless-base test rows) or do not alternate Human/Assistant are skipped.
- The PandaLM test set and MT-Bench human votes: judges.meta.pandalm_pairs / mt_bench_pairs.

Loaders never randomise positions: many files put the better response first (RewardBench, HH-RLHF,
EvalBiasBench). The evaluator (harness.judge_eval) presents each pair in a seeded random order and
judges both orders.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from harness.errors import DataError
from judges.jsonl import read_jsonl

LABELS = ("A", "B", "tie")
FORMATS = ("labelled", "llmbar", "judgebench", "rewardbench", "evalbiasbench", "alpaca_eval", "hh_rlhf",
           "pandalm", "mt_bench")


@dataclass(frozen=True)
class LabelledPair:
    """One labelled pair. `turns` are the user messages (the last one is answered by the two
    responses); `history[i]` is the shared assistant reply to `turns[i]` (len(turns) - 1 of them).
    `labels` holds one label per annotator (one item for a single gold label)."""

    id: str
    subset: str
    turns: tuple[str, ...]
    response_a: str
    response_b: str
    labels: tuple[str, ...]
    history: tuple[str, ...] = ()
    annotators: tuple[str, ...] = ()
    reference: str | None = None
    tags: dict = field(default_factory=dict, hash=False, compare=True)

    @property
    def gold(self) -> str:
        """The majority label ('A', 'B' or 'tie'); on a split the first annotator's."""
        counts: dict[str, int] = {}
        for label in self.labels:
            counts[label] = counts.get(label, 0) + 1
        return max(counts, key=counts.__getitem__)  # dicts keep first-seen order: ties go to the earliest

    @property
    def prompt(self) -> str:
        return self.turns[-1]

    # The names of judges.meta's former MT-Bench-only pair, for code written against it: the model
    # names and question id come from the tags MT-Bench pairs carry (judges.meta.mt_bench_pairs).
    @property
    def question_id(self) -> str:
        return self.tags.get("question_id", self.id)

    @property
    def model_a(self) -> str:
        return self.tags.get("model_a", "response_a")

    @property
    def model_b(self) -> str:
        return self.tags.get("model_b", "response_b")

    @property
    def turn(self) -> int:
        return int(self.tags.get("turn", len(self.turns)))

    @property
    def category(self) -> str:
        return self.subset

    @property
    def question(self) -> str:
        return self.turns[-1]

    @property
    def answer_a(self) -> str:
        return self.response_a

    @property
    def answer_b(self) -> str:
        return self.response_b

    @property
    def votes(self) -> tuple:
        """The labels as judges.meta.Vote objects (annotators as judges)."""
        from judges.meta import votes_of

        return tuple(votes_of(self))


# ---------------------------------------------------------------- reading helpers (shared with judges.meta)


def json_array_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """Rows of a JSON array, each with a location `file: item N` for error messages."""
    path = Path(path)
    yield from object_rows(load_json(path), str(path))


def load_json(path: Path):
    """A JSON file's value; a missing or unreadable file is a one-line DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found: check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}): expected a JSON array of objects") from None


def object_rows(rows, where: str) -> Iterator[tuple[str, dict]]:
    """The objects of `rows` (a JSON array found at `where`), each with its location `where: item N`."""
    if not isinstance(rows, list):
        raise DataError(f"{where}: expected a JSON array of objects, got {type(rows).__name__}")
    for number, row in enumerate(rows):
        item = f"{where}: item {number}"
        if not isinstance(row, dict):
            raise DataError(f"{item}: expected a JSON object, got {type(row).__name__}")
        yield item, row


def field_of(where: str, row: dict, key: str, kind: type | tuple[type, ...], fix: str):
    """row[key], checked to be of `kind` (bool never passes for int)."""
    if key not in row:
        raise DataError(f"{where}: field '{key}': missing: {fix}")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise DataError(f"{where}: field '{key}': {value!r} has the wrong type: {fix}")
    return value


def _text(where: str, row: dict, key: str) -> str:
    return field_of(where, row, key, str, "give the text as a string (may be empty)")


def _check_unique(pairs: list[LabelledPair], path: Path) -> list[LabelledPair]:
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise DataError(f"{path}: field 'id': duplicate id {pair.id!r}: give each pair a unique id")
        seen.add(pair.id)
    if not pairs:
        raise DataError(f"{path}: no pairs: the file is empty")
    return pairs


def _content_id(*texts: str) -> str:
    return hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- our format


def _label_list(where: str, row: dict) -> tuple[str, ...]:
    value = row.get("label")
    labels = [value] if isinstance(value, str) else value
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) and v in LABELS for v in labels):
        raise DataError(f"{where}: field 'label': {value!r}: use \"A\", \"B\" or \"tie\", or a non-empty list of them")
    return tuple(labels)


def _conversation(where: str, row: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(user turns, shared assistant replies) from 'prompt' or 'conversation'."""
    if ("prompt" in row) == ("conversation" in row):
        raise DataError(f"{where}: field 'prompt': give either 'prompt' (text) or 'conversation' (messages)")
    if "prompt" in row:
        return (_text(where, row, "prompt"),), ()
    messages = field_of(where, row, "conversation", list, "give a list of {role, content} messages")
    roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(messages))]
    if not messages or len(messages) % 2 == 0 or not all(
            isinstance(m, dict) and m.get("role") == r and isinstance(m.get("content"), str)
            for m, r in zip(messages, roles)):
        raise DataError(f"{where}: field 'conversation': expected user/assistant messages alternating, "
                        "starting and ending with a user message")
    return tuple(m["content"] for m in messages[::2]), tuple(m["content"] for m in messages[1::2])


def _pair_from_row(where: str, row: dict) -> LabelledPair:
    turns, history = _conversation(where, row)
    labels = _label_list(where, row)
    annotators = row.get("annotators", [])
    if not isinstance(annotators, list) or not all(isinstance(a, str) for a in annotators) or (
            annotators and len(annotators) != len(labels)):
        raise DataError(f"{where}: field 'annotators': give one name per label ({len(labels)}), or leave it out")
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise DataError(f"{where}: field 'reference': give the reference answer as text, or leave it out")
    tags = row.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise DataError(f"{where}: field 'tags': give an object of string values, e.g. {{\"bias\": \"length\"}}")
    subset = row.get("subset", "all")
    if not isinstance(subset, str) or not subset:
        raise DataError(f"{where}: field 'subset': give a non-empty string (or leave it out: 'all')")
    pair_id = field_of(where, row, "id", (str, int), "give each pair a unique id")
    return LabelledPair(str(pair_id), subset, turns, _text(where, row, "response_a"), _text(where, row, "response_b"),
                        labels, history, tuple(annotators), reference, dict(tags))


def read_pairs(path: Path) -> list[LabelledPair]:
    """Pairs from a labelled-pairs JSONL file (the format above)."""
    return _check_unique([_pair_from_row(f"{path}:{n}", row) for n, row in read_jsonl(path)], Path(path))


def pair_row(pair: LabelledPair) -> dict:
    """The JSONL object of one pair (what `write_pairs` writes, what `read_pairs` reads back)."""
    row: dict = {"id": pair.id, "subset": pair.subset}
    if pair.history:
        messages = []
        for turn, reply in zip(pair.turns, pair.history):
            messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
        row["conversation"] = messages + [{"role": "user", "content": pair.turns[-1]}]
    else:
        row["prompt"] = pair.turns[-1]
    row |= {"response_a": pair.response_a, "response_b": pair.response_b,
            "label": pair.labels[0] if len(pair.labels) == 1 and not pair.annotators else list(pair.labels)}
    if pair.annotators:
        row["annotators"] = list(pair.annotators)
    if pair.reference is not None:
        row["reference"] = pair.reference
    if pair.tags:
        row["tags"] = dict(pair.tags)
    return row


def write_pairs(pairs: Iterable[LabelledPair], path: Path) -> int:
    """Write pairs as labelled-pairs JSONL; returns how many."""
    lines = [json.dumps(pair_row(p), ensure_ascii=False) + "\n" for p in pairs]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


# ---------------------------------------------------------------- the peers' files


def _one_two(where: str, row: dict, key: str = "label") -> str:
    value = field_of(where, row, key, int, "use 1 (the first output is better) or 2 (the second)")
    if value not in (1, 2):
        raise DataError(f"{where}: field '{key}': {value} is not a label: use 1 or 2")
    return "A" if value == 1 else "B"


def load_llmbar(path: Path) -> list[LabelledPair]:
    """LLMBar `dataset.json`, or a folder holding them (subset = each file's folder, relative)."""
    path = Path(path)
    files = sorted(path.rglob("dataset.json")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no dataset.json below this folder: point at LLMBar's Dataset/LLMBar")
    pairs = []
    for file in files:
        subset = file.parent.relative_to(path).as_posix() if path.is_dir() else file.parent.name
        for n, (where, row) in enumerate(json_array_rows(file)):
            pairs.append(LabelledPair(f"{subset}:{n}", subset or "all", (_text(where, row, "input"),),
                                      _text(where, row, "output_1"), _text(where, row, "output_2"),
                                      (_one_two(where, row),)))
    return _check_unique(pairs, path)


_JUDGEBENCH = {"A>B": "A", "B>A": "B"}


def load_judgebench(path: Path) -> list[LabelledPair]:
    """JudgeBench JSONL: subset = source; tags keep original_id and response_model."""
    pairs = []
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        label = field_of(where, row, "label", str, 'use "A>B" or "B>A"')
        if label not in _JUDGEBENCH:
            raise DataError(f"{where}: field 'label': {label!r}: use \"A>B\" or \"B>A\"")
        tags = {k: str(row[k]) for k in ("original_id", "response_model") if row.get(k) is not None}
        pairs.append(LabelledPair(str(field_of(where, row, "pair_id", (str, int), "give the pair_id")),
                                  field_of(where, row, "source", str, "give the source (e.g. mmlu-pro-math)"),
                                  (_text(where, row, "question"),), _text(where, row, "response_A"),
                                  _text(where, row, "response_B"), (_JUDGEBENCH[label],), tags=tags))
    return _check_unique(pairs, Path(path))


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """Rows of a JSON array or of JSON Lines, by the file's first character."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found: check the path")
    with path.open(encoding="utf-8") as fh:
        first = fh.read(1024).lstrip()[:1]
    if first == "[":
        yield from json_array_rows(path)
    else:
        yield from ((f"{path}:{n}", row) for n, row in read_jsonl(path))


def load_rewardbench(path: Path) -> list[LabelledPair]:
    """RewardBench rows: response_a = chosen (better), response_b = rejected."""
    pairs = [LabelledPair(str(field_of(where, row, "id", (str, int), "give the row id")),
                          field_of(where, row, "subset", str, "give the subset (e.g. alpacaeval-easy)"),
                          (_text(where, row, "prompt"),), _text(where, row, "chosen"), _text(where, row, "rejected"),
                          ("A",))
             for where, row in _rows(path)]
    return _check_unique(pairs, Path(path))


def load_evalbiasbench(path: Path) -> list[LabelledPair]:
    """EvalBiasBench: a JSON array of rows, or an object {bias: [rows]} as in the OffsetBias repository."""
    path = Path(path)
    data = load_json(path)
    if isinstance(data, dict):  # the repository's layout: rows grouped by bias
        groups = [(f"{path}: '{bias}'", rows) for bias, rows in data.items()]
    else:
        groups = [(str(path), data)]
    pairs, counts = [], defaultdict(int)
    for where_group, rows in groups:
        for where, row in object_rows(rows, where_group):
            bias = field_of(where, row, "bias", str, "give the bias type (e.g. length bias)")
            pairs.append(LabelledPair(f"{bias}:{counts[bias]}", bias, (_text(where, row, "instruction"),),
                                      _text(where, row, "response1"), _text(where, row, "response2"),
                                      (_one_two(where, row),), tags={"bias": bias}))
            counts[bias] += 1
    return _check_unique(pairs, path)


def alpaca_preference_label(where: str, value) -> str:
    """AlpacaEval's encoding: 1 = output_1 better, 2 = output_2, 1.5 or 0 = a draw; a value in
    between leans to the nearer output."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value == 0 or 1 <= value <= 2):
        raise DataError(f"{where}: field 'preference': {value!r}: use 1 (output_1), 2 (output_2) or 1.5 (draw)")
    return "tie" if value in (0, 1.5) else ("A" if value < 1.5 else "B")


def load_alpaca_crossannotations(path: Path) -> list[LabelledPair]:
    """AlpacaEval cross-annotations: one pair per (instruction, output_1, output_2), labels by annotator_index."""
    grouped: dict[tuple, list[tuple[int, str]]] = {}
    for where, row in _rows(path):
        key = (_text(where, row, "instruction"), _text(where, row, "output_1"), _text(where, row, "output_2"))
        index = field_of(where, row, "annotator_index", int, "give the annotator's integer index")
        grouped.setdefault(key, []).append((index, alpaca_preference_label(where, row.get("preference"))))
    pairs = []
    for (instruction, out_1, out_2), votes in grouped.items():
        votes.sort()
        pairs.append(LabelledPair(_content_id(instruction, out_1, out_2), "all", (instruction,), out_1, out_2,
                                  tuple(label for _, label in votes),
                                  annotators=tuple(f"annotator_{i}" for i, _ in votes)))
    return _check_unique(pairs, Path(path))


_HH_SPEAKER = re.compile(r"\n\n(Human|Assistant): ?")


def _hh_split(dialogue: str) -> tuple[str, str] | None:
    """(everything before the last Assistant reply, the reply), or None without one."""
    cut = dialogue.rfind("\n\nAssistant:")
    if cut < 0:
        return None
    reply = dialogue[cut + len("\n\nAssistant:"):]
    return dialogue[:cut], reply[1:] if reply.startswith(" ") else reply


def _hh_turns(prefix: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(human turns, assistant replies between them), or None when roles do not alternate from Human."""
    parts = _HH_SPEAKER.split(prefix)
    if parts[0].strip():
        return None
    roles, texts = parts[1::2], parts[2::2]
    if not roles or len(roles) % 2 == 0 or any(r != ("Human" if i % 2 == 0 else "Assistant")
                                               for i, r in enumerate(roles)):
        return None
    return tuple(texts[::2]), tuple(texts[1::2])


def load_hh_rlhf(path: Path) -> list[LabelledPair]:
    """HH-RLHF {chosen, rejected} dialogues (.jsonl or .jsonl.gz): response_a = chosen's last reply."""
    path = Path(path)
    pairs = []
    for n, row in read_jsonl(path):
        where = f"{path}:{n}"
        chosen, rejected = (_hh_split(_text(where, row, k)) for k in ("chosen", "rejected"))
        if chosen is None or rejected is None:
            raise DataError(f"{where}: field 'chosen': no '\\n\\nAssistant:' reply: give full HH-RLHF dialogues")
        turns = _hh_turns(chosen[0]) if chosen[0] == rejected[0] else None
        if turns is None:  # the two dialogues differ before the last reply: not one prompt, two answers
            continue
        pairs.append(LabelledPair(f"{path.name.split('.')[0]}:{n}", "all", turns[0], chosen[1], rejected[1],
                                  ("A",), history=turns[1]))
    return _check_unique(pairs, path)


def load_labelled(path: Path, fmt: str) -> list[LabelledPair]:
    """Pairs from `path` in one of FORMATS."""
    from judges import meta

    loaders = {"labelled": read_pairs, "llmbar": load_llmbar, "judgebench": load_judgebench,
               "rewardbench": load_rewardbench, "evalbiasbench": load_evalbiasbench,
               "alpaca_eval": load_alpaca_crossannotations, "hh_rlhf": load_hh_rlhf,
               "pandalm": lambda p: meta.pandalm_pairs(meta.load_pandalm_testset(p)),
               "mt_bench": meta.mt_bench_pairs}
    if fmt not in loaders:
        raise DataError(f"format '{fmt}': unknown: use one of {', '.join(FORMATS)}")
    return loaders[fmt](Path(path))


def subsets(pairs: Sequence[LabelledPair]) -> list[str]:
    """The pairs' subsets in first-seen order."""
    return list(dict.fromkeys(p.subset for p in pairs))
