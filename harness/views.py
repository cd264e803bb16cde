"""What the app reads: every number that comes from judgments comes from harness.battles, under
the suite's own merge policy, so a page can never disagree with `harness ratings` or another page.
Totals over many battles (matrices, flags, agreement, reliability) are added up in SQL over that
rule's own queries (harness.store.views), and a page reads only the questions or battles it shows,
so a first render stays quick on a million judgments; tests/test_app.py pins each to the Python path.

Every function takes a Store (open it with `open_for_viewing`, which never migrates or writes)
and returns rows as dicts or small dataclasses; no streamlit and no pandas here. Battle views take
the suite name as stored by its runs: its judges, sets and merge policy come from that config.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from harness.battles import Selection, battles_fast, counted, for_suite, human_rows, people_selection
from harness.config import Suite
from harness.leaderboard import rate, win_rate_of
from harness.models.base import stable_hash
from harness.store import Store
from harness.store import views as reads
from harness.store.judge_eval import judge_eval_results  # noqa: F401 (the app's Judges page)
from harness.store.ratings import latest_ratings  # noqa: F401 (the precomputed board)
from harness.battle_view import battle  # noqa: F401 (the per-sample viewer)
from harness.store.views import data_version, filter_options, lineage, question_pairs, runs  # noqa: F401
from judges.merge import Battle
from judges.reliability import Reliability

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
def _selection(store: Store, suite: str, judge=None, dimension=None, set_name=None, category=None,
               **narrower) -> tuple[Selection, str]:
    """The suite's selection and merge policy, narrowed by the filters that are set; `narrower`
    (models, questions, battles) narrows further to a page's worth of battles."""
    config = suite_config(store, suite)
    if config is None:
        return Selection(judges=()), "inconsistent_tie"  # an unknown suite has no battles
    suite_selection = for_suite(config)
    narrower |= {"dimension": dimension, "category": category}
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


def board_marks(store: Store, suite: str, judge: str, dimension: str, set_name: str | None = None,
                category: str | None = None, humans: bool = False) -> list[dict]:
    """harness.leaderboard.paired_marks of one panel's battles (the filters as suite_battles), one
    dict per adjacent pair in BT order: above, below, p_value, p_holm, significant."""
    from harness.leaderboard import paired_marks

    fought = suite_battles(store, suite, judge, dimension, set_name, category, humans)
    config = suite_config(store, suite)
    seed = config.ratings.seed if config else 0
    return [{"judge_name": j, "dimension": d, **asdict(a)} for (j, d), adjacent in paired_marks(fought, seed=seed).items()
            for a in adjacent]


def board_win_rates(store: Store, suite: str, dimension: str, models: list[str], set_name: str | None = None,
                    category: str | None = None) -> dict[tuple[str, str], float]:
    """(judge, model) -> the model's win rate against every opponent (weighted, ties half) in the
    suite's merged battles on `dimension`: the board table's win-rate column, added up in SQL."""
    selection, policy = _selection(store, suite, dimension=dimension, set_name=set_name, category=category)
    return {(r["judge"], r["model"]): r["win_rate"] for r in reads.win_rates(store, selection, policy, models)}


def battle_list(store: Store, suite: str, judge: str | None = None, dimension: str | None = None,
                model: str | None = None, opponent: str | None = None, set_name: str | None = None,
                category: str | None = None, limit: int = 1000) -> list[dict]:
    """The suite's merged battles of `model` (against `opponent` when given), one row per battle
    and dimension with the merged winner by name: what a heatmap cell or a board line links to."""
    narrower = {"models": tuple(sorted({model, opponent}))} if model and opponent else {}
    selection, policy = _selection(store, suite, judge, dimension, set_name, category, **narrower)
    out = []
    for b in battles_fast(store, selection, policy):
        if model is not None and model not in (b.model_a, b.model_b):
            continue
        winner = "tie" if b.winner == "tie" else getattr(b, b.winner)
        out.append({"set_name": b.set_name, "question_id": b.question_id, "turn": b.turn, "x": b.model_a,
                    "y": b.model_b, "category": b.category, "judge": b.judge_name, "dimension": b.dimension,
                    "winner": winner, "weight": b.weight, "consistent": b.consistent})
        if len(out) >= limit:
            break
    return out


