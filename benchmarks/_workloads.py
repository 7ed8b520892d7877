"""The jobs and the implementations that `run.py` times.

Every implementation is an ``async def impl(work: Work) -> None`` that runs
``work.n`` jobs on ``work.workers`` concurrent workers (or, for the peers that
have no workers, at most that many jobs at once), waits for all of them, and
returns with no task of its own left behind.

What is timed is everything inside that call: creating the queue, stream,
pool or scheduler, starting the workers, producing every job, waiting for the
last one and tearing the workers down.  All of that is the real cost of the
pattern, amortised over ``n`` jobs.  What is *not* timed, for every
implementation alike: starting and closing the event loop (`run.py` opens a
fresh one per run), building the list of ``n`` job references that producers
iterate over (`Work.jobs`), and the ``gc.collect()`` before each run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from workpool import Pool

__all__ = [
    "IMPLEMENTATIONS",
    "WORKLOADS",
    "Impl",
    "Work",
    "add_case_arguments",
    "case",
    "check_cases",
    "make_work",
]

Backend = Literal["asyncio", "trio"]
#: Which ``sleep(0)`` a job of the ``sleep0`` workload awaits: asyncio-only
#: peers use ``asyncio.sleep(0)`` (what their users write); everything built on
#: anyio uses ``anyio.sleep(0)``, which on asyncio costs a backend lookup more.
SleepFlavor = Literal["asyncio", "anyio"]
JobFn = Callable[[], Coroutine[Any, Any, None]]
ItemFn = Callable[[int], Coroutine[Any, Any, None]]

#: Buffer size of the bounded channels (and ``max_pending`` of bounded pools).
BOUND = 1000


# -- jobs ---------------------------------------------------------------------


async def noop() -> None:
    pass


async def noop_item(item: int) -> None:
    pass


async def asyncio_sleep0() -> None:
    await asyncio.sleep(0)


async def asyncio_sleep0_item(item: int) -> None:
    await asyncio.sleep(0)


# anyio.sleep(0) on purpose (not anyio.lowlevel.checkpoint()): it is what
# issue #2's workload names and what user code writes.
async def anyio_sleep0() -> None:
    await anyio.sleep(0)  # noqa: ASYNC115


async def anyio_sleep0_item(item: int) -> None:
    await anyio.sleep(0)  # noqa: ASYNC115


#: workload -> sleep flavor -> (zero-argument job, one-argument job)
WORKLOADS: dict[str, dict[SleepFlavor, tuple[JobFn, ItemFn]]] = {
    "noop": {"asyncio": (noop, noop_item), "anyio": (noop, noop_item)},
    "sleep0": {
        "asyncio": (asyncio_sleep0, asyncio_sleep0_item),
        "anyio": (anyio_sleep0, anyio_sleep0_item),
    },
}


@dataclass(frozen=True)
class Work:
    """One run's input: ``n`` jobs for ``workers`` workers."""

    n: int
    workers: int
    job: JobFn
    item_job: ItemFn
    #: ``n`` references to `job`, built before the clock starts.
    jobs: list[JobFn] = field(repr=False)


def make_work(n: int, workers: int, job: JobFn, item_job: ItemFn) -> Work:
    return Work(n, workers, job, item_job, [job] * n)


# -- the reference and the floor ---------------------------------------------


async def raw_asyncio(work: Work) -> None:
    """W tasks on an unbounded asyncio.Queue, the asyncio documentation's pattern."""
    queue: asyncio.Queue[JobFn] = asyncio.Queue()

    async def worker() -> None:
        while True:
            job = await queue.get()
            await job()
            queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(work.workers)]
    for job in work.jobs:
        await queue.put(job)
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def floor_asyncio(work: Work) -> None:
    """W asyncio tasks, each running a static slice of the jobs: no channel at all."""

    async def worker(jobs: list[JobFn]) -> None:
        for job in jobs:
            await job()

    w = work.workers
    await asyncio.gather(*(worker(work.jobs[i::w]) for i in range(w)))


async def floor_anyio(work: Work) -> None:
    """The same floor in an anyio task group (used on trio)."""

    async def worker(jobs: list[JobFn]) -> None:
        for job in jobs:
            await job()

    w = work.workers
    async with anyio.create_task_group() as tg:
        for i in range(w):
            tg.start_soon(worker, work.jobs[i::w])


# -- anyio memory object streams ---------------------------------------------


def _nowait(buffer: float) -> Callable[[Work], Awaitable[None]]:
    async def anyio_nowait(work: Work) -> None:
        """Workers take with receive_nowait() and await receive() only when it would block."""
        send: MemoryObjectSendStream[JobFn]
        receive: MemoryObjectReceiveStream[JobFn]
        send, receive = anyio.create_memory_object_stream(buffer)

        async def worker() -> None:
            while True:
                try:
                    job = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        job = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                await job()

        async with anyio.create_task_group() as tg:
            for _ in range(work.workers):
                tg.start_soon(worker)
            with send:
                for job in work.jobs:
                    try:
                        send.send_nowait(job)
                    except anyio.WouldBlock:
                        await send.send(job)
        receive.close()

    return anyio_nowait


