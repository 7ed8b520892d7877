"""`Retry` and ``Pool(retry=...)``: attempts, backoff, filtering, cancellation, job_timeout."""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any

import anyio
import attrs
import pytest

from helpers import Boom, Unswallowable, assert_stats_balanced, leaves, no_leaks
from virtual_clock import virtual_time
from workpool import Job, JobCancelled, Pool, Retry

pytestmark = pytest.mark.anyio


class Flaky:
    """Raises ``errors[n]`` on call n (from 0) while there is one, then returns the call count.

    Records the time of every call.
    """

    def __init__(self, *errors: Exception, seconds: float = 0.0) -> None:
        self.errors = list(errors)
        self.seconds = seconds
        self.times: list[float] = []

    async def __call__(self) -> int:
        n = len(self.times)
        self.times.append(anyio.current_time())
        if self.seconds:
            await anyio.sleep(self.seconds)
        if n < len(self.errors):
            raise self.errors[n]
        return n + 1

    @property
    def calls(self) -> int:
        return len(self.times)


NO_WAIT = Retry(attempts=3, backoff=0, jitter=0)


# -- attempts --------------------------------------------------------------------


async def test_a_job_that_fails_then_succeeds_returns_its_value() -> None:
    flaky = Flaky(Boom(1), Boom(2))
    failures: list[Exception] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(retry=NO_WAIT, on_error=lambda job, exc: failures.append(exc)) as pool:
            job = await pool.submit(flaky)
    assert job.result() == 3
    assert flaky.calls == 3
    assert failures == []
    stats = pool.stats
    assert (stats.completed, stats.failed, stats.retries) == (1, 0, 2)
    assert_stats_balanced(stats)


async def test_only_the_final_failure_reaches_on_error_and_the_awaiter() -> None:
    errors = [Boom(1), Boom(2), Boom(3)]
    flaky = Flaky(*errors)
    seen: list[tuple[Job[Any], Exception]] = []
    with anyio.fail_after(5):
        async with no_leaks(), Pool(retry=NO_WAIT, on_error=lambda job, exc: seen.append((job, exc))) as pool:
            job = await pool.submit(flaky)
            with pytest.raises(Boom) as info:
                await job
    assert info.value is errors[2]
    assert seen == [(job, errors[2])]
    assert flaky.calls == 3
    stats = pool.stats
    assert (stats.completed, stats.failed, stats.retries) == (0, 1, 2)


async def test_the_final_failure_under_cancel_is_raised_alone() -> None:
    errors = [Boom(1), Boom(2)]
    with anyio.fail_after(5), pytest.RaisesGroup(pytest.RaisesExc(Boom, match="^2$")):
        async with no_leaks(), Pool(retry=Retry(attempts=2, backoff=0, jitter=0)) as pool:
            await pool.submit(Flaky(*errors))
    assert pool.stats.retries == 1


async def test_attempts_one_means_no_retry() -> None:
    flaky = Flaky(Boom(1))
    with anyio.fail_after(5), pytest.RaisesGroup(Boom):
        async with no_leaks(), Pool(retry=Retry(attempts=1)) as pool:
            await pool.submit(flaky)
    assert flaky.calls == 1
    assert pool.stats.retries == 0


async def test_retry_on_filters_what_is_retried() -> None:
    retry = Retry(attempts=5, backoff=0, jitter=0, retry_on=(ConnectionError, TimeoutError))
    subclass = Flaky(ConnectionResetError(), BrokenPipeError())  # subclasses of ConnectionError
    other_exc, mixed_exc = ValueError("not worth retrying"), KeyError("stop here")
    other = Flaky(other_exc)
    mixed = Flaky(ConnectionError(), mixed_exc, ConnectionError())
    with (
        anyio.fail_after(5),
        pytest.RaisesGroup(ValueError, KeyError, check=lambda g: leaves(g) == [other_exc, mixed_exc]),
    ):
        async with no_leaks(), Pool(retry=retry, on_error="collect") as pool:
            jobs = [await pool.submit(f) for f in (subclass, other, mixed)]
    assert jobs[0].result() == 3
    assert subclass.calls == 3
    assert isinstance(jobs[1].exception(), ValueError)
    assert other.calls == 1
    assert isinstance(jobs[2].exception(), KeyError)
    assert mixed.calls == 2


@pytest.mark.parametrize("retry_on", [ValueError, (ValueError,)])
async def test_retry_on_takes_one_class_or_a_tuple(retry_on: Any) -> None:
    assert Retry(retry_on=retry_on).retry_on == (ValueError,)


