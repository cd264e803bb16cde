"""Calibration (Wang et al. 2023): MEC, BPC and HITLC computed exactly from known verdicts, MEC through
a real endpoint with its calls counted and cached, and the people's queue ranked over a real store."""

from __future__ import annotations

import math
import random
import re

import pytest

from harness.calibration import annotate_priority, calibrate_judge, control_name, hitlc_name
from harness.config import HFModelSpec, OpenAIModelSpec, SetSpec, Suite, JudgeSpec
from harness.errors import ConfigError
from harness.judging import judge_suite
from harness.models.base import Completion
from harness.runner import run_suite
from harness.store import Store
from judges.base import JudgeOutput, PairItem
from judges.calibration import (EvidenceFirstJudge, MultipleEvidenceJudge, Sample, bpc_verdict, decide,
                                diversity_entropy, entropy_ranking, item_entropy, mec_verdict,
                                paired_ratio_difference, top_fraction)
from judges.labelled import LabelledPair


# --- a judge whose every sample's verdict is known --------------------------------------------------------
class ScriptedJudge:
    """verdicts[(pair id, order)][sample - 1] is the positional verdict of that sample; order 1 is
    the pair's response_a shown first. Records every item it is asked about."""

    kind = "pairwise"
    dimensions = ("overall",)
    chunk_size = 3

    def __init__(self, verdicts: dict, firsts: dict, sample: int = 0, log: list | None = None, decode="generate"):
        self.name, self.verdicts, self.firsts, self.sample, self.decode = "scripted", verdicts, firsts, sample, decode
        self.asked = [] if log is None else log

    def fingerprint(self) -> str:
        return f"scripted-sample-{self.sample}"

    def resampled(self, sample: int) -> "ScriptedJudge":
        return ScriptedJudge(self.verdicts, self.firsts, sample, self.asked, self.decode)

    def judge(self, items):
        out = []
        for item in items:
            order = 1 if item.answers_a[-1] == self.firsts[item.question_id] else 2
            self.asked.append((item.question_id, order, self.sample))
            verdict = self.verdicts[(item.question_id, order)][max(self.sample, 1) - 1]
            out.append({"overall": JudgeOutput(raw=f"evidence... {verdict}", verdicts={"overall": verdict})})
        return out

    def close(self):
        pass


def pair(pid: str, *labels: str) -> LabelledPair:
    return LabelledPair(pid, "all", (f"question {pid}",), f"{pid} first answer", f"{pid} second", labels)


PAIRS = [pair("p1", "A"), pair("p2", "B"), pair("p3", "tie"), pair("p4", "A", "A", "B")]
VERDICTS = {  # positional verdicts of samples 1..3 in each order
    ("p1", 1): "AAB", ("p1", 2): "ABB",      # aligned: A A B | B A A
    ("p2", 1): "BBB", ("p2", 2): "AAA",      # consistent: B
    ("p3", 1): "AAA", ("p3", 2): "AAA",      # pure position bias
}
VERDICTS = {k: [{"A": "A", "B": "B"}[c] for c in v] for k, v in VERDICTS.items()}
VERDICTS[("p4", 1)] = ["tie", "A", "tie"]    # aligned: tie A tie
VERDICTS[("p4", 2)] = ["B", "tie", "B"]      # aligned: A tie A
FIRSTS = {p.id: p.response_a for p in PAIRS}


def samples_of(pid: str, k: int = 3) -> list[Sample]:
    return [Sample(order, VERDICTS[(pid, order)][s]) for order in (1, 2) for s in range(k)]


