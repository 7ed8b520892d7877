"""The bound holds for items that map and consume take after waiting on their source.

An intake passes its room on while its source has no item (see
tests/test_room_handoff.py); an item that arrives after the room was taken
waits for room in hand.  Found by a randomized stress run.  Such an item is
never dropped: a closing pool or a cancelled consume() accepts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from helpers import assert_stats_balanced, identity, no_leaks
from workpool import Pool

pytestmark = pytest.mark.anyio


async def test_consume_admits_an_item_from_a_quiet_stream_over_the_bound() -> None:
    # max_workers=1, max_pending=0: room for one job.  consume() finds room,
    # finds its stream empty and waits in receive() (having passed the room
    # on).  A submit() takes the one slot.  Then an item arrives: consume()
    # accepts it at once, without looking at the room again: two jobs are
    # accepted, one of them queued, in a pool that may queue none.
    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            send, receive = anyio.create_memory_object_stream[int](1)
            with send, receive:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pool.consume, receive, identity)
                    await anyio.wait_all_tasks_blocked()  # consume() waits in receive()
                    await pool.submit(release.wait)  # the pool is full now
                    send.send_nowait(1)
                    await anyio.wait_all_tasks_blocked()
                    stats = pool.stats
                    send.close()
                    release.set()
            assert (stats.busy, stats.queued) == (1, 0), stats


async def test_map_admits_an_item_from_a_quiet_async_source_over_the_bound() -> None:
    # The same with map() over an async iterable: the feeder found room,
    # then waits in anext(); a submit() takes the slot meanwhile.
    item_ready = anyio.Event()

    async def items() -> AsyncIterator[int]:
        await item_ready.wait()
        yield 1

    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            async with pool.map(identity, items()) as results:
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await results.__anext__()  # starts the feeder task, then is cancelled
                await anyio.wait_all_tasks_blocked()  # the feeder waits in anext()
                await pool.submit(release.wait)  # the pool is full now
                item_ready.set()
                await anyio.wait_all_tasks_blocked()
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
        async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            send, receive = anyio.create_memory_object_stream[int](1)
            with send, receive:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pool.consume, receive, record)
                    await anyio.wait_all_tasks_blocked()
                    await pool.submit(release.wait)
                    send.send_nowait(1)
                    await anyio.wait_all_tasks_blocked()  # consume() holds 1, waiting for room
                    assert pool.stats.submitted == 1
                    if end == "close":
                        tg.start_soon(pool.close)
                        await anyio.wait_all_tasks_blocked()
                        assert pool.stats.submitted == 2  # accepted by the closing pool
                        release.set()
                    else:
                        tg.cancel_scope.cancel()
                assert pool.stats.submitted == 2
                release.set()
    assert seen == [1]
    assert_stats_balanced(pool.stats)
