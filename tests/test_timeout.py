"""job_timeout: a job that runs too long fails with TimeoutError.

The tests where the timeout fires run on trio only, with a MockClock
(``autojump_threshold=0``): virtual time jumps to the next deadline as soon as
every task is blocked, so a "ten second" job takes microseconds and no test
depends on the wall clock.  asyncio has no virtual clock in anyio, so it only
runs the tests where the timeout must not fire, with a deadline of an hour.
"""

from __future__ import annotations

import anyio
import pytest

from helpers import Probe, assert_stats_balanced, no_leaks
from workpool import Job, JobCancelled, Pool

pytestmark = pytest.mark.anyio

mock_clock_only = pytest.mark.parametrize("anyio_backend", ["trio-mockclock"], indirect=True)


async def sleeper(seconds: float) -> float:
    await anyio.sleep(seconds)
    return seconds


@mock_clock_only
async def test_job_timeout_fails_the_job_with_timeout_error() -> None:
    probe = Probe()
    start = anyio.current_time()
    with pytest.RaisesGroup(TimeoutError) as caught:
        async with no_leaks(), Pool(max_workers=2, job_timeout=1) as pool:
            slow = await pool.submit(probe.forever, "slow")
            await anyio.sleep(0.5)  # so that the two deadlines differ
            other = await pool.submit(probe.forever, "other")
            await anyio.sleep_forever()
    (timeout,) = caught.value.exceptions
    assert slow.exception() is timeout
    assert probe.cancelled == ["slow", "other"]  # the timeout's, then the pool's
    assert other.cancelled()
    assert pool.stats.failed == 1
    assert pool.stats.cancelled == 1
    assert_stats_balanced(pool.stats)
    assert anyio.current_time() - start == pytest.approx(1)


@mock_clock_only
async def test_job_timeout_counts_per_job_from_its_start() -> None:
    # One worker, four jobs of 0.75 s: 3 s in all, each within its 1 s.
    async with no_leaks(), Pool(max_workers=1, job_timeout=1) as pool:
        jobs = [await pool.submit(sleeper, 0.75) for _ in range(4)]
    assert [job.result() for job in jobs] == [0.75] * 4
    assert pool.stats.failed == 0


@mock_clock_only
async def test_job_timeout_goes_through_the_error_policy() -> None:
    seen: list[BaseException] = []

    def handler(job: Job[object], exc: Exception) -> None:
        seen.append(exc)

    async with no_leaks(), Pool(job_timeout=2, on_error=handler) as pool:
        slow = await pool.submit(sleeper, 10)
        fast = await pool.submit(sleeper, 1)
        with pytest.raises(TimeoutError):
            await slow
        assert await fast == 1
    assert len(seen) == 1
    assert isinstance(seen[0], TimeoutError)
    assert pool.stats.failed == 1
    assert pool.stats.completed == 1


@mock_clock_only
async def test_collect_policy_with_job_timeout() -> None:
    with pytest.RaisesGroup(TimeoutError, TimeoutError):
        async with no_leaks(), Pool(max_workers=3, job_timeout=5, on_error="collect") as pool:
            for seconds in (1, 10, 4, 60):
                await pool.submit(sleeper, seconds)
    assert pool.stats.completed == 2
    assert pool.stats.failed == 2


@mock_clock_only
async def test_cancelling_a_job_with_a_timeout_is_not_a_timeout() -> None:
    probe = Probe()
    async with no_leaks(), Pool(job_timeout=10) as pool:
        job = await pool.submit(probe.forever, "x")
        await anyio.sleep(1)
        job.cancel()
        with pytest.raises(JobCancelled):
            await job
    assert pool.stats.failed == 0
    assert pool.stats.cancelled == 1


async def test_a_generous_job_timeout_never_fires() -> None:
    # Both backends, wall clock: the deadline (an hour) cannot be reached.
    async def steps(n: int) -> int:
        for _ in range(n):
            await anyio.lowlevel.checkpoint()
        return n

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2, job_timeout=3600) as pool:
            jobs = [await pool.submit(steps, n) for n in range(10)]
    assert [job.result() for job in jobs] == list(range(10))
    assert pool.stats.failed == 0
