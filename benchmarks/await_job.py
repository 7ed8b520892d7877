"""What ``await job`` costs on a job that has already finished, beside the waits it compares with.

    python benchmarks/await_job.py [--awaits 100000] [--rounds 5] [--backend both]

The round trips run a tenth as many times as ``--awaits``.

Collecting results with ``[await job for job in jobs]`` mostly awaits jobs
that have already finished.  Such an await is still a checkpoint (a
cancellation point and a schedule point, so that the loop cannot starve other
tasks), as awaiting a set ``anyio.Event`` is; ``asyncio.Task`` makes no such
promise and returns at once.  The cases, per backend, each awaited
``--awaits`` times in a row in a fresh event loop:

* ``workpool await job``: a finished `workpool.Job`;
* ``anyio Event.wait (set)``: the same promise, and the reference of the ratios;
* ``anyio checkpoint``: ``anyio.lowlevel.checkpoint()``;
* asyncio only: ``asyncio.sleep(0)`` (a schedule point, which is what anyio
  checkpoints with there) and ``await task`` on a finished ``asyncio.Task``
  (no checkpoint at all).

A second table times a round trip, one job at a time: submit a no-op job and
await it, as a request handler that hands work to a pool does.  The worker
parks after every job, so this is also what parking and waking a worker
costs.  Against it:

* ``anyio stream worker``: the hand-written anyio pattern, a long-lived
  worker task that receives the job on one memory object stream and sends
  the reply on another (the reference of that table's ratios);
* asyncio only: ``asyncio.create_task`` and ``await`` the task.

Rounds interleave the cases in a shuffled order; the tables give the median
CPU µs per await (or round trip) and the median of the per-round ratios to
the reference of the same backend and round.  Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

from workpool import Pool

REFERENCE = "anyio Event.wait (set)"


async def _noop() -> None:
    pass


Case = Callable[[int], Awaitable[float]]


async def _await_jobs(n: int) -> float:
    # One worker runs the jobs in order: once the last has finished, all have.
    async with Pool(max_workers=1, max_pending=None) as pool:
        jobs = [pool.submit_nowait(_noop) for _ in range(n)]
        await jobs[-1]
        start = time.process_time()
        for job in jobs:
            await job
        return time.process_time() - start


async def _await_set_event(n: int) -> float:
    event = anyio.Event()
    event.set()
    start = time.process_time()
    for _ in range(n):
        await event.wait()
    return time.process_time() - start


async def _checkpoint(n: int) -> float:
    checkpoint = anyio.lowlevel.checkpoint
    start = time.process_time()
    for _ in range(n):
        await checkpoint()
    return time.process_time() - start


async def _asyncio_sleep0(n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.process_time() - start


async def _await_done_tasks(n: int) -> float:
    tasks = [asyncio.create_task(_noop()) for _ in range(n)]
    await asyncio.gather(*tasks)
    start = time.process_time()
    for task in tasks:
        await task
    return time.process_time() - start


# anyio.sleep(0), as benchmarks/_workloads.py: what user code writes.
async def _sleep0() -> None:
    await anyio.sleep(0)  # noqa: ASYNC115


def _round_trips(job: Callable[[], Awaitable[None]]) -> Case:
    async def round_trips(n: int) -> float:
        async with Pool(max_workers=1) as pool:
            await (await pool.submit(job))  # the worker exists, and parks
            start = time.process_time()
            for _ in range(n):
                await (await pool.submit(job))
            return time.process_time() - start

    return round_trips


def _stream_round_trips(job: Callable[[], Awaitable[None]]) -> Case:
    async def stream_round_trips(n: int) -> float:
        jobs_send, jobs_receive = anyio.create_memory_object_stream[Callable[[], Awaitable[None]]]()
        replies_send, replies_receive = anyio.create_memory_object_stream[None]()

        async def worker() -> None:
            async with replies_send, jobs_receive:
                async for job in jobs_receive:
                    await job()
                    await replies_send.send(None)

        with replies_receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker)
                async with jobs_send:
                    start = time.process_time()
                    for _ in range(n):
                        await jobs_send.send(job)
                        await replies_receive.receive()
                    return time.process_time() - start

    return stream_round_trips


async def _task_round_trips(n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await asyncio.create_task(_noop())
    return time.process_time() - start


TRIP_REFERENCE = "anyio stream worker"
SLEEP0 = ", job awaits sleep(0)"
TRIPS: dict[str, dict[str, Case]] = {
    backend: {
        "workpool submit + await": _round_trips(_noop),
        TRIP_REFERENCE: _stream_round_trips(_noop),
        "workpool submit + await" + SLEEP0: _round_trips(_sleep0),
        TRIP_REFERENCE + SLEEP0: _stream_round_trips(_sleep0),
    }
    for backend in ("asyncio", "trio")
}
TRIPS["asyncio"]["asyncio.create_task + await"] = _task_round_trips
CASES: dict[str, dict[str, Case]] = {
    "asyncio": {
        "workpool await job": _await_jobs,
        REFERENCE: _await_set_event,
        "anyio checkpoint": _checkpoint,
        "asyncio.sleep(0)": _asyncio_sleep0,
        "await a done asyncio.Task": _await_done_tasks,
    },
    "trio": {
        "workpool await job": _await_jobs,
        REFERENCE: _await_set_event,
        "anyio checkpoint": _checkpoint,
    },
}


def _time(backend: str, case: Case, n: int) -> float:
    gc.collect()

    async def main() -> float:
        return await case(n)

    seconds: float = anyio.run(main, backend=backend)
    return seconds / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--awaits", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("asyncio", "trio", "both"), default="both")
    args = parser.parse_args()
    if args.awaits < 1 or args.rounds < 1:
        parser.error("--awaits and --rounds must be at least 1")
    backends = ("asyncio", "trio") if args.backend == "both" else (args.backend,)
    trips = max(1, args.awaits // 10)
    runs = [
        (table, backend, name)
        for table in ("awaits", "trips")
        for backend in backends
        for name in _cases(table, backend)
    ]
    us: dict[tuple[str, str, str], list[float]] = {run: [] for run in runs}
    for _ in range(args.rounds):
        random.shuffle(runs)
        for table, backend, name in runs:
            n = args.awaits if table == "awaits" else trips
            us[table, backend, name].append(_time(backend, _cases(table, backend)[name], n))
    print(
        f"`python benchmarks/await_job.py --awaits {args.awaits} --rounds {args.rounds}` (CPU µs, medians)\n"
    )
    for table, what, reference in (
        ("awaits", "await, on a finished job", REFERENCE),
        ("trips", f"round trip ({trips} in a row)", f"{TRIP_REFERENCE} with the same job"),
    ):
        print(f"| backend | {what} | µs | ratio to {reference} |")
        print("|---|---|---:|---:|")
        for backend in backends:
            for name in _cases(table, backend):
                times = us[table, backend, name]
                reference_us = us[table, backend, _reference(table, name)]
                ratio = statistics.median(t / r for t, r in zip(times, reference_us, strict=True))
                print(f"| {backend} | {name} | {statistics.median(times):.2f} | {ratio:.2f}x |")
        print()


def _reference(table: str, name: str) -> str:
    if table == "awaits":
        return REFERENCE
    if name.endswith(SLEEP0):
        return TRIP_REFERENCE + SLEEP0
    return TRIP_REFERENCE


def _cases(table: str, backend: str) -> dict[str, Case]:
    return (CASES if table == "awaits" else TRIPS)[backend]


if __name__ == "__main__":
    main()
