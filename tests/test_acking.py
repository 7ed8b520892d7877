"""`Pool.consume` from an `AckingSource`: each item is acknowledged after its job succeeded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from helpers import no_leaks
from workpool import AckingSource, Pool

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
