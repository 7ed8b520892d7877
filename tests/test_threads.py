"""run_in_thread and check_cancelled: blocking code as jobs of an async Pool.

Every test runs on asyncio and trio.  The threads need real time: the async
side waits for a thread to reach a point by waiting on a threading.Event in
another thread (`reached`), bounded, and the threads' own waits are bounded
too, so a broken rule fails the test instead of hanging it.

The thread jobs run in the worker threads that anyio (asyncio) and trio keep
cached for reuse; those idle threads stay after the pool, as they do after
any `anyio.to_thread.run_sync`.  What must not stay is a job still running:
`Jobs` counts the thread functions that have not returned.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import pytest

from helpers import Boom, Unswallowable, live_tasks
from workpool import JobCancelled, Pool, check_cancelled, run_in_thread
from workpool._threads import _ThreadCall

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def reached(event: threading.Event) -> None:
    """Wait, without blocking the event loop, until a thread sets `event`."""
    assert await anyio.to_thread.run_sync(event.wait, WAIT), "the thread never got there"


class Jobs:
    """Thread functions that record what happened to them, and how many still run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.log: list[str] = []

    def _enter(self) -> None:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.set()

    def _exit(self) -> None:
        with self.lock:
            self.running -= 1

    def block(self, value: Any = None) -> Any:
        """Wait for `release` (never checking for cancellation), then return `value`."""
        self._enter()
        try:
            assert self.release.wait(WAIT), "never released"
            self.log.append("returned")
            return value
        finally:
            self._exit()

    def until_cancelled(self) -> None:
        """Call check_cancelled() until it raises."""
        self._enter()
        try:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                try:
                    check_cancelled()
                except JobCancelled:
                    self.log.append("saw the cancellation")
                    raise
                self.release.wait(0.001)
            raise AssertionError("check_cancelled() never raised")
        finally:
            self._exit()


@asynccontextmanager
async def nothing_left(jobs: Jobs) -> AsyncIterator[None]:
    """After the block: no task it started, and no thread function still running."""
    before = live_tasks()
    yield
    assert live_tasks() <= before
    assert jobs.running == 0


def where() -> str:
    return threading.current_thread().name


def no_thread_runs(code: object) -> bool:
    """Whether no thread has `code` on its stack."""
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code is code:
                return False
            frame = frame.f_back
    return True