def _stream(buffer: float) -> Callable[[Work], Awaitable[None]]:
    async def anyio_stream(work: Work) -> None:
        """The hand-written anyio pattern: ``async for`` workers, ``await send()`` producer."""
        send: MemoryObjectSendStream[JobFn]
        receive: MemoryObjectReceiveStream[JobFn]
        send, receive = anyio.create_memory_object_stream(buffer)

        async def worker() -> None:
            async for job in receive:
                await job()

        async with anyio.create_task_group() as tg:
            for _ in range(work.workers):
                tg.start_soon(worker)
            async with send:
                for job in work.jobs:
                    await send.send(job)
        receive.close()

    return anyio_stream


# -- workpool -----------------------------------------------------------------


async def workpool_submit(work: Work) -> None:
    async with Pool(max_workers=work.workers, max_pending=None) as pool:
        for job in work.jobs:
            await pool.submit(job)


async def workpool_submit_bounded(work: Work) -> None:
    async with Pool(max_workers=work.workers, max_pending=BOUND) as pool:
        for job in work.jobs:
            await pool.submit(job)


def _map(ordered: bool) -> Callable[[Work], Awaitable[None]]:
    async def workpool_map(work: Work) -> None:
        async with Pool(max_workers=work.workers, max_pending=BOUND) as pool:
            async for _ in pool.map(work.item_job, range(work.n), ordered=ordered):
                pass

    return workpool_map


