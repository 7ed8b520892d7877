"""Time thread jobs: workpool's ThreadPool and run_in_thread against the standard ways.

    python benchmarks/threads.py                  # 20k jobs, 100 threads, 5 rounds
    python benchmarks/threads.py --jobs 50000 --rounds 7 --backend both

Each job is a small synchronous function (``def job(): pass``) run in a
thread, so what is timed is the machinery: queueing, waking a thread, and
reporting the outcome.  Implementations:

- ``ThreadPoolExecutor``: ``concurrent.futures.ThreadPoolExecutor(100)``, one
  ``submit`` per job, the ``with`` exit waits.  **The reference.**
- ``ThreadPool``: ``workpool.ThreadPool(max_workers=100, max_pending=1000)``,
  so the producer blocks when 1,100 jobs are in, the same loop.
- ``ThreadPool-unbounded``: the same with ``max_pending=None`` (an unbounded
  queue, like the executor's).
- ``to_thread``: async code, ``anyio.to_thread.run_sync(job, limiter=...)`` in
  a task per job, in a task group, with a ``CapacityLimiter(100)``.
- ``Pool+run_in_thread``: async code,
  ``workpool.Pool(max_workers=100, max_pending=1000)`` and
  ``await pool.submit(run_in_thread, job)`` per job.

Everything runs in one process, in interleaved rounds: each round runs every
case once, in a freshly shuffled order, after a ``gc.collect()``.  A case's
ratio is taken against the ThreadPoolExecutor run of the same round, and the
table shows medians.  Times are wall-clock (threads run in parallel, so the
process CPU time would add theirs up); the CPU column is for reference.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import anyio
import anyio.to_thread

from workpool import Pool, ThreadPool, run_in_thread

REFERENCE = "ThreadPoolExecutor"


def job() -> None:
    pass


def with_executor(n: int, workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as executor:
        for _ in range(n):
            executor.submit(job)


def with_thread_pool(n: int, workers: int, pending: int | None) -> None:
    with ThreadPool(max_workers=workers, max_pending=pending) as pool:
        for _ in range(n):
            pool.submit(job)


async def _to_thread(n: int, workers: int) -> None:
    limiter = anyio.CapacityLimiter(workers)
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(partial(anyio.to_thread.run_sync, job, limiter=limiter))


async def _pool_run_in_thread(n: int, workers: int) -> None:
    async with Pool(max_workers=workers, max_pending=1000) as pool:
        for _ in range(n):
            await pool.submit(run_in_thread, job)


def cases(backends: list[str]) -> dict[str, Callable[[int, int], None]]:
    found: dict[str, Callable[[int, int], None]] = {
        REFERENCE: with_executor,
        "ThreadPool": partial(with_thread_pool, pending=1000),
        "ThreadPool-unbounded": partial(with_thread_pool, pending=None),
    }
    for backend in backends:
        found[f"to_thread ({backend})"] = partial(_run_async, _to_thread, backend)
        found[f"Pool+run_in_thread ({backend})"] = partial(_run_async, _pool_run_in_thread, backend)
    return found


def _run_async(fn: Callable[[int, int], object], backend: str, n: int, workers: int) -> None:
    anyio.run(fn, n, workers, backend=backend)  # type: ignore[arg-type]


def measure(fn: Callable[[int, int], None], n: int, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn(n, workers)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    table = cases(backends)
    rng = random.Random(args.seed)

    for fn in table.values():  # warm-up: imports, thread caches, code paths
        measure(fn, 500, args.workers)

    wall: dict[str, list[float]] = {name: [] for name in table}
    cpu: dict[str, list[float]] = {name: [] for name in table}
    ratios: dict[str, list[float]] = {name: [] for name in table}
    for round_ in range(args.rounds):
        order = list(table)
        rng.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            seconds, cpu_seconds = measure(table[name], args.jobs, args.workers)
            this_round[name] = seconds
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        for name, seconds in this_round.items():
            ratios[name].append(seconds / this_round[REFERENCE])
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    print(
        f"\n{args.jobs:,} jobs (`def job(): pass`), {args.workers} threads, "
        f"{args.rounds} interleaved rounds, medians; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()}\n"
    )
    print("| implementation | wall µs/job | CPU µs/job | ratio to ThreadPoolExecutor |")
    print("|---|---:|---:|---:|")
    for name in table:
        us = statistics.median(wall[name]) / args.jobs * 1e6
        cpu_us = statistics.median(cpu[name]) / args.jobs * 1e6
        print(f"| {name} | {us:.1f} | {cpu_us:.1f} | {statistics.median(ratios[name]):.2f}x |")


if __name__ == "__main__":
    main()
