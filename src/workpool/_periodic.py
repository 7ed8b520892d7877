"""Periodic jobs (`Pool.every`) and `ticker`: tickers that always stop."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import anyio
from typing_extensions import Self

from ._errors import PoolClosed
from ._job import Job, _no_public_constructor
from ._validate import check_bool, check_interval

if TYPE_CHECKING:
    from ._job import Site
    from ._pool import Pool

__all__ = ["PeriodicJob", "ticker"]


def _next_tick(first: float, interval: float, now: float) -> float:
    """The first tick of the schedule ``first + k * interval`` that is not in the past.

    Ticks missed while a run took longer than the interval are dropped, not
    queued, as with Go's ``time.Ticker``.
    """
    if now <= first:
        return first
    missed = (now - first) / interval
    if math.isinf(missed):  # an interval far below the clock's resolution
        return now
    return first + math.ceil(missed) * interval


@final
class PeriodicJob:
    """The handle `Pool.every` returns: a schedule of runs inside the pool.

    Each run is an ordinary job of the pool (it counts in `Pool.stats`, a
    failure goes to ``on_error``).  Runs never overlap: a run that takes
    longer than the interval makes the next one wait, and the ticks it
    missed are dropped.  The schedule ends when `cancel` is called, when the
    pool closes (a run in progress then finishes, as every accepted job
    does), or when the pool is cancelled.
    """

    __slots__ = ("_done", "_job", "_runs", "_scope")
    _done: bool
    _job: Job[Any] | None
    _runs: int
    _scope: anyio.CancelScope

    def __init__(self, *args: object, **kwargs: object) -> None:
        _no_public_constructor(PeriodicJob)

    @classmethod
    def _new(cls) -> PeriodicJob:
        self = object.__new__(cls)
        self._scope = anyio.CancelScope()
        self._job = None
        self._runs = 0
        self._done = False
        return self

    def __repr__(self) -> str:
        state = "stopped" if self._done else "running" if self._job is not None else "waiting"
        return f"<workpool.PeriodicJob {state} runs={self._runs}>"

    @property
    def runs(self) -> int:
        """How many runs have started so far."""
        return self._runs

    def stopped(self) -> bool:
        """Whether the schedule has ended (cancelled, or the pool closed)."""
        return self._done

    def cancel(self) -> None:
        """End the schedule and cancel the run in progress, if any.  Never blocks."""
        self._scope.cancel()
        if self._job is not None:
            self._job.cancel()

    def _run_ended(self, job: Job[Any]) -> None:
        if self._job is job:
            self._job = None

    async def _run(
        self,
        pool: Pool,
        interval: float,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        first_run_now: bool,
        jitter: float,
        site: Site,
    ) -> None:
        clock = pool._clock
        try:
            with self._scope:
                start = clock()
                tick = start if first_run_now else start + interval
                while True:
                    await anyio.sleep_until(tick + (random.uniform(0, jitter) if jitter else 0.0))
                    if self._scope.cancel_called:
                        # Woken for the tick, then cancelled (or the pool
                        # closed) before this task ran: the cancellation
                        # would reach it only at its next checkpoint.
                        return
                    try:
                        # The run is forgotten when it ends, not when this
                        # task stops waiting for it: after close() cancels
                        # the schedule, cancel() must still reach the run.
                        job = pool._enqueue(fn, args, self._run_ended, site)
                    except PoolClosed:
                        return
                    self._job = job
                    self._runs += 1
                    await job._wait_done()
                    tick = _next_tick(tick + interval, interval, clock())
        finally:
            self._done = True


@final
class ticker:
    """An async iterator that yields once per `interval` seconds, in the task that iterates it.

    ``async for tick in ticker(5): ...`` runs the body every five seconds; it
    yields the tick's scheduled time (on the event loop's clock).  There is no
    background task, so it cannot outlive the loop that uses it: leaving the
    loop is stopping the ticker.  If the body takes longer than the interval,
    the ticks it missed are dropped, not queued (Go's ``time.Ticker``).

    Args:
        interval: seconds between ticks.
        first_tick_now: yield the first tick at once instead of after one interval.

    Cancellation: each step is a cancellation point (it sleeps until the tick).

    Raises:
        TypeError, ValueError: `interval` is not a positive, finite number.
    """

    __slots__ = ("_first_now", "_interval", "_next")

    def __init__(self, interval: float, *, first_tick_now: bool = False) -> None:
        self._interval = check_interval(interval)
        self._first_now = check_bool(first_tick_now, "first_tick_now")
        self._next: float | None = None  # the next tick; None before the first

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> float:
        now = anyio.current_time()
        if self._next is None:
            tick = now if self._first_now else now + self._interval
        else:
            tick = _next_tick(self._next, self._interval, now)
        await anyio.sleep_until(tick)
        self._next = tick + self._interval
        return tick
