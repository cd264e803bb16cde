"""What the app reads: every number that comes from judgments comes from harness.battles, under
the suite's own merge policy, so a page can never disagree with `harness ratings` or another page.

Every function takes a Store (open it with `open_for_viewing`, which never migrates or writes)
and returns rows as dicts or small dataclasses; no streamlit and no pandas here. Battle views take
the suite name as stored by its runs: its judges, sets and merge policy come from that config.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.battles import Selection, battles_fast, counted, counted_rows, for_suite, human_rows
from harness.config import Suite
from harness.leaderboard import rate, win_rate_of
from harness.models.base import stable_hash
from harness.store import Store
from harness.store import views as reads
from harness.store.judge_eval import judge_eval_results  # noqa: F401 (the app's Judges page)
from harness.store.ratings import latest_ratings  # noqa: F401 (the precomputed board)
from harness.store.views import filter_options, lineage, question_pairs, runs  # noqa: F401
from judges.merge import Battle

HUMAN_PREFIX = reads.HUMAN_PREFIX
APP_LOCK_WAIT_S = 2.0  # the app shows its last data rather than wait 30 s for a busy file
LIVE_ROUNDS = 200  # bootstrap rounds of a live refit (set filter, human verdicts)


def open_for_viewing(path: str | Path, lock_wait_s: float = APP_LOCK_WAIT_S) -> Store:
    return Store(path, migrate=False, lock_wait_s=lock_wait_s)


def schema_problem(store: Store) -> str | None:
    """None when the file holds the judged schema; otherwise a one-line message for the user."""
    hint = f"run `harness run quickstart --db {store.path}` first"
    if not store.path.exists():
        return f"{store.path}: no such database: {hint}."
    with store.read() as con:
        if not {"schema_migrations", "judgments", "ratings", "judges"} <= reads.tables(con):
            return f"{store.path}: has no harness schema yet (or an older one): {hint}."
    return None


def suite_config(store: Store, suite: str) -> Suite | None:
    """The suite as its latest run stored it (models, judges, merge policy)."""
    configs = reads.suite_configs(store, suite)
    return Suite.model_validate_json(configs[0]) if configs else None


def closed_metrics(store: Store, suite: str | None = None) -> list[dict]:
    """lm-eval metrics, latest result per (model, task, metric, filter); [] before migration 003."""
    from harness.store.closed import closed_scores

    with store.read() as con:
        if "closed_metrics" not in reads.tables(con):
            return []
    return closed_scores(store, suite)


# --- battles of a suite ----------------------------------------------------------------------------
def _selection(store: Store, suite: str, judge=None, dimension=None, set_name=None, category=None
               ) -> tuple[Selection, str]:
    config = suite_config(store, suite)
    if config is None:
        return Selection(judges=()), "inconsistent_tie"  # an unknown suite has no battles
    suite_selection = for_suite(config)
    narrower = {"dimension": dimension, "category": category}
    if judge is not None:  # narrows the suite's judges and sets: another suite's judge or set has none here
        narrower["judges"] = tuple(j for j in suite_selection.judges if j == judge)
    if set_name is not None:
        narrower["sets"] = tuple(s for s in suite_selection.sets if s == set_name)
    return for_suite(config, **narrower), config.ratings.merge


def suite_battles(store: Store, suite: str, judge: str | None = None, dimension: str | None = None,
                  set_name: str | None = None, category: str | None = None, humans: bool = False) -> list[Battle]:
    """The suite's merged battles (its policy), narrowed by the filters that are set."""
    selection, policy = _selection(store, suite, judge, dimension, set_name, category)
    return battles_fast(store, selection, policy, humans)


def merge_policy(store: Store, suite: str) -> str:
    config = suite_config(store, suite)
    return config.ratings.merge if config else "inconsistent_tie"


