"""The worker loop: how a pool's worker task runs job after job."""

from __future__ import annotations

from contextvars import Context
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.lowlevel import checkpoint

from ._context import current_job, resume_in_context
from ._job import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Job, Site

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._pool import Pool

__all__ = ["CLOSING", "EXITED", "NEW", "OPEN", "WorkerInfo", "first_step", "run_worker"]

# Pool life cycle (Pool._state).  Defined here because the worker reads it
# on every idle moment to know whether to exit.
NEW, OPEN, CLOSING, EXITED = range(4)

# A worker that runs this many jobs in a row without the event loop getting
# control (jobs that never suspend) yields once, so other tasks keep running
# and cancellation keeps reaching it.  Large enough to cost ~1% of a no-op job;
# guarded by tests/test_fairness.py.
_YIELD_EVERY = 64


class WorkerInfo:
    """What one worker task is doing, for task dumps and the stall watchdog."""

    __slots__ = ("idle_since", "job", "site")

    def __init__(self, site: Site | None) -> None:
        self.site = site
        self.job: Job[Any] | None = None
        self.idle_since: float | None = None


async def run_worker(pool: Pool, site: Site | None) -> None:
    """The loop of one worker task: take the oldest queued job, run it, repeat.

    Exits when the pool is closing and nothing is queued, or with the pool's
    cancellation.
    """
    assert pool._backend is not None
    cancelled_exc = pool._backend.cancelled_exc
    clock = pool._clock
    # What a task dump shows for this worker: its current job, since
    # when it has been idle, and the submit call that started it.
    info = WorkerInfo(site)
    task = pool._backend.current_task()
    pool._worker_info[task] = info
    plain = pool._plain
    queue = pool._queue
    idle = pool._idle_workers
    streak = 0
    job: Job[Any] | None = None
    fn: Any = None
    args: Any = None
    ctx: Context | None = None
    value: Any = None
    try:
        while True:
            # Job.cancel() cancels this scope; the worker then opens a
            # fresh one and goes on.  One scope per worker rather than per
            # job, because entering a scope costs more than a no-op job.
            with anyio.CancelScope() as scope:
                while True:
                    if not queue:
                        if pool._state != OPEN:
                            # Closing and nothing queued: exit.  A job still
                            # running elsewhere that submits more starts a
                            # new worker on demand.
                            return
                        streak = 0
                        # An idle worker must not keep its last job (and
                        # the job's arguments and value) alive.
                        job = fn = args = ctx = value = None
                        info.job = None
                        info.idle_since = clock()
                        pool._idle_count += 1
                        try:
                            await idle.wait()
                        finally:
                            pool._idle_count -= 1
                            info.idle_since = None
                        continue
                    job = queue.popleft()
                    if job._state != PENDING:
                        continue  # cancelled while queued
                    pool._queued -= 1
                    pool._busy += 1
                    job._state = RUNNING
                    job._scope = scope
                    job._started_at = clock()
                    info.job = job
                    if job._waiters is not None:
                        job._waiters.wake_all()  # a rendezvous submit waits for this
                    fn, args, ctx = job._fn, job._args, job._ctx
                    assert ctx is not None
                    assert args is not None
                    suspended = False
                    # The outcome handlers below are written out rather
                    # than shared through a helper coroutine: creating one
                    # per job costs a tenth of the job.
                    try:
                        if plain:
                            try:
                                coro, yielded = ctx.run(first_step, job, fn, args)
                            except StopIteration as stop:
                                value = stop.value
                            else:
                                suspended = True
                                job._coro = coro
                                value = await resume_in_context(ctx, coro, yielded)
                        else:
                            value, suspended = await _run_configured(pool, job, ctx, fn, args)
                    except cancelled_exc:
                        pool._cancelled += 1
                        job._finish(CANCELLED, None, None)
                        if not _stray_cancellation(pool, job, task):
                            raise
                        # The job raised a cancellation nobody asked for (on
                        # asyncio, awaiting a future that someone else
                        # cancelled): it ends cancelled, the pool goes on.
                    except Exception as exc:
                        pool._failed += 1
                        job._finish(FAILED, None, exc)
                        pool._handle_failure(job, exc)
                    except BaseException as exc:
                        # KeyboardInterrupt, SystemExit...: recorded on the
                        # job and propagated through the task group.
                        pool._failed += 1
                        job._finish(FAILED, None, exc)
                        raise
                    else:
                        pool._completed += 1
                        job._finish(SUCCEEDED, value, None)
                    finally:
                        pool._busy -= 1
                        if pool._room_wanted:
                            # Any free slot wakes a producer: waiting for a
                            # batch of them could deadlock jobs that wait
                            # on that producer (tests/test_submit.py).
                            pool._room_waiters.wake_one()
                    if job._cancel_requested:
                        # Job.cancel() cancelled this scope (reading the flag
                        # is cheaper than asking the scope, on trio).
                        break
                    if suspended:
                        streak = 0
                    else:
                        streak += 1
                        if streak >= _YIELD_EVERY:
                            streak = 0
                            await checkpoint()
    finally:
        del pool._worker_info[task]
        pool._workers -= 1
        pool._maybe_drained()


