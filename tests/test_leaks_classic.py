"""The three classic leaks, caught by `no_leaks` with the right creation site and blocked-on.

Each leak is written in plain anyio (and, for asyncio, plain
``asyncio.create_task``), as a service would be without workpool, and each
has a workpool rewrite that passes `no_leaks` cleanly.  Line numbers are
found by the ``# <-`` markers, so the tests say exactly which line must be
named.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from workpool import Pool, TaskRecord
from workpool.testing import LeakError, no_leaks

pytestmark = pytest.mark.anyio

mockclock = pytest.mark.parametrize("anyio_backend", ["trio-mockclock"], indirect=True)


def line_of(fn: Callable[..., Any], marker: str) -> int:
    """The line of `fn`'s source that carries ``# <- marker``."""
    lines, first = inspect.getsourcelines(fn)
    hits = [first + i for i, text in enumerate(lines) if f"# <- {marker}" in text]
    assert len(hits) == 1, (fn, marker, hits)
    return hits[0]


def only_leaks(error: LeakError) -> list[TaskRecord]:
    return sorted(error.leaks, key=lambda r: r.name)


# -- (1) workers reading a channel that is never closed --------------------


async def process_job(receive: MemoryObjectReceiveStream[int], done: list[int]) -> None:
    async for job in receive:
        done.append(job)


def start_workers(tg: TaskGroup, receive: MemoryObjectReceiveStream[int], done: list[int]) -> None:
    for n in range(3):
        tg.start_soon(process_job, receive, done, name=f"fetch-worker-{n}")  # <- spawn


async def run_batch_leaky(tg: TaskGroup, jobs: list[int], done: list[int], opened: list[Any]) -> None:
    send, receive = anyio.create_memory_object_stream[int](0)
    opened += [send, receive]  # for the test to clean up after the leak is caught
    start_workers(tg, receive, done)
    for job in jobs:
        await send.send(job)
    # The bug: `send` is never closed, so the workers wait for more forever.


async def handle_job(job: int, done: list[int]) -> None:
    done.append(job)


async def run_batch_fixed(jobs: list[int], done: list[int]) -> None:
    send, receive = anyio.create_memory_object_stream[int](0)

    async def produce() -> None:
        async with send:  # closing the channel is the workers' way out
            for job in jobs:
                await send.send(job)

    with receive:
        async with anyio.create_task_group() as tg, Pool(max_workers=3) as pool:
            tg.start_soon(produce)
            await pool.consume(receive, functools.partial(handle_job, done=done))


async def test_workers_on_a_channel_never_closed_are_caught() -> None:
    done: list[int] = []
    opened: list[Any] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as service:
            with pytest.raises(LeakError) as caught:
                async with no_leaks(timeout=0.05):
                    await run_batch_leaky(service, [1, 2, 3, 4], done, opened)
            service.cancel_scope.cancel()
    for stream in opened:
        stream.close()
    leaks = only_leaks(caught.value)
    assert [r.name for r in leaks] == ["fetch-worker-0", "fetch-worker-1", "fetch-worker-2"]
    for record in leaks:
        assert record.blocked_on == "MemoryObjectReceiveStream.receive"
        assert record.created_by is not None
        assert record.created_by.function == "start_workers"
        assert record.created_by.lineno == line_of(start_workers, "spawn")
        functions = [f.function for f in record.stack]  # innermost first
        assert functions.index("MemoryObjectReceiveStream.receive") < functions.index("process_job")
    message = str(caught.value)
    header = r'^task \d+ "fetch-worker-0" \[awaiting MemoryObjectReceiveStream.receive, '
    assert re.search(header, message, re.MULTILINE)
    spawn = line_of(start_workers, "spawn")
    assert f"created by start_workers at tests/test_leaks_classic.py:{spawn}" in message
    assert sorted(done) == [1, 2, 3, 4]


async def test_workers_on_a_channel_rewritten_with_a_pool_do_not_leak() -> None:
    done: list[int] = []
    with anyio.fail_after(10):
        async with no_leaks():
            await run_batch_fixed([1, 2, 3, 4], done)
    assert sorted(done) == [1, 2, 3, 4]


# -- (2) a background poller started from a request handler ----------------