def pairwise_matrix(store: Store, suite: str, judge: str | None, dimension: str | None, set_name: str | None = None,
                    category: str | None = None) -> list[dict]:
    """Per ordered (model, opponent): battles, wins, ties, losses and win rate (ties half; under
    the `half` policy each half battle weighs 0.5)."""
    cells: dict[tuple[str, str], dict] = {}
    for b in suite_battles(store, suite, judge, dimension, set_name, category):
        for me, other in ((b.model_a, b.model_b), (b.model_b, b.model_a)):
            cell = cells.setdefault((me, other), {"battles": 0, "wins": 0.0, "ties": 0.0, "losses": 0.0})
            score = b.score_for(me)
            cell["battles"] += 1
            cell["wins" if score == 1 else "ties" if score == 0.5 else "losses"] += b.weight
    rows = []
    for (me, other), c in sorted(cells.items()):
        weight = c["wins"] + c["ties"] + c["losses"]
        rows.append({"model": me, "opponent": other, **c,
                     "win_rate": (c["wins"] + 0.5 * c["ties"]) / weight if weight else None})
    return rows


def category_breakdown(store: Store, suite: str, judge: str | None, dimension: str | None,
                       set_name: str | None = None) -> list[dict]:
    """Per (category, model): battles and win rate against all opponents (ties half)."""
    by_category: dict[tuple[str, str], list[Battle]] = {}
    for b in suite_battles(store, suite, judge, dimension, set_name):
        for model in (b.model_a, b.model_b):
            by_category.setdefault((b.category, model), []).append(b)
    return [{"category": c, "model": m, "battles": len(bs), "win_rate": win_rate_of(bs, m)[0]}
            for (c, m), bs in sorted(by_category.items())]


def _key(b) -> tuple:
    """(set, question, turn, dimension, x, y) of a battle or a row, x < y."""
    return (b.set_name, b.question_id, b.turn, b.dimension, min(b.model_a, b.model_b), max(b.model_a, b.model_b))


def _winner(b: Battle) -> str:
    return "tie" if b.winner == "tie" else getattr(b, b.winner)


def _decisions(fought: list[Battle]) -> dict[tuple, dict[str, float]]:
    """(judge, *battle key) -> {merged winner: share}: one winner with share 1, except under `half`,
    where a battle whose two orders disagree is two half battles, so its share splits."""
    weights: dict[tuple, dict[str, float]] = {}
    for b in fought:
        mine = weights.setdefault((b.judge_name, *_key(b)), {})
        mine[_winner(b)] = mine.get(_winner(b), 0.0) + b.weight
    return {k: {w: v / sum(ws.values()) for w, v in sorted(ws.items())} for k, ws in weights.items()}


def _agree(p: dict[str, float], q: dict[str, float]) -> float:
    """Chance two decisions name the same winner (1 or 0 unless a `half` battle split)."""
    return sum(share * q.get(winner, 0.0) for winner, share in p.items())


def _swap_battles(store: Store, selection: Selection, policy: str, fought: list[Battle]) -> list[Battle]:
    """Every battle with both orders parsed, `consistent` False where the two disagree (a judge
    contradicting itself under swap): inconsistent_tie's battles. Under `drop` those battles are not
    on the board, and under `half` / `calibrated` `consistent` is also False for a lone order."""
    return fought if policy == "inconsistent_tie" else battles_fast(store, selection, "inconsistent_tie")


def _flags(fought: list[Battle], swap: list[Battle]) -> dict[tuple, dict]:
    """Per (set, question, turn, x, y): whether a judge contradicted itself under swap, and whether
    judges decided some dimension differently (merged winners, the suite's policy)."""
    flags: dict[tuple, dict] = {}

    def entry(b: Battle) -> dict:
        f = flags.setdefault((b.set_name, b.question_id, b.turn, b.model_a, b.model_b),
                             {"flip": False, "disagree": False, "dimensions": set(), "category": b.category})
        f["dimensions"].add(b.dimension)
        return f

    for b in swap:
        if not b.consistent:
            entry(b)["flip"] = True
    for b in fought:
        entry(b)
    per_dimension: dict[tuple, list[dict[str, float]]] = {}
    for (_, *key), decided in _decisions(fought).items():
        per_dimension.setdefault(tuple(key), []).append(decided)
    for (s, qid, turn, _, x, y), decided in per_dimension.items():
        flags[(s, qid, turn, x, y)]["disagree"] |= any(d != decided[0] for d in decided)
    return flags


