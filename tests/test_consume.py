"""Pool.consume: a channel or async iterable drained by the pool's workers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from helpers import Boom, Probe, assert_stats_balanced, identity, no_leaks
from workpool import Pool, PoolClosed

pytestmark = pytest.mark.anyio


async def test_consume_a_memory_stream_until_its_send_side_closes() -> None:
    seen: list[int] = []

    async def work(x: int) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(x)

    send, receive = anyio.create_memory_object_stream[int](5)
    with anyio.fail_after(5), receive:
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=3) as pool:

            async def produce() -> None:
                async with send:
                    for i in range(50):
                        await send.send(i)

            tg.start_soon(produce)
            await pool.consume(receive, work)
            # consume returned: the channel was closed and every job finished.
            assert sorted(seen) == list(range(50))
            assert pool.stats.busy == pool.stats.queued == 0
    assert_stats_balanced(pool.stats)


async def test_consume_an_async_generator() -> None:
    seen: list[int] = []

    async def source() -> AsyncIterator[int]:
        for i in range(20):
            await anyio.lowlevel.checkpoint()
            yield i

    async def work(x: int) -> None:
        seen.append(x)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            await pool.consume(source(), work)
            assert sorted(seen) == list(range(20))


async def test_closing_the_source_ends_a_waiting_consume() -> None:
    # The workers' way out, as closing a channel is in Go: consume is idle,
    # waiting for items, and returns as soon as the send side closes.
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](10)
    returned = anyio.Event()
    with anyio.fail_after(5), receive:
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=10) as pool:

            async def consumer() -> None:
                await pool.consume(receive, probe.block)
                returned.set()

            tg.start_soon(consumer)
            await send.send(1)
            await send.send(2)
            await anyio.wait_all_tasks_blocked()
            assert sorted(probe.started) == [1, 2]
            send.close()
            probe.release.set()
            await returned.wait()
    assert sorted(probe.finished) == [1, 2]


async def test_closing_the_receive_side_ends_consume() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    with anyio.fail_after(5), send:
        async with no_leaks(), anyio.create_task_group() as tg, Pool() as pool:
            tg.start_soon(pool.consume, receive, identity)
            await anyio.wait_all_tasks_blocked()
            await receive.aclose()


async def test_consume_takes_items_only_as_fast_as_the_pool_has_room() -> None:
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](20)
    with anyio.fail_after(5), send, receive:
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2, max_pending=3) as pool:
            for i in range(20):
                send.send_nowait(i)
            returned = anyio.Event()

            async def consumer() -> None:
                await pool.consume(receive, probe.block)
                returned.set()

            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            taken = 20 - receive.statistics().current_buffer_used
            assert pool.stats.submitted == 5
            # At most one item read and held while waiting for room.
            assert taken <= 5 + 1
            send.close()
            probe.release.set()
            await returned.wait()
    assert sorted(probe.finished) == list(range(20))


async def test_closing_the_pool_stops_consume_and_leaves_the_rest_in_the_channel() -> None:
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](100)
    with anyio.fail_after(5), send, receive:
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2, max_pending=0) as pool:
            for i in range(10):
                send.send_nowait(i)
            returned = anyio.Event()

            async def consumer() -> None:  # outside the pool's block
                await pool.consume(receive, probe.block)
                returned.set()

            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            assert sorted(probe.started) == [0, 1]
            tg.start_soon(pool.close)
            await anyio.wait_all_tasks_blocked()
            probe.release.set()
            await returned.wait()
        left = [receive.receive_nowait() for _ in range(receive.statistics().current_buffer_used)]
    # Every item either ran or is still in the channel: none was taken from
    # the channel and then dropped.
    assert len(probe.finished) < 10
    lost = sorted(set(range(10)) - set(probe.finished) - set(left))
    assert lost == [], f"items taken from the channel but never run: {lost}"


async def test_cancelling_consume_stops_intake_and_leaves_its_jobs_to_the_pool() -> None:
    # A job, once accepted, is the pool's: cancelling the consume() call
    # stops it taking items, and the jobs it started still run to their end
    # (so a graceful shutdown that cancels a serving loop keeps them).
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](10)
    with anyio.fail_after(5), send, receive:
        async with no_leaks(), Pool(max_workers=2) as pool:
            other = await pool.submit(probe.block, "not consume's")
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pool.consume, receive, probe.block)
                    send.send_nowait(1)
                    send.send_nowait(2)
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()
            send.send_nowait(3)  # stays in the channel: consume has stopped
            await anyio.wait_all_tasks_blocked()
            # Job 1 is running, job 2 is queued behind the two busy workers.
            assert probe.started == ["not consume's", 1]
            assert probe.cancelled == []
            assert pool.stats.queued == 1
            probe.release.set()
        assert receive.receive_nowait() == 3
    assert other.result() == "not consume's"
    assert sorted(probe.started[1:]) == [1, 2]
    assert pool.stats.completed == 3
    assert pool.stats.cancelled == 0


async def test_pool_cancelled_during_consume_raises_pool_closed_outside() -> None:
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](10)
    outcome: list[BaseException] = []
    with anyio.fail_after(5), send, receive:
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2) as pool:

            async def consumer() -> None:
                try:
                    await pool.consume(receive, probe.forever)
                except PoolClosed as exc:
                    outcome.append(exc)

            tg.start_soon(consumer)
            send.send_nowait(1)
            await anyio.wait_all_tasks_blocked()
            pool.cancel()
    assert len(outcome) == 1
    assert probe.cancelled == [1]


async def test_an_exception_from_the_source_propagates_after_its_jobs() -> None:
    probe = Probe()

    async def source() -> AsyncIterator[int]:
        yield 1
        yield 2
        await anyio.wait_all_tasks_blocked()
        probe.release.set()
        raise KeyError("source broke")

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            with pytest.raises(KeyError, match="source broke"):
                await pool.consume(source(), probe.block)
            assert sorted(probe.finished) == [1, 2]


async def test_consume_job_failures_go_to_the_pool_policy() -> None:
    async def work(x: int) -> None:
        await anyio.lowlevel.checkpoint()
        if x == 2:
            raise Boom("two")

    async def source() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    with anyio.fail_after(5), pytest.RaisesGroup(Boom):
        async with no_leaks(), Pool(max_workers=1, on_error="collect") as pool:
            await pool.consume(source(), work)
    assert pool.stats.failed == 1
    assert pool.stats.completed == 4


async def test_consume_rejects_what_it_cannot_use() -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError, match="async iterable"):
            await pool.consume([1, 2, 3], identity)  # type: ignore[arg-type]

        def sync_fn(x: int) -> int:
            return x

        send, receive = anyio.create_memory_object_stream[int](1)
        with send, receive, pytest.raises(TypeError, match="async"):
            await pool.consume(receive, sync_fn)  # type: ignore[arg-type]


class _Feed:
    """An async iterable whose __aiter__ is an async generator: consume owns the iterator."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            self.closed = True


