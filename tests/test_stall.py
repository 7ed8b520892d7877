"""``Pool(stall_after=...)``: a job that runs too long is logged once, with its task-dump entry."""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from helpers import live_tasks, no_leaks, noop
from virtual_clock import virtual_time
from workpool import Pool, Retry

pytestmark = pytest.mark.anyio


def stall_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "workpool" and "stall_after" in r.getMessage()]


async def slow_job(seconds: float) -> str:
    await anyio.sleep(seconds)  # the line a stall report points at
    return "done"


SLOW_JOB_SLEEP_LINE = slow_job.__code__.co_firstlineno + 1


@virtual_time()
async def test_a_job_running_too_long_is_logged_once_with_its_dump_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="workpool")
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(stall_after=2, name="svc") as pool:
            t0 = anyio.current_time()
            submit_line = sys._getframe().f_lineno + 1
            job = await pool.submit(slow_job, 10.0)
            await anyio.sleep(1.5)
            assert stall_records(caplog) == []
            await anyio.sleep(1.0)  # 2.5: past stall_after, and the watchdog looked at 2
            assert pool.stats.stalled == 1
        assert anyio.current_time() - t0 == 10.0
    assert job.result() == "done"

    records = stall_records(caplog)
    assert len(records) == 1  # once, not at every check until 10
    record = records[0]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    lines = message.splitlines()
    assert lines[0] == "workpool.Pool 'svc': a job has run for more than stall_after=2 s"
    # The task-dump entry: the worker, the job and how long it has run...
    assert lines[1].startswith('task "svc-worker-1" [running <workpool.Job slow_job running at ')
    assert lines[1].endswith(", 2.0 s]:")
    # ...where it is suspended, innermost frame first, down to the job's own
    # function (outermost, so last)...
    assert lines[-2] == f"  {__file__}:{SLOW_JOB_SLEEP_LINE} in slow_job"
    assert any(line.endswith(" in sleep") for line in lines[2:-2])
    # ...and the submit call that created it.
    test_name = "test_a_job_running_too_long_is_logged_once_with_its_dump_entry"
    assert lines[-1] == f"submitted by {test_name} at {__file__}:{submit_line}"
    assert pool.stats.stalled == 1


async def test_the_stall_warning_of_a_thread_job_names_the_blocking_function(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="workpool")
    started = threading.Event()
    release = threading.Event()

    def send_receipt() -> None:
        started.set()
        release.wait(10)

    with anyio.fail_after(10):
        async with Pool(stall_after=0.05, name="svc") as pool:
            await pool.submit_thread(send_receipt)
            try:
                assert await anyio.to_thread.run_sync(started.wait, 10)
                while pool.stats.stalled == 0:
                    await anyio.sleep(0.01)
            finally:
                release.set()
    [record] = stall_records(caplog)
    assert f"<workpool.Job {send_receipt.__qualname__} running" in record.getMessage()


@virtual_time()
async def test_quick_jobs_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="workpool")
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=2, stall_after=2) as pool:
            for _ in range(20):
                await pool.submit(slow_job, 1.9)
            await pool.submit(noop)
    # Ten rounds of 1.9 s: the watchdog looked many times and found nothing stalled.
    assert stall_records(caplog) == []
    assert pool.stats.stalled == 0
    assert pool.stats.completed == 21


@virtual_time()
async def test_each_stalled_job_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="workpool")
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=3, stall_after=1) as pool:
            for seconds in (5.0, 0.5, 7.0, 3.0):
                await pool.submit(slow_job, seconds)
    assert pool.stats.stalled == 3
    assert len(stall_records(caplog)) == 3


@virtual_time()
async def test_a_job_waiting_for_its_rate_limit_slot_has_not_stalled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Guards a fixed bug: a job waiting for its max_per_second slot counted
    # as running, so the stall watchdog reported a job whose function had not
    # been called yet.  Waiting for a start slot is not running time.
    caplog.set_level(logging.WARNING, logger="workpool")
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(max_workers=2, max_per_second=0.1, stall_after=5) as pool:
            await pool.submit(noop)
            await pool.submit(noop)
    assert [r.getMessage() for r in stall_records(caplog)] == []
    assert pool.stats.stalled == 0


@virtual_time()
async def test_a_job_waiting_out_its_retry_backoff_has_not_stalled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Like a wait for a rate slot: the backoff is the pool's wait, not the
    # job running, and each attempt's running time starts afresh.
    caplog.set_level(logging.WARNING, logger="workpool")
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        await anyio.sleep(1)
        if attempts == 1:
            raise ConnectionError("first try")

    with anyio.fail_after(1000):
        async with no_leaks(), Pool(retry=Retry(attempts=2, backoff=60), stall_after=5) as pool:
            await pool.submit(flaky)
    assert attempts == 2
    assert [r.getMessage() for r in stall_records(caplog)] == []
    assert pool.stats.stalled == 0


async def ticks() -> AsyncIterator[int]:
    while True:
        await anyio.sleep(100)  # <- suspended here
        yield 1


async def iterating_ticks() -> None:
    async for _ in ticks():
        pass


@virtual_time()
async def test_the_stall_warning_shows_the_frames_inside_an_async_generator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "Where it is suspended, innermost frame first": below an `async for`,
    # the walk stopped at the generator's asend object and showed the job's
    # own frame alone.
    caplog.set_level(logging.WARNING, logger="workpool")
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(stall_after=2, name="svc") as pool:
            await pool.submit(iterating_ticks)
            await anyio.sleep(3)
            assert pool.stats.stalled == 1
            pool.cancel()
    [record] = stall_records(caplog)
    lines = record.getMessage().splitlines()
    sleep_line = ticks.__code__.co_firstlineno + 2
    assert f"  {__file__}:{sleep_line} in ticks" in lines, lines
    assert lines[-2].endswith(" in iterating_ticks")


async def test_the_watchdog_is_a_task_of_the_pool_that_does_not_outlive_it() -> None:
    def watchdogs() -> list[str]:
        names = [getattr(t, "name", None) or t.get_name() for t in live_tasks()]
        return [n for n in names if n.endswith("-stall-watchdog")]

    with anyio.fail_after(5):
        async with no_leaks(), Pool(stall_after=3600, name="wd") as pool:
            assert watchdogs() == ["wd-stall-watchdog"]
            await (await pool.submit(noop))
        assert watchdogs() == []


async def test_the_watchdog_stops_when_the_pool_is_cancelled_or_the_body_fails() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(stall_after=3600) as pool:
            await pool.submit(anyio.sleep_forever)
            pool.cancel()
        with pytest.raises(KeyError):  # noqa: PT012
            async with no_leaks(), Pool(stall_after=3600) as pool:
                await pool.submit(anyio.sleep_forever)
                raise KeyError


async def test_the_watchdog_stops_with_a_pool_that_never_ran_a_job() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), Pool(stall_after=3600):
            pass


async def test_without_stall_after_there_is_no_watchdog() -> None:
    async with no_leaks():
        before = live_tasks()
        async with Pool():
            assert live_tasks() == before


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
    ],
)
def test_stall_after_is_validated(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="stall_after"):
        Pool(stall_after=value)
