"""Pool.submit_thread: the method form of ``pool.submit(run_in_thread, fn, *args)``."""

from __future__ import annotations

import sys
import threading
import time

import anyio
import pytest

import workpool
from helpers import Boom
from workpool import Job, JobCancelled, Pool, check_cancelled

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def reached(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, WAIT), "the thread never got there"


async def test_submit_thread_returns_a_job_with_the_value() -> None:
    async with Pool() as pool:
        job = await pool.submit_thread(pow, 3, 4)
        assert isinstance(job, Job)
        assert await job == 81
    assert pool.stats.completed == 1


async def test_submit_thread_refuses_what_cannot_run_in_a_thread_at_the_call() -> None:
    async def an_async_function() -> None:
        pass  # pragma: no cover

    async with Pool() as pool:
        with pytest.raises(TypeError, match=r"Pool.submit_thread\(\) runs blocking functions"):
            await pool.submit_thread(an_async_function)
        coroutine = an_async_function()
        with pytest.raises(TypeError, match="got the awaitable"):
            await pool.submit_thread(coroutine)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a callable"):
            await pool.submit_thread(None)  # type: ignore[arg-type]
    assert pool.stats.submitted == 0


async def test_a_cancelled_thread_job_sees_check_cancelled_raise() -> None:
    started = threading.Event()
    seen: list[str] = []

    def loop() -> None:
        started.set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                check_cancelled()
            except JobCancelled:
                seen.append("cancelled")
                raise
            time.sleep(0.001)

    async with Pool() as pool:
        job = await pool.submit_thread(loop)
        await reached(started)
        job.cancel()
        with pytest.raises(JobCancelled):
            await job
    assert seen == ["cancelled"]
    assert pool.stats.cancelled == 1


async def test_submit_thread_waits_for_room_like_submit() -> None:
    release = threading.Event()
    order: list[str] = []

    async def second(pool: Pool) -> None:
        await pool.submit_thread(order.append, "second accepted")

    async with Pool(max_workers=1, max_pending=0) as pool:
        first = await pool.submit_thread(release.wait, WAIT)
        async with anyio.create_task_group() as tg:
            tg.start_soon(second, pool)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.submitted == 1  # the second waits for room
            order.append("first released")
            release.set()
        assert await first is True
    assert order == ["first released", "second accepted"]


async def test_a_failing_thread_job_goes_to_on_error() -> None:
    def broken() -> None:
        raise Boom("thread")

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="thread")):
        async with Pool() as pool:
            await pool.submit_thread(broken)
    assert pool.stats.failed == 1


async def test_a_thread_job_is_named_after_its_function_also_once_finished() -> None:
    # A handle kept after the job ended (as on_error gets it) must still say
    # which blocking call it was, not "run_in_thread".
    def send_receipt() -> None:
        raise Boom("smtp")

    names: list[str] = []
    with anyio.fail_after(10):
        async with Pool(on_error=lambda job, exc: names.append(repr(job))) as pool:
            job = await pool.submit_thread(send_receipt)
            with pytest.raises(Boom):
                await job
    assert "send_receipt failed" in repr(job)
    assert len(names) == 1
    assert "send_receipt failed" in names[0]


async def test_a_worker_started_by_submit_thread_is_created_by_the_callers_line() -> None:
    started = threading.Event()
    release = threading.Event()

    def blocked() -> None:
        started.set()
        release.wait(WAIT)

    with anyio.fail_after(WAIT):
        async with Pool(max_workers=1, name="st") as pool:
            line = sys._getframe().f_lineno + 1
            await pool.submit_thread(blocked)
            try:
                await reached(started)
                [worker] = [r for r in workpool.dump_tasks() if r.pool == "st"]
            finally:
                release.set()
    # The worker was started for this call: it names this line, as a worker
    # started by a plain submit names the line that called submit.
    assert worker.job == blocked.__qualname__  # not run_in_thread
    assert worker.job_submitted_by is not None
    assert worker.job_submitted_by.lineno == line
    assert worker.created_by is not None
    assert (worker.created_by.filename, worker.created_by.lineno) == (__file__, line)


async def test_submit_thread_on_a_pool_never_opened_names_itself() -> None:
    with pytest.raises(RuntimeError, match=r"Pool.submit_thread\(\) needs an open pool"):
        await Pool().submit_thread(time.time)