async def test_base_exceptions_are_never_retried() -> None:
    calls: list[int] = []

    async def interrupt() -> None:
        calls.append(1)
        raise Unswallowable

    with anyio.fail_after(5), pytest.RaisesGroup(Unswallowable, allow_unwrapped=True, flatten_subgroups=True):
        async with Pool(retry=NO_WAIT) as pool:
            await pool.submit(interrupt)
    assert calls == [1]


# -- backoff on the virtual clock ---------------------------------------------------


@virtual_time()
async def test_attempts_happen_at_the_exact_backoff_times() -> None:
    retry = Retry(attempts=6, backoff=0.5, max_backoff=3, jitter=0)
    flaky = Flaky(*(Boom(i) for i in range(5)))
    with anyio.fail_after(100):
        async with no_leaks(), Pool(retry=retry) as pool:
            t0 = anyio.current_time()
            job = await pool.submit(flaky)
    assert job.result() == 6
    # Waits of 0.5, 1, 2, then capped at 3, 3 seconds.
    delays = [retry.delay(n) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [t - t0 for t in flaky.times] == [0.0, *accumulate(delays)]
    assert [t - t0 for t in flaky.times] == [0.0, 0.5, 1.5, 3.5, 6.5, 9.5]
    assert pool.stats.retries == 5


@virtual_time()
async def test_jittered_waits_stay_within_their_bounds() -> None:
    retry = Retry(attempts=40, backoff=1, max_backoff=1, jitter=0.5)
    flaky = Flaky(*(Boom(i) for i in range(39)))
    with anyio.fail_after(1000):
        async with no_leaks(), Pool(retry=retry) as pool:
            job = await pool.submit(flaky)
    assert job.result() == 40
    waits = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert all(0.5 <= w <= 1.0 for w in waits), waits
    assert len({round(w, 6) for w in waits}) > 10  # jitter was applied, not a constant


def test_delay_is_exponential_capped_and_jitter_takes_off_a_share() -> None:
    retry = Retry(backoff=0.25, max_backoff=4, jitter=0.5)
    assert [retry.delay(n, rand=0) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert retry.delay(3, rand=1) == 0.5  # half of 1.0 taken off at most
    assert retry.delay(3, rand=0.5) == 0.75
    for _ in range(100):
        assert 0.5 <= retry.delay(3) <= 1.0


def test_delay_does_not_overflow_for_many_attempts() -> None:
    # Guards a fixed bug: Retry.delay computed backoff * 2 ** (attempt - 1)
    # before capping it, which overflowed past attempt 1024 and failed the
    # job with OverflowError.  The cap applies first now.
    retry = Retry(attempts=5000, backoff=0.001, max_backoff=1, jitter=0)
    assert retry.delay(1100) == 1.0


@virtual_time()
async def test_a_long_retry_policy_keeps_retrying_past_1024_attempts() -> None:
    flaky = Flaky(*(ConnectionError(i) for i in range(1100)))
    retry = Retry(attempts=5000, backoff=0.001, max_backoff=1, jitter=0)
    failures: list[Exception] = []
    with anyio.fail_after(100_000):
        async with no_leaks(), Pool(retry=retry, on_error=lambda job, exc: failures.append(exc)) as pool:
            job = await pool.submit(flaky)
    assert failures == []
    assert job.exception() is None, f"the job failed with {job.exception()!r} after {flaky.calls} calls"
    assert job.result() == 1101


# -- cancellation and job_timeout ------------------------------------------------------


@virtual_time()
async def test_cancelling_the_job_during_its_backoff_stops_the_retries() -> None:
    flaky = Flaky(Boom(1), Boom(2))
    with anyio.fail_after(100):
        async with no_leaks(), Pool(retry=Retry(attempts=3, backoff=10, jitter=0)) as pool:
            job = await pool.submit(flaky)
            await anyio.sleep(5)  # the first attempt failed at 0; the wait lasts until 10
            assert flaky.calls == 1
            job.cancel()
            await anyio.sleep(50)
            assert flaky.calls == 1
    with pytest.raises(JobCancelled):
        await job
    assert pool.stats.cancelled == 1
    assert pool.stats.failed == 0
    # Retries count attempts run again (PoolStats.retries); this one never ran.
    assert pool.stats.retries == 0


@virtual_time()
async def test_cancelling_the_pool_during_a_backoff_stops_the_retries() -> None:
    flaky = Flaky(Boom(1), Boom(2))
    with anyio.fail_after(100):
        async with no_leaks(), Pool(retry=Retry(attempts=3, backoff=10, jitter=0)) as pool:
            job = await pool.submit(flaky)
            await anyio.sleep(5)
            pool.cancel()
    assert flaky.calls == 1
    assert job.cancelled()


@virtual_time()
async def test_shutdown_cancels_a_job_waiting_to_retry() -> None:
    flaky = Flaky(Boom(1), Boom(2))
    with anyio.fail_after(100):
        async with no_leaks(), Pool(retry=Retry(attempts=3, backoff=10, jitter=0)) as pool:
            job = await pool.submit(flaky)
            report = await pool.shutdown(grace=5)
    assert report.cancelled == 1
    assert flaky.calls == 1
    assert job.cancelled()


@virtual_time()
async def test_job_timeout_applies_to_each_attempt() -> None:
    # Each attempt takes 1.5 s, within job_timeout=2: the first fails, the
    # second succeeds, although the job as a whole took 4 s.
    flaky = Flaky(ConnectionError(), seconds=1.5)
    with anyio.fail_after(100):
        async with no_leaks(), Pool(job_timeout=2, retry=Retry(attempts=3, backoff=1, jitter=0)) as pool:
            t0 = anyio.current_time()
            job = await pool.submit(flaky)
            assert await job == 2
            assert anyio.current_time() - t0 == 4.0


@virtual_time()
async def test_an_attempt_that_times_out_is_retried_and_the_last_timeout_is_the_failure() -> None:
    calls: list[float] = []

    async def hang() -> None:
        calls.append(anyio.current_time())
        await anyio.sleep_forever()

    seen: list[Exception] = []
    with anyio.fail_after(100):
        async with (
            no_leaks(),
            Pool(
                job_timeout=2,
                retry=Retry(attempts=3, backoff=1, jitter=0),
                on_error=lambda j, e: seen.append(e),
            ) as pool,
        ):
            t0 = anyio.current_time()
            job = await pool.submit(hang)
            with pytest.raises(TimeoutError):
                await job
            # attempt at 0, times out at 2, waits 1; at 3, out at 5, waits 2; at 7, out at 9.
            assert anyio.current_time() - t0 == 9.0
    assert [t - t0 for t in calls] == [0.0, 3.0, 7.0]
    assert [type(e) for e in seen] == [TimeoutError]
    assert pool.stats.retries == 2


@virtual_time()
async def test_a_timeout_is_not_retried_unless_retry_on_includes_it() -> None:
    calls: list[float] = []

    async def hang() -> None:
        calls.append(anyio.current_time())
        await anyio.sleep_forever()

    retry = Retry(attempts=3, backoff=1, jitter=0, retry_on=ConnectionError)
    failures: list[Exception] = []
    with anyio.fail_after(100):
        async with (
            no_leaks(),
            Pool(job_timeout=2, retry=retry, on_error=lambda j, e: failures.append(e)) as pool,
        ):
            job = await pool.submit(hang)
    assert len(calls) == 1
    assert isinstance(job.exception(), TimeoutError)
    assert failures == [job.exception()]
    assert pool.stats.retries == 0


async def test_each_attempt_runs_in_the_submitters_context() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen: list[str] = []

    async def job() -> int:
        seen.append(var.get())
        if len(seen) < 3:
            raise Boom
        return len(seen)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(retry=NO_WAIT) as pool:
            var.set("request-1")
            handle = await pool.submit(job)
            var.set("request-2")
    assert handle.result() == 3
    assert seen == ["request-1"] * 3


# -- validation ---------------------------------------------------------------------------


def test_retry_defaults() -> None:
    retry = Retry()
    assert (retry.attempts, retry.backoff, retry.max_backoff, retry.jitter) == (3, 0.1, 10.0, 0.1)
    assert retry.retry_on == (Exception,)


def test_retry_is_frozen() -> None:
    retry = Retry()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        retry.attempts = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"attempts": 0}, ValueError),
        ({"attempts": -1}, ValueError),
        ({"attempts": 2.0}, TypeError),
        ({"attempts": True}, TypeError),
        ({"attempts": "3"}, TypeError),
        ({"backoff": -0.1}, ValueError),
        ({"backoff": math.nan}, ValueError),
        ({"backoff": math.inf}, ValueError),
        ({"backoff": "1"}, TypeError),
        ({"max_backoff": -1}, ValueError),
        ({"max_backoff": math.nan}, ValueError),
        ({"jitter": -0.1}, ValueError),
        ({"jitter": 1.5}, ValueError),
        ({"jitter": math.nan}, ValueError),
        ({"jitter": "0.1"}, TypeError),
        ({"retry_on": KeyboardInterrupt}, TypeError),
        ({"retry_on": (ValueError, BaseException)}, TypeError),
        ({"retry_on": [ValueError]}, TypeError),
        ({"retry_on": "ValueError"}, TypeError),
        ({"retry_on": ValueError("an instance")}, TypeError),
    ],
)
def test_retry_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        Retry(**kwargs)


@pytest.mark.parametrize("retry", [3, "3", True, {"attempts": 3}])
def test_pool_retry_must_be_a_retry(retry: Any) -> None:
    with pytest.raises(TypeError, match="retry"):
        Pool(retry=retry)
