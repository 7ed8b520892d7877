"""Periodic jobs of a `ThreadPool`: `PeriodicCall` handles and the ticker thread that starts their runs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import Context
from threading import Thread
from typing import TYPE_CHECKING, Any, NoReturn, final

from ._threads import CancelFlag

if TYPE_CHECKING:
    from ._threadpool import ThreadPool

__all__ = ["PeriodicCall", "run_ticker"]


def _no_public_constructor() -> NoReturn:
    raise TypeError("workpool.PeriodicCall has no public constructor; it is created by ThreadPool.every()")


@final
class PeriodicCall:
    """The handle `ThreadPool.every` returns: a schedule of runs in the pool's threads.

    The thread counterpart of `PeriodicJob`.  Each run is an ordinary job of
    the pool (it counts in `ThreadPool.stats`, a failure goes to
    ``on_error``).  Runs never overlap, and the handle counts the ticks that
    were dropped because a run was still going.  The schedule ends when
    `cancel` is called, when the pool closes (leaving its ``with`` block,
    `ThreadPool.shutdown`; a run in progress then finishes, as every
    accepted job does), or when the pool is cancelled.
    """

    __slots__ = (
        "_args",
        "_ctx",
        "_due",
        "_flag",
        "_fn",
        "_interval",
        "_missed",
        "_pool",
        "_running",
        "_runs",
        "_stopped",
    )

    # Everything but _flag is read and written under the pool's lock.
    _pool: ThreadPool
    _fn: Callable[..., object]
    _args: tuple[Any, ...]
    _ctx: Context
    _interval: float
    _due: float
    _flag: CancelFlag
    _running: bool
    _stopped: bool
    _runs: int
    _missed: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        _no_public_constructor()

    @classmethod
    def _new(
        cls,
        pool: ThreadPool,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        ctx: Context,
        interval: float,
        flag: CancelFlag,
    ) -> PeriodicCall:
        self = object.__new__(cls)
        self._pool = pool
        self._fn = fn
        self._args = args
        self._ctx = ctx
        self._interval = interval
        self._due = time.monotonic() + interval
        self._flag = flag
        self._running = False
        self._stopped = False
        self._runs = 0
        self._missed = 0
        return self

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", None) or repr(self._fn)
        state = "stopped" if self._stopped else "running" if self._running else "waiting"
        return (
            f"<workpool.PeriodicCall {name} every {self._interval:g} s {state} "
            f"runs={self._runs} missed={self._missed}>"
        )

    def cancel(self) -> None:
        """Stop the periodic job: no run starts after this.  Never blocks; calling it again does nothing.

        A run still queued is cancelled.  A run already going is not waited
        for: `check_cancelled` raises `JobCancelled` in it from now on, and
        the pool's ``with`` block waits for it as for any job.
        """
        pool = self._pool
        with pool._lock:
            self._flag.cancel()
            self._stop_locked()

    def stopped(self) -> bool:
        """Whether the schedule has ended (cancelled, or the pool closed); a run may still be going."""
        return self._stopped

    @property
    def interval(self) -> float:
        """Seconds between two ticks."""
        return self._interval

    @property
    def runs(self) -> int:
        """How many runs have started so far."""
        return self._runs

    @property
    def missed(self) -> int:
        """Ticks dropped because the previous run was still queued or running, or the pool fell behind."""
        return self._missed

    def _stop_locked(self) -> None:
        if not self._stopped:
            self._stopped = True
            pool = self._pool
            pool._periodic.discard(self)
            pool._ticker_wake.notify()


def run_ticker(pool: ThreadPool) -> None:
    """The body of a pool's ticker thread: start each periodic run when it is due.

    Runs under the pool's lock except while it starts a worker thread, and
    returns when the pool stops being open.  A tick that finds the previous
    run still queued or running is dropped, as are the ticks of a period the
    ticker itself overslept (a loaded machine), like Go's ``time.Ticker``.
    """
    lock = pool._lock
    wake = pool._ticker_wake
    to_start: list[Thread] = []
    with lock:
        while pool._is_open_locked():
            now = time.monotonic()
            next_due = math.inf
            for handle in pool._periodic:
                if handle._due <= now:
                    late = int((now - handle._due) // handle._interval)
                    handle._due += (late + 1) * handle._interval
                    if handle._running:
                        handle._missed += late + 1
                    else:
                        handle._missed += late
                        handle._running = True
                        thread = pool._enqueue_locked(
                            handle._fn, handle._args, {}, handle._ctx.copy(), handle._flag, handle
                        )[1]
                        if thread is not None:
                            to_start.append(thread)
                next_due = min(next_due, handle._due)
            if to_start:
                lock.release()
                try:
                    for thread in to_start:
                        pool._start_worker(thread)
                finally:
                    to_start.clear()
                    lock.acquire()
                continue
            wake.wait(None if next_due == math.inf else next_due - now)
