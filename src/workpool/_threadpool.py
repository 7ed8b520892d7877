"""`ThreadPool`: a bounded set of worker threads for synchronous code, owned by one ``with`` block."""

from __future__ import annotations

import functools
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextvars import Context, copy_context
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import Any, Literal, TypeVar

from typing_extensions import ParamSpec, Self, TypeVarTuple, Unpack

from ._errors import PoolClosed, PoolFull
from ._stats import PoolStats
from ._thread_map import MapResults, fill, map_results
from ._thread_periodic import PeriodicCall, run_ticker
from ._thread_worker import Item, Running, run_worker, worker_of
from ._threads import CancelFlag, check_sync_callable, in_event_loop_thread
from ._validate import check_bool, check_grace, check_interval, check_pending, check_positive_int, check_str

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # a dependency of anyio there

__all__ = ["ThreadPool"]

T = TypeVar("T")
P = ParamSpec("P")
PosArgsT = TypeVarTuple("PosArgsT")

# Pool life cycle.
_NEW, _OPEN, _CLOSING, _EXITED = range(4)


def _no_fn() -> object:
    return None


def _check_iterable(obj: object) -> None:
    if not isinstance(obj, Iterable):
        raise TypeError(f"ThreadPool.map() expected iterables, got {type(obj).__name__} {obj!r}")


