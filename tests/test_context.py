"""contextvars: a job sees its submitter's context, and its changes stay its own."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator

import anyio
import pytest

from helpers import no_leaks
from workpool import Pool

pytestmark = pytest.mark.anyio

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def read_request_id() -> str:
    before = request_id.get()
    await anyio.lowlevel.checkpoint()  # and across a suspension
    assert request_id.get() == before
    return before


async def set_request_id(value: str) -> str:
    request_id.set(value)
    await anyio.lowlevel.checkpoint()
    return request_id.get()


async def test_job_sees_the_submitters_context() -> None:
    async with no_leaks(), Pool(max_workers=2) as pool:
        token = request_id.set("req-1")
        try:
            job = await pool.submit(read_request_id)
            nowait_job = pool.submit_nowait(read_request_id)
        finally:
            request_id.reset(token)
        # Captured at submit time, not when the job runs.
        assert await job == "req-1"
        assert await nowait_job == "req-1"


async def test_changes_made_by_a_job_do_not_leak_back_or_into_other_jobs() -> None:
    async with no_leaks(), Pool(max_workers=1) as pool:  # one worker runs them all
        request_id.set("submitter")
        assert await (await pool.submit(set_request_id, "job-1")) == "job-1"
        assert request_id.get() == "submitter"
        assert await (await pool.submit(read_request_id)) == "submitter"
        # Jobs that never suspend go through a faster path: same rules.

        async def set_no_await(value: str) -> str:
            request_id.set(value)
            return request_id.get()

        assert await (await pool.submit(set_no_await, "job-2")) == "job-2"
        assert await (await pool.submit(read_request_id)) == "submitter"
        assert request_id.get() == "submitter"


async def test_each_submitter_task_gets_its_own_context() -> None:
    results: dict[str, str] = {}
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:

            async def handler(name: str) -> None:
                request_id.set(name)
                await anyio.lowlevel.checkpoint()
                results[name] = await (await pool.submit(read_request_id))

            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(handler, f"req-{i}")
    assert results == {f"req-{i}": f"req-{i}" for i in range(6)}


async def test_service_handlers_outside_the_pool_pass_their_context() -> None:
    async def lifespan(*, task_status: anyio.abc.TaskStatus[Pool]) -> None:
        async with Pool(max_workers=2) as pool:
            task_status.started(pool)
            await anyio.sleep_forever()

    results: dict[str, str] = {}
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as app:
            request_id.set("lifespan")  # the pool's own task sees this one
            pool = await app.start(lifespan)

            async def handler(name: str) -> None:
                request_id.set(name)
                results[name] = await pool.submit_nowait(read_request_id)

            async with anyio.create_task_group() as handlers:
                for i in range(4):
                    handlers.start_soon(handler, f"req-{i}")
            pool.cancel()
    assert results == {f"req-{i}": f"req-{i}" for i in range(4)}


async def test_map_and_consume_jobs_see_the_callers_context() -> None:
    async def items() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def tagged(i: int) -> str:
        return f"{request_id.get()}:{i}"

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            request_id.set("mapper")
            mapped = [v async for v in pool.map(tagged, range(3))]
            seen: list[str] = []

            async def record(i: int) -> None:
                seen.append(await tagged(i))

            request_id.set("consumer")
            await pool.consume(items(), record)
    assert mapped == ["mapper:0", "mapper:1", "mapper:2"]
    assert sorted(seen) == ["consumer:0", "consumer:1", "consumer:2"]


async def test_tasks_started_by_a_job_inherit_its_context() -> None:
    async def fan_out() -> list[str]:
        request_id.set("parent job")
        seen: list[str] = []

        async def child() -> None:
            seen.append(request_id.get())

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            tg.start_soon(child)
        return seen

    async with no_leaks(), Pool() as pool:
        request_id.set("outer")
        assert await (await pool.submit(fan_out)) == ["parent job", "parent job"]
        assert request_id.get() == "outer"


async def read_request_id_of(_: object) -> str:
    return request_id.get()


@pytest.mark.parametrize("n", [3, 200])
async def test_map_jobs_run_in_the_context_map_was_called_in(n: int) -> None:
    # The map reads its items from the first __anext__ on: the first few in
    # the caller's task, the rest (beyond 64 here) in a feeder task.  Its
    # jobs must still see the context of the map() call, not that of the
    # iteration.
    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=2) as pool:
            token = request_id.set("req-1")
            try:
                results = pool.map(read_request_id_of, range(n))
            finally:
                request_id.reset(token)
            request_id.set("req-2")
            seen = [value async for value in results]
    assert seen == ["req-1"] * n
