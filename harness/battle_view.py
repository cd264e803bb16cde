"""One battle as a person inspects it (like inspect_ai's sample viewer): both answers, every judge's
input and output per order and per dimension, likelihoods, the merged outcome under the suite's
policy, and the answers' tokens and timing. Reads through harness.views (its counted rows and merged
outcomes), so what it shows is what the board counted.

The store keeps each judge call's output, not its input: the input is rebuilt by the judging code's
own item builder (harness.judging) and the judge's own prompt function (judges.llm), from the stored
answers, question and verdict tag; the viewer says so."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.store import Store
from harness.store import views as reads

PROMPT_NOTE = ("Rebuilt, not stored: the store keeps each call's output; its input is rebuilt here by the judge's "
               "own prompt function from the stored answers, question and verdict tag (exact while the prompt "
               "templates are the ones the judge's fingerprint was made with).")


@dataclass
class JudgeCall:
    """One stored call of a judge (or a person's verdict) on one order, in parts: a part is what one
    prompt was asked (every dimension at once, or one dimension for a per-dimension judge) with its
    output and each dimension's verdict."""

    judge: str
    shown_first: str
    shown_second: str
    counted: bool
    parts: list[dict]  # dimensions, prompt [(role, text)] or None, raw_output, verdicts [dict per dimension]
    prompt_problem: str | None = None  # why the prompt could not be rebuilt
    created_at: object = None


@dataclass
class BattleView:
    suite: str
    set_name: str
    question_id: str
    turn: int
    x: str
    y: str
    category: str
    turns: list[str]  # the user's turns up to this one
    answers: dict[str, list[str]]  # model -> its answers, turn 1..turn
    costs: dict[str, dict]  # model -> tokens, finish reason, latency of its answer to this turn
    merged: list[dict]  # judge, dimension, winner under the suite's policy (or None: not on the board)
    calls: list[JudgeCall] = field(default_factory=list)
    policy: str = "inconsistent_tie"


def probabilities(row: dict) -> dict[str, float] | None:
    """P("1"), P("2"), P("Tie") of a likelihood-choice call, normalised over the three choices."""
    lps = [row.get(k) for k in ("choice_lp_1", "choice_lp_2", "choice_lp_tie")]
    if None in lps:
        return None
    top = max(lps)
    weights = [math.exp(v - top) for v in lps]
    return dict(zip(("1 (first shown)", "2 (second shown)", "tie"), (w / sum(weights) for w in weights)))


def battle(store: Store, suite: str, set_name: str, question_id: str, turn: int, x: str, y: str) -> BattleView | None:
    """The battle (set, question, turn, pair) of `suite`; None when nothing of it is stored."""
    from harness import views

    conv = views.conversation(store, suite, set_name, question_id, x, y)
    if conv is None:
        return None
    rows = [j for j in conv.judgments if j["turn"] == turn]
    if not rows:
        return None
    config = views.suite_config(store, suite)
    answer_ids = _answer_ids(rows, x, y)
    costs = reads.answer_costs(store, list(answer_ids.values()))
    merged = sorted({(j["judge"], j["dimension"], j["merged_winner"]) for j in rows if j["counted"]
                     and not j["judge"].startswith(views.HUMAN_PREFIX)}, key=str)
    view = BattleView(suite, set_name, question_id, turn, min(x, y), max(x, y), conv.category, conv.turns[:turn],
                      {m: reads.answer_chain(store, a)[:turn] for m, a in answer_ids.items()},
                      {m: costs.get(a, {}) for m, a in answer_ids.items()},
                      [{"judge": j, "dimension": d, "winner": w} for j, d, w in merged],
                      policy=config.ratings.merge if config else "inconsistent_tie")
    view.calls = _calls(store, config, rows, conv, turn)
    return view


def _answer_ids(rows: list[dict], x: str, y: str) -> dict[str, str]:
    """model -> the answer id its counted rows judged at this turn (the latest otherwise)."""
    out: dict[str, str] = {}
    for j in sorted(rows, key=lambda r: (r["counted"], str(r["created_at"]))):
        out[j["shown_first"]], out[j["shown_second"]] = j["answer_a"], j["answer_b"]
    return {m: out[m] for m in (x, y) if m in out}


def _calls(store: Store, config, rows: list[dict], conv, turn: int) -> list[JudgeCall]:
    """Each (judge, call, order) group of rows as one call, counted ones first."""
    groups: dict[tuple, list[dict]] = {}
    for j in rows:
        groups.setdefault((j["judge"], j["call_id"], j["shown_first"]), []).append(j)
    specs = {s.name: s for s in config.judges} if config else {}
    salt = _salt(store)
    references = tuple(reads.question_references(store, conv.set_name, conv.question_id))
    out = []
    for (judge, call_id, first), group in sorted(groups.items(), key=lambda kv: (not kv[1][0]["counted"], kv[0])):
        group = sorted(group, key=lambda r: r["dimension"])
        head = group[0]
        call = JudgeCall(judge, first, head["shown_second"], head["counted"], [], created_at=head["created_at"])
        judge_obj, call.prompt_problem = (None, None) if judge.startswith("human:") else _judge(specs.get(judge), salt)
        item = None if judge_obj is None else _item(store, conv, references, salt, call_id, head, turn)
        for dims in _parts(judge_obj, group):
            mine = [j for j in group if j["dimension"] in dims]
            prompt = None if item is None else [(m.role, m.content) for m in judge_obj._conversation(item, tuple(dims))]
            call.parts.append({"dimensions": list(dims), "prompt": prompt, "raw_output": mine[0]["raw_output"],
                               "verdicts": [{"dimension": j["dimension"], "verdict": j["verdict"], "winner": j["winner"],
                                             "status": j["status"], "attempts": j["attempts"], "note": j.get("note"),
                                             "probabilities": probabilities(j)} for j in mine]})
        out.append(call)
    return out


def _parts(judge, group: list[dict]) -> list[list[str]]:
    """The dimensions that share one output: the judge's own grouping (one call for all in joint
    mode, one per dimension otherwise), split further where the stored outputs differ, so every
    dimension's output is shown."""
    stored = [j["dimension"] for j in group]
    groups = [stored]
    if judge is not None:
        groups = [list(judge.dimensions)] if judge.dimension_mode == "joint" else [[d] for d in judge.dimensions]
        groups = [[d for d in g if d in stored] for g in groups]
        groups += [[d for d in stored if not any(d in g for g in groups)]]  # dimensions the spec no longer has
    output = {j["dimension"]: j["raw_output"] for j in group}
    parts = []
    for g in groups:
        by_output: dict[str, list[str]] = {}
        for d in g:
            by_output.setdefault(output[d], []).append(d)
        parts += by_output.values()
    return parts


def _judge(spec, salt):
    """(the judge as its spec builds it, on a backend that never answers, None) or (None, why not)."""
    if spec is None:
        return None, "this judge is not in the suite's latest config, so its prompt cannot be rebuilt"
    if salt is None:
        return None, "this store has no verdict tag secret (made before migration 007), so no prompt is rebuilt"
    if getattr(spec, "model", None) is None:  # a panel: building it would load its members' models
        return None, "a panel's verdict combines its members' calls; open a member judge's rows for their prompts"
    judge = spec.judge_on(_PromptOnly())
    if not hasattr(judge, "_conversation"):
        return None, "this kind of judge has no prompt of its own to rebuild"
    return judge, None


def _item(store: Store, conv, references: tuple, salt: str, call_id: str, row: dict, turn: int):
    """The item the judge was given, built by the judging code's own builder (`_Call.with_item`)."""
    from harness.judging import _Call
    from harness.sets import Question

    question = Question(conv.set_name, conv.question_id, conv.category, tuple(conv.turns), references)
    chains = [[(None, t) for t in reads.answer_chain(store, a)[:turn]] for a in (row["answer_a"], row["answer_b"])]
    for chain, answer in zip(chains, (row["answer_a"], row["answer_b"])):
        chain[-1] = (answer, chain[-1][1])
    return _Call(call_id, question, turn, row["shown_first"], row["shown_second"], *chains).with_item(salt).item


def _salt(store: Store) -> str | None:
    from harness.store.queries import verdict_tag_salt

    try:
        with store.read() as con:
            return verdict_tag_salt(con)
    except Exception:  # a store from before migration 007 has no verdict tags  # noqa: BLE001
        return None


class _PromptOnly:
    """A backend that only lets a judge be built to write its prompt: every call is a bug."""

    def fingerprint(self) -> str:
        return "prompt-only"

    def generate(self, conversations, params):
        raise RuntimeError("the battle viewer rebuilds prompts; it never calls a judge")

    def score_choices(self, conversations, choices):
        raise RuntimeError("the battle viewer rebuilds prompts; it never calls a judge")

    def close(self) -> None:
        pass
