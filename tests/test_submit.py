"""submit / submit_nowait: backpressure, rendezvous, nested submits, and the Job handle."""

from __future__ import annotations

import functools
import gc
import types
import weakref
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from helpers import Boom, Probe, assert_stats_balanced, identity, no_leaks, noop
from workpool import Job, JobCancelled, Pool, PoolClosed, PoolFull

pytestmark = pytest.mark.anyio

T = TypeVar("T")


# -- backpressure -----------------------------------------------------------


@pytest.mark.parametrize(("max_workers", "max_pending"), [(1, 0), (1, 1), (1, 4), (2, 2), (3, 10)])
async def test_submit_waits_while_full_and_returns_when_one_slot_frees(
    max_workers: int, max_pending: int
) -> None:
    capacity = max_workers + max_pending
    probes = [Probe() for _ in range(capacity + 1)]
    returned = anyio.Event()
    with anyio.fail_after(5):
        async with (
            no_leaks(),
            anyio.create_task_group() as tg,
            Pool(max_workers=max_workers, max_pending=max_pending) as pool,
        ):
            for i in range(capacity):
                await pool.submit(probes[i].block, i)

            async def producer() -> None:
                await pool.submit(probes[capacity].block, capacity)
                returned.set()

            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert not returned.is_set(), "submit returned although the pool was full"
            assert pool.stats.submitted == capacity

            probes[0].release.set()  # exactly one job finishes: one slot frees
            await anyio.wait_all_tasks_blocked()
            assert returned.is_set(), f"a slot is free ({pool.stats}) but submit still waits"
            assert pool.stats.submitted == capacity + 1
            for probe in probes:
                probe.release.set()
    assert_stats_balanced(pool.stats)


async def test_submit_nowait_raises_pool_full_then_accepts_when_room_frees() -> None:
    probe = Probe()
    gate = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=1, name="tiny") as pool:
            first = pool.submit_nowait(gate.block, "first")
            pool.submit_nowait(probe.block, "second")
            with pytest.raises(PoolFull, match="tiny"):
                pool.submit_nowait(probe.block, "third")
            assert pool.stats.submitted == 2
            gate.release.set()
            await first
            pool.submit_nowait(probe.block, "third")  # room again
            probe.release.set()
    assert_stats_balanced(pool.stats)
    assert pool.stats.completed == 3


async def test_submit_nowait_raises_pool_closed_while_closing_and_after_exit() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=1) as pool:
            await pool.submit(probe.block)
            tg.start_soon(pool.close)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(PoolClosed):
                pool.submit_nowait(noop)
            probe.release.set()
    with pytest.raises(PoolClosed):
        pool.submit_nowait(noop)


async def test_a_job_that_submits_after_its_pool_was_cancelled_gets_pool_closed() -> None:
    # A job's own submits skip the closed-intake check (a closing pool still
    # takes them), so what refuses them after a cancellation is the check
    # as the job is queued, in submit and in submit_nowait alike.
    outcomes: list[object] = []

    async def cancel_then_submit(pool: Pool) -> None:
        pool.cancel()
        with anyio.CancelScope(shield=True):  # else the cancellation is raised first
            try:
                await pool.submit(noop)
            except PoolClosed as exc:
                outcomes.append(exc)
            try:
                pool.submit_nowait(noop)
            except PoolClosed as exc:
                outcomes.append(exc)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            await pool.submit(cancel_then_submit, pool)
    assert [type(outcome) for outcome in outcomes] == [PoolClosed, PoolClosed], outcomes
    assert pool.stats.submitted == 1


async def test_submit_checks_the_cancel_scopes_of_whichever_task_calls_it() -> None:
    # The check remembers the scopes of the last task that submitted (a
    # producer submits many jobs in a row): producers taking turns must
    # each be checked against their own.
    outcomes: list[str] = []
    turn = anyio.Event()
    done = anyio.Event()

    async def cancelled_producer(pool: Pool) -> None:
        with anyio.CancelScope() as scope:
            await turn.wait()
            scope.cancel()  # no checkpoint since: only submit can notice
            await pool.submit(noop)
            outcomes.append("submitted while cancelled")  # pragma: no cover
        outcomes.append("cancelled" if scope.cancelled_caught else "not cancelled")
        done.set()

    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(max_workers=1, max_pending=None) as pool,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(cancelled_producer, pool)
            await pool.submit(noop)  # this task first: its scopes are remembered
            turn.set()
            await done.wait()
    assert outcomes == ["cancelled"]
    assert pool.stats.completed == 1


