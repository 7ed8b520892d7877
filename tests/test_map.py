"""Pool.map: ordering, laziness, bounded in-flight work, early exit and errors."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing

import anyio
import pytest

from helpers import Boom, Probe, assert_stats_balanced, double, identity, no_leaks
from workpool import Job, MapIterator, Pool, PoolClosed, PoolStats
from workpool._map import _YIELD_EVERY

pytestmark = pytest.mark.anyio


async def steps_then_double(x: int) -> int:
    # Later items finish first: a worker needs more steps for small x.
    for _ in range(20 - x):
        await anyio.lowlevel.checkpoint()
    return 2 * x


def _handler(job: Job[object], exc: Exception) -> None:
    """A policy that lets the pool go on after a failure."""


async def test_map_ordered_yields_in_item_order() -> None:
    finished: list[int] = []

    async def work(x: int) -> int:
        value = await steps_then_double(x)
        finished.append(x)
        return value

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=5) as pool:
            results = [v async for v in pool.map(work, range(20))]
    assert results == [2 * x for x in range(20)]
    assert finished != sorted(finished), "the jobs did not finish out of order; the test proves nothing"
    assert_stats_balanced(pool.stats)


async def test_map_ordered_waits_for_the_head_item() -> None:
    events = [anyio.Event() for _ in range(3)]
    finished: list[int] = []
    results: list[int] = []

    async def work(i: int) -> int:
        await events[i].wait()
        finished.append(i)
        return i

    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=3) as pool:

            async def release_backwards() -> None:
                for event in reversed(events):
                    await anyio.wait_all_tasks_blocked()
                    assert results == [] or event is events[0]
                    event.set()

            tg.start_soon(release_backwards)
            results.extend([v async for v in pool.map(work, range(3))])
    assert finished == [2, 1, 0]
    assert results == [0, 1, 2]


async def test_map_unordered_yields_in_completion_order() -> None:
    events = [anyio.Event() for _ in range(4)]
    release_order = [2, 0, 3, 1]

    async def work(i: int) -> int:
        await events[i].wait()
        return i

    results: list[int] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4) as pool:
            events[release_order[0]].set()
            async for value in pool.map(work, range(4), ordered=False):
                results.append(value)
                if len(results) < 4:
                    events[release_order[len(results)]].set()
    assert results == release_order


class Countdown:
    """An async iterator that is not an async generator."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> Countdown:
        return self

    async def __anext__(self) -> int:
        await anyio.lowlevel.checkpoint()
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


@pytest.mark.parametrize("ordered", [True, False])
async def test_map_over_an_async_iterator(ordered: bool) -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3) as pool:
            results = [v async for v in pool.map(double, Countdown(10), ordered=ordered)]
    expected = [2 * x for x in reversed(range(10))]
    assert results == expected if ordered else sorted(results) == sorted(expected)


@pytest.mark.parametrize("ordered", [True, False])
async def test_map_over_an_async_generator_and_an_empty_iterable(ordered: bool) -> None:
    async def gen() -> AsyncIterator[int]:
        for i in range(7):
            await anyio.lowlevel.checkpoint()
            yield i

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            results = [v async for v in pool.map(identity, gen(), ordered=ordered)]
            empty = [v async for v in pool.map(identity, [], ordered=ordered)]
    assert sorted(results) == list(range(7))
    assert empty == []


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(("max_workers", "max_pending"), [(1, 0), (3, 2), (4, None), (2, 7)])
async def test_map_over_an_endless_generator_keeps_in_flight_work_bounded(
    ordered: bool, max_workers: int, max_pending: int | None
) -> None:
    # max_pending=None is documented as a window of 2 * max_workers.
    window = max_workers + (max_pending if max_pending is not None else max_workers)
    produced = 0
    yielded = 0
    worst_accepted = 0
    worst_read = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal produced
        i = 0
        while True:
            produced += 1
            yield i
            i += 1

    async def work(x: int) -> int:
        nonlocal worst_accepted
        stats = pool.stats
        worst_accepted = max(worst_accepted, stats.busy + stats.queued)
        for _ in range(x % 3):
            await anyio.lowlevel.checkpoint()
        return x

    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(max_workers=max_workers, max_pending=max_pending) as pool,
            aclosing(endless()) as source,
        ):
            async for _ in pool.map(work, source, ordered=ordered):
                yielded += 1
                stats = pool.stats
                assert stats.busy + stats.queued <= window
                assert stats.workers <= max_workers
                # Accepted (submitted) but not yet handed to this loop.
                worst_accepted = max(worst_accepted, stats.submitted - yielded)
                # The feeder may hold one item it has read but not yet submitted.
                worst_read = max(worst_read, produced - yielded)
                if yielded == 300:
                    break
    assert worst_accepted <= window
    assert worst_read <= window + 1
    assert produced < 300 + window + 2


