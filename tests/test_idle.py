"""Idle workers: how many a burst wakes, and how a quiet pool gives them back (idle_timeout)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from helpers import no_leaks, noop, wait_for
from virtual_clock import virtual_time
from workpool import Pool, Retry, dump_tasks
from workpool._backend import _asyncio_clock
from workpool._idle import IdleWorkers, _AsyncioIdleWorkers, _TrioIdleWorkers
from workpool._worker import _YIELD_EVERY
from workpool.testing import no_leaks as public_no_leaks

pytestmark = pytest.mark.anyio


async def _run_until(event: anyio.Event) -> None:
    await event.wait()


async def _warm_up(pool: Pool, workers: int) -> None:
    """Make `workers` workers run a job each, and wait until they are all idle again."""
    release = anyio.Event()
    for _ in range(workers):
        await pool.submit(_run_until, release)
    await anyio.wait_all_tasks_blocked()
    assert pool.stats.workers == workers
    release.set()
    await anyio.wait_all_tasks_blocked()
    assert pool.stats.busy == 0


@virtual_time()
async def test_a_quiet_pool_gives_its_workers_back_after_idle_timeout() -> None:
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=4, idle_timeout=30) as pool:
            await _warm_up(pool, 4)
            await anyio.sleep(29.5)
            assert pool.stats.workers == 4
            await anyio.sleep(1)
            assert pool.stats.workers == 0, "every worker idle since t=0 exits at t=30"
            # Work arrives again: a worker starts for it.
            assert await (await pool.submit(noop)) is None
            assert pool.stats.workers == 1


@virtual_time()
async def test_each_worker_retires_idle_timeout_after_its_own_last_job() -> None:
    async def sleep_then_return(seconds: float) -> float:
        await anyio.sleep(seconds)
        return anyio.current_time()

    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=3, idle_timeout=10) as pool:
            start = anyio.current_time()
            # Three workers that go idle at t=1, t=2 and t=3.
            jobs = [await pool.submit(sleep_then_return, s) for s in (1, 2, 3)]
            for job in jobs:
                await job
            counts = []
            for t in (10.5, 11.5, 12.5, 13.5):
                await anyio.sleep(t - (anyio.current_time() - start))
                counts.append(pool.stats.workers)
    assert counts == [3, 2, 1, 0]


@virtual_time()
async def test_a_worker_that_parks_after_every_job_sets_no_deadline_per_park(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pool whose only worker parks after each job (a service under light
    # load, a submit-and-await loop) used to give every park a deadline of
    # its own.  One timer serves them all: on asyncio a loop callback, armed
    # about once per idle_timeout; on trio a task, started once.
    timers: list[object] = []
    on_asyncio = anyio.get_cancelled_exc_class() is asyncio.CancelledError
    if on_asyncio:
        arm = _AsyncioIdleWorkers._arm

        def counting_arm(idle: _AsyncioIdleWorkers, deadline: float) -> None:
            timers.append(deadline)
            arm(idle, deadline)

        monkeypatch.setattr(_AsyncioIdleWorkers, "_arm", counting_arm)
    else:
        run_timer = _TrioIdleWorkers.run_timer

        async def counting_run(idle: _TrioIdleWorkers) -> None:
            timers.append(idle)
            await run_timer(idle)

        monkeypatch.setattr(_TrioIdleWorkers, "run_timer", counting_run)
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=10, name="svc") as pool:
            for _ in range(20):
                await (await pool.submit(noop))
                await anyio.wait_all_tasks_blocked()
                await anyio.sleep(1)  # 20 s in all: the worker never idles 10 s in a row
            names = sorted(r.name for r in dump_tasks() if r.name.startswith("svc-"))
            assert pool.stats.workers == 1
    if on_asyncio:
        assert 1 <= len(timers) <= 3, f"{len(timers)} deadlines armed for 20 parks in 20 s"
        assert names == ["svc-worker-1"]
    else:
        assert len(timers) == 1
        assert names == ["svc-idle-timer", "svc-worker-1"]


@pytest.mark.parametrize("idle_timeout", [0.5, 10.0])
@virtual_time()
async def test_a_leak_check_inside_an_open_pool_sees_no_timer_come_or_go(idle_timeout: float) -> None:
    # A long-lived pool (a test fixture's, a service's) around a no_leaks
    # region: its worker existed before the region and parks in it, for
    # longer than twice idle_timeout with 0.5.  An idle timer that started
    # with the first park, or stopped while nobody was parked, appeared in
    # the region as a task of its own and was reported as a leak.
    gate = anyio.Event()
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=idle_timeout) as pool:
            job = await pool.submit(wait_for, gate)
            await anyio.wait_all_tasks_blocked()
            async with public_no_leaks(timeout=0):
                gate.set()
                await job
                await anyio.wait_all_tasks_blocked()
                await anyio.sleep(min(idle_timeout, 10) * 0.9)
                assert pool.stats.workers == 1
            async with public_no_leaks(timeout=0):
                await anyio.sleep(idle_timeout * 3)
                assert pool.stats.workers == 0


@virtual_time()
async def test_idle_timeout_none_keeps_every_worker_until_the_pool_closes() -> None:
    with anyio.fail_after(10_000):
        async with no_leaks(), Pool(max_workers=3, idle_timeout=None) as pool:
            await _warm_up(pool, 3)
            await anyio.sleep(3600)
            assert pool.stats.workers == 3


@virtual_time()
async def test_a_worker_that_gets_work_before_its_deadline_stays() -> None:
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=10) as pool:
            for _ in range(5):
                await anyio.sleep(9)
                await (await pool.submit(noop))
                assert pool.stats.workers == 1
            assert pool.stats.submitted == 5


class _HeldJobs:
    """Jobs that count themselves as they start, then wait for one release."""

    def __init__(self) -> None:
        self.started = 0
        self.release = anyio.Event()

    async def job(self) -> None:
        self.started += 1
        await self.release.wait()


async def test_a_burst_of_waiting_jobs_gets_every_worker() -> None:
    # A job wakes one worker, and each worker that starts or wakes wakes more
    # once its job suspends, while the queue is long: 50 jobs that all wait
    # still all run at once.
    held = _HeldJobs()
    with anyio.fail_after(10):
        async with no_leaks(), Pool(max_workers=50, max_pending=None) as pool:
            await _warm_up(pool, 10)  # some idle workers to wake, the rest to start
            for _ in range(50):
                pool.submit_nowait(held.job)
            await anyio.wait_all_tasks_blocked()
            assert held.started == 50
            assert pool.stats.workers == 50
            assert pool.stats.busy == 50
            held.release.set()


async def test_a_submit_with_every_worker_busy_looks_for_no_idle_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its steady state under load: a submit then has no worker to wake and
    # no room to start one, and skips asking.  Once a worker is parked
    # again, the next submit wakes it.
    held = _HeldJobs()
    asked = 0

    with anyio.fail_after(10):
        async with no_leaks(), Pool(max_workers=2, max_pending=None) as pool:
            await _warm_up(pool, 2)
            assert pool._idle_workers is not None
            idle_workers = type(pool._idle_workers)
            wake_one = idle_workers.wake_one

            def counting_wake_one(self: IdleWorkers) -> bool:
                nonlocal asked
                asked += 1
                return wake_one(self)

            monkeypatch.setattr(idle_workers, "wake_one", counting_wake_one)
            for _ in range(2):
                await pool.submit(held.job)
            await anyio.wait_all_tasks_blocked()
            # One woken by the first submit, one by that worker as its job
            # suspended (the second submit found a worker on its way).
            assert (held.started, asked) == (2, 2), "the two parked workers woken"
            for _ in range(10):
                await pool.submit(held.job)
            assert asked == 2, "both workers busy: nobody to wake"
            held.release.set()
            await anyio.wait_all_tasks_blocked()
            assert held.started == 12
            assert pool.stats.busy == 0
            job = await pool.submit(noop)
            assert asked == 3, "a parked worker again: woken"
            await job


# A pool with a job_timeout runs its jobs on another path of the worker loop.
_PATHS = pytest.mark.parametrize("job_timeout", [None, 3600], ids=["plain", "with job_timeout"])


@_PATHS
async def test_a_burst_of_quick_jobs_wakes_one_of_many_idle_workers(job_timeout: float | None) -> None:
    # Jobs that never suspend are run back to back by the first worker to
    # wake, pauses for fairness included; waking one worker per job would
    # wake all 100 for nothing.
    with anyio.fail_after(10):
        async with (
            no_leaks(),
            Pool(max_workers=100, max_pending=None, idle_timeout=None, job_timeout=job_timeout) as pool,
        ):
            await _warm_up(pool, 100)
            woken: set[object] = set()

            async def note_worker() -> None:
                woken.add(anyio.get_current_task().id)

            for _ in range(500):
                pool.submit_nowait(note_worker)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.completed == 600
            assert len(woken) == 1, len(woken)
            assert pool._waking == 0


@_PATHS
async def test_a_burst_of_quick_jobs_starts_one_worker(job_timeout: float | None) -> None:
    # More workers start only once a job suspends: for jobs that never do,
    # another task each would only cost time and memory.
    with anyio.fail_after(10):
        async with no_leaks(), Pool(max_workers=100, max_pending=None, job_timeout=job_timeout) as pool:
            for _ in range(500):
                pool.submit_nowait(noop)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.completed == 500
            assert pool.stats.workers == 1
            assert pool._worker_seq == 1, "no worker started and gone again"
            assert pool._waking == 0


@_PATHS
async def test_quick_jobs_then_waiting_jobs_get_more_workers(job_timeout: float | None) -> None:
    # The worker that ran the quick jobs alone meets a job that suspends
    # with more queued behind it: the rest get workers of their own.
    held = _HeldJobs()
    with anyio.fail_after(10):
        async with no_leaks(), Pool(max_workers=20, max_pending=None, job_timeout=job_timeout) as pool:
            for _ in range(200):
                pool.submit_nowait(noop)
            for _ in range(20):
                pool.submit_nowait(held.job)
            await anyio.wait_all_tasks_blocked()
            assert held.started == 20
            assert pool.stats.workers == 20
            held.release.set()
        assert pool.stats.completed == 220


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_idle_timeout_out_of_range_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        Pool(idle_timeout=bad)


@pytest.mark.parametrize("bad", ["10", True, [1]])
def test_idle_timeout_of_the_wrong_type_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="idle_timeout"):
        Pool(idle_timeout=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [-1e-9, 0.0, 1e-9])
@virtual_time()
async def test_a_job_submitted_as_the_only_worker_retires_still_runs(offset: float) -> None:
    # Submitted on the very tick at which the idle worker's deadline passes
    # (just before, at, just after): whichever runs first, the job runs and
    # the pool's count of workers on their way goes back to 0.
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=1, idle_timeout=10) as pool:
            for _ in range(5):
                await (await pool.submit(noop))
                await anyio.wait_all_tasks_blocked()
                (info,) = pool._worker_info.values()
                assert info.idle_since is not None
                await _sleep_until(info.idle_since + 10 + offset)
                await pool.submit_nowait(noop)
                await anyio.wait_all_tasks_blocked()
                assert pool.stats.workers <= 1
                assert pool._waking == 0
            assert pool.stats.completed == 10


@virtual_time()
async def test_a_job_waiting_out_its_retry_backoff_gets_the_next_job_a_worker() -> None:
    # A worker waiting out a backoff is as busy as one whose job suspends:
    # a job queued behind it starts at once on another worker, not after
    # the backoff.
    failed_once = False

    async def fail_once() -> None:
        nonlocal failed_once
        if not failed_once:
            failed_once = True
            raise OSError("the first attempt fails at once, without suspending")

    async def started_at() -> float:
        return anyio.current_time()

    retry = Retry(backoff=100, max_backoff=100, jitter=0)
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=2, retry=retry) as pool:
            start = anyio.current_time()
            retried = pool.submit_nowait(fail_once)
            behind = pool.submit_nowait(started_at)
            assert await behind - start < 100
            await retried
            assert anyio.current_time() - start >= 100


async def _sleep_until(deadline: float) -> None:
    with anyio.CancelScope(deadline=deadline):
        await anyio.sleep_forever()


@_PATHS
async def test_jobs_queued_while_a_worker_pauses_for_fairness_get_an_idle_worker(
    job_timeout: float | None,
) -> None:
    # A worker that pauses after a streak of quick jobs counts as on its way
    # back to the queue, so jobs submitted meanwhile wake nobody.  If the
    # first of them suspends waiting for the second, the pausing worker must
    # wake an idle one for it once back: otherwise the second waits forever
    # next to an idle worker.  The round needs three tasks to resume in the
    # order they were made ready.  asyncio keeps that order; trio reverses
    # each batch of ready tasks half the time at random, and a reversed round
    # passes without the pause in the way: twenty rounds miss the setup one
    # time in a million.
    for _ in range(20):
        await _round_with_a_paused_worker(job_timeout)


async def _round_with_a_paused_worker(job_timeout: float | None) -> None:
    first_worker_free = anyio.Event()
    submit_now = anyio.Event()
    second_ran = anyio.Event()

    async def hold_first_worker() -> None:
        await first_worker_free.wait()

    async def suspend_once() -> None:
        await anyio.lowlevel.checkpoint()

    def end_of_streak() -> None:
        # The last quick job before the second worker pauses: the first
        # worker finishes its job and parks, then this test submits.
        first_worker_free.set()
        submit_now.set()

    async def quick(action: Callable[[], None] | None = None) -> None:
        if action is not None:
            action()

    async def wait_for_second() -> None:
        await second_ran.wait()

    async def second() -> None:
        second_ran.set()

    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(max_workers=2, max_pending=None, idle_timeout=None, job_timeout=job_timeout) as pool,
        ):
            pool.submit_nowait(hold_first_worker)
            await anyio.wait_all_tasks_blocked()
            # The second worker starts for these.  Its first job suspends
            # while no other worker can start, then it runs a full streak
            # of quick jobs and pauses.  (With a job_timeout, the job that
            # suspended counts in the streak too.)
            pool.submit_nowait(suspend_once)
            for _ in range(_YIELD_EVERY - (1 if job_timeout is None else 2)):
                pool.submit_nowait(quick)
            pool.submit_nowait(quick, end_of_streak)
            await submit_now.wait()
            waiting = pool.submit_nowait(wait_for_second)
            pool.submit_nowait(second)
            await waiting


@virtual_time()
async def test_a_quiet_pool_sets_no_deadline_for_a_virtual_clock_to_jump_to() -> None:
    # Once nobody is parked, the idle timer has no deadline.  trio's timer
    # task used to sleep a timeout at a time all the same: under a clock that
    # jumps to the next deadline whenever every task waits (MockClock with
    # autojump), time ran ahead by idle_timeout after idle_timeout while the
    # program waited for a thread, and every timeout of the program fired.
    # The public check: it lets anyio's thread cache keep its idle thread.
    async with public_no_leaks(), Pool(max_workers=1, idle_timeout=10) as pool:
        with anyio.fail_after(1000):
            await (await pool.submit(noop))
            await anyio.sleep(100)
        assert pool.stats.workers == 0
        before = anyio.current_time()
        # No deadline of the test's own here (it would be jumped to): the
        # suite's per-test timeout bounds the wait.
        await anyio.to_thread.run_sync(time.sleep, 0.05)
        elapsed = anyio.current_time() - before
    assert elapsed < 1, f"virtual time ran {elapsed:g} s ahead during a 0.05 s wait"


def test_a_loop_clock_patched_on_the_instance_is_the_idle_timers_clock() -> None:
    # Test tools with a virtual clock for asyncio (aiotools' VirtualClock)
    # patch loop.time on the loop object, not on its class.  The pool read
    # time.monotonic() then, while the idle timer's handle ran on the loop's
    # virtual time: it fired again and again until real time caught up.
    patched, plain = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        patched.time = lambda: 1234.5  # type: ignore[method-assign]
        assert _asyncio_clock(patched)() == 1234.5
        assert _asyncio_clock(plain) is time.monotonic
    finally:
        patched.close()
        plain.close()


def test_a_clock_patched_on_the_loop_after_a_first_pool_is_the_next_pools_clock() -> None:
    # asyncio only (a loop's own clock is an asyncio matter).  What a pool
    # learns of its event loop is built once per loop and reused, and a
    # virtual clock may be patched onto the loop between two pools.
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        clocks: list[float] = []
        async with Pool():
            pass
        loop.time = lambda: 1234.5  # type: ignore[method-assign]
        try:
            async with Pool() as patched:
                clocks.append(patched._clock())
        finally:
            del loop.time
        async with Pool() as after:
            clocks.append(after._clock())
        return clocks

    patched, after = asyncio.run(main())
    assert patched == 1234.5
    assert after != 1234.5
