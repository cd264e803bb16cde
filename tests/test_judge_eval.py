"""`harness judge-eval` and `harness ratings`: published figures, a live judge's plumbing, the leaderboard."""

from __future__ import annotations

import re
from collections import Counter

from typer.testing import CliRunner

from harness.cli import app
from harness.judge_eval import run_judge_on_mt_bench
from harness.judging import judge_suite
from harness.models.base import Completion
from harness.store import Store
from judges.llm import LLMJudge
from judges.meta import load_mt_bench_pairs_with_text

from .test_judges import VerdictBackend, generate, suite_of

runner = CliRunner()


def test_judge_eval_cli_prints_the_published_figures(shared_data):
    result = runner.invoke(app, ["judge-eval", "--data", str(shared_data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"pandalm-7b\s.*66\.77\s.*57\.38\s.*57\.50\s.*57\.43", result.output)
    assert re.search(r"gpt-3\.5-turbo\s.*71\.07\s.*58\.79\s.*57\.36\s.*57\.55", result.output)
    assert "63.0% with ties (454/721), 81.0% without (388/479)" in result.output


class OracleBackend:
    """A judge that knows the experts' majority for each pair of answer texts."""

    def __init__(self, pairs):
        self.majority = {}
        for p in pairs:
            counts = Counter(v.winner for v in p.votes if not v.judge.startswith("author"))
            if counts:
                winner = counts.most_common(1)[0][0]
                self.majority[(p.answer_a, p.answer_b)] = {"model_a": "A", "model_b": "B"}.get(winner, "tie")
                self.majority[(p.answer_b, p.answer_a)] = {"model_a": "B", "model_b": "A"}.get(winner, "tie")
        self.chunk_size = 64

    def fingerprint(self):
        return "oracle"

    def generate(self, conversations, params):
        out = []
        for conv in conversations:
            prompt = conv[-1].content
            a = re.search(r"\[Assistant A, turn 1\]\n(.*?)\n<<<END A>>>", prompt, re.S).group(1)
            b = re.search(r"\[Assistant B, turn 1\]\n(.*?)\n<<<END B>>>", prompt, re.S).group(1)
            nonce = re.search(r"VERDICT-(\w+) ", prompt).group(1)
            out.append(Completion(text=f"VERDICT-{nonce} overall: {self.majority.get((a, b), 'tie')}"))
        return out

    def close(self):
        pass


def test_a_judge_that_votes_like_the_expert_majority_agrees_with_experts(shared_data):
    pairs = load_mt_bench_pairs_with_text(shared_data / "mt_bench" / "human_judgments_turn1_with_text.jsonl")
    judge = LLMJudge("oracle", OracleBackend(pairs), dimensions=("overall",))
    result = run_judge_on_mt_bench(judge, shared_data, sample=120, seed=3)
    assert result.pairs == result.parsed_pairs == 120
    # Majority votes agree with single experts well above the 81% human-human rate without ties;
    # mapping the swapped order's verdict back wrongly would turn most of them into ties.
    assert result.without_ties.rate > 0.85 and result.without_ties.total > 50
    length = LLMJudge("len", VerdictBackend(), dimensions=("overall",))
    other = run_judge_on_mt_bench(length, shared_data, sample=120, seed=3)
    assert other.without_ties.rate < result.without_ties.rate


def test_ratings_cli_prints_a_leaderboard_with_intervals(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = suite_of("a", "bb", limit=4)
    suite.ratings.bootstrap_rounds = 50
    generate(store, suite, scripted)
    judge_suite(suite, store, "r1", judges={"lenjudge": LLMJudge("lenjudge", VerdictBackend())})
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        "name: j\nmodels:\n  - {name: a, backend: hf, model: x}\n  - {name: bb, backend: hf, model: y}\n"
        "sets: [{name: quickstart, categories: [math], limit: 4}]\n"
        "judges: [{name: lenjudge, model: {name: jm, backend: hf, model: z}}]\n"
        "ratings: {bootstrap_rounds: 50}\n")
    result = runner.invoke(app, ["ratings", str(suite_file), "--db", str(store.path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip().startswith(("│ a ", "│ bb "))]
    assert [ln.split()[1] for ln in lines] == ["bb", "a"]  # the length judge prefers bb
    assert re.search(r"\d+ \[\d+, \d+\]", lines[0])


def test_a_fastchat_judgment_file_is_scored_against_the_experts(tmp_path, shared_data):
    """A file that copies one expert's own votes (in FastChat's pair format, both games agreeing)
    must agree with that expert; the CLI reports it per judge."""
    import json

    from judges.meta import load_mt_bench_votes

    votes = [v for v in load_mt_bench_votes(shared_data / "mt_bench" / "human_judgments_turn1_votes.jsonl")
             if v.judge == "expert_0"]
    to_g = {"model_a": "model_1", "model_b": "model_2", "tie": "tie"}
    path = tmp_path / "copycat_pair.jsonl"
    path.write_text("".join(json.dumps({
        "question_id": v.question_id, "model_1": v.model_a, "model_2": v.model_b, "g1_winner": to_g[v.winner],
        "g2_winner": to_g[v.winner], "g1_judgment": "", "g2_judgment": "", "judge": ["copycat", "pair-v2"],
        "turn": 1, "tstamp": 0}) + "\n" for v in votes))
    result = runner.invoke(app, ["judge-eval", "--data", str(shared_data), "--fastchat-judgments", str(path)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("copycat/pair-v2"))
    agree, total = map(int, re.search(r"without \((\d+)/(\d+)\)", line).groups())
    assert total > 0 and agree / total > 0.81  # above the human-human rate: it contains expert_0's own votes
