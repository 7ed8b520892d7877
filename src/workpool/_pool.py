"""`Pool`: a bounded set of worker tasks that lives in one task group."""

from __future__ import annotations

import sys
import weakref
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from contextvars import copy_context
from functools import partial
from types import FrameType, TracebackType
from typing import Any, Literal, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint
from typing_extensions import Self, TypeVarTuple, Unpack

from . import _registry
from ._backend import Backend, current_backend
from ._context import current_job
from ._errors import PoolClosed, PoolFull
from ._groups import without, without_cancellations
from ._idle import IdleWorkers, make_idle_workers
from ._job import PENDING, Job, Site
from ._map import MapIterator, consume_source
from ._periodic import PeriodicJob
from ._ratelimit import RateLimit
from ._retry import Retry
from ._stall import watch_stalls
from ._stats import PoolStats, ShutdownReport
from ._threads import check_sync_callable, run_in_thread
from ._validate import (
    check_async_callable,
    check_bool,
    check_grace,
    check_interval,
    check_jitter,
    check_optional_rate,
    check_optional_timeout,
    check_pending,
    check_positive_int,
    check_str,
)
from ._waiters import NO_WAITERS, Waiters
from ._worker import CLOSING, EXITED, NEW, OPEN, WorkerInfo, run_worker

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # a dependency of anyio there