def _suite_flags(store: Store, suite: str, set_name: str | None = None) -> tuple[dict[tuple, dict], list[Battle]]:
    """_flags of the suite's battles, and every battle they were drawn from."""
    selection, policy = _selection(store, suite, set_name=set_name)
    fought = battles_fast(store, selection, policy)
    swap = _swap_battles(store, selection, policy, fought)
    return _flags(fought, swap), fought + (swap if swap is not fought else [])


def questions(store: Store, suite: str, set_name: str | None = None, search: str = "",
              disagreement_only: bool = False, limit: int = 200) -> list[dict]:
    """Judged questions matching `search` (question or answer text), with a flag for judges
    disagreeing or a judge contradicting itself under swap."""
    per_question: dict[tuple[str, str], dict] = {}
    for (s, qid, *_), f in _suite_flags(store, suite, set_name)[0].items():
        q = per_question.setdefault((s, qid), {"swap_inconsistent": False, "judges_disagree": False})
        q["swap_inconsistent"] |= f["flip"]
        q["judges_disagree"] |= f["disagree"]
    texts = reads.question_texts(store, set_name, search)
    out = [{**texts[key], **flags} for key, flags in sorted(per_question.items()) if key in texts
           and (not disagreement_only or flags["swap_inconsistent"] or flags["judges_disagree"])]
    return out[:limit]


@dataclass
class Conversation:
    set_name: str
    question_id: str
    category: str
    turns: list[str]  # the user's turns
    answers: dict[str, list[str]]  # model -> its answer per turn
    judgments: list[dict]  # every stored row of the pair; `counted` marks the current ones


def _merged_label(decided: dict[str, float] | None) -> str | None:
    if not decided:
        return None
    if len(decided) == 1:
        return next(iter(decided))
    return " / ".join(f"{w} {share:g}" for w, share in decided.items())  # a split `half` battle


def conversation(store: Store, suite: str, set_name: str, question_id: str, x: str, y: str) -> Conversation | None:
    """Both models' answers to every turn, and every judgment of the pair (both orders, all judges;
    superseded ones kept as history with counted=False), with each battle's merged outcome."""
    found = reads.question(store, set_name, question_id)
    if found is None:
        return None
    judgments = reads.pair_judgments(store, set_name, question_id, x, y)
    selection = Selection(models=(x, y), sets=(set_name,))
    rows, judge_calls = counted(store, selection)
    current = {(r.judge_name, r.question_id, r.turn, r.dimension, r.model_a, r.answer_a, r.answer_b)
               for r in rows + human_rows(store, selection)}
    # An older judge fingerprint's row of the same answers has the same key: the counted calls tell
    # them apart (a row's id is stable_hash([call_id, dimension]), the store's rule for every row).
    calls = [c for c, _ in judge_calls]
    counted_ids = {stable_hash([c, d]) for c in calls for d in {j["dimension"] for j in judgments}}
    merged = {(judge, turn, dim): decided for (judge, s, qid, turn, dim, *pair), decided in
              _decisions(suite_battles(store, suite, set_name=set_name)).items()
              if qid == question_id and pair == sorted((x, y))}
    for j in judgments:
        j["counted"] = ((j["judge"], question_id, j["turn"], j["dimension"], j["shown_first"], j["answer_a"],
                         j["answer_b"]) in current
                        and (j["judge"].startswith(HUMAN_PREFIX) or j["judgment_id"] in counted_ids))
        j["merged_winner"] = _merged_label(merged.get((j["judge"], j["turn"], j["dimension"])))
    answers: dict[str, list[str]] = {}
    for j in sorted((j for j in judgments if j["counted"]), key=lambda r: -r["turn"]):  # the deepest turn
        for model, answer_id in ((j["shown_first"], j["answer_a"]), (j["shown_second"], j["answer_b"])):
            if model not in answers:
                answers[model] = reads.answer_chain(store, answer_id)
    return Conversation(set_name, question_id, found[0], found[1], answers, judgments)


