"""`Pool.every` and `PeriodicJob`: a schedule of runs that never overlap and always stop.

Time-based tests run on virtual time on both backends (`virtual_clock.virtual_time`):
trio's autojumping MockClock and an asyncio loop whose clock jumps the same
way, so a thousand periods take milliseconds and times are asserted exactly.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from helpers import Boom, Probe, assert_stats_balanced, leaves, no_leaks, noop
from virtual_clock import virtual_time
from workpool import Job, PeriodicJob, Pool, PoolClosed, PoolFull

pytestmark = pytest.mark.anyio


class Recorder:
    """A periodic job function that records when each run started and checks runs never overlap."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.starts: list[float] = []
        self.running = False
        self.overlapped = False

    async def run(self) -> None:
        if self.running:
            self.overlapped = True
        self.running = True
        self.starts.append(anyio.current_time())
        try:
            if self.duration:
                await anyio.sleep(self.duration)
        finally:
            self.running = False


# -- the schedule ------------------------------------------------------------


@virtual_time()
async def test_a_thousand_runs_at_the_interval() -> None:
    rec = Recorder()
    with anyio.fail_after(5000):
        async with no_leaks(), Pool(name="ticks") as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run)
            await anyio.sleep(1000.5)
            assert handle.runs == 1000
            handle.cancel()
    assert [t - t0 for t in rec.starts] == [float(k) for k in range(1, 1001)]
    assert handle.stopped()
    assert pool.stats.completed == 1000
    assert_stats_balanced(pool.stats)


@virtual_time()
async def test_first_run_now_starts_at_once_then_keeps_the_interval() -> None:
    rec = Recorder()
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            t0 = anyio.current_time()
            handle = pool.every(0.25, rec.run, first_run_now=True)
            await anyio.sleep(1.1)
            handle.cancel()
    assert [t - t0 for t in rec.starts] == [0.0, 0.25, 0.5, 0.75, 1.0]


@virtual_time()
async def test_a_run_longer_than_the_interval_never_overlaps_and_missed_ticks_are_dropped() -> None:
    # Each run takes 2.5 intervals: the ticks at 2 and 3 fall inside the run
    # started at 1 and are dropped (not queued), so the next run is at 4.
    rec = Recorder(duration=2.5)
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=4) as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run)
            await anyio.sleep(100.5)
            handle.cancel()
    assert not rec.overlapped
    assert [t - t0 for t in rec.starts] == [float(k) for k in range(1, 101, 3)]
    assert len(rec.starts) == 34  # not 100: the missed ticks were not run later


@virtual_time()
async def test_a_run_that_ends_exactly_on_a_tick_is_followed_at_that_tick() -> None:
    rec = Recorder(duration=2.0)
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run)
            await anyio.sleep(7.5)
            handle.cancel()
    assert [t - t0 for t in rec.starts] == [1.0, 3.0, 5.0, 7.0]
    assert not rec.overlapped


@virtual_time()
async def test_jitter_delays_each_run_within_its_bound_without_drifting() -> None:
    rec = Recorder()
    with anyio.fail_after(1000):
        async with no_leaks(), Pool() as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run, jitter=0.25)
            await anyio.sleep(200.5)
            handle.cancel()
    offsets = [t - t0 - k for k, t in enumerate(rec.starts, start=1)]
    assert len(offsets) == 200
    assert all(0.0 <= off <= 0.25 for off in offsets), offsets
    # The jitter is real (200 draws are not all zero) and spread out.
    assert max(offsets) > 0.125
    assert len({round(off, 6) for off in offsets}) > 100


# -- stopping ------------------------------------------------------------------


@virtual_time()
async def test_handle_cancel_stops_the_schedule_and_cancels_the_run_in_progress() -> None:
    probe = Probe()
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(1.0, probe.forever, "run")
            assert not handle.stopped()
            await anyio.sleep(1.5)
            assert probe.started == ["run"]
            handle.cancel()
            await anyio.sleep(10)  # virtual: ten more ticks would have come
            assert handle.stopped()
    assert probe.started == ["run"]
    assert probe.cancelled == ["run"]
    assert handle.runs == 1
    assert pool.stats.cancelled == 1


@virtual_time()
async def test_cancel_before_the_first_run_means_no_run() -> None:
    rec = Recorder()
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(1.0, rec.run, first_run_now=True)
            handle.cancel()
            await anyio.sleep(5)
    assert rec.starts == []
    assert handle.stopped()
    assert handle.runs == 0


@virtual_time()
async def test_closing_the_pool_stops_the_schedule_and_lets_the_run_in_progress_finish() -> None:
    rec = Recorder(duration=5.0)
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run)
            await anyio.sleep(2)  # the first run started at 1 and lasts until 6
            assert rec.running
            await pool.close()
            assert anyio.current_time() - t0 == 6.0
            assert not rec.running
            assert handle.stopped()
            await anyio.sleep(10)
    assert [t - t0 for t in rec.starts] == [1.0]
    assert pool.stats.completed == 1
    assert pool.stats.cancelled == 0


