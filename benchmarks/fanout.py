"""A request's fan-out: K jobs handed to a long-lived pool, and all their values collected.

    python benchmarks/fanout.py [--sizes 3,20] [--fanouts 2000] [--rounds 5] [--job sleep0]

A service opens its pool once and, in each request handler, runs a handful
of jobs and waits for all of them (``async for value in pool.map(fetch,
urls)``).  What matters there is the fixed cost of one fan-out, not the
throughput of a long stream of jobs that ``run.py`` measures.  The cases,
each doing ``--fanouts`` fan-outs of K items in a row, in one pool (or none)
per run:

* ``workpool map``: ``[value async for value in pool.map(job, range(K))]``;
* ``workpool submit + await``: K ``submit`` calls, then each job awaited;
* ``anyio task group``: the hand-written pattern, a task per item writing
  its value into a list (the reference of the ratios);
* asyncio only: ``asyncio.gather`` of K coroutines, and ``asyncio.TaskGroup``
  with a ``Semaphore`` of the pool's size (Python 3.11+);
* ``aiometer amap`` (both backends) when the bench extra is installed.

The pool has 100 workers and the default ``max_pending``.  Rounds interleave
the cases in a shuffled order; the table gives the median CPU µs per fan-out
and the median of the per-round ratios to the reference of the same backend,
size and round.  Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

from _workloads import _missing
from workpool import Pool

WORKERS = 100
REFERENCE = "anyio task group"

Job = Callable[[int], Awaitable[int]]
# (job, items per fan-out, fan-outs) -> CPU seconds for all the fan-outs
Case = Callable[[Job, int, int], Awaitable[float]]


async def _noop(item: int) -> int:
    return item


async def _sleep0(item: int) -> int:
    await anyio.sleep(0)  # noqa: ASYNC115  (what user code writes; as _workloads.py)
    return item


JOBS: dict[str, Job] = {"noop": _noop, "sleep0": _sleep0}


def _check(values: list[int], k: int) -> None:
    # Cheap, and it keeps every case honest about collecting every value.
    if sorted(values) != list(range(k)):
        raise AssertionError(f"a fan-out of {k} returned {values!r}")


async def _map(job: Job, k: int, n: int) -> float:
    async with Pool(max_workers=WORKERS) as pool:
        start = time.process_time()
        for _ in range(n):
            _check([value async for value in pool.map(job, range(k))], k)
        return time.process_time() - start


async def _submit(job: Job, k: int, n: int) -> float:
    async with Pool(max_workers=WORKERS) as pool:
        start = time.process_time()
        for _ in range(n):
            jobs = [await pool.submit(job, i) for i in range(k)]
            _check([await each for each in jobs], k)
        return time.process_time() - start


async def _task_group(job: Job, k: int, n: int) -> float:
    async def one(values: list[int], item: int) -> None:
        values[item] = await job(item)

    start = time.process_time()
    for _ in range(n):
        values = [0] * k
        async with anyio.create_task_group() as tg:
            for item in range(k):
                tg.start_soon(one, values, item)
        _check(values, k)
    return time.process_time() - start


async def _gather(job: Job, k: int, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        _check(list(await asyncio.gather(*(job(item) for item in range(k)))), k)
    return time.process_time() - start


async def _asyncio_task_group(job: Job, k: int, n: int) -> float:
    semaphore = asyncio.Semaphore(WORKERS)

    async def one(item: int) -> int:
        async with semaphore:
            return await job(item)

    start = time.process_time()
    for _ in range(n):
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
            tasks = [tg.create_task(one(item)) for item in range(k)]
        _check([task.result() for task in tasks], k)
    return time.process_time() - start


async def _aiometer(job: Job, k: int, n: int) -> float:
    import aiometer

    start = time.process_time()
    for _ in range(n):
        async with aiometer.amap(job, range(k), max_at_once=WORKERS) as results:
            _check([value async for value in results], k)
    return time.process_time() - start


def _cases(backend: str) -> dict[str, Case]:
    cases: dict[str, Case] = {
        "workpool map": _map,
        "workpool submit + await": _submit,
        REFERENCE: _task_group,
    }
    if backend == "asyncio":
        cases["asyncio.gather"] = _gather
        if sys.version_info >= (3, 11):
            cases["asyncio.TaskGroup + Semaphore"] = _asyncio_task_group
    if _missing("aiometer") is None:
        cases["aiometer amap"] = _aiometer
    return cases


def _time(backend: str, case: Case, job: Job, k: int, n: int) -> float:
    gc.collect()

    async def main() -> float:
        return await case(job, k, n)

    seconds: float = anyio.run(main, backend=backend)
    return seconds / n * 1e6


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=_sizes, default=[3, 20], help="items per fan-out (default 3,20)")
    parser.add_argument("--fanouts", type=int, default=2000, help="fan-outs per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--job", choices=sorted(JOBS), default="sleep0")
    parser.add_argument("--backend", choices=("asyncio", "trio", "both"), default="both")
    args = parser.parse_args()
    if args.fanouts < 1 or args.rounds < 1:
        parser.error("--fanouts and --rounds must be at least 1")
    backends = ("asyncio", "trio") if args.backend == "both" else (args.backend,)
    job = JOBS[args.job]
    cases = {backend: _cases(backend) for backend in backends}
    runs = [(backend, k, name) for backend in backends for k in args.sizes for name in cases[backend]]
    us: dict[tuple[str, int, str], list[float]] = {run: [] for run in runs}
    for _ in range(args.rounds):
        random.shuffle(runs)
        for backend, k, name in runs:
            us[backend, k, name].append(_time(backend, cases[backend][name], job, k, args.fanouts))
    sizes = ",".join(map(str, args.sizes))
    print(
        f"`python benchmarks/fanout.py --sizes {sizes} --fanouts {args.fanouts} --rounds {args.rounds}"
        f" --job {args.job}` (CPU µs per fan-out, medians)\n"
    )
    print(f"| backend | K | case | µs | ratio to {REFERENCE} |")
    print("|---|---:|---|---:|---:|")
    for backend in backends:
        for k in args.sizes:
            reference = us[backend, k, REFERENCE]
            for name in cases[backend]:
                times = us[backend, k, name]
                ratio = statistics.median(t / r for t, r in zip(times, reference, strict=True))
                print(f"| {backend} | {k} | {name} | {statistics.median(times):.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