@pytest.mark.parametrize("ordered", [True, False])
async def test_break_out_of_map_cancels_the_rest_and_leaks_nothing(ordered: bool) -> None:
    probe = Probe()
    read = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal read
        i = 0
        while True:
            read += 1
            yield i
            i += 1

    async def work(i: int) -> int:
        if i == 0:
            return i
        await probe.forever(i)
        return i  # pragma: no cover

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3, max_pending=2) as pool, aclosing(endless()) as source:
            async for value in pool.map(work, source, ordered=ordered):
                assert value == 0
                break
            await anyio.wait_all_tasks_blocked()
            stats = pool.stats
            assert (stats.busy, stats.queued) == (0, 0), stats
            read_after_break = read
            # The pool is still fine for other work.
            assert await (await pool.submit(identity, "still open")) == "still open"
            await anyio.wait_all_tasks_blocked()
            assert read == read_after_break, "the map kept reading its source after the break"
    assert probe.started
    assert sorted(probe.cancelled) == sorted(probe.started)
    assert_stats_balanced(pool.stats)


async def test_map_as_a_context_manager_stops_on_exit_even_when_bound_to_a_name() -> None:
    probe = Probe()

    async def work(i: int) -> int:
        if i == 0:
            return i
        await probe.forever(i)
        return i  # pragma: no cover

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            async with pool.map(work, range(100)) as results:
                async for value in results:
                    assert value == 0
                    break
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.busy == 0
    assert probe.started
    assert sorted(probe.cancelled) == sorted(probe.started)


async def test_map_aclose_stops_the_map() -> None:
    probe = Probe()

    async def work(i: int) -> int:
        if i == 0:
            return i
        await probe.forever(i)
        return i  # pragma: no cover

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            results = pool.map(work, range(100))
            assert await results.__anext__() == 0
            await results.aclose()
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.busy == 0
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()
    assert probe.started
    assert sorted(probe.cancelled) == sorted(probe.started)


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_failing_job_ends_the_map_with_its_exception(ordered: bool) -> None:
    probe = Probe()

    async def work(i: int) -> int:
        if i == 1:
            await anyio.lowlevel.checkpoint()
            raise Boom("item 1")
        if i == 0:
            return i
        await probe.forever(i)
        return i  # pragma: no cover

    values: list[int] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3, on_error=_handler) as pool:
            # What raises is the async for loop as a whole.
            with pytest.raises(Boom, match="item 1"):  # noqa: PT012
                async for value in pool.map(work, range(10), ordered=ordered):
                    values.append(value)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.busy == 0  # the map's other jobs were cancelled
            assert await (await pool.submit(identity, 1)) == 1  # the pool goes on
    assert values == [0]
    assert probe.started
    assert sorted(probe.cancelled) == sorted(probe.started)


