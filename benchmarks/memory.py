"""Memory cost of a pool: per worker, idle or retired, and per queued job (tracemalloc).

    python benchmarks/memory.py [--workers 10000] [--jobs 100000] [--backend asyncio|trio|both]

Issue #3 asks that a pool configured for 100,000 workers cost at most 1.5 KB
per configured worker while idle (or start workers on demand, so that an idle
pool holds almost nothing), and 300 bytes per queued job beyond its arguments.
Measured here, for a pool with ``max_workers=100_000``:

* never used: workers start on demand, so it should hold none;
* after a burst that ran ``--workers`` jobs at once: the workers wait for
  work (the "parked" figure, per worker), then exit once ``idle_timeout``
  has passed (the "retired" figure, per configured worker);
* ``--jobs`` no-argument jobs queued behind one busy worker.

Allocation counts do not depend on the machine's speed, so these figures are
stable across runs.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from dataclasses import dataclass

import anyio

from workpool import Pool

CONFIGURED = 100_000
#: Long enough for the parked workers to be measured before they retire.
IDLE_TIMEOUT = 1.0


async def _block(event: anyio.Event) -> None:
    await event.wait()


async def _noop() -> None:
    pass


@dataclass
class Figures:
    never_used: float  # bytes per configured worker
    parked: float  # bytes per parked worker
    retired: float  # bytes per configured worker, after idle_timeout
    queued: float  # bytes per queued job


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _warm_up() -> None:
    """Run a pool once, so that the modules imported lazily are not counted."""
    await anyio.wait_all_tasks_blocked()  # imports trio.testing (and pytest) on trio
    async with Pool(max_workers=2, idle_timeout=IDLE_TIMEOUT) as pool:
        await (await pool.submit(_noop))
        await anyio.sleep(IDLE_TIMEOUT * 2)  # the worker parks, then retires


async def measure(workers: int, jobs: int) -> Figures:
    await _warm_up()
    tracemalloc.start()
    try:
        base = _traced()
        async with Pool(max_workers=CONFIGURED, max_pending=None, idle_timeout=IDLE_TIMEOUT) as pool:
            await anyio.wait_all_tasks_blocked()
            never_used = (_traced() - base) / CONFIGURED
            release = anyio.Event()
            for _ in range(workers):
                pool.submit_nowait(_block, release)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats.workers == workers
            release.set()
            await anyio.wait_all_tasks_blocked()  # every worker ran once and waits again
            parked = (_traced() - base) / workers
            # Every worker parked at about the same time: one idle_timeout
            # later, they retire one after the other, each on a timer of its
            # own (so wait_all_tasks_blocked() does not wait for the chain).
            with anyio.fail_after(60):
                while pool.stats.workers:  # noqa: ASYNC110 - no event says "all retired"
                    await anyio.sleep(IDLE_TIMEOUT)
            await anyio.wait_all_tasks_blocked()
            retired = (_traced() - base) / CONFIGURED

        async with Pool(max_workers=1, max_pending=None) as pool:
            release = anyio.Event()
            pool.submit_nowait(_block, release)  # the only worker is busy: the rest queue
            await anyio.wait_all_tasks_blocked()
            before = _traced()
            for _ in range(jobs):
                pool.submit_nowait(_noop)
            queued = (_traced() - before) / jobs
            release.set()
    finally:
        tracemalloc.stop()
    return Figures(never_used, parked, retired, queued)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print(
        f"| backend | never used, per configured worker ({CONFIGURED:,}) "
        f"| parked, per worker ({args.workers:,}) | after idle_timeout, per configured worker "
        "| per queued job |"
    )
    print("|---|---:|---:|---:|---:|")
    for backend in backends:
        f = anyio.run(measure, args.workers, args.jobs, backend=backend)
        print(f"| {backend} | {f.never_used:,.1f} | {f.parked:,.0f} | {f.retired:,.1f} | {f.queued:,.0f} |")


if __name__ == "__main__":
    main()
