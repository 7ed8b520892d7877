"""Regression tests for bugs an independent review found (one test per bug)."""

from __future__ import annotations

import asyncio
import signal

import anyio
import anyio.lowlevel
import pytest

from helpers import no_leaks
from workpool import Pool, shutdown_on_signals

pytestmark = pytest.mark.anyio


async def noop() -> None:
    pass


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_a_stray_cancellation_inside_a_job_ends_only_that_job() -> None:
    # asyncio only: a job that awaits a future someone else cancelled raises
    # CancelledError although nobody cancelled the job or the pool; trio has
    # no such cancellation.  Only that job may end.
    async def awaits_a_cancelled_future() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    async def later() -> str:
        await anyio.lowlevel.checkpoint()
        return "ran"

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1) as pool:
            stray = await pool.submit(awaits_a_cancelled_future)
            other = await pool.submit(later)
            assert await other == "ran"
            reached = True
    assert reached
    assert stray.cancelled()
    stats = pool.stats
    assert (stats.completed, stats.cancelled, stats.failed) == (1, 1, 0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_submit_from_a_plain_asyncio_task_sees_a_scope_entered_later() -> None:
    # asyncio only: a request handler of an ASGI server is a plain asyncio
    # task, with no anyio state until it first enters a cancel scope.
    accepted: list[str] = []

    async def handler(pool: Pool) -> None:
        await pool.submit(noop)
        accepted.append("first")
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pool.submit(noop)
            accepted.append("inside the cancelled scope")

    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            await asyncio.get_running_loop().create_task(handler(pool))
    assert accepted == ["first"]
    assert pool.stats.submitted == 1


async def test_signal_handlers_are_restored_when_the_block_ends_without_a_signal() -> None:
    before = signal.getsignal(signal.SIGUSR2)
    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            with shutdown_on_signals(pool, signals=(signal.SIGUSR2,)):
                assert signal.getsignal(signal.SIGUSR2) != before
            await anyio.wait_all_tasks_blocked()
            # The listener is gone, so a signal now would have its usual effect.
            assert signal.getsignal(signal.SIGUSR2) == before
