"""Error policies: nothing is silently lost, and cancellations are not errors."""

from __future__ import annotations

import sys

import anyio
import pytest

from helpers import (
    Boom,
    Probe,
    Unswallowable,
    assert_stats_balanced,
    identity,
    leaves,
    no_leaks,
    noop,
)
from workpool import Job, JobCancelled, Pool, PoolClosed

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio


async def fail_after_checkpoint(message: str = "boom") -> None:
    await anyio.lowlevel.checkpoint()
    raise Boom(message)


async def fail_when(event: anyio.Event, message: str = "boom") -> None:
    await event.wait()
    raise Boom(message)


# -- on_error="cancel" (the default) ----------------------------------------


async def test_cancel_policy_raises_only_the_failure_and_cancels_the_rest() -> None:
    probe = Probe()
    go = anyio.Event()
    reached = False
    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as caught:
        async with no_leaks(), Pool(max_workers=2) as pool:
            assert pool.stats.workers == 0
            running = await pool.submit(probe.forever, "running")
            failing = await pool.submit(fail_when, go)
            queued = [await pool.submit(probe.forever, f"queued {i}") for i in range(3)]
            await anyio.wait_all_tasks_blocked()
            go.set()
            await anyio.sleep_forever()
            reached = True  # pragma: no cover
    assert not reached
    (failure,) = caught.value.exceptions
    assert failing.exception() is failure
    assert running.cancelled()
    assert probe.cancelled == ["running"]
    assert all(job.cancelled() for job in queued)
    assert probe.started == ["running"]  # the queued ones never started
    assert pool.stats.failed == 1
    assert pool.stats.cancelled == 4
    assert_stats_balanced(pool.stats)


async def test_cancel_policy_failure_during_drain() -> None:
    probe = Probe()
    with anyio.fail_after(5), pytest.RaisesGroup(Boom):
        async with no_leaks(), Pool(max_workers=2) as pool:
            running = await pool.submit(probe.forever, "running")
            await pool.submit(fail_after_checkpoint)
            # The body ends normally; the failure comes while draining.
    assert running.cancelled()
    assert_stats_balanced(pool.stats)


@pytest.mark.parametrize("on_error", ["cancel", "collect"])
async def test_awaiting_the_failing_job_in_the_body_reports_the_failure_once(on_error: str) -> None:
    # The body awaits the job and (rightly) receives its exception; the pool
    # must not then report that same failure twice in its group.
    go = anyio.Event()
    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as caught:
        async with no_leaks(), Pool(max_workers=1, on_error=on_error) as pool:  # type: ignore[arg-type]
            job = await pool.submit(fail_when, go)
            go.set()
            await job
    assert len(leaves(caught.value)) == 1, caught.value.exceptions


