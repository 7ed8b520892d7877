"""`workpool.testing.no_leaks`: what counts as a leak, how long it waits, and what it reports."""

from __future__ import annotations

import asyncio
import functools
import gc
import operator
import sys
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import workpool.testing
from workpool import Pool, run_in_thread
from workpool.testing import LeakCheck, LeakError, no_leaks

pytestmark = pytest.mark.anyio

mockclock = pytest.mark.parametrize("anyio_backend", ["trio-mockclock"], indirect=True)


async def sleep_forever_named() -> None:
    await anyio.sleep_forever()


async def finish_after(seconds: float) -> None:
    await anyio.sleep(seconds)


# -- what counts ---------------------------------------------------------------


async def test_a_clean_region_passes_and_reports_nothing() -> None:
    with anyio.fail_after(5):
        async with no_leaks(), anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)


async def test_tasks_that_existed_before_the_region_are_not_checked() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleep_forever_named)
            await anyio.wait_all_tasks_blocked()
            async with no_leaks(timeout=0):
                pass
            tg.cancel_scope.cancel()


async def test_a_task_blocked_for_good_is_a_leak_and_the_message_is_its_dump() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)  # ends within the region: not reported
            with pytest.raises(LeakError) as caught:
                async with no_leaks(timeout=0.01):
                    tg.start_soon(sleep_forever_named, name="stuck")
            tg.cancel_scope.cancel()
    (record,) = caught.value.leaks
    assert record.name == "stuck"
    assert record.blocked_on == "anyio.sleep_forever"
    message = str(caught.value)
    assert message.startswith("no_leaks(): 1 task leaked (still alive 0.01 s after the region ended):")
    assert '"stuck" [awaiting anyio.sleep_forever, ' in message
    assert "in sleep_forever_named" in message
    assert isinstance(caught.value, AssertionError)


@mockclock
async def test_a_task_that_ends_before_the_deadline_is_not_a_leak() -> None:
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            async with no_leaks(timeout=10):
                tg.start_soon(finish_after, 9)
            started = anyio.current_time()
    # The check waited (virtual time) for the task to end, and no longer.
    assert 9 <= anyio.current_time() - started + 9 <= 9 + 2


@mockclock
async def test_the_check_waits_exactly_until_the_deadline_on_the_event_loop_clock() -> None:
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            start = anyio.current_time()
            with pytest.raises(LeakError):
                async with no_leaks(timeout=10):
                    tg.start_soon(finish_after, 11)
            waited = anyio.current_time() - start
            tg.cancel_scope.cancel()
    assert waited == pytest.approx(10)


async def test_a_task_cancelled_on_the_last_line_gets_a_turn_to_finish() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as outer, no_leaks(timeout=0):
            scope = anyio.CancelScope()

            async def cancellable() -> None:
                with scope:
                    await anyio.sleep_forever()

            outer.start_soon(cancellable)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()


async def test_leaks_are_reported_even_when_the_body_raised() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(LeakError) as caught:  # noqa: PT012
                async with no_leaks(timeout=0):
                    tg.start_soon(sleep_forever_named)
                    raise KeyError("body")
            tg.cancel_scope.cancel()
    assert isinstance(caught.value.__context__, KeyError)


async def test_the_body_exception_propagates_when_nothing_leaked() -> None:
    with anyio.fail_after(5), pytest.raises(KeyError):
        async with no_leaks():
            raise KeyError("body")


async def test_a_cancelled_region_is_still_checked() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(LeakError):  # noqa: PT012
                with anyio.CancelScope() as scope:
                    async with no_leaks(timeout=0.01):
                        tg.start_soon(sleep_forever_named)
                        scope.cancel()
                        await anyio.sleep_forever()
            tg.cancel_scope.cancel()