async def test_a_failing_map_job_also_reaches_the_pool_policy() -> None:
    async def work(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i == 3:
            raise Boom("three")
        return i

    with anyio.fail_after(5), pytest.RaisesGroup(Boom):
        async with no_leaks(), Pool(max_workers=1, on_error="collect") as pool:
            with pytest.raises(Boom):
                async for _ in pool.map(work, range(10)):
                    pass


# A plain iterable's first items are read by the first __anext__ itself, as
# many as fit at once (fewer than _YIELD_EVERY); a feeder task reads the rest.
# Sizes that test both.
SMALL, LARGE = 3, 3 * _YIELD_EVERY


@pytest.mark.parametrize("n", [SMALL, LARGE])
async def test_an_exception_from_the_items_ends_the_map_after_earlier_values(n: int) -> None:
    def items() -> Iterator[int]:
        yield from range(n)
        raise KeyError("bad source")

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            values: list[int] = []
            # What raises is the async for loop as a whole.
            with pytest.raises(KeyError, match="bad source"):  # noqa: PT012
                async for value in pool.map(identity, items()):
                    values.append(value)
    assert values == list(range(n))


def _reader_names(n: int, readers: list[str]) -> Iterator[int]:
    """``range(n)``, noting the name of the task that reads each item."""
    for i in range(n):
        readers.append(anyio.get_current_task().name)
        yield i


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_small_map_of_a_plain_iterable_needs_no_feeder_task(ordered: bool) -> None:
    # A request handler's fan-out: every item fits at once, so the first
    # __anext__ reads them all, in the caller's task, and no task is
    # started to read the items.
    readers: list[str] = []

    async def read(pool: Pool, out: list[int]) -> None:
        out.extend([v async for v in pool.map(identity, _reader_names(SMALL, readers), ordered=ordered)])

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=8) as pool, anyio.create_task_group() as tg:
            out: list[int] = []
            tg.start_soon(read, pool, out, name="consumer")
    assert readers == ["consumer"] * SMALL
    assert sorted(out) == list(range(SMALL))


async def test_a_map_that_does_not_fit_at_once_hands_the_rest_to_a_feeder() -> None:
    # Room for 4 jobs: the first __anext__ reads 4 items, a feeder task the
    # rest as room frees up, none twice and none lost.
    gate = anyio.Event()
    readers: list[str] = []

    async def held(x: int) -> int:
        await gate.wait()
        return x

    async def read(pool: Pool, out: list[int]) -> None:
        out.extend([v async for v in pool.map(held, _reader_names(10, readers))])

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2, max_pending=2) as pool, anyio.create_task_group() as tg:
            out: list[int] = []
            tg.start_soon(read, pool, out, name="consumer")
            await anyio.wait_all_tasks_blocked()
            assert readers == ["consumer"] * 4
            gate.set()
    assert out == list(range(10))
    assert readers == ["consumer"] * 4 + [f"{pool.name}-map-feeder"] * 6


class _Interrupt(BaseException):
    pass


async def test_a_base_exception_from_the_first_items_reaches_the_caller_and_ends_the_map() -> None:
    # Read in the caller's task, it is raised there, and like any exception
    # that leaves the loop it stops the map (the job of item 1 is cancelled);
    # with no feeder left to end the map, the next __anext__ must not wait.
    def items() -> Iterator[int]:
        yield 1
        raise _Interrupt

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            results = pool.map(identity, items())
            with pytest.raises(_Interrupt):
                await results.__anext__()
            assert [value async for value in results] == []
    assert pool.stats.cancelled == 1


def _broken() -> Iterator[int]:
    raise KeyError("broken source")
    yield  # pragma: no cover


@pytest.mark.parametrize("source", [[], _broken], ids=["empty", "raises at once"])
async def test_a_loop_over_maps_that_end_at_once_gives_other_tasks_a_turn(
    source: list[int] | Callable[[], Iterator[int]],
) -> None:
    # Such a map has no job to wait for and no feeder: its first __anext__
    # must still be a schedule point, or a loop polling empty batches would
    # hold the event loop forever (fail_after included).
    other_ran = anyio.Event()
    rounds = 0

    async def other() -> None:
        other_ran.set()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool, anyio.create_task_group() as tg:
            tg.start_soon(other)
            while not other_ran.is_set() and rounds < 1000:  # bounded: fail_after could not fire
                rounds += 1
                items = source() if callable(source) else source
                with contextlib.suppress(KeyError):
                    async for _ in pool.map(identity, items):
                        pass  # pragma: no cover
    # One round on asyncio; on trio the two tasks share the next batch of
    # the run loop in a random order, so a second round may come first.
    assert rounds <= 2, rounds


