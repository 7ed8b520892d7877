"""Blocking code in threads: `run_in_thread` for async code, and `check_cancelled` inside the thread.

A thread cannot be interrupted from outside, so cancelling a job that runs in
one only raises a flag; the thread sees it when it calls `check_cancelled`,
the way a Go goroutine checks ``ctx.Err()``.  Every job that runs in a thread
(a `run_in_thread` call, or a `ThreadPool` job) installs its flag in a
thread-local for as long as it runs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from typing_extensions import TypeVarTuple, Unpack

from ._acking import run_and_ack
from ._context import current_job
from ._errors import JobCancelled

__all__ = [
    "CancelFlag",
    "check_cancelled",
    "check_sync_callable",
    "in_event_loop_thread",
    "job_function",
    "run_in_thread",
    "running_flag",
]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


class CancelFlag:
    """A one-way flag that a job's owner raises and the job's thread reads.

    A flag with a parent counts as raised when its parent is (a periodic run
    of a `ThreadPool` is cancelled by its handle or by the pool).  Setting
    and reading one attribute needs no lock.
    """

    __slots__ = ("_parent", "_raised")

    def __init__(self, parent: CancelFlag | None = None) -> None:
        self._raised = False
        self._parent = parent

    def cancel(self) -> None:
        self._raised = True

    def is_raised(self) -> bool:
        flag: CancelFlag | None = self
        while flag is not None:
            if flag._raised:
                return True
            flag = flag._parent
        return False


class _Local(threading.local):
    flag: CancelFlag | None = None


_local = _Local()


def running_flag(flag: CancelFlag | None) -> CancelFlag | None:
    """Install `flag` as the one `check_cancelled` reads in this thread; return the previous one."""
    previous = _local.flag
    _local.flag = flag
    return previous


def check_cancelled() -> None:
    """Raise `JobCancelled` if the job running in this thread has been cancelled.

    Call it now and then from blocking code that runs in a thread, so that a
    long loop stops when its job is no longer wanted::

        def crunch(rows):
            for row in rows:
                workpool.check_cancelled()
                handle(row)

    It sees the cancellation of:

    * a thread job of an async `Pool` (`run_in_thread` submitted as a job):
      `Job.cancel`, `Pool.cancel`, a failure under ``on_error="cancel"``,
      ``job_timeout``, or the cancellation of the task that awaited
      `run_in_thread`;
    * a `ThreadPool` job: `ThreadPool.cancel`, an exception leaving the
      ``with`` block, a failure under ``on_error="cancel"``, the end of
      ``shutdown(grace=...)``; for a periodic run, also `PeriodicCall.cancel`.

    Letting `JobCancelled` propagate ends the job as cancelled (not failed).
    Called anywhere else (the event loop's thread, a thread workpool did not
    start), it returns: nothing there can be cancelled by workpool.  It never
    blocks and costs a thread-local lookup.

    Raises:
        JobCancelled: the job running in this thread was cancelled.
    """
    flag = _local.flag
    if flag is not None and flag.is_raised():
        raise JobCancelled("the job running in this thread was cancelled (workpool.check_cancelled())")


# -- run_in_thread -----------------------------------------------------------

# What a _ThreadCall is doing; the host reads and changes it under the lock.
# _ABANDONED: running, and its host has gone without it (abandon_on_cancel).
_NOT_STARTED, _RUNNING, _FINISHED, _SKIPPED, _ABANDONED = range(5)


class _ThreadCall(CancelFlag):
    """One call of `run_in_thread`: its cancellation flag, and how its host learns that it ended.

    anyio runs it with ``abandon_on_cancel=True``, so that the host task hears
    of a cancellation at once and can raise the flag; when it must wait for
    the thread anyway (the default), it parks on an event that the thread sets
    through the event loop's token as it returns.
    """

    __slots__ = ("_error", "_lock", "_notify", "_state")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._state = _NOT_STARTED
        self._notify: Callable[[], object] | None = None
        self._error: BaseException | None = None

    def run(self, fn: Callable[[Unpack[PosArgsT]], T], args: tuple[Unpack[PosArgsT]]) -> T:
        """Run ``fn(*args)`` in this (worker) thread, with this call's flag installed."""
        with self._lock:
            if self._state == _SKIPPED:
                # The host was cancelled before the thread started, and anyio
                # has already discarded this call's outcome.
                raise JobCancelled("cancelled before the thread started")
            self._state = _RUNNING
        previous = running_flag(self)
        error: BaseException | None = None
        try:
            return fn(*args)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _local.flag = previous
            with self._lock:
                # Kept for the host whatever happens next: a cancellation that
                # reaches the host after this point makes anyio drop the
                # outcome, and the error must still propagate
                # (test_a_thread_failure_is_not_lost_when_the_cancel_comes_after_the_thread_ended).
                # The host clears it, which breaks the cycle through the
                # traceback; a host that abandoned the call never reads it.
                if self._state != _ABANDONED:
                    self._error = error
                self._state = _FINISHED
                notify = self._notify
            del error
            if notify is not None:
                notify()

    def stop(self, wait: bool) -> anyio.Event | None:
        """Raise the flag; return an event to wait on if the thread runs and `wait` is true."""
        self.cancel()
        with self._lock:
            if self._state == _NOT_STARTED:
                self._state = _SKIPPED
                return None
            if self._state != _RUNNING:
                return None
            if not wait:
                self._state = _ABANDONED
                return None
            event = anyio.Event()
            self._notify = functools.partial(
                anyio.from_thread.run_sync, event.set, token=anyio.lowlevel.current_token()
            )
            return event