async def test_submit_is_a_cancellation_point_even_with_room() -> None:
    async with no_leaks(), Pool() as pool:
        reached = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pool.submit(noop)
            reached = True  # pragma: no cover
        assert scope.cancelled_caught
        assert not reached
        assert pool.stats.submitted == 0


async def test_submit_cancelled_while_waiting_for_room_submits_nothing() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=1, max_pending=0) as pool:
            await pool.submit(probe.block, 0)
            with anyio.CancelScope() as scope:

                async def cancel_when_blocked() -> None:
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()

                tg.start_soon(cancel_when_blocked)
                await pool.submit(probe.block, 1)
            assert scope.cancelled_caught
            assert pool.stats.submitted == 1
            probe.release.set()
    assert probe.started == [0]


# -- max_pending=0: a rendezvous --------------------------------------------


async def test_rendezvous_accepts_a_job_only_when_a_worker_is_free() -> None:
    probe = Probe()
    second_accepted = anyio.Event()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=1, max_pending=0) as pool:
            first = await pool.submit(probe.block, 0)
            with pytest.raises(PoolFull):
                pool.submit_nowait(probe.block, 1)

            async def producer() -> None:
                await pool.submit(identity, 1)
                second_accepted.set()

            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert not second_accepted.is_set()
            probe.release.set()
            await first
            await second_accepted.wait()
    assert pool.stats.completed == 2


async def test_rendezvous_submit_returns_once_a_worker_has_taken_the_job() -> None:
    # Issue 2: "0 = rendezvous: submit returns once a worker has taken the
    # job, like an unbuffered channel".  So when submit returns, the job is
    # no longer queued.
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2, max_pending=0) as pool:
            for i in range(2):
                await pool.submit(probe.block, i)
                stats = pool.stats
                assert stats.queued == 0, f"submit returned while its job was still queued: {stats}"
                assert stats.busy == i + 1
            probe.release.set()


# -- producers blocked in submit when the pool closes -----------------------


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_producers_blocked_in_submit_get_pool_closed(how: str) -> None:
    probe = Probe()
    outcomes: list[object] = []
    with anyio.fail_after(5):
        async with (
            no_leaks(),
            anyio.create_task_group() as producers,
            Pool(max_workers=1, max_pending=0) as pool,
        ):
            await pool.submit(probe.block, "running")

            async def producer(i: int) -> None:
                try:
                    await pool.submit(probe.block, i)
                except PoolClosed as exc:
                    outcomes.append(exc)
                else:  # pragma: no cover
                    outcomes.append("accepted")

            for i in range(3):
                producers.start_soon(producer, i)
            await anyio.wait_all_tasks_blocked()
            assert outcomes == []
            if how == "close":
                producers.start_soon(pool.close)
            else:
                pool.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(outcomes) == 3
            assert all(isinstance(o, PoolClosed) for o in outcomes)
            probe.release.set()
    assert probe.started == ["running"]


# -- nested submits: jobs that fan out --------------------------------------


@pytest.mark.parametrize("nowait", [False, True], ids=["submit", "submit_nowait"])
async def test_crawler_fans_out_from_jobs_without_deadlock(nowait: bool) -> None:
    max_workers, max_pending = 2, 1
    visited: list[tuple[int, ...]] = []
    submits_while_full = 0

    async def crawl(pool: Pool, page: tuple[int, ...]) -> None:
        nonlocal submits_while_full
        visited.append(page)
        await anyio.lowlevel.checkpoint()
        if len(page) < 4:
            for link in range(3):
                stats = pool.stats
                if stats.busy == max_workers and stats.queued >= max_pending:
                    submits_while_full += 1
                if nowait:
                    pool.submit_nowait(crawl, pool, (*page, link))
                else:
                    await pool.submit(crawl, pool, (*page, link))

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=max_workers, max_pending=max_pending) as pool:
            await pool.submit(crawl, pool, ())
            # Leaving the block closes the pool while the crawl is just
            # starting: the pool must still wait for every page.
    assert len(visited) == 1 + 3 + 9 + 27 + 81
    assert len(set(visited)) == len(visited)
    assert submits_while_full > 0, "the test never made every worker submit into a full queue"
    assert_stats_balanced(pool.stats)


# -- the Job handle ---------------------------------------------------------


async def test_result_and_exception_before_done_raise_runtime_error() -> None:
    probe = Probe()
    async with no_leaks(), Pool(max_workers=1) as pool:
        job = await pool.submit(probe.block, "x")
        queued = await pool.submit(probe.block, "y")
        await anyio.wait_all_tasks_blocked()
        for j in (job, queued):  # running, then queued
            assert not j.done()
            assert not j.cancelled()
            with pytest.raises(RuntimeError, match="not finished"):
                j.result()
            with pytest.raises(RuntimeError, match="not finished"):
                j.exception()
        probe.release.set()
        assert await job == "x"
    assert job.result() == "x"
    assert job.exception() is None
    assert job.done()
    assert not job.cancelled()