class _Rows:
    """A source whose every ``__iter__`` opens a cursor, closed when its iterator is let go of."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __iter__(self) -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            self.log.append("cursor closed")


def _rows_generator(log: list[str]) -> Iterator[int]:
    try:
        yield from range(10_000)
    finally:
        log.append("cursor closed")


@pytest.mark.parametrize("kind", ["iterable", "generator"])
async def test_a_stopped_map_lets_go_of_its_sources_iterator_while_the_map_is_kept(kind: str) -> None:
    # A caller may keep the map object (`results` here) long after the map
    # stopped; the iterator it read must not live as long.  A generator is
    # its own iterator: the map must let go of the source too.
    rows = _Rows()
    source = rows if kind == "iterable" else _rows_generator(rows.log)
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool, pool.map(identity, source) as results:
            del source
            async for _ in results:
                break
        # The pool has exited, and so has the map's feeder.
        assert rows.log == ["cursor closed"]
        del results


async def test_a_map_stopped_by_a_cancel_in_its_first_items_lets_go_of_the_iterator() -> None:
    # The same when no feeder ever ran: the source's own code cancels the pool.
    log: list[str] = []
    kept: list[MapIterator[int]] = []
    box: list[Pool] = []

    def rows() -> Iterator[int]:
        try:
            box[0].cancel()
            yield from range(10)
        finally:
            log.append("cursor closed")

    async def consume(results: MapIterator[int]) -> None:
        with contextlib.suppress(PoolClosed):
            async for _ in results:
                pass  # pragma: no cover

    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as outer, Pool(max_workers=2) as pool:
            box.append(pool)
            kept.append(pool.map(identity, rows()))
            outer.start_soon(consume, kept[0])
            await anyio.sleep_forever()  # until the source cancels the pool
    assert log == ["cursor closed"]


async def test_a_pool_cancelled_by_the_source_while_the_first_items_are_read_says_so() -> None:
    # The pool's PoolClosed, raised as the item is accepted, is the pool
    # stopping the map, not an error of the source.  The consumer runs
    # outside the pool's scope, which the cancel does not reach.
    box: list[Pool] = []
    outcome: list[str] = []

    def items() -> Iterator[int]:
        box[0].cancel()
        yield 0

    async def consume(results: MapIterator[int]) -> None:
        try:
            async for _ in results:
                pass  # pragma: no cover
        except PoolClosed as exc:
            outcome.append(str(exc))

    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as outer, Pool(max_workers=2) as pool:
            box.append(pool)
            outer.start_soon(consume, pool.map(identity, items()))
            await anyio.sleep_forever()  # until the source cancels the pool
    assert len(outcome) == 1
    assert "before map() had read all its items" in outcome[0], outcome


async def test_map_on_a_closed_pool_raises_pool_closed() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            probe = Probe()
            async with Pool(max_workers=1) as pool:
                await pool.submit(probe.block)
                tg.start_soon(pool.close)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(PoolClosed):
                    pool.map(identity, [1, 2])
                probe.release.set()


async def test_pool_closing_mid_map_ends_the_iteration_with_pool_closed() -> None:
    values: list[int] = []
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2) as pool:
            # What raises is the async for loop as a whole.
            with pytest.raises(PoolClosed):  # noqa: PT012
                async for value in pool.map(identity, range(10_000)):
                    values.append(value)
                    if len(values) == 5:
                        tg.start_soon(pool.close)
    assert 5 <= len(values) < 10_000
    assert values == list(range(len(values)))  # nothing skipped before the end


async def test_map_iterator_has_no_public_constructor() -> None:
    with pytest.raises(TypeError):
        MapIterator()  # type: ignore[call-arg]


async def test_break_out_of_map_closes_an_async_generator_source() -> None:
    # The map owns the iteration of its source: when it stops reading early,
    # the generator's cleanup (closing a cursor, a connection) should run
    # then, inside the pool, not later from a garbage-collector hook (on trio,
    # in a system task outside every cancel scope of the caller).
    cleaned_up: list[str] = []

    async def rows() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned_up.append("cursor closed")

    source = rows()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            async for _ in pool.map(identity, source):
                break
    closed_by_the_map = list(cleaned_up)
    await source.aclose()  # no-op if the map closed it; else spare the GC hook
    assert closed_by_the_map == ["cursor closed"]


async def test_close_leaves_nothing_queued_when_a_map_feeder_starts_around_it() -> None:
    # Found by a randomized stress run: close() cancels a map feeder's scope,
    # but a feeder started just before (not yet run) entered its cancelled
    # scope and enqueued items synchronously until it first had to wait.
    # close(), which had found the pool empty and only done one checkpoint,
    # returned with those jobs still queued.  (On trio the two tasks run in
    # either order; on asyncio the feeder runs during close().)
    after_close: PoolStats | None = None

    async def first_value(results: MapIterator[int]) -> None:
        with contextlib.suppress(PoolClosed):
            await results.__anext__()

    async def close(pool: Pool) -> None:
        nonlocal after_close
        await pool.close()
        after_close = pool.stats

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=1) as pool:
            results = pool.map(identity, range(5))
            async with anyio.create_task_group() as tg:
                tg.start_soon(first_value, results)  # starts the feeder
                tg.start_soon(close, pool)
            await results.aclose()
    assert after_close is not None
    assert (after_close.queued, after_close.busy) == (0, 0), after_close
    assert_stats_balanced(pool.stats)


# -- a job's own map, cancellation in __anext__ --------------------------------


async def test_a_map_in_a_job_keeps_going_while_the_pool_closes() -> None:
    # close() stops its callers' maps, but a job's own map is part of the
    # job fanning out, like its submits: it must read every item.  Only a map
    # with more items than its window (8 here) was cut off.
    gate = anyio.Event()

    async def child(x: int) -> int:
        await gate.wait()
        return 2 * x

    async def parent(pool: Pool) -> list[int]:
        return [value async for value in pool.map(child, range(20))]

    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=8, max_pending=0) as pool:
            job = await pool.submit(parent, pool)
            await anyio.wait_all_tasks_blocked()  # the map's window is full
            tg.start_soon(pool.close)
            await anyio.wait_all_tasks_blocked()
            gate.set()
    assert job.result() == [2 * i for i in range(20)]


async def _cancel(scope: anyio.CancelScope) -> None:
    scope.cancel()


@pytest.mark.parametrize("ordered", [True, False])
async def test_no_value_is_lost_when_the_caller_is_cancelled_inside_anext(ordered: bool) -> None:
    # Every 64th value, __anext__ lets other tasks run after taking the value
    # from the map; a cancellation there must not lose it, since the map
    # goes on after its caller is cancelled.
    got: list[int] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4) as pool:
            results = pool.map(identity, range(200), ordered=ordered)
            got.append(await results.__anext__())  # starts the feeder
            await anyio.wait_all_tasks_blocked()  # every job has finished
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    tg.start_soon(_cancel, scope)  # runs at the first schedule point
                    while True:
                        got.append(await results.__anext__())
            assert scope.cancelled_caught
            got.extend([value async for value in results])
    assert sorted(got) == list(range(200))


async def _async_stage_1() -> AsyncIterator[int]:
    yield 1
    raise PoolClosed("stage 1 pool was closed")


def _plain_stage_1() -> Iterator[int]:
    yield 1
    raise PoolClosed("stage 1 pool was closed")


@pytest.mark.parametrize("source", [_async_stage_1, _plain_stage_1], ids=["async", "plain"])
async def test_a_pool_closed_error_of_the_source_ends_the_map_with_it(
    source: Callable[[], AsyncIterator[int] | Iterator[int]],
) -> None:
    # A source that is another pool's map raises that pool's PoolClosed: an
    # error of the source, passed on as it is, not this pool being closed.
    # A plain source raises it during the first __anext__, which reads it.
    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            results = pool.map(identity, source())
            assert await results.__anext__() == 1
            with pytest.raises(PoolClosed, match="stage 1"):
                await results.__anext__()
            assert not pool._intake_scopes  # and the pool is still open
            assert await (await pool.submit(identity, 2)) == 2


async def test_a_jobs_map_that_outlives_its_job_does_not_hold_up_the_exit() -> None:
    # A job's own map reads on while the pool closes, but only while a job is
    # left that could read it: this one's job kept the iterator and ended,
    # and the map's feeder waits for room in a window nobody empties.
    kept: list[MapIterator[int]] = []

    async def parent(pool: Pool) -> None:
        results = pool.map(identity, range(100))
        assert await results.__anext__() == 0
        kept.append(results)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2, max_pending=0) as pool:
            await pool.submit(parent, pool)
    # What it had accepted it still yields; then it says the pool closed.
    with pytest.raises(PoolClosed):
        await _read_all(kept[0])


async def _read_all(results: MapIterator[int]) -> None:
    async for _ in results:
        pass


async def test_a_jobs_map_of_a_quiet_source_that_outlives_its_job_does_not_hold_up_the_exit() -> None:
    # The same with a source that never delivers its next item: the feeder
    # waits in the source, not for room.
    kept: list[MapIterator[int]] = []

    async def quiet() -> AsyncIterator[int]:
        yield 0
        await anyio.sleep_forever()
        yield 1  # pragma: no cover

    async def parent(pool: Pool) -> None:
        results = pool.map(identity, quiet())
        assert await results.__anext__() == 0
        kept.append(results)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            await pool.submit(parent, pool)
    kept.clear()


# -- the feeder's room test for plain iterables, clause by clause -------------
# (written out in _MapState.feed for speed; these fail if the copy drifts)


class _SourceThatActsFirst:
    """A plain iterable whose ``__iter__`` runs `act` just before the first room test.

    That runs in the first ``__anext__`` (``_MapState.feed_inline``, which
    calls `must_wait`); `_SourceThatActsInTheFeeder` tests the feeder's copy.
    """

    def __init__(self, act: Callable[[], object]) -> None:
        self.act = act
        self.read: list[int] = []

    def __iter__(self) -> Iterator[int]:
        self.act()
        return self._items()

    def _items(self) -> Iterator[int]:
        for i in range(1000):
            self.read.append(i)
            yield i


async def test_a_map_closed_before_its_feeder_runs_reads_no_item() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4) as pool:
            source = _SourceThatActsFirst(lambda: results._state.close())
            results = pool.map(identity, source)
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()
    assert source.read == []


async def test_a_map_whose_pool_closes_before_its_feeder_runs_reads_no_item() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4) as pool:
            source = _SourceThatActsFirst(pool.cancel)
            with pytest.raises(PoolClosed):
                async for _ in pool.map(identity, source):
                    pass  # pragma: no cover
    assert source.read == []


class _SourceThatActsInTheFeeder:
    """A plain iterable that runs `act` as the map's feeder takes its first item."""

    def __init__(self, act: Callable[[], object]) -> None:
        self.act = act
        self.acted = False
        self.read: list[int] = []

    def __iter__(self) -> Iterator[int]:
        for i in range(1000):
            if not self.acted and anyio.get_current_task().name.endswith("-map-feeder"):
                self.acted = True
                self.act()
            self.read.append(i)
            yield i


