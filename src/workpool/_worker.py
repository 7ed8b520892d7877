"""The worker loop: how a pool's worker task runs job after job."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from contextvars import Context
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ._acking import run_and_ack
from ._context import JobRunner, resume_in_context
from ._idle import RETIRE, WAKE
from ._job import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Job, Site

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["CLOSING", "EXITED", "NEW", "OPEN", "WorkerInfo", "run_worker"]

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

    __slots__ = (
        "cancel_requested",
        "fresh",
        "idle_since",
        "job",
        "runner",
        "scope",
        "site",
        "started_at",
        "wakeup",
        "wakeup_reason",
    )

    def __init__(self, site: Site | None) -> None:
        self.site = site
        self.job: Job[Any] | None = None
        # When the current job started (event loop clock), for dumps and the
        # stall watchdog; None while a rate-limited job waits for its start
        # slot.  Read only once the job suspends: before that, no other task
        # can run to look at it.
        self.started_at: float | None = None
        self.idle_since: float | None = None
        self.runner = JobRunner()
        # The worker's current cancel scope, which Job.cancel() cancels, and
        # whether it did: the worker then leaves that scope for a fresh one.
        self.scope: anyio.CancelScope | None = None
        self.cancel_requested = False
        # How IdleWorkers wakes this worker while it is parked, and why it did.
        self.wakeup: Any = None
        self.wakeup_reason = 0
        # Whether the worker has started, been woken or paused for fairness
        # since it last got more workers going: the first of its jobs to
        # suspend then does (see _ramp_up_if_fresh).
        self.fresh = True


async def run_worker(pool: Pool, site: Site | None) -> None:
    """The loop of one worker task: take the oldest queued job, run it, repeat.

    Exits when the pool is closing and nothing is queued, when it has been
    idle for the pool's ``idle_timeout``, or with the pool's cancellation.
    """
    await _work(pool, site)


@types.coroutine
def _work(pool: Pool, site: Site | None) -> Generator[Any, Any, None]:
    # A generator-based coroutine rather than an async def: what a suspended
    # job yields (an asyncio future, a trio trap) passes through this frame
    # to the event loop with a plain yield, so a job that suspends needs no
    # stepping generator of its own (resume_in_context: 8% of a job that
    # awaits anyio.sleep(0)).  Other waits go through
    # "yield from <coroutine>.__await__()".
    assert pool._backend is not None
    cancelled_exc = pool._backend.cancelled_exc
    cancel_pending = pool._backend.cancel_pending
    checkpoint = pool._backend.checkpoint
    clock = pool._clock
    # What a task dump shows for this worker: its current job, since
    # when it has been idle, and the submit call that started it.
    info = WorkerInfo(site)
    runner = info.runner
    send, throw = runner.send, runner.throw
    outcome = runner.outcome
    task = pool._backend.current_task()
    pool._worker_info[task] = info
    plain = pool._plain
    # max_pending=0: a submit returns once a worker has taken the job.
    rendezvous = pool._max_pending == 0
    queue = pool._queue
    idle = pool._idle_workers
    assert idle is not None
    streak = 0
    yield_every = _YIELD_EVERY
    job: Job[Any] | None = None
    ctx: Context | None = None
    error: BaseException | None = None
    on_done: Callable[[Job[Any]], None] | None = None
    yielded: Any = None
    sent: Any = None
    try:
        # Started for a queued job (Pool._wake_worker): no longer on the way.
        # More workers start only once a job suspends (see below).
        pool._waking -= 1
        while True:
            # Job.cancel() cancels this scope; the worker then opens a
            # fresh one and goes on.  One scope per worker rather than per
            # job, because entering a scope costs more than a no-op job.
            with anyio.CancelScope() as scope:
                info.scope = scope
                info.cancel_requested = False
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
                        job = ctx = error = yielded = sent = info.job = outcome.value = None
                        try:
                            reason = yield from idle.park(info).__await__()
                        except BaseException:
                            if info.wakeup_reason == WAKE:
                                # Woken for a job, then cancelled before it
                                # ran: another worker must take the job,
                                # unless the whole pool is being cancelled.
                                pool._waking -= 1
                                if queue and not pool._cancel_called and not cancel_pending():
                                    pool._wake_worker(site)
                            raise
                        finally:
                            info.idle_since = None
                        info.fresh = True
                        if reason == WAKE:
                            pool._waking -= 1
                        elif reason == RETIRE and not queue:
                            return
                        continue
                    job = queue.popleft()
                    if job._state != PENDING:
                        pool._stale -= 1
                        continue  # cancelled while queued
                    job._state = RUNNING
                    job._worker = info
                    info.job = job
                    if rendezvous and job._waiters is not None:
                        # The submit waits for this.  Only then: the tasks
                        # that await the job would wake for nothing.
                        job._waiters.wake_all()
                    if plain:
                        ctx = job._ctx
                        assert ctx is not None
                        yielded = ctx.run(send, job)
                        if yielded is outcome:
                            streak += 1
                        else:
                            # Only a job that suspends can be seen running by
                            # a dump or the watchdog (they are tasks too), so
                            # only it pays for reading the clock; its start
                            # is taken as its first suspension.
                            info.started_at = clock()
                            streak = 0
                            if info.fresh:  # tested here too: a call costs
                                _ramp_up_if_fresh(pool, info)
                            # resume_in_context, written out (see above).
                            while yielded is not outcome:
                                try:
                                    sent = yield yielded
                                except GeneratorExit:
                                    runner.close()
                                    raise
                                except BaseException as exc:  # the job decides
                                    yielded = ctx.run(throw, exc)
                                else:
                                    yielded = ctx.run(send, sent)
                            info.started_at = None
                        error = outcome.error
                    else:
                        # Whether it suspended is not tracked here: counting
                        # every such job costs one checkpoint per 64 at most.
                        info.started_at = clock()
                        error = yield from _run_configured(pool, job, info).__await__()
                        info.started_at = None
                        streak += 1
                    # The outcome handling is written out here rather than
                    # in a helper: a call per job costs a tenth of the job.
                    pool._accepted -= 1
                    if error is None:
                        pool._completed += 1
                        # Job._finish(SUCCEEDED, value), inlined.
                        job._state = SUCCEEDED
                        job._outcome = outcome.value
                        job._args = job._ctx = job._pool = job._worker = None
                        job._checkpoint = checkpoint
                        if job._waiters is not None:
                            job._waiters.wake_all()
                        if job._on_done is not None:  # Job._call_on_done, inlined
                            on_done = job._on_done
                            job._on_done = None
                            on_done(job)
                            on_done = None  # it holds its map: not kept past the job
                    else:
                        outcome.error = None
                        if isinstance(error, cancelled_exc):
                            pool._cancelled += 1
                            job._finish(CANCELLED, None)
                            if not info.cancel_requested and not _stray_cancellation(pool, task):
                                if pool._room_waiters.parked and not pool._cancel_called:
                                    # The job's slot is free, and raising
                                    # skips the wake-up below.
                                    pool._room_waiters.wake_one()
                                raise error
                            # Job.cancel() asked for it: the worker leaves
                            # its cancelled scope below rather than raising
                            # through it.  What the job raised need not be
                            # the scope's own cancellation (on asyncio, one
                            # from a future someone else cancelled in the
                            # same tick), and the scope would not swallow
                            # that: the worker, and with it the pool, would
                            # be cancelled.  Or the job raised a cancellation
                            # nobody asked for (such a future, alone): it
                            # ends cancelled, the pool goes on.
                        else:
                            pool._failed += 1
                            job._finish(FAILED, error)
                            if isinstance(error, Exception):
                                pool._handle_failure(job, error)
                            else:
                                # KeyboardInterrupt, SystemExit...: recorded on
                                # the job and propagated through the task group.
                                raise error
                    if pool._room_waiters.parked:
                        # Any free slot wakes a producer: waiting for a
                        # batch of them could deadlock jobs that wait on
                        # that producer (tests/test_submit.py).  Once it is
                        # woken, the jobs that end before it runs skip this.
                        pool._room_waiters.wake_one()
                    if info.cancel_requested:
                        # Job.cancel() cancelled this scope (reading the flag
                        # is cheaper than asking the scope, on trio).
                        break
                    if streak >= yield_every:
                        streak = 0
                        # Counted as on its way back to the queue, so that
                        # jobs submitted meanwhile wake no other worker; it
                        # is then fresh, like a woken worker, so that it gets
                        # workers for them if one of its next jobs suspends.
                        pool._waking += 1
                        try:
                            yield from checkpoint().__await__()
                        finally:
                            pool._waking -= 1
                        info.fresh = True
    finally:
        if job is not None and job._state == RUNNING:
            # Cancelled or closed while the job ran (the pool's cancellation
            # reached the worker itself): the job ends cancelled.
            pool._accepted -= 1
            pool._cancelled += 1
            job._finish(CANCELLED, None)
        info.runner.close()
        del pool._worker_info[task]
        pool._workers -= 1
        pool._maybe_drained()


def work_loop_code() -> types.CodeType:
    """The code of the worker loop, which task dumps look inside (see _frames.py)."""
    code: types.CodeType = getattr(_work, "__code__")  # noqa: B009 - types.coroutine keeps it
    return code


def _ramp_up_if_fresh(pool: Pool, info: WorkerInfo) -> None:
    """Called as a job of the worker `info` suspends: get more workers going if it is fresh.

    More workers help only now: jobs that never suspend run back to back on
    this one, and more workers would only cost a task each, which every
    garbage collection walks.  Only a fresh worker asks: if every worker
    whose job suspends did, workers busy with short waits would wake idle
    ones to take jobs they were about to take themselves.
    """
    if info.fresh:
        info.fresh = False
        pool._ramp_up()


def _stray_cancellation(pool: Pool, task: object) -> bool:
    """Whether a cancellation that ended a job of worker `task` was asked for by no one.

    Only asyncio has such cancellations: trio raises ``Cancelled`` only from
    a cancelled scope.  Asked for are Job.cancel() (checked by the caller),
    the pool's cancellation, an enclosing anyio scope, and a native
    ``Task.cancel()`` of the worker.
    """
    backend = pool._backend
    assert backend is not None
    if backend.name != "asyncio" or pool._cancel_called:
        return False
    if backend.cancel_pending():
        return False
    # A native Task.cancel() of the worker (Python 3.11+ can tell); before
    # 3.11 nothing can, and only anyio's scopes, checked above, cancel workers.
    cancelling: Any = getattr(task, "cancelling", None)
    return cancelling is None or not cancelling()


async def _run_configured(pool: Pool, job: Job[Any], info: WorkerInfo) -> BaseException | None:
    """Run a job under the pool's timeout, retry and rate options.

    Returns the exception the job ended with, cancellation included (its
    value is otherwise in ``info.runner.outcome``), or None.
    """
    try:
        wrapper: Callable[..., Any] = job._fn
        if not (isinstance(wrapper, partial) and wrapper.func is run_and_ack):
            await _attempts(pool, job, info)
        else:
            # An item of an AckingSource (Pool.consume): the source hears the
            # outcome of the whole job, once, and outside its job_timeout.
            # Acked or nacked per attempt, a retried item was nacked and then
            # acked again, and a timed-out one got neither and was leased
            # forever (tests/test_acking.py).
            fn, source = wrapper.args
            assert job._args is not None
            (item,) = job._args
            job._fn = fn
            try:
                await _attempts(pool, job, info)
            except Exception as error:
                await _as_part_of(pool, job, info, source.nack, (item, error))
                raise
            await _as_part_of(pool, job, info, source.ack, (item,))
    except BaseException as exc:
        return exc
    return None


async def _as_part_of(
    pool: Pool, job: Job[Any], info: WorkerInfo, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]
) -> None:
    """Await ``fn(*args)`` as part of `job`: in its context, as ``run_and_ack`` does on the plain path.

    It sees the job's contextvars and counts as the job's own code (its
    submits skip the bound), but the job's timeout no longer applies.
    """
    job_fn, job_args = job._fn, job._args
    job._fn, job._args = fn, args
    try:
        await _attempt(pool, job, info)
    finally:
        job._fn, job._args = job_fn, job_args


async def _attempts(pool: Pool, job: Job[Any], info: WorkerInfo) -> None:
    """Run a job's attempts for `_run_configured`; raises how the last one ended."""
    retry, rate, timeout = pool._retry, pool._rate, pool._job_timeout
    attempt = 0
    while True:
        attempt += 1
        if rate is not None:
            # Waiting for a start slot is not running: a task dump or the
            # stall watchdog must not count it.
            info.started_at = None
            await rate.acquire()
            info.started_at = pool._clock()
        if attempt > 1:
            # Counted as it runs: a job cancelled while it waits out its
            # backoff (or for a start slot) was not run again.
            pool._retries += 1
        try:
            if timeout is None:
                await _attempt(pool, job, info)
                return
            with anyio.CancelScope(deadline=pool._clock() + timeout):
                await _attempt(pool, job, info)
                return
            # Only reached when the deadline cancelled the attempt.
            raise TimeoutError(f"{job!r} timed out after {timeout:g} s (job_timeout)")
        except Exception as exc:
            if retry is None or not retry.retries(exc, attempt):
                raise
            # Waiting out the backoff keeps this worker busy as much as
            # a job that suspends does.  (Waiting for a start slot does
            # not count: other workers would wait for the rate too.)
            _ramp_up_if_fresh(pool, info)
            # Like the wait for a start slot, the backoff is not running
            # time: the stall watchdog must not count it, and the next
            # attempt's time starts afresh.
            info.started_at = None
            await anyio.sleep(retry.delay(attempt))
            info.started_at = pool._clock()


async def _attempt(pool: Pool, job: Job[Any], info: WorkerInfo) -> None:
    """One run of a job for `_run_configured`; raises what the job raised."""
    ctx = job._ctx
    assert ctx is not None
    runner = info.runner
    yielded = ctx.run(runner.send, job)
    if yielded is not runner.outcome:
        _ramp_up_if_fresh(pool, info)
        await resume_in_context(ctx, runner, yielded)
    error = runner.outcome.error
    if error is not None:
        runner.outcome.error = None
        raise error
