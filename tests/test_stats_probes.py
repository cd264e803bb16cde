"""Gaming probes (harness.stats.probes, harness.api.probe) through the real pipeline: scripted
models and a judge that always prefers the longer answer (tests.test_judges.VerdictBackend)."""

from __future__ import annotations

import hashlib
import math

from harness import api, views
from harness.battles import battles, for_suite
from harness.models.base import Completion, GenerationParams, Message
from harness.stats import probes, style
from harness.store import Store
from judges.llm import LLMJudge
from tests.test_judges import VerdictBackend
from tests.test_one_truth import make_suite
from tests.stub_server import judged_turn


def test_transforms_keep_the_words_and_add_only_form():
    text = "Paris is the capital. It is in France."
    assert probes.inflate_length(text) == f"{text}\n\nIn more detail: {text}\n\nTo summarise: {text}"
    assert probes.inflate_markdown(text) == ("## Answer\n\n- **Paris** is the capital.\n- **It** is in France."
                                             "\n\n### Summary\n\n**Paris is the capital.**")
    assert style.markdown_counts(probes.inflate_markdown(text)) == (2, 2, 3)
    assert probes.null_answer(text) == probes.NULL_ANSWER


def test_replay_backend_answers_from_the_copied_models_turns():
    backend = probes.ReplayBackend("probe-length-a", "length", {("Q1", 1): "one", ("Q1", 2): "two"})
    params = GenerationParams()
    turn1 = [Message("user", "Q1 ")]
    turn2 = [Message("user", "Q1"), Message("assistant", "x"), Message("user", "follow-up")]
    out = backend.generate([turn1, turn2, [Message("user", "Q9")]], params)
    assert [c.text for c in out[:2]] == [probes.inflate_length("one"), probes.inflate_length("two")]
    assert out[2].finish_reason == "error" and "no answer here" in out[2].error
    null = probes.ReplayBackend("probe-null", "null", {})
    assert [c.text for c in null.generate([turn1], params)] == [probes.NULL_ANSWER]
    assert backend.fingerprint() != probes.ReplayBackend("x", "markdown", backend.answers).fingerprint()


def _draw(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


class Wordy:
    """A scripted model whose answer length varies by question (so a length preference and a
    model's quality can be told apart): its name, then 1-30 padding words."""

    def __init__(self, name: str):
        self.name, self.chunk_size = name, 8

    def fingerprint(self) -> str:
        return f"wordy-{self.name}"

    def generate(self, conversations, params):
        return [Completion(f"{self.name} says " + "word " * (1 + _draw(self.name, c[-1].content) % 30))
                for c in conversations]

    def close(self) -> None:
        pass


class NoisyLengthJudge(VerdictBackend):
    """Prefers the longer answer with probability sigmoid(3 (len_a - len_b) / (len_a + len_b)): a
    taste of the form style control assumes (a logistic in the normalised length difference)."""

    def generate(self, conversations, params):
        out = []
        for conv in conversations:
            nonce, a, b, dims = judged_turn(conv[-1].content)  # a, b: the judged turn's answers
            p_a = 1 / (1 + math.exp(-3 * (len(a) - len(b)) / (len(a) + len(b))))
            # the draw depends on the two answers in their order and the dimension, not on the prompt
            # (which carries a random nonce): the same verdicts on every run
            text = "\n".join(f"VERDICT-{nonce} {d}: {'A' if _draw(a, b, d) / 16 ** 8 < p_a else 'B'}" for d in dims)
            out.append(Completion(text=text))
        return out


def test_probe_run_on_a_length_loving_judge(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    suite = make_suite("a", "bb", "ccc", "dddd")
    suite = suite.model_copy(update={"sets": [suite.sets[0].model_copy(update={"limit": 40, "categories": None})]})
    judge = lambda: {"lenjudge": LLMJudge("lenjudge", NoisyLengthJudge())}  # noqa: E731
    api.run(suite, store, backends={m.name: Wordy(m.name) for m in suite.models}, judges=judge(),
            stages=("generate", "judge"))
    report = api.probe(suite, store, base_model="a", keep=tmp_path / "probe.duckdb", judges=judge())
    assert report.base_model == "a" and report.markdown_features
    assert sorted({r.kind for r in report.rows}) == sorted(probes.KINDS) and len(report.rows) == 3 * 3
    for dimension in ("accuracy", "helpfulness", "language"):
        rows = {r.kind: r for r in report.rows if r.dimension == dimension}
        length = rows["length"]
        print(f"{dimension}: length copy raw gain {length.raw_gain:+.0f}, controlled {length.controlled_gain:+.0f};"
              f" markdown copy raw {rows['markdown'].raw_gain:+.0f}, controlled {rows['markdown'].controlled_gain:+.0f};"
              f" null raw {rows['null'].raw_gain:+.0f} vs {rows['null'].against}")
        assert length.against == "a"
        # The copies have a's content, longer or in markdown: they gain only by form, and style
        # control takes most of that gain away. (Measured: length copy raw +266..+324, controlled
        # +58..+154, within the uncertainty of the length coefficient the copy's extreme length
        # amplifies; markdown copy raw +171..+180, controlled +9..+55.)
        assert length.raw_gain > 100
        assert abs(length.controlled_gain) < 0.6 * length.raw_gain
        assert abs(rows["markdown"].controlled_gain) < 0.5 * rows["markdown"].raw_gain
    assert report.flags() == [f"lenjudge / {r.dimension}: the null model ({r.raw:.0f}) outrates {r.against} "
                              f"({r.against_raw:.0f})" for r in report.rows if r.kind == "null" and r.raw > r.against_raw]
    # The results are stored for the Judges page's flag (views.probe_results), as reported.
    stored = views.probe_results(store, suite.name)
    assert [(r["dimension"], r["kind"], r["probe_model"], r["against"], r["rating"], r["controlled"], r["flagged"])
            for r in stored] == sorted((r.dimension, r.kind, r.model, r.against, r.raw, r.controlled, r.flagged)
                                       for r in report.rows)
    assert report.not_saved is None
    # The user's board never holds the probes.
    on_board = {m for b in battles(store, for_suite(suite), "inconsistent_tie") for m in (b.model_a, b.model_b)}
    assert on_board == {"a", "bb", "ccc", "dddd"}