@virtual_time()
async def test_leaving_the_block_stops_the_schedule() -> None:
    rec = Recorder()
    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            t0 = anyio.current_time()
            handle = pool.every(1.0, rec.run)
            await anyio.sleep(3.5)
    # The block exited at once (no waiting for a fourth tick).
    assert anyio.current_time() - t0 == 3.5
    assert len(rec.starts) == 3
    assert handle.stopped()


async def test_pool_cancel_stops_the_schedule_and_its_run() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(3600, probe.forever, "run", first_run_now=True)
            await anyio.wait_all_tasks_blocked()
            assert probe.started == ["run"]
            pool.cancel()
    assert probe.cancelled == ["run"]
    assert handle.stopped()
    assert_stats_balanced(pool.stats)


async def test_an_error_in_the_block_stops_the_schedule() -> None:
    probe = Probe()
    with anyio.fail_after(5), pytest.raises(Boom):  # noqa: PT012
        async with no_leaks(), Pool() as pool:
            handle = pool.every(3600, probe.forever, "run", first_run_now=True)
            await anyio.wait_all_tasks_blocked()
            raise Boom
    assert probe.cancelled == ["run"]
    assert handle.stopped()


@virtual_time()
async def test_every_called_by_a_job_while_the_pool_closes_still_stops() -> None:
    # Guards a fixed bug: a job could call every() while the pool was
    # closing, after close had cancelled the intake scopes, so nothing ever
    # stopped the new schedule and the pool's block never exited.  every()
    # now raises PoolClosed once the pool is closing, even in a job.
    rec = Recorder()
    outcome: list[str] = []

    async def starter(pool: Pool) -> None:
        await anyio.sleep(1)  # the body has left the block: the pool is closing
        try:
            pool.every(1.0, rec.run)
        except PoolClosed:
            outcome.append("PoolClosed")
        else:
            outcome.append("accepted")

    with anyio.move_on_after(100) as timeout:
        async with no_leaks(), Pool() as pool:
            await pool.submit(starter, pool)
    assert outcome
    assert not timeout.cancelled_caught, (
        f"the pool's block never exited: every() was {outcome[0]} and the schedule ran "
        f"{len(rec.starts)} times after the pool began closing"
    )


# -- failures follow on_error ----------------------------------------------------


class Flaky:
    """Fails on the runs whose number (from 1) is in `fail_on`."""

    def __init__(self, fail_on: set[int]) -> None:
        self.fail_on = fail_on
        self.calls = 0

    async def run(self) -> None:
        self.calls += 1
        if self.calls in self.fail_on:
            raise Boom(self.calls)


@virtual_time()
async def test_a_failing_run_under_cancel_cancels_the_pool() -> None:
    flaky = Flaky({3})
    with anyio.fail_after(100), pytest.RaisesGroup(pytest.RaisesExc(Boom, match="^3$")):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(1.0, flaky.run)
            await anyio.sleep(50)
            pytest.fail("the failure did not cancel the body")
    assert flaky.calls == 3
    assert handle.stopped()


@virtual_time()
async def test_a_failing_run_under_collect_keeps_the_schedule_and_raises_at_exit() -> None:
    flaky = Flaky({2, 4})
    with (
        anyio.fail_after(100),
        pytest.RaisesGroup(pytest.RaisesExc(Boom, match="^2$"), pytest.RaisesExc(Boom, match="^4$")),
    ):
        async with no_leaks(), Pool(on_error="collect") as pool:
            handle = pool.every(1.0, flaky.run)
            await anyio.sleep(5.5)
            handle.cancel()
    assert flaky.calls == 5
    assert pool.stats.failed == 2
    assert pool.stats.completed == 3


@virtual_time()
async def test_a_failing_run_goes_to_the_handler_and_the_schedule_goes_on() -> None:
    flaky = Flaky({1, 2})
    seen: list[tuple[Job[Any], Exception]] = []
    with anyio.fail_after(100):
        async with no_leaks(), Pool(on_error=lambda job, exc: seen.append((job, exc))) as pool:
            handle = pool.every(1.0, flaky.run)
            await anyio.sleep(4.5)
            handle.cancel()
    assert [exc.args for _, exc in seen] == [(1,), (2,)]
    assert all(job.exception() is exc for job, exc in seen)
    assert flaky.calls == 4


# -- the handle and the arguments --------------------------------------------------


def test_periodic_job_has_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        PeriodicJob()
    with pytest.raises(TypeError, match="no public constructor"):
        PeriodicJob(1.0, noop)


async def test_every_passes_positional_arguments_and_counts_runs() -> None:
    got: list[tuple[int, str]] = []
    done = anyio.Event()

    async def record(a: int, b: str) -> None:
        got.append((a, b))
        done.set()

    with anyio.fail_after(5):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(3600, record, 1, "x", first_run_now=True)
            await done.wait()
            assert handle.runs == 1
            assert "PeriodicJob" in repr(handle)
            handle.cancel()
    assert got == [(1, "x")]


@pytest.mark.parametrize("interval", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf])
async def test_every_rejects_intervals_that_are_not_positive_and_finite(interval: float) -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(ValueError, match="interval"):
            pool.every(interval, noop)