async def test_job_outcome_of_a_failed_job() -> None:
    error = Boom("bad")

    async def fail() -> None:
        await anyio.lowlevel.checkpoint()
        raise error

    with pytest.RaisesGroup(Boom):
        async with no_leaks(), Pool(on_error="collect") as pool:
            job = await pool.submit(fail)
            with pytest.raises(Boom) as caught:
                await job
            assert caught.value is error
    assert job.done()
    assert not job.cancelled()
    assert job.exception() is error
    with pytest.raises(Boom):
        job.result()


async def test_several_awaiters_get_the_same_value() -> None:
    probe = Probe()
    values: list[object] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            job = await pool.submit(probe.block, "shared")

            async def waiter() -> None:
                values.append(await job)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                probe.release.set()
            values.append(await job)  # already done: still fine
    assert values == ["shared"] * 4


@types.coroutine
def counting_suspensions(awaitable: Awaitable[T], suspensions: list[object]) -> Generator[Any, Any, T]:
    """Await `awaitable`, appending to `suspensions` each time it suspends the awaiting task."""
    steps = awaitable.__await__()
    sent: Any = None
    while True:
        try:
            yielded = steps.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        suspensions.append(yielded)
        sent = yield yielded


@pytest.mark.parametrize("max_pending", [1000, None])
async def test_a_task_awaiting_a_running_job_is_woken_once(max_pending: int | None) -> None:
    # The job's waiters used to be woken as it started too (for a rendezvous
    # submit, which only max_pending=0 has): the awaiting task ran for
    # nothing and waited again, a task switch per awaited job.
    gate, probe = Probe(), Probe()
    suspensions: list[object] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=max_pending) as pool:
            await pool.submit(gate.block, "first")  # holds the only worker
            job = await pool.submit(probe.block, "value")

            async def awaiter() -> None:
                assert await counting_suspensions(job, suspensions) == "value"

            async with anyio.create_task_group() as tg:
                tg.start_soon(awaiter)
                await anyio.wait_all_tasks_blocked()
                assert probe.started == []
                gate.release.set()  # the job starts while the awaiter waits
                await anyio.wait_all_tasks_blocked()
                assert probe.started == ["value"]
                probe.release.set()
    assert len(suspensions) == 1, f"the awaiting task was woken {len(suspensions)} times"


async def fail() -> None:
    raise Boom("failed")


async def finished_jobs(pool: Pool) -> dict[str, Job[object]]:
    """One job of each ending, finished: a value, a failure, and cancelled while queued."""
    gate = Probe()
    succeeded = await pool.submit(identity, "value")
    failed = await pool.submit(fail)
    blocker = await pool.submit(gate.block, None)  # holds the only worker
    cancelled = await pool.submit(identity, "never")
    cancelled.cancel()
    gate.release.set()
    await blocker
    return {"succeeded": succeeded, "failed": failed, "cancelled": cancelled}


ENDINGS = ["succeeded", "failed", "cancelled"]


@pytest.mark.parametrize("after_exit", [False, True], ids=["pool-open", "pool-exited"])
@pytest.mark.parametrize("ending", ENDINGS)
async def test_awaiting_a_finished_job_is_a_cancellation_point(ending: str, after_exit: bool) -> None:
    # The job ran on this event loop; its pool may be gone by the time it is
    # awaited.  Either way the await checkpoints on the job's own backend.
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=lambda job, exc: None) as pool:
            job = (await finished_jobs(pool))[ending]
            if not after_exit:
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await job
                assert scope.cancelled_caught, "await on a finished job ignored the cancellation"
        if after_exit:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await job
            assert scope.cancelled_caught, "await on a finished job ignored the cancellation"
    assert job.done()


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_loop_awaiting_finished_jobs_lets_other_tasks_run(ending: str) -> None:
    # Every await of a finished job is a schedule point, not only every so
    # many: a ready task runs at each of them.
    ticks = 0
    awaits = 20

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=lambda job, exc: None) as pool:
            job = (await finished_jobs(pool))[ending]
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)  # never blocks: it is ready at every turn
                before = ticks
                for _ in range(awaits):
                    try:
                        await job
                    except (Boom, JobCancelled):
                        pass
                ran = ticks - before
                tg.cancel_scope.cancel()
    assert ran >= awaits - 1, f"another task ran {ran} times during {awaits} awaits of a finished job"