# --- judges -------------------------------------------------------------------------------------------
def reliability(store: Store) -> list[dict]:
    """Per LLM judge with counted rows: calls, parse failures, swap flips, position and length bias."""
    from harness.api import judge_reliability

    judges = sorted({r.judge_name for r in counted_rows(store)})
    return [asdict(judge_reliability(store, name)) for name in judges]


def _outcomes(fought: list[Battle], people: list) -> dict[str, dict[tuple, dict[str, float]]]:
    """judge (people as 'human:<name>') -> battle key -> merged winner (as _decisions' shares)."""
    out: dict[str, dict[tuple, dict[str, float]]] = {}
    for (judge, *key), decided in _decisions(fought).items():
        out.setdefault(judge, {})[tuple(key)] = decided
    for r in people:
        won = {"A": r.model_a, "B": r.model_b}.get(r.verdict or "", "tie")
        out.setdefault(r.judge_name, {})[_key(r)] = {won: 1.0}
    return out


def judge_agreement(store: Store, suite: str, dimension: str | None = None) -> list[dict]:
    """Judge vs judge (people included): share of battles both decided where they name the same
    merged winner (a split `half` battle agrees by halves). People's entries equal `human_agreement`'s."""
    selection, policy = _selection(store, suite, dimension=dimension)
    outcomes = _outcomes(battles_fast(store, selection, policy), human_rows(store, selection))
    rows = []
    for judge, mine in sorted(outcomes.items()):
        for other, theirs in sorted(outcomes.items()):
            shared = sorted(set(mine) & set(theirs))
            if judge != other and shared:
                rows.append({"judge": judge, "other": other, "items": len(shared),
                             "agreement": sum(_agree(mine[k], theirs[k]) for k in shared) / len(shared)})
    return rows


def human_agreement(store: Store, suite: str) -> list[dict]:
    """Per (LLM judge, person): battles the person settled that the judge decided, how often the
    judge's merged verdict names the same winner, and the share of those battles the judge
    contradicted itself on under swap."""
    selection, policy = _selection(store, suite)
    fought = battles_fast(store, selection, policy)
    flipped = {(b.judge_name, *_key(b)) for b in _swap_battles(store, selection, policy, fought) if not b.consistent}
    outcomes = _outcomes(fought, human_rows(store, selection))
    rows = []
    for human in sorted(h for h in outcomes if h.startswith(HUMAN_PREFIX)):
        for judge in sorted(j for j in outcomes if not j.startswith(HUMAN_PREFIX)):
            shared = sorted(set(outcomes[human]) & set(outcomes[judge]))
            if shared:
                rows.append({"judge": judge, "human": human, "items": len(shared),
                             "agreement": sum(_agree(outcomes[judge][k], outcomes[human][k]) for k in shared)
                             / len(shared),
                             "share_swap_inconsistent": sum((judge, *k) in flipped for k in shared) / len(shared)})
    return rows


def self_preference(store: Store, suite: str) -> list[dict]:
    """For each judge whose own model is also a candidate of the suite: that candidate's win rate
    under this judge and under every other judge of the suite."""
    config = suite_config(store, suite)
    if config is None:
        return []
    own = {(j.name, m.name) for j in config.judges for m in config.models if m.model == j.model.model}
    fought = suite_battles(store, suite)
    rows = []
    for model in sorted({m for _, m in own}):
        for judge in sorted({b.judge_name for b in fought}):
            mine = [b for b in fought if b.judge_name == judge and model in (b.model_a, b.model_b)]
            rate_ = win_rate_of(mine, model)
            if rate_:
                rows.append({"judge": judge, "model": model, "battles": len(mine), "win_rate": rate_[0],
                             "own_model_of_judge": (judge, model) in own})
    return rows


