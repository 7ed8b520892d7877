"""`Pool.consume` from an `AckingSource`: each item is acknowledged after its job succeeded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import anyio
import pytest

from helpers import no_leaks
from workpool import AckingSource, Job, Pool, Retry

pytestmark = pytest.mark.anyio


class RecordingSource:
    """Yields its items and records every ack and nack, in order."""

    def __init__(self, items: list[int]) -> None:
        self.items = items
        self.acked: list[int] = []
        self.nacked: list[tuple[int, str]] = []

    async def __aiter__(self) -> AsyncIterator[int]:
        for item in self.items:
            yield item

    async def ack(self, item: int, /) -> None:
        await anyio.lowlevel.checkpoint()
        self.acked.append(item)

    async def nack(self, item: int, error: Exception, /) -> None:
        self.nacked.append((item, str(error)))


def test_a_class_with_ack_and_nack_is_an_acking_source() -> None:
    assert isinstance(RecordingSource([]), AckingSource)
    assert not isinstance([1, 2], AckingSource)


async def test_acks_follow_success_and_nacks_follow_failure() -> None:
    source = RecordingSource(list(range(10)))
    done: list[int] = []
    failures: list[Exception] = []

    async def job(item: int) -> None:
        if item % 3 == 0:
            raise ValueError(f"bad {item}")
        done.append(item)

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=3, on_error=lambda job, exc: failures.append(exc)) as pool:
            await pool.consume(source, job)
    assert sorted(source.acked) == sorted(done) == [1, 2, 4, 5, 7, 8]
    assert sorted(source.nacked) == [(0, "bad 0"), (3, "bad 3"), (6, "bad 6"), (9, "bad 9")]
    assert sorted(str(e) for e in failures) == ["bad 0", "bad 3", "bad 6", "bad 9"]


async def test_a_cancelled_job_is_neither_acked_nor_nacked() -> None:
    source = RecordingSource([1, 2])
    started = anyio.Event()

    async def job(item: int) -> None:
        if item == 2:
            started.set()
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool, anyio.create_task_group() as tg:
            tg.start_soon(pool.consume, source, job)
            await started.wait()
            await anyio.wait_all_tasks_blocked()
            pool.cancel()
    assert source.acked == [1]
    assert source.nacked == []


class StrictSource(RecordingSource):
    """A RecordingSource that, like a real queue, refuses a second outcome for one item."""

    def __init__(self, items: list[int]) -> None:
        super().__init__(items)
        self.outstanding: list[int] = []

    async def __aiter__(self) -> AsyncIterator[int]:
        for item in self.items:
            self.outstanding.append(item)
            yield item

    async def ack(self, item: int, /) -> None:
        self.outstanding.remove(item)  # ValueError for an item already acked or nacked
        await super().ack(item)

    async def nack(self, item: int, error: Exception, /) -> None:
        self.outstanding.remove(item)
        await super().nack(item, error)


async def test_a_job_that_hits_job_timeout_is_nacked_with_timeout_error() -> None:
    source = StrictSource([1, 2])
    failures: list[Exception] = []

    async def job(item: int) -> None:
        if item == 1:
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(max_workers=2, job_timeout=0.01, on_error=lambda job, exc: failures.append(exc)) as pool,
        ):
            await pool.consume(source, job)
    assert source.acked == [2]
    assert [(item, "timed out" in error) for item, error in source.nacked] == [(1, True)]
    assert [type(exc) for exc in failures] == [TimeoutError]
    assert source.outstanding == []


async def test_a_retried_job_is_acked_or_nacked_once_after_its_last_attempt() -> None:
    source = StrictSource([1, 2, 3])
    attempts: dict[int, int] = {1: 0, 2: 0, 3: 0}
    failures: list[Exception] = []

    async def job(item: int) -> None:
        attempts[item] += 1
        if item == 1 and attempts[item] < 3:
            raise ConnectionError(f"flaky {item}")
        if item == 2:
            raise ConnectionError(f"down {item}.{attempts[item]}")
        if item == 3 and attempts[item] == 1:
            await anyio.sleep_forever()  # times out once, then succeeds

    retry = Retry(attempts=3, backoff=0.001, retry_on=(ConnectionError, TimeoutError))
    with anyio.fail_after(5):
        async with (
            no_leaks(),
            Pool(
                max_workers=3,
                retry=retry,
                job_timeout=0.05,
                on_error=lambda job, exc: failures.append(exc),
            ) as pool,
        ):
            await pool.consume(source, job)
    assert attempts == {1: 3, 2: 3, 3: 2}
    assert sorted(source.acked) == [1, 3]
    assert source.nacked == [(2, "down 2.3")]  # only the last failure counts
    assert [str(exc) for exc in failures] == ["down 2.3"]
    assert source.outstanding == []


request_id: ContextVar[str] = ContextVar("request_id", default="-")


class ContextRecordingSource(RecordingSource):
    """Records the request id that each ack and nack sees."""

    def __init__(self, items: list[int]) -> None:
        super().__init__(items)
        self.seen: list[tuple[str, int, str]] = []

    async def ack(self, item: int, /) -> None:
        self.seen.append(("ack", item, request_id.get()))

    async def nack(self, item: int, error: Exception, /) -> None:
        self.seen.append(("nack", item, request_id.get()))


@pytest.mark.parametrize(
    "options",
    [{}, {"job_timeout": 60}, {"retry": Retry(attempts=2, backoff=0)}],
    ids=["plain", "job_timeout", "retry"],
)
async def test_ack_and_nack_see_the_context_consume_was_called_in(options: dict[str, Any]) -> None:
    # Both run as part of the job, whatever the pool's options: a pool with
    # job_timeout or retry runs them apart from the job's attempts, and they
    # saw the worker task's context instead.
    source = ContextRecordingSource([1, 2])
    names: list[str] = []

    async def job(item: int) -> None:
        if item == 2:
            raise ValueError("bad")

    def on_error(failed: Job[Any], exc: Exception) -> None:
        names.append(repr(failed))

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=1, on_error=on_error, **options) as pool:
            await (await pool.submit(job, 0))  # the worker starts before the variable is set
            request_id.set("req-42")
            await pool.consume(source, job)
    assert source.seen == [("ack", 1, "req-42"), ("nack", 2, "req-42")]
    # And the failed job is named after the function it ran, on every path.
    [name] = names
    assert "called_in.<locals>.job failed" in name
