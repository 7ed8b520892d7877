# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""`Pool.stats`: an immutable snapshot of the pool's gauges and counters."""

from __future__ import annotations

import sys

import anyio

from workpool import Pool


async def flaky(n: int) -> int:
    await anyio.sleep(0.001)
    if n == 3:
        raise ValueError(n)
    return n


# --8<-- [start:stats]
async def main() -> None:
    gate = anyio.Event()
    async with Pool(max_workers=2, on_error=lambda job, exc: None) as pool:
        assert pool.stats.workers == 0  # workers start on demand
        blocked = [await pool.submit(gate.wait) for _ in range(3)]
        await anyio.wait_all_tasks_blocked()  # let the workers pick up two of the three
        snapshot = pool.stats
        print(snapshot)  # PoolStats(workers=2, busy=2, queued=1, submitted=3, ...)
        assert snapshot.busy + snapshot.queued == 3
        gate.set()
        for job in blocked:
            await job
        for n in range(5):
            await pool.submit(flaky, n)
    final = pool.stats
    print(final)
    # Every accepted job ends exactly one way.
    assert final.submitted == final.completed + final.failed + final.cancelled == 8
    assert (final.completed, final.failed, final.cancelled) == (7, 1, 0)
    assert (final.workers, final.busy, final.queued) == (0, 0, 0)


# --8<-- [end:stats]


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
