"""Judge panels: several judges -> one verdict per dimension, and how much the judges agree.

`PanelJudge` asks every member about the same ordered items and combines their verdicts per
dimension: `majority` counts one vote per member; `weighted` counts each member's weight, e.g. the
log-odds of its measured accuracy against people, log(a / (1 - a)) (`log_odds_weight`), which is the
optimal weighted vote for independent voters (Nitzan & Paroush 1982). When the top count is shared
(A and B equal, or a verdict and tie equal), the panel says tie: a split panel decides nothing.
Members that did not parse do not vote; a panel with no vote is unparsed. A member the backend could
not answer makes the panel's call a failure (retried by the next run), never a smaller panel.

Inter-judge agreement (pure functions): pairwise Cohen's kappa (judges.meta.cohen_kappa) over the
items both judges labelled, and Krippendorff's alpha for nominal data over all judges, missing
labels allowed (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Hashable, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError
from harness.models.base import stable_hash
from judges.agreement import Metric, percentile_interval
from judges.base import Judge, JudgeOutput
from judges.meta import cohen_kappa

PANEL_VERSION = "panel-v1"
VERDICTS = ("A", "B", "tie")
COMBINE = ("majority", "weighted")


def log_odds_weight(accuracy: float) -> float:
    """The weight of a voter right with probability `accuracy` (0.5 < accuracy < 1) in the optimal
    weighted majority of independent voters."""
    if not 0.5 < accuracy < 1:
        raise ValueError(f"accuracy {accuracy} must lie strictly between 0.5 (chance) and 1")
    return math.log(accuracy / (1 - accuracy))


def combine_votes(votes: Sequence[tuple[str | None, float]]) -> str | None:
    """One verdict from (verdict or None, weight) votes: the largest total, tie when it is shared,
    None when nobody voted."""
    totals: Counter[str] = Counter()
    for verdict, weight in votes:
        if verdict is not None:
            totals[verdict] += weight
    if not totals:
        return None
    best = max(totals.values())
    leaders = [v for v in VERDICTS if totals.get(v) == best]
    return leaders[0] if len(leaders) == 1 else "tie"


class PanelJudge:
    """Several pairwise judges as one (see the module docstring)."""

    kind = "pairwise"

    def __init__(self, name: str, members: Sequence[Judge], *, combine: str = "majority",
                 weights: Mapping[str, float] | None = None, dimensions: Sequence[str] | None = None):
        names = [m.name for m in members]
        if len(members) < 2:
            raise ConfigError(f"judge '{name}': members: a panel needs at least two judges, got {len(members)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"judge '{name}': members: names must be unique, got {', '.join(names)}")
        if any(m.kind != "pairwise" for m in members):
            raise ConfigError(f"judge '{name}': members: every member must be a pairwise judge")
        if combine not in COMBINE:
            raise ConfigError(f"judge '{name}': combine: {combine!r}: use majority or weighted")
        weights = dict(weights or {})
        if combine == "weighted" and sorted(weights) != sorted(names):
            raise ConfigError(f"judge '{name}': weights: give one weight per member ({', '.join(names)})")
        shared = [d for d in members[0].dimensions if all(d in m.dimensions for m in members)]
        dims = tuple(dimensions) if dimensions else tuple(shared)
        if not dims or any(d not in shared for d in dims):
            raise ConfigError(f"judge '{name}': dimensions: the members share {', '.join(shared) or 'no dimension'}:"
                              " judge only shared dimensions")
        self.name, self.members, self.combine, self.dimensions = name, list(members), combine, dims
        self.weights = {n: float(weights.get(n, 1.0)) if combine == "weighted" else 1.0 for n in names}

    @property
    def chunk_size(self) -> int:
        return min(getattr(m, "chunk_size", 16) for m in self.members)

    @property
    def card_notes(self) -> tuple[str, ...]:
        return tuple(f"member {m.name}: {note}" for m in self.members for note in getattr(m, "card_notes", ()))

    def fingerprint(self) -> str:
        return stable_hash({"panel": PANEL_VERSION, "members": [[m.name, m.fingerprint()] for m in self.members],
                            "combine": self.combine, "weights": self.weights, "dimensions": self.dimensions})

    def judge(self, items: list) -> list[dict[str, JudgeOutput]]:
        answers = [member.judge(items) for member in self.members]
        return [{d: self.combined([per_member[i].get(d) for per_member in answers], d) for d in self.dimensions}
                for i in range(len(items))]

    def combined(self, outputs: list[JudgeOutput | None], dimension: str) -> JudgeOutput:
        errors = [f"{m.name}: {o.error}" for m, o in zip(self.members, outputs) if o is not None and o.error]
        if errors:
            return JudgeOutput(raw="", error="; ".join(errors))
        votes = [(o.verdicts.get(dimension) if o is not None else None, self.weights[m.name])
                 for m, o in zip(self.members, outputs)]
        verdict = combine_votes(votes)
        shown = ", ".join(f"{m.name}={v or 'unparsed'} ({w:g})" for m, (v, w) in zip(self.members, votes))
        output = JudgeOutput(raw=f"{verdict or 'unparsed'}\n(panel {self.combine}: {shown})",
                             attempts=max((o.attempts for o in outputs if o is not None), default=1))
        if verdict is not None:
            output.verdicts = {dimension: verdict}
        return output

    def resampled(self, sample: int) -> "PanelJudge":
        copy = PanelJudge.__new__(PanelJudge)
        copy.__dict__.update(self.__dict__)
        copy.members = [m.resampled(sample) for m in self.members]
        return copy

    def close(self) -> None:
        for member in self.members:
            member.close()


# ---------------------------------------------------------------- inter-judge agreement


def pairwise_kappas(labels: Mapping[str, Mapping[Hashable, str]]) -> dict[tuple[str, str], float | None]:
    """Cohen's kappa of every pair of judges over the items both labelled ({judge: {item: label}});
    None where they share no item or kappa is undefined (both always gave one and the same label)."""
    out: dict[tuple[str, str], float | None] = {}
    for x, y in itertools.combinations(sorted(labels), 2):
        shared = sorted(set(labels[x]) & set(labels[y]), key=repr)
        kappa = cohen_kappa([labels[x][i] for i in shared], [labels[y][i] for i in shared]) if shared else None
        out[(x, y)] = None if kappa is None or math.isnan(kappa) else kappa
    return out


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha for nominal labels. `units`: per item, each judge's label (None where a
    judge gave none). Items with fewer than two labels cannot be paired and are left out. None when
    fewer than two labels are pairable or every pairable label is the same (no expected disagreement)."""
    coincidences: Counter[tuple] = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        if len(values) < 2:
            continue
        for i, j in itertools.permutations(range(len(values)), 2):
            coincidences[(values[i], values[j])] += 1 / (len(values) - 1)
    totals: Counter = Counter()
    for (c, _), o in coincidences.items():
        totals[c] += o
    n = sum(totals.values())
    observed = sum(o for (c, k), o in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n < 2 or expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def agreement_units(labels: Mapping[str, Mapping[Hashable, str]]) -> list[list[str | None]]:
    """{judge: {item: label}} -> the per-item label lists krippendorff_alpha_nominal takes."""
    judges = sorted(labels)
    items = sorted({i for per in labels.values() for i in per}, key=repr)
    return [[labels[j].get(i) for j in judges] for i in items]


# ---------------------------------------------------------------- the same, with bootstrap intervals


def _confusions(x: Mapping[Hashable, str], y: Mapping[Hashable, str], clusters: Sequence[Hashable],
                cluster_of) -> np.ndarray:
    """(clusters, 3, 3): per cluster of items, how often x said row and y said column."""
    index = {c: i for i, c in enumerate(clusters)}
    out = np.zeros((len(clusters), len(VERDICTS), len(VERDICTS)))
    for item in set(x) & set(y):
        out[index[cluster_of(item)], VERDICTS.index(x[item]), VERDICTS.index(y[item])] += 1
    return out


def _coincidences(labels: Mapping[str, Mapping[Hashable, str]], clusters: Sequence[Hashable], cluster_of) -> np.ndarray:
    """(clusters, 3, 3): per cluster, Krippendorff's coincidence counts (each pairable item adds
    1 / (m - 1) for every ordered pair of its m labels)."""
    index = {c: i for i, c in enumerate(clusters)}
    out = np.zeros((len(clusters), len(VERDICTS), len(VERDICTS)))
    for item, unit in zip(sorted({i for per in labels.values() for i in per}, key=repr), agreement_units(labels)):
        values = [VERDICTS.index(v) for v in unit if v is not None]
        for i, j in itertools.permutations(range(len(values)), 2):
            out[index[cluster_of(item)], values[i], values[j]] += 1 / (len(values) - 1)
    return out


def _kappas(confusion: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each (..., 3, 3) confusion matrix; nan where undefined (as cohen_kappa)."""
    n = confusion.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.trace(confusion, axis1=-2, axis2=-1) / n
        chance = (confusion.sum(axis=-1) * confusion.sum(axis=-2)).sum(axis=-1) / n ** 2
        return np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)


def _alphas(coincidence: np.ndarray) -> np.ndarray:
    """Krippendorff's nominal alpha of each (..., 3, 3) coincidence matrix; nan where undefined."""
    totals = coincidence.sum(axis=-1)
    n = totals.sum(axis=-1)
    observed = coincidence.sum(axis=(-2, -1)) - np.trace(coincidence, axis1=-2, axis2=-1)
    expected = n ** 2 - (totals ** 2).sum(axis=-1)  # sum over c != k of n_c * n_k
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n >= 2) & (expected > 0), 1 - (n - 1) * observed / expected, np.nan)