async def test_cancel_policy_a_producer_loop_in_the_body_reports_only_the_failure() -> None:
    # The commonest shape of all: the body submits in a loop and a job fails.
    # The PoolClosed the blocked producer sees is caused by the cancellation,
    # so it must not show up next to the failure.
    async def job(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        if i == 0:
            raise Boom("first job")

    reached = False
    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as caught:
        async with no_leaks(), Pool(max_workers=1, max_pending=1) as pool:
            for i in range(100):
                await pool.submit(job, i)
            reached = True  # pragma: no cover
    assert not reached
    assert not any(isinstance(e, PoolClosed) for e in leaves(caught.value))


async def test_cancel_policy_body_waiting_on_a_queued_job_reports_only_the_failure() -> None:
    # The queued job is cancelled because of the failure: its JobCancelled
    # is one of "the cancellations they caused" and is not reported.
    go = anyio.Event()
    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as caught:
        async with no_leaks(), Pool(max_workers=1) as pool:
            await pool.submit(fail_when, go)
            queued = await pool.submit(noop)
            go.set()
            await queued
    assert not any(isinstance(e, JobCancelled) for e in leaves(caught.value))


# -- on_error="collect" -----------------------------------------------------


async def test_collect_policy_keeps_going_and_raises_all_failures() -> None:
    async def work(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i in (0, 5):
            raise Boom(str(i))
        return i

    with anyio.fail_after(5), pytest.RaisesGroup(Boom, Boom) as caught:
        async with no_leaks(), Pool(max_workers=1, on_error="collect") as pool:
            jobs = [await pool.submit(work, i) for i in range(10)]
    # One worker runs them in order: the jobs after the first failure ran.
    assert sorted(str(e) for e in caught.value.exceptions) == ["0", "5"]
    assert [job.result() for job in jobs if job.exception() is None] == [1, 2, 3, 4, 6, 7, 8, 9]
    assert pool.stats.failed == 2
    assert pool.stats.completed == 8
    assert_stats_balanced(pool.stats)


async def test_a_failure_that_another_job_re_raises_is_in_the_group_once() -> None:
    # Job "outer" awaits job "inner" and re-raises its exception: two jobs
    # failed (the stats say so), but with one exception, listed once.
    async def inner() -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom("inner")

    async def outer(job: Job[None]) -> None:
        await job

    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as caught:
        async with no_leaks(), Pool(max_workers=2, on_error="collect") as pool:
            inner_job = await pool.submit(inner)
            outer_job = await pool.submit(outer, inner_job)
    assert caught.value.exceptions[0] is inner_job.exception() is outer_job.exception()
    assert pool.stats.failed == 2
    assert_stats_balanced(pool.stats)


# -- on_error=callable ------------------------------------------------------


async def test_callable_policy_is_called_per_failure_and_the_pool_goes_on() -> None:
    seen: list[tuple[Job[object], BaseException, bool]] = []

    def handler(job: Job[object], exc: Exception) -> None:
        seen.append((job, exc, job.done() and job.exception() is exc))

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=handler) as pool:
            failing = await pool.submit(fail_after_checkpoint, "first")
            after = await pool.submit(identity, "after")
            with pytest.raises(Boom, match="first"):
                await failing  # whoever awaits the job gets its exception too
            assert await after == "after"
            again = await pool.submit(fail_after_checkpoint, "second")
            with pytest.raises(Boom):
                await again
            assert await (await pool.submit(identity, 1)) == 1
    # No exception from the block: the handler took the failures.
    assert [(job, str(exc), ok) for job, exc, ok in seen] == [
        (failing, "first", True),
        (again, "second", True),
    ]
    assert pool.stats.failed == 2
    assert_stats_balanced(pool.stats)


class HandlerError(Exception):
    pass


async def test_callable_policy_that_raises_is_treated_as_cancel() -> None:
    probe = Probe()

    def handler(job: Job[object], exc: Exception) -> None:
        raise HandlerError("the handler itself failed")

    # The block is the pool's whole lifetime.
    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as caught:  # noqa: PT012
        async with no_leaks(), Pool(max_workers=2, on_error=handler) as pool:
            running = await pool.submit(probe.forever, "running")
            await pool.submit(fail_after_checkpoint)
            queued = [await pool.submit(probe.forever, i) for i in range(2)]
            await anyio.sleep_forever()
    found = leaves(caught.value)
    assert any(isinstance(e, HandlerError) for e in found), found
    assert all(isinstance(e, (HandlerError, Boom)) for e in found), found
    assert running.cancelled()
    assert all(job.cancelled() for job in queued)
    assert_stats_balanced(pool.stats)


# -- the body's own exception -----------------------------------------------


async def test_body_exception_propagates_unwrapped_and_cancels_jobs() -> None:
    probe = Probe()
    # The block is the pool's whole lifetime.
    with anyio.fail_after(5), pytest.raises(KeyError) as caught:  # noqa: PT012
        async with no_leaks(), Pool(max_workers=1) as pool:
            running = await pool.submit(probe.forever, "running")
            queued = await pool.submit(probe.forever, "queued")
            await anyio.wait_all_tasks_blocked()
            raise KeyError("from the body")
    assert type(caught.value) is KeyError
    assert running.cancelled()
    assert queued.cancelled()
    assert probe.cancelled == ["running"]
    assert_stats_balanced(pool.stats)


async def test_body_exception_is_grouped_with_job_failures() -> None:
    with anyio.fail_after(5), pytest.RaisesGroup(KeyError, Boom):
        async with no_leaks(), Pool(on_error="collect") as pool:
            job = await pool.submit(fail_after_checkpoint)
            with pytest.raises(Boom):
                await job
            raise KeyError("from the body")


# -- BaseExceptions that are not failures -----------------------------------


async def raise_unswallowable() -> None:
    await anyio.lowlevel.checkpoint()
    raise Unswallowable


def _ignore(job: Job[object], exc: Exception) -> None:
    pass  # pragma: no cover - never called for a BaseException


@pytest.mark.parametrize("on_error", ["cancel", "collect", _ignore], ids=["cancel", "collect", "callable"])
async def test_base_exception_from_a_job_is_never_swallowed(on_error: object) -> None:
    probe = Probe()
    # Any shape is fine: a group or the bare exception; the block is the pool's whole lifetime.
    with anyio.fail_after(5), pytest.raises(BaseException) as caught:  # noqa: PT011, PT012
        async with no_leaks(), Pool(max_workers=2, on_error=on_error) as pool:  # type: ignore[arg-type]
            running = await pool.submit(probe.forever, "running")
            await pool.submit(raise_unswallowable)
            await anyio.sleep_forever()
    found = leaves(caught.value)
    assert any(isinstance(e, Unswallowable) for e in found), found
    assert not any(isinstance(e, anyio.get_cancelled_exc_class()) for e in found), found
    assert running.cancelled()


async def test_base_exception_from_the_body_propagates_unwrapped() -> None:
    probe = Probe()
    # The block is the pool's whole lifetime.
    with anyio.fail_after(5), pytest.raises(Unswallowable) as caught:  # noqa: PT012
        async with no_leaks(), Pool() as pool:
            job = await pool.submit(probe.forever)
            await anyio.wait_all_tasks_blocked()
            raise Unswallowable
    assert type(caught.value) is Unswallowable
    assert job.cancelled()


async def test_base_exception_from_the_error_handler_is_not_swallowed() -> None:
    def handler(job: Job[object], exc: Exception) -> None:
        raise Unswallowable

    # Any shape is fine: a group or the bare exception; the block is the pool's whole lifetime.
    with anyio.fail_after(5), pytest.raises(BaseException) as caught:  # noqa: PT011, PT012
        async with no_leaks(), Pool(on_error=handler) as pool:
            await pool.submit(fail_after_checkpoint)
            await anyio.sleep_forever()
    assert any(isinstance(e, Unswallowable) for e in leaves(caught.value))


async def test_job_cancelled_is_an_ordinary_exception() -> None:
    assert issubclass(JobCancelled, Exception)
    assert not issubclass(JobCancelled, anyio.get_cancelled_exc_class())
