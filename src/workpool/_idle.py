"""Where a pool's workers wait for work, and how they are woken or retired.

Idle workers wait on a stack, most recently idle on top, and a new job wakes
the top one: the workers that keep busy stay warm, and the ones at the bottom
have been idle longest.  Only the bottom worker waits with a deadline, its
idle start plus the pool's ``idle_timeout`` (for a moment during a hand-off,
a second worker may hold one of its own too): when it passes, that worker
exits, and the next one at the bottom takes over the deadline.  So a pool that has gone quiet gives
its workers back one by one, without a timer per worker or a reaper task.

Each worker waits on its own one-shot primitive (a bare future on asyncio,
trio's lowest-level park on trio): a shared queue of waiters would cost the
same, but could not tell the pool which worker it woke.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._worker import WorkerInfo

__all__ = ["RECHECK", "RETIRE", "WAKE", "IdleWorkers", "make_idle_workers"]

# What `IdleWorkers.park` returns, and why a parked worker was woken.
WAKE = 1  # the pool woke it for a new job (counted in Pool._waking)
RETIRE = 2  # idle for idle_timeout: exit
RECHECK = 3  # handed the deadline, but work is queued or the pool closes: look at the queue


class IdleWorkers:
    """The parked workers of one pool, most recently parked last."""

    __slots__ = ("_clock", "_queue", "closed", "idle_timeout", "stack")

    def __init__(self, queue: deque[Any], idle_timeout: float | None, clock: Callable[[], float]) -> None:
        # Public to the pool: a submit reads it to skip looking for a parked
        # worker when there is none.
        self.stack: deque[WorkerInfo] = deque()
        self._queue = queue
        self._clock = clock
        self.idle_timeout = idle_timeout
        # Set by `close`: a worker handed the deadline must then not wait again.
        self.closed = False

    async def park(self, info: WorkerInfo) -> int:
        """Wait until woken; return WAKE, RETIRE or RECHECK.

        Cancellation: a cancellation point.  A worker cancelled while parked
        leaves the stack; if a wakeup had reached it already (asyncio), it
        is still counted as WAKE in ``info.wakeup_reason`` for the caller.
        """
        stack = self.stack
        timeout = self.idle_timeout
        info.idle_since = self._clock()
        stack.append(info)
        deadline = info.idle_since + timeout if timeout is not None and len(stack) == 1 else math.inf
        while True:
            info.wakeup_reason = 0
            try:
                reason = await self._wait(info, deadline)
            except BaseException:
                if not info.wakeup_reason:
                    self._remove(info)
                raise
            if reason == WAKE:
                return WAKE
            if reason == RECHECK:
                # The worker below retired and this one took over the deadline.
                if self._queue or self.closed:
                    # It leaves the stack, so the deadline goes to the next one.
                    self._hand_off()
                    return RECHECK
                assert timeout is not None
                deadline = info.idle_since + timeout
                stack.appendleft(info)
                continue
            # The deadline passed with nobody waking it: this worker has been
            # idle longest, for idle_timeout.  It retires, and the next one at
            # the bottom takes over the deadline.
            self._remove(info)
            self._hand_off()
            return RETIRE

    def _hand_off(self) -> None:
        """Give the deadline to the worker now at the bottom of the stack."""
        stack = self.stack
        while stack:
            if self._wake(stack.popleft(), RECHECK):
                break

    def wake_one(self) -> bool:
        """Wake the most recently parked worker; return whether there was one."""
        stack = self.stack
        while stack:
            if self._wake(stack.pop(), WAKE):
                return True
        return False

    def close(self) -> int:
        """The pool stops taking jobs: wake every parked worker, to drain the queue and exit.

        Returns how many were woken.
        """
        self.closed = True
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

    async def _wait(self, info: WorkerInfo, deadline: float) -> int:
        """Wait until woken or until `deadline`; return ``info.wakeup_reason`` (0: the deadline)."""
        raise NotImplementedError

    def _wake(self, info: WorkerInfo, reason: int) -> bool:
        """Wake a worker taken off the stack; False if it was no longer waiting."""
        raise NotImplementedError


class _AsyncioIdleWorkers(IdleWorkers):
    __slots__ = ("_loop",)

    def __init__(self, queue: deque[Any], idle_timeout: float | None, clock: Callable[[], float]) -> None:
        super().__init__(queue, idle_timeout, clock)
        self._loop = asyncio.get_running_loop()

    async def _wait(self, info: WorkerInfo, deadline: float) -> int:
        future = self._loop.create_future()
        info.wakeup = future
        if deadline == math.inf:
            await future
            return info.wakeup_reason
        # A timer only for the bottom worker, once per idle period.
        handle = self._loop.call_at(self._loop.time() + (deadline - self._clock()), _expire, future)
        try:
            await future
        finally:
            handle.cancel()
        return info.wakeup_reason

    def _wake(self, info: WorkerInfo, reason: int) -> bool:
        future: asyncio.Future[None] | None = info.wakeup
        info.wakeup = None
        # Done already: its deadline passed, or its task was cancelled; the
        # worker finds out when it runs.
        if future is None or future.done():
            return False
        info.wakeup_reason = reason
        future.set_result(None)
        return True


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _TrioIdleWorkers(IdleWorkers):
    __slots__ = ()

    async def _wait(self, info: WorkerInfo, deadline: float) -> int:
        import trio

        info.wakeup = trio.lowlevel.current_task()

        def abort(raise_cancel: object) -> Any:
            # Cancelled (or out of time) while parked: off the stack at once,
            # so that nobody reschedules this task again.
            info.wakeup = None
            self._remove(info)
            return trio.lowlevel.Abort.SUCCEEDED

        if deadline == math.inf:
            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            with anyio.CancelScope(deadline=deadline):
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
    backend_name: str, queue: deque[Any], idle_timeout: float | None, clock: Callable[[], float]
) -> IdleWorkers:
    """The idle stack for the running backend ("asyncio" or "trio")."""
    if backend_name == "asyncio":
        return _AsyncioIdleWorkers(queue, idle_timeout, clock)
    return _TrioIdleWorkers(queue, idle_timeout, clock)