__all__ = ["ErrorPolicy", "Pool"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

ErrorPolicy = Literal["cancel", "collect"] | Callable[[Job[Any], Exception], object]
"""What a `Pool` does when a job raises: ``"cancel"``, ``"collect"`` or a handler ``(job, exc)``."""


class Pool:
    """A set of at most ``max_workers`` worker tasks, owned by one task group.

    Use it as ``async with Pool(...) as pool:``.  Every worker, and every task
    the pool starts for `map`, lives inside the block:

    * leaving the block normally closes the pool (see `close`): no new jobs
      from outside, every accepted job still runs, and the block waits for
      them all;
    * leaving it with an exception, calling `cancel`, or cancellation of the
      enclosing scope cancels every queued and running job and exits promptly.

    Workers start on demand, up to ``max_workers``, and a worker that has
    had nothing to do for ``idle_timeout`` seconds exits: a pool that never
    ran a job holds no worker tasks, and one that has gone quiet gives its
    workers back.  On trio, one more task of the pool retires them,
    ``"<name>-idle-timer"``: it starts with the first worker and runs until
    the pool closes (on asyncio a callback of the event loop does it; with
    ``idle_timeout=None`` nothing does).

    Args:
        max_workers: the most jobs that run at once (a positive int).
        max_pending: the most accepted jobs waiting for a worker.  `submit`
            waits, and `submit_nowait` raises `PoolFull`, while
            ``running + queued >= max_workers + max_pending``.  ``0`` accepts a
            job only when a worker is free to start it (an unbuffered
            channel); ``None`` never waits.
        on_error: what a failing job does to the pool.  ``"cancel"`` (the
            default, like a task group): the first failure cancels the pool,
            and the block raises an `ExceptionGroup` of the failures (never of
            the cancellations they caused).  ``"collect"``: the other jobs go
            on, and the block raises all failures together when it exits.  A
            callable ``(job, exc)``: called for each failure, and the pool
            goes on; if it raises, that exception is handled as ``"cancel"``.
            Whatever the policy, whoever awaits the job gets its exception
            too.  A cancelled job is not a failure.
        job_timeout: seconds a job may run before it is cancelled and fails
            with `TimeoutError` (a failure like any other), or ``None``.
        retry: a `Retry` policy: which failed jobs run again, and after how
            long; only the last failure reaches ``on_error``.
        max_per_second: the most job starts per second, evenly spaced
            (a rate, not a burst allowance), or ``None``.
        stall_after: seconds after which a still-running job is reported,
            once, on the ``workpool`` logger with its stack and submit site,
            and counted in `PoolStats.stalled`; or ``None``.
        shutdown_grace: when the block exits normally, run `shutdown` with
            this grace period instead of waiting for every job; or ``None``.
        idle_timeout: seconds a worker may wait for a job before it exits
            (another starts when work arrives), or ``None`` to keep every
            worker until the pool closes.
        name: names the worker tasks (``"<name>-worker-<n>"``) and, on
            trio, the idle timer (``"<name>-idle-timer"``), and appears in
            error messages.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """

    # Slots, not a __dict__: the per-job paths read and write a dozen of
    # these, and Python 3.11 specialises slot access better than the lookups
    # in a dictionary this large.  __weakref__ for the registry of open pools.
    __slots__ = (
        "__weakref__",
        "_accepted",
        "_backend",
        "_cancel_called",
        "_cancelled",
        "_capacity",
        "_clock",
        "_completed",
        "_drained",
        "_error_handler",
        "_failed",
        "_failures",
        "_holding",
        "_idle_timeout",
        "_idle_workers",
        "_intake_scopes",
        "_job_map_scopes",
        "_job_timeout",
        "_last_fn",
        "_max_pending",
        "_max_per_second",
        "_max_workers",
        "_name",
        "_on_error",
        "_parked",
        "_plain",
        "_queue",
        "_rate",
        "_retries",
        "_retry",
        "_room_waiters",
        "_room_wanted",
        "_service_scopes",
        "_shutdown_grace",
        "_stale",
        "_stall_after",
        "_stalled",
        "_state",
        "_tg",
        "_waking",
        "_worker_info",
        "_worker_seq",
        "_workers",
    )

    def __init__(
        self,
        *,
        max_workers: int = 10,
        max_pending: int | None = 1000,
        on_error: ErrorPolicy = "cancel",
        job_timeout: float | None = None,
        retry: Retry | None = None,
        max_per_second: float | None = None,
        stall_after: float | None = None,
        shutdown_grace: float | None = None,
        idle_timeout: float | None = 10.0,
        name: str = "workpool",
    ) -> None:
        self._max_workers = check_positive_int(max_workers, "max_workers")
        pending = check_pending(max_pending, "max_pending")
        self._max_pending = pending
        # Jobs accepted but not finished; None stands for "no bound".
        self._capacity: float = self._max_workers + pending if pending is not None else float("inf")
        if isinstance(on_error, str):
            if on_error not in ("cancel", "collect"):
                raise ValueError(
                    f"on_error must be 'cancel', 'collect' or a callable (job, exc) -> None, got {on_error!r}"
                )
        elif not callable(on_error):
            raise TypeError(
                f"on_error must be 'cancel', 'collect' or a callable (job, exc) -> None, "
                f"got {type(on_error).__name__} {on_error!r}"
            )
        self._on_error = on_error
        self._error_handler: Callable[[Job[Any], Exception], object] | None = (
            None if isinstance(on_error, str) else on_error
        )
        self._job_timeout = check_optional_timeout(job_timeout, "job_timeout")
        if retry is not None and not _is_retry(retry):
            raise TypeError(f"retry must be a workpool.Retry or None, got {type(retry).__name__} {retry!r}")
        self._retry = retry
        self._max_per_second = check_optional_rate(max_per_second, "max_per_second")
        self._rate: RateLimit | None = None
        self._stall_after = check_optional_timeout(stall_after, "stall_after")
        self._shutdown_grace = (
            None if shutdown_grace is None else check_grace(shutdown_grace, "shutdown_grace")
        )
        # Jobs with none of these options run on the worker's fast path.
        self._plain = job_timeout is None and retry is None and max_per_second is None
        self._idle_timeout = check_optional_timeout(idle_timeout, "idle_timeout")
        self._name = check_str(name, "name")

        self._state = NEW
        self._tg: TaskGroup | None = None
        self._backend: Backend | None = None
        self._cancel_called = False

        self._queue: deque[Job[Any]] = deque()
        # Made when the pool opens: they belong to the running event loop.
        self._idle_workers: IdleWorkers | None = None
        # Its stack of parked workers, read on every submit.
        self._parked: deque[WorkerInfo] = deque()
        self._room_waiters: Waiters = NO_WAITERS
        self._drained: anyio.Event | None = None
        self._clock: Callable[[], float] = _no_clock
        # Worker task -> what it is doing; read by task dumps (workpool.dump_tasks).
        self._worker_info: dict[object, WorkerInfo] = {}
        # Cancel scopes of map feeders and consume loops, cancelled on close.
        self._intake_scopes: set[anyio.CancelScope] = set()
        # Those of maps that the pool's own jobs started: not stopped by
        # close(), but once no job is left that could read them.
        self._job_map_scopes: set[anyio.CancelScope] = set()
        self._failures: list[BaseException] = []

        self._workers = 0
        self._worker_seq = 0
        # Jobs accepted and not finished, queued or running: what the bound
        # applies to.  Queued and busy are derived from it when asked for
        # (stats), which saves the worker two counter updates per job.
        self._accepted = 0
        # Jobs cancelled while queued: they stay in the deque until a worker
        # (or _cancel_queued) pops them, so len(queue) counts them too.
        self._stale = 0
        # Items that a map or consume intake took from its source and holds
        # until there is room, and intakes waiting for their source's next
        # item (see _map.py): not jobs yet, but close() and shutdown() must
        # wait for them as if they were.
        self._holding = 0
        # The last function that passed check_async_callable (a producer
        # submits the same one over and over); weakly, so that a closure or
        # partial and what it carries do not outlive their last job.
        self._last_fn: Callable[[], object] = _no_fn
        # Workers woken or started that have not yet looked at the queue, and
        # those that paused for fairness and will look again: a new job wakes
        # another worker only when this is 0, and a worker just started, woken
        # or back from its pause wakes up to two more once one of its jobs
        # suspends, if the queue is long (_ramp_up).  Waking one worker per
        # job would wake dozens for a burst that one worker runs.
        self._waking = 0
        # Producers inside _wait_for_room, woken or not yet; how many are
        # parked and not woken is _room_waiters.parked.
        self._room_wanted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._retries = 0
        self._stalled = 0
        # Background tasks of the pool itself (the stall watchdog, signal
        # listeners): they stop once a closing pool has drained.
        self._service_scopes: set[anyio.CancelScope] = set()

    def __repr__(self) -> str:
        state = ("new", "open", "closing", "exited")[self._state]
        return (
            f"<workpool.Pool {self._name!r} {state} workers={self._workers}/{self._max_workers} "
            f"busy={self._accepted - self._queued} queued={self._queued}>"
        )

    # -- life cycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Open the pool: create its task group.  No worker starts until a job arrives.

        Raises:
            RuntimeError: the pool was opened before (a pool is used once).
        """
        if self._state != NEW:
            raise RuntimeError("a Pool can be opened only once; create a new Pool for each 'async with'")
        self._backend = backend = current_backend()
        self._clock = backend.clock
        self._idle_workers = make_idle_workers(backend.name, self._idle_timeout, backend.clock)
        self._parked = self._idle_workers.stack
        self._room_waiters = backend.waiters()
        if self._max_per_second is not None:
            self._rate = RateLimit(self._max_per_second, backend.clock)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._state = OPEN
        _registry.register(self)
        if self._stall_after is not None:
            self._start_service(watch_stalls, self, self._stall_after, name=f"{self._name}-stall-watchdog")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._tg is not None
        assert self._backend is not None
        cancelled_exc = self._backend.cancelled_exc
        # The body's error, without the cancellations that the pool's own
        # teardown caused (on trio, an inner task group in the body reports
        # them together with its error).
        body_error = without_cancellations(exc, cancelled_exc) if exc is not None else None
        if exc is None:
            if self._shutdown_grace is not None and not self._cancel_called:
                try:
                    await self.shutdown(self._shutdown_grace)
                except BaseException as error:  # cancelled from outside while draining
                    exc_type, exc, tb = type(error), error, error.__traceback__
                    body_error = without_cancellations(error, cancelled_exc)
                    self._cancel_all()
            self._close_intake()
        else:
            self._cancel_all()
        raised: BaseException | None = None
        try:
            if body_error is None:
                # The task group tells its own cancellation (pool.cancel(), a
                # failure) from an enclosing scope's, and swallows only its own.
                await self._tg.__aexit__(exc_type, exc, tb)
            else:
                await self._tg.__aexit__(None, None, None)
        except BaseException as error:
            raised = error
        finally:
            self._state = EXITED
            _registry.unregister(self)
            self._last_fn = _no_fn
            self._cancel_queued()
            if self._drained is not None:
                self._drained.set()

        # A failure that the body also received (it awaited the job) is
        # reported once, as a failure: the block raises a group of failures
        # whether or not someone awaited them.
        failure_ids = {id(e) for e in self._failures}
        if body_error is not None and failure_ids:
            body_error = without(body_error, lambda e: id(e) in failure_ids)
        errors: list[BaseException] = []
        if body_error is not None:
            errors.append(body_error)
        # A job that awaited a failed job and re-raised its exception failed
        # too, with the same exception: it is listed once.
        errors.extend({id(e): e for e in self._failures}.values())
        self._failures = []
        rest = without_cancellations(raised, cancelled_exc) if raised is not None else None
        if rest is not None:
            errors.append(rest)
        if not errors:
            if raised is not None:
                raise raised
            return exc is not None
        if body_error is not None and errors == [body_error]:
            if body_error is exc:
                return False  # the body's own exception propagates untouched
            raise body_error
        # Errors win over a cancellation that arrived with them, as in an
        # anyio task group: the errors propagate, none is dropped.
        raise BaseExceptionGroup(f"{len(errors)} error(s) in workpool.Pool {self._name!r}", errors)

    async def close(self) -> None:
        """Stop intake, then wait until every accepted job has finished and every worker has exited.

        After it is called, `submit`, `submit_nowait`, `map` and `consume`
        raise `PoolClosed` (jobs that the pool's own jobs submit are still
        accepted, so a job can finish fanning out); producers waiting for
        room get `PoolClosed`; running `map` and `consume` calls stop taking
        items from their sources, except a `map` that one of the pool's own
        jobs iterates, which reads on like that job's submits.  Calling it
        again waits again.

        Cancellation: cancelling the caller stops the waiting, not the jobs.

        Raises:
            RuntimeError: called from inside one of this pool's jobs (it would
                wait for itself), or before the pool was opened.
        """
        self._check_entered("close")
        if self._is_own_job():
            raise RuntimeError(
                "Pool.close() was called from inside one of its own jobs and would wait for itself; "
                "call pool.cancel() to stop the pool, or close it from outside"
            )
        self._close_intake()
        await self._wait_drained()

    async def shutdown(self, grace: float) -> ShutdownReport:
        """Close the pool, give its jobs `grace` seconds to finish, then cancel the rest.

        Intake stops as with `close`; queued and running jobs then have at
        most `grace` seconds to finish.  Whatever is left is cancelled (not
        the pool's block itself, which goes on), and this waits for those jobs
        to end; a job that ignores its cancellation is still waited for.
        ``Pool(shutdown_grace=...)`` does this when the ``async with`` block
        exits normally.

        Returns:
            What the shutdown did: jobs that finished during it, and jobs it cancelled.

        Cancellation: cancelling the caller stops the waiting, not the jobs.

        Raises:
            TypeError, ValueError: `grace` is not a number of seconds >= 0.
            RuntimeError: called from one of the pool's own jobs, or before the pool was opened.
        """
        grace = check_grace(grace)
        self._check_entered("shutdown")
        if self._is_own_job():
            raise RuntimeError(
                "Pool.shutdown() was called from inside one of its own jobs and would wait for itself"
            )
        finished_before = self._completed + self._failed
        cancelled_before = self._cancelled
        self._close_intake()
        with anyio.move_on_after(grace):
            await self._wait_drained()
        # Forced only if jobs are left: workers still on their way out (a
        # short grace may end before an idle one has run) are only waited for.
        forced = bool(self._accepted or self._holding)
        if forced:
            self._cancel_jobs()
        await self._wait_drained()
        return ShutdownReport(
            finished=self._completed + self._failed - finished_before,
            cancelled=self._cancelled - cancelled_before,
            forced=forced,
        )

    def every(
        self,
        interval: float,
        fn: Callable[[Unpack[PosArgsT]], Awaitable[object]],
        *args: Unpack[PosArgsT],
        first_run_now: bool = False,
        jitter: float = 0.0,
    ) -> PeriodicJob:
        """Run ``fn(*args)`` as a job every `interval` seconds, until the pool closes.

        The first run starts after one interval (or at once with
        ``first_run_now=True``); each later one at the next tick of the
        schedule after the previous run has finished, so runs never overlap
        and ticks missed by a slow run are dropped, as with Go's
        ``time.Ticker``.  ``jitter`` delays each run by a random 0 to
        `jitter` seconds.  Each run is an ordinary job: it counts in
        `stats`, and a failure goes to ``on_error``.  A run does not wait
        for room: it is accepted even when the pool is full, so each
        schedule may hold one job beyond ``max_workers + max_pending``
        (never more: its runs do not overlap), and a full pool that only
        schedules keep busy stays full.

        Returns:
            A handle whose `PeriodicJob.cancel` ends the schedule.  The
            schedule also ends when the pool closes or is cancelled.

        Raises:
            TypeError: `fn` is not an async function, or a bad argument type.
            ValueError: `interval` is not a positive, finite number of
                seconds, or `jitter` is negative.
            PoolClosed: the pool is closed.
        """
        check_async_callable(fn, "Pool.every")
        interval = check_interval(interval)
        jitter = check_jitter(jitter)
        check_bool(first_run_now, "first_run_now")
        # Even a job of the pool's own may not start a schedule once the pool
        # is closing: nothing would stop it.
        self._check_intake("every")
        assert self._tg is not None
        handle = PeriodicJob._new()
        scope = handle._scope
        self._intake_scopes.add(scope)
        site = _caller_site()

        async def run() -> None:
            try:
                await handle._run(self, interval, fn, args, first_run_now, jitter, site)
            finally:
                self._intake_scopes.discard(scope)

        self._tg.start_soon(run, name=f"{self._name}-every-{getattr(fn, '__name__', 'job')}")
        return handle

    def cancel(self) -> None:
        """Cancel the pool now, like Go's ``cancel()`` of a context.

        Queued jobs are cancelled at once, running jobs get a cancellation at
        their next checkpoint, and the ``async with`` block (whose body is
        cancelled too) exits quietly: cancelling a pool is not an error.
        Never blocks; calling it again, or after the pool exited, does nothing.
        """
        if self._state in (OPEN, CLOSING):
            self._cancel_all()

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters; see `PoolStats`."""
        queued = self._queued
        return PoolStats(
            workers=self._workers,
            busy=self._accepted - queued,
            queued=queued,
            submitted=self._accepted + self._completed + self._failed + self._cancelled,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            retries=self._retries,
            stalled=self._stalled,
        )

    @property
    def _queued(self) -> int:
        return len(self._queue) - self._stale

    @property
    def max_workers(self) -> int:
        """The most jobs that run at once."""
        return self._max_workers

    @property
    def max_pending(self) -> int | None:
        """The most accepted jobs that wait for a worker; ``None`` for no bound."""
        return self._max_pending

    @property
    def name(self) -> str:
        """The pool's name, used in task names and error messages."""
        return self._name

    # -- intake --------------------------------------------------------------

    async def submit(self, fn: Callable[[Unpack[PosArgsT]], Awaitable[T]], *args: Unpack[PosArgsT]) -> Job[T]:
        """Accept ``fn(*args)`` as a job, waiting for room if the pool is full.

        Returns as soon as the job is accepted, with a `Job` handle; the job
        runs on a worker later, in the `contextvars` context this call had.
        Pass keyword arguments with `functools.partial`.  Jobs run in no
        particular order, though a free worker takes the oldest queued job.

        A job submitted from inside one of the pool's own jobs (or from a
        task such a job started) never waits for room, since that could
        deadlock a pool whose every worker is submitting: it is accepted over
        the bound, and also while the pool is closing, so a job can finish
        fanning out.

        With ``max_pending=0`` it returns only once a worker has taken the
        job, like a send on an unbuffered channel.

        Cancellation: this is a cancellation point.  If it is cancelled while
        waiting for room, nothing was submitted; if it is cancelled while
        waiting for a worker to take the job (``max_pending=0``), the job is
        cancelled.

        Raises:
            TypeError: `fn` is not an async function, or a coroutine object
                was passed instead of a function.
            PoolClosed: the pool is closed or cancelled, also if that happens
                while waiting for room.
            RuntimeError: the pool was not opened with ``async with``.
        """
        # _submit_at is a copy of what follows, for submit_thread: change both.
        # Attributes that hold a function are read into a local before the
        # call: Python 3.11 does not specialise calling them like methods,
        # and the generic lookups cost 1.4% of a no-op job (the two here).
        last_fn = self._last_fn
        if last_fn() is not fn:
            check_async_callable(fn, "Pool.submit")
            self._remember_fn(fn)
        backend = self._backend
        if backend is None:
            self._check_entered("submit")
            raise AssertionError  # pragma: no cover
        # A cancellation point on every call, but a schedule point only when
        # it has to wait for room, like asyncio.Queue.put: a full checkpoint
        # per call would cost more than the job.
        cancel_pending = backend.cancel_pending
        if cancel_pending():
            await backend.checkpoint_if_cancelled()
        if (self._state != OPEN or self._accepted >= self._capacity) and not self._is_own_job():
            self._check_intake()
            await self._wait_for_room()
        # _caller_site(), inlined: a call costs a twentieth of a job.
        frame = _getframe(1)
        site = _last_site
        if site[1] != frame.f_lasti or site[0] is not frame.f_code:
            site = _remember_site(frame)
        # _enqueue, written out: the call cost 3% of a no-op job (460
        # instructions; benchmarks/instructions.py).  Change both.
        if self._state != OPEN and (self._cancel_called or self._state == EXITED):
            raise PoolClosed(f"workpool.Pool {self._name!r} was cancelled and accepts no new jobs")
        job: Job[Any] = _new_object(Job)
        job._pool = self
        job._fn = fn
        job._args = args
        job._ctx = copy_context()
        job._on_done = None
        job._state = PENDING
        job._waiters = None
        job._site = site
        self._queue.append(job)
        self._accepted += 1
        if not self._waking and (self._parked or self._workers < self._max_workers):
            self._wake_worker(site)
        if self._max_pending == 0 and job._state == PENDING and not self._is_own_job():
            # A rendezvous: return once a worker has taken the job.
            await job._wait_started()
        return job

    async def submit_thread(self, fn: Callable[[Unpack[PosArgsT]], T], *args: Unpack[PosArgsT]) -> Job[T]:
        """Accept the blocking call ``fn(*args)`` as a job that runs in a worker thread.

        The same as ``await pool.submit(run_in_thread, fn, *args)`` (see
        `run_in_thread`): backpressure, ``on_error``, ``job_timeout`` and
        stats work as for any job, and ``max_workers`` bounds the threads too.
        Cancelling the job raises the flag that `check_cancelled` reads in
        the thread; the job ends only when its thread has returned.

        Cancellation: as `submit`.

        Raises:
            TypeError: `fn` is an async function, an awaitable, or not callable.
            PoolClosed, RuntimeError: as for `submit`.
        """
        check_sync_callable(fn, "Pool.submit_thread")
        # A partial rather than (fn, *args): the job keeps its function's
        # name (job_function) after its arguments are dropped.
        job: Job[T] = await self._submit_at(partial(run_in_thread, fn), args, _caller_site(), "submit_thread")
        return job

    async def _submit_at(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], site: Site, what: str
    ) -> Job[Any]:
        """`submit` for a public method that submits for its caller: `site` is the caller's line.

        The worker it may start records that line too (`TaskRecord.created_by`).
        A copy of `submit` rather than a call from it, which would cost
        every plain submit a call.
        """
        backend = self._backend
        if backend is None:
            self._check_entered(what)
            raise AssertionError  # pragma: no cover
        cancel_pending = backend.cancel_pending
        if cancel_pending():
            await backend.checkpoint_if_cancelled()
        if (self._state != OPEN or self._accepted >= self._capacity) and not self._is_own_job():
            self._check_intake(what)
            await self._wait_for_room()
        job = self._enqueue(fn, args, None, site)
        if self._max_pending == 0 and job._state == PENDING and not self._is_own_job():
            await job._wait_started()
        return job

    def submit_nowait(
        self, fn: Callable[[Unpack[PosArgsT]], Awaitable[T]], *args: Unpack[PosArgsT]
    ) -> Job[T]:
        """Accept ``fn(*args)`` as a job if there is room now; never blocks.

        Like `submit`, but raises `PoolFull` instead of waiting.  It may be
        called from any task of the pool's event loop, including tasks outside
        the pool's block (request handlers of a service whose lifespan opened
        the pool).

        Raises:
            TypeError: `fn` is not an async function.
            PoolFull: ``max_workers + max_pending`` jobs are already accepted
                and not finished.
            PoolClosed: the pool is closed or cancelled.
            RuntimeError: the pool was not opened with ``async with``.
        """
        last_fn = self._last_fn
        if last_fn() is not fn:
            check_async_callable(fn, "Pool.submit_nowait")
            self._remember_fn(fn)
        if (self._state != OPEN or self._accepted >= self._capacity) and not self._is_own_job():
            self._check_intake()
            raise PoolFull(
                f"workpool.Pool {self._name!r} is full ({self._accepted - self._queued} running, "
                f"{self._queued} queued); "
                "use 'await pool.submit(...)' to wait for room"
            )
        frame = _getframe(1)
        site = _last_site
        if site[1] != frame.f_lasti or site[0] is not frame.f_code:
            site = _remember_site(frame)
        return self._enqueue(fn, args, None, site)

    def map(
        self,
        fn: Callable[[Any], Awaitable[T]],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        ordered: bool = True,
    ) -> MapIterator[T]:
        """Run ``fn(item)`` for every item, and iterate over the results.

        ``async for value in pool.map(fn, items):`` yields each job's value,
        in the order of `items` (``ordered=True``) or as jobs finish
        (``ordered=False``).  `items` may be an iterable or an async iterable,
        endless too: it is read lazily, keeping at most
        ``max_workers + max_pending`` items (``2 * max_workers`` when
        ``max_pending`` is ``None``) accepted but not yet yielded.  Once
        that window is full, it reads on when half of it has been yielded,
        so jobs of one map must not wait for each other: one that waits for
        a later item's job may wait forever.  Items are read in the context
        map() was called in: a plain iterable's first ones, as many as the
        pool takes at once, by the first ``__anext__`` itself; the rest, and
        an async iterable's, by a task of the pool's.

        The first job that raises ends the iteration with its exception (it
        also goes to the pool's ``on_error``); an exception from `items` ends
        it after the items read before it have been yielded.  Leaving the
        loop early (``break``, an exception, or `MapIterator.aclose`) stops
        reading `items` and cancels the map's remaining jobs.

        Raises:
            TypeError: `fn` is not an async function, or `items` is not iterable.
            PoolClosed: the pool is closed (also raised by the iteration if
                the pool closes before every item was read).
        """
        check_async_callable(fn, "Pool.map")
        check_bool(ordered, "ordered")
        _check_iterable(items, "Pool.map")
        if not self._is_own_job():
            self._check_intake()
        pending = self._max_pending if self._max_pending is not None else self._max_workers
        window = self._max_workers + pending
        return MapIterator._new(self, fn, items, ordered, window, _caller_site())

    async def consume(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[object]],
    ) -> None:
        """Run ``fn(item)`` for every item of `source`, until it is exhausted or closed.

        `source` is an anyio ``MemoryObjectReceiveStream`` (closing its send
        side is the workers' way out, as closing a channel is in Go) or any
        async iterable.  Items are taken only as fast as the pool has room,
        so a slow pool slows the producer down.  Returns once the source is
        exhausted and every job it started has finished; their failures go
        to the pool's ``on_error`` policy.

        If `source` is an `AckingSource`, each item is acknowledged after its
        job succeeded, or failed after it raised or timed out, once, after
        its last attempt (see there): at-least-once delivery from a job queue.

        If the pool is closed meanwhile, it stops taking items (the rest stay
        in the source) and returns after the jobs it started.  An item is
        taken only when the pool has room for it, and none is ever dropped:
        one that the source delivers after another producer took that room
        waits for the next free slot, and is accepted even if the pool
        closes, or this call is cancelled, while it waits.
        `source` stays open: closing it is the caller's business, as with any
        stream it owns.

        Cancellation: cancelling the caller stops taking items; the jobs it
        already started belong to the pool, like any accepted job, and run
        to their end unless the pool is cancelled.

        Raises:
            TypeError: `fn` is not an async function or `source` is not an async iterable.
            PoolClosed: the pool is closed before the call, or cancelled during it.
            Exception: whatever iterating `source` raised, after the jobs
                started before it have finished.
        """
        check_async_callable(fn, "Pool.consume")
        if not _is_async_iterable(source):
            raise TypeError(
                f"Pool.consume() expected an async iterable (such as a MemoryObjectReceiveStream), "
                f"got {type(source).__name__}; use Pool.map() for a plain iterable"
            )
        if not self._is_own_job():
            self._check_intake()
        await consume_source(self, source, fn, _caller_site())

    # -- internals shared with map and consume -------------------------------

    def _remember_fn(self, fn: object) -> None:
        try:
            self._last_fn = weakref.ref(fn)
        except TypeError:  # no weak references: checked on every call
            self._last_fn = _no_fn

    def _check_entered(self, what: str) -> None:
        if self._state == NEW:
            raise RuntimeError(f"Pool.{what}() needs an open pool: use 'async with Pool(...) as pool:'")

    def _check_intake(self, what: str = "submit") -> None:
        if self._state != OPEN or self._cancel_called:
            self._check_entered(what)
            raise PoolClosed(f"workpool.Pool {self._name!r} is closed and accepts no new jobs")

    def _is_own_job(self) -> bool:
        job = current_job.get()
        return job is not None and job._pool is self

    def _has_room(self) -> bool:
        # Written out instead on the per-job paths (submit, and the map and
        # consume intake checks), where a call costs a few percent of a job.
        return self._accepted < self._capacity

    async def _wait_for_room(self) -> None:
        """Wait until the pool has room, then return; or raise PoolClosed."""
        while not self._has_room():
            self._room_wanted += 1
            try:
                await self._room_waiters.wait()
            finally:
                self._room_wanted -= 1
            self._check_intake()
        # Several producers may have been woken by one finishing job; pass
        # the wakeup on if there is still room, so none waits needlessly.
        if self._room_wanted and self._accepted + 1 < self._capacity:
            self._room_waiters.wake_one()

    def _pass_room_on(self) -> None:
        """Wake a producer that waits for room, if there is room for it.

        Called by an intake (a map's feeder, a consume loop) that waited for
        room and is not taking it now: its source has no item yet, or has
        ended.  Room is not held for whoever was woken for it: without this,
        that wake-up would be lost and another producer could wait forever
        next to a free slot.
        """
        if self._room_wanted and self._accepted < self._capacity:
            self._room_waiters.wake_one()

    def _enqueue(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        on_done: Callable[[Job[Any]], None] | None,
        site: Site | None,
    ) -> Job[Any]:
        # Pool.submit has a copy of this, for speed: change both.
        if self._state != OPEN and (self._cancel_called or self._state == EXITED):
            raise PoolClosed(f"workpool.Pool {self._name!r} was cancelled and accepts no new jobs")
        # The slots are set here rather than through a constructor: this
        # runs once per job, and it is the cheapest way to build an object.
        job: Job[Any] = _new_object(Job)
        job._pool = self
        job._fn = fn
        job._args = args
        job._ctx = copy_context()
        job._on_done = on_done
        job._state = PENDING
        job._waiters = None
        job._site = site
        self._queue.append(job)
        self._accepted += 1
        # _wake_worker would find no parked worker and no room for another
        # in a pool whose workers are all busy, its steady state under load:
        # asking costs two calls per job.
        if not self._waking and (self._parked or self._workers < self._max_workers):
            self._wake_worker(site)
        return job

    def _wake_worker(self, site: Site | None) -> None:
        """Get one more worker to look at the queue: wake an idle one, or start one."""
        idle = self._idle_workers
        if idle is not None and idle.wake_one():
            self._waking += 1
        elif self._workers < self._max_workers:
            self._spawn_worker(site)

    def _ramp_up(self) -> None:
        """Called by a worker just started, woken or back from a fairness pause, once it suspends for a job.

        It suspends when one of its jobs does, or to wait out a retry backoff.
        Queued jobs beyond those the workers on their way will take get up to
        two more workers: a burst of jobs that suspend reaches
        ``max_workers`` in a few event-loop turns, doubling each turn, and a
        burst of jobs that never suspend runs on the one worker that
        `_enqueue` woke.
        """
        queue = self._queue
        if len(queue) > self._waking:
            self._wake_worker(queue[-1]._site)
            if len(queue) > self._waking:
                self._wake_worker(queue[-1]._site)

    def _forget_queued(self, job: Job[Any]) -> None:
        # A queued job was cancelled: it stays in the deque (removing it
        # would cost O(n)) and the worker that meets it skips it.
        self._accepted -= 1
        self._stale += 1
        self._cancelled += 1
        self._room_waiters.wake_one()
        self._maybe_drained()

    def _spawn_worker(self, site: Site | None) -> None:
        assert self._tg is not None
        idle = self._idle_workers
        assert idle is not None
        if self._worker_seq == 0 and idle.timer_task and self._idle_timeout is not None:
            # The first worker: on trio the idle timer is a task, which runs
            # from now until the pool closes (see _idle.py).
            self._tg.start_soon(idle.run_timer, name=f"{self._name}-idle-timer")
        self._workers += 1
        self._waking += 1
        self._worker_seq += 1
        self._tg.start_soon(run_worker, self, site, name=f"{self._name}-worker-{self._worker_seq}")

    def _close_intake(self) -> None:
        if self._state == OPEN:
            self._state = CLOSING
        self._room_waiters.wake_all()
        for scope in self._intake_scopes:
            scope.cancel()
        # Idle workers wake up, find the queue empty and exit.
        if self._idle_workers is not None:
            self._waking += self._idle_workers.close()
        self._maybe_drained()

    def _cancel_all(self) -> None:
        if self._cancel_called:
            return
        self._cancel_called = True
        if self._state == OPEN:
            self._state = CLOSING
        # The scope first: a task of the block that waits on a queued job or
        # for room must wake with the cancellation, not with the JobCancelled
        # or PoolClosed that the next two lines deliver.
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        self._cancel_queued()
        self._close_intake()

    def _cancel_queued(self) -> None:
        queue = self._queue
        while queue:
            job = queue.popleft()
            if job._state == PENDING:
                job.cancel()
        self._stale = 0  # each job popped here was counted by cancel() as still in the deque

    async def _wait_drained(self) -> None:
        """Wait until nothing is queued or running and every worker has exited."""
        if self._is_drained():
            await checkpoint()
        # Checked again after every wait: a closing pool still accepts what
        # its own jobs submit, and an intake woken with an item in the step
        # that closed the pool accepts that item, possibly after the pool
        # looked drained.
        while not self._is_drained():
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    def _is_drained(self) -> bool:
        """Nothing queued, running or held by an intake (`_holding`), and no worker left.

        The one test of what close() and shutdown() wait for, so that a new
        kind of outstanding work is added in one place.
        """
        return not (self._workers or self._accepted or self._holding)

    def _maybe_drained(self) -> None:
        if self._job_map_scopes and self._state != OPEN and not self._accepted:
            # A job's map that outlived its job (the job kept the iterator
            # somewhere): nobody will read it, and the exit must not wait
            # for its feeder.
            for scope in self._job_map_scopes:
                scope.cancel()
        if not self._is_drained():
            return
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        if self._state != OPEN:
            for scope in self._service_scopes:
                scope.cancel()

    def _cancel_jobs(self) -> None:
        """Cancel every queued and running job, but not the pool's own scope."""
        self._cancel_queued()
        for info in list(self._worker_info.values()):
            if info.job is not None:
                info.job.cancel()

    def _start_service(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: str
    ) -> anyio.CancelScope:
        """Run a background task of the pool's own until a closing pool has drained.

        Returns the task's cancel scope, to stop it sooner.
        """
        assert self._tg is not None
        scope = anyio.CancelScope()
        self._service_scopes.add(scope)

        async def run() -> None:
            try:
                with scope:
                    await fn(*args)
            finally:
                self._service_scopes.discard(scope)

        self._tg.start_soon(run, name=name)
        return scope

    def _handle_failure(self, job: Job[Any], exc: Exception) -> None:
        handler = self._error_handler
        if handler is None:
            self._failures.append(exc)
            if self._on_error == "cancel":
                self._cancel_all()
        else:
            try:
                handler(job, exc)
            except Exception as handler_exc:
                self._failures.append(handler_exc)
                self._cancel_all()


_NOTHING = object()


def _no_clock() -> float:
    raise RuntimeError("the pool is not open")


def _caller_site(depth: int = 2) -> Site:
    """Where the public method calling this was called from (see `Site`).

    A producer submits from the same line over and over: the last site is
    reused rather than a tuple made per job.
    """
    frame = sys._getframe(depth)
    site = _last_site
    if site[1] != frame.f_lasti or site[0] is not frame.f_code:
        site = _remember_site(frame)
    return site


def _remember_site(frame: FrameType) -> Site:
    global _last_site
    site = _last_site = (frame.f_code, frame.f_lasti)
    return site


_last_site: Site = (_caller_site.__code__, -1)
_getframe = sys._getframe
_new_object: Any = object.__new__


def _no_fn() -> object:
    return _NOTHING


def _is_retry(retry: object) -> bool:
    return isinstance(retry, Retry)


def _is_async_iterable(source: object) -> bool:
    return isinstance(source, AsyncIterable)


def _check_iterable(items: object, what: str) -> None:
    if not isinstance(items, (Iterable, AsyncIterable)):
        raise TypeError(
            f"{what}() expected an iterable or async iterable of items, got {type(items).__name__}"
        )
