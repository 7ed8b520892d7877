"""Go's concurrency idioms, written with workpool: the programs behind docs/from-go.md.

Each function is one idiom, self-checking; ``main`` runs them all.
tests/test_shutdown.py runs ``main`` on asyncio and on trio.

    python examples/from_go.py          # asyncio
    python examples/from_go.py trio
"""

from __future__ import annotations

import sys

import anyio
import anyio.lowlevel

from workpool import Pool, ticker

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup  # installed with anyio on Python 3.10


# --8<-- [start:with_cancel]
async def with_cancel() -> list[int]:
    cancelled: list[int] = []

    async def worker(n: int) -> None:
        try:
            await anyio.sleep_forever()  # Go: for { select { case <-ctx.Done(): return ... } }
        except anyio.get_cancelled_exc_class():
            cancelled.append(n)  # clean up here, then let the cancellation go on
            raise

    async with Pool(max_workers=10) as pool:  # Go: ctx, cancel := context.WithCancel(...)
        for n in range(10):
            await pool.submit(worker, n)  # Go: wg.Add(1); go worker(ctx, n)
        await anyio.wait_all_tasks_blocked()
        pool.cancel()  # Go: cancel()
    # Go: wg.Wait() -- leaving the block waited for every worker
    return sorted(cancelled)


# --8<-- [end:with_cancel]


# --8<-- [start:select_done]
async def select_done() -> str:
    send, receive = anyio.create_memory_object_stream[str](1)

    async def wait_for_message() -> str:
        # Go: select { case msg := <-ch: ...; case <-ctx.Done(): return ctx.Err() }
        # Every await is already that select: a cancellation ends it.
        with send, receive:
            return await receive.receive()

    async with Pool() as pool:
        job = await pool.submit(wait_for_message)
        with anyio.move_on_after(0.01):  # Go: context.WithTimeout(ctx, 10*time.Millisecond)
            await job
        if not job.done():
            job.cancel()  # the caller gave up: stop the job too
    return "cancelled" if job.cancelled() else job.result()


# --8<-- [end:select_done]


# --8<-- [start:waitgroup]
async def waitgroup() -> int:
    done: list[int] = []

    async def work(n: int) -> None:
        await anyio.lowlevel.checkpoint()
        done.append(n)

    async with Pool(max_workers=4) as pool:
        for n in range(100):
            await pool.submit(work, n)  # Go: wg.Add(1); go func() { defer wg.Done(); work(n) }()
        await pool.close()  # Go: wg.Wait() -- or just leave the block
    return len(done)


# --8<-- [end:waitgroup]


# --8<-- [start:errgroup]
async def errgroup() -> list[str]:
    started: list[int] = []

    async def fetch(n: int) -> int:
        started.append(n)
        await anyio.sleep(0.001 * n)
        if n == 3:
            raise ConnectionError(f"fetch {n} failed")
        return n

    try:
        # Go: g, ctx := errgroup.WithContext(ctx); g.SetLimit(4)
        async with Pool(max_workers=4) as pool:
            for n in range(20):
                await pool.submit(fetch, n)  # Go: g.Go(func() error { return fetch(ctx, n) })
        # Go: if err := g.Wait(); err != nil { ... }
    except ExceptionGroup as group:  # the failures, without the cancellations they caused
        errors = [str(exc) for exc in group.exceptions]
    assert len(started) < 20  # the failure cancelled the rest, as errgroup's ctx does
    return errors


# --8<-- [end:errgroup]


# --8<-- [start:ticker]
async def time_ticker() -> tuple[int, int]:
    # Go: t := time.NewTicker(d); defer t.Stop(); for range t.C { ... }
    ticks = 0
    async for _ in ticker(0.001):
        ticks += 1
        if ticks == 3:
            break  # leaving the loop is stopping the ticker: there is nothing to Stop()

    # A ticker that runs in the background: a periodic job of a pool.
    runs = 0
    third_run = anyio.Event()

    async def refresh() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third_run.set()

    async with Pool() as pool:
        refresher = pool.every(0.001, refresh, first_run_now=True)
        await third_run.wait()
    # The pool closed, so the periodic job has stopped.
    assert refresher.stopped()
    return ticks, runs


# --8<-- [end:ticker]


async def main() -> None:
    assert await with_cancel() == list(range(10))
    assert await select_done() == "cancelled"
    assert await waitgroup() == 100
    assert await errgroup() == ["fetch 3 failed"]
    ticks, runs = await time_ticker()
    assert ticks == 3
    assert runs >= 3
    print("all Go idioms ran")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
