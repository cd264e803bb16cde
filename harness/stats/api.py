"""The statistics part of the Python API (re-exported by harness.api): is model A better than model
B and how sure are we (`compare`), every panel's intervals, marks, ties and style (`how_sure`), and
gaming probes (`probe`). Pure functions of harness.stats over the battles of harness.battles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.api import open_store, resolve_suite, run
from harness.battles import battles, for_suite
from harness.config import Suite
from harness.errors import HarnessError, StoreReadOnlyError
from harness.store import DEFAULT_DB, Store

# --- how sure are we: paired comparisons, clustered intervals, style control (harness.stats) --------
@dataclass
class PanelComparison:
    """model_a against model_b under one judge and dimension (harness.stats.paired.Paired)."""

    judge_name: str
    dimension: str
    paired: object  # harness.stats.paired.Paired
    battles: int = 0  # battles in the panel (every model's: the BT fit and its test use them all)


@dataclass
class Comparison:
    suite: Suite
    model_a: str
    model_b: str
    rounds: int
    panels: list[PanelComparison]


def _panels_for(suite: Suite, store: Store, judge: str | None, dimension: str | None, models: tuple[str, ...] = ()):
    """The suite's current battles per (judge, dimension), narrowed; a one-line error naming what
    is missing when a judge, dimension or model has no battles."""
    from harness.stats.frame import panels

    fought = battles(store, for_suite(suite), suite.ratings.merge)
    by_panel = panels(fought)
    if not by_panel:
        raise HarnessError(f"suite '{suite.name}': no parsed pairwise verdicts in the store yet: "
                           f"run `harness run {suite.name}` first")
    chosen = {key: group for key, group in by_panel.items()
              if (judge is None or key[0] == judge) and (dimension is None or key[1] == dimension)}
    if not chosen:
        have = ", ".join(f"{j}/{d}" for j, d in by_panel)
        raise HarnessError(f"suite '{suite.name}': no battles for judge {judge or 'any'} and dimension "
                           f"{dimension or 'any'}: use one of {have}")
    on_board = sorted({m for b in fought for m in (b.model_a, b.model_b)})
    for model in models:
        if model not in on_board:
            raise HarnessError(f"model '{model}': no battles on suite '{suite.name}': use one of {', '.join(on_board)}")
    return chosen


def compare(model_a: str, model_b: str, suite: Suite | str | Path = "quickstart", db: Store | str | Path = DEFAULT_DB,
            *, judge: str | None = None, dimension: str | None = None, rounds: int | None = None,
            seed: int | None = None, alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """Is model_a better than model_b on this suite, and how sure are we? Per judge and dimension:
    the per-question paired win rate and the BT difference with question-clustered intervals, the
    permutation test of the BT difference (names swapped within questions), the per-question
    permutation and sign tests, and the minimum detectable effect at `power` for this many
    questions (harness.stats.paired). Rounds, seed and level default to the suite's ratings settings."""
    from harness.stats import clustered, paired
    from harness.stats.frame import from_battles

    suite, _, _ = resolve_suite(suite)
    if model_a == model_b:
        raise HarnessError(f"compare: '{model_a}' against itself: name two different models")
    store = open_store(db, must_exist=True)
    cfg = suite.ratings
    rounds, seed = rounds or cfg.bootstrap_rounds, cfg.seed if seed is None else seed
    out = []
    for (judge_name, dim), group in _panels_for(suite, store, judge, dimension, (model_a, model_b)).items():
        frame = from_battles(group)
        if model_a not in frame.models or model_b not in frame.models:
            continue
        draws = clustered.bootstrap(frame, "question", rounds, seed)
        out.append(PanelComparison(judge_name, dim, paired.compare(frame, model_a, model_b, draws, rounds, seed,
                                                                   cfg.level, alpha, power), len(frame)))
    return Comparison(suite, model_a, model_b, rounds, out)


@dataclass
class PanelCertainty:
    """One (judge, dimension) panel: how wide, how separated, how style-driven its ratings are."""

    judge_name: str
    dimension: str
    battles: int
    questions: int
    widths: list  # harness.stats.clustered.Widths, best first: battle-level and question-clustered CIs
    adjacent: list  # harness.stats.paired.Adjacent: BT permutation tests of neighbours, Holm-corrected
    ties: object  # harness.stats.ties.TieModel
    style: object  # harness.stats.style.StyleControl
    separability_ci: float  # share of model pairs whose question-clustered intervals do not overlap
    separability_tested: float  # share of model pairs the BT permutation test separates (Holm over pairs)
    held_out: object | None  # harness.stats.quality.HeldOut (None with fewer than 5 questions)
    agreement: object | None  # harness.stats.quality.Agreement with the reference, when one is given


