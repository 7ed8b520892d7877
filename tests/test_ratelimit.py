"""``Pool(max_per_second=...)``: job starts spaced ``1 / rate`` apart, on virtual time."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from helpers import assert_stats_balanced, no_leaks
from virtual_clock import virtual_time
from workpool import Pool, Retry

pytestmark = pytest.mark.anyio


class Starts:
    """Job functions that record when they started (the event loop's clock)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def quick(self) -> None:
        self.times.append(anyio.current_time())

    async def slow(self, seconds: float) -> None:
        self.times.append(anyio.current_time())
        await anyio.sleep(seconds)


@virtual_time()
async def test_starts_are_spaced_evenly_across_several_workers() -> None:
    starts = Starts()
    with anyio.fail_after(100):
        async with no_leaks(), Pool(max_workers=4, max_per_second=8) as pool:
            t0 = anyio.current_time()
            for _ in range(40):
                await pool.submit(starts.quick)
    # No burst: the first start is at once, then one every 1/8 s (exact binary fractions).
    assert [t - t0 for t in starts.times] == [k / 8 for k in range(40)]
    assert_stats_balanced(pool.stats)


@virtual_time()
async def test_at_most_rate_starts_in_any_one_second_window() -> None:
    starts = Starts()
    with anyio.fail_after(100):
        async with no_leaks(), Pool(max_workers=16, max_per_second=10) as pool:
            t0 = anyio.current_time()
            for _ in range(50):
                await pool.submit(starts.slow, 0.35)
    times = [t - t0 for t in starts.times]
    assert times == pytest.approx([k / 10 for k in range(50)], abs=1e-9)
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + 1 - 1e-9]
        assert len(in_window) <= 10


@virtual_time()
async def test_a_worker_busy_longer_than_the_spacing_starts_at_once_when_free() -> None:
    # Two workers, 4 starts per second, jobs of one second: the rate is not
    # the bottleneck after the first two starts, and a slot that has passed
    # is not owed (no catch-up burst).
    starts = Starts()
    with anyio.fail_after(100):
        async with no_leaks(), Pool(max_workers=2, max_per_second=4) as pool:
            t0 = anyio.current_time()
            for _ in range(6):
                await pool.submit(starts.slow, 1.0)
    assert [t - t0 for t in starts.times] == [0.0, 0.25, 1.0, 1.25, 2.0, 2.25]


@virtual_time()
async def test_a_cancelled_wait_gives_its_slot_back_only_if_it_was_the_last() -> None:
    starts = Starts()
    with anyio.fail_after(100):
        async with no_leaks(), Pool(max_workers=4, max_per_second=1) as pool:
            t0 = anyio.current_time()
            await pool.submit(starts.slow, 10)  # slot 0
            b = await pool.submit(starts.slow, 10)  # slot 1
            await pool.submit(starts.slow, 10)  # c: slot 2
            await anyio.sleep(0.5)
            b.cancel()  # a later slot (c's) is reserved: b's slot 1 is lost
            await anyio.sleep(1)
            assert len(starts.times) == 1  # 1.5: nobody took slot 1
            await anyio.sleep(1)
            assert len(starts.times) == 2  # 2.5: c started at 2
            c_start = starts.times[1] - t0
            d = await pool.submit(starts.slow, 10)  # slot 3
            await anyio.sleep(0.1)
            d.cancel()  # the last reservation: slot 3 is given back...
            # ...once d's worker has seen the cancellation; trio may run the
            # next job's worker first otherwise (it shuffles ready tasks).
            await anyio.wait_all_tasks_blocked()
            await pool.submit(starts.quick)  # takes slot 3
    assert c_start == 2.0
    assert [t - t0 for t in starts.times] == [0.0, 2.0, 3.0]
    assert b.cancelled()
    assert d.cancelled()


@virtual_time()
async def test_every_retry_attempt_takes_a_slot() -> None:
    attempts: list[float] = []

    async def flaky() -> None:
        attempts.append(anyio.current_time())
        if len(attempts) < 3:
            raise ConnectionError

    with anyio.fail_after(100):
        async with no_leaks(), Pool(max_per_second=2, retry=Retry(attempts=3, backoff=0, jitter=0)) as pool:
            t0 = anyio.current_time()
            await pool.submit(flaky)
    assert [t - t0 for t in attempts] == [0.0, 0.5, 1.0]


@virtual_time()
async def test_a_slow_rate_is_honoured_over_a_long_virtual_span() -> None:
    starts = Starts()
    with anyio.fail_after(100_000):
        async with no_leaks(), Pool(max_workers=3, max_per_second=1 / 60) as pool:  # one a minute
            t0 = anyio.current_time()
            for _ in range(10):
                await pool.submit(starts.quick)
    assert [t - t0 for t in starts.times] == pytest.approx([60.0 * k for k in range(10)], abs=1e-6)


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf])
def test_max_per_second_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="max_per_second"):
        Pool(max_per_second=rate)


@pytest.mark.parametrize("rate", ["10", True, [10]])
def test_max_per_second_must_be_a_number(rate: Any) -> None:
    with pytest.raises(TypeError, match="max_per_second"):
        Pool(max_per_second=rate)


def test_max_per_second_accepts_ints_floats_and_none() -> None:
    Pool(max_per_second=5)
    Pool(max_per_second=0.5)
    Pool(max_per_second=None)
