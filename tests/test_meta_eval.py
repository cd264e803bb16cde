"""Meta-evaluation: importers and agreement metrics reproduce the papers' published figures.

The expected numbers come from the MT-Bench paper (Table 5) and PandaLM's README, not from this
code; the shared data is read in place from ../shared/data.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from harness.errors import DataError
from judges.meta import (
    SingleScore,
    Vote,
    classification_report,
    cohen_kappa,
    fastchat_agreement,
    load_fastchat_pair_judgments,
    load_fastchat_single_judgments,
    load_gpt35_released,
    load_mt_bench_pairs_with_text,
    load_mt_bench_votes,
    load_pandalm_released,
    load_pandalm_testset,
    majority_label,
)


@pytest.fixture(scope="module")
def human_votes(shared_data):
    return load_mt_bench_votes(shared_data / "mt_bench" / "human_judgments_turn1_votes.jsonl")


@pytest.fixture(scope="module")
def labelled_pairs(shared_data):
    return load_mt_bench_pairs_with_text(shared_data / "mt_bench" / "human_judgments_turn1_with_text.jsonl")


@pytest.fixture(scope="module")
def panda_items(shared_data):
    return load_pandalm_testset(shared_data / "pandalm" / "testset-v1.json")


@pytest.fixture(scope="module")
def panda_gold(panda_items):
    return {item.idx: item.majority for item in panda_items}


# ---------------------------------------------------------------- MT-Bench human votes


def test_human_votes_load_with_and_without_text_alike(shared_data, human_votes):
    with_text = load_mt_bench_votes(shared_data / "mt_bench" / "human_judgments_turn1_with_text.jsonl")
    assert len(human_votes) == 1689
    assert with_text == human_votes
    assert {v.winner for v in human_votes} == {"model_a", "model_b", "tie"}
    assert {v.turn for v in human_votes} == {1}


def test_human_vs_human_agreement_reproduces_mt_bench_table_5(human_votes):
    # Paper, Table 5, turn 1: 63% with ties (721 pairs of votes), 81% without ties (479).
    with_ties = fastchat_agreement(human_votes)
    without_ties = fastchat_agreement(human_votes, include_ties=False)
    assert (with_ties.agree, with_ties.total) == (454, 721)
    assert (without_ties.agree, without_ties.total) == (388, 479)
    assert round(100 * with_ties.rate) == 63 and round(100 * without_ties.rate) == 81


def test_only_expert_votes_give_the_published_counts(human_votes):
    # Not published figures: they show the authors' votes must be left out to get 721 and 479.
    everyone = fastchat_agreement(human_votes, expert_only=False)
    everyone_no_ties = fastchat_agreement(human_votes, include_ties=False, expert_only=False)
    assert (everyone.agree, everyone.total) == (769, 1199)
    assert (everyone_no_ties.agree, everyone_no_ties.total) == (633, 772)
    assert fastchat_agreement(human_votes, turn=2).total == 0


def test_labelled_pairs_hold_every_vote_once_with_turn_1_texts(shared_data, labelled_pairs):
    questions = [json.loads(line) for line in (shared_data / "mt_bench" / "question.jsonl").open()]
    first_turn = {q["question_id"]: (q["category"], q["turns"][0]) for q in questions}
    assert len(labelled_pairs) == 1204  # distinct (question_id, model_a, model_b, turn)
    assert sum(len(p.votes) for p in labelled_pairs) == 1689
    # one pair per key: its id and model tags are the key, its labels the votes in the file's positions
    assert all(p.id == f"{p.question_id}:{p.model_a}:{p.model_b}:1" for p in labelled_pairs)
    assert all({(v.question_id, v.model_a, v.model_b, v.turn) for v in p.votes} ==
               {(p.question_id, p.model_a, p.model_b, 1)} for p in labelled_pairs)
    assert all((p.subset, p.turns) == (first_turn[int(p.question_id)][0], (first_turn[int(p.question_id)][1],))
               for p in labelled_pairs)
    # The one empty answer upstream (llama-13b, question 127) is kept as it is.
    empty = {(p.question_id, p.model_a if not p.response_a else p.model_b) for p in labelled_pairs
             if not (p.response_a and p.response_b)}
    assert empty == {("127", "llama-13b")}
    votes = [v for p in labelled_pairs for v in p.votes]
    assert (fastchat_agreement(votes).agree, fastchat_agreement(votes).total) == (454, 721)


def test_cross_agreement_reverts_swapped_votes_and_leaves_out_authors():
    llm = [Vote(81, "vicuna-13b-v1.2", "alpaca-13b", 1, "gpt-4/pair-v2", "model_a")]
    humans = [
        Vote(81, "alpaca-13b", "vicuna-13b-v1.2", 1, "expert_1", "model_b"),  # same verdict, swapped
        Vote(81, "vicuna-13b-v1.2", "alpaca-13b", 1, "expert_2", "tie"),
        Vote(81, "vicuna-13b-v1.2", "alpaca-13b", 1, "author_0", "model_b"),  # not an expert
        Vote(82, "vicuna-13b-v1.2", "alpaca-13b", 1, "expert_3", "model_a"),  # no LLM vote here
    ]
    with_ties = fastchat_agreement(llm, humans)
    assert (with_ties.agree, with_ties.total) == (1, 2)
    assert fastchat_agreement(llm, humans, include_ties=False).total == 1
    assert fastchat_agreement(llm, humans, expert_only=False).total == 3


# ---------------------------------------------------------------- PandaLM


def test_pandalm_majority_label_counts(panda_items):
    assert len(panda_items) == 999
    assert Counter(item.majority for item in panda_items) == {0: 105, 1: 422, 2: 472}
    # Upstream stores a few one-word answers as JSON true; they come back as text.
    assert panda_items[157].response1 == "True"


def test_majority_of_a_three_way_split_is_the_first_annotator_as_in_pandalm():
    assert majority_label((2, 0, 1)) == 2
    assert majority_label((1, 2, 2)) == 2


def test_pandalm_7b_reproduces_published_figures(shared_data, panda_gold):
    predicted = load_pandalm_released(shared_data / "pandalm" / "pandalm-7b-testset-v1.json")
    report = classification_report(predicted, panda_gold)
    assert report.n == 999
    assert [round(x, 2) for x in (report.accuracy, report.macro_precision, report.macro_recall,
                                  report.macro_f1)] == [66.77, 57.38, 57.50, 57.43]


def test_gpt35_reproduces_published_figures_with_garbage_scored_as_tie(shared_data, panda_gold):
    predicted = load_gpt35_released(shared_data / "pandalm" / "gpt-3.5-turbo-testset-v1.json")
    assert Counter(predicted.values())[0] == 38 + 25  # "Tie" plus "garbage"
    report = classification_report(predicted, panda_gold)
    assert [round(x, 2) for x in (report.accuracy, report.macro_precision, report.macro_recall,
                                  report.macro_f1)] == [71.07, 58.79, 57.36, 57.55]


def test_inter_annotator_kappa_is_within_the_published_range(panda_items):
    labels = list(zip(*(item.annotators for item in panda_items)))
    kappas = [cohen_kappa(labels[i], labels[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert all(0.85 <= round(k, 2) <= 0.88 for k in kappas), kappas  # README: 0.85-0.88


def test_classification_report_scores_undefined_classes_as_zero_like_sklearn():
    gold = {0: 0, 1: 0, 2: 1, 3: 1}
    predicted = {0: 0, 1: 1, 2: 1, 3: 1, 99: 2}  # label 2 never occurs in gold on scored items
    report = classification_report(predicted, gold)
    assert report.n == 4 and report.accuracy == 75.0
    assert report.macro_precision == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert report.macro_recall == pytest.approx(100 * (0.5 + 1 + 0) / 3)
    assert report.macro_f1 == pytest.approx(100 * (2 / 3 + 0.8 + 0) / 3)
    with pytest.raises(DataError, match="no verdict for 1 gold items"):
        classification_report({0: 0}, {0: 0, 1: 1})


def test_cohen_kappa_small_cases():
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    assert cohen_kappa([1, 2, 0], [1, 2, 0]) == 1.0


# ---------------------------------------------------------------- FastChat judgment files

# Lines in the format FastChat's gen_judgment.py writes (common.play_a_match_pair / _single),
# judgment texts shortened.
PAIR_LINES = [
    {"question_id": 81, "model_1": "vicuna-13b-v1.2", "model_2": "alpaca-13b", "g1_winner": "model_1",
     "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "[User Question]\n...",
     "g1_judgment": "Assistant A is more engaging. [[A]]", "g2_user_prompt": "[User Question]\n...",
     "g2_judgment": "Assistant B is more engaging. [[B]]", "turn": 1, "tstamp": 1687221000.1},
    {"question_id": 81, "model_1": "gpt-4", "model_2": "claude-v1", "g1_winner": "model_1",
     "g2_winner": "model_2", "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "...",
     "g1_judgment": "[[A]]", "g2_user_prompt": "...", "g2_judgment": "[[A]]", "turn": 1,
     "tstamp": 1687221001.2},
    {"question_id": 82, "model_1": "gpt-4", "model_2": "claude-v1", "g1_winner": "tie", "g2_winner": "tie",
     "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "...", "g1_judgment": "[[C]]",
     "g2_user_prompt": "...", "g2_judgment": "[[C]]", "turn": 1, "tstamp": 1687221002.3},
    {"question_id": 82, "model_1": "gpt-4", "model_2": "alpaca-13b", "g1_winner": "error",
     "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "...",
     "g1_judgment": "$ERROR$", "g2_user_prompt": "...", "g2_judgment": "[[B]]", "turn": 1,
     "tstamp": 1687221003.4},
    {"question_id": 111, "model_1": "claude-v1", "model_2": "gpt-4", "g1_winner": "model_2",
     "g2_winner": "model_2", "judge": ["gpt-4", "pair-math-v1-multi-turn"], "g1_user_prompt": "...",
     "g1_judgment": "[[B]]", "g2_user_prompt": "...", "g2_judgment": "[[A]]", "turn": 2,
     "tstamp": 1687221004.5},
]

SINGLE_LINES = [
    {"question_id": 81, "model": "vicuna-13b-v1.2", "judge": ["gpt-4", "single-v1"],
     "user_prompt": "[Instruction]\n...", "judgment": "Helpful and vivid. Rating: [[8]]", "score": 8,
     "turn": 1, "tstamp": 1687222000.1},
    {"question_id": 81, "model": "vicuna-13b-v1.2", "judge": ["gpt-4", "single-v1-multi-turn"],
     "user_prompt": "...", "judgment": "Rating: [[6.5]]", "score": 6.5, "turn": 2, "tstamp": 1687222001.2},
    {"question_id": 82, "model": "alpaca-13b", "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
     "judgment": "No rating given.", "score": -1, "turn": 1, "tstamp": 1687222002.3},
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_fastchat_pair_judgments_become_votes_like_fastchat(tmp_path):
    votes = load_fastchat_pair_judgments(_write_jsonl(tmp_path / "gpt-4_pair.jsonl", PAIR_LINES))
    assert votes == [
        Vote(81, "vicuna-13b-v1.2", "alpaca-13b", 1, "gpt-4/pair-v2", "model_a"),
        Vote(81, "gpt-4", "claude-v1", 1, "gpt-4/pair-v2", "tie"),  # g1 and g2 disagree: inconsistent
        Vote(82, "gpt-4", "claude-v1", 1, "gpt-4/pair-v2", "tie"),
        # question 82 gpt-4 vs alpaca-13b: g1 is "error", left out as show_result.py does
        Vote(111, "claude-v1", "gpt-4", 2, "gpt-4/pair-math-v1-multi-turn", "model_b"),
    ]
    humans = [Vote(81, "alpaca-13b", "vicuna-13b-v1.2", 1, "expert_5", "model_b"),
              Vote(81, "claude-v1", "gpt-4", 1, "expert_6", "model_b")]
    agreement = fastchat_agreement(votes, humans)
    assert (agreement.agree, agreement.total) == (1, 2)  # inconsistent tie vs a win disagrees
    assert fastchat_agreement(votes, humans, include_ties=False).total == 1


def test_fastchat_single_judgments_drop_unparsed_scores(tmp_path):
    scores = load_fastchat_single_judgments(_write_jsonl(tmp_path / "gpt-4_single.jsonl", SINGLE_LINES))
    assert scores == [SingleScore("vicuna-13b-v1.2", 81, 1, 8.0), SingleScore("vicuna-13b-v1.2", 81, 2, 6.5)]
    model, question_id, turn, score = scores[0]
    assert (model, question_id, turn, score) == ("vicuna-13b-v1.2", 81, 1, 8.0)


# ---------------------------------------------------------------- bad input


GOOD_VOTE = {"question_id": 81, "judge": "expert_1", "model_a": "a", "model_b": "b", "winner": "tie", "turn": 1}


@pytest.mark.parametrize(
    "bad_row, expected",
    [
        ({**GOOD_VOTE, "winner": "model_c"}, ":2: field 'winner': 'model_c' is not a verdict"),
        ({**GOOD_VOTE, "winner": None}, ":2: field 'winner': None has the wrong type"),
        ({k: v for k, v in GOOD_VOTE.items() if k != "judge"}, ":2: field 'judge': missing"),
        ({**GOOD_VOTE, "turn": "1"}, ":2: field 'turn': '1' has the wrong type"),
        ({**GOOD_VOTE, "model_b": "a"}, ":2: field 'model_b': same as model_a"),
    ],
)
def test_bad_vote_names_file_line_and_field(tmp_path, bad_row, expected):
    path = _write_jsonl(tmp_path / "votes.jsonl", [GOOD_VOTE, bad_row])
    with pytest.raises(DataError, match=expected) as err:
        load_mt_bench_votes(path)
    assert str(err.value).startswith(f"{path}:2: ")
    assert "\n" not in str(err.value)


def test_bad_pandalm_and_gpt_verdicts_name_item_and_field(tmp_path):
    pandalm = tmp_path / "pandalm.json"
    pandalm.write_text(json.dumps([{"idx": 0, "pandalm_result": 1}, {"idx": 1, "pandalm_result": 3}]))
    with pytest.raises(DataError, match=r"item 1 \(idx 1\): field 'pandalm_result': 3 is not a label"):
        load_pandalm_released(pandalm)
    gpt = tmp_path / "gpt.json"
    gpt.write_text(json.dumps([{"idx": 0, "gpt_result": "Response 1 is better."}]))
    with pytest.raises(DataError, match=r"field 'gpt_result': 'Response 1 is better.' is not a verdict"):
        load_gpt35_released(gpt)
    gpt.write_text(json.dumps([{"idx": 0, "gpt_result": "1"}, {"idx": 0, "gpt_result": "2"}]))
    with pytest.raises(DataError, match="field 'idx': duplicate idx 0"):
        load_gpt35_released(gpt)


def test_bad_pair_judgment_names_line_and_field(tmp_path):
    path = _write_jsonl(tmp_path / "gpt-4_pair.jsonl", [PAIR_LINES[0], {**PAIR_LINES[0], "g2_winner": "A"}])
    with pytest.raises(DataError, match=r"gpt-4_pair.jsonl:2: field 'g2_winner': 'A' is not a verdict"):
        load_fastchat_pair_judgments(path)
