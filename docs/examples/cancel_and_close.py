# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""Stopping work: `Job.cancel`, `Pool.close`, `Pool.cancel` and cancelling the enclosing scope."""

from __future__ import annotations

import sys

import anyio

from workpool import JobCancelled, Pool, PoolClosed


async def wait_forever() -> None:
    await anyio.sleep_forever()


async def quick(n: int) -> int:
    await anyio.sleep(0.001)
    return n


# --8<-- [start:job_cancel]
async def cancel_one_job() -> None:
    async with Pool(max_workers=2) as pool:
        job = await pool.submit(wait_forever)
        job.cancel()  # never blocks; the job gets a cancellation at its next await
        try:
            await job
        except JobCancelled:
            print("the job was cancelled; the pool goes on")
        assert await (await pool.submit(quick, 1)) == 1


# --8<-- [end:job_cancel]


# --8<-- [start:close]
async def close_then_drain() -> None:
    async with Pool(max_workers=2) as pool:
        jobs = [await pool.submit(quick, n) for n in range(10)]
        await pool.close()  # stop intake, run what was accepted, wait for the workers
        assert all(job.done() for job in jobs)
        assert pool.stats.workers == 0
        try:
            await pool.submit(quick, 10)
        except PoolClosed:
            print("closed: new jobs are refused")
        else:
            raise AssertionError("expected PoolClosed")


# --8<-- [end:close]


# --8<-- [start:pool_cancel]
async def cancel_everything() -> None:
    async with Pool(max_workers=2) as pool:
        jobs = [await pool.submit(wait_forever) for _ in range(5)]
        await anyio.wait_all_tasks_blocked()  # let the workers start two of them
        pool.cancel()  # like Go's cancel(): stops running and queued jobs alike
        await anyio.sleep_forever()  # the body is cancelled too...
    # ...and the block exits quietly: cancelling a pool is not an error.
    assert all(job.cancelled() for job in jobs)
    assert pool.stats.cancelled == 5


# --8<-- [end:pool_cancel]


# --8<-- [start:outer_cancel]
async def cancel_from_outside() -> None:
    with anyio.CancelScope() as scope:
        async with Pool(max_workers=2) as pool:
            jobs = [await pool.submit(wait_forever) for _ in range(3)]
            scope.cancel()  # a timeout, a shutdown signal, an enclosing task group...
            await anyio.sleep_forever()
    assert all(job.cancelled() for job in jobs)


# --8<-- [end:outer_cancel]


# --8<-- [start:body_raises]
async def body_raises() -> None:
    try:
        async with Pool(max_workers=1) as pool:
            jobs = [await pool.submit(wait_forever) for _ in range(3)]
            raise KeyError("config")  # any exception leaving the block cancels the pool
    except KeyError:
        pass  # the block's own exception propagates as it was, not wrapped in a group
    else:
        raise AssertionError("expected KeyError")
    assert all(job.cancelled() for job in jobs)


# --8<-- [end:body_raises]


async def main() -> None:
    await cancel_one_job()
    await close_then_drain()
    await cancel_everything()
    await cancel_from_outside()
    await body_raises()
    print("cancellation ok")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
