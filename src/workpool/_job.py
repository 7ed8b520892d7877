"""`Job`: the handle to one unit of work submitted to a `Pool`."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from contextvars import Context
from types import CodeType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, final

from anyio.lowlevel import checkpoint

from ._errors import JobCancelled
from ._threads import job_function
from ._waiters import Waiters

if TYPE_CHECKING:
    from ._pool import Pool
    from ._worker import WorkerInfo

__all__ = ["Job", "Site", "site_line"]

#: Where a job was submitted: the calling code object and the offset of the
#: call in its bytecode (the frame's ``f_lasti``).  `site_line` turns it into
#: a line number when a dump needs one: ``f_lineno`` scans the line table,
#: which cost a tenth of a no-op job when it was read on every submit.
Site = tuple[CodeType, int]


def site_line(site: Site) -> tuple[CodeType, int]:
    """The code object and source line of a `Site`."""
    code, lasti = site
    for start, end, line in code.co_lines():
        if start <= lasti < end and line is not None:
            return code, line
    return code, code.co_firstlineno


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# Life cycle of a job; plain ints because the worker compares them on every job.
PENDING = 0
RUNNING = 1
SUCCEEDED = 2
FAILED = 3
CANCELLED = 4

_STATE_NAMES = ("pending", "running", "succeeded", "failed", "cancelled")


def _no_public_constructor(cls: type[object]) -> NoReturn:
    raise TypeError(
        f"{cls.__module__}.{cls.__qualname__} has no public constructor; it is created by workpool.Pool"
    )


@final
class Job(Generic[T_co]):
    """The handle to one job: its state, its outcome, and a way to cancel it.

    Created by `Pool.submit`, `Pool.submit_nowait` and `Pool.submit_thread`
    (and, without a handle for the caller, by `Pool.map`, `Pool.consume` and
    `Pool.every`).  ``await job`` waits
    for the job to finish and returns its value, or raises the exception the
    job raised, or `JobCancelled`.  A job is run at most once; awaiting it
    several times (or from several tasks) gives the same outcome each time.

    Dropping the handle is fine: the pool keeps no reference to a finished
    job, and a failure still reaches the pool's ``on_error`` policy.

    Cancellation: ``await job`` is a checkpoint, also on a job that has
    already finished (as awaiting a set ``anyio.Event`` is, and unlike
    awaiting a done ``asyncio.Task``): other tasks get to run, and a
    cancellation of the awaiting task is raised there.  That cancellation
    does not cancel the job; `Job.cancel` does.

    A job belongs to the event loop its pool runs in, as an asyncio future
    does: await it there.  From another event loop or another async
    library the await fails with that library's error, finished or not.
    """

    # Every slot costs 8 bytes per queued job and a store per submit: what
    # only a running job needs (its start time, its coroutine) lives on the
    # worker (WorkerInfo), and the value and the exception share a slot.
    __slots__ = (
        "__weakref__",
        "_args",
        "_checkpoint",
        "_ctx",
        "_fn",
        "_on_done",
        "_outcome",
        "_pool",
        "_site",
        "_state",
        "_waiters",
        "_worker",
    )

    _pool: Pool | None
    _fn: Callable[..., Any]
    _args: tuple[Any, ...] | None
    _ctx: Context | None
    _on_done: Callable[[Job[Any]], None] | None
    _state: int
    # The value (SUCCEEDED) or the exception (FAILED); None if cancelled.
    # Unset until the job ends: only read once _state says it has.
    _outcome: Any
    _waiters: Waiters | None
    # The worker running the job, set when it starts (unset before: nothing
    # reads it then); Job.cancel() cancels the worker's scope.
    _worker: WorkerInfo | None
    # Where the job was submitted, for task dumps and the stall watchdog.
    _site: Site | None
    # Set when the job ends: the full checkpoint of the event loop it ran on,
    # for ``await job`` on a finished job, which looked the backend up
    # through anyio before (its pool is gone by then).  The slot adds 8 bytes
    # to every Job: on Python 3.10 and 3.11 it stays in the allocator's
    # 128-byte class, from 3.12 on it moves to the 144-byte one.
    _checkpoint: Callable[[], Awaitable[None]]

    def __init__(self, *args: object, **kwargs: object) -> None:
        _no_public_constructor(Job)

    def __repr__(self) -> str:
        fn = job_function(self._fn, self._args)
        name = getattr(fn, "__qualname__", None) or repr(fn)
        return f"<workpool.Job {name} {_STATE_NAMES[self._state]} at {id(self):#x}>"

    # -- state ---------------------------------------------------------------

    def done(self) -> bool:
        """Whether the job has finished: returned, raised or been cancelled."""
        return self._state >= SUCCEEDED

    def cancelled(self) -> bool:
        """Whether the job was cancelled before it produced a result."""
        return self._state == CANCELLED

    def cancel(self) -> None:
        """Cancel the job.  Never blocks, never raises; a finished job is left alone.

        A job still waiting in the queue is cancelled at once and will never
        start.  A running job gets a cancellation at its next checkpoint (its
        next ``await`` that reaches the event loop); if it returns a value
        anyway, that value stands.  Anyone awaiting the job then gets
        `JobCancelled`.
        """
        state = self._state
        if state == PENDING:
            pool = self._pool
            self._finish(CANCELLED, None)
            if pool is not None:
                pool._forget_queued(self)
        elif state == RUNNING:
            worker = self._worker
            if worker is not None and not worker.cancel_requested:
                worker.cancel_requested = True
                assert worker.scope is not None
                worker.scope.cancel()

    def result(self) -> T_co:
        """Return the job's value, without waiting.

        Raises:
            RuntimeError: the job has not finished yet (``await job`` waits).
            JobCancelled: the job was cancelled.
            BaseException: whatever the job raised, re-raised.
        """
        state = self._state
        if state == SUCCEEDED:
            return self._outcome  # type: ignore[no-any-return]
        if state == FAILED:
            raise self._outcome
        if state == CANCELLED:
            raise JobCancelled(f"{self!r} was cancelled")
        raise RuntimeError(f"{self!r} has not finished yet; use 'await job' to wait for it")

    def exception(self) -> BaseException | None:
        """Return the exception the job raised, or ``None`` if it returned a value.

        Raises:
            RuntimeError: the job has not finished yet.
            JobCancelled: the job was cancelled.
        """
        state = self._state
        if state == SUCCEEDED:
            return None
        if state == FAILED:
            return self._outcome  # type: ignore[no-any-return]
        if state == CANCELLED:
            raise JobCancelled(f"{self!r} was cancelled")
        raise RuntimeError(f"{self!r} has not finished yet; use 'await job' to wait for it")

    def __await__(self) -> Generator[Any, None, T_co]:
        # A generator, not a coroutine: awaiting a finished job is common
        # (``[await job for job in jobs]``), and each coroutine in the chain
        # cost a tenth of such an await.  (types.coroutine returns the
        # generator function itself; typeshed says Awaitable.)
        yield from self._wait_done()  # pyright: ignore[reportGeneralTypeIssues]
        return self.result()

    @types.coroutine
    def _wait_done(self) -> Generator[Any, None, None]:
        # Always a checkpoint, even when the job is already done, so a loop
        # of ``await job`` cannot starve other tasks.  Cancelling the waiting
        # task does not cancel the job: the waiter does not own it.
        if self._state < SUCCEEDED:
            waiters = self._get_waiters()
            while self._state < SUCCEEDED:
                yield from waiters.wait().__await__()
        else:
            yield from self._checkpoint().__await__()

    # -- used by the pool ----------------------------------------------------

    def _get_waiters(self) -> Waiters:
        """The tasks waiting on this job, made on first use (only an unfinished job has a pool)."""
        if self._waiters is None:
            assert self._pool is not None
            assert self._pool._backend is not None
            self._waiters = self._pool._backend.waiters()
        return self._waiters

    async def _wait_started(self) -> None:
        """Wait until a worker takes the job; cancelled meanwhile, the job is cancelled."""
        waiters = self._get_waiters()
        try:
            while self._state == PENDING:
                await waiters.wait()
        except BaseException:
            self.cancel()  # the caller gets no handle, so nobody would see it run
            raise

    def _finish(self, state: int, outcome: Any) -> None:
        """Record the outcome: the value if `state` is SUCCEEDED, the exception if FAILED."""
        self._state = state
        self._outcome = outcome
        pool = self._pool
        backend = None if pool is None else pool._backend
        self._checkpoint = checkpoint if backend is None else backend.checkpoint
        # Drop what the job no longer needs, so a finished job held by a
        # caller does not keep its arguments, context or pool alive (the
        # function stays, for repr and task dumps).
        self._args = self._ctx = self._pool = self._worker = None
        if self._waiters is not None:
            self._waiters.wake_all()
        if self._on_done is not None:
            self._call_on_done()

    def _call_on_done(self) -> None:
        on_done = self._on_done
        assert on_done is not None
        self._on_done = None
        on_done(self)