async def test_a_pool_left_by_its_block_leaves_nothing(anyio_backend_name: str) -> None:
    async def job(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    with anyio.fail_after(5):
        async with no_leaks(), Pool(max_workers=4) as pool:
            results = [r async for r in pool.map(job, range(20))]
    assert results == list(range(20))


# -- ignore options ------------------------------------------------------------


async def blocked_here() -> None:
    await anyio.sleep_forever()


def spawn_ignored(tg: Any) -> None:
    tg.start_soon(sleep_forever_named, name="ignored-by-creator")


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_names": ["background-*"]},
        {"ignore_blocked_in": [blocked_here]},
        {"ignore_blocked_in": ["blocked_here"]},
        {"ignore_blocked_in": ["anyio.sleep_forever"]},
    ],
    ids=["name", "blocked-in-function", "blocked-in-name", "blocked-on-label"],
)
async def test_ignore_options_skip_the_matching_task_only(options: dict[str, Any]) -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with no_leaks(timeout=0, **options):
                tg.start_soon(blocked_here, name="background-refresh")
            with pytest.raises(LeakError) as caught:  # noqa: PT012
                async with no_leaks(timeout=0, **options):
                    tg.start_soon(blocked_here, name="background-refresh")
                    tg.start_soon(finish_after, 3600, name="other")
            tg.cancel_scope.cancel()
    assert [r.name for r in caught.value.leaks] == ["other"]


async def test_ignore_created_by_matches_the_spawning_function() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with no_leaks(timeout=0, ignore_created_by=[spawn_ignored]):
                spawn_ignored(tg)
            with pytest.raises(LeakError):
                async with no_leaks(timeout=0, ignore_created_by=["some_other_function"]):
                    spawn_ignored(tg)
            tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"timeout": -1}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "1"}, TypeError),
        ({"ignore_names": "poller-*"}, TypeError),
        ({"ignore_names": [3]}, TypeError),
        ({"ignore_blocked_in": blocked_here}, TypeError),
        ({"ignore_created_by": [3]}, TypeError),
    ],
)
def test_bad_options_are_rejected_at_once(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        no_leaks(**options)


def test_a_leak_check_has_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no_leaks"):
        LeakCheck()


async def test_a_check_cannot_be_entered_twice_at_once() -> None:
    check = no_leaks()
    with anyio.fail_after(5):
        async with check:
            with pytest.raises(RuntimeError, match="already active"):
                async with check:
                    pass
        async with check:  # and again once it has exited
            pass


# -- lost errors ---------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_a_pending_task_destroyed_by_the_garbage_collector_fails_the_region() -> None:
    loop = asyncio.get_running_loop()

    async def wait_for_nothing() -> None:
        await loop.create_future()  # nothing else refers to this future

    passed_on: list[dict[str, Any]] = []
    runners_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: passed_on.append(context))
    try:
        with anyio.fail_after(5), pytest.raises(LeakError) as caught:  # noqa: PT012
            async with no_leaks(timeout=0.01):
                asyncio.create_task(wait_for_nothing())  # noqa: RUF006 - the bug under test
                await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(runners_handler)
    assert [c["message"] for c in passed_on] == ["Task was destroyed but it is pending!"]
    assert caught.value.leaks == ()
    (message,) = caught.value.logged
    assert message.startswith("Task was destroyed but it is pending!")


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_a_task_exception_never_retrieved_fails_the_region() -> None:
    async def fail() -> None:
        raise KeyError("lost")

    loop = asyncio.get_running_loop()
    passed_on: list[dict[str, Any]] = []
    runners_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: passed_on.append(context))
    try:
        with anyio.fail_after(5), pytest.raises(LeakError) as caught:  # noqa: PT012
            async with no_leaks():
                task = asyncio.create_task(fail())
                await asyncio.sleep(0)
                del task
                gc.collect()
    finally:
        loop.set_exception_handler(runners_handler)
    (message,) = caught.value.logged
    assert message.startswith("Task exception was never retrieved: KeyError: 'lost'")
    # The handler that was there before the region still got it.
    assert [type(c["exception"]) for c in passed_on] == [KeyError]


