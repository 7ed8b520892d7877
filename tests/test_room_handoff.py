"""A wake-up for room that a map or consume intake does not use is passed on to the next producer.

Found by a randomized stress run of the pool: an intake waits for room before
it takes its next item, so when the one free slot's wake-up went to an intake
whose source then had no item (ended, or quiet for a while), the producer
waiting behind it was never woken, next to a free slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import TaskGroup

from helpers import identity, noop
from workpool import Pool, PoolStats

pytestmark = pytest.mark.anyio


async def free_a_slot_for_the_producer_behind(pool: Pool, tg: TaskGroup, release: anyio.Event) -> PoolStats:
    """With an intake waiting for room in a full pool: queue a producer behind it, free one slot.

    Returns the stats once everything has settled.
    """
    await anyio.wait_all_tasks_blocked()  # the intake waits for room
    tg.start_soon(pool.submit, noop)  # a producer waits behind it
    await anyio.wait_all_tasks_blocked()
    release.set()  # one slot frees: one wake-up
    await anyio.wait_all_tasks_blocked()
    return pool.stats


async def test_consume_woken_for_room_whose_source_has_ended_loses_the_wakeup() -> None:
    # max_workers=1, max_pending=0: room for one job.  consume() and a plain
    # submit() both wait for room, consume first.  The slot frees, the one
    # wake-up goes to consume(), which then finds its source ended and takes
    # no item: the room is never passed on, and submit() waits forever in an
    # idle, empty pool.
    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            await pool.submit(release.wait)  # the pool is full
            send, receive = anyio.create_memory_object_stream[int](1)
            with send, receive:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pool.consume, receive, identity)  # waits for room first
                    await anyio.wait_all_tasks_blocked()
                    tg.start_soon(pool.submit, noop)  # waits for room second
                    await anyio.wait_all_tasks_blocked()
                    send.close()  # consume() will take no more items
                    release.set()  # one slot frees: one wake-up
                    await anyio.wait_all_tasks_blocked()
                    assert pool.stats.submitted == 2, pool.stats  # the producer never got in


async def test_map_feeder_woken_for_room_with_no_item_left_loses_the_wakeup() -> None:
    # The same with map(): its feeder waits for room before it takes the next
    # item ("room first, then the item"), so a map over an exhausted (here
    # empty) iterable swallows the wake-up.
    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            await pool.submit(release.wait)

            async def drain() -> None:
                async for _ in pool.map(identity, []):
                    pass

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)  # the feeder waits for room first
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(pool.submit, noop)  # the producer waits second
                await anyio.wait_all_tasks_blocked()
                release.set()
                await anyio.wait_all_tasks_blocked()
                assert pool.stats.submitted == 2, pool.stats


async def test_consume_waiting_for_its_next_item_holds_the_room_another_producer_waits_for() -> None:
    # The same wake-up, held rather than dropped: consume() is woken for the
    # free slot, then waits (for as long as the source is quiet) for its next
    # item.  Meanwhile the pool is idle with a free slot and submit() waits.
    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            await pool.submit(release.wait)
            send, receive = anyio.create_memory_object_stream[int](1)
            with send, receive:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pool.consume, receive, identity)
                    stats = await free_a_slot_for_the_producer_behind(pool, tg, release)
                    send.close()  # let the test end either way
                    assert stats.submitted == 2, stats


async def test_map_feeder_waiting_for_its_next_item_passes_the_room_on() -> None:
    # As with consume(): the feeder is woken for the free slot, then waits
    # for its async source's next item; the producer behind it gets the slot.
    with anyio.fail_after(5):
        async with Pool(max_workers=1, max_pending=0) as pool:
            release = anyio.Event()
            more = anyio.Event()
            await pool.submit(release.wait)

            async def quiet_source() -> AsyncIterator[int]:
                await more.wait()
                yield 1

            async def drain() -> None:
                async for _ in pool.map(identity, quiet_source()):
                    pass

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                stats = await free_a_slot_for_the_producer_behind(pool, tg, release)
                more.set()  # let the test end either way
                assert stats.submitted == 2, stats
