"""Opening, draining, closing and cancelling a pool; the two tests from the Go original."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from helpers import Probe, assert_stats_balanced, identity, live_tasks, no_leaks, noop
from workpool import JobCancelled, Pool, PoolClosed

pytestmark = pytest.mark.anyio


# -- the two tests of the Go original ---------------------------------------


async def test_go_no_leak_task_count_returns_exactly_to_baseline() -> None:
    # Go: note the goroutine count, start 100 workers on a channel of
    # capacity 10, send two jobs, cancel, and the count is back (Go allowed a
    # delta of 5; we allow none).
    baseline = live_tasks()
    probe = Probe()
    send, receive = anyio.create_memory_object_stream[int](10)
    with anyio.fail_after(5), send, receive:
        async with (
            no_leaks(),
            Pool(max_workers=100, name="go-no-leak") as pool,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(pool.consume, receive, probe.forever)
            await send.send(1)
            await send.send(2)
            await anyio.wait_all_tasks_blocked()
            assert sorted(probe.started) == [1, 2]
            assert len(live_tasks()) > len(baseline)
            pool.cancel()
    assert sorted(probe.cancelled) == [1, 2]
    assert live_tasks() == baseline
    assert len(live_tasks()) == len(baseline)


async def test_go_processes_jobs_within_one_second() -> None:
    async with no_leaks(), Pool() as pool:
        with anyio.fail_after(1):
            job = await pool.submit(identity, 42)
            assert await job == 42


# -- leaving the block normally: drain -------------------------------------


async def test_normal_exit_drains_every_queued_job() -> None:
    ran: list[int] = []

    async def work(i: int) -> int:
        for _ in range(i % 4):
            await anyio.lowlevel.checkpoint()
        ran.append(i)
        return i * i

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3, max_pending=None) as pool:
            jobs = [pool.submit_nowait(work, i) for i in range(50)]
            # Most of them have not even started when the body ends.
            assert pool.stats.queued > 0
    assert sorted(ran) == list(range(50))
    assert [job.result() for job in jobs] == [i * i for i in range(50)]
    assert_stats_balanced(pool.stats)
    assert pool.stats.completed == 50


async def test_after_exit_the_pool_accepts_nothing() -> None:
    async with no_leaks(), Pool() as pool:
        pass
    with pytest.raises(PoolClosed):
        await pool.submit(noop)
    with pytest.raises(PoolClosed):
        pool.submit_nowait(noop)
    with pytest.raises(PoolClosed):
        pool.map(identity, [1])
    with pytest.raises(PoolClosed):
        await pool.consume(_empty(), identity)
    pool.cancel()  # does nothing once exited


async def _empty():  # an empty async generator
    return
    yield


async def test_close_waits_for_queued_and_running_jobs_then_rejects_submissions() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2) as pool:
            jobs = [await pool.submit(probe.block, i) for i in range(5)]
            closed = anyio.Event()

            async def close() -> None:
                await pool.close()
                closed.set()

            tg.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert not closed.is_set()  # the jobs are still running
            with pytest.raises(PoolClosed):
                pool.submit_nowait(noop)
            with pytest.raises(PoolClosed):
                await pool.submit(noop)
            probe.release.set()
            await closed.wait()
            assert all(job.done() for job in jobs)
            assert pool.stats.workers == 0
            await pool.close()  # again: returns at once
    assert sorted(probe.finished) == list(range(5))
    assert_stats_balanced(pool.stats)


async def test_workers_start_on_demand_and_never_exceed_max_workers() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4, max_pending=None, name="fetch") as pool:
            assert pool.stats.workers == 0
            tasks_before = live_tasks()
            for i in range(20):
                await pool.submit(probe.block, i)
            await anyio.wait_all_tasks_blocked()
            stats = pool.stats
            assert (stats.workers, stats.busy, stats.queued) == (4, 4, 16)
            new_tasks = live_tasks() - tasks_before
            names = sorted(getattr(t, "name", None) or t.get_name() for t in new_tasks)
            # The workers, and on trio the idle timer that starts with the first.
            timer = (
                ["fetch-idle-timer"] if anyio.get_cancelled_exc_class() is not asyncio.CancelledError else []
            )
            assert names == [*timer, *(f"fetch-worker-{n}" for n in range(1, 5))], names
            probe.release.set()


async def test_pool_cannot_be_reentered() -> None:
    pool = Pool()
    async with no_leaks():
        async with pool:
            with pytest.raises(RuntimeError, match="once"):
                async with pool:
                    pass  # pragma: no cover
        with pytest.raises(RuntimeError, match="once"):
            async with pool:
                pass  # pragma: no cover


async def test_using_a_pool_before_entering_it_is_a_runtime_error() -> None:
    pool = Pool()
    with pytest.raises(RuntimeError, match="async with"):
        await pool.submit(noop)
    with pytest.raises(RuntimeError, match="async with"):
        pool.submit_nowait(noop)
    with pytest.raises(RuntimeError, match="async with"):
        await pool.close()
    with pytest.raises(RuntimeError, match="async with"):
        pool.map(identity, [1])
    with pytest.raises(RuntimeError, match="async with"):
        await pool.consume(_empty(), identity)
    pool.cancel()  # a no-op, not an error
    # The pool is still usable afterwards.
    async with no_leaks(), pool:
        assert await (await pool.submit(identity, 1)) == 1


async def test_close_from_inside_a_job_is_a_runtime_error() -> None:
    async def closer(pool: Pool) -> BaseException | None:
        try:
            await pool.close()
        except RuntimeError as exc:
            return exc
        return None

    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            job = await pool.submit(closer, pool)
            error = await job
            assert isinstance(error, RuntimeError)
            assert "own jobs" in str(error)
            # The pool is not closed by the attempt.
            assert await (await pool.submit(identity, 7)) == 7


# -- pool.cancel() ----------------------------------------------------------


async def test_cancel_from_the_body_exits_quietly_and_cancels_everything() -> None:
    probe = Probe()
    reached = False
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            running = [await pool.submit(probe.forever, i) for i in range(2)]
            queued = [await pool.submit(probe.forever, i) for i in range(2, 5)]
            await anyio.wait_all_tasks_blocked()
            pool.cancel()
            pool.cancel()  # idempotent
            await anyio.sleep_forever()
            reached = True  # pragma: no cover
    assert not reached
    assert sorted(probe.cancelled) == [0, 1]
    assert sorted(probe.started) == [0, 1]  # queued jobs never start
    for job in running + queued:
        assert job.done()
        assert job.cancelled()
        with pytest.raises(JobCancelled):
            await job
    assert_stats_balanced(pool.stats)
    assert pool.stats.cancelled == 5


async def test_cancel_from_a_job_exits_quietly() -> None:
    probe = Probe()

    async def canceller(pool: Pool) -> None:
        await anyio.lowlevel.checkpoint()
        pool.cancel()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            other = await pool.submit(probe.forever, "other")
            await pool.submit(canceller, pool)
            await anyio.sleep_forever()
    assert other.cancelled()
    assert probe.cancelled == ["other"]
    assert_stats_balanced(pool.stats)


async def test_cancel_while_the_body_awaits_a_queued_job_exits_quietly() -> None:
    # pool.cancel() is not an error: the body gets a cancellation, not the
    # JobCancelled of the job it was waiting for (that would escape the block).
    go = anyio.Event()
    reached = False

    async def canceller(pool: Pool) -> None:
        await go.wait()
        pool.cancel()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1) as pool:
            await pool.submit(canceller, pool)
            queued = await pool.submit(noop)
            go.set()
            await queued
            reached = True
    assert not reached
    assert queued.cancelled()


# -- cancellation of the enclosing scope ------------------------------------


async def test_enclosing_scope_cancellation_cancels_jobs_and_propagates() -> None:
    probe = Probe()
    reached = False
    with anyio.fail_after(5):
        async with no_leaks():
            with anyio.CancelScope() as outer:
                async with Pool(max_workers=1) as pool:
                    running = await pool.submit(probe.forever, "running")
                    queued = await pool.submit(probe.forever, "queued")
                    await anyio.wait_all_tasks_blocked()
                    outer.cancel()
                    await anyio.sleep_forever()
                reached = True  # pragma: no cover
    assert outer.cancelled_caught
    assert not reached
    assert running.cancelled()
    assert queued.cancelled()
    assert probe.cancelled == ["running"]
    assert_stats_balanced(pool.stats)


async def test_enclosing_scope_cancelled_while_draining() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            with anyio.CancelScope() as outer:

                async def cancel_when_blocked() -> None:
                    await anyio.wait_all_tasks_blocked()
                    outer.cancel()

                tg.start_soon(cancel_when_blocked)
                async with Pool(max_workers=1) as pool:
                    running = await pool.submit(probe.forever, "running")
                    queued = await pool.submit(probe.forever, "queued")
                # The body ended normally; the drain is what got cancelled.
    assert outer.cancelled_caught
    assert running.cancelled()
    assert queued.cancelled()
    assert probe.cancelled == ["running"]
    assert_stats_balanced(pool.stats)


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_native_asyncio_task_cancel_reaches_the_jobs() -> None:
    # asyncio only: Task.cancel() is asyncio's own way of cancelling from
    # outside, with no anyio cancel scope involved.
    probe = Probe()
    entered = anyio.Event()

    async def service() -> None:
        async with Pool(max_workers=2) as pool:
            await pool.submit(probe.forever, 1)
            await pool.submit(probe.forever, 2)
            entered.set()
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with no_leaks():
            task = asyncio.get_running_loop().create_task(service())
            await entered.wait()
            await anyio.wait_all_tasks_blocked()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert sorted(probe.cancelled) == [1, 2]


# -- the pool as a long-lived service scope ---------------------------------


async def test_service_scope_with_submit_nowait_from_outside_tasks() -> None:
    async def handle(i: int) -> str:
        await anyio.lowlevel.checkpoint()
        return f"response {i}"

    async def lifespan(*, task_status: anyio.abc.TaskStatus[Pool]) -> None:
        async with Pool(max_workers=3, name="service") as pool:
            task_status.started(pool)
            await anyio.sleep_forever()

    responses: list[str] = []
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as app:
            pool = await app.start(lifespan)

            async def request_handler(i: int) -> None:
                job = pool.submit_nowait(handle, i)
                responses.append(await job)

            async with anyio.create_task_group() as handlers:
                for i in range(10):
                    handlers.start_soon(request_handler, i)
            assert sorted(responses) == sorted(f"response {i}" for i in range(10))
            assert pool.stats.completed == 10
            # Shutting the service down from outside: quiet.
            pool.cancel()
    with pytest.raises(PoolClosed):
        pool.submit_nowait(handle, 99)
    assert_stats_balanced(pool.stats)


async def test_service_shutdown_gives_waiting_handlers_job_cancelled() -> None:
    probe = Probe()

    async def lifespan(stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[Pool]) -> None:
        async with Pool(max_workers=1) as pool:
            task_status.started(pool)
            await stop.wait()
            pool.cancel()

    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as app:
            stop = anyio.Event()
            pool = await app.start(lifespan, stop)

            async def request_handler(i: int) -> None:
                job = pool.submit_nowait(probe.forever, i)
                try:
                    await job
                except JobCancelled:
                    outcomes.append("cancelled")

            for i in range(3):  # one runs, two are queued
                app.start_soon(request_handler, i)
            await anyio.wait_all_tasks_blocked()
            stop.set()
    assert outcomes == ["cancelled"] * 3