# Inside a pool job the pool's max_workers bounds the threads; anyio's default
# limiter (40 tokens) would be a second, smaller bound (tests/test_threads.py
# runs more thread jobs than that at once).
_unbounded: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("workpool.unbounded_limiter")


def _pool_limiter() -> anyio.CapacityLimiter:
    try:
        return _unbounded.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(math.inf)
        _unbounded.set(limiter)
        return limiter


async def run_in_thread(
    fn: Callable[[Unpack[PosArgsT]], T],
    *args: Unpack[PosArgsT],
    abandon_on_cancel: bool = False,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Call the blocking function ``fn(*args)`` in a worker thread and return its value.

    Submit it as a job to run blocking code in a `Pool`: the job is an
    ordinary `Job`, counted by the pool's ``max_workers`` and `Pool.stats`,
    with the pool's ``on_error`` policy and ``job_timeout``::

        job = await pool.submit(run_in_thread, parse_report, path)
        report = await job

    It can also be awaited anywhere in async code, like
    `anyio.to_thread.run_sync`, which it is built on.  The thread runs in a
    copy of the calling task's contextvars.  Inside ``fn``,
    `check_cancelled` raises `JobCancelled` once the call is cancelled.

    Cancellation: cancelling the caller (for a job: `Job.cancel`,
    `Pool.cancel`, ``job_timeout``...) raises the flag that `check_cancelled`
    reads, then, by default, waits for the thread to return, shielded:
    a thread cannot be stopped from outside, and a job that is over must not
    leave its thread running.  A thread that never calls `check_cancelled`
    therefore delays the cancellation until it returns.  Once the thread has
    returned, the cancellation propagates, as it would at the caller's next
    checkpoint after `anyio.to_thread.run_sync`; the thread's value is
    dropped.  If the thread raised something other than `JobCancelled`, that
    exception propagates instead (a job then fails with it).

    With ``abandon_on_cancel=True`` the cancellation propagates at once and
    the thread is left to finish on its own, its outcome discarded (unless
    it had already raised when the cancellation came: that exception then
    propagates, as above).  An
    abandoned thread still runs after its job, and its pool, are over: it
    is a thread leak (the kind `workpool.testing.no_leaks` exists to catch),
    and it may use resources its caller has already released.  Use it only
    for calls that are safe to forget.

    Args:
        fn: a synchronous callable; keyword arguments go through `functools.partial`.
        *args: positional arguments for `fn`.
        abandon_on_cancel: leave the thread running when cancelled instead
            of waiting for it.
        limiter: bounds the threads running at once.  By default, inside a
            pool job, none beyond the pool's own ``max_workers``; elsewhere
            anyio's default thread limiter.

    Raises:
        TypeError: `fn` is an async function or not callable.
        JobCancelled: `fn` raised it without having been cancelled (it
            awaited a cancelled job, say): a failure like any other.
        Exception: whatever `fn` raised.
    """
    check_sync_callable(fn, "run_in_thread")
    if limiter is None and current_job.get() is not None:
        limiter = _pool_limiter()
    call = _ThreadCall()
    try:
        return await anyio.to_thread.run_sync(call.run, fn, args, abandon_on_cancel=True, limiter=limiter)
    except anyio.get_cancelled_exc_class():
        # The thread may have ended before the cancellation arrived: anyio
        # then drops its outcome, and the stored error is all that is left.
        finished = call.stop(wait=not abandon_on_cancel)
        if finished is not None:
            with anyio.CancelScope(shield=True):
                await finished.wait()
        error, call._error = call._error, None
        if error is not None and not isinstance(error, JobCancelled):
            raise error  # noqa: B904 - the thread's own failure, raised while handling the cancellation
        raise
    except BaseException:
        call._error = None  # anyio raised it here: drop the copy, and the cycle through its traceback
        raise


def job_function(fn: object, args: tuple[Any, ...] | None) -> object:
    """What a job of `fn` with `args` runs: for a `run_in_thread` job, the blocking function.

    Reports (`Job`'s repr, the stall warning, the task dump) name that
    function: every ``submit_thread(fn)`` job would otherwise be called
    ``run_in_thread``, and every job of ``consume`` from an `AckingSource`
    ``run_and_ack``.  Those pass their function in a partial, so that it
    is still known once the job has dropped its arguments.
    """
    inner = fn
    args = args or ()
    while isinstance(inner, functools.partial):
        args = (*inner.args, *args)
        inner = inner.func
    if (inner is run_in_thread or inner is run_and_ack) and args:
        return args[0]
    return fn


# -- checks shared with ThreadPool -------------------------------------------


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) or isinstance(fn, type):
        unwrapped = inspect.unwrap(fn) if not isinstance(fn, type) else fn
        return inspect.iscoroutinefunction(unwrapped)
    # A callable object is as async as its __call__.
    call = getattr(_type_of(fn), "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


def _async_through_wrapped(fn: Any) -> object | None:
    """The async function that `fn` was found to be only through ``__wrapped__``, if that is how."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or isinstance(fn, type):
        return None
    if not (inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn)):
        return None
    unwrapped = inspect.unwrap(fn)
    return unwrapped if unwrapped is not fn and inspect.iscoroutinefunction(unwrapped) else None


def _type_of(obj: object) -> Any:
    return type(obj)


def check_sync_callable(fn: object, what: str) -> None:
    """Raise TypeError unless `fn` is a callable that is not an async function.

    `what` names the API for the message, e.g. ``"Pool.submit_thread"``.
    """
    short = what.rsplit(".", 1)[-1]
    if inspect.isawaitable(fn):
        if inspect.iscoroutine(fn):
            fn.close()  # it can never run now; closing it avoids a second "never awaited" warning
        raise TypeError(
            f"{what}() expected a function and its arguments, but got the awaitable {fn!r}. "
            f"Write {short}(fn, *args), not {short}(fn(*args))."
        )
    if not callable(fn):
        raise TypeError(f"{what}() expected a callable, but got {type(fn).__name__} {fn!r}")
    if _is_async_callable(fn):
        wrapped = _async_through_wrapped(fn)
        if wrapped is not None:
            raise TypeError(
                f"{what}() runs blocking functions in threads, but {fn!r} wraps the async function "
                f"{wrapped!r}: its __wrapped__ (set by functools.wraps) leads there, and workpool goes "
                "by it. If it really is a blocking function, pass 'lambda *args: fn(*args)' instead, "
                "or delete its __wrapped__ attribute."
            )
        raise TypeError(
            f"{what}() runs blocking functions in threads, but {fn!r} is an async function; "
            "submit it to a workpool.Pool with 'await pool.submit(fn, *args)' instead."
        )


def in_event_loop_thread() -> bool:
    """Whether an asyncio or trio event loop runs in the calling thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio: Any = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())
