"""Memory cost of a pool: per idle worker and per queued job (tracemalloc).

    python benchmarks/memory.py [--workers 10000] [--jobs 100000] [--backend asyncio|trio|both]

Issue #3 asks for at most 1.5 KB per configured worker of an idle pool and
300 bytes per queued job beyond its arguments.  Workers start on demand, so
a pool that never ran a job holds none; this measures the other case, a pool
whose workers all ran once and now wait for work.  Allocation counts do not
depend on the machine's speed, so these figures are stable across runs.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import anyio

from workpool import Pool


async def _block(event: anyio.Event) -> None:
    await event.wait()


async def _noop() -> None:
    pass


async def measure(workers: int, jobs: int) -> tuple[float, float]:
    """Bytes per idle worker, bytes per queued no-argument job."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        async with Pool(max_workers=workers, max_pending=None) as pool:
            release = anyio.Event()
            for _ in range(workers):
                pool.submit_nowait(_block, release)
            await anyio.wait_all_tasks_blocked()
            release.set()
            await anyio.wait_all_tasks_blocked()  # every worker ran once and is idle again
            gc.collect()
            idle, _ = tracemalloc.get_traced_memory()
            per_worker = (idle - base) / workers

        async with Pool(max_workers=1, max_pending=None) as pool:
            release = anyio.Event()
            pool.submit_nowait(_block, release)  # the only worker is busy: the rest queue
            await anyio.wait_all_tasks_blocked()
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(jobs):
                pool.submit_nowait(_noop)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
            per_job = (after - before) / jobs
            release.set()
    finally:
        tracemalloc.stop()
    return per_worker, per_job


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print("| backend | bytes per idle worker | bytes per queued job |")
    print("|---|---:|---:|")
    for backend in backends:
        per_worker, per_job = anyio.run(measure, args.workers, args.jobs, backend=backend)
        print(f"| {backend} | {per_worker:,.0f} | {per_job:,.0f} |")


if __name__ == "__main__":
    main()