def probe_results(store: Store, suite: str) -> list[dict]:
    """The suite's latest `harness probe` rows (one per judge, dimension and probe kind); [] before
    migration 009 or any probe run."""
    from harness.store.stats import latest_probe_results

    with store.read() as con:
        if "probe_results" not in reads.tables(con):
            return []
    return latest_probe_results(store, suite)


def merge_policy(store: Store, suite: str) -> str:
    config = suite_config(store, suite)
    return config.ratings.merge if config else "inconsistent_tie"


def _with_win_rates(cells: list[dict]) -> list[dict]:
    for c in cells:
        weight = c["wins"] + c["ties"] + c["losses"]
        c["win_rate"] = (c["wins"] + 0.5 * c["ties"]) / weight if weight else None
    return cells


def pairwise_matrix(store: Store, suite: str, judge: str | None, dimension: str | None, set_name: str | None = None,
                    category: str | None = None) -> list[dict]:
    """Per ordered (model, opponent): battles, wins, ties, losses and win rate (ties half; under
    the `half` policy each half battle weighs 0.5). Added up in SQL over the merged battles."""
    selection, policy = _selection(store, suite, judge, dimension, set_name, category)
    return _with_win_rates(reads.pairwise_cells(store, selection, policy))


def category_breakdown(store: Store, suite: str, judge: str | None, dimension: str | None,
                       set_name: str | None = None) -> list[dict]:
    """Per (category, model): battles and win rate against all opponents (ties half)."""
    selection, policy = _selection(store, suite, judge, dimension, set_name)
    return reads.category_cells(store, selection, policy)


def pairwise_page(store: Store, suite: str, judge: str | None, dimension: str | None, set_name: str | None = None,
                  category: str | None = None) -> dict[str, list[dict]]:
    """`matrix` (pairwise_matrix, narrowed to `category`) and `categories` (category_breakdown),
    equal to those functions' results, from one read that merges the battles once."""
    selection, policy = _selection(store, suite, judge, dimension, set_name)
    report = reads.pairwise_report(store, selection, policy, category)
    return {"matrix": _with_win_rates(report["cells"]), "categories": report["categories"]}


def _key(b) -> tuple:
    """(set, question, turn, dimension, x, y) of a battle or a row, x < y."""
    return (b.set_name, b.question_id, b.turn, b.dimension, min(b.model_a, b.model_b), max(b.model_a, b.model_b))


def _decisions(store: Store, selection: Selection, policy: str) -> dict[tuple, dict[str, float]]:
    """(judge, *battle key) -> {merged winner: share}: one winner with share 1, except under `half`,
    where a battle whose two orders disagree is two half battles, so its share splits."""
    out: dict[tuple, dict[str, float]] = {}
    for r in reads.decisions(store, selection, policy):
        out.setdefault((r["judge"], *(r[k] for k in ("set_name", "question_id", "turn", "dimension", "x", "y"))),
                       {})[r["outcome"]] = r["share"]
    return out


def _swap_battles(store: Store, selection: Selection, policy: str, fought: list[Battle]) -> list[Battle]:
    """Every battle with both orders parsed, `consistent` False where the two disagree (a judge
    contradicting itself under swap): inconsistent_tie's battles. Under `drop` those battles are not
    on the board, and under `half` / `calibrated` `consistent` is also False for a lone order."""
    return fought if policy == "inconsistent_tie" else battles_fast(store, selection, "inconsistent_tie")


def _chunks(keys: list[tuple[str, str]], first: int):
    """`keys` (set, question) in order, `first` and then twice as many each time: a page that needs
    its first items reads those questions' battles only; one that needs them all, every battle in
    a few reads."""
    start, size = 0, max(first, 1)
    while start < len(keys):
        yield keys[start:start + size]
        start, size = start + size, size * 2


def _flags(store: Store, selection: Selection, policy: str, keys: list[tuple[str, str]]) -> dict[tuple, dict]:
    """reads.battle_flags of the battles on the questions `keys`, by (set, question, turn, x, y)."""
    narrowed = replace(selection, questions=tuple(sorted({q for _, q in keys})))
    wanted = set(keys)
    return {(r["set_name"], r["question_id"], r["turn"], r["x"], r["y"]): r
            for r in reads.battle_flags(store, narrowed, policy) if (r["set_name"], r["question_id"]) in wanted}