def block_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` in this thread, the event loop's on purpose: the loop must not run meanwhile."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


# -- as a job --------------------------------------------------------------------------


async def test_a_thread_job_returns_its_value_from_another_thread() -> None:
    jobs = Jobs()
    async with nothing_left(jobs), Pool(max_workers=2) as pool:
        job = await pool.submit(run_in_thread, pow, 2, 10)
        assert await job == 1024
        other = await pool.submit(run_in_thread, where)
        assert await other != threading.current_thread().name
    assert pool.stats.completed == 2


async def test_a_failing_thread_job_fails_like_an_async_job() -> None:
    def broken() -> None:
        raise Boom("in a thread")

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="in a thread")) as caught:
        async with Pool() as pool:
            job = await pool.submit(run_in_thread, broken)
            with pytest.raises(Boom):
                await job
    assert job.exception() is caught.value.exceptions[0]
    assert pool.stats.failed == 1


async def test_thread_jobs_are_bounded_by_max_workers() -> None:
    jobs = Jobs()
    async with nothing_left(jobs), Pool(max_workers=3) as pool:
        handles = [await pool.submit(run_in_thread, jobs.block, n) for n in range(10)]
        await reached(jobs.started)
        with anyio.fail_after(WAIT):
            while pool.stats.busy < 3 or jobs.running < 3:
                await anyio.sleep(0.001)
        assert (pool.stats.busy, pool.stats.queued) == (3, 7)
        jobs.release.set()
    assert [h.result() for h in handles] == list(range(10))
    assert jobs.most_running == 3


async def test_more_thread_jobs_than_anyios_default_limiter_run_at_once() -> None:
    # anyio allows 40 threads at once by default; inside a pool the bound is
    # max_workers.  All 50 jobs must be in the barrier together.
    barrier = threading.Barrier(50, timeout=WAIT)
    async with Pool(max_workers=50) as pool:
        for _ in range(50):
            await pool.submit(run_in_thread, barrier.wait)
    assert pool.stats.completed == 50


async def test_check_cancelled_raises_once_the_job_is_cancelled() -> None:
    jobs = Jobs()
    async with nothing_left(jobs), Pool() as pool:
        job = await pool.submit(run_in_thread, jobs.until_cancelled)
        await reached(jobs.started)
        job.cancel()
        with pytest.raises(JobCancelled):
            await job
    assert jobs.log == ["saw the cancellation"]
    assert (pool.stats.cancelled, pool.stats.failed) == (1, 0)


async def test_check_cancelled_raises_once_the_pool_is_cancelled() -> None:
    jobs = Jobs()
    async with nothing_left(jobs), Pool(max_workers=4) as pool:
        for _ in range(4):
            await pool.submit(run_in_thread, jobs.until_cancelled)
        with anyio.fail_after(WAIT):
            while jobs.running < 4:
                await anyio.sleep(0.001)
        pool.cancel()
    assert jobs.log == ["saw the cancellation"] * 4
    assert pool.stats.cancelled == 4


async def test_a_failure_under_cancel_reaches_the_other_thread_jobs() -> None:
    jobs = Jobs()

    def broken() -> None:
        raise Boom

    with pytest.RaisesGroup(Boom):
        async with nothing_left(jobs), Pool() as pool:
            await pool.submit(run_in_thread, jobs.until_cancelled)
            await reached(jobs.started)
            await pool.submit(run_in_thread, broken)
    assert jobs.log == ["saw the cancellation"]


async def test_job_timeout_cancels_a_thread_job_with_timeout_error() -> None:
    jobs = Jobs()
    with pytest.RaisesGroup(TimeoutError):
        async with nothing_left(jobs), Pool(job_timeout=0.05) as pool:
            job = await pool.submit(run_in_thread, jobs.until_cancelled)
    assert isinstance(job.exception(), TimeoutError)
    # Normally the thread is running when the deadline comes, and sees it; on
    # a loaded machine the deadline may come first, and the thread never runs.
    assert jobs.log in (["saw the cancellation"], [])


async def test_a_thread_that_ignores_cancellation_is_waited_for() -> None:
    jobs = Jobs()
    async with nothing_left(jobs), Pool() as pool:
        job = await pool.submit(run_in_thread, jobs.block, "value")
        await reached(jobs.started)
        job.cancel()
        await anyio.wait_all_tasks_blocked()
        assert not job.done()  # the job is over only when its thread is
        assert pool.stats.busy == 1
        jobs.release.set()
        with pytest.raises(JobCancelled):  # the value a cancelled thread returns is dropped
            await job
        assert jobs.log == ["returned"]
    assert pool.stats.cancelled == 1


async def test_abandon_on_cancel_leaves_the_thread_behind() -> None:
    jobs = Jobs()
    abandoning = functools.partial(run_in_thread, abandon_on_cancel=True)
    async with Pool() as pool:
        job = await pool.submit(abandoning, jobs.block)
        await reached(jobs.started)
        job.cancel()
        with pytest.raises(JobCancelled):
            await job
    assert jobs.running == 1  # the pool is gone, its thread is not
    jobs.release.set()
    with anyio.fail_after(WAIT):
        while jobs.running:
            await anyio.sleep(0.001)


async def test_an_error_raised_by_a_cancelled_thread_is_a_failure() -> None:
    jobs = Jobs()

    def fails_on_the_way_out() -> None:
        jobs.block()
        raise Boom("cleanup failed")

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="cleanup failed")):
        async with nothing_left(jobs), Pool() as pool:
            job = await pool.submit(run_in_thread, fails_on_the_way_out)
            await reached(jobs.started)
            job.cancel()
            await anyio.wait_all_tasks_blocked()
            jobs.release.set()
    assert pool.stats.failed == 1


@pytest.mark.parametrize("abandon_on_cancel", [False, True])
async def test_a_thread_failure_is_not_lost_when_the_cancel_comes_after_the_thread_ended(
    abandon_on_cancel: bool,
) -> None:
    jobs = Jobs()

    def fails() -> None:
        jobs.block()
        raise Boom("the thread failed")

    job_fn = functools.partial(run_in_thread, abandon_on_cancel=abandon_on_cancel)
    with anyio.fail_after(WAIT), pytest.RaisesGroup(Boom):
        async with nothing_left(jobs), Pool(on_error="collect") as pool:
            job = await pool.submit(job_fn, fails)
            await reached(jobs.started)
            jobs.release.set()
            # The loop does not run meanwhile: the thread has raised and its
            # call is over, its outcome not yet delivered to the job.
            block_until(lambda: no_thread_runs(_ThreadCall.run.__code__), "the thread call ended")
            job.cancel()
    assert isinstance(job.exception(), Boom)
    assert pool.stats.failed == 1


async def test_job_cancelled_raised_without_a_cancellation_is_a_failure() -> None:
    def raises_job_cancelled() -> None:
        raise JobCancelled("a job this one waited for was cancelled")

    with pytest.RaisesGroup(JobCancelled):
        async with Pool() as pool:
            await pool.submit(run_in_thread, raises_job_cancelled)
    assert pool.stats.failed == 1


async def test_a_base_exception_from_a_thread_propagates_like_from_an_async_job() -> None:
    def interrupt() -> None:
        raise Unswallowable

    with pytest.RaisesGroup(Unswallowable, allow_unwrapped=True, flatten_subgroups=True):
        async with Pool() as pool:
            await pool.submit(run_in_thread, interrupt)


async def test_refuses_an_async_function_a_coroutine_and_a_non_callable() -> None:
    async def an_async_function() -> None:
        pass  # pragma: no cover

    with pytest.raises(TypeError, match="is an async function"):
        await run_in_thread(an_async_function)
    coroutine = an_async_function()
    with pytest.raises(TypeError, match="got the awaitable"):
        await run_in_thread(coroutine)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a callable, but got int"):
        await run_in_thread(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is an async function"):
        await run_in_thread(functools.partial(an_async_function))
    with pytest.RaisesGroup(TypeError):
        async with Pool() as pool:
            await pool.submit(run_in_thread, an_async_function)


async def _double(x: int) -> int:
    return 2 * x  # pragma: no cover


@functools.wraps(_double)
def double_blocking(x: int) -> int:
    """A blocking function (it runs its own event loop) that functools.wraps an async one."""
    return anyio.run(_double, x)  # pragma: no cover


async def test_the_refusal_of_a_function_wrapping_an_async_one_says_why_and_the_way_around() -> None:
    with pytest.raises(TypeError) as caught:
        await run_in_thread(double_blocking, 21)
    message = str(caught.value)
    assert "wraps the async function" in message
    assert "__wrapped__ (set by functools.wraps)" in message
    assert "lambda *args: fn(*args)" in message


# -- outside a pool ---------------------------------------------------------------------


async def test_awaited_directly_it_is_cancelled_with_its_caller() -> None:
    jobs = Jobs()
    async with nothing_left(jobs):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_in_thread, jobs.until_cancelled)
                await reached(jobs.started)
                scope.cancel()
    assert scope.cancelled_caught
    assert jobs.log == ["saw the cancellation"]


async def test_cancelled_before_its_thread_started_it_never_runs() -> None:
    ran: list[bool] = []
    limiter = anyio.CapacityLimiter(1)
    release = anyio.Event()

    async def hold_the_limiter(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with limiter:
            task_status.started()
            await release.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(hold_the_limiter)
        with anyio.CancelScope() as scope:
            tg.start_soon(lambda: _cancel_when_blocked(scope))
            await run_in_thread(ran.append, True, limiter=limiter)  # waits for the limiter
        release.set()
    assert scope.cancelled_caught
    assert await run_in_thread(len, ran, limiter=limiter) == 0


async def _cancel_when_blocked(scope: anyio.CancelScope) -> None:
    await anyio.wait_all_tasks_blocked()
    scope.cancel()


async def test_check_cancelled_does_nothing_outside_a_thread_job() -> None:
    check_cancelled()  # the event loop's thread
    assert await anyio.to_thread.run_sync(check_cancelled) is None  # a thread workpool did not start
    result: list[None] = []
    thread = threading.Thread(target=lambda: result.append(check_cancelled()))
    thread.start()
    thread.join(WAIT)
    assert result == [None]


# -- contextvars -------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_a_thread_job_sees_the_submitters_contextvars_both_ways_across_the_hop() -> None:
    async def read_in_the_loop() -> str:
        return request_id.get()

    def in_thread() -> tuple[str, str]:
        seen_in_thread = request_id.get()
        request_id.set("set in the thread")
        # Back into the event loop from the thread: the context travels too.
        return seen_in_thread, anyio.from_thread.run(read_in_the_loop)

    async with Pool() as pool:
        request_id.set("req-7")
        job = await pool.submit(run_in_thread, in_thread)
        assert await job == ("req-7", "set in the thread")
        assert request_id.get() == "req-7"  # the job's changes stay in the job
