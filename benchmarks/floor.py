"""The floor under issue #2's budget: the least a pool with job handles and contexts must do.

    python benchmarks/floor.py [--jobs 100000] [--rounds 5]

Issue #2 asks for a no-op job through ``await pool.submit(job)`` at no more
than 2x raw asyncio workers on an ``asyncio.Queue``, and the issue itself
requires that every submit returns a handle to the job and that the job runs
in a copy of the submitter's context.  This measures a pool stripped to just
that, on asyncio, against raw asyncio in the same rounds:

* ``submit`` is an ``async def`` that makes a slotted job object holding the
  function, its arguments and ``copy_context()``, appends it to a deque and
  wakes a parked worker (a bare future) or starts one;
* each of 100 workers runs jobs through one long-lived generator inside
  ``job.ctx.run`` (as workpool does), stores the value on the job and drops
  the job's arguments and context.

No statistics, no backpressure, no cancellation check or support, no task
dumps, no error policy: nothing workpool promises beyond the two
requirements.  Each is timed with the garbage collector on (what a program
gets) and off (what is left when the live jobs cost nothing to collect).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context, copy_context
from typing import Any

from _workloads import Work, make_work, noop, noop_item, raw_asyncio

WORKERS = 100


class _Handle:
    __slots__ = ("args", "ctx", "done", "fn", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], ctx: Context) -> None:
        self.fn = fn
        self.args: tuple[Any, ...] | None = args
        self.ctx: Context | None = ctx
        self.done = False
        self.value: Any = None


@types.coroutine
def _runner(box: list[Any]) -> Generator[Any, Any, None]:
    while True:
        handle = yield box
        box[0] = yield from handle.fn(*handle.args)


class _MinimalPool:
    def __init__(self) -> None:
        self.queue: deque[_Handle] = deque()
        self.idle: list[asyncio.Future[None]] = []
        self.workers: list[asyncio.Task[None]] = []
        self.closing = False

    async def submit(self, fn: Callable[..., Any], *args: Any) -> _Handle:
        handle = _Handle(fn, args, copy_context())
        self.queue.append(handle)
        if self.idle:
            self.idle.pop().set_result(None)
        elif len(self.workers) < WORKERS:
            self.workers.append(asyncio.get_running_loop().create_task(self.work()))
        return handle

    async def work(self) -> None:
        box: list[Any] = [None]
        runner = _runner(box)
        send = runner.send
        send(None)
        queue = self.queue
        while True:
            if not queue:
                if self.closing:
                    return
                future = asyncio.get_running_loop().create_future()
                self.idle.append(future)
                await future
                continue
            handle = queue.popleft()
            assert handle.ctx is not None
            if handle.ctx.run(send, handle) is not box:
                raise RuntimeError("the floor measures jobs that do not suspend")
            handle.value, handle.done = box[0], True
            handle.args = handle.ctx = None


async def minimal_pool(work: Work) -> None:
    pool = _MinimalPool()
    for job in work.jobs:
        await pool.submit(job)
    pool.closing = True
    for future in pool.idle:
        future.set_result(None)
    await asyncio.gather(*pool.workers)


def _time(fn: Callable[[Work], Coroutine[Any, Any, None]], work: Work, collect: bool) -> float:
    gc.collect()
    if not collect:
        gc.disable()
    try:
        start = time.process_time()
        asyncio.run(fn(work))
        return (time.process_time() - start) / work.n * 1e6
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The reference is run.py's own raw-asyncio pattern, on the same Work.
    work = make_work(args.jobs, WORKERS, noop, noop_item)
    cases = [
        (name, fn, collect)
        for collect in (True, False)
        for name, fn in ((raw_asyncio.__name__, raw_asyncio), (minimal_pool.__name__, minimal_pool))
    ]
    samples: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for name, fn, collect in cases:
            samples.setdefault((name, collect), []).append(_time(fn, work, collect))
    print(f"`python benchmarks/floor.py --jobs {args.jobs} --rounds {args.rounds}` (CPU µs/job, median)\n")
    print("| garbage collector | raw asyncio | minimal pool | ratio |")
    print("|---|---:|---:|---:|")
    for collect in (True, False):
        raw = statistics.median(samples[(raw_asyncio.__name__, collect)])
        floor = statistics.median(samples[(minimal_pool.__name__, collect)])
        print(f"| {'on' if collect else 'off'} | {raw:.2f} | {floor:.2f} | {floor / raw:.2f}x |")


if __name__ == "__main__":
    main()
