"""Streaming calls: keep a fixed number of requests in flight and hand each result on as it arrives.

Chunked calls (`backend.generate(chunk)`) leave slots idle at every chunk's tail while the slowest
request finishes and the chunk is written. Backends that can answer one conversation at a time in an
event loop (`StreamingBackend`: the openai backend) are driven here instead: `workers` coroutines
take the next item as soon as they are free, so the endpoint always has work, and results go to the
store's writer thread (harness/store/writer.py) while requests stay in flight.

Items come from a list, or from a `Feed` that is filled while it is drained (judging a pair as soon
as generation has produced both its answers: harness/pipeline.py).

The give-up rule (its only owner): when `give_up_after` calls in a row fail (the size of a chunk),
or every call when there are fewer, the endpoint is down or misconfigured and the stage stops with
the first error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Awaitable, Callable, Generic, Iterable, TypeVar

from harness.errors import BackendError

Item = TypeVar("Item")
Result = TypeVar("Result")


class Feed(Generic[Item]):
    """Work that arrives while it is being done: `put` items as they become ready, `close` when no
    more will come. Used from one event loop (the producers are callbacks of the same loop)."""

    def __init__(self, items: Iterable[Item] = (), *, closed: bool = False):
        self._items: deque[Item] = deque(items)
        self.total = len(self._items)  # items put so far
        self.closed = closed
        self._ready = asyncio.Event()

    def put(self, item: Item) -> None:
        self._items.append(item)
        self.total += 1
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> tuple[bool, Item | None]:
        """(True, next item), or (False, None) once the feed is closed and empty."""
        while not self._items:
            if self.closed:
                return False, None
            self._ready.clear()
            await self._ready.wait()
        return True, self._items.popleft()


class GiveUp:
    """Counts failures in a row; `failed(error)` raises once the stage should stop."""

    def __init__(self, who: str, after: int):
        self.who, self.after, self.streak, self.first = who, after, 0, ""

    def succeeded(self) -> None:
        self.streak = 0

    def failed(self, error: str, total: int | None = None) -> None:
        """`total`: how many calls there are in all, when known (fewer than `after`: all failing is enough)."""
        self.first = self.first if self.streak else error
        self.streak += 1
        if self.streak >= (self.after if total is None else min(self.after, total)):
            self._stop()

    def _stop(self) -> None:
        raise BackendError(f"{self.who}: {self.streak} requests in a row failed: {self.first}")

    def ended(self, total: int) -> None:
        """At the end of work whose size was not known while it ran: every one of its `total` calls
        failed (fewer than `after`, so `failed` could not tell yet)."""
        if 0 < self.streak == total < self.after:
            self._stop()


async def drain(items: Iterable[Item] | Feed[Item], call: Callable[[Item], Awaitable[Result]],
                done: Callable[[Item, Result], str | None], *, workers: int, give_up_after: int,
                who: str) -> None:
    """Run `call` on every item with `workers` calls in flight; `done(item, result)` records each
    result and returns its error text (None when it succeeded). `who` names the caller in the error
    ("model 'x'", "judge 'j'"). A Feed is drained until it is closed and empty."""
    feed = items if isinstance(items, Feed) else Feed(items, closed=True)
    give_up = GiveUp(who, give_up_after)

    async def worker() -> None:
        while True:
            more, item = await feed.take()
            if not more:
                return
            error = done(item, await call(item))
            if error is None:
                give_up.succeeded()
            else:
                give_up.failed(error, feed.total if feed.closed else None)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, workers)):
                group.create_task(worker())
    except* BackendError as errors:
        raise errors.exceptions[0] from None
    give_up.ended(feed.total)  # a feed can close after its last call failed