async def test_consume_closes_the_iterator_it_made_when_it_stops_early() -> None:
    # consume stops while it waits for room, with the generator suspended at
    # a yield: only an explicit aclose() runs its finally now (and inside the
    # pool), rather than the garbage collector's hook some time later.
    feed = _Feed()
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool, anyio.create_task_group() as tg:
            tg.start_soon(pool.consume, feed, probe.block)
            await anyio.wait_all_tasks_blocked()
            assert probe.started == [1]  # item 2 waits for room
            assert not feed.closed
            tg.start_soon(pool.close)  # consume stops taking items
            await anyio.wait_all_tasks_blocked()
            assert feed.closed
            probe.release.set()
    assert probe.started == [1]


async def test_consume_takes_no_more_items_once_the_pool_is_closing() -> None:
    # consume() waits in receive(); an item arrives in the same step as
    # close().  It may accept that item (it was already taken from the
    # stream), but not the ones behind it, which stay in the source.
    with anyio.fail_after(5):
        send, receive = anyio.create_memory_object_stream[int](100)
        with send, receive:
            async with no_leaks(), Pool(max_workers=2, max_pending=100) as pool:

                async def deliver_then_close() -> None:
                    await anyio.wait_all_tasks_blocked()  # consume() waits in receive()
                    for item in range(10):
                        send.send_nowait(item)
                    await pool.close()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(deliver_then_close)
                    await pool.consume(receive, identity)
            assert pool.stats.submitted == 1, pool.stats
            assert receive.statistics().current_buffer_used == 9
    assert_stats_balanced(pool.stats)


async def test_close_waits_for_the_item_consume_was_woken_with_as_the_pool_closed() -> None:
    # consume() waits in receive() of an idle pool; an item arrives in the
    # step that calls close().  close() found nothing to wait for, but
    # consume() then accepts that item: close() must not return before it ran.
    # trio runs the woken tasks in random order: tried 20 times.
    for _ in range(20):
        seen: list[int] = []

        async def record(item: int, seen: list[int] = seen) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(item)

        with anyio.fail_after(5):
            send, receive = anyio.create_memory_object_stream[int](10)
            with send, receive:
                async with (
                    no_leaks(),
                    Pool(max_workers=1, max_pending=0) as pool,
                    anyio.create_task_group() as tg,
                ):
                    tg.start_soon(_deliver_one_then_close, send, pool, seen)
                    await pool.consume(receive, record)
        assert seen == [1]


async def _deliver_one_then_close(send: MemoryObjectSendStream[int], pool: Pool, seen: list[int]) -> None:
    await anyio.wait_all_tasks_blocked()  # consume() waits in receive()
    send.send_nowait(1)
    await pool.close()
    assert seen == [1], pool.stats


async def test_a_pool_closed_error_of_the_source_is_raised_not_taken_for_a_close() -> None:
    # consume(pool_a.map(...), fn) in a pipeline: when pool_a closes, its map
    # raises PoolClosed; consume must raise it ("whatever iterating source
    # raised"), not return as if its own pool had closed.
    async def source() -> AsyncIterator[int]:
        yield 1
        raise PoolClosed("stage 1 pool was closed")

    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            with pytest.raises(PoolClosed, match="stage 1"):
                await pool.consume(source(), identity)
            assert pool.stats.completed == 1
