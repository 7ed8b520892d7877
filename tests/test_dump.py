"""`dump_tasks`, `format_tasks`, `summarize_tasks` and the task tracker."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import os
import re
import select
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import pytest
import trio.testing
from anyio.streams.memory import MemoryObjectReceiveStream

from virtual_clock import VirtualClockLoop, virtual_time
from workpool import (
    Pool,
    TaskRecord,
    dump_tasks,
    format_tasks,
    summarize_tasks,
    track_tasks,
    untrack_tasks,
)
from workpool._records import format_duration

pytestmark = pytest.mark.anyio

FOUR_THOUSAND_MINUTES = 4320 * 60.0


def line_of(fn: Callable[..., Any], marker: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    (hit,) = [first + i for i, text in enumerate(lines) if f"# <- {marker}" in text]
    return hit


backends = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def run(main: Callable[[], Any], backend: str) -> Any:
    """Run `main` in an event loop of its own, on virtual time.

    For what must run without a task tracker: the leak check that ``--leaks``
    puts around an async test keeps one installed, and a sync test's check
    covers threads only.
    """
    if backend == "trio":
        options: dict[str, Any] = {"clock": trio.testing.MockClock(autojump_threshold=0)}
    else:
        options = {"loop_factory": VirtualClockLoop}
    return anyio.run(main, backend=backend, backend_options=options)


def by_name(records: tuple[TaskRecord, ...], name: str) -> TaskRecord:
    (record,) = [r for r in records if r.name == name]
    return record


async def process_job(receive: MemoryObjectReceiveStream[int]) -> None:
    async for _ in receive:
        pass


async def start_fetchers(pool: Pool, receive: MemoryObjectReceiveStream[int]) -> None:
    await pool.submit(process_job, receive)  # <- submit


@virtual_time()
async def test_a_pool_worker_shows_its_pool_job_and_how_long_it_has_waited() -> None:
    send, receive = anyio.create_memory_object_stream[int](0)
    with send, receive, anyio.fail_after(10 * FOUR_THOUSAND_MINUTES):
        track_tasks()
        try:
            async with Pool(max_workers=2, name="fetch") as pool:
                await start_fetchers(pool, receive)
                await anyio.sleep(FOUR_THOUSAND_MINUTES)
                records = dump_tasks()
                text = format_tasks(records)
                pool.cancel()
        finally:
            untrack_tasks()
    (worker,) = [r for r in records if r.pool == "fetch"]
    assert worker.name == "fetch-worker-1"
    assert worker.job == "process_job"
    assert worker.blocked_on == "MemoryObjectReceiveStream.receive"
    assert worker.blocked_for == pytest.approx(FOUR_THOUSAND_MINUTES)
    assert worker.job_running_for == pytest.approx(FOUR_THOUSAND_MINUTES)
    submit = line_of(start_fetchers, "submit")
    assert worker.created_by is not None
    assert (worker.created_by.function, worker.created_by.lineno) == ("start_fetchers", submit)
    assert worker.job_submitted_by == worker.created_by
    block = text.split("\n\n")[[r.name for r in records].index("fetch-worker-1")]
    lines = block.splitlines()
    assert re.fullmatch(
        r'task \d+ "fetch-worker-1" \[awaiting MemoryObjectReceiveStream.receive, 4320 minutes\]:', lines[0]
    )
    assert lines[1] == (
        f'  pool "fetch", job process_job (submitted by start_fetchers at tests/test_dump.py:{submit}, '
        "running 4320 minutes)"
    )
    assert re.fullmatch(r"  tests/test_dump\.py:\d+ in process_job", lines[2])
    assert lines[-1] == f"created by start_fetchers at tests/test_dump.py:{submit}"


@backends
def test_without_the_tracker_a_worker_still_shows_how_long_its_job_has_run(backend: str) -> None:
    async def main() -> TaskRecord:
        send, receive = anyio.create_memory_object_stream[int](0)
        with send, receive, anyio.fail_after(10 * FOUR_THOUSAND_MINUTES):
            async with Pool(max_workers=1, name="fetch") as pool:
                await start_fetchers(pool, receive)
                await anyio.sleep(120)
                (worker,) = [r for r in dump_tasks() if r.pool == "fetch"]
                pool.cancel()
        return worker

    worker = run(main, backend)
    assert worker.blocked_for is None
    assert worker.job_running_for == pytest.approx(120)
    assert "[awaiting MemoryObjectReceiveStream.receive, job running 2 minutes]:" in str(worker)


@virtual_time()
async def test_an_idle_worker_shows_since_when_it_is_idle() -> None:
    async def quick() -> None:
        pass

    with anyio.fail_after(1000):
        # idle_timeout=None: with the default, the worker would exit after 10 s.
        async with Pool(max_workers=1, idle_timeout=None, name="idle-pool") as pool:
            await (await pool.submit(quick))
            await anyio.sleep(90)
            (worker,) = [r for r in dump_tasks() if r.pool == "idle-pool"]
    assert worker.blocked_on == "idle"
    assert worker.job is None
    assert worker.blocked_for == pytest.approx(90)
    header, pool_line = str(worker).splitlines()[:2]
    assert re.fullmatch(r'task (\d+ )?"idle-pool-worker-1" \[idle, 90 seconds\]:', header)
    assert pool_line == '  pool "idle-pool", idle'


async def background() -> None:
    await anyio.sleep_forever()


def spawn_background(tg: Any) -> None:
    tg.start_soon(background, name="tracked")  # <- spawn


@backends
def test_the_tracker_records_creation_sites_only_while_installed(backend: str) -> None:
    async def main() -> tuple[TaskRecord, ...]:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                track_tasks()
                track_tasks()  # twice is once
                spawn_background(tg)
                untrack_tasks()
                tg.start_soon(background, name="untracked")
                await anyio.wait_all_tasks_blocked()
                records = dump_tasks()
                tg.cancel_scope.cancel()
        return records

    records = run(main, backend)
    tracked = by_name(records, "tracked")
    assert tracked.created_by is not None
    assert tracked.created_by.function == "spawn_background"
    assert tracked.created_by.lineno == line_of(spawn_background, "spawn")
    assert tracked.number is not None
    assert tracked.blocked_for is not None
    untracked = by_name(records, "untracked")
    assert (untracked.created_by, untracked.number, untracked.blocked_for) == (None, None, None)
    assert untracked.blocked_on == "anyio.sleep_forever"


@backends
def test_blocked_for_of_a_task_tracked_earlier_restarts_when_it_blocks_again(backend: str) -> None:
    # After untrack_tasks, a task created while tracking keeps its record;
    # its blocked_for must count from its latest suspension, not from the
    # last one before untrack_tasks (trio reported 100 s here).
    async def main() -> float | None:
        first, second = anyio.Event(), anyio.Event()

        async def waiter() -> None:
            await first.wait()
            await second.wait()

        with anyio.fail_after(3600):
            async with anyio.create_task_group() as tg:
                track_tasks()
                tg.start_soon(waiter, name="the-waiter")
                await anyio.wait_all_tasks_blocked()
                untrack_tasks()
                await anyio.sleep(100)
                first.set()
                await anyio.wait_all_tasks_blocked()  # it ran a step and waits again
                record = by_name(dump_tasks(), "the-waiter")
                second.set()
        return record.blocked_for

    assert run(main, backend) == 0


@backends
def test_a_task_awaiting_a_job_is_shown_waiting_for_it(backend: str) -> None:
    # `await job` used to hide behind an opaque awaitable: the dump said
    # "Future" (asyncio) or "coroutine_wrapper" (trio).
    async def main() -> tuple[TaskRecord, ...]:
        release = anyio.Event()

        async def slow() -> None:
            await release.wait()

        with anyio.fail_after(5):
            async with Pool(max_workers=1) as pool:
                job = await pool.submit(slow)

                async def awaiter() -> None:
                    await job

                async with anyio.create_task_group() as tg:
                    tg.start_soon(awaiter, name="the-awaiter")
                    await anyio.wait_all_tasks_blocked()
                    records = dump_tasks()
                    release.set()
        return records

    assert by_name(run(main, backend), "the-awaiter").blocked_on == "Job._wait_done"


def test_the_asyncio_tracker_does_not_keep_the_loop_alive() -> None:
    # The tracker is found through a weak mapping keyed by the loop; a
    # strong reference from the tracker back to its loop kept every loop
    # that was ever tracked (every asyncio test under --leaks) alive.
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        track_tasks()
        untrack_tasks()

    asyncio.run(main())
    gc.collect()
    assert loops[0]() is None


@backends
def test_the_running_task_has_no_blocked_for(backend: str) -> None:
    # blocked_for is "seconds it has waited so far": the task taking the dump
    # is not waiting (it had the time since its last suspension).
    async def main() -> list[TaskRecord]:
        found: list[TaskRecord] = []

        async def child() -> None:
            await anyio.sleep(5)
            found.extend(r for r in dump_tasks() if r.running)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                track_tasks()
                tg.start_soon(child)
                untrack_tasks()
        return found

    [me] = run(main, backend)
    assert (me.blocked_on, me.blocked_for) == ("", None)


async def test_a_thread_running_a_partial_of_a_builtin_is_blocked_in_the_builtins_module() -> None:
    read_fd, write_fd = os.pipe()
    direct = threading.Thread(target=select.select, args=([read_fd], [], []), name="direct")
    wrapped = threading.Thread(target=functools.partial(select.select, [read_fd], [], []), name="partial")

    def in_select(thread: threading.Thread) -> bool:
        frame = sys._current_frames().get(thread.ident or -1)
        return frame is not None and frame.f_code.co_name == "run"  # Thread.run called the builtin

    try:
        direct.start()
        wrapped.start()
        with anyio.fail_after(10):  # polled: the threads reach select() on their own
            while not (in_select(direct) and in_select(wrapped)):
                await anyio.sleep(0.001)
        records = {r.name: r for r in dump_tasks(threads=[direct, wrapped]) if r.kind == "thread"}
    finally:
        os.write(write_fd, b"x")
        direct.join(10)
        wrapped.join(10)
        os.close(read_fd)
        os.close(write_fd)
    assert records["direct"].blocked_on == "select.select"
    assert records["partial"].blocked_on == "select.select"  # was functools.select


def test_the_asyncio_tracker_keeps_a_task_factory_installed_before_it() -> None:
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(type(coro).__name__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        track_tasks()
        assert loop.get_task_factory() is not factory
        task = asyncio.create_task(asyncio.sleep(0, "done"))
        assert await task == "done"
        untrack_tasks()
        assert loop.get_task_factory() is factory
        loop.set_task_factory(None)

    asyncio.run(main())
    assert made == ["_Tracked"]


async def test_the_running_task_is_shown_running_at_the_line_that_dumps() -> None:
    records = dump_tasks()
    line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    (me,) = [r for r in records if r.running]
    assert me.blocked_on == ""
    own = [f for f in me.stack if not f.library]
    assert (own[0].function, own[0].lineno) == (
        "test_the_running_task_is_shown_running_at_the_line_that_dumps",
        line,
    )
    assert "[running]:" in str(me)


async def test_threads_are_dumped_on_request() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="waiter")
    thread.start()
    try:
        assert not any(r.kind == "thread" for r in dump_tasks())
        records = dump_tasks(threads=True)
    finally:
        stop.set()
        thread.join(5)
    waiter = by_name(records, "waiter")
    assert (waiter.kind, waiter.blocked_on, waiter.number) == ("thread", "Event.wait", thread.ident)
    (main,) = [r for r in records if r.kind == "thread" and r.running]
    assert main.number == threading.get_ident()


@pytest.mark.parametrize("count", [10_000])
async def test_ten_thousand_identical_leaked_tasks_read_as_one_line(count: int) -> None:
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            track_tasks()
            try:
                for _ in range(count):
                    spawn_background(tg)
                await anyio.wait_all_tasks_blocked()
                summary = summarize_tasks()
            finally:
                untrack_tasks()
            tg.cancel_scope.cancel()
    top = summary[0]
    assert top.count == count
    assert top.blocked_on == "anyio.sleep_forever"
    assert top.created_by is not None
    spawn = line_of(spawn_background, "spawn")
    assert str(top) == (
        f"x{count} tasks [awaiting anyio.sleep_forever] created by spawn_background at "
        f'tests/test_dump.py:{spawn} (e.g. "tracked")'
    )
    assert sum(s.count for s in summary) == count + sum(s.count for s in summary[1:])


def test_a_dump_needs_a_running_event_loop() -> None:
    with pytest.raises(RuntimeError, match="no asyncio event loop or trio run"):
        dump_tasks()
    with pytest.raises(RuntimeError):
        track_tasks()


def test_records_are_frozen() -> None:
    record = TaskRecord(
        kind="task",
        name="t",
        number=None,
        running=False,
        blocked_on="x",
        blocked_for=None,
        stack=(),
        created_by=None,
        pool=None,
        job=None,
        job_submitted_by=None,
        job_running_for=None,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.name = "u"  # type: ignore[misc]
    assert format_tasks([record]) == 'task "t" [awaiting x]:'


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0123, "12 ms"),
        (1.4, "1 second"),
        (1.6, "2 seconds"),
        (119, "119 seconds"),
        (120, "2 minutes"),
        (259_200, "4320 minutes"),
    ],
)
def test_durations_read_as_in_a_goroutine_dump(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
