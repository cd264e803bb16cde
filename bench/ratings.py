"""Bradley-Terry ratings with bootstrap intervals: harness.ratings beside FastChat, same battles.

One run draws synthetic battles from known ratings (ties included, drawn so that E[score] is the BT
probability) and rates them twice:
  harness:  harness.ratings.bootstrap(rater="bt"): multinomial counts over the aggregated battle
            kinds, every round fitted at once by a batched Newton iteration (bench/board.py times
            a whole suite's board, Elo included);
  FastChat: fastchat.serve.monitor.elo_analysis from PyPI `fschat`: `compute_elo_mle_with_tie`
            (sklearn LogisticRegression on the battles duplicated) for the point estimate and
            `get_bootstrap_result` (resample rows with pandas, refit) for the rounds; it runs in its
            own venv, in a subprocess that reads the battles from an .npz file and answers JSON.
It prints seconds per bootstrap round for each (FastChat runs only --fastchat-rounds, a few
seconds each), their ratio (goal >= 20), harness's time for --rounds rounds, and the largest
difference between the two point estimates (goal <= 0.5 rating points) with both shifted to mean
1000, the convention both use when FastChat's anchor model is absent. As a check of `elo`, it also
compares online Elo in the given order with FastChat's `compute_elo` (expected: identical).

Setup once (fschat's dependencies clash with the harness venv; pytz and plotly are imported by
elo_analysis but not declared by fschat):
    python3 -m venv /tmp/fastchat-venv
    /tmp/fastchat-venv/bin/pip install fschat pandas scikit-learn numpy tqdm pytz plotly
Run (harness venv, repo root; about 2-3 minutes with the defaults):
    FASTCHAT_PYTHON=/tmp/fastchat-venv/bin/python python bench/ratings.py \
        [--battles 1000000 --models 24 --rounds 1000 --fastchat-rounds 5 --questions 2000]

harness.stats (issue 15), timed on the same battles (goal: < 10 s each for 1M battles, 1,000 rounds):
  - the question-clustered bootstrap (each battle assigned to one of --questions questions, drawn
    uniformly), beside the battle-level one, with both mean interval widths;
  - style-controlled BT (harness.stats.style): the same pairs redrawn with a planted length effect
    (--length-coef log-odds per standard deviation) and random markdown counts that play no part;
    fit, 1,000 question-clustered rounds, and the recovered coefficients.
--skip-fastchat runs only the harness side (no FastChat venv needed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASTCHAT_PYTHON = os.environ.get("FASTCHAT_PYTHON", "/tmp/fastchat-venv/bin/python")
WINNERS = ("model_b", "tie", "model_a")  # index = 2 * score_a
GOAL_SPEEDUP, GOAL_DIFF = 20.0, 0.5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--battles", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=24)
    p.add_argument("--rounds", type=int, default=1000, help="harness bootstrap rounds")
    p.add_argument("--fastchat-rounds", type=int, default=5, help="FastChat bootstrap rounds (seconds each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--questions", type=int, default=2000, help="question clusters for harness.stats")
    p.add_argument("--length-coef", type=float, default=0.3, help="planted style coefficient of length")
    p.add_argument("--skip-fastchat", action="store_true", help="time the harness side only")
    p.add_argument("--fastchat-side", metavar="NPZ", help=argparse.SUPPRESS)  # internal: the subprocess
    return p.parse_args()


def draw_battles(n: int, n_models: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(true ratings, a, b, score_a): uniform random pairs, BT outcomes, about 15% ties."""
    rng = np.random.default_rng(seed)
    true = 1000 + np.linspace(-300, 300, n_models) + rng.normal(0, 10, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    tie = 0.3 * 2 * np.minimum(p, 1 - p)  # keeps E[score_a] = p: ties count half a win
    score = np.where(rng.random(n) < tie, 0.5, (rng.random(n) < (p - tie / 2) / (1 - tie)).astype(float))
    return true, a, b, score


def header(title: str) -> None:
    print(f"\n== {title} ==  loadavg(1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def run_fastchat(npz: Path, rounds: int) -> dict:
    command = [FASTCHAT_PYTHON, __file__, "--fastchat-side", str(npz), "--fastchat-rounds", str(rounds)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FastChat side failed (FASTCHAT_PYTHON={FASTCHAT_PYTHON}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def centred(ratings: dict[str, float]) -> dict[str, float]:
    shift = 1000 - np.mean(list(ratings.values()))
    return {m: r + shift for m, r in ratings.items()}


def main() -> None:
    args = parse_args()
    if args.fastchat_side:
        return fastchat_side(Path(args.fastchat_side), args.fastchat_rounds)
    from harness.ratings import Battles, bootstrap, bradley_terry, elo

    true, a, b, score = draw_battles(args.battles, args.models, args.seed)
    models = tuple(f"model-{i:02d}" for i in range(args.models))
    battles = Battles(models, a, b, score, np.ones(len(a)))
    header("battles")
    print(f"   {len(a):,} battles, {args.models} models, true ratings {true.min():.0f}..{true.max():.0f}, "
          f"{(score == 0.5).mean():.1%} ties, seed {args.seed}")

    header(f"harness.ratings: bootstrap(rater='bt', rounds={args.rounds})")
    started = time.perf_counter()
    point = bradley_terry(battles)
    point_s = time.perf_counter() - started
    started = time.perf_counter()
    intervals = bootstrap(battles, rater="bt", rounds=args.rounds, seed=args.seed)
    boot_s = time.perf_counter() - started
    ours_per_round = boot_s / args.rounds  # everything included: aggregation, point fit, quantiles
    print(f"   point fit (aggregate + fit): {point_s:.3f} s")
    print(f"   {args.rounds} rounds incl. aggregation and point: {boot_s:.2f} s = {ours_per_round * 1e3:.2f} ms/round")
    width = np.mean([i.high - i.low for i in intervals.values()])
    truth_gap = max(abs(point[m] - t) for m, t in zip(models, true - true.mean() + 1000))
    print(f"   mean 95% interval width {width:.2f} points; max |point - true| {truth_gap:.2f} points")
    started = time.perf_counter()
    online = elo(battles)
    print(f"   online Elo in the given order: {time.perf_counter() - started:.2f} s")

    bench_stats(args, true, a, b, score, models)
    if args.skip_fastchat:
        return
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "battles.npz"
        np.savez(npz, models=np.array(models), a=a, b=b, outcome=np.rint(score * 2).astype(np.int8))
        header(f"FastChat (subprocess, {FASTCHAT_PYTHON})")
        fastchat = run_fastchat(npz, args.fastchat_rounds)
    fc_per_round = fastchat["bootstrap_s"] / fastchat["rounds"]
    print(f"   fschat {fastchat['fschat']}, pandas {fastchat['pandas']}, scikit-learn {fastchat['sklearn']}")
    print(f"   compute_elo_mle_with_tie (point): {fastchat['point_s']:.2f} s")
    print(f"   get_bootstrap_result, {fastchat['rounds']} rounds: {fastchat['bootstrap_s']:.2f} s "
          f"= {fc_per_round:.2f} s/round")
    print(f"   compute_elo (online, given order): {fastchat['elo_s']:.2f} s")

    header("summary")
    diff = max(abs(centred(point)[m] - centred(fastchat["point"])[m]) for m in models)
    elo_diff = max(abs(online[m] - fastchat["elo"][m]) for m in models)
    speedup = fc_per_round / ours_per_round
    print(f"   seconds per bootstrap round: harness {ours_per_round:.5f}, FastChat {fc_per_round:.3f}")
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"   speed-up per round: {speedup:,.0f}x (goal >= {GOAL_SPEEDUP:.0f}x: {verdict})")
    print(f"   harness, {args.rounds} rounds: {boot_s:.2f} s; "
          f"FastChat at its rate: {fc_per_round * args.rounds / 60:.0f} min")
    print(f"   max |BT point difference|, both mean 1000: {diff:.4f} points "
          f"(goal <= {GOAL_DIFF}: {'met' if diff <= GOAL_DIFF else 'NOT met'})")
    print(f"   max |online Elo difference| vs compute_elo: {elo_diff:.3g} points")


def bench_stats(args: argparse.Namespace, true: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray,
                models: tuple[str, ...]) -> None:
    """harness.stats on the same battles: clustered bootstrap and style-controlled BT, timed."""
    from harness.stats import clustered, style
    from harness.stats.frame import from_arrays

    rng = np.random.default_rng(args.seed + 1)  # its own stream: the battles above stay the same
    question = rng.integers(0, args.questions, len(a))
    frame = from_arrays(models, a, b, score, None, question)
    header(f"harness.stats: bootstrap(unit='question' / 'battle', rounds={args.rounds}), "
           f"{args.questions} questions")
    widths = {}
    for unit in clustered.UNITS:
        started = time.perf_counter()
        draws = clustered.bootstrap(frame, unit, args.rounds, args.seed)
        elapsed = time.perf_counter() - started
        intervals = draws.intervals()
        widths[unit] = np.mean([iv.high - iv.low for iv in intervals.values()])
        print(f"   {unit}-level: {elapsed:.2f} s incl. aggregation and point; mean 95% width {widths[unit]:.2f} "
              f"points (goal < 10 s: {'met' if elapsed < 10 else 'NOT met'})")
    print(f"   question / battle width: {widths['question'] / widths['battle']:.3f} (these battles are independent "
          "within a question, so ~1 is expected; correlated ones widen it: tests/test_stats.py)")

    header(f"harness.stats.style: style-controlled BT, {args.rounds} question-clustered rounds")
    n = len(a)
    verbose = np.linspace(0.5, 2.0, len(models))  # model m writes verbose[m] times the typical length
    len_a, len_b = rng.lognormal(np.log(600 * verbose[a]), 0.5), rng.lognormal(np.log(600 * verbose[b]), 0.5)
    markdown_a, markdown_b = rng.poisson(2.0, (n, 3)), rng.poisson(2.0, (n, 3))
    z = style.normalise(np.column_stack([len_a, markdown_a]), np.column_stack([len_b, markdown_b]))
    strength = (true - true.mean()) * np.log(10) / 400
    eta = strength[a] - strength[b] + args.length_coef * z[:, 0]
    p = 1 / (1 + np.exp(-eta))
    tie = 0.3 * 2 * np.minimum(p, 1 - p)
    styled = np.where(rng.random(n) < tie, 0.5, (rng.random(n) < (p - tie / 2) / (1 - tie)).astype(float))
    frame = from_arrays(models, a, b, styled, None, question, None, len_a, len_b)
    started = time.perf_counter()
    names, z = style.covariates(frame, markdown_a, markdown_b)
    features_s = time.perf_counter() - started
    started = time.perf_counter()
    result = style.bootstrap(frame, z, names, args.rounds, args.seed, raw=clustered.bootstrap(
        frame, "question", args.rounds, args.seed))
    elapsed = time.perf_counter() - started
    print(f"   covariates: {features_s:.2f} s; fit + {args.rounds} rounds (+ raw BT's clustered bootstrap): "
          f"{elapsed:.2f} s (goal < 10 s: {'met' if elapsed < 10 else 'NOT met'})")
    planted = {"length": args.length_coef, "headers": 0.0, "lists": 0.0, "bold": 0.0}
    for name, iv in result.coefficients.items():
        print(f"   {name}: planted {planted[name]:+.3f}, fitted {iv.point:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]")
    controlled = np.array([result.controlled[m].point for m in models])
    print(f"   max |controlled - true| {np.abs(controlled - (true - true.mean() + 1000)).max():.2f} points; raw BT "
          f"max |raw - true| {max(abs(result.raw[m].point - t) for m, t in zip(models, true - true.mean() + 1000)):.2f}")


def fastchat_side(npz: Path, rounds: int) -> None:
    """Runs under FASTCHAT_PYTHON: FastChat's own functions on the battles, timings as JSON."""
    import types

    import fastchat
    import pandas as pd
    import sklearn

    # fastchat/model/__init__.py imports torch and transformers for model serving; elo_analysis
    # needs only model_registry from that package, so load the package without its __init__.
    package = types.ModuleType("fastchat.model")
    package.__path__ = [str(Path(fastchat.__file__).parent / "model")]
    sys.modules["fastchat.model"] = package
    from fastchat.serve.monitor import elo_analysis

    data = np.load(npz)
    models = data["models"]
    df = pd.DataFrame({"model_a": models[data["a"]], "model_b": models[data["b"]],
                       "winner": np.array(WINNERS)[data["outcome"]]})
    np.random.seed(0)  # pandas' sample() draws from the global generator
    started = time.perf_counter()
    point = elo_analysis.compute_elo_mle_with_tie(df)
    point_s = time.perf_counter() - started
    started = time.perf_counter()
    elo_analysis.get_bootstrap_result(df, elo_analysis.compute_elo_mle_with_tie, num_round=rounds)
    bootstrap_s = time.perf_counter() - started
    started = time.perf_counter()
    online = elo_analysis.compute_elo(df)
    elo_s = time.perf_counter() - started
    print(json.dumps({
        "fschat": fastchat.__version__, "pandas": pd.__version__, "sklearn": sklearn.__version__,
        "point": {str(m): float(r) for m, r in point.items()}, "point_s": point_s,
        "rounds": rounds, "bootstrap_s": bootstrap_s,
        "elo": {str(m): float(r) for m, r in online.items()}, "elo_s": elo_s,
    }))


if __name__ == "__main__":
    main()
