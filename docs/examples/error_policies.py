# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""The three error policies: "cancel", "collect", and a handler callable."""

from __future__ import annotations

import sys
from typing import Any

import anyio

from workpool import Job, JobCancelled, Pool

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup  # installed with anyio on Python 3.10


async def check(n: int) -> int:
    await anyio.sleep(0.001)
    if n % 4 == 3:
        raise ValueError(f"bad item {n}")
    return n


async def wait_forever() -> None:
    await anyio.sleep_forever()


# --8<-- [start:cancel]
async def cancel_policy() -> None:
    errors: list[str] = []
    try:
        async with Pool(max_workers=4) as pool:  # on_error="cancel" is the default
            slow = await pool.submit(wait_forever)
            await pool.submit(check, 3)
            await anyio.sleep_forever()  # the failure cancels this body too
    except ExceptionGroup as group:
        errors = [str(exc) for exc in group.exceptions]
    # Only the failure, never the cancellations it caused.
    assert errors == ["bad item 3"]
    assert slow.cancelled()


# --8<-- [end:cancel]


# --8<-- [start:collect]
async def collect_policy() -> None:
    errors: list[str] = []
    try:
        async with Pool(max_workers=4, on_error="collect") as pool:
            jobs = [await pool.submit(check, n) for n in range(8)]
    except ExceptionGroup as group:
        errors = sorted(str(exc) for exc in group.exceptions)
    # Every job ran; the failures were raised together when the block exited.
    assert errors == ["bad item 3", "bad item 7"]
    assert [job.result() for job in jobs if job.exception() is None] == [0, 1, 2, 4, 5, 6]


# --8<-- [end:collect]


# --8<-- [start:handler]
async def handler_policy() -> None:
    failures: list[str] = []

    def report(job: Job[Any], exc: Exception) -> None:
        failures.append(str(exc))  # log it, count it, send it to Sentry...

    # A service that must keep going: failures are reported, nothing is raised.
    async with Pool(max_workers=4, on_error=report) as pool:
        job = await pool.submit(check, 7)
        try:
            await job  # whoever awaits the job still gets its exception
        except ValueError as exc:
            print(f"awaiting the job raised {exc!r}")
        results = [n async for n in pool.map(check, [0, 1, 2])]
    assert results == [0, 1, 2]
    assert failures == ["bad item 7"]


# --8<-- [end:handler]


async def cancelled_job_is_not_a_failure() -> None:
    async with Pool(max_workers=1) as pool:
        job = await pool.submit(wait_forever)
        job.cancel()
        try:
            await job
        except JobCancelled:
            pass
    assert pool.stats.failed == 0
    assert pool.stats.cancelled == 1


async def main() -> None:
    await cancel_policy()
    await collect_policy()
    await handler_policy()
    await cancelled_job_is_not_a_failure()
    print("error policies ok")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
