"""Generation throughput: the harness's backends against a baseline run in the same process.

Every number is reported as a ratio against a baseline measured right beside it (the machine may be
shared, so absolute tokens/s say little on their own):

1. vLLM: one real server on the catalog model `smollm2-135m-instruct`, started by the harness's own
   VLLMBackend. Completion tokens/s (from `usage`) of
     baseline: one AsyncOpenAI client + asyncio.Semaphore(C) + asyncio.gather, the simplest loop;
     harness:  OpenAIBackend.generate with the same prompts and concurrency,
   alternated B H / H B ... over --repeats rounds; medians and harness/baseline (goal >= 0.95).
2. hf: HFBackend in-process on the same model, batched (batch_size 16) vs unbatched (batch_size 1)
   on the same 16 prompts; batched/unbatched.

Run (CPU, offline; defaults take about 4-6 minutes):
    export HF_HUB_OFFLINE=1 HARNESS_CACHE=/tmp/hcache
    python bench/generation.py [--n 64 --concurrency 16 --repeats 2 --max-tokens 64 --threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from harness.config import HFModelSpec, OpenAIModelSpec, VLLMModelSpec
from harness.models.base import GenerationParams, Message
from harness.models.openai_backend import OpenAIBackend, RequestSettings
from harness.sets import builtin_sets, load_jsonl

MODEL, SERVED, GOAL, HF_PROMPTS = "smollm2-135m-instruct", "smollm2-bench", 0.95, 16


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="prompts per vLLM run")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (both loops)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of (baseline, harness)")
    p.add_argument("--max-tokens", type=int, default=64, help="max_new_tokens per prompt")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the hf phase")
    return p.parse_args()


def build_prompts(n: int) -> list[str]:
    """First turns of the built-in quickstart set, cycled, each with a suffix so all differ."""
    firsts = [q.turns[0] for q in load_jsonl(builtin_sets()["quickstart"], "quickstart")]
    return [f"{firsts[i % len(firsts)]} (variant {i // len(firsts)})" for i in range(n)]


def header(title: str, **settings) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n== {title} ==  loadavg(1/5/15 min): {load}")
    for key, value in settings.items():
        print(f"   {key}: {value}")


def timed(fn, *args) -> tuple[int, float]:
    """(completion tokens, seconds) of one call that returns a token count."""
    started = time.perf_counter()
    tokens = fn(*args)
    return tokens, time.perf_counter() - started


# --- vLLM phase -----------------------------------------------------------------------------------
async def _baseline(url: str, prompts: list[str], max_tokens: int, concurrency: int) -> int:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY")
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> int:
        async with gate:
            reply = await client.chat.completions.create(
                model=SERVED, messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens, temperature=0,
            )
            return reply.usage.completion_tokens

    try:
        return sum(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        await client.close()


def run_baseline(url: str, prompts: list[str], args) -> int:
    return asyncio.run(_baseline(url, prompts, args.max_tokens, args.concurrency))


def run_harness(url: str, prompts: list[str], args) -> int:
    spec = OpenAIModelSpec(name=SERVED, model=SERVED, base_url=url, max_concurrency=args.concurrency)
    settings = RequestSettings(model=SERVED, base_urls=[url], api_key="EMPTY",
                               max_concurrency=args.concurrency)
    backend = OpenAIBackend(spec, settings)
    convs = [(Message("user", p),) for p in prompts]
    completions = backend.generate(convs, GenerationParams(max_new_tokens=args.max_tokens, temperature=0.0))
    errors = [c.error for c in completions if not c.ok]
    if errors:
        raise RuntimeError(f"harness: {len(errors)} failed requests, first: {errors[0]} ({backend.stats})")
    return sum(c.completion_tokens for c in completions)


def bench_vllm(prompts: list[str], args) -> dict[str, list[float]]:
    from harness.models.vllm import VLLMBackend

    backend = VLLMBackend(VLLMModelSpec(name=SERVED, model=MODEL, max_concurrency=args.concurrency))
    try:
        _, secs = timed(backend.start)
        url = backend.server.base_url
        print(f"   server up in {secs:.0f} s at {url} (log: {backend.server.log_path})")
        tokens, secs = timed(run_baseline, url, prompts[:4], args)
        print(f"   warm-up: 4 requests, {tokens} tokens in {secs:.1f} s")
        runners = {"baseline": run_baseline, "harness": run_harness}
        rates: dict[str, list[float]] = {"baseline": [], "harness": []}
        for r in range(args.repeats):
            for name in ("baseline", "harness") if r % 2 == 0 else ("harness", "baseline"):
                tokens, secs = timed(runners[name], url, prompts, args)
                rates[name].append(tokens / secs)
                print(f"   round {r + 1} {name:<8} {tokens:5d} tok in {secs:5.1f} s = "
                      f"{tokens / secs:7.1f} tok/s   (load1 {os.getloadavg()[0]:.2f})")
        return rates
    finally:
        backend.close()


# --- hf phase -------------------------------------------------------------------------------------
def bench_hf(prompts: list[str], args) -> dict[str, float]:
    from transformers.utils import logging as hf_logging

    from harness.models.hf import HFBackend

    hf_logging.disable_progress_bar()  # "Loading weights" bars would interleave with the results
    convs = [(Message("user", p),) for p in prompts[:HF_PROMPTS]]
    params = GenerationParams(max_new_tokens=args.max_tokens, temperature=0.0)
    rates = {}
    for name, batch_size in (("batched", HF_PROMPTS), ("unbatched", 1)):
        backend = HFBackend(HFModelSpec(name="smollm2-hf", model=MODEL, batch_size=batch_size,
                                        threads=args.threads))
        try:
            backend.generate(convs[:1], GenerationParams(max_new_tokens=4))  # load + warm up
            tokens, secs = timed(lambda: sum(c.completion_tokens for c in backend.generate(convs, params)))
        finally:
            backend.close()
        rates[name] = tokens / secs
        print(f"   {name:<9} (batch_size {batch_size:2d}) {tokens:5d} tok in {secs:5.1f} s = "
              f"{tokens / secs:7.1f} tok/s   (load1 {os.getloadavg()[0]:.2f})")
    return rates


def summary(vllm: dict[str, list[float]], hf: dict[str, float], args, elapsed: float) -> None:
    base, harn = statistics.median(vllm["baseline"]), statistics.median(vllm["harness"])
    ratio, hf_ratio = harn / base, hf["batched"] / hf["unbatched"]
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"\n== summary ==  loadavg: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"   {'phase':<6} {'measurement':<38} {'tok/s':>8}  ratio")
    print(f"   {'vllm':<6} {'baseline: AsyncOpenAI+Semaphore+gather':<38} {base:8.1f}  1.00 (baseline)")
    print(f"   {'vllm':<6} {'harness: OpenAIBackend.generate':<38} {harn:8.1f}  "
          f"{ratio:.3f} harness/baseline (goal >= {GOAL}: {verdict})")
    print(f"   {'hf':<6} {'HFBackend batch_size=1':<38} {hf['unbatched']:8.1f}  1.00 (baseline)")
    print(f"   {'hf':<6} {f'HFBackend batch_size={HF_PROMPTS}':<38} {hf['batched']:8.1f}  "
          f"{hf_ratio:.2f}x batched/unbatched")
    print(f"   (vLLM: median of {args.repeats} runs each, {args.n} prompts, concurrency "
          f"{args.concurrency}; hf: one run each, {HF_PROMPTS} prompts; max_new_tokens {args.max_tokens};"
          f" total {elapsed:.0f} s)")


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = build_prompts(args.n)
    header("settings", model=MODEL, n=args.n, concurrency=args.concurrency, repeats=args.repeats,
           max_new_tokens=args.max_tokens, temperature=0, cpus=os.cpu_count(),
           torch_threads=torch.get_num_threads())
    header("phase 1: vLLM server, harness OpenAIBackend vs plain AsyncOpenAI loop")
    vllm = bench_vllm(prompts, args)
    header("phase 2: hf in-process, batched vs unbatched (vLLM server stopped)")
    hf = bench_hf(prompts, args)
    summary(vllm, hf, args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
