"""Streaming calls: keep a fixed number of requests in flight and hand each result on as it arrives.

Chunked calls (`backend.generate(chunk)`) leave slots idle at every chunk's tail while the slowest
request finishes and the chunk is written. Backends that can answer one conversation at a time in an
event loop (`StreamingBackend`: the openai backend) are driven here instead: `workers` coroutines
take the next item as soon as they are free, so the endpoint always has work, and results go to the
store's writer thread (harness/store/writer.py) while requests stay in flight.

The give-up rule is the chunked one's: when `give_up_after` calls in a row fail (the size of a
chunk), or every call when there are fewer, the endpoint is down or misconfigured and the stage
stops with the first error.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence, TypeVar

from harness.errors import BackendError

Item = TypeVar("Item")
Result = TypeVar("Result")


async def drain(items: Sequence[Item], call: Callable[[Item], Awaitable[Result]],
                done: Callable[[Item, Result], str | None], *, workers: int, give_up_after: int,
                who: str) -> None:
    """Run `call` on every item with `workers` calls in flight; `done(item, result)` records each
    result and returns its error text (None when it succeeded). `who` names the caller in the error
    ("model 'x'", "judge 'j'")."""
    pending = iter(items)
    streak = {"failed": 0, "first": ""}
    limit = min(give_up_after, len(items))  # fewer items than a chunk: all of them failing is enough

    async def worker() -> None:
        for item in pending:  # one shared iterator: a free worker takes the next item
            error = done(item, await call(item))
            if error is None:
                streak["failed"] = 0
                continue
            streak["first"] = streak["first"] if streak["failed"] else error
            streak["failed"] += 1
            if streak["failed"] >= limit:
                raise BackendError(f"{who}: {streak['failed']} requests in a row failed: {streak['first']}")

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, workers)):
                group.create_task(worker())
    except* BackendError as errors:
        raise errors.exceptions[0] from None