async def test_cancelling_an_awaiter_does_not_cancel_the_job() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            job = await pool.submit(probe.block, "v")
            with anyio.CancelScope() as scope:
                scope.cancel()
                await job
            assert scope.cancelled_caught
            assert not job.done()
            probe.release.set()
            assert await job == "v"


async def test_job_has_no_public_constructor() -> None:
    with pytest.raises(TypeError):
        Job()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no public constructor"):
        Job(None, None, noop, (), None, None)  # type: ignore[arg-type]


async def test_cancel_a_queued_job() -> None:
    probe = Probe()
    ran: list[str] = []

    async def record() -> None:
        ran.append("queued job ran")

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1) as pool:
            blocker = await pool.submit(probe.block, "blocker")
            queued = await pool.submit(record)
            assert pool.stats.queued >= 1
            queued.cancel()
            assert queued.done()
            assert queued.cancelled()
            with pytest.raises(JobCancelled):
                queued.result()
            with pytest.raises(JobCancelled):
                queued.exception()
            with pytest.raises(JobCancelled):
                await queued
            # The awaiting task is not cancelled: it carries on.
            await anyio.lowlevel.checkpoint()
            probe.release.set()
            assert await blocker == "blocker"
            assert await (await pool.submit(identity, "after")) == "after"
    assert ran == []
    assert pool.stats.cancelled == 1
    assert_stats_balanced(pool.stats)


async def test_cancel_a_running_job_and_the_worker_keeps_working() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1) as pool:
            running = await pool.submit(probe.forever, "victim")
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.busy == 1
            running.cancel()
            running.cancel()  # twice is fine
            with pytest.raises(JobCancelled):
                await running
            assert probe.cancelled == ["victim"]
            assert running.cancelled()
            # Same worker, next job.
            assert await (await pool.submit(identity, 1)) == 1
            assert pool.stats.workers == 1
            again = await pool.submit(probe.forever, "second victim")
            await anyio.wait_all_tasks_blocked()
            again.cancel()
            with pytest.raises(JobCancelled):
                await again
            assert await (await pool.submit(identity, 2)) == 2
    # A cancelled job is not a failure: the block exits quietly.
    assert pool.stats.cancelled == 2
    assert pool.stats.failed == 0
    assert_stats_balanced(pool.stats)


async def test_a_job_that_returns_despite_cancel_keeps_its_value() -> None:
    async def stubborn() -> str:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            return "value anyway"
        return "unreachable"  # pragma: no cover

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1) as pool:
            job = await pool.submit(stubborn)
            await anyio.wait_all_tasks_blocked()
            job.cancel()
            assert await job == "value anyway"
            assert await (await pool.submit(identity, 3)) == 3


async def test_cancel_on_a_finished_job_changes_nothing() -> None:
    async with no_leaks(), Pool() as pool:
        job = await pool.submit(identity, 5)
        assert await job == 5
        job.cancel()
        assert not job.cancelled()
        assert job.result() == 5


async def test_keyword_arguments_through_partial() -> None:
    async def greet(greeting: str, *, name: str) -> str:
        return f"{greeting}, {name}"

    async with no_leaks(), Pool() as pool:
        job = await pool.submit(functools.partial(greet, name="world"), "hello")
        assert await job == "hello, world"


class _Payload:
    """A stand-in for a large request body."""


@pytest.mark.parametrize("via_partial", [False, True], ids=["args", "partial"])
async def test_a_dropped_job_handle_leaks_nothing_while_the_pool_runs(via_partial: bool) -> None:
    # The pool keeps no reference to a finished job (issue 2), nor to what
    # the job was called with: a long-lived service pool must not pin the
    # last request's job, arguments or result.
    async with no_leaks(), Pool(max_workers=1) as pool:
        payload = _Payload()
        if via_partial:
            job = await pool.submit(functools.partial(identity, payload))
        else:
            job = await pool.submit(identity, payload)
        assert await job is payload
        job_ref, payload_ref = weakref.ref(job), weakref.ref(payload)
        del job, payload
        gc.collect()
        alive = [
            name for name, ref in (("job", job_ref), ("argument/result", payload_ref)) if ref() is not None
        ]
        assert alive == [], f"the open pool still references a finished job: {alive}"


async def test_a_dropped_job_handle_leaks_nothing_after_exit() -> None:
    async with no_leaks(), Pool() as pool:
        payload = _Payload()
        job = await pool.submit(identity, payload)
        await job
    job_ref, payload_ref = weakref.ref(job), weakref.ref(payload)
    del job, payload
    gc.collect()
    assert job_ref() is None
    assert payload_ref() is None
