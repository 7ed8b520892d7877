"""The bound holds for items that map and consume take after waiting on their source.

An intake passes its room on while its source has no item (see
tests/test_room_handoff.py); an item that arrives after the room was taken
waits for room in hand.  Found by a randomized stress run.  Such an item is
never dropped: a closing pool or a cancelled consume() accepts it, and
close() waits for it as for an accepted job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

from helpers import assert_stats_balanced, identity, no_leaks
from workpool import MapIterator, Pool, PoolClosed, PoolStats

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def consume_holding_one(
    fn: Callable[[int], Awaitable[object]],
) -> AsyncIterator[tuple[Pool, anyio.Event, TaskGroup]]:
    """A pool with room for one job, full, whose consume() holds item 1 and waits for room.

    consume() found room, found its stream empty and waited in receive()
    (passing the room on); a submit() of a job that waits for the event took
    the slot; then item 1 arrived.
    """
    async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool:
        release = anyio.Event()
        send, receive = anyio.create_memory_object_stream[int](1)
        with send, receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.consume, receive, fn)
                await anyio.wait_all_tasks_blocked()  # consume() waits in receive()
                await pool.submit(release.wait)  # the pool is full now
                send.send_nowait(1)
                await anyio.wait_all_tasks_blocked()  # consume() holds 1, waiting for room
                yield pool, release, tg
                send.close()  # consume() ends, if it still runs
                release.set()


@asynccontextmanager
async def map_feeder_holding_one(
    fn: Callable[[int], Awaitable[int]],
) -> AsyncIterator[tuple[Pool, anyio.Event, MapIterator[int]]]:
    """The same with a map over an async source: its feeder holds item 1 and waits for room."""
    item_ready = anyio.Event()

    async def items() -> AsyncIterator[int]:
        await item_ready.wait()
        yield 1

    async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool:
        release = anyio.Event()
        async with pool.map(fn, items()) as results:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await results.__anext__()  # starts the feeder task, then is cancelled
            await anyio.wait_all_tasks_blocked()  # the feeder waits in anext()
            await pool.submit(release.wait)  # the pool is full now
            item_ready.set()
            await anyio.wait_all_tasks_blocked()  # the feeder holds 1, waiting for room
            yield pool, release, results
            release.set()


async def test_consume_admits_an_item_from_a_quiet_stream_over_the_bound() -> None:
    # max_workers=1, max_pending=0: room for one job.  consume() used to
    # accept the late item at once, without looking at the room again: two
    # jobs accepted, one of them queued, in a pool that may queue none.
    with anyio.fail_after(5):
        async with consume_holding_one(identity) as (pool, _, _):
            stats = pool.stats
    assert (stats.busy, stats.queued) == (1, 0), stats


async def test_map_admits_an_item_from_a_quiet_async_source_over_the_bound() -> None:
    # The same with map() over an async iterable.
    with anyio.fail_after(5):
        async with map_feeder_holding_one(identity) as (pool, release, results):
            stats = pool.stats
            release.set()
            assert [v async for v in results] == [1]
    assert (stats.busy, stats.queued) == (1, 0), stats


@pytest.mark.parametrize("end", ["close", "cancel"])
async def test_an_item_held_for_room_is_accepted_when_the_pool_closes_or_consume_is_cancelled(
    end: str,
) -> None:
    # The item was taken from the source before close(), or before the
    # cancellation that stops the intake: it becomes a job like the ones
    # before it, which belong to the pool.  It is not dropped.
    seen: list[int] = []

    async def record(item: int) -> None:
        seen.append(item)

    with anyio.fail_after(5):
        async with consume_holding_one(record) as (pool, release, tg):
            assert pool.stats.submitted == 1
            if end == "close":
                tg.start_soon(pool.close)
                await anyio.wait_all_tasks_blocked()
                assert pool.stats.submitted == 2  # accepted by the closing pool
                release.set()
            else:
                tg.cancel_scope.cancel()
        assert pool.stats.submitted == 2
    assert seen == [1]
    assert_stats_balanced(pool.stats)


# close() must wait for an item held for room as for an accepted job: the
# pool used to look drained (and close() return) before the holder woke
# and put the item into the closing pool.  Found by a stress run.
# trio runs the tasks woken in one batch in random order, so the race is
# tried up to 20 times there; on asyncio the first try failed.
TRIES = 20


async def record(item: int) -> int:
    await anyio.lowlevel.checkpoint()
    return item


async def close_as_consume_holds_one() -> PoolStats:
    with anyio.fail_after(5):
        async with consume_holding_one(record) as (pool, release, _):
            assert pool.stats.submitted == 1
            release.set()  # the slot frees up and consume() is woken for it...
            await pool.close()  # ...but the idle worker exits first: "drained"
            return pool.stats
    raise AssertionError  # pragma: no cover


async def close_as_a_map_feeder_holds_one() -> PoolStats:
    with anyio.fail_after(5):
        async with map_feeder_holding_one(record) as (pool, release, results):
            release.set()
            await pool.close()
            stats = pool.stats
            got: list[int] = []

            async def read_all() -> None:
                async for v in results:
                    got.append(v)

            with pytest.raises(PoolClosed):  # the feeding was ended by close()
                await read_all()
            assert got == [1]  # the held item was accepted, not dropped
            return stats
    raise AssertionError  # pragma: no cover


async def test_close_waits_for_the_item_consume_holds_for_room() -> None:
    for _ in range(TRIES):
        stats = await close_as_consume_holds_one()
        assert (stats.busy, stats.queued, stats.workers) == (0, 0, 0), stats


async def test_close_waits_for_the_item_a_map_feeder_holds_for_room() -> None:
    for _ in range(TRIES):
        stats = await close_as_a_map_feeder_holds_one()
        assert (stats.busy, stats.queued, stats.workers) == (0, 0, 0), stats