class ThreadPool(Executor):
    """A set of at most ``max_workers`` worker threads, for synchronous code.

    Use it as ``with ThreadPool(...) as pool:``.  It is a
    `concurrent.futures.Executor` (`submit` returns a `Future`, `map` and
    ``loop.run_in_executor(pool, fn)`` work), with the rules of `Pool`:

    * leaving the block normally waits for every accepted job (jobs that
      the pool's own jobs submit included) and joins every thread: after
      the block no thread of the pool is left;
    * leaving it with an exception, or calling `cancel`, cancels every
      queued job and tells the running ones to stop: `check_cancelled`
      raises `JobCancelled` in them.  A thread cannot be stopped from
      outside, so the block still waits for running jobs to return;
      `shutdown` with a ``grace`` period is the way to stop waiting.
      Ctrl-C while the block waits counts as such an exception (a second
      one during the wait propagates at once);
    * the first failure under ``on_error="cancel"`` cancels the pool, and
      failures are raised when the block exits, as an `ExceptionGroup`.

    Threads start on demand, up to ``max_workers``, and stay until the pool
    closes.  They are daemon threads, so a job that never returns cannot
    keep the process alive after ``shutdown(grace=...)`` gave up on it.
    Each job runs in a copy of the `contextvars` context of the code that
    submitted it, as with `asyncio.to_thread`.

    A job costs a `Future`, a queue entry, and the pool's lock taken once by
    the submitter and once by the worker: a few microseconds, about what
    `concurrent.futures.ThreadPoolExecutor` costs (``benchmarks/threads.py``).

    It is for code without an event loop: from async code, use
    `run_in_thread` jobs in a `Pool`.  Its blocking calls refuse to run in an
    event loop's thread (see Raises), where they would freeze the loop, and
    deadlock it if a job calls back into the loop.

    Args:
        max_workers: the most jobs that run at once (a positive int).
        max_pending: the most accepted jobs waiting for a thread.  `submit`
            blocks, and `submit_nowait` raises `PoolFull`, while
            ``running + queued >= max_workers + max_pending``; ``None`` never
            blocks.
        on_error: what a failing job does to the pool, as for `Pool`:
            ``"cancel"`` (the default) cancels the pool at the first failure;
            ``"collect"`` lets the other jobs go on.  Either way the block
            raises the failures when it exits.  A callable ``(future, exc)``
            is called (in the worker thread) for each failure instead, and
            the pool goes on; if it raises, that is handled as ``"cancel"``.
            Whatever the policy, the job's `Future` holds its exception.  A
            job that stops with `JobCancelled` after being cancelled has not
            failed.
        name: names the threads (``"<name>-thread-<n>"``) and appears in
            error messages.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        *,
        max_workers: int = 10,
        max_pending: int | None = 1000,
        on_error: Literal["cancel", "collect"] | Callable[[Future[Any], Exception], object] = "cancel",
        name: str = "workpool",
    ) -> None:
        self._max_workers = check_positive_int(max_workers, "max_workers")
        self._max_pending = check_pending(max_pending, "max_pending")
        self._capacity: float = (
            self._max_workers + self._max_pending if self._max_pending is not None else float("inf")
        )
        if isinstance(on_error, str):
            if on_error not in ("cancel", "collect"):
                raise ValueError(
                    "on_error must be 'cancel', 'collect' or a callable (future, exc) -> None, "
                    f"got {on_error!r}"
                )
        elif not callable(on_error):
            raise TypeError(
                "on_error must be 'cancel', 'collect' or a callable (future, exc) -> None, "
                f"got {type(on_error).__name__} {on_error!r}"
            )
        self._on_error = on_error
        self._name = check_str(name, "name")

        self._lock = threading.Lock()
        # Producers wait here for room.
        self._room = threading.Condition(self._lock)
        # Notified when the last job ends and when a worker exits: the exit
        # and shutdown() wait here.
        self._settled = threading.Condition(self._lock)
        self._ticker_wake = threading.Condition(self._lock)
        self._queue: SimpleQueue[Item | None] = SimpleQueue()
        # Raised when the pool is cancelled: check_cancelled() in its jobs reads it.
        self._flag = CancelFlag()
        self._state = _NEW
        self._cancel_called = False
        self._released = False  # every worker has been told to exit
        self._abandoned = False  # shutdown(grace=...) gave up on running jobs
        # Threads started (workers and the ticker), joined when the pool exits.
        self._threads: list[threading.Thread] = []
        self._periodic: set[PeriodicCall] = set()
        self._ticker: threading.Thread | None = None
        self._ticker_starting = False  # published in _threads, start() not returned yet
        self._failures: list[BaseException] = []
        # The last PoolClosed raised because the pool was cancelled: if it is
        # what ends the block, it is the sync form of the cancellation that
        # ends a Pool's body, and the exit drops it.
        self._closed_by_cancel: PoolClosed | None = None
        self._last_fn: Callable[[], object] = _no_fn

        self._workers = 0
        self._worker_seq = 0
        self._idle = 0  # workers waiting for a job that no submit has claimed yet
        # Jobs accepted and not finished (queued or running): the bound
        # applies to it.  How many of them run is counted without the lock,
        # one flag per worker, so that a worker takes the lock once per job.
        self._unfinished = 0
        self._running: list[Running] = []
        self._room_wanted = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0

    def __repr__(self) -> str:
        state = ("new", "open", "closing", "exited")[self._state]
        return (
            f"<workpool.ThreadPool {self._name!r} {state} workers={self._workers}/{self._max_workers} "
            f"busy={self._count_busy()} queued={self._unfinished - self._count_busy()}>"
        )

    # -- life cycle ----------------------------------------------------------

    def __enter__(self) -> Self:
        """Open the pool.  No thread starts until a job arrives.

        Raises:
            RuntimeError: the pool was opened before (a pool is used once),
                or this thread runs an event loop, which leaving the block
                would block.
        """
        if in_event_loop_thread():
            raise RuntimeError(
                "ThreadPool is for synchronous code: leaving its 'with' block waits for every job, which "
                "would block this thread's event loop (and deadlock it if a job calls back into the loop). "
                "In async code, submit run_in_thread jobs to a workpool.Pool, or run the whole "
                "'with ThreadPool(...)' block in a thread with anyio.to_thread.run_sync()."
            )
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(
                    "a ThreadPool can be opened only once; create a new ThreadPool for each 'with'"
                )
            self._state = _OPEN
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Close (or, on an exception, cancel) the pool, wait for its jobs, raise its failures."""
        if exc is None:
            self._close()
        else:
            self._cancel()
        interrupted: BaseException | None = None
        if not self._abandoned:
            try:
                self._wait_workers(None)
            except BaseException as error:
                # Ctrl-C while waiting: handled as if the body had raised it,
                # so the running jobs are told to stop and no thread outlives
                # the block.  A second one during this wait propagates: the
                # way out of a job that never calls check_cancelled().
                interrupted = error
                self._cancel()
                self._wait_workers(None)
        with self._lock:
            self._state = _EXITED
            failures, self._failures = self._failures, []
            closed_by_cancel, self._closed_by_cancel = self._closed_by_cancel, None

        if interrupted is not None:
            if exc is None:
                exc = interrupted
            else:
                failures.insert(0, interrupted)
        body_error = exc
        if body_error is not None and (
            body_error is closed_by_cancel or any(body_error is failure for failure in failures)
        ):
            # A failure the body also received (it called future.result())
            # is reported once, as a failure, as Pool does.
            body_error = None
        errors: list[BaseException] = [body_error] if body_error is not None else []
        # One exception that two jobs failed with (one re-raised the
        # other's) is listed once, as Pool does.
        errors.extend({id(e): e for e in failures}.values())
        if not errors:
            return exc is not None
        if body_error is not None and errors == [body_error]:
            if interrupted is not None and body_error is interrupted:
                raise interrupted
            return False  # the body's own exception propagates untouched
        raise BaseExceptionGroup(f"{len(errors)} error(s) in workpool.ThreadPool {self._name!r}", errors)

    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, grace: float | None = None
    ) -> None:
        """Stop intake, and by default wait for every accepted job and every thread.

        After it is called, `submit`, `submit_nowait`, `map` and `every` raise
        `PoolClosed` (except jobs that the pool's own jobs submit), producers
        blocked in `submit` get `PoolClosed`, and periodic jobs stop.  Leaving
        the ``with`` block calls it (with ``wait=True``) if you have not.

        Args:
            wait: wait for the jobs to finish and the threads to exit.
            cancel_futures: cancel the jobs still queued first (running jobs
                go on), as `concurrent.futures.Executor.shutdown` does.
            grace: wait at most this many seconds (needs ``wait=True``).
                When it runs out, the pool is cancelled (queued jobs
                cancelled, `check_cancelled` raising in running ones) and
                `shutdown` returns at once, even if a job never returns: its
                thread is abandoned, runs on until its function returns, and
                the ``with`` block no longer waits for it.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `grace` is negative, or given with ``wait=False``.
            RuntimeError: called with ``wait=True`` from one of this pool's
                jobs (it would wait for itself), or from an event loop's
                thread while jobs are running or queued.
        """
        check_bool(wait, "wait")
        check_bool(cancel_futures, "cancel_futures")
        if grace is not None:
            grace = check_grace(grace)
            if not wait:
                raise ValueError("grace limits how long shutdown() waits, so it needs wait=True")
        if wait and worker_of.pool is self:
            raise RuntimeError(
                "ThreadPool.shutdown(wait=True) was called from one of its own jobs and would wait for "
                "itself; call pool.cancel() or shutdown(wait=False)"
            )
        with self._lock:
            if self._state == _NEW:
                self._state = _EXITED
                return
            work_left = self._unfinished
        if wait and work_left and not self._abandoned and in_event_loop_thread():
            raise RuntimeError(
                "ThreadPool.shutdown(wait=True) would block this thread's event loop until every job "
                "has finished; call it from a thread without an event loop, or with wait=False"
            )
        self._close()
        if cancel_futures:
            self._cancel_queued()
        if not wait or self._abandoned:
            return
        if not self._wait_workers(grace):
            self._cancel()
            self._abandoned = True

    def cancel(self) -> None:
        """Cancel the pool now.  Never blocks; calling it again, or after the pool exited, does nothing.

        Queued jobs are cancelled at once (their futures are cancelled),
        running jobs see `check_cancelled` raise `JobCancelled` from now on,
        periodic jobs stop, and the pool takes no new job (`PoolClosed`).
        Leaving the ``with`` block still waits for the running jobs, and
        raises no error for the cancellation itself.
        """
        self._cancel()

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters; see `PoolStats` (``workers`` counts threads)."""
        with self._lock:
            busy = self._count_busy()
            return PoolStats(
                workers=self._workers,
                busy=busy,
                queued=self._unfinished - busy,
                submitted=self._submitted,
                completed=self._completed,
                failed=self._failed,
                cancelled=self._cancelled,
            )

    @property
    def max_workers(self) -> int:
        """The most jobs that run at once."""
        return self._max_workers

    @property
    def max_pending(self) -> int | None:
        """The most accepted jobs that wait for a thread; ``None`` for no bound."""
        return self._max_pending

    @property
    def name(self) -> str:
        """The pool's name, used in thread names and error messages."""
        return self._name

    # -- intake --------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Accept ``fn(*args, **kwargs)`` as a job, blocking while the pool is full.

        Returns a `concurrent.futures.Future` as soon as the job is accepted;
        the job runs on a worker thread later, in a copy of the caller's
        `contextvars` context.  A free thread takes the oldest queued job.
        A job of this pool may submit more jobs without blocking, even to a
        full pool, so jobs that fan out cannot deadlock on the bound (a job
        that then waits for the results still needs a free thread to run
        them).

        Cancellation: `Future.cancel` cancels a job that has not started;
        once started, a job stops only if it calls `check_cancelled`.

        Raises:
            TypeError: `fn` is not callable, or is an async function.
            PoolClosed: the pool is closed or cancelled (also raised in a
                caller blocked here when that happens).
            RuntimeError: the pool was not opened with ``with``; or it is
                full and this is an event loop's thread, which must not block
                (use `submit_nowait`, or ``max_pending=None``).
        """
        if self._last_fn() is not fn:
            check_sync_callable(fn, "ThreadPool.submit")
            self._remember_fn(fn)
        with self._lock:
            if self._state != _OPEN or self._unfinished >= self._capacity:
                self._wait_for_room_locked("submit", wait=True)
            future, thread = self._enqueue_locked(fn, args, kwargs, copy_context(), self._flag, None)
        if thread is not None:
            self._start_worker(thread)
        return future

    def submit_nowait(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Accept ``fn(*args, **kwargs)`` as a job if there is room now; never blocks.

        Like `submit`, but raises `PoolFull` instead of blocking, so it is
        safe in an event loop's thread or a request handler that must answer
        at once.

        Raises:
            TypeError: `fn` is not callable, or is an async function.
            PoolFull: ``max_workers + max_pending`` jobs are accepted and unfinished.
            PoolClosed: the pool is closed or cancelled.
            RuntimeError: the pool was not opened with ``with``.
        """
        if self._last_fn() is not fn:
            check_sync_callable(fn, "ThreadPool.submit_nowait")
            self._remember_fn(fn)
        with self._lock:
            if self._state != _OPEN or self._unfinished >= self._capacity:
                self._wait_for_room_locked("submit_nowait", wait=False)
            future, thread = self._enqueue_locked(fn, args, kwargs, copy_context(), self._flag, None)
        if thread is not None:
            self._start_worker(thread)
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """Run ``fn(*args)`` for each tuple of items of `iterables` (zipped), and iterate over the values.

        Values come in input order.  Unlike `Executor.map`, the input is read
        lazily: at most ``max_workers + max_pending`` items
        (``2 * max_workers`` when ``max_pending`` is ``None``) are submitted
        and not yet yielded, so `iterables` may be huge or endless.  The first
        window is submitted by this call, the rest as values are consumed;
        a map that is never iterated runs only that first window.

        The first job that raises ends the iteration with its exception (it
        also goes to ``on_error``); an exception from `iterables` ends it
        after the items read before it have been yielded.  Leaving the loop
        early, or calling the iterator's ``close()`` (also before its first
        value), cancels the map's queued jobs and reads no more input.

        Args:
            fn: a synchronous callable taking one argument per iterable.
            *iterables: the arguments.
            timeout: seconds, from this call, after which waiting for a
                value raises `TimeoutError`; ``None`` waits as long as it takes.
            chunksize: accepted for compatibility with `Executor.map`, and ignored.

        Raises:
            TypeError: `fn` is not a synchronous callable, or an argument is
                not iterable or of the wrong type.
            ValueError: `timeout` is negative or `chunksize` is not positive.
            PoolClosed: the pool is closed (also raised by the iteration if
                it closes before every item was submitted).
            TimeoutError: raised by the iteration when `timeout` runs out.
            RuntimeError: as for `submit`; also raised by the iteration if it
                would block an event loop's thread.
        """
        check_sync_callable(fn, "ThreadPool.map")
        if timeout is not None:
            timeout = check_grace(timeout, "timeout")
        check_positive_int(chunksize, "chunksize")
        for iterable in iterables:
            _check_iterable(iterable)
        deadline = None if timeout is None else time.monotonic() + timeout
        pending_bound = self._max_pending if self._max_pending is not None else self._max_workers
        window = self._max_workers + pending_bound
        items = zip(*iterables)  # noqa: B905 - stops at the shortest, as Executor.map does
        pending: deque[Future[T]] = deque()
        input_error: list[BaseException] = []
        try:
            fill(self, fn, items, pending, window, input_error)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return MapResults(map_results(self, fn, items, pending, window, input_error, deadline), pending)

    def every(
        self,
        interval: float,
        fn: Callable[[Unpack[PosArgsT]], object],
        *args: Unpack[PosArgsT],
        first_run_now: bool = False,
    ) -> PeriodicCall:
        """Run ``fn(*args)`` every `interval` seconds, as a job of this pool, until stopped.

        The first run is due one interval from now (with
        ``first_run_now=True``, this call queues it), the next ones on the
        ticks of that schedule, like `Pool.every`.  A run starts only when
        the previous one has finished, so runs never overlap: ticks that come
        while a run is queued or running are dropped (counted in
        `PeriodicCall.missed`), never queued up, like Go's ``time.Ticker``.
        Each run is an ordinary job (counted in `stats`, its failure handled
        by ``on_error``), except that it may exceed ``max_pending``: a handle
        never has more than one run queued.  Runs see a copy of the
        `contextvars` context this call had.  Keyword arguments go through
        `functools.partial`.

        Runs stop when the handle is cancelled (`PeriodicCall.cancel`), or
        the pool closes or is cancelled.  The pool starts one timer thread,
        on the first call, and joins it when it exits.

        Raises:
            TypeError: `interval` is not a number, or `fn` is not a synchronous callable.
            ValueError: `interval` is not positive and finite.
            PoolClosed: the pool is closed or cancelled.
            RuntimeError: the pool was not opened with ``with``.
        """
        interval = check_interval(interval)
        check_sync_callable(fn, "ThreadPool.every")
        check_bool(first_run_now, "first_run_now")
        ticker: threading.Thread | None = None
        worker: threading.Thread | None = None
        with self._lock:
            self._check_intake_locked("every", own=False)
            ctx = copy_context()
            handle = PeriodicCall._new(self, fn, args, ctx, interval, CancelFlag(self._flag))
            if first_run_now:
                # Queued here rather than by the ticker, so that the first run
                # is accepted even if the pool closes right after this call.
                handle._running = True
                worker = self._enqueue_locked(fn, args, {}, ctx.copy(), handle._flag, handle)[1]
            self._periodic.add(handle)
            if self._ticker is None:
                ticker = self._ticker = threading.Thread(
                    target=run_ticker, args=(self,), name=f"{self._name}-ticker", daemon=True
                )
                self._threads.append(ticker)
                # Started outside the lock, after which the block's exit may
                # already be joining: it waits for this flag first, since a
                # thread not yet started cannot be joined.
                self._ticker_starting = True
            self._ticker_wake.notify()
        started = False
        try:
            if worker is not None:
                self._start_worker(worker)
            if ticker is not None:
                ticker.start()
                started = True
        finally:
            if ticker is not None:
                with self._lock:
                    self._ticker_starting = False
                    if not started:
                        self._threads.remove(ticker)
                        self._ticker = None
                        handle._stop_locked()
                    self._settled.notify_all()
        return handle

    # -- internals -----------------------------------------------------------

    def _remember_fn(self, fn: object) -> None:
        try:
            self._last_fn = weakref.ref(fn)
        except TypeError:  # no weak references: checked on every call
            self._last_fn = _no_fn

    def _is_open_locked(self) -> bool:
        return self._state == _OPEN

    def _check_intake_locked(self, what: str, own: bool) -> None:
        if self._state == _NEW:
            raise RuntimeError(f"ThreadPool.{what}() needs an open pool: use 'with ThreadPool(...) as pool:'")
        if self._cancel_called:
            self._closed_by_cancel = error = PoolClosed(
                f"workpool.ThreadPool {self._name!r} was cancelled and accepts no new jobs"
            )
            raise error
        if self._state == _EXITED or (self._state == _CLOSING and not own):
            raise PoolClosed(f"workpool.ThreadPool {self._name!r} is closed and accepts no new jobs")

    def _wait_for_room_locked(self, what: str, wait: bool) -> None:
        own = worker_of.pool is self
        while True:
            self._check_intake_locked(what, own)
            if own or self._unfinished < self._capacity:
                break
            if not wait:
                busy = self._count_busy()
                raise PoolFull(
                    f"workpool.ThreadPool {self._name!r} is full ({busy} running, "
                    f"{self._unfinished - busy} queued); use pool.submit(...) to wait for room"
                )
            if in_event_loop_thread():
                raise RuntimeError(
                    f"workpool.ThreadPool {self._name!r} is full, and ThreadPool.submit() would block this "
                    "thread's event loop until a job finishes; use submit_nowait() and handle PoolFull, "
                    "or max_pending=None"
                )
            self._room_wanted += 1
            try:
                self._room.wait()
            finally:
                self._room_wanted -= 1
        # One finished job wakes one producer; pass the wakeup on if there is
        # room for more, so that no producer waits while there is room (a
        # producer woken and then interrupted would otherwise swallow it).
        if self._room_wanted and self._unfinished + 1 < self._capacity:
            self._room.notify()

    def _enqueue_locked(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: Context,
        flag: CancelFlag,
        periodic: PeriodicCall | None,
    ) -> tuple[Future[Any], threading.Thread | None]:
        """Queue a job; return its future and a new worker thread that the caller must start."""
        future: Future[Any] = Future()
        item = Item(future, fn, args, kwargs, ctx, flag, periodic)
        # A future cancelled while its job waits gives its place back at once,
        # not when a worker reaches it (Future.cancel() runs this outside any
        # lock of the pool's).
        future.add_done_callback(functools.partial(self._queued_future_done, item))
        self._queue.put(item)
        self._unfinished += 1
        self._submitted += 1
        if self._idle:
            self._idle -= 1  # that worker will take this job
            return future, None
        if self._workers >= self._max_workers:
            return future, None
        self._workers += 1
        self._worker_seq += 1
        thread = threading.Thread(
            target=run_worker, args=(self,), name=f"{self._name}-thread-{self._worker_seq}", daemon=True
        )
        self._threads.append(thread)
        return future, thread

    def _start_worker(self, thread: threading.Thread) -> None:
        # Outside the lock: starting a thread waits for it to run.
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._workers -= 1
                self._threads.remove(thread)
                self._settled.notify_all()
            raise

    def _close(self) -> None:
        with self._lock:
            if self._state == _OPEN:
                self._state = _CLOSING
            for handle in list(self._periodic):
                handle._stop_locked()
            self._ticker_wake.notify_all()
            self._room.notify_all()
            self._maybe_release_locked()

    def _cancel(self) -> None:
        with self._lock:
            if self._cancel_called or self._state in (_NEW, _EXITED):
                return
            self._cancel_called = True
            self._flag.cancel()
        self._close()
        self._cancel_queued()

    def _cancel_queued(self) -> None:
        """Cancel every queued job (a worker that meets a cancelled one skips it)."""
        items: list[Item] = []
        with self._lock:
            sentinels = 0
            while True:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if item is None:
                    sentinels += 1
                else:
                    items.append(item)
            for _ in range(sentinels):
                self._queue.put(None)
            self._unfinished -= len(items)
            self._cancelled += len(items)
            for item in items:
                item.accounted = True
                if item.periodic is not None:
                    item.periodic._running = False
            if items:
                self._room.notify_all()
            self._maybe_release_locked()
        # Outside the lock: cancelling a future runs its callbacks.
        for item in items:
            item.future.cancel()

    def _maybe_release_locked(self) -> None:
        if self._state != _OPEN and not self._released and not self._unfinished:
            # Closed and nothing left: nothing can submit any more (only a
            # running job may, once closed), so every worker can exit.
            self._released = True
            for _ in range(self._workers):
                self._queue.put(None)
            self._settled.notify_all()

    def _wait_workers(self, timeout: float | None) -> bool:
        """Wait until every job has ended, then join every thread; False if `timeout` ran out first.

        `timeout` bounds the wait for jobs only: once none is left, the
        workers have been told to exit and are joined at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                if deadline is None:
                    self._settled.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._settled.wait(remaining)
            while self._workers or self._ticker_starting:
                self._settled.wait()
            threads, self._threads = self._threads, []
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # Interrupted (Ctrl-C): the next wait must still join them all.
            with self._lock:
                self._threads[:0] = threads
            raise
        return True

    def _count_busy(self) -> int:
        return sum(running.busy for running in self._running)

    def _queued_future_done(self, item: Item, future: Future[Any]) -> None:
        if not future.cancelled():
            return
        with self._lock:
            if item.accounted:
                return
            item.accounted = True
            self._unfinished -= 1
            self._cancelled += 1
            if item.periodic is not None:
                item.periodic._running = False
            self._job_left_locked()

    def _job_left_locked(self) -> None:
        if self._room_wanted:
            # Every finished job wakes a producer: waking them in batches could
            # deadlock jobs that wait for what a producer submits.
            self._room.notify()
        self._maybe_release_locked()