# --- human-LLM joint evaluation ---------------------------------------------------------------------
def annotation_queue(store: Store, suite: str, annotator: str, reasons: tuple[str, ...] = ("swap", "disagree", "audit"),
                     limit: int = 20, audit: int = 5, seed: int = 0) -> list[dict]:
    """Battles for a person to settle, not yet settled by `annotator`: a judge contradicting itself
    under swap ('swap'; under `drop` too, where such a battle is off the board until a person
    settles it), judges naming different winners ('disagree'), and `audit` others in a fixed hash
    order per seed, so agreement is also measured where the judges are sure."""
    flags = _suite_flags(store, suite)[0]
    mine = {(r.set_name, r.question_id, r.turn, min(r.model_a, r.model_b), max(r.model_a, r.model_b))
            for r in human_rows(store) if r.judge_name == HUMAN_PREFIX + annotator}
    picked, audits = [], []
    for key in sorted(flags, key=lambda k: stable_hash([*k, seed])):
        if key in mine:
            continue
        f = flags[key]
        reason = ("swap-inconsistent" if f["flip"] and "swap" in reasons else
                  "judges disagree" if f["disagree"] and "disagree" in reasons else None)
        item = dict(zip(("set_name", "question_id", "turn", "x", "y"), key), category=f["category"], flip=f["flip"],
                    disagree=f["disagree"], dimensions=sorted(f["dimensions"]), reason=reason or "audit")
        (picked if reason else audits).append(item)
    return picked[:limit] + (audits[:audit] if "audit" in reasons else [])


def annotation_item(store: Store, suite: str, item: dict) -> dict:
    """The user's turns and both models' current answer chains for a queued battle."""
    found = reads.question(store, item["set_name"], item["question_id"])
    wanted = (item["question_id"], item["turn"], item["x"], item["y"])
    fought = [b for b in _suite_flags(store, suite, item["set_name"])[1]
              if (b.question_id, b.turn, b.model_a, b.model_b) == wanted]
    ids = {item["x"]: fought[0].answer_a, item["y"]: fought[0].answer_b}
    return {"turns": found[1][: item["turn"]], "answer_ids": ids,
            "answers": {m: reads.answer_chain(store, a) for m, a in ids.items()}}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def save_human_verdicts(store: Store, annotator: str, item: dict, shown_first: str, shown_second: str,
                        answer_first: str, answer_second: str, verdicts: dict[str, str], note: str = "") -> int:
    """Store a person's verdicts (positional: 'A' = the answer shown first) as judge `human:<annotator>`."""
    if not _NAME.match(annotator):
        raise ValueError("annotator name: 1-64 letters, digits, '.', '_' or '-'")
    if any(v not in ("A", "B", "tie") for v in verdicts.values()):
        raise ValueError("verdicts must be 'A', 'B' or 'tie'")
    return reads.save_human_verdicts(store, annotator, item, shown_first, shown_second, answer_first, answer_second,
                                     verdicts, note)


def joint_ratings(store: Store, suite: str, judge: str, dimension: str, category: str = "all",
                  set_name: str | None = None, include_humans: bool = True, rounds: int = LIVE_ROUNDS) -> list[dict]:
    """BT and Elo refit live from the suite's battles (its policy; a set filter narrows them), with
    every battle a person settled replaced by the people's verdicts when include_humans. Same battles
    and same rating function as `harness ratings`, so without people and filters the points agree."""
    config = suite_config(store, suite)
    if config is None:
        return []
    narrowed = {"category": None if category == "all" else category}
    selection, policy = _selection(store, suite, judge, dimension, set_name, **narrowed)
    fought = battles_fast(store, selection, policy, humans=include_humans)
    # the battles of this judge that people settled (a person's verdict on a battle the judge never
    # fought settles nothing here)
    settled = {_key(r) for r in human_rows(store, selection)} & {_key(b) for b in fought} if include_humans else set()
    rows = rate(fought, rounds, config.ratings.level, config.ratings.seed, categories=False, elo_orders=20)
    return [{**asdict(r), "category": category, "human_battles": len(settled)} for r in rows
            if r.method in ("bt", "elo")]