async def test_an_unhandled_exception_in_a_thread_fails_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(str(args.exc_value)))

    def fail() -> None:
        raise KeyError("in thread")

    with anyio.fail_after(5), pytest.raises(LeakError) as caught:  # noqa: PT012
        async with no_leaks():
            thread = threading.Thread(target=fail, name="failing")
            thread.start()
            await anyio.to_thread.run_sync(thread.join)
    (message,) = caught.value.logged
    assert message == "unhandled exception in thread 'failing': KeyError: 'in thread'"
    assert seen == ["'in thread'"]  # passed on to the hook that was there before


def test_overlapping_leak_checks_put_the_thread_excepthook_back(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = threading.excepthook
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(str(args.exc_value)))
    before = threading.excepthook
    first, second = no_leaks(timeout=0), no_leaks(timeout=0)
    try:
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # not nested: the first one ends first
        thread = threading.Thread(target=operator.truediv, args=(1, 0), name="failing")
        thread.start()
        thread.join(5)
        with pytest.raises(LeakError, match="unhandled exception in thread 'failing'"):
            second.__exit__(None, None, None)  # the check still running got it
        assert threading.excepthook is before
        assert seen == ["division by zero"]  # handed on once, to the hook from before
    finally:
        threading.excepthook = original


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
async def test_overlapping_leak_checks_put_the_asyncio_handler_back() -> None:
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    first, second = no_leaks(timeout=0), no_leaks(timeout=0)
    await first.__aenter__()
    await second.__aenter__()
    await first.__aexit__(None, None, None)
    await second.__aexit__(None, None, None)
    assert loop.get_exception_handler() is before


# -- threads -------------------------------------------------------------------


def test_a_sync_check_catches_a_thread_left_running() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="left-running")
    try:
        with pytest.raises(LeakError) as caught, no_leaks(timeout=0):
            thread.start()
    finally:
        stop.set()
        thread.join(5)
    (record,) = caught.value.leaks
    assert record.kind == "thread"
    assert record.name == "left-running"
    assert record.blocked_on == "Event.wait"
    assert 'thread "left-running" [blocked in Event.wait]:' in str(caught.value)


def test_a_sync_check_waits_for_a_thread_that_ends() -> None:
    stop = threading.Event()
    with no_leaks(timeout=30):
        thread = threading.Thread(target=stop.wait)
        thread.start()
        stop.set()


async def test_an_async_check_catches_threads_too() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="from-async")
    try:
        with anyio.fail_after(5), pytest.raises(LeakError) as caught:
            async with no_leaks(timeout=0):
                thread.start()
    finally:
        stop.set()
        thread.join(5)
    assert [r.name for r in caught.value.leaks] == ["from-async"]


async def test_idle_worker_threads_of_the_event_loop_are_not_leaks() -> None:
    with anyio.fail_after(5):
        async with no_leaks():
            # The first call starts a worker thread that anyio (or trio) keeps for reuse.
            assert await anyio.to_thread.run_sync(lambda: 42) == 42


async def test_a_worker_thread_still_running_the_programs_code_is_a_leak(anyio_backend_name: str) -> None:
    started = threading.Event()
    release = threading.Event()

    def wait_for_release() -> None:
        started.set()
        release.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(LeakError) as caught:  # noqa: PT012
                async with no_leaks(timeout=0):
                    tg.start_soon(anyio.to_thread.run_sync, wait_for_release)
                    # The task is blocked before its thread has reached the
                    # function (trio hands it over to a cached thread): its
                    # stack would show only library code.
                    while not started.is_set():
                        await anyio.sleep(0.001)
            release.set()
    # On trio the thread may be one that the process-wide thread cache kept
    # from an earlier test: busy now, it is checked like a new one.
    assert sorted(r.kind for r in caught.value.leaks) == ["task", "thread"]
    thread = next(r for r in caught.value.leaks if r.kind == "thread")
    assert [f.function.rpartition(".")[2] for f in thread.stack if not f.library] == ["wait_for_release"]


