"""Where a pool's workers wait for work, and how they are woken or retired.

Idle workers wait on a stack, most recently idle on top, and a new job wakes
the top one: the workers that keep busy stay warm, and the ones at the bottom
have been idle longest.  One timer per pool retires them: it fires when the
bottom worker has been idle for the pool's ``idle_timeout``, wakes it to exit,
and goes on with the next.  So a pool that has gone quiet gives its workers
back one by one, and a worker that parks pays for no deadline of its own: a
deadline per park (a timer handle on asyncio, a cancel scope on trio) was a
fifth of a submit-and-await round trip on asyncio and two fifths on trio.

The bottom worker has been parked longest, so its deadline comes first, and
the deadline of the bottom only moves later as workers are woken or retired:
the timer never has to fire early.  With nobody parked it waits for the next
park, which arms it (asyncio) or wakes it (trio).

On asyncio the timer is a callback of the event loop, armed by a park when
none is armed.  trio has no such callbacks: there it is a task of the pool,
``"<name>-idle-timer"``, which the pool starts with its first worker and which
runs until the pool closes.  Started and stopped with the parked workers, it
would come and go inside a `no_leaks` region around a pool whose workers
existed before (a long-lived pool in a test fixture), and be reported there
as a leak.  Closing the pool wakes it rather than cancelling it: a
cancellation made opening and closing a pool that runs a job a quarter
dearer.

Each worker waits on its own one-shot primitive (a bare future on asyncio,
trio's lowest-level park on trio): a shared queue of waiters would cost the
same, but could not tell the pool which worker it woke.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._worker import WorkerInfo

__all__ = ["RETIRE", "WAKE", "IdleWorkers", "make_idle_workers"]

# What `IdleWorkers.park` returns, and why a parked worker was woken.
WAKE = 1  # the pool woke it for a new job (counted in Pool._waking)
RETIRE = 2  # idle for idle_timeout: exit


class IdleWorkers:
    """The parked workers of one pool, most recently parked last, and the timer that retires them."""

    __slots__ = ("_clock", "closed", "idle_timeout", "stack")

    #: Whether the pool must run `run_timer` as a task (from its first worker on).
    timer_task = False

    def __init__(self, idle_timeout: float | None, clock: Callable[[], float]) -> None:
        # Public to the pool: a submit reads it to skip looking for a parked
        # worker when there is none.
        self.stack: deque[WorkerInfo] = deque()
        self._clock = clock
        self.idle_timeout = idle_timeout
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
        """The pool's timer task, where the backend needs one (`timer_task`); returns when the pool closes."""
        raise NotImplementedError

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
        self._stop_timer()
        stack = self.stack
        count = 0
        while stack:
            count += self._wake(stack.pop(), WAKE)
        return count

    def _retire_due(self) -> float | None:
        """Retire the workers idle for ``idle_timeout``; return when the next is due (None: nobody parked)."""
        timeout = self.idle_timeout
        assert timeout is not None
        stack = self.stack
        now = self._clock()
        while stack:
            bottom = stack[0]
            assert bottom.idle_since is not None
            deadline = bottom.idle_since + timeout
            if now < deadline:
                return deadline
            stack.popleft()
            self._wake(bottom, RETIRE)
        return None

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

    def _stop_timer(self) -> None:
        raise NotImplementedError


class _AsyncioIdleWorkers(IdleWorkers):
    __slots__ = ("_loop", "_timer")

    def __init__(self, idle_timeout: float | None, clock: Callable[[], float]) -> None:
        super().__init__(idle_timeout, clock)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    async def _wait(self, info: WorkerInfo) -> int:
        timeout = self.idle_timeout
        if self._timer is None and timeout is not None:
            bottom_since = self.stack[0].idle_since
            assert bottom_since is not None
            self._arm(bottom_since + timeout)
        future = self._loop.create_future()
        info.wakeup = future
        await future
        return info.wakeup_reason

    def _arm(self, deadline: float) -> None:
        # `deadline` is on the pool's clock, the handle on the loop's.
        self._timer = self._loop.call_at(self._loop.time() + (deadline - self._clock()), self._fire)

    def _fire(self) -> None:
        # Never after close(), which cancels the handle.
        self._timer = None
        deadline = self._retire_due()
        if deadline is not None:
            self._arm(deadline)
        # Nobody parked: the next park arms the timer again.

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

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
    __slots__ = ("_timer", "_timer_unbounded")

    timer_task = True

    def __init__(self, idle_timeout: float | None, clock: Callable[[], float]) -> None:
        super().__init__(idle_timeout, clock)
        # The timer task while it waits, for `close` (or a park) to wake.
        self._timer: Any = None
        # Whether it waits with no deadline, for a worker to park: a
        # deadline with nobody parked would wake it every idle_timeout for
        # nothing, and make trio's MockClock(autojump_threshold=0) jump
        # ahead whenever the program waits for anything else.
        self._timer_unbounded = False

    async def run_timer(self) -> None:
        """Retire idle workers until the pool closes (see the module docstring).

        Cancellation: the pool's cancellation ends it; `close` wakes it to
        return.
        """
        import trio

        def abort(raise_cancel: object) -> Any:
            self._timer = None
            self._timer_unbounded = False
            return trio.lowlevel.Abort.SUCCEEDED

        while not self.closed:
            deadline = self._retire_due()
            self._timer = trio.lowlevel.current_task()
            if deadline is None:
                self._timer_unbounded = True
                await trio.lowlevel.wait_task_rescheduled(abort)
            else:
                # Woken by close(), or cancelled at the deadline by this scope.
                with trio.CancelScope(deadline=deadline):
                    await trio.lowlevel.wait_task_rescheduled(abort)
            self._timer = None

    def _stop_timer(self) -> None:
        import trio

        task = self._timer
        self._timer = None
        self._timer_unbounded = False
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def _wait(self, info: WorkerInfo) -> int:
        import trio

        if self._timer_unbounded:
            self._stop_timer()  # the timer looks again, and finds this worker
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
