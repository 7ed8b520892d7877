"""`python -m workpool demo`: the same job-queue service written twice, side by side.

A thumbnail service receives requests of a few images each.  A handler
queues one job per image, keeps the request's lease alive while they run,
answers once every thumbnail is ready and writes an audit-log entry.  Short
sleeps stand in for the I/O.

The first version is the ad hoc plumbing people write with
``asyncio.create_task`` and an ``asyncio.Queue``; the second runs the very
same handlers and jobs on two pools.  Both report their live task count
while they run and after the work is done, so the tasks the first one leaves
behind are there to see.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TextIO, TypeVar

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # a dependency of anyio there

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from ._errors import JobCancelled
from ._groups import without
from ._pool import Pool
from ._stats import PoolStats

__all__ = ["run_demo"]

DemoBackend = Literal["asyncio", "trio"]
T = TypeVar("T")

_IMAGES_PER_REQUEST = 20
#: Requests arrive evenly over this many seconds, whatever their number.
_ARRIVAL_WINDOW = 0.3
_LEASE_RENEW_EVERY = 0.02
_SAMPLE_EVERY = 0.1
#: How long to wait after the last response before counting what is left:
#: long enough for anything that is merely finishing (an audit write) to end,
#: so whatever is still alive is stuck.
_SETTLE = 0.25
#: Handlers that may run at once in the workpool version (a connection limit).
_MAX_CONCURRENT_REQUESTS = 100


@attrs.frozen
class _Request:
    id: int
    images: tuple[int, ...]
    #: Seconds after the service starts.
    arrives_at: float


@attrs.define
class _Workload:
    """The requests, the jobs they cause, and counters of what got done.

    Both versions call these same methods; only the plumbing around them differs.
    """

    requests: list[_Request]
    thumbnails: int = 0
    responses: int = 0
    audit_writes: int = 0
    #: Renewals of the lease of a request that was already answered: what a
    #: leaked renewer costs besides its task (a lock held, a row touched).
    stale_renewals: int = 0
    answered: set[int] = attrs.field(factory=set[int])

    @property
    def jobs(self) -> int:
        """Thumbnail jobs the requests ask for, one per image."""
        return sum(len(request.images) for request in self.requests)

    async def make_thumbnail(self, image: int) -> int:
        # 5 to 15 ms of "fetch and resize", fixed per image so both runs do the same work.
        await anyio.sleep(0.005 + (image * 7919 % 11) / 1000)
        self.thumbnails += 1
        return image

    async def renew_lease(self, request: _Request) -> None:
        # Meant to run exactly as long as its request; it has no way to tell
        # when that is, so whoever starts it must stop it.
        while True:
            await anyio.sleep(_LEASE_RENEW_EVERY)
            if request.id in self.answered:
                self.stale_renewals += 1

    async def write_audit_log(self, request: _Request) -> None:
        await anyio.sleep(0.002)
        self.audit_writes += 1

    def respond(self, request: _Request, thumbnails: list[int]) -> None:
        assert sorted(thumbnails) == list(request.images)
        self.answered.add(request.id)
        self.responses += 1


def _plan(jobs: int) -> list[_Request]:
    count = math.ceil(jobs / _IMAGES_PER_REQUEST)
    return [
        _Request(
            id=i,
            images=tuple(range(i * _IMAGES_PER_REQUEST, min(jobs, (i + 1) * _IMAGES_PER_REQUEST))),
            arrives_at=i * _ARRIVAL_WINDOW / count,
        )
        for i in range(count)
    ]


# -- 1. the ad hoc version ----------------------------------------------------


class _AdHocService:
    """The job queue as it is usually written: fire-and-forget tasks around an `asyncio.Queue`."""

    def __init__(self, workload: _Workload, workers: int) -> None:
        self._workload = workload
        self._workers = workers
        self._queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue()

    def start(self) -> None:
        for _ in range(self._workers):
            # The leak on display (ruff's RUF006 flags it): nobody keeps these
            # tasks, so nobody can stop them or wait for them.
            asyncio.create_task(self._worker())  # noqa: RUF006

    async def _worker(self) -> None:
        while True:
            # Once the last job is done every worker parks here for good: an
            # asyncio.Queue cannot be closed, so there is no way out.
            image, reply = await self._queue.get()
            try:
                thumbnail = await self._workload.make_thumbnail(image)
            except Exception as exc:
                if not reply.done():  # a handler that was cancelled gave up its replies
                    reply.set_exception(exc)
            else:
                if not reply.done():
                    reply.set_result(thumbnail)
            finally:
                self._queue.task_done()

    async def handle(self, request: _Request) -> None:
        asyncio.create_task(self._workload.renew_lease(request))  # noqa: RUF006 - the second leak
        loop = asyncio.get_running_loop()
        replies: list[asyncio.Future[int]] = []
        for image in request.images:
            reply: asyncio.Future[int] = loop.create_future()
            self._queue.put_nowait((image, reply))
            replies.append(reply)
        self._workload.respond(request, list(await asyncio.gather(*replies)))
        # Finishes on its own, but an exception in it would be lost.
        asyncio.create_task(self._workload.write_audit_log(request))  # noqa: RUF006


async def _serve_ad_hoc(service: _AdHocService, workload: _Workload) -> None:
    service.start()
    start = anyio.current_time()

    async def connection(request: _Request) -> None:
        await anyio.sleep_until(start + request.arrives_at)
        await service.handle(request)

    # The "clients": they wait for their responses, which is how the demo
    # knows the work is done.
    await asyncio.gather(*(connection(request) for request in workload.requests))


# -- 2. the workpool version --------------------------------------------------


async def _serve_with_workpool(workload: _Workload, workers: int) -> tuple[PoolStats, PoolStats]:
    send, receive = anyio.create_memory_object_stream[_Request]()
    # Two pools, not one: a handler waits for its thumbnail jobs, so if
    # handlers and thumbnails shared the workers, handlers alone could occupy
    # them all and wait forever for jobs that no worker is left to run.
    async with (
        Pool(max_workers=workers, max_pending=workers, name="thumbnails") as jobs,
        Pool(max_workers=_MAX_CONCURRENT_REQUESTS, max_pending=0, name="requests") as handlers,
        receive,
    ):

        async def handle(request: _Request) -> None:
            # The lease renewer lives in a task group scoped to the handler,
            # so it cannot outlive the request.
            thumbnails: list[int] = []
            async with anyio.create_task_group() as lease:
                lease.start_soon(workload.renew_lease, request)
                async with jobs.map(workload.make_thumbnail, request.images, ordered=False) as results:
                    async for thumbnail in results:
                        thumbnails.append(thumbnail)
                lease.cancel_scope.cancel()
            workload.respond(request, thumbnails)
            # The handle is dropped on purpose: the pool still runs the job to
            # its end before it closes, and a failure would reach its on_error.
            await jobs.submit(workload.write_audit_log, request)

        async with anyio.create_task_group() as listener:
            listener.start_soon(_listen, workload.requests, send)
            # Returns when the listener closes its end of the channel and
            # every handler it started has finished.
            await handlers.consume(receive, handle)
    return jobs.stats, handlers.stats


async def _listen(requests: list[_Request], send: MemoryObjectSendStream[_Request]) -> None:
    start = anyio.current_time()
    async with send:
        for request in requests:
            await anyio.sleep_until(start + request.arrives_at)
            await send.send(request)


# -- measuring -----------------------------------------------------------------


def _live_tasks() -> int:
    """Count the tasks alive in the running event loop, on either backend."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return len(asyncio.all_tasks())

    # Not asyncio, so trio, anyio's only other backend.  trio has no task
    # registry; every task is in the tree of nurseries below the root task.
    import trio

    def subtree(task: trio.lowlevel.Task) -> int:
        return 1 + sum(subtree(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    root = trio.lowlevel.current_root_task()
    return 0 if root is None else subtree(root)


@attrs.frozen
class _Outcome:
    jobs: int
    responses: int
    audit_writes: int
    stale_renewals: int
    peak_tasks: int
    left_behind: int
    elapsed: float


@attrs.define
class _Probe:
    """Prints the live task count every `_SAMPLE_EVERY` seconds while a service runs."""

    workload: _Workload
    #: Tasks per ``#`` of the bar; the same for both runs, so the bars compare.
    scale: int
    out: TextIO
    start: float = 0.0
    #: Tasks alive before the service started (the demo's own: this probe,
    #: the main task, the event loop's helpers); never counted.
    baseline: int = 0
    peak: int = 0
    #: Seconds from the start to the last response.
    elapsed: float = 0.0
    #: When to take the last sample; set once the work is done.
    stop_at: float = math.inf
    #: Tasks still alive at `stop_at`.
    left: int = 0

    def sample(self, note: str = "") -> int:
        tasks = _live_tasks() - self.baseline
        self.peak = max(self.peak, tasks)
        elapsed = anyio.current_time() - self.start
        bar = "#" * math.ceil(tasks / self.scale)
        done = f"{self.workload.thumbnails:5d}/{self.workload.jobs}"
        line = f"  t={elapsed:4.2f}s  tasks={tasks:4d}  jobs done={done}  {bar}{note}"
        print(line.rstrip(), file=self.out, flush=True)
        return tasks

    async def run(self) -> None:
        """Sample until `stop_at`, and once more then: the last sample is the verdict."""
        while True:
            await anyio.sleep_until(min(anyio.current_time() + _SAMPLE_EVERY, self.stop_at))
            # Close enough to the end counts as the end, so the verdict does
            # not print a few milliseconds after an identical periodic sample.
            if anyio.current_time() >= self.stop_at - _SAMPLE_EVERY / 2:
                self.left = self.sample("   <- after the work is done")
                return
            self.sample()


async def _observe(workload: _Workload, serve: Callable[[], Awaitable[object]], probe: _Probe) -> _Outcome:
    """Run `serve` under `probe`, then count what is still alive once the work is done."""
    out = probe.out
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe.run)
        # Both backends register a new task at once, so the probe is in the baseline.
        probe.baseline = _live_tasks()
        probe.start = anyio.current_time()
        await serve()
        probe.elapsed = anyio.current_time() - probe.start
        print(
            f"  all {workload.responses} requests answered, {workload.thumbnails} jobs processed "
            f"in {probe.elapsed:.2f} s; giving stragglers {_SETTLE:.2f} s to finish:",
            file=out,
            flush=True,
        )
        probe.stop_at = anyio.current_time() + _SETTLE
    print(f"  tasks left behind: {probe.left}", file=out, flush=True)
    return _Outcome(
        jobs=workload.thumbnails,
        responses=workload.responses,
        audit_writes=workload.audit_writes,
        stale_renewals=workload.stale_renewals,
        peak_tasks=probe.peak,
        left_behind=probe.left,
        elapsed=probe.elapsed,
    )


def _describe(task: asyncio.Task[Any]) -> str:
    """Name a task's coroutine and the innermost coroutine it is parked in."""
    outer: Any = task.get_coro()
    inner = outer
    while hasattr(getattr(inner, "cr_await", None), "cr_await"):
        inner = inner.cr_await
    return f"{getattr(outer, '__qualname__', outer)!s:24} parked in {getattr(inner, '__qualname__', inner)}()"


async def _run_ad_hoc(service: _AdHocService, workload: _Workload, scale: int, out: TextIO) -> _Outcome:
    before = asyncio.all_tasks()
    outcome = await _observe(
        workload,
        lambda: _serve_ad_hoc(service, workload),
        _Probe(workload, scale, out),
    )
    stuck = Counter(_describe(task) for task in asyncio.all_tasks() - before)
    for what, count in stuck.most_common():
        print(f"    {count:5d} x {what}", file=out)
    return outcome


async def _run_workpool(jobs: int, workers: int, scale: int, out: TextIO) -> _Outcome:
    workload = _Workload(_plan(jobs))
    stats: list[tuple[PoolStats, PoolStats]] = []

    async def serve() -> None:
        stats.append(await _serve_with_workpool(workload, workers))

    outcome = await _observe(workload, serve, _Probe(workload, scale, out))
    thumbnails, requests = stats[0]
    print(f"    thumbnails pool: {thumbnails}", file=out)
    print(f"    requests pool:   {requests}", file=out)
    return outcome


# -- the whole demo --------------------------------------------------------------


def _print_table(ad_hoc: _Outcome, pooled: _Outcome, backend: DemoBackend, out: TextIO) -> None:
    rows = [
        ("", "ad hoc (asyncio)", f"workpool ({backend})"),
        ("jobs processed", str(ad_hoc.jobs), str(pooled.jobs)),
        ("requests answered", str(ad_hoc.responses), str(pooled.responses)),
        ("audit log writes", str(ad_hoc.audit_writes), str(pooled.audit_writes)),
        ("stale lease renewals", str(ad_hoc.stale_renewals), str(pooled.stale_renewals)),
        ("peak live tasks (sampled)", str(ad_hoc.peak_tasks), str(pooled.peak_tasks)),
        ("tasks left behind", str(ad_hoc.left_behind), str(pooled.left_behind)),
        ("time to last response", f"{ad_hoc.elapsed:.2f} s", f"{pooled.elapsed:.2f} s"),
    ]
    for label, left, right in rows:
        print(f"  {label:<27}{left:>20}{right:>20}", file=out)
    if pooled.peak_tasks > ad_hoc.peak_tasks:
        print(
            "  (workpool's peak is higher: a Pool.map() call that waits for room in a busy pool reads\n"
            "  its items in a feeder task, and idle request workers wait for the next request; every\n"
            "  one of them ends when its pool closes.)",
            file=out,
        )


async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_demo(
    *, jobs: int = 2000, workers: int = 50, backend: DemoBackend = "asyncio", out: TextIO | None = None
) -> int:
    """Run both versions of the service, print what each left behind, and return the exit code.

    The exit code is 0, or 130 (128 + SIGINT) if Ctrl-C stopped it: what it
    had started is cancelled and nothing is left behind.

    The ad hoc version always runs on asyncio (``asyncio.create_task`` is the
    point); the workpool version runs on `backend`.  Output goes to `out`
    (standard output by default).  Blocks for about a second plus
    ``jobs / workers`` hundredths of a second.

    Raises:
        ValueError: `jobs` or `workers` is not a positive int.
    """
    if jobs < 1 or workers < 1:
        raise ValueError(f"jobs and workers must be positive, got jobs={jobs!r} workers={workers!r}")
    # sys.stdout is looked up per call, so a caller's redirect_stdout applies.
    stream: TextIO = sys.stdout if out is None else out
    requests = math.ceil(jobs / _IMAGES_PER_REQUEST)
    scale = max(1, (workers + 2 * requests) // 40)
    print(
        f"workpool demo: a thumbnail service gets {requests} requests of up to {_IMAGES_PER_REQUEST} "
        f"images ({jobs} jobs) and runs them on {workers} workers.\n"
        "Both versions run the same handlers and jobs (short sleeps stand in for I/O); "
        "only the plumbing differs.\n"
        f"One '#' is {scale} task(s).",
        file=stream,
    )

    workload = _Workload(_plan(jobs))
    # Held until the end, as an application holds its services.  Dropped,
    # it would take the leaked workers with it: asyncio keeps only weak
    # references to tasks, and a worker parked on a queue nobody else
    # references is garbage that the collector destroys mid-wait ("Task
    # was destroyed but it is pending!"), which is the other half of
    # ruff's RUF006 warning.
    service = _AdHocService(workload, workers)
    # The ad hoc version gets a loop of its own that is only paused, not
    # closed, while the workpool version runs: its leaked tasks stay pending
    # (asyncio.run would cancel them quietly) until they are cancelled in
    # plain sight at the end.
    loop = asyncio.new_event_loop()
    interrupted = False
    try:
        print(
            "\n[1/2] ad hoc: asyncio.create_task() workers on an asyncio.Queue, "
            "a lease renewer per request (asyncio)",
            file=stream,
            flush=True,
        )
        ad_hoc = _run_until_complete(loop, _run_ad_hoc(service, workload, scale, stream))

        print(
            f"\n[2/2] workpool: Pool.consume() takes requests from a channel, "
            f"Pool.map() runs their jobs, Pool.submit() the audit log ({backend})",
            file=stream,
            flush=True,
        )
        pooled = anyio.run(_run_workpool, jobs, workers, scale, stream, backend=backend)

        print("\nsummary", file=stream)
        _print_table(ad_hoc, pooled, backend, stream)
    except BaseException as exc:
        if not _is_ctrl_c(exc):
            raise
        interrupted = True
        print("\ninterrupted", file=stream, flush=True)
    finally:
        leaked = asyncio.all_tasks(loop)
        if leaked:
            # Interrupted, its tasks include the ad hoc run's own: not all leaks.
            what = "unfinished" if interrupted else "leaked"
            print(f"\ncancelling {len(leaked)} {what} tasks so the demo can exit", file=stream, flush=True)
            loop.run_until_complete(_cancel(leaked))
            # Interrupted, a client task can still reach its request handler
            # while the others are cancelled, and the handler starts a lease
            # renewer that nothing will stop (seen in about one Ctrl-C in
            # six, on Python 3.11 and 3.13): fire and forget.  Cancel such
            # stragglers too.
            for _ in range(3):
                more = asyncio.all_tasks(loop)
                if not more:
                    break
                print(f"cancelling {len(more)} more, started meanwhile", file=stream, flush=True)
                loop.run_until_complete(_cancel(more))
            print(f"{len(asyncio.all_tasks(loop))} tasks left on the ad hoc loop", file=stream, flush=True)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 128 + signal.SIGINT if interrupted else 0


def _run_until_complete(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, T]) -> T:
    """``loop.run_until_complete(main)``, where Ctrl-C cancels `main` and then raises KeyboardInterrupt.

    That is what ``asyncio.run`` does.  With Python's own SIGINT handler the
    KeyboardInterrupt is raised in whatever task step runs at that moment:
    that task ends with it, and its unretrieved exception and the coroutine
    it left unawaited are then reported on stderr with tracebacks.
    """
    task = loop.create_task(main)
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread; no signals (Windows)
        return loop.run_until_complete(task)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _is_ctrl_c(exc: BaseException) -> bool:
    """Whether `exc` is Ctrl-C: a KeyboardInterrupt, alone or in a group (trio raises it from a nursery)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if sys.version_info < (3, 11) and isinstance(exc, asyncio.CancelledError):
        # Python 3.10 has no asyncio.Runner: anyio.run cancels its main task
        # on SIGINT and cannot turn that back into KeyboardInterrupt.
        # Nothing else cancels the demo's runs from outside.
        return True
    whole: BaseException = exc  # before isinstance() narrows it, for pyright strict
    # A pool that the interrupt crashed cancels its jobs, and a request
    # handler iterating a map of them may fail with JobCancelled before it
    # is cancelled itself: part of the Ctrl-C, not an error of the demo.
    return (
        isinstance(exc, BaseExceptionGroup)
        and without(whole, _is_a_leaf_but_keyboard_interrupt) is not None
        and without(whole, _is_keyboard_interrupt_or_job_cancelled) is None
    )


def _is_a_leaf_but_keyboard_interrupt(exc: BaseException) -> bool:
    return not isinstance(exc, (KeyboardInterrupt, BaseExceptionGroup))


def _is_keyboard_interrupt_or_job_cancelled(exc: BaseException) -> bool:
    return isinstance(exc, (KeyboardInterrupt, JobCancelled))