def questions(store: Store, suite: str, set_name: str | None = None, search: str = "",
              disagreement_only: bool = False, limit: int = 200) -> list[dict]:
    """Judged questions matching `search` (question or answer text), with a flag for judges
    disagreeing or a judge contradicting itself under swap; the first `limit` by (set, question)."""
    selection, policy = _selection(store, suite, set_name=set_name)
    texts = reads.question_texts(store, set_name, search)
    out: list[dict] = []
    for keys in _chunks(sorted(k for k in texts if selection.sets is None or k[0] in selection.sets), limit):
        per_question: dict[tuple[str, str], dict] = {}
        for (s, qid, *_), f in _flags(store, selection, policy, keys).items():
            q = per_question.setdefault((s, qid), {"swap_inconsistent": False, "judges_disagree": False})
            q["swap_inconsistent"] |= f["flip"]
            q["judges_disagree"] |= f["disagree"]
        out += [{**texts[key], **flags} for key, flags in sorted(per_question.items())
                if not disagreement_only or flags["swap_inconsistent"] or flags["judges_disagree"]]
        if len(out) >= limit:
            break
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
    selection = Selection(models=(x, y), sets=(set_name,), questions=(question_id,))
    rows, judge_calls = counted(store, selection)
    current = {(r.judge_name, r.question_id, r.turn, r.dimension, r.model_a, r.answer_a, r.answer_b)
               for r in rows + human_rows(store, selection)}
    # An older judge fingerprint's row of the same answers has the same key: the counted calls tell
    # them apart (a row's id is stable_hash([call_id, dimension]), the store's rule for every row).
    calls = [c for c, _ in judge_calls]
    counted_ids = {stable_hash([c, d]) for c in calls for d in {j["dimension"] for j in judgments}}
    suite_pair, policy = _selection(store, suite, set_name=set_name, models=(x, y), questions=(question_id,))
    merged = {(judge, turn, dim): decided for (judge, s, qid, turn, dim, *pair), decided in
              _decisions(store, suite_pair, policy).items() if qid == question_id and pair == sorted((x, y))}
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
def _reliabilities(counts: list[dict]) -> list[dict]:
    """judges.reliability's rates, from the counts it divides (added up in SQL: reads.reliability_counts,
    pinned to judges.reliability by tests/test_battles.py)."""
    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return [asdict(Reliability(r["judge_name"], r["calls"], rate(r["unparsed_calls"], r["calls"]) or 0.0,
                               rate(r["flipped"], r["both_orders"]), rate(r["first_wins"], r["decided"]),
                               rate(r["longer_wins"], r["unequal"]))) for r in counts]


def reliability(store: Store) -> list[dict]:
    """Per LLM judge with counted rows: calls, parse failures, swap flips, position and length bias."""
    return _reliabilities(reads.reliability_counts(store, Selection()))


def judge_agreement(store: Store, suite: str, dimension: str | None = None) -> list[dict]:
    """Judge vs judge (people included): share of battles both decided where they name the same
    merged winner (a split `half` battle agrees by halves). People's entries equal `human_agreement`'s."""
    selection, policy = _selection(store, suite, dimension=dimension)
    return reads.agreement(store, selection, policy, people_selection(selection))


def _own_models(config: Suite | None) -> set[tuple[str, str]]:
    """(judge, candidate) where the candidate runs on the judge's own model."""
    if config is None:
        return set()
    return {(j.name, m.name) for j in config.judges for m in config.models if m.model == j.model.model}


def _self_preference(win_rates: list[dict], own: set[tuple[str, str]]) -> list[dict]:
    return [{"judge": r["judge"], "model": r["model"], "battles": r["battles"], "win_rate": r["win_rate"],
             "own_model_of_judge": (r["judge"], r["model"]) in own} for r in win_rates]


def self_preference(store: Store, suite: str) -> list[dict]:
    """For each judge whose own model is also a candidate of the suite: that candidate's win rate
    under this judge and under every other judge of the suite."""
    own = _own_models(suite_config(store, suite))
    if not own:
        return []
    selection, policy = _selection(store, suite)
    return _self_preference(reads.win_rates(store, selection, policy, sorted({m for _, m in own})), own)