async def workpool_consume(work: Work) -> None:
    send: MemoryObjectSendStream[int]
    receive: MemoryObjectReceiveStream[int]
    send, receive = anyio.create_memory_object_stream(BOUND)

    async def produce() -> None:
        with send:
            for i in range(work.n):
                try:
                    send.send_nowait(i)
                except anyio.WouldBlock:
                    await send.send(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async with Pool(max_workers=work.workers, max_pending=BOUND) as pool:
            await pool.consume(receive, work.item_job)
    receive.close()


# -- peers --------------------------------------------------------------------


async def taskgroup_semaphore(work: Work) -> None:
    """One task per job, at most W at once: acquire before create_task, release in the task."""
    semaphore = asyncio.Semaphore(work.workers)

    async def run(job: JobFn) -> None:
        try:
            await job()
        finally:
            semaphore.release()

    async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
        for job in work.jobs:
            await semaphore.acquire()
            tg.create_task(run(job))


async def aiojobs_scheduler(work: Work) -> None:
    import aiojobs

    # close_timeout/wait_timeout None: never give up on a slow (noisy) run.
    async with aiojobs.Scheduler(
        limit=work.workers, pending_limit=BOUND, wait_timeout=None, close_timeout=None
    ) as scheduler:
        for job in work.jobs:
            await scheduler.spawn(job())


async def aiometer_run_on_each(work: Work) -> None:
    import aiometer

    # aiometer's own annotations leave the callable's return type unknown.
    await aiometer.run_on_each(  # pyright: ignore[reportUnknownMemberType]
        work.item_job, range(work.n), max_at_once=work.workers
    )


# -- the registry -------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    name: str
    summary: str
    #: backend -> the coroutine function to run there.
    runs: dict[Backend, Callable[[Work], Awaitable[None]]]
    #: The sleep(0) its jobs await on asyncio; on trio every job uses anyio.sleep(0).
    sleep: SleepFlavor
    #: Why it is unavailable in this interpreter, or None.
    unavailable: str | None = None
    #: Left out of the default set (run it with --only).
    optional: bool = False
    #: The workloads it runs (None: all of them).
    workloads: tuple[str, ...] | None = None


def _missing(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed (pip install 'workpool[bench]')"
    return None


_BOTH: tuple[Backend, ...] = ("asyncio", "trio")


def _on(
    backends: tuple[Backend, ...], fn: Callable[[Work], Awaitable[None]]
) -> dict[Backend, Callable[[Work], Awaitable[None]]]:
    return dict.fromkeys(backends, fn)


REFERENCE = "raw-asyncio"
NOWAIT = "anyio-nowait"

IMPLEMENTATIONS: tuple[Impl, ...] = (
    Impl(
        "floor",
        "W tasks over static slices of the job list, no channel (asyncio tasks; anyio task group on trio)",
        {"asyncio": floor_asyncio, "trio": floor_anyio},
        "asyncio",
    ),
    Impl(
        REFERENCE,
        "W worker tasks on an unbounded asyncio.Queue: put, get, task_done, join, cancel (the reference)",
        _on(("asyncio",), raw_asyncio),
        "asyncio",
    ),
    Impl(
        "raw-asyncio+anyio-sleep",
        "the reference again, but its jobs await anyio.sleep(0): what the sleep flavour alone costs",
        _on(("asyncio",), raw_asyncio),
        "anyio",
        workloads=("sleep0",),
    ),
    Impl(
        NOWAIT,
        "anyio memory stream (buffer inf), workers receive_nowait() else await receive(), "
        "producer send_nowait()",
        _on(_BOTH, _nowait(math.inf)),
        "anyio",
    ),
    Impl(
        "anyio-nowait-1000",
        "the same, buffer 1000: producer falls back to await send() when full",
        _on(_BOTH, _nowait(BOUND)),
        "anyio",
    ),
    Impl(
        "workpool-submit",
        "Pool(max_workers=W, max_pending=None); await pool.submit(job) per job",
        _on(_BOTH, workpool_submit),
        "anyio",
    ),
    Impl(
        "workpool-submit-bounded",
        f"Pool(max_workers=W, max_pending={BOUND}); await pool.submit(job) per job",
        _on(_BOTH, workpool_submit_bounded),
        "anyio",
    ),
    Impl(
        "workpool-map",
        f"Pool(max_workers=W, max_pending={BOUND}); async for _ in pool.map(fn, range(N)) (ordered)",
        _on(_BOTH, _map(ordered=True)),
        "anyio",
    ),
    Impl(
        "workpool-map-unordered",
        "the same with ordered=False",
        _on(_BOTH, _map(ordered=False)),
        "anyio",
    ),
    Impl(
        "workpool-consume",
        f"Pool(max_workers=W, max_pending={BOUND}); await pool.consume(stream, fn); a producer task "
        f"send_nowait()s ints into a memory stream of buffer {BOUND}, else await send(), then closes it",
        _on(_BOTH, workpool_consume),
        "anyio",
    ),
    Impl(
        "taskgroup-semaphore",
        "asyncio.TaskGroup + asyncio.Semaphore(W): acquire, create_task, release in the task",
        _on(("asyncio",), taskgroup_semaphore),
        "asyncio",
        unavailable=None if sys.version_info >= (3, 11) else "asyncio.TaskGroup needs Python 3.11+",
    ),
    Impl(
        "aiojobs",
        f"aiojobs.Scheduler(limit=W, pending_limit={BOUND}): await spawn(job()) per job, then wait_and_close",
        _on(("asyncio",), aiojobs_scheduler),
        "asyncio",
        unavailable=_missing("aiojobs"),
    ),
    Impl(
        "anyio-stream",
        f"hand-written anyio: task group, W workers 'async for job in receive', "
        f"producer 'await send(job)', buffer {BOUND}",
        _on(_BOTH, _stream(BOUND)),
        "anyio",
    ),
    Impl(
        "anyio-stream-inf",
        "the same with an unbounded buffer",
        _on(_BOTH, _stream(math.inf)),
        "anyio",
        optional=True,
    ),
    Impl(
        "aiometer",
        "aiometer.run_on_each(fn, range(N), max_at_once=W) (anyio-based, so it runs on trio too)",
        _on(_BOTH, aiometer_run_on_each),
        "anyio",
        unavailable=_missing("aiometer"),
    ),
)


# -- for the one-case tools (instructions.py, gc_share.py) -------------------


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that name cases: implementations, backend, workload, workers."""
    parser.add_argument("impls", nargs="+", help="implementation names, as in run.py --only")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="noop")
    parser.add_argument("--workers", type=int, default=100)


def check_cases(names: list[str], backend: str, workload: str) -> None:
    """Exit with a message unless every implementation in `names` runs `workload` on `backend` here."""
    known = {impl.name: impl for impl in IMPLEMENTATIONS}
    for name in names:
        impl = known.get(name)
        if impl is None:
            sys.exit(f"unknown implementation {name!r}; choose from {', '.join(known)}")
        if backend not in impl.runs:
            sys.exit(f"{name} does not run on {backend}")
        if impl.workloads is not None and workload not in impl.workloads:
            sys.exit(f"{name} does not run the {workload} workload")
        if impl.unavailable is not None:
            sys.exit(f"{name}: {impl.unavailable}")


def case(
    name: str, backend: str, workload: str, n: int, workers: int
) -> tuple[Callable[[Work], Awaitable[None]], Work]:
    """The coroutine function of one checked case and its `Work` of `n` jobs, as run.py builds them."""
    (impl,) = [impl for impl in IMPLEMENTATIONS if impl.name == name]
    job, item_job = WORKLOADS[workload][impl.sleep if backend == "asyncio" else "anyio"]
    return impl.runs[backend], make_work(n, workers, job, item_job)  # type: ignore[index]
