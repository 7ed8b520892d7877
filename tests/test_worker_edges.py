"""Edges of the worker loop: what an idle worker still holds, odd exceptions, freed slots.

Each test here guards a bug an independent review found in the runner and
idle-stack rewrite (see the commit that added this file).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from helpers import no_leaks, noop
from virtual_clock import virtual_time
from workpool import Pool
from workpool._idle import RETIRE, WAKE, make_idle_workers
from workpool._worker import WorkerInfo

pytestmark = pytest.mark.anyio


class _Payload:
    pass


def _ignore(job: object, exc: BaseException) -> None:
    pass


# -- a cancelled running job frees its slot -------------------------------------


async def _steps(count: int) -> None:
    for _ in range(count):
        await checkpoint()


@pytest.mark.parametrize("max_pending", [0, 1])
async def test_cancelling_a_running_job_wakes_a_producer_waiting_for_room(max_pending: int) -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=max_pending) as pool:
            forever = anyio.Event()
            running = await pool.submit(forever.wait)
            for _ in range(max_pending):
                await pool.submit(forever.wait)
            await anyio.wait_all_tasks_blocked()
            submitted = anyio.Event()

            async def producer() -> None:
                await pool.submit(noop)  # the pool is full: waits for room
                submitted.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(producer)
                await anyio.wait_all_tasks_blocked()
                assert not submitted.is_set()
                running.cancel()  # ends cancelled: one slot is free
                await submitted.wait()
            forever.set()


async def test_a_rendezvous_submit_after_cancelling_the_running_job_goes_through() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool:
            first = await pool.submit(_steps, 1)  # returns once a worker took it
            first.cancel()
            second = await pool.submit(_steps, 0)  # waited for room forever
            await second
    assert first.done()


# -- what an idle worker keeps alive -----------------------------------------


async def _fail_holding(payload: _Payload) -> None:
    raise ValueError("the traceback keeps this frame, and payload, alive")


async def test_an_idle_worker_does_not_keep_the_last_failure_alive() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=_ignore, idle_timeout=None) as pool:
            payload = _Payload()
            ref = weakref.ref(payload)
            job = await pool.submit(_fail_holding, payload)
            del payload
            await anyio.wait_all_tasks_blocked()
            assert job.done()
            del job
            gc.collect()
            assert ref() is None, "the idle worker keeps the failed job's exception alive"


async def test_a_worker_does_not_keep_the_last_map_alive() -> None:
    # A map's job tells the map it is done through a callback that holds the
    # map, and with it the map's items; the worker calls it and goes on with
    # another job, which holds it busy for as long as it likes.
    async def identity(payload: _Payload) -> _Payload:
        return payload

    release = anyio.Event()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=None) as pool:
            items = [_Payload()]
            ref = weakref.ref(items[0])
            async with pool.map(identity, items) as results:
                assert [value async for value in results] == items
            del items, results
            job = await pool.submit(release.wait)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.busy == 1
            gc.collect()
            assert ref() is None, "the worker keeps the map's items alive"
            release.set()
            await job


class _Raiser:
    def __call__(self, *args: object) -> Any:
        raise StopIteration


class _RaisesStopIteration:
    """Calling it raises StopIteration, which must not pass for the job returning.

    Its ``__call__`` is an object, not a function, so the submit-time check
    cannot tell that it is synchronous.
    """

    __call__ = _Raiser()


async def test_a_stop_iteration_from_the_call_is_a_failure_and_is_not_kept() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=_ignore, idle_timeout=None) as pool:
            payload = _Payload()
            ref = weakref.ref(payload)
            job = await pool.submit(_RaisesStopIteration(), payload)
            del payload
            await anyio.wait_all_tasks_blocked()
            assert isinstance(job.exception(), RuntimeError)
            del job
            await (await pool.submit(noop))  # the same worker runs another job
            await anyio.wait_all_tasks_blocked()
            gc.collect()
            assert ref() is None, "the runner keeps the StopIteration's frame alive"


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_an_idle_worker_does_not_keep_what_its_job_awaited_asyncio() -> None:
    # asyncio only: a future the job awaits passes through the worker.
    async def await_future_holding(payload: _Payload) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Payload] = loop.create_future()
        loop.call_soon(future.set_result, payload)
        await future

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=None) as pool:
            payload = _Payload()
            ref = weakref.ref(payload)
            await (await pool.submit(await_future_holding, payload))
            del payload
            await anyio.wait_all_tasks_blocked()
            gc.collect()
            assert ref() is None


@pytest.mark.parametrize("anyio_backend", ["trio"], indirect=True)
async def test_an_idle_worker_does_not_keep_what_was_sent_into_its_job_trio() -> None:
    # trio only: trio resumes a task with the received value, through the worker.
    import trio

    async def receive_one(channel: trio.MemoryReceiveChannel[_Payload]) -> None:
        await channel.receive()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=None) as pool:
            send, receive = trio.open_memory_channel[_Payload](0)
            with send, receive:
                job = await pool.submit(receive_one, receive)
                await anyio.wait_all_tasks_blocked()
                payload = _Payload()
                ref = weakref.ref(payload)
                await send.send(payload)
                del payload
                await job
            await anyio.wait_all_tasks_blocked()
            gc.collect()
            assert ref() is None


# -- GeneratorExit raised by a job -------------------------------------------


async def _raise_generator_exit() -> None:
    raise GeneratorExit


async def _raise_generator_exit_after_suspending() -> None:
    await checkpoint()
    raise GeneratorExit


@pytest.mark.parametrize("fn", [_raise_generator_exit, _raise_generator_exit_after_suspending])
async def test_a_job_that_raises_generator_exit_failed_and_was_not_cancelled(fn: Any) -> None:
    # Not an Exception: like KeyboardInterrupt it propagates out of the block.
    job = None
    with anyio.fail_after(5), pytest.raises(BaseException) as raised:  # noqa: PT011, PT012
        async with Pool(max_workers=1) as pool:
            job = await pool.submit(fn)
            await anyio.wait_all_tasks_blocked()
    assert raised.group_contains(GeneratorExit)
    assert job is not None
    assert not job.cancelled()
    assert isinstance(job.exception(), GeneratorExit)
    assert pool.stats.failed == 1
    assert pool.stats.cancelled == 0


# -- the idle timer -------------------------------------------------------------


class _Idle:
    """An idle stack, its timer (a task on trio) in a task group of the test; records who was woken when."""

    def __init__(self, tg: Any, timeout: float = 10.0) -> None:
        self.start = anyio.current_time()
        # (worker, reason, seconds after the start): exact virtual times, so
        # that a worker retired a millisecond early shows.
        self.results: list[tuple[str, int, float]] = []
        self.tg = tg
        self.idle = make_idle_workers(_backend_name(), timeout, anyio.current_time)
        if self.idle.timer_task:  # trio's; asyncio's is a loop callback
            tg.start_soon(self.idle.run_timer)

    def park(self, name: str) -> None:
        """Park a worker called `name` now, in a task of its own."""

        async def park() -> None:
            reason = await self.idle.park(WorkerInfo(None))
            self.results.append((name, reason, anyio.current_time() - self.start))

        self.tg.start_soon(park)

    async def at(self, t: float) -> None:
        """Wait until `t` seconds after the start, and until every task there has run."""
        await anyio.sleep(self.start + t - anyio.current_time())
        await anyio.wait_all_tasks_blocked()


@virtual_time()
async def test_the_idle_timer_retires_each_worker_at_its_own_deadline() -> None:
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            for t, name in enumerate("ABC"):
                await idle.at(t)
                idle.park(name)
            await idle.at(5)
            assert idle.idle.wake_one()  # C, the top, leaves for a job
            await idle.at(6)
            idle.park("C")  # and parks again
            await idle.at(20)
            idle.idle.close()
    assert idle.results == [
        _woken("C", WAKE, 5),
        _woken("A", RETIRE, 10),
        _woken("B", RETIRE, 11),
        _woken("C", RETIRE, 16),
    ]


@virtual_time()
async def test_workers_parked_a_moment_apart_retire_that_moment_apart() -> None:
    # The timer wakes for the bottom worker; the next is due half a
    # millisecond later and must not go with it.
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            idle.park("A")
            await idle.at(0.0005)
            idle.park("B")
            await idle.at(20)
            idle.idle.close()
    assert idle.results == [_woken("A", RETIRE, 10), _woken("B", RETIRE, 10.0005)]


@virtual_time()
async def test_the_idle_timer_finds_no_worker_parked_and_still_retires_the_next_on_time() -> None:
    # At its wake-up at t=10 nobody is parked: the one that parks at t=12
    # is due at t=22, after the timer's next look at t=20.
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            idle.park("A")
            await idle.at(5)
            assert idle.idle.wake_one()
            await idle.at(12)
            idle.park("A")
            await idle.at(30)
            idle.idle.close()
    assert idle.results == [_woken("A", WAKE, 5), _woken("A", RETIRE, 22)]


@virtual_time()
async def test_the_idle_timer_runs_on_with_nobody_parked_until_the_stack_closes() -> None:
    with anyio.fail_after(1000):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            idle.park("A")
            await idle.at(100)  # A retired at t=10; nobody parked since
            idle.park("B")
            await idle.at(200)
            idle.idle.close()
    assert idle.results == [_woken("A", RETIRE, 10), _woken("B", RETIRE, 110)]


@virtual_time()
async def test_closing_the_idle_stack_stops_its_timer_at_once() -> None:
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            idle.park("A")
            await idle.at(1)
            handle = getattr(idle.idle, "_timer", None)  # asyncio: the armed call_at handle
            idle.idle.close()
            if isinstance(handle, asyncio.TimerHandle):
                assert handle.cancelled(), "close() left the idle timer's handle armed"
        closed_at = round(anyio.current_time() - idle.start)
    assert idle.results == [_woken("A", WAKE, 1)]
    assert closed_at == 1, "the task group waited for the idle timer's deadline"


@virtual_time()
async def test_an_idle_stack_closed_before_its_timer_ran_stops_the_timer() -> None:
    # What a pool that closes right after its first job does: the timer
    # must not go to sleep for a timeout on its first step.
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            idle = _Idle(tg)
            idle.idle.close()
        assert anyio.current_time() == idle.start


def _woken(name: str, reason: int, at: float) -> tuple[str, int, object]:
    return (name, reason, pytest.approx(at, abs=1e-6))


def _backend_name() -> str:
    return "asyncio" if anyio.get_cancelled_exc_class() is asyncio.CancelledError else "trio"


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_job_cancel_in_the_same_tick_as_a_stray_cancellation_leaves_the_pool_alone() -> None:
    # asyncio only (trio has no stray cancellations).  Found by a randomized
    # stress run: a job awaits a future that someone else cancels, and in
    # the same tick the job is cancelled with Job.cancel().  The job's
    # CancelledError is not the scope's own (anyio did not deliver one: the
    # task's wake-up was already scheduled), so raising it through the
    # worker's scope killed the worker, and anyio then cancelled the whole
    # pool, silently: the body cut short, every other job cancelled.
    async def awaits(future: asyncio.Future[None]) -> None:
        await future

    async def waits(go: anyio.Event) -> str:
        await go.wait()
        return "ran"

    reached = False
    go = anyio.Event()
    future = asyncio.get_running_loop().create_future()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            victim = await pool.submit(awaits, future)
            other = await pool.submit(waits, go)
            await anyio.wait_all_tasks_blocked()
            future.cancel()  # a stray cancellation reaches the job...
            victim.cancel()  # ...and Job.cancel() in the same tick
            await anyio.wait_all_tasks_blocked()
            reached = True
            go.set()
            assert await other == "ran"
            # The worker goes on: it runs the next job.
            assert await (await pool.submit(waits, go)) == "ran"
    assert victim.cancelled()
    assert reached
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.cancelled) == (3, 2, 1)