def judges_page(store: Store, suite: str, dimension: str | None = None) -> dict[str, list[dict]]:
    """`reliability`, `agreement` (judge_agreement on `dimension`) and `self_preference` of the
    suite, equal to those functions' results, from one read that applies the rule once."""
    own = _own_models(suite_config(store, suite))
    selection, policy = _selection(store, suite)
    report = reads.judges_report(store, Selection(), selection, policy, dimension,
                                 people_selection(replace(selection, dimension=dimension)), sorted({m for _, m in own}))
    return {"reliability": _reliabilities(report["reliability"]), "agreement": report["agreement"],
            "self_preference": _self_preference(report["win_rates"], own)}


def human_agreement(store: Store, suite: str) -> list[dict]:
    """Per (LLM judge, person): battles the person settled that the judge decided, how often the
    judge's merged verdict names the same winner (judge_agreement's entry), and the share of those
    battles the judge contradicted itself on under swap."""
    selection, policy = _selection(store, suite)
    people = human_rows(store, selection)
    if not people:
        return []
    # only the questions people settled hold battles to compare: read those
    selection = replace(selection, questions=tuple(sorted({r.question_id for r in people})))
    agreeing = {(r["judge"], r["other"]): r for r in reads.agreement(store, selection, policy,
                                                                     people_selection(selection))}
    fought = battles_fast(store, selection, policy)
    flipped = {(b.judge_name, *_key(b)) for b in _swap_battles(store, selection, policy, fought) if not b.consistent}
    decided: dict[str, set[tuple]] = {}
    for b in fought:
        decided.setdefault(b.judge_name, set()).add(_key(b))
    settled: dict[str, set[tuple]] = {}
    for r in people:
        settled.setdefault(r.judge_name, set()).add(_key(r))
    rows = []
    for human in sorted(settled):
        for judge in sorted(decided):
            shared = decided[judge] & settled[human]
            if shared:
                rows.append({"judge": judge, "human": human, "items": len(shared),
                             "agreement": agreeing[judge, human]["agreement"],
                             "share_swap_inconsistent": sum((judge, *k) in flipped for k in shared) / len(shared)})
    return rows


# --- human-LLM joint evaluation ---------------------------------------------------------------------
QUEUE_LOOKAHEAD = 4  # the first read takes flags of 4x the queue's length of battles, each next one 4x more


def queue_order(store: Store, selection: Selection, seed: int, config=None) -> list[tuple]:
    """The order the Annotate queue offers battles in (set, question, turn, x, y): the one place it
    is decided. Human-in-the-loop calibration (Wang et al. 2023): the battles whose judges are least
    sure (highest diversity entropy of their verdicts in both orders, over the suite's pairwise
    judges; then the closest calls) come first, so a person's time goes where it moves the board
    most; among equals, a fixed hash order per seed."""
    keys = reads.battle_keys(store, selection, seed)
    judges = [j.name for j in config.judges if j.kind == "pairwise"] if config is not None else []
    if not judges:
        return keys
    doubt: dict[tuple, tuple[float, float]] = {}  # battle -> (entropy, -margin) of its least sure judge
    for judge in judges:
        for p in _priority(store, config, judge):
            doubt[p.key] = max(doubt.get(p.key, (-1.0, -math.inf)), (p.entropy, -p.margin))
    return sorted(keys, key=lambda k: tuple(-v for v in doubt.get(k, (-1.0, -math.inf))))


_PRIORITIES: dict[tuple, list] = {}  # (file, suite, judge, the judge's rows' stamp) -> annotate_priority


def _priority(store: Store, config: Suite, judge: str) -> list:
    """harness.calibration.annotate_priority, kept while the judge's rows are unchanged: it reads
    every row of the judge (seconds on a 100k-judgment store), and each verdict a person saves
    would otherwise recompute it."""
    from harness.calibration import annotate_priority
    from harness.store.calibration import judge_stamp

    with store.read() as con:
        key = (str(store.path), config.model_dump_json(), judge, judge_stamp(con, judge))
    if key not in _PRIORITIES:
        if len(_PRIORITIES) > 16:
            _PRIORITIES.clear()
        _PRIORITIES[key] = annotate_priority(store, config, judge)
    return _PRIORITIES[key]