# --- the pure functions -------------------------------------------------------------------------------
def test_diversity_entropy_of_known_verdict_multisets():
    assert diversity_entropy(["A"] * 6) == 0.0
    assert diversity_entropy(["A", "B", "tie"] * 2) == pytest.approx(math.log(3), abs=1e-12)
    assert diversity_entropy(["A", "B", "tie"] * 2, base=2) == pytest.approx(math.log2(3), abs=1e-12)
    assert diversity_entropy(["A", "A", "A", "B"]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert diversity_entropy(["A", None, "A"]) == 0.0  # unparsed verdicts are left out
    assert diversity_entropy([]) == 0.0
    with pytest.raises(ValueError):
        diversity_entropy(["1"])
    # both orders on the item's own sides: a judge that always says "A" disagrees with itself
    assert item_entropy(samples_of("p3")) == pytest.approx(math.log(2))
    assert item_entropy(samples_of("p2")) == 0.0


def test_mec_averages_samples_within_an_order_and_bpc_across_orders():
    p1 = samples_of("p1")
    assert [mec_verdict(p1, 1), mec_verdict(p1, 2)] == ["A", "A"]  # 2 of 3 A in each order (order 2 aligned)
    assert bpc_verdict([s for s in p1 if s in (p1[0], p1[3])]) == "tie"  # first samples: A vs (aligned) B
    assert bpc_verdict(p1) == "A"
    p4 = samples_of("p4")
    assert [mec_verdict(p4, 1), mec_verdict(p4, 2)] == ["tie", "A"]
    assert bpc_verdict(p4) == "tie"  # (1/2 A, 0 B, 1/2 tie): A and tie share the top
    # with choice log-likelihoods each sample is a distribution, and the averages are of probabilities
    order_1 = Sample(1, "A", (math.log(0.6), math.log(0.3), math.log(0.1)))
    order_2 = Sample(2, "A", (math.log(0.5), math.log(0.1), math.log(0.4)))  # aligned: B 0.5, A 0.1, tie 0.4
    assert order_1.aligned_distribution() == pytest.approx((0.6, 0.3, 0.1))
    assert order_2.aligned_distribution() == pytest.approx((0.1, 0.5, 0.4))
    assert bpc_verdict([order_1, order_2]) == "B"  # (0.35, 0.40, 0.25)
    assert decide((0.4, 0.4, 0.2)) == "tie" and decide(None) is None


def test_entropy_ranking_and_the_top_beta():
    entropies = {"a": 0.0, "b": math.log(2), "c": math.log(3), "d": math.log(2)}
    assert entropy_ranking(entropies) == ["c", "b", "d", "a"]
    assert entropy_ranking(entropies, {"b": 0.5, "d": 0.1}) == ["c", "d", "b", "a"]  # closer call first
    ranking = list("abcdefghij")
    assert top_fraction(ranking, 0.2) == ["a", "b"]
    assert top_fraction(ranking, 0.25) == ["a", "b", "c"]  # 2.5 rounds up
    with pytest.raises(ConfigError):
        top_fraction(ranking, 1.5)


def test_paired_difference_is_of_the_same_items():
    before, after = ([1, 0, 0, 1], [1, 1, 1, 1]), ([1, 1, 0, 1], [1, 1, 1, 1])
    value, low, high = paired_ratio_difference(before, after, rounds=500, level=0.9, seed=0)
    assert value == pytest.approx(0.25)
    # only item 2 changes, and only upwards: a resample gains 1/4 per copy of it, and misses it 32% of the time
    assert low == 0.0 and value <= high <= 1.0
    assert paired_ratio_difference(before, before, 200, 0.95, 0) == (0.0, 0.0, 0.0)


# --- before / after on a tiny labelled set, computed by hand -----------------------------------------
def test_every_method_agreement_on_a_tiny_labelled_set_is_exact():
    report = calibrate_judge(ScriptedJudge(VERDICTS, FIRSTS), PAIRS, k=3, beta=0.5, rounds=200, seed=0)
    got = {m.method: (m.with_ties.numerator, m.with_ties.denominator, m.without_ties.numerator,
                      m.without_ties.denominator) for m in report.methods}
    # FastChat agreement: every judge vote against every human vote (p4 has three annotators)
    assert got["vanilla"] == (5, 12, 5, 7)
    assert got["MEC"] == (6, 12, 6, 7)
    assert got["BPC"] == (2, 6, 1, 1)
    assert got["MEC+BPC"] == (3, 6, 2, 2)
    # entropy ranks p3 (ln 2, margin 0) and p4 (ln 2, margin 1/2) first: people settle them
    assert report.entropy["p3"] == pytest.approx(math.log(2)) and report.entropy["p4"] == pytest.approx(math.log(2))
    assert got[hitlc_name(0.5)] == (5, 6, 4, 5)
    drawn = set(random.Random(0).sample(sorted(report.entropy), 2))
    gold = {"p1": "A", "p2": "B", "p3": "tie", "p4": "A"}
    mec_bpc = {"p1": "A", "p2": "B", "p3": "tie", "p4": "tie"}
    control = {p: gold[p] if p in drawn else mec_bpc[p] for p in gold}
    humans = {"p1": ["A"], "p2": ["B"], "p3": ["tie"], "p4": ["A", "A", "B"]}
    assert got[control_name(0.5)][:2] == (sum(control[p] == h for p in gold for h in humans[p]), 6)
    mec = report.method("MEC")
    assert mec.before == "vanilla" and mec.delta_with_ties[0] == pytest.approx(6 / 12 - 5 / 12)
    assert report.method(hitlc_name(0.5)).before == "MEC+BPC" and report.method(hitlc_name(0.5)).human_labels == 2
    assert report.calls == 4 * 2 * 3 and report.cached == 0
    # first sample: positional A wins 5 of 7 decided verdicts; p1, p3, p4 flip under swap
    assert report.reliability.first_position_win_rate == pytest.approx(5 / 7)
    assert report.reliability.swap_flip_rate == pytest.approx(3 / 4)


def test_mec_needs_independent_samples():
    with pytest.raises(ConfigError, match="decode: choice"):
        calibrate_judge(ScriptedJudge(VERDICTS, FIRSTS, decode="choice"), PAIRS, k=3)
    with pytest.raises(ConfigError, match="beta"):
        calibrate_judge(ScriptedJudge(VERDICTS, FIRSTS), PAIRS, k=3, beta=2)
    one = calibrate_judge(ScriptedJudge(VERDICTS, FIRSTS), PAIRS, k=1, beta=0.25, rounds=0)
    assert one.calls == 8 and "MEC" not in {m.method for m in one.methods}
    assert one.method(hitlc_name(0.25)).before == "BPC"


def test_the_mec_wrapper_is_a_judge_of_averaged_samples():
    base = ScriptedJudge(VERDICTS, FIRSTS)
    mec = MultipleEvidenceJudge(base, k=3)
    items = [PairItem(p, "all", ("q",), (FIRSTS[p],), ("other",), 1) for p in ("p1", "p4")]
    out = mec.judge(items)
    assert [o["overall"].verdicts for o in out] == [{"overall": "A"}, {"overall": "tie"}]
    assert "--- sample 3 ---" in out[0]["overall"].raw and out[0]["overall"].choice_logprobs is None
    assert sorted(base.asked) == sorted((p, 1, s) for p in ("p1", "p4") for s in (1, 2, 3))
    assert mec.fingerprint() != MultipleEvidenceJudge(base, k=2).fingerprint()
    assert mec.resampled(1).fingerprint() != mec.fingerprint()


# --- the evidence-first judge: a sampled explanation, then 1 / 2 / Tie by likelihood ---------------------
class EvidenceBackend:
    """Generates evidence naming its seed; scores "2" highest when the evidence says 'second'."""

    chunk_size = 4

    def __init__(self):
        self.generated, self.scored = [], []

    def fingerprint(self):
        return "evidence-backend"

    def generate(self, conversations, params):
        self.generated.append(params)
        return [Completion(text=f"the second is better (seed {params.seed})") for _ in conversations]

    def score_choices(self, conversations, choices):
        self.scored += conversations
        return [[-2.0, -0.5, -1.5] if "second" in c[1].content else [-0.5, -2.0, -1.5] for c in conversations]

    def close(self):
        pass


def test_evidence_first_judge_picks_by_likelihood_after_its_sampled_evidence():
    backend = EvidenceBackend()
    judge = EvidenceFirstJudge("ev", backend, max_new_tokens=16)
    item = PairItem("q", "all", ("Say hi",), ("hi",), ("hello",), 1)
    out = judge.resampled(2).judge([item])[0]["overall"]
    assert out.verdicts == {"overall": "B"} and out.choice_logprobs == (-2.0, -0.5, -1.5)
    assert out.raw.startswith("the second is better (seed 2)\n2\n(chosen by likelihood")
    asked = backend.scored[0]
    assert [m.role for m in asked] == ["user", "assistant", "user"] and "Response 2]\nhello" in asked[0].content
    assert backend.generated[0].temperature > 0 and backend.generated[0].seed == 2
    assert len({judge.fingerprint(), judge.resampled(1).fingerprint(), judge.resampled(2).fingerprint()}) == 3


# --- MEC through a real endpoint: 2k calls per item, then none ----------------------------------------------
def test_mec_makes_2k_calls_per_item_through_an_endpoint_and_a_rerun_makes_none(tmp_path):
    from harness.models.openai_backend import OpenAIBackend
    from judges.llm import LLMJudge
    from tests.stub_server import StubServer

    store = Store(tmp_path / "c.duckdb")
    pairs = [pair("x1", "A"), pair("x2", "B"), pair("x3", "tie")]
    with StubServer() as stub:  # the longer answer wins: "... first answer" is side A
        spec = OpenAIModelSpec(name="stub-judge", model="stub", base_url=stub.base_url)
        judge = LLMJudge("stubjudge", OpenAIBackend(spec), dimensions=("overall",))
        first = calibrate_judge(judge, pairs, store, k=3, rounds=100)
        assert stub.served_calls("judge") == 2 * 3 * len(pairs) == first.calls
        again = calibrate_judge(judge, pairs, store, k=3, rounds=100)
        assert stub.served_calls("judge") == 2 * 3 * len(pairs) and again.calls == 0 and again.cached == 18
        judge.close()
    assert stub.served_twice() == 0  # each sample was its own request (temperature and seed differ)
    vanilla = first.method("vanilla").with_ties
    assert (vanilla.numerator, vanilla.denominator) == (2, 6)  # x1 right in both orders; x2, x3 wrong
    assert again.method("MEC+BPC").with_ties.value == first.method("MEC+BPC").with_ties.value == pytest.approx(1 / 3)


# --- the people's queue over a suite's stored battles -------------------------------------------------------
class QuestionScriptedJudge(ScriptedJudge):
    """Judges suite battles: per question, a fixed positional verdict for each order."""

    def __init__(self, by_question: dict, sample: int = 0):
        super().__init__({}, {}, sample)
        self.name, self.by_question = "j", by_question

    def resampled(self, sample):
        return QuestionScriptedJudge(self.by_question, sample)

    def judge(self, items):
        return [{"overall": JudgeOutput(raw="", verdicts={"overall": self.by_question[i.question_id][
            0 if i.answers_a[-1].startswith("a ") else 1]})} for i in items]


def test_annotate_priority_puts_the_battles_the_judge_contradicts_itself_on_first(tmp_path, scripted):
    store = Store(tmp_path / "h.duckdb")
    suite = Suite(name="cal", models=[HFModelSpec(name=m, model=f"scripted-{m}") for m in ("a", "bb")],
                  sets=[SetSpec(name="quickstart", categories=["math"], limit=3)],
                  judges=[JudgeSpec(name="j", model=HFModelSpec(name="jm", model="scripted"), dimensions=["overall"])])
    run_suite(suite, store, backends={m.name: scripted(m.name) for m in suite.models})
    with store.read() as con:
        q1, q2, q3 = [q for (q,) in con.execute("SELECT DISTINCT question_id FROM answers ORDER BY 1").fetchall()]
    # (verdict with a's answer shown first, verdict with bb's shown first)
    script = {q1: ("B", "A"), q2: ("tie", "B"), q3: ("A", "A")}  # q1 consistent (bb), q2 half, q3 position bias
    judge_suite(suite, store, "r1", judges={"j": QuestionScriptedJudge(script)})
    ranked = annotate_priority(store, suite, "j")
    # ln 2 with margin 0, ln 2 with margin 1/2 (q2 has two turns), then the consistent battle
    assert [(b.question_id, b.turn) for b in ranked] == [(q3, 1), (q2, 1), (q2, 2), (q1, 1)]
    assert [round(b.entropy, 6) for b in ranked] == [round(math.log(2), 6)] * 3 + [0.0]
    assert [b.margin for b in ranked] == [0.0, 0.5, 0.5, 1.0]
    assert ranked[0].key == ("quickstart", q3, 1, "a", "bb") and ranked[0].verdicts == 2
    assert [b.key for b in annotate_priority(store, suite, "j", beta=0.5)] == [b.key for b in ranked[:2]]
    with pytest.raises(ConfigError, match="not a pairwise judge"):
        annotate_priority(store, suite, "nobody")


# --- the command: parse, call api.calibrate, render -------------------------------------------------------
def test_harness_calibrate_prints_the_table_and_a_rerun_asks_nothing(tmp_path):
    import os
    import subprocess
    import sys

    from judges.labelled import write_pairs
    from tests.conftest import REPO
    from tests.stub_server import StubServer

    def cli(*args, columns=250):
        return subprocess.run([sys.executable, "-m", "harness.cli", "calibrate", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "COLUMNS": str(columns), "HF_HUB_OFFLINE": "1"})

    pairs = tmp_path / "pairs.jsonl"
    write_pairs([pair("x1", "A"), pair("x2", "B"), pair("x3", "A", "tie")], pairs)
    db = tmp_path / "c.duckdb"
    bad = cli("--benchmark", "nope", "--db", str(db))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "benchmark: 'nope'" in bad.stderr, bad.stderr
    with StubServer() as stub:
        suite = tmp_path / "s.yaml"
        suite.write_text(f"""name: s
models: [{{name: m, backend: openai, model: m, base_url: '{stub.base_url}'}}]
sets: [{{name: quickstart}}]
judges:
  - {{name: sj, dimensions: [overall], model: {{name: jm, backend: openai, model: jm, base_url: '{stub.base_url}'}}}}
""")
        args = ("--suite", str(suite), "--pairs", str(pairs), "--sample", "0", "--k", "2", "--beta", "0.34", "--db", str(db))
        first = cli(*args)
        assert first.returncode == 0, first.stdout + first.stderr
        assert stub.served_calls("judge") == 3 * 2 * 2
        again = cli(*args, columns=80)
        assert stub.served_calls("judge") == 12 and "0 judge calls made, 12 read from the store" in again.stdout
    # at 80 columns no line is wider and no cell is cut or wrapped: every agreement cell is printed whole
    cells = re.findall(r"-?\d+\.\d%(?: \[[^\]]+\])? \(\d+/\d+\)", first.stdout)
    assert len(cells) >= 6 and all(c in again.stdout for c in cells), again.stdout
    assert max(map(len, again.stdout.splitlines())) <= 80
    for method in ("vanilla", "MEC+BPC", "HITLC (beta=0.34)", "random 0.34 to people (control)"):
        assert method in first.stdout
    assert "12 judge calls made, 0 read from the store" in first.stdout
