"""The one owner of "the current results": which stored judgments count, merged into battles.

Every consumer — ratings and the terminal leaderboard, every app page, judge reliability and
self-preference, judge-eval, the human-in-the-loop refit, DPO/SFT mining, parent comparisons —
gets its battles from here. The rule (its SQL is in harness.store.battles):
  - a judge counts with its current fingerprints only (the ones its last run registered);
  - an answer counts only from its model's current fingerprint (the one used last);
  - per battle, the most recent answer pair, and per order its most recent row;
  - people's verdicts (judge `human:<name>`) count once per person and battle, and with
    `humans=True` they settle the battle: the judge's merged verdict is replaced by theirs
    (several people on one battle share its weight).
Superseded rows stay stored as history and are never mixed with current ones. The merge policies
are judges.merge's; `battles_fast` runs the same policies in SQL and is pinned to `battles` by a
property test over random stores.
"""

from __future__ import annotations

from dataclasses import replace

from harness.store import Store
from harness.store import battles as sql
from harness.store.battles import Filters
from judges.merge import POLICIES, Battle, JudgmentRow, merge_orders

HUMAN_PREFIX = "human:"


# Which battles to read (judges, models, sets, dimension, category, turn; None means any): the
# store's filter type, used as it is. A suite's selection: `for_suite`.
Selection = Filters


def people_selection(selection: Selection) -> Filters:
    """The same selection over people's verdicts (any person, whatever judges it names)."""
    return replace(selection, judges=None, humans=True)


def for_suite(suite, **narrower) -> Selection:
    """The battles a suite's board is made of: its pairwise judges on its sets, among every model
    judged there (a model added by `harness train --then-eval` stays on the board). Keyword fields
    set here replace the suite's (pass judges/sets that belong to the suite to narrow it)."""
    fields = {"judges": tuple(j.name for j in suite.judges if j.kind == "pairwise"),
              "sets": tuple(s.name for s in suite.sets)}
    return Selection(**(fields | {k: v for k, v in narrower.items() if v is not None or k not in fields}))


def _row(r: tuple) -> JudgmentRow:
    (set_name, qid, turn, category, judge, dim, ma, mb, verdict, len_a, len_b, lp1, lp2, lpt, aa, ab, _) = r
    logprobs = (lp1, lp2, lpt) if None not in (lp1, lp2, lpt) else None
    return JudgmentRow(set_name, qid, turn, category, judge, dim, ma, mb, verdict, len_a, len_b, logprobs, aa, ab)


def counted(store: Store, selection: Selection = Selection()) -> tuple[list[JudgmentRow], list[tuple[str, bool]]]:
    """From one read: the LLM judges' pairwise rows that count (both orders, unparsed ones with
    verdict None), and (call_id, parsed in every dimension) per judge call they come from."""
    with store.read() as con:
        raw = sql.counted_rows(con, selection)
    parsed: dict[str, bool] = {}
    for r in raw:
        parsed[r[-1]] = parsed.get(r[-1], True) and r[8] is not None
    return [_row(r) for r in raw], sorted(parsed.items())


def counted_rows(store: Store, selection: Selection = Selection()) -> list[JudgmentRow]:
    """The LLM judges' pairwise rows that count, both orders, unparsed ones with verdict None."""
    return counted(store, selection)[0]


def human_rows(store: Store, selection: Selection = Selection()) -> list[JudgmentRow]:
    """People's verdicts that count: one per person and battle (their latest), parsed only."""
    with store.read() as con:
        return [row for row in map(_row, sql.counted_rows(con, people_selection(selection))) if row.verdict]


def _check(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"merge policy must be one of {POLICIES}, got {policy!r}")


def _key(b) -> tuple:
    return (b.set_name, b.question_id, b.turn, b.dimension, min(b.model_a, b.model_b), max(b.model_a, b.model_b))


def human_battles(rows: list[JudgmentRow], judge_name: str) -> list[Battle]:
    """People's verdicts as battles labelled with `judge_name` (the judge they settle battles for);
    several people on one battle share its weight."""
    by_battle: dict[tuple, list[JudgmentRow]] = {}
    for r in rows:
        by_battle.setdefault(_key(r), []).append(r)
    out = []
    for (set_name, qid, turn, dim, x, y), group in sorted(by_battle.items()):
        for r in group:
            won = {"A": r.model_a, "B": r.model_b}.get(r.verdict or "", "tie")
            winner = "tie" if won == "tie" else ("model_a" if won == x else "model_b")
            x_is_a = r.model_a == x
            out.append(Battle(x, y, winner, 1 / len(group), r.category, True, judge_name, dim,
                              *((r.len_a, r.len_b) if x_is_a else (r.len_b, r.len_a)), set_name, qid, turn,
                              *((r.answer_a, r.answer_b) if x_is_a else (r.answer_b, r.answer_a))))
    return out


def settle(llm: list[Battle], people: list[JudgmentRow], judged: set[tuple]) -> list[Battle]:
    """Each judge's battles, with every battle a person settled replaced by the people's verdicts.
    `judged`: (judge, *battle key) of the battles each judge fought (counted rows, merged or not:
    under `drop` a battle the judge contradicted itself on is exactly what a person settles)."""
    settled: dict[tuple, list[JudgmentRow]] = {}
    for r in people:
        settled.setdefault(_key(r), []).append(r)
    out = [b for b in llm if _key(b) not in settled]
    for judge, *key in sorted(judged):
        if tuple(key) in settled:
            out += human_battles(settled[tuple(key)], judge)
    return sorted(out, key=sort_key)


def sort_key(b: Battle) -> tuple:
    """A fixed order, so order-dependent raters (online Elo) give the same numbers on every path."""
    return (b.judge_name, b.dimension, b.set_name, b.question_id, b.turn, b.model_a, b.model_b, b.winner, b.weight)


def _judged(store: Store, selection: Selection) -> set[tuple]:
    with store.read() as con:
        return set(sql.judged_battles(con, selection))


def battles(store: Store, selection: Selection = Selection(), policy: str = "inconsistent_tie",
            humans: bool = False) -> list[Battle]:
    """Merged battles of the counted rows (judges.merge, in Python: the reference path)."""
    _check(policy)
    rows = counted_rows(store, selection)
    merged = sorted(merge_orders(rows, policy), key=sort_key)
    if not humans:
        return merged
    return settle(merged, human_rows(store, selection), _judged(store, selection))


def battles_fast(store: Store, selection: Selection = Selection(), policy: str = "inconsistent_tie",
                 humans: bool = False) -> list[Battle]:
    """The same battles as `battles`, merged in SQL (large stores: the app)."""
    _check(policy)
    with store.read() as con:
        rows = sql.merged_battles(con, selection, policy)
    merged = []
    for set_name, qid, turn, category, judge, dim, x, y, len_x, len_y, ans_x, ans_y, outcome, weight, agree in rows:
        winner = "tie" if outcome == "tie" else ("model_a" if outcome == x else "model_b")
        merged.append(Battle(x, y, winner, float(weight), category, bool(agree), judge, dim, len_x, len_y,
                             set_name, qid, turn, ans_x, ans_y))
    merged.sort(key=sort_key)
    if not humans:
        return merged
    return settle(merged, human_rows(store, selection), _judged(store, selection))


def grades(store: Store, judges: tuple[str, ...] | None = None, sets: tuple[str, ...] | None = None
           ) -> list[tuple[str, str, int, float]]:
    """(judge, model, turn, score) of the single grades that count (every repeat of a grader)."""
    with store.read() as con:
        return [r[:4] for r in sql.counted_grades(con, Filters(judges=judges, sets=sets))]
