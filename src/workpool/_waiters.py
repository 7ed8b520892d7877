"""Queues of parked tasks, woken one at a time or all at once.

The pool parks a worker whenever its queue runs dry, which in a busy pool is
as often as once per job, so parking must cost what the event loop's own
primitives cost: a bare future on asyncio, a parking lot on trio.  (An
`anyio.Event` per park costs about three microseconds, more than a job.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

__all__ = ["NO_WAITERS", "AsyncioWaiters", "TrioWaiters", "Waiters"]


class Waiters(Protocol):
    """Tasks waiting for a condition that another task will announce.

    A waiter re-checks its condition after waking: a wakeup says "look
    again", not "it is yours".  A wakeup is never lost: if the woken task is
    cancelled before it runs, the wakeup passes to the next waiter.
    """

    #: Tasks parked and not woken yet, or more, never fewer: a caller that
    #: reads 0 may skip `wake_one`, which would find nobody (a method call
    #: per finished job, otherwise, while a producer waits for room).
    parked: int

    def __len__(self) -> int: ...

    async def wait(self) -> None:
        """Park until woken.  A cancellation point."""
        ...

    def wake_one(self) -> bool:
        """Wake the longest-waiting task; return whether there was one."""
        ...

    def wake_all(self) -> None: ...


class AsyncioWaiters:
    __slots__ = ("_futures", "_loop", "parked")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._futures: deque[asyncio.Future[None]] = deque()
        # Each wait() is counted once, and uncounted once: by whoever
        # resolves its future, or by the waiter itself if nobody did.
        self.parked = 0

    def __len__(self) -> int:
        return len(self._futures)

    async def wait(self) -> None:
        future = self._loop.create_future()
        self._futures.append(future)
        self.parked += 1
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.wake_one()  # woken, then cancelled: pass the wakeup on
            else:
                self.parked -= 1
                try:
                    self._futures.remove(future)
                except ValueError:
                    pass
            raise

    def wake_one(self) -> bool:
        futures = self._futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(None)
                self.parked -= 1
                return True
        return False

    def wake_all(self) -> None:
        futures, self._futures = self._futures, deque()
        for future in futures:
            if not future.done():
                future.set_result(None)
                self.parked -= 1


class TrioWaiters:
    # trio's ParkingLot already removes a cancelled waiter, and a task that
    # was unparked always resumes (a cancellation waits for its next
    # checkpoint), so no wakeup can be lost.
    __slots__ = ("_lot", "parked")

    def __init__(self) -> None:
        import trio

        self._lot: Any = trio.lowlevel.ParkingLot()
        # Counted as for AsyncioWaiters.  A park that raises was not
        # unparked: the lot dropped the task when the exception came.
        self.parked = 0

    def __len__(self) -> int:
        return len(self._lot)

    async def wait(self) -> None:
        self.parked += 1
        try:
            await self._lot.park()
        except BaseException:
            self.parked -= 1
            raise

    def wake_one(self) -> bool:
        if not self._lot:
            return False
        self.parked -= len(self._lot.unpark())
        return True

    def wake_all(self) -> None:
        self.parked -= len(self._lot.unpark_all())


class _NoWaiters:
    """Stands in for the waiter queues of a pool that is not open yet."""

    __slots__ = ()

    parked = 0

    def __len__(self) -> int:
        return 0

    async def wait(self) -> None:  # pragma: no cover - a closed pool never parks
        raise RuntimeError("the pool is not open")

    def wake_one(self) -> bool:
        return False

    def wake_all(self) -> None:
        pass


NO_WAITERS: Waiters = _NoWaiters()