def annotation_queue(store: Store, suite: str, annotator: str, reasons: tuple[str, ...] = ("swap", "disagree", "audit"),
                     limit: int | None = 20, audit: int = 5, seed: int = 0) -> list[dict]:
    """Battles for a person to settle, not yet settled by `annotator`: a judge contradicting itself
    under swap ('swap'; under `drop` too, where such a battle is off the board until a person
    settles it), judges naming different winners ('disagree'), and `audit` others, each kind in
    `queue_order`, so agreement is also measured where the judges are sure. Flags are read for the
    battles first in that order until the queue is full, not for every battle; limit=None: the
    whole queue (every flagged battle), read at once."""
    selection, policy = _selection(store, suite)
    mine = {(r.set_name, r.question_id, r.turn, min(r.model_a, r.model_b), max(r.model_a, r.model_b))
            for r in human_rows(store) if r.judge_name == HUMAN_PREFIX + annotator}
    audits_wanted = audit if "audit" in reasons else 0
    ordered = [k for k in queue_order(store, selection, seed, suite_config(store, suite)) if k not in mine]
    wanted = len(ordered) if limit is None else limit
    picked, audits, start = [], [], 0
    size = len(ordered) if limit is None else QUEUE_LOOKAHEAD * (limit + audits_wanted)
    while start < len(ordered) and (len(picked) < wanted or len(audits) < audits_wanted):
        keys = ordered[start:start + size]
        narrowed = selection if limit is None else replace(selection, battles=tuple(keys))
        flags = {(r["set_name"], r["question_id"], r["turn"], r["x"], r["y"]): r
                 for r in reads.battle_flags(store, narrowed, policy)}
        for key in keys:
            f = flags.get(key)
            if f is None:  # no battle counts here (an older judge's, an unparsed order)
                continue
            reason = ("swap-inconsistent" if f["flip"] and "swap" in reasons else
                      "judges disagree" if f["disagree"] and "disagree" in reasons else None)
            item = dict(zip(("set_name", "question_id", "turn", "x", "y"), key), category=f["category"],
                        flip=f["flip"], disagree=f["disagree"], dimensions=list(f["dimensions"]),
                        reason=reason or "audit")
            (picked if reason else audits).append(item)
        start, size = start + size, size * QUEUE_LOOKAHEAD
    return picked[:wanted] + audits[:audits_wanted]


def annotation_progress(store: Store, suite: str, annotator: str) -> dict:
    """How far `annotator` got: battles of the suite they settled (and how many rows that is)."""
    selection, _ = _selection(store, suite)
    settled = {(r.set_name, r.question_id, r.turn, min(r.model_a, r.model_b), max(r.model_a, r.model_b))
               for r in human_rows(store, selection) if r.judge_name == HUMAN_PREFIX + annotator}
    return {"settled": len(settled)}


def annotation_item(store: Store, suite: str, item: dict) -> dict:
    """The user's turns and both models' current answer chains for a queued battle."""
    found = reads.question(store, item["set_name"], item["question_id"])
    key = tuple(item[k] for k in ("set_name", "question_id", "turn", "x", "y"))
    selection, policy = _selection(store, suite, battles=(key,))
    fought = battles_fast(store, selection, policy)
    swap = _swap_battles(store, selection, policy, fought)
    fought += swap if swap is not fought else []  # under `drop`, a battle queued for its flip is only here
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


def human_verdicts(store: Store, annotator: str | None = None) -> list[dict]:
    """People's verdicts, newest first (one person's with `annotator`): the export and the
    Annotate page's "your verdicts"."""
    return reads.human_verdicts(store, annotator)


def undo_human_verdicts(store: Store, annotator: str, battle: dict) -> int:
    """Remove `annotator`'s verdicts on `battle` (set_name, question_id, turn, x, y): every dimension."""
    if not _NAME.match(annotator):
        raise ValueError("annotator name: 1-64 letters, digits, '.', '_' or '-'")
    return reads.delete_human_verdicts(store, annotator, battle["set_name"], battle["question_id"], int(battle["turn"]),
                                       battle["x"], battle["y"])


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
    rows = rate(fought, rounds, config.ratings.level, config.ratings.seed, categories=False, elo_orders=20,
                ci=config.ratings.ci)
    wins = {m: win_rate_of(fought, m) for m in {r.model for r in rows}}
    return [{**asdict(r), "category": category, "human_battles": len(settled),
             "win_rate": (wins[r.model] or (None,))[0]} for r in rows if r.method in ("bt", "elo")]
