"""Workers that run back-to-back jobs which never suspend still let other tasks run.

The pool skips a full checkpoint per job for speed; these tests guard the
promise that a stream of no-await jobs cannot starve the event loop.  They
count heartbeats of a concurrent task (each heartbeat is one checkpoint), so
no timing is involved.
"""

from __future__ import annotations

import anyio
import pytest

from helpers import no_leaks
from workpool import Pool

pytestmark = pytest.mark.anyio

JOBS = 2000


async def no_await(x: int = 1) -> int:
    return x


@pytest.mark.parametrize("job_timeout", [None, 3600], ids=["no timeout", "with job_timeout"])
@pytest.mark.parametrize("max_workers", [1, 4])
async def test_back_to_back_no_await_jobs_let_a_heartbeat_run(
    job_timeout: float | None, max_workers: int
) -> None:
    progress_seen_by_heartbeat: list[int] = []
    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(max_workers=max_workers, max_pending=None, job_timeout=job_timeout) as pool,
        ):
            for _ in range(JOBS):
                pool.submit_nowait(no_await)
            # The heartbeat is this task: one checkpoint per beat.
            while pool.stats.completed < JOBS:
                progress_seen_by_heartbeat.append(pool.stats.completed)
                await anyio.lowlevel.checkpoint()
    in_between = {c for c in progress_seen_by_heartbeat if 0 < c < JOBS}
    # Had the workers never yielded, the heartbeat would see 0 and then JOBS.
    assert len(in_between) >= 5, f"the heartbeat ran only while {sorted(in_between)} jobs were done"


async def test_a_long_map_of_ready_values_lets_a_heartbeat_run() -> None:
    beats = 0
    done = False
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg, Pool(max_workers=2) as pool:

            async def heartbeat() -> None:
                nonlocal beats
                while not done:
                    beats += 1
                    await anyio.lowlevel.checkpoint()

            tg.start_soon(heartbeat)
            await anyio.lowlevel.checkpoint()
            start = beats
            count = 0
            async for _ in pool.map(no_await, range(JOBS)):
                count += 1
            done = True
    assert count == JOBS
    assert beats - start >= 5
