# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""Backpressure: `submit` waits for room, `submit_nowait` refuses with `PoolFull`."""

from __future__ import annotations

import sys

import anyio

from workpool import Pool, PoolFull


# --8<-- [start:nowait]
async def handle(event: str, release: anyio.Event) -> str:
    await release.wait()
    return event.upper()


async def nowait_demo() -> None:
    release = anyio.Event()
    # Room for 2 running + 1 queued job: three accepted jobs fill the pool.
    async with Pool(max_workers=2, max_pending=1) as pool:
        jobs = [pool.submit_nowait(handle, name, release) for name in ("a", "b", "c")]
        try:
            pool.submit_nowait(handle, "d", release)
        except PoolFull:
            print("pool full: 'd' was refused (shed load, answer 503, retry later...)")
        else:
            raise AssertionError("expected PoolFull")
        release.set()
        assert [await job for job in jobs] == ["A", "B", "C"]


# --8<-- [end:nowait]


# --8<-- [start:submit]
async def producer_waits() -> None:
    done: list[int] = []

    async def work(n: int) -> None:
        await anyio.sleep(0.001)
        done.append(n)

    async with Pool(max_workers=2, max_pending=3) as pool:
        for n in range(20):
            # Returns once the job is accepted.  With 2 running and 3 queued,
            # it waits here until a job finishes: the producer can never get
            # more than 5 jobs ahead of the workers.
            await pool.submit(work, n)
            assert pool.stats.busy + pool.stats.queued <= 5
    assert sorted(done) == list(range(20))


# --8<-- [end:submit]


# --8<-- [start:rendezvous]
async def rendezvous() -> None:
    log: list[str] = []

    async def step(n: int) -> None:
        log.append(f"run {n}")
        await anyio.sleep(0.001)

    # max_pending=0 is an unbuffered channel: a job is accepted only when a
    # worker is free to start it, so each submit() waits for the previous job.
    async with Pool(max_workers=1, max_pending=0) as pool:
        for n in range(3):
            await pool.submit(step, n)
            log.append(f"accepted {n}")
    for n in range(2):
        assert log.index(f"run {n}") < log.index(f"accepted {n + 1}")


# --8<-- [end:rendezvous]


async def main() -> None:
    await nowait_demo()
    await producer_waits()
    await rendezvous()
    print("backpressure ok")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
