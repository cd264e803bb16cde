"""The scripted 8-model store behind README "How sure are we": eight scripted models m0..m7 answer the
quickstart set (20 questions), a scripted judge decides each battle from the models' strengths
(0.25 logits apart) plus a per-question, per-model random effect (sd 0.6: what makes battles on one
question correlated), a taste for length (0.4 per unit of 3 x the normalised length difference) and
for markdown (+0.3 when only one answer has a bullet), with 15% ties. No model is loaded.

    python bench/how_sure.py /tmp/m8            # builds /tmp/m8/m8.duckdb and /tmp/m8/suite.yaml
    harness ratings /tmp/m8/suite.yaml --db /tmp/m8/m8.duckdb
    harness how-sure /tmp/m8/suite.yaml --db /tmp/m8/m8.duckdb --dimension accuracy
    harness compare m1 m0 --suite /tmp/m8/suite.yaml --db /tmp/m8/m8.duckdb
    python bench/how_sure.py /tmp/m8 --probe    # harness.api.probe with the scripted judge (copying m3)
"""
import hashlib
import math
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import api  # noqa: E402
from harness.config import HFModelSpec, JudgeSpec, SetSpec, Suite  # noqa: E402
from harness.models.base import Completion  # noqa: E402
from harness.store import Store  # noqa: E402
from judges.llm import LLMJudge  # noqa: E402
from tests.stub_server import judged_turn  # noqa: E402

def u(*parts) -> float:
    """A uniform draw in [0, 1) from a hash of the parts: the same store on every run."""
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:12], 16) / 16 ** 12


def normal(*parts) -> float:
    """A standard normal draw from a hash of the parts (Box-Muller)."""
    return math.sqrt(-2 * math.log(max(u(*parts, "1"), 1e-12))) * math.cos(2 * math.pi * u(*parts, "2"))


class Model:
    """m<i>: "m<i> says word word ..." (3-42 words, by question), with a markdown bullet on 30-65% of
    questions (more for stronger models, so markdown and strength are correlated but not the same)."""

    def __init__(self, name: str):
        self.name, self.chunk_size = name, 8

    def fingerprint(self) -> str:
        return f"m8-{self.name}"

    def close(self) -> None:
        pass

    def generate(self, conversations, params):
        out = []
        for conv in conversations:
            q = conv[-1].content
            text = f"{self.name} says " + "word " * (3 + int(u(self.name, q, "len") * 40))
            markdown = u(self.name, q, "md") < 0.3 + 0.05 * int(self.name[1:])
            out.append(Completion("- **Point** " + text if markdown else text))
        return out


def _author(answer: str) -> str | None:
    found = re.search(r"(m\d) says", answer)
    return found.group(1) if found else None  # None: a probe's null answer (strength -1)


class Judge:
    """Decides from the two answers in the prompt (see the module docstring)."""

    chunk_size = 8

    def fingerprint(self) -> str:
        return "m8-judge"

    def close(self) -> None:
        pass

    def generate(self, conversations, params):
        out = []
        for conv in conversations:
            prompt = conv[-1].content
            nonce, a, b, dims = judged_turn(prompt)
            question = re.search(r"\[User[^\]]*\]\n(.*?)\n", prompt, re.S).group(1)[:80]
            lines = []
            for d in dims:
                logit = 0.0
                for answer, sign in ((a, 1), (b, -1)):
                    m = _author(answer)
                    logit += sign * (0.25 * int(m[1:]) + 0.6 * normal(m, question, d) if m else -1.0)
                logit += 0.4 * 3 * (len(a) - len(b)) / (len(a) + len(b))
                logit += 0.3 * (("- " in a) - ("- " in b))
                p_a, r = 1 / (1 + math.exp(-logit)), u(a, b, d, "draw")
                lines.append(f"VERDICT-{nonce} {d}: " + ("A" if r < 0.85 * p_a else "B" if r > 0.85 * p_a + 0.15 else "tie"))
            out.append(Completion("\n".join(lines)))
        return out


def suite():
    names = [f"m{i}" for i in range(8)]
    return Suite(name="m8", models=[HFModelSpec(name=m, model=f"scripted-{m}") for m in names],
                 sets=[SetSpec(name="quickstart")],
                 judges=[JudgeSpec(name="m8judge", model=HFModelSpec(name="jm", model="scripted"))],
                 ratings={"bootstrap_rounds": 1000})

def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/m8")
    folder.mkdir(parents=True, exist_ok=True)
    s, judge = suite(), {"m8judge": LLMJudge("m8judge", Judge())}
    if "--probe" in sys.argv:
        report = api.probe(s, folder / "m8.duckdb", base_model="m3", keep=folder / "probe.duckdb", judges=judge)
        for r in report.rows:
            print(f"{r.judge_name}/{r.dimension} {r.kind:8s} vs {r.against}: raw {r.raw:.0f} ({r.raw_gain:+.0f}), "
                  f"style-controlled {r.controlled:.0f} ({r.controlled_gain:+.0f}){' FLAG' if r.flagged else ''}")
        return
    api.run(s, Store(folder / "m8.duckdb"), backends={m.name: Model(m.name) for m in s.models}, judges=judge,
            stages=("generate", "judge", "rate"))
    (folder / "suite.yaml").write_text(yaml.safe_dump(s.model_dump(mode="json")))
    print(f"built {folder / 'm8.duckdb'} and {folder / 'suite.yaml'}")


if __name__ == "__main__":
    main()