@dataclass
class Certainty:
    suite: Suite
    rounds: int
    level: float
    alpha: float
    panels: list[PanelCertainty]
    markdown_features: bool  # False when answer texts were not found (length is the only style feature)


def how_sure(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB, *, judge: str | None = None,
             dimension: str | None = None, rounds: int | None = None, seed: int | None = None, alpha: float = 0.05,
             reference: str | Path | dict | None = None) -> Certainty:
    """Per judge and dimension of the suite's board: battle-level against question-clustered
    intervals, Holm-corrected paired tests of adjacent models, Davidson's tie parameter, style-
    controlled BT with its coefficients (length and markdown), separability, held-out Brier score
    and, with a reference (a JSON/CSV file or a dict of model -> rating), rank agreement with it."""
    import numpy as np

    from harness.stats import clustered, paired, quality, style, ties
    from harness.stats.frame import from_battles
    from harness.store.stats import answer_texts

    suite, _, _ = resolve_suite(suite)
    store = open_store(db, must_exist=True)
    cfg = suite.ratings
    rounds, seed = rounds or cfg.bootstrap_rounds, cfg.seed if seed is None else seed
    ref = quality.read_reference(reference) if isinstance(reference, (str, Path)) else reference
    chosen = _panels_for(suite, store, judge, dimension)
    ids = {i for group in chosen.values() for b in group for i in (b.answer_a, b.answer_b)}
    texts = answer_texts(store, ids)
    counts = {i: style.markdown_counts(t) for i, t in texts.items()}
    with_markdown = bool(ids) and ids <= set(counts)
    panels = []
    for (judge_name, dim), group in chosen.items():
        frame = from_battles(group)
        draws = clustered.bootstrap(frame, "question", rounds, seed)
        battle_level = clustered.bootstrap(frame, "battle", rounds, seed).intervals(cfg.level)
        question_level = draws.intervals(cfg.level)
        widths = sorted((clustered.Widths(m, question_level[m].point, battle_level[m], question_level[m])
                         for m in frame.models), key=lambda w: (-w.point, w.model))
        if with_markdown:
            names, z = style.covariates(frame, np.array([counts[b.answer_a] for b in group], dtype=float),
                                        np.array([counts[b.answer_b] for b in group], dtype=float))
        else:
            names, z = style.covariates(frame)
        separated = paired.all_pairs(frame, alpha, seed)
        panels.append(PanelCertainty(
            judge_name, dim, len(frame), frame.n_questions, widths, paired.adjacent(frame, draws, alpha, seed),
            ties.davidson(frame, cfg.level), style.bootstrap(frame, z, names, rounds, seed, cfg.level, raw=draws),
            quality.separability(question_level), quality.separability_tested(separated),
            quality.held_out_brier(frame, 5, seed) if frame.n_questions >= 5 else None,
            quality.agreement({m: iv.point for m, iv in question_level.items()}, ref) if ref else None))
    return Certainty(suite, rounds, cfg.level, alpha, panels, with_markdown)


@dataclass
class ProbeReport:
    """Gaming probes run on a copy of the store (harness.stats.probes); `rows` per panel and probe."""

    suite: Suite
    base_model: str  # the real model the length and markdown probes copy
    rows: list  # harness.stats.probes.ProbeRow
    probe_db: str  # the copy the probes were generated and judged in (the user's board never holds them)
    markdown_features: bool  # style control used markdown counts too (answer texts were found)
    not_saved: str | None = None  # why the rows could not be stored in the user's store (read-only)

    def flags(self) -> list[str]:
        """One line per panel where the null probe outrates a real model."""
        return [f"{r.judge_name} / {r.dimension}: the null model ({r.raw:.0f}) outrates {r.against} "
                f"({r.against_raw:.0f})" for r in self.rows if r.flagged]