def _some_thread_waits_on(event: threading.Event) -> bool:
    wait = threading.Event.wait.__code__
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code is wait and frame.f_locals.get("self") is event:
                return True
            frame = frame.f_back
    return False


async def test_an_abandoned_worker_thread_blocked_directly_in_a_library_call_is_a_leak() -> None:
    release = threading.Event()
    abandoning = functools.partial(run_in_thread, release.wait, abandon_on_cancel=True)
    try:
        with anyio.fail_after(5), pytest.raises(LeakError) as caught:  # noqa: PT012
            async with no_leaks(timeout=0.05), anyio.create_task_group() as tg:
                tg.start_soon(abandoning)
                while not _some_thread_waits_on(release):
                    await anyio.sleep(0.001)
                tg.cancel_scope.cancel()
    finally:
        release.set()
    # Every frame of it is library code, and it still runs a call of the region's.
    [thread] = caught.value.leaks
    assert thread.kind == "thread"
    assert "Event.wait" in [f.function for f in thread.stack]


async def test_a_worker_thread_cached_before_the_region_and_set_to_work_in_it_is_checked() -> None:
    started = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(5)

    # A call before the region leaves an idle worker thread in the cache; the
    # region's call is then likely to run in that very thread.
    await anyio.to_thread.run_sync(lambda: None)
    try:
        with anyio.fail_after(5), pytest.raises(LeakError) as caught:  # noqa: PT012
            async with no_leaks(timeout=0.05), anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(run_in_thread, blocker, abandon_on_cancel=True))
                while not started.is_set():  # not to_thread: it would take the cached thread
                    await anyio.sleep(0.001)
                tg.cancel_scope.cancel()
    finally:
        release.set()
    [thread] = caught.value.leaks
    assert [f.function.rpartition(".")[2] for f in thread.stack if not f.library] == ["blocker"]


async def test_a_worker_thread_busy_since_before_the_region_is_not_checked() -> None:
    started = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(5)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, blocker)
            while not started.is_set():
                await anyio.sleep(0.001)
            async with no_leaks(timeout=0):
                assert await anyio.to_thread.run_sync(lambda: 42) == 42  # another cached thread
            release.set()


# -- decorator -----------------------------------------------------------------


async def test_as_a_decorator_each_call_is_a_fresh_check() -> None:
    calls: list[int] = []

    @no_leaks(timeout=0)
    async def clean(n: int) -> int:
        calls.append(n)
        return n * 2

    with anyio.fail_after(5):
        assert await clean(1) == 2
        assert await clean(2) == 4
    assert calls == [1, 2]


async def test_a_decorated_coroutine_function_that_leaks_fails() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            @no_leaks(timeout=0)
            async def leaky() -> None:
                tg.start_soon(sleep_forever_named)

            with pytest.raises(LeakError):
                await leaky()
            tg.cancel_scope.cancel()


def test_a_decorated_sync_function_checks_threads() -> None:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    @no_leaks(timeout=0)
    def leaky() -> None:
        thread = threading.Thread(target=stop.wait)
        threads.append(thread)
        thread.start()

    try:
        with pytest.raises(LeakError):
            leaky()
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


def test_a_sync_check_around_a_whole_event_loop() -> None:
    async def main() -> None:
        async with Pool() as pool:
            await pool.submit(anyio.sleep, 0)

    start = time.monotonic()
    with no_leaks():
        anyio.run(main)
    assert time.monotonic() - start < 30


def test_the_testing_module_exports_exactly_its_api() -> None:
    assert workpool.testing.__all__ == ("FunctionSpec", "LeakCheck", "LeakError", "no_leaks")
    for name in workpool.testing.__all__:
        assert getattr(workpool.testing, name).__doc__