@pytest.mark.parametrize("interval", ["1", None, True, [1], 1j])
async def test_every_rejects_intervals_that_are_not_numbers(interval: Any) -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError, match="interval"):
            pool.every(interval, noop)


@pytest.mark.parametrize(
    ("jitter", "error"),
    [
        (-0.1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("0.1", TypeError),
        (True, TypeError),
    ],
)
async def test_every_rejects_bad_jitter(jitter: Any, error: type[Exception]) -> None:
    async with no_leaks(), Pool() as pool:
        with pytest.raises(error, match="jitter"):
            pool.every(1.0, noop, jitter=jitter)


async def test_every_rejects_a_sync_function_and_a_bad_first_run_now() -> None:
    def sync() -> None:
        pass

    async with no_leaks(), Pool() as pool:
        with pytest.raises(TypeError, match="async function"):
            pool.every(1.0, sync)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="first_run_now"):
            pool.every(1.0, noop, first_run_now=1)  # type: ignore[arg-type]
    assert pool.stats.submitted == 0


async def test_every_needs_an_open_pool() -> None:
    pool = Pool()
    with pytest.raises(RuntimeError, match="open pool"):
        pool.every(1.0, noop)
    async with no_leaks(), pool:
        await pool.close()
        with pytest.raises(PoolClosed):
            pool.every(1.0, noop)
    with pytest.raises(PoolClosed):
        pool.every(1.0, noop)


async def test_every_after_cancel_is_pool_closed() -> None:
    async with no_leaks(), Pool() as pool:
        pool.cancel()
        with pytest.raises(PoolClosed):
            pool.every(1.0, noop)


async def test_failure_is_reported_through_the_group_precisely() -> None:
    # A run that fails at once, under the default policy: one Boom, no
    # cancellation in the group, and the schedule task is gone.
    async def fail() -> None:
        raise Boom("periodic")

    with anyio.fail_after(5), pytest.RaisesGroup(Boom) as info:
        async with no_leaks(), Pool() as pool:
            pool.every(3600, fail, first_run_now=True)
            await anyio.sleep_forever()
    assert [str(e) for e in leaves(info.value)] == ["periodic"]


async def test_cancel_reaches_the_run_in_progress_while_the_pool_closes() -> None:
    # close() ends the schedule but lets the run in progress finish; the
    # handle's cancel() must still cancel that run ("and cancel the run in
    # progress, if any"), so that a shutdown need not wait for it.
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool() as pool:
            handle = pool.every(3600, probe.block, "run", first_run_now=True)
            await anyio.wait_all_tasks_blocked()
            assert probe.started == ["run"]
            tg.start_soon(pool.close)
            await anyio.wait_all_tasks_blocked()
            handle.cancel()
            await anyio.wait_all_tasks_blocked()
            cancelled = list(probe.cancelled)
            probe.release.set()  # so that the block exits either way
    assert cancelled == ["run"]
    assert handle.stopped()
    assert repr(handle) == "<workpool.PeriodicJob stopped runs=1>"


@virtual_time()
async def test_no_run_starts_after_cancel_when_its_tick_came_in_the_same_step() -> None:
    # The schedule's task woken for a tick, and cancel() called before it
    # runs (here: by a task woken by the same deadline): the run of that tick
    # must not start after cancel() returned.  anyio delivers a cancellation
    # to a task that is already woken only at its next checkpoint.  On
    # asyncio this test's timer, set first, fires first, so every round sets
    # it up (the test failed there without the fix); trio runs the two tasks
    # in either order, and 20 rounds set it up with near certainty.
    for _ in range(20):
        with anyio.fail_after(100):
            async with no_leaks(), Pool() as pool:
                handle = pool.every(10, noop)
                await anyio.sleep_until(anyio.current_time() + 10)  # the first tick's deadline
                runs = handle.runs
                handle.cancel()
        assert handle.runs == runs


@virtual_time()
async def test_an_interval_below_the_clocks_resolution_runs_back_to_back() -> None:
    # A subnormal interval is positive and finite, so it is accepted; working
    # out the next tick after a run that took a second must not overflow
    # (an OverflowError would escape the schedule and crash the pool).
    async def one_second() -> None:
        await anyio.sleep(1)

    with anyio.fail_after(100):
        async with no_leaks(), Pool() as pool:
            handle = pool.every(5e-324, one_second)
            await anyio.sleep(2.5)
            handle.cancel()
    assert handle.runs == 3
    assert pool.stats.completed == 2
    assert pool.stats.cancelled == 1


async def test_a_run_is_accepted_over_the_bound_one_per_schedule() -> None:
    # Documented: a run does not wait for room, so a full pool holds one job
    # beyond max_workers + max_pending per schedule, and no more.
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=0) as pool:
            await pool.submit(probe.block, "blocker")
            await anyio.wait_all_tasks_blocked()
            handle = pool.every(3600, noop, first_run_now=True)
            await anyio.wait_all_tasks_blocked()
            assert (pool.stats.busy, pool.stats.queued) == (1, 1)
            with pytest.raises(PoolFull):
                pool.submit_nowait(noop)
            handle.cancel()
            probe.release.set()
    assert handle.runs == 1
