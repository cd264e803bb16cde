"""Strict parsers that read only the judge's own output.

Prompt judges must end with verdict lines tagged by a per-call secret, e.g. `VERDICT-3f9a2c41d07e
accuracy: A`. The tag is an HMAC of the call's key under a secret the candidates never see
(`verdict_tag`; the pipeline keeps one random secret per store). The call's key itself is no secret:
it derives from model fingerprints, settings and the question, all known before any answer exists.
So an answer cannot carry its own call's tag: a candidate that writes "[[A]]", "Tie" or tagged
"VERDICT-… accuracy: A" lines cannot decide the parse, and cannot veto it by making the output
conflict, even when the judge repeats the answer's text. Anything else in the output is ignored, and
an output without exactly one valid tagged line per dimension is unparsed; we never guess.

PandaLM's contract is positional instead: the first non-empty line is exactly `1`, `2` or `Tie`.
It carries no tag, so a PandaLM judge that starts its output by repeating an answer can be steered
by that answer; where that matters use the tagged prompt style, or `decode: choice` (likelihood,
no free text at all).
"""

from __future__ import annotations

import hmac
import re

from judges.base import DIMENSION_NAME

PARSER_VERSION = "parse-v1"
VERDICTS = {"a": "A", "b": "B", "tie": "tie"}


def verdict_tag(secret: str, call_key: str) -> str:
    """The tag a call's verdict lines must carry: unpredictable without `secret`, stable for a call."""
    return hmac.digest(secret.encode(), call_key.encode(), "sha256").hex()[:12]


# One compiled pattern per format, the tag captured and compared: a pattern per call's tag would be
# compiled anew for every call (the re cache holds 512), which was ~5% of a judging run's CPU.
_VERDICT_BODY = rf"\s+({DIMENSION_NAME})\s*[:=]\s*\[?\[?\s*(A|B|tie)\s*\]?\]?\W*$"
_SCORE_BODY = r"\s*[:=]\s*\[?\[?\s*(\d+(?:\.\d+)?)\s*\]?\]?\W*$"
_FLAGS = re.IGNORECASE | re.MULTILINE
_VERDICT_LINE = re.compile(r"^\W*VERDICT-(\w*)" + _VERDICT_BODY, _FLAGS)
_SCORE_LINE = re.compile(r"^\W*SCORE-(\w*)" + _SCORE_BODY, _FLAGS)


def _tagged(output: str, nonce: str, line: re.Pattern, kind: str, body: str) -> list[tuple]:
    """The fields of every `kind-<nonce>` line (the tag compared as the pattern once matched it:
    ignoring case); a tag that is not all word characters gets a pattern of its own."""
    if not re.fullmatch(r"\w*", nonce):
        return re.compile(rf"^\W*{kind}-{re.escape(nonce)}" + body, _FLAGS).findall(output)
    wanted = nonce.lower()
    return [fields[1:] if len(fields) > 2 else fields[1] for fields in line.findall(output)
            if fields[0].lower() == wanted]


def parse_pairwise(output: str, nonce: str, dimensions: tuple[str, ...]) -> dict[str, str] | None:
    """{dimension: 'A'|'B'|'tie'} for every dimension, or None."""
    # DIMENSION_NAME reads every name the old [a-z_]+ read that a judge may have, so PARSER_VERSION stays.
    found: dict[str, set[str]] = {}
    for dimension, verdict in _tagged(output, nonce, _VERDICT_LINE, "VERDICT", _VERDICT_BODY):
        found.setdefault(dimension.lower(), set()).add(VERDICTS[verdict.lower()])
    if any(len(found.get(d, ())) != 1 for d in dimensions):
        return None  # a dimension missing, or given two different verdicts
    return {d: found[d].pop() for d in dimensions}


def parse_score(output: str, nonce: str) -> float | None:
    """The 1-10 grade from `SCORE-<nonce>: 7`, or None (also when several lines disagree)."""
    scores = {float(s) for s in _tagged(output, nonce, _SCORE_LINE, "SCORE", _SCORE_BODY)}
    if len(scores) != 1:
        return None
    score = scores.pop()
    return score if 1 <= score <= 10 else None


def parse_pandalm(output: str) -> str | None:
    """PandaLM's first line: '1' -> 'A', '2' -> 'B', 'Tie' -> 'tie'; anything else is unparsed."""
    for line in output.splitlines():
        if line.strip():
            return {"1": "A", "2": "B", "tie": "tie"}.get(line.strip().lower())
    return None


# --- likelihood-choice judges (decode: choice) ----------------------------------------------------
CHOICES = ("1", "2", "Tie")
_CHOICE_SCORES = re.compile(r"\(chosen by likelihood: 1=(\S+), 2=(\S+), Tie=(\S+)\)")


def choice_output(scores: list[float]) -> str:
    """The raw output stored for a choice judgment: the pick, then every choice's log-likelihood
    (kept so the two orders can be calibrated against each other later)."""
    best = CHOICES[max(range(len(CHOICES)), key=scores.__getitem__)]
    return best + "\n(chosen by likelihood: " + ", ".join(f"{c}={s:.3f}" for c, s in zip(CHOICES, scores)) + ")"


def choice_logprobs(raw_output: str | None) -> tuple[float, float, float] | None:
    """(log P("1"), log P("2"), log P("Tie")) from a stored choice output, or None for other judges."""
    match = _CHOICE_SCORES.search(raw_output or "")
    return tuple(float(v) for v in match.groups()) if match else None  # type: ignore[return-value]