async def test_a_map_closed_as_its_feeder_takes_an_item_reads_no_further_item() -> None:
    # The first __anext__ reads _YIELD_EVERY - 1 items, the feeder one more
    # (during which the map is closed): its room test must see the map closed.
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=200, max_pending=200) as pool:
            source = _SourceThatActsInTheFeeder(lambda: results._state.close())
            results = pool.map(identity, source)
            async for _ in results:
                pass
    assert source.acted
    assert source.read == list(range(_YIELD_EVERY))


async def test_the_feeder_of_a_plain_iterable_gives_other_tasks_a_turn() -> None:
    # Room for every item at once: the feeder could read all 400 without
    # waiting, and must still pause every _YIELD_EVERY items.
    ticks = 0
    ticks_at_read: list[int] = []
    release = anyio.Event()

    def items() -> Iterator[int]:
        for i in range(400):
            ticks_at_read.append(ticks)
            yield i

    async def ticker() -> None:
        nonlocal ticks
        while len(ticks_at_read) < 400:
            ticks += 1
            await anyio.lowlevel.checkpoint()
        release.set()

    async def held(x: int) -> int:
        await release.wait()
        return x

    with anyio.fail_after(10):
        async with no_leaks(), anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with Pool(max_workers=200, max_pending=200) as pool:
                assert [v async for v in pool.map(held, items())] == list(range(400))
    longest = max(len(list(run)) for _, run in itertools.groupby(ticks_at_read))
    # On trio two checkpoints in a row may both run before the ticker's turn.
    assert longest <= 2 * _YIELD_EVERY, longest