def _stray_cancellation(pool: Pool, job: Job[Any], task: object) -> bool:
    """Whether a cancellation that ended `job` was asked for by no one.

    Only asyncio has such cancellations: trio raises ``Cancelled`` only from
    a cancelled scope.  Asked for are Job.cancel(), the pool's cancellation,
    an enclosing anyio scope, and a native ``Task.cancel()`` of the worker.
    """
    backend = pool._backend
    assert backend is not None
    if backend.name != "asyncio" or job._cancel_requested or pool._cancel_called:
        return False
    if backend.cancel_pending():
        return False
    # A native Task.cancel() of the worker (Python 3.11+ can tell); before
    # 3.11 nothing can, and only anyio's scopes, checked above, cancel workers.
    cancelling: Any = getattr(task, "cancelling", None)
    return cancelling is None or not cancelling()


async def _run_configured(
    pool: Pool, job: Job[Any], ctx: Context, fn: Callable[..., Any], args: tuple[Any, ...]
) -> tuple[Any, bool]:
    """Run a job under the pool's timeout, retry and rate options.

    Returns the job's value and whether anything suspended.
    """
    retry, rate, timeout = pool._retry, pool._rate, pool._job_timeout
    attempt = 0
    suspended = False
    while True:
        attempt += 1
        if rate is not None:
            # Waiting for a start slot is not running: a task dump or the
            # stall watchdog must not count it.
            job._started_at = None
            if await rate.acquire():
                suspended = True
            job._started_at = pool._clock()
        try:
            if timeout is None:
                return await _attempt(job, ctx, fn, args, suspended)
            with anyio.CancelScope(deadline=pool._clock() + timeout):
                return await _attempt(job, ctx, fn, args, suspended)
            # Only reached when the deadline cancelled the attempt.
            raise TimeoutError(f"{job!r} timed out after {timeout:g} s (job_timeout)")
        except Exception as exc:
            if retry is None or not retry.retries(exc, attempt):
                raise
            job._coro = None
            pool._retries += 1
            suspended = True
            await anyio.sleep(retry.delay(attempt))


async def _attempt(
    job: Job[Any], ctx: Context, fn: Callable[..., Any], args: tuple[Any, ...], suspended: bool
) -> tuple[Any, bool]:
    """One run of a job for `_run_configured`: its value, and whether anything suspended."""
    try:
        coro, yielded = ctx.run(first_step, job, fn, args)
    except StopIteration as stop:
        return stop.value, suspended
    job._coro = coro
    return await resume_in_context(ctx, coro, yielded), True


def first_step(job: Job[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, Any]:
    """Create the job's coroutine and run it to its first suspension, in the job's context.

    Returns the coroutine and what it yielded; a job that finishes without
    suspending (most jobs of a hot loop) raises StopIteration with its value,
    so it never needs the `resume_in_context` generator.
    """
    current_job.set(job)
    try:
        coro: Any = fn(*args)
    except StopIteration as exc:  # must not pass for "the job returned"
        raise RuntimeError(f"{fn!r} raised StopIteration") from exc
    coro_type: Any = coro.__class__
    if coro_type is not CoroutineType:
        await_ = getattr(coro_type, "__await__", None)
        if await_ is None:
            raise TypeError(
                f"{fn!r} returned {coro_type.__name__}, not an awaitable; "
                "workpool jobs must be async functions"
            )
        coro = await_(coro)
    yielded: Any = coro.send(None)
    return coro, yielded
