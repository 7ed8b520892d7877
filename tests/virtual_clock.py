"""Virtual time for the time-based tests, on both backends.

trio has ``MockClock(autojump_threshold=0)``.  asyncio has no clock to inject,
but its event loop reads the time only through ``loop.time()`` and sleeps
only inside ``selector.select(timeout)``, so `VirtualClockLoop` replaces
those two: ``time()`` returns a virtual clock, and a ``select`` that would
wait for a timer with no I/O ready moves the clock forward to that timer
instead of sleeping.  That is trio's autojump with a threshold of 0: whenever
every task is blocked, time jumps to the next deadline.  An hour of timers
runs in microseconds, and the tests can assert exact times.

Use `virtual_time` on a test to run it on both::

    @virtual_time()
    async def test_something() -> None: ...
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import trio.testing

__all__ = ["VirtualClockLoop", "virtual_time"]

F = TypeVar("F", bound=Callable[..., Any])


class _AutojumpSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting for a timer, tells its loop to jump to it."""

    def __init__(self) -> None:
        super().__init__()
        self.jump: Callable[[float], None] = lambda seconds: None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        ready = super().select(0)  # I/O that is ready now (the loop's self-pipe included)
        if ready:
            return ready
        if timeout is None:
            return super().select(None)  # no timer at all: only I/O can wake the loop
        self.jump(timeout)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        selector = _AutojumpSelector()
        super().__init__(selector)
        self._virtual_now = 0.0
        selector.jump = self._jump

    def _jump(self, seconds: float) -> None:
        self._virtual_now += seconds

    def time(self) -> float:
        return self._virtual_now


def virtual_time() -> pytest.MarkDecorator:
    """Parametrize a test over asyncio with `VirtualClockLoop` and trio with an autojumping MockClock.

    The ``trio-mockclock`` variant of ``conftest.py`` can only be selected
    indirectly, and one ``parametrize`` cannot mix indirect and direct
    values, so the backends are given directly here: a fresh MockClock per
    decorated test, created when this is called.
    """
    return pytest.mark.parametrize(
        "anyio_backend",
        [
            pytest.param(
                ("asyncio", {"debug": True, "loop_factory": VirtualClockLoop}), id="asyncio-virtualclock"
            ),
            pytest.param(
                ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="trio-mockclock"
            ),
        ],
    )
