"""The worker loop of a `ThreadPool`: how one thread runs job after job, and where failures go."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import Context
from typing import TYPE_CHECKING, Any

from ._errors import JobCancelled
from ._threads import CancelFlag, running_flag

if TYPE_CHECKING:
    from ._thread_periodic import PeriodicCall
    from ._threadpool import ThreadPool

__all__ = ["Item", "Running", "run_worker", "worker_of"]


class _WorkerOf(threading.local):
    # The pool whose worker thread this is: its jobs may submit past the bound.
    pool: ThreadPool | None = None


worker_of = _WorkerOf()


class Running:
    """Whether one worker thread runs a job; written by that thread alone, summed by `ThreadPool.stats`."""

    __slots__ = ("busy",)

    def __init__(self) -> None:
        self.busy = False


class Item:
    """One accepted job, queued until a worker thread takes it."""

    __slots__ = ("accounted", "args", "ctx", "flag", "fn", "future", "kwargs", "periodic")

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: Context,
        flag: CancelFlag,
        periodic: PeriodicCall | None,
    ) -> None:
        self.future = future
        # Whether the pool has already counted this job as cancelled (under
        # its lock): a cancelled queued job is counted once, by whoever sees
        # it first, the future's callback, the pool or the worker.
        self.accounted = False
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.ctx = ctx
        self.flag = flag
        self.periodic = periodic


def run_worker(pool: ThreadPool) -> None:
    """The body of a worker thread: run queued jobs until a ``None`` says to exit.

    The pool puts one ``None`` per worker once it is closed and has nothing
    left (`ThreadPool._maybe_release_locked`).
    """
    worker_of.pool = pool
    running = Running()
    with pool._lock:
        pool._running.append(running)
    get = pool._queue.get
    try:
        while True:
            item = get()
            if item is None:
                return
            _run(pool, item, running)
            del item  # an idle worker must not keep its last job alive
    finally:
        with pool._lock:
            pool._running.remove(running)
            pool._workers -= 1
            pool._settled.notify_all()


def _run(pool: ThreadPool, item: Item, running: Running) -> None:
    """Run one job and account for it: one trip through the pool's lock per job."""
    future = item.future
    flag = item.flag
    periodic = item.periodic
    if (flag.is_raised() and future.cancel()) or not future.set_running_or_notify_cancel():
        # Cancelled while queued: by its periodic handle, or by
        # Future.cancel() (the pool's own cancellation dequeues its jobs).
        with pool._lock:
            pool._idle += 1
            if not item.accounted:
                item.accounted = True
                pool._unfinished -= 1
                pool._cancelled += 1
                if periodic is not None:
                    periodic._running = False
                pool._job_left_locked()
        return
    running.busy = True
    if periodic is not None:
        with pool._lock:
            periodic._runs += 1
    previous = running_flag(flag)
    error: BaseException | None = None
    try:
        value = item.ctx.run(item.fn, *item.args, **item.kwargs)
    except BaseException as exc:
        error = exc
        future.set_exception(exc)
    else:
        future.set_result(value)
        del value
    finally:
        running_flag(previous)
    # Settled before the accounting below, so that when the pool's block
    # exits every future is done and every failure recorded.
    cancelled = isinstance(error, JobCancelled) and flag.is_raised()
    if error is not None and not cancelled:
        _handle_failure(pool, future, error)
    with pool._lock:
        running.busy = False
        pool._unfinished -= 1
        pool._idle += 1
        if error is None:
            pool._completed += 1
        elif cancelled:
            pool._cancelled += 1
        else:
            pool._failed += 1
        if periodic is not None:
            periodic._running = False
        pool._job_left_locked()


def _handle_failure(pool: ThreadPool, future: Future[Any], error: BaseException) -> None:
    """Apply ``on_error`` to a job's failure; runs in the worker thread, outside the lock."""
    handler = pool._on_error
    if isinstance(error, Exception) and not isinstance(handler, str):
        try:
            handler(future, error)
        except BaseException as handler_error:
            with pool._lock:
                pool._failures.append(handler_error)
            pool._cancel()
        return
    with pool._lock:
        pool._failures.append(error)
    # KeyboardInterrupt, SystemExit...: stop everything, whatever the policy.
    if handler == "cancel" or not isinstance(error, Exception):
        pool._cancel()
