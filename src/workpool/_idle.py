"""Where a pool's workers wait for work, and how they are woken or retired.

Idle workers wait on a stack, most recently idle on top, and a new job wakes
the top one: the workers that keep busy stay warm, and the ones at the bottom
have been idle longest.  One timer task per pool retires them: it sleeps
until the bottom worker has been idle for the pool's ``idle_timeout``, wakes
it to exit, and goes on with the next.  So a pool that has gone quiet gives
its workers back one by one, and a worker that parks pays for no deadline of
its own: a deadline per park (a timer handle on asyncio, a cancel scope on
trio) was a fifth of a submit-and-await round trip on asyncio and two fifths
on trio.

The pool starts the timer with its first worker, and it runs until the pool
closes.  Started and stopped with the parked workers, it would appear and
vanish as a task of its own inside a `no_leaks` region around a pool whose
workers existed before (a long-lived pool in a test fixture), and be
reported as a leak there.

Each worker waits on its own one-shot primitive (a bare future on asyncio,
trio's lowest-level park on trio): a shared queue of waiters would cost the
same, but could not tell the pool which worker it woke.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._worker import WorkerInfo

__all__ = ["RETIRE", "WAKE", "IdleWorkers", "make_idle_workers"]

# What `IdleWorkers.park` returns, and why a parked worker was woken.
WAKE = 1  # the pool woke it for a new job (counted in Pool._waking)
RETIRE = 2  # idle for idle_timeout: exit


class IdleWorkers:
    """The parked workers of one pool, most recently parked last, and the timer that retires them."""

    __slots__ = ("_clock", "_timer_scope", "closed", "idle_timeout", "stack")

    def __init__(self, idle_timeout: float | None, clock: Callable[[], float]) -> None:
        # Public to the pool: a submit reads it to skip looking for a parked
        # worker when there is none.
        self.stack: deque[WorkerInfo] = deque()
        self._clock = clock
        self.idle_timeout = idle_timeout
        self._timer_scope: anyio.CancelScope | None = None
        # Set by `close`: the timer must then stop.
        self.closed = False

    async def park(self, info: WorkerInfo) -> int:
        """Wait until woken; return WAKE or RETIRE.

        Cancellation: a cancellation point.  A worker cancelled while parked
        leaves the stack; if a wakeup had reached it already (asyncio), it
        is still counted as WAKE in ``info.wakeup_reason`` for the caller.
        """
        info.idle_since = self._clock()
        self.stack.append(info)
        info.wakeup_reason = 0
        try:
            return await self._wait(info)
        except BaseException:
            if not info.wakeup_reason:
                self._remove(info)
            raise

    async def run_timer(self) -> None:
        """Retire each parked worker once it has been idle for ``idle_timeout``; the pool's timer task.

        The bottom worker has been parked longest, so its deadline comes
        first, and the deadline of the bottom only moves later as workers
        are woken or retired: the timer never has to be woken early.  When
        no worker is parked, one that parks later is due a whole timeout
        later at the soonest, so the timer sleeps that long before it looks
        again.  Returns when the pool closes.

        Cancellation: `close` cancels it, as does the pool's cancellation.
        """
        timeout = self.idle_timeout
        assert timeout is not None
        stack = self.stack
        try:
            with anyio.CancelScope() as self._timer_scope:
                while not self.closed:
                    if not stack:
                        await anyio.sleep(timeout)
                        continue
                    bottom = stack[0]
                    assert bottom.idle_since is not None
                    deadline = bottom.idle_since + timeout
                    if self._clock() < deadline:
                        await anyio.sleep_until(deadline)
                        continue
                    stack.popleft()
                    self._wake(bottom, RETIRE)
        finally:
            self._timer_scope = None

    def wake_one(self) -> bool:
        """Wake the most recently parked worker; return whether there was one."""
        stack = self.stack
        while stack:
            if self._wake(stack.pop(), WAKE):
                return True
        return False

    def close(self) -> int:
        """The pool stops taking jobs: wake every parked worker, to drain the queue and exit.

        Returns how many were woken.  The timer stops.
        """
        self.closed = True
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        stack = self.stack
        count = 0
        while stack:
            count += self._wake(stack.pop(), WAKE)
        return count

    def _remove(self, info: WorkerInfo) -> None:
        try:
            self.stack.remove(info)
        except ValueError:
            pass  # a waker took it off the stack already

    async def _wait(self, info: WorkerInfo) -> int:
        """Wait until woken; return ``info.wakeup_reason``."""
        raise NotImplementedError

    def _wake(self, info: WorkerInfo, reason: int) -> bool:
        """Wake a worker taken off the stack; False if it was no longer waiting."""
        raise NotImplementedError


class _AsyncioIdleWorkers(IdleWorkers):
    __slots__ = ("_loop",)

    def __init__(self, idle_timeout: float | None, clock: Callable[[], float]) -> None:
        super().__init__(idle_timeout, clock)
        self._loop = asyncio.get_running_loop()

    async def _wait(self, info: WorkerInfo) -> int:
        future = self._loop.create_future()
        info.wakeup = future
        await future
        return info.wakeup_reason

    def _wake(self, info: WorkerInfo, reason: int) -> bool:
        future: asyncio.Future[None] | None = info.wakeup
        info.wakeup = None
        # Done already: its task was cancelled; the worker finds out when it
        # runs.
        if future is None or future.done():
            return False
        info.wakeup_reason = reason
        future.set_result(None)
        return True


class _TrioIdleWorkers(IdleWorkers):
    __slots__ = ()

    async def _wait(self, info: WorkerInfo) -> int:
        import trio

        info.wakeup = trio.lowlevel.current_task()

        def abort(raise_cancel: object) -> Any:
            # Cancelled while parked: off the stack at once, so that nobody
            # reschedules this task again.
            info.wakeup = None
            self._remove(info)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return info.wakeup_reason

    def _wake(self, info: WorkerInfo, reason: int) -> bool:
        import trio

        task = info.wakeup
        info.wakeup = None
        if task is None:
            return False
        info.wakeup_reason = reason
        trio.lowlevel.reschedule(task)
        return True


def make_idle_workers(
    backend_name: str, idle_timeout: float | None, clock: Callable[[], float]
) -> IdleWorkers:
    """The idle stack for the running backend ("asyncio" or "trio")."""
    if backend_name == "asyncio":
        return _AsyncioIdleWorkers(idle_timeout, clock)
    return _TrioIdleWorkers(idle_timeout, clock)