def probe(suite: Suite | str | Path, db: Store | str | Path = DEFAULT_DB, *, base_model: str | None = None,
          keep: str | Path | None = None, base_dir: Path | None = None, progress=None,
          judges: dict | None = None) -> ProbeReport:
    """Add three scripted models to the suite: a constant-output null model and copies of
    `base_model`'s stored answers (default: the suite's first model) made ~3x longer and dressed in
    markdown; generate and judge them with the suite's pairwise judges in a copy of the store (`keep`:
    where; reused when it exists, so its judgments are cached), and report each probe's rating raw
    and style-controlled against the model it copies (the null probe: against the weakest real
    model). `judges` maps judge names to ready judges (tests). The result rows are appended to the
    user's store (`probe_results`, read by the Judges page's flag); nothing else there changes."""
    import shutil
    import tempfile

    import numpy as np

    from harness.config import ReferenceModelSpec
    from harness.ratings import bradley_terry
    from harness.runner import load_questions
    from harness.stats import clustered, probes, style
    from harness.stats.frame import from_battles, panels, to_points
    from harness.store.stats import answer_texts, current_answers, save_probe_results

    suite, base_dir, source = resolve_suite(suite, base_dir)
    store = open_store(db, must_exist=True)
    if not any(j.kind == "pairwise" for j in suite.judges):
        raise HarnessError(f"{source}: no pairwise judge: probes are rated by one; add a pairwise judge")
    base = base_model or suite.models[0].name
    answers = current_answers(store, base, [s.name for s in suite.sets])
    if not answers:
        raise HarnessError(f"model '{base}': no stored answers on suite '{suite.name}': run `harness run "
                           f"{suite.name}` first, or pass --base with a model that has answers")
    table = {(q.turns[0].strip(), t): answers[(q.set_name, q.question_id, t)]
             for q in load_questions(suite, base_dir) for t in range(1, len(q.turns) + 1)
             if (q.set_name, q.question_id, t) in answers}
    probe_db = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="harness-probe-")) / "probe.duckdb"
    if not probe_db.exists():
        shutil.copyfile(store.path, probe_db)
    scripted = {probes.probe_name(kind, base): probes.ReplayBackend(probes.probe_name(kind, base), kind, table)
                for kind in probes.KINDS}
    specs = [ReferenceModelSpec(name=name, model=f"probe:{backend.kind}") for name, backend in scripted.items()]
    probe_store = open_store(probe_db)
    # Generate only the probes (the suite's own answers are in the copy), then judge every new pair.
    run(suite.model_copy(update={"models": specs}), probe_store, stages=("generate",), base_dir=base_dir,
        progress=progress, backends=scripted)
    with_probes = suite.model_copy(update={"models": [*suite.models, *specs]})
    run(with_probes, probe_store, stages=("judge",), base_dir=base_dir, progress=progress, judges=judges)

    fought = battles(probe_store, for_suite(with_probes), suite.ratings.merge)
    ids = {i for b in fought for i in (b.answer_a, b.answer_b)}
    counts = {i: style.markdown_counts(t) for i, t in answer_texts(probe_store, ids).items()}
    with_markdown = bool(ids) and ids <= set(counts)
    real = {m.name for m in suite.models}
    rows = []
    for (judge_name, dim), group in panels(fought).items():
        frame = from_battles(group)
        raw = bradley_terry(frame.battles())
        if with_markdown:
            names, z = style.covariates(frame, np.array([counts[b.answer_a] for b in group], dtype=float),
                                        np.array([counts[b.answer_b] for b in group], dtype=float))
        else:
            names, z = style.covariates(frame)
        params = style.fit(frame, z, clustered.l2_strength(1.0))
        controlled = dict(zip(frame.models, map(float, to_points(params[:frame.n_models]))))
        on_board = [m for m in frame.models if m in real]
        for kind in probes.KINDS:
            name = probes.probe_name(kind, base)
            against = min(on_board, key=lambda m: (raw[m], m)) if kind == "null" else base
            if name in raw and against in raw:
                rows.append(probes.ProbeRow(judge_name, dim, kind, name, against, raw[name], controlled[name],
                                            raw[against], controlled[against]))
    not_saved = None
    try:
        save_probe_results(store, suite.name, rows)
    except StoreReadOnlyError as exc:  # the report is still worth printing
        not_saved = str(exc)
    return ProbeReport(suite, base, rows, str(probe_db), with_markdown, not_saved)