def member_agreement(labels: Mapping[str, Mapping[Hashable, str]], cluster_of, rounds: int, level: float,
                     seed: int) -> list[Metric]:
    """Inter-judge agreement of a panel's members as stored metrics: Krippendorff's alpha over all
    members ('members_alpha') and Cohen's kappa of each pair ('kappa: X vs Y'). Items are whatever
    `labels` keys (a pair shown in one order); `cluster_of(item)` is what the bootstrap resamples (the
    pair, so its two orders stay together). Points are the reference functions above."""
    clusters = sorted({cluster_of(i) for per in labels.values() for i in per}, key=repr)
    weights = np.random.default_rng(seed).integers(0, len(clusters), size=(rounds, len(clusters))) if clusters else None

    def metric(name: str, point: float | None, per_cluster: np.ndarray, of) -> Metric:
        low = high = None
        if point is not None and rounds > 0 and weights is not None:
            counts = np.stack([np.bincount(row, minlength=len(clusters)) for row in weights])
            low, high = percentile_interval(of(np.einsum("rc,cij->rij", counts, per_cluster)), level)
        return Metric(name, point, n=len(clusters), ci_low=low, ci_high=high, level=level)

    units = agreement_units(labels)
    out = [metric("members_alpha", krippendorff_alpha_nominal(units), _coincidences(labels, clusters, cluster_of),
                  _alphas)]
    for (x, y), kappa in pairwise_kappas(labels).items():
        out.append(metric(f"kappa: {x} vs {y}", kappa, _confusions(labels[x], labels[y], clusters, cluster_of),
                          _kappas))
    return out
