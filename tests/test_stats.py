"""PoolStats: an immutable snapshot whose counters always add up."""

from __future__ import annotations

import anyio
import attrs
import pytest

from helpers import Boom, Probe, assert_stats_balanced, identity, no_leaks
from workpool import Pool, PoolFull, PoolStats

pytestmark = pytest.mark.anyio


async def test_counters_add_up_after_a_mixed_run() -> None:
    probe = Probe()

    async def fail() -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom

    with anyio.fail_after(5), pytest.RaisesGroup(Boom, Boom):
        async with no_leaks(), Pool(max_workers=2, on_error="collect") as pool:
            ok = [await pool.submit(identity, i) for i in range(5)]
            bad = [await pool.submit(fail) for _ in range(2)]
            running = await pool.submit(probe.forever, "running")
            await anyio.wait_all_tasks_blocked()
            blocker = await pool.submit(probe.block, "blocker")
            queued = [await pool.submit(identity, i) for i in range(3)]
            await anyio.wait_all_tasks_blocked()
            stats = pool.stats
            assert (stats.workers, stats.busy, stats.queued) == (2, 2, 3)
            assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (12, 5, 2, 0)
            for job in queued:
                job.cancel()
            running.cancel()
            probe.release.set()
            await blocker
    assert all(job.done() for job in ok + bad + queued + [running, blocker])
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (12, 6, 2, 4)
    assert_stats_balanced(stats)


async def test_queued_and_busy_count_right_while_cancelled_jobs_wait_in_the_queue() -> None:
    # A job cancelled while queued stays in the queue until a worker meets
    # it: the counters must not see it as queued (nor as running) meanwhile.
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, max_pending=4) as pool:
            await pool.submit(probe.block, "blocker")
            queued = [await pool.submit(identity, i) for i in range(4)]
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(PoolFull):
                pool.submit_nowait(identity, "over the bound")
            queued[0].cancel()
            queued[2].cancel()
            stats = pool.stats
            assert (stats.busy, stats.queued, stats.cancelled, stats.submitted) == (1, 2, 2, 5)
            # Two slots were freed: two more jobs fit, a third does not.
            late = [pool.submit_nowait(identity, i) for i in (10, 11)]
            with pytest.raises(PoolFull):
                pool.submit_nowait(identity, "over the bound")
            assert pool.stats.queued == 4
            probe.release.set()
            assert [await job for job in (queued[1], queued[3], *late)] == [1, 3, 10, 11]
            assert (pool.stats.busy, pool.stats.queued) == (0, 0)
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (7, 5, 0, 2)
    assert_stats_balanced(stats)


async def test_counters_add_up_after_pool_cancel() -> None:
    probe = Probe()
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3, max_pending=None) as pool:
            for i in range(10):
                pool.submit_nowait(probe.forever, i)
            for i in range(5):
                pool.submit_nowait(identity, i)
            await anyio.wait_all_tasks_blocked()
            pool.cancel()
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (15, 0, 0, 15)
    assert_stats_balanced(stats)


async def test_stats_is_an_immutable_snapshot() -> None:
    async with no_leaks(), Pool() as pool:
        before = pool.stats
        await (await pool.submit(identity, 1))
        after = pool.stats
    assert before.submitted == 0
    assert after.submitted == 1
    assert isinstance(before, PoolStats)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.submitted = 5  # type: ignore[misc]
    assert attrs.fields_dict(PoolStats).keys() == {
        "workers",
        "busy",
        "queued",
        "submitted",
        "completed",
        "failed",
        "cancelled",
        "retries",
        "stalled",
    }
