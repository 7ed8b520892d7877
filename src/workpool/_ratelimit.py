"""A start-rate limit for a pool's jobs (GCRA, without bursts)."""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["RateLimit"]


class RateLimit:
    """At most `per_second` job starts per second, evenly spaced.

    The generic cell rate algorithm with no burst: each start reserves the
    next free slot on a schedule one ``1 / per_second`` apart, so the
    reservation is decided at once and waiting is a plain sleep until the
    slot.  Workers that arrive together get consecutive slots.
    """

    __slots__ = ("_clock", "_interval", "_next")

    def __init__(self, per_second: float, clock: Callable[[], float]) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = -float("inf")  # the earliest time the next start may happen

    async def acquire(self) -> bool:
        """Wait for this start's slot; return whether that meant waiting.

        Cancellation: a cancellation point when it waits; a cancelled wait
        gives its slot up only if no later one was reserved meanwhile.
        """
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot <= now:
            return False
        try:
            await anyio.sleep_until(slot)
        except BaseException:
            if self._next == slot + self._interval:
                self._next = slot
            raise
        return True
