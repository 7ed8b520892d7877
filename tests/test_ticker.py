"""`workpool.ticker`: ticks in the iterating task itself, so it cannot outlive its loop."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from helpers import live_tasks, no_leaks
from virtual_clock import virtual_time
from workpool import ticker

pytestmark = pytest.mark.anyio


@virtual_time()
async def test_a_thousand_ticks_at_the_interval() -> None:
    ticks: list[float] = []
    woke: list[float] = []
    with anyio.fail_after(5000):
        async with no_leaks():
            t0 = anyio.current_time()
            async for tick in ticker(1.0):
                ticks.append(tick - t0)
                woke.append(anyio.current_time() - t0)
                if len(ticks) == 1000:
                    break
    expected = [float(k) for k in range(1, 1001)]
    assert ticks == expected  # the scheduled times...
    assert woke == expected  # ...which are also when the body ran


@virtual_time()
async def test_first_tick_now() -> None:
    ticks: list[float] = []
    with anyio.fail_after(100):
        t0 = anyio.current_time()
        async for tick in ticker(0.5, first_tick_now=True):
            ticks.append(tick - t0)
            if len(ticks) == 4:
                break
    assert ticks == [0.0, 0.5, 1.0, 1.5]


@virtual_time()
async def test_a_slow_body_drops_the_missed_ticks() -> None:
    # The body takes 2.5 intervals: ticks 2 and 3 fall inside it and are
    # dropped, so the next tick is 4 (not 2 and 3 in a burst).
    ticks: list[float] = []
    with anyio.fail_after(1000):
        t0 = anyio.current_time()
        async for tick in ticker(1.0):
            ticks.append(tick - t0)
            if len(ticks) == 34:
                break
            await anyio.sleep(2.5)
    assert ticks == [float(k) for k in range(1, 101, 3)]


@virtual_time()
async def test_a_body_that_takes_an_irregular_time_stays_on_the_grid() -> None:
    durations = iter([0.1, 1.2, 0.0, 3.0, 0.9])
    ticks: list[float] = []
    with anyio.fail_after(100):
        t0 = anyio.current_time()
        async for tick in ticker(1.0):
            ticks.append(tick - t0)
            duration = next(durations, None)
            if duration is None:
                break
            await anyio.sleep(duration)
    # 1 (+0.1) -> 2 (+1.2 = 3.2) -> 4 (+0) -> 5 (+3 = 8) -> 8 (+0.9) -> 9
    assert ticks == [1.0, 2.0, 4.0, 5.0, 8.0, 9.0]


@virtual_time()
async def test_a_cancelled_scope_ends_the_loop() -> None:
    ticks: list[float] = []
    with anyio.fail_after(100):
        t0 = anyio.current_time()
        with anyio.move_on_after(3.5):
            async for tick in ticker(1.0):
                ticks.append(tick - t0)
        assert anyio.current_time() - t0 == 3.5
    assert ticks == [1.0, 2.0, 3.0]


async def test_iterating_creates_no_task() -> None:
    # The ticker is its caller's own loop: the set of tasks while it ticks
    # is exactly the set before, so there is nothing that could outlive it.
    counts: list[int] = []
    with anyio.fail_after(5):
        async with no_leaks():
            before = live_tasks()
            async for _ in ticker(0.001, first_tick_now=True):
                assert live_tasks() == before
                counts.append(len(live_tasks()))
                if len(counts) == 5:
                    break
            assert live_tasks() == before


async def test_each_tick_is_a_cancellation_point_even_when_it_is_due() -> None:
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            scope.cancel()
            async for _ in ticker(3600, first_tick_now=True):
                pytest.fail("a cancelled task got a tick")
    assert scope.cancelled_caught


@pytest.mark.parametrize("interval", [0, -1, -0.001, math.nan, math.inf])
def test_bad_intervals_are_value_errors(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        ticker(interval)


@pytest.mark.parametrize("interval", ["1", None, True, 1j])
def test_intervals_that_are_not_numbers_are_type_errors(interval: Any) -> None:
    with pytest.raises(TypeError, match="interval"):
        ticker(interval)


def test_an_int_interval_is_accepted_and_the_ticker_is_its_own_iterator() -> None:
    t = ticker(2)
    assert t.__aiter__() is t
