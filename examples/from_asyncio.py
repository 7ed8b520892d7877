"""asyncio.create_task and aiojobs patterns, written with workpool: the programs behind docs/from-go.md.

tests/test_shutdown.py runs ``main`` on asyncio and on trio.

    python examples/from_asyncio.py          # asyncio
    python examples/from_asyncio.py trio
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import anyio.lowlevel

from workpool import Job, Pool, PoolFull


# --8<-- [start:fire_and_forget]
async def fire_and_forget() -> tuple[int, list[str]]:
    sent: list[str] = []
    failures: list[str] = []

    async def send_email(address: str) -> None:
        await anyio.lowlevel.checkpoint()
        if address.endswith("@invalid"):
            raise ValueError(f"cannot send to {address}")
        sent.append(address)

    def report(job: Job[Any], exc: Exception) -> None:
        failures.append(str(exc))  # asyncio: "Task exception was never retrieved"

    async with Pool(max_workers=10, on_error=report) as pool:
        for address in ["a@example.com", "b@invalid", "c@example.com"]:
            # asyncio: task = asyncio.create_task(send_email(address))
            #          background_tasks.add(task)
            #          task.add_done_callback(background_tasks.discard)
            pool.submit_nowait(send_email, address)
    # Every email was sent or its failure reported; no task is left behind.
    return len(sent), failures


# --8<-- [end:fire_and_forget]


# --8<-- [start:aiojobs]
async def like_aiojobs() -> tuple[int, int]:
    done: list[int] = []

    async def job(n: int) -> None:
        await anyio.sleep(0.001)
        done.append(n)

    # aiojobs: async with aiojobs.Scheduler(limit=4, pending_limit=10, wait_timeout=60) as scheduler:
    async with Pool(max_workers=4, max_pending=10, shutdown_grace=60) as pool:
        shed = 0
        for n in range(20):
            try:
                pool.submit_nowait(job, n)  # aiojobs: await scheduler.spawn(job(n)) waits instead
            except PoolFull:
                shed += 1  # 4 running + 10 pending: the rest are refused at once
    # aiojobs: leaving the block waits up to wait_timeout, then closes; so does shutdown_grace.
    return len(done), shed


# --8<-- [end:aiojobs]


async def main() -> None:
    sent, failures = await fire_and_forget()
    assert sent == 2
    assert failures == ["cannot send to b@invalid"]
    done, shed = await like_aiojobs()
    assert (done, shed) == (14, 6)
    print("all asyncio patterns ran")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