class Service:
    """A web service: request handlers get the task group of the app's lifespan."""

    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self.polls = 0

    async def poll_upstream(self) -> None:
        while True:
            self.polls += 1
            await anyio.sleep(30)

    async def handle_subscribe(self) -> str:
        self.tg.start_soon(self.poll_upstream)  # <- poller
        return "subscribed"


async def test_a_poller_started_by_a_request_handler_is_caught() -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as lifespan:
            service = Service(lifespan)
            with pytest.raises(LeakError) as caught:
                async with no_leaks(timeout=0.05):
                    assert await service.handle_subscribe() == "subscribed"
            lifespan.cancel_scope.cancel()
    (record,) = caught.value.leaks
    assert record.blocked_on == "anyio.sleep"
    assert next(f.function for f in record.stack if not f.library) == "Service.poll_upstream"
    assert record.created_by is not None
    assert record.created_by.function == "Service.handle_subscribe"
    assert record.created_by.lineno == line_of(Service.handle_subscribe, "poller")
    assert service.polls == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_a_poller_made_with_create_task_is_caught() -> None:
    tasks: set[asyncio.Task[None]] = set()

    async def poll() -> None:
        await asyncio.sleep(3600)

    def handle_request() -> None:
        task = asyncio.create_task(poll())  # <- create_task
        tasks.add(task)  # referenced, so it is not collected, and never stopped

    with anyio.fail_after(10):
        with pytest.raises(LeakError) as caught:
            async with no_leaks(timeout=0.05):
                handle_request()
        for task in tasks:
            task.cancel()
    (record,) = caught.value.leaks
    assert record.blocked_on == "asyncio.sleep"
    assert record.created_by is not None
    assert record.created_by.function.endswith("handle_request")
    assert record.created_by.lineno == line_of(handle_request, "create_task")


async def test_a_poller_rewritten_on_the_lifespan_pool_does_not_leak() -> None:
    polls = 0

    async def poll_upstream() -> None:
        nonlocal polls
        polls += 1
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        # The lifespan owns the pool; leaving it cancels the poller.
        async with no_leaks(), Pool(max_workers=4) as pool:
            pool.submit_nowait(poll_upstream)  # what the request handler does
            await anyio.wait_all_tasks_blocked()
            pool.cancel()  # shutdown
    assert polls == 1


# -- (3) a ticker loop that is never stopped --------------------------------


async def refresh_cache(cache: dict[str, int]) -> None:
    cache["refreshes"] = cache.get("refreshes", 0) + 1


async def tick_forever(cache: dict[str, int]) -> None:
    while True:
        await anyio.sleep(60)
        await refresh_cache(cache)


async def open_cache(tg: TaskGroup) -> dict[str, int]:
    cache: dict[str, int] = {}
    tg.start_soon(tick_forever, cache)  # <- ticker
    return cache


@mockclock
async def test_a_ticker_never_stopped_is_caught_with_how_long_it_has_waited() -> None:
    # Virtual time; longer than the check's timeout, which must not be cut short.
    with anyio.fail_after(30 * 24 * 3600):
        async with anyio.create_task_group() as app:
            with pytest.raises(LeakError) as caught:  # noqa: PT012
                async with no_leaks(timeout=3 * 24 * 3600):  # virtual time: 3 days
                    cache = await open_cache(app)
                    await anyio.sleep(150)
            app.cancel_scope.cancel()
    (record,) = caught.value.leaks
    assert cache["refreshes"] >= 2
    assert record.blocked_on == "anyio.sleep"
    assert record.created_by is not None
    assert record.created_by.function == "open_cache"
    assert record.created_by.lineno == line_of(open_cache, "ticker")
    # It waits at most one tick at a time: the tracker knows since when.
    assert record.blocked_for is not None
    assert 0 <= record.blocked_for <= 60
    assert "[awaiting anyio.sleep, " in str(caught.value)


@mockclock
async def test_a_ticker_rewritten_as_a_periodic_job_does_not_leak() -> None:
    cache: dict[str, int] = {}
    with anyio.fail_after(100_000):
        async with no_leaks(), Pool() as pool:
            pool.every(60, refresh_cache, cache)
            await anyio.sleep(150)
    assert cache["refreshes"] == 2
