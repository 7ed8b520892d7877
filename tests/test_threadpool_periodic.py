"""ThreadPool.every: periodic jobs in threads that never overlap and always stop.

Ticks are real time here (a thread pool has no virtual clock), so intervals
are short and every test waits for a condition (runs counted, ticks missed)
with a bound, never for a duration.  Nothing asserts how long anything took.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from helpers import Boom, in_stack_of
from workpool import JobCancelled, PeriodicCall, PoolClosed, ThreadPool, check_cancelled

WAIT = 10.0
TICK = 0.005  # seconds between ticks


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


@pytest.fixture(autouse=True)
def threads_back_to_baseline() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    after = set(threading.enumerate())
    assert after == before, f"threads changed: {sorted(t.name for t in after ^ before)}"


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.active = 0
        self.most_active = 0

    def __call__(self) -> None:
        with self.lock:
            self.runs += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        with self.lock:
            self.active -= 1


def test_a_periodic_job_runs_again_and_again_until_the_pool_closes() -> None:
    counter = Counter()
    with ThreadPool(max_workers=2, name="tick") as pool:
        handle = pool.every(TICK, counter)
        assert isinstance(handle, PeriodicCall)
        wait_until(lambda: counter.runs >= 5, "five runs")
        assert not handle.stopped()
        assert any(t.name == "tick-ticker" for t in threading.enumerate())
    assert handle.stopped()
    assert handle.runs == counter.runs >= 5
    assert pool.stats.completed == counter.runs
    assert "stopped" in repr(handle)


def test_runs_never_overlap_and_missed_ticks_are_dropped() -> None:
    counter = Counter()
    release = threading.Event()

    def slow() -> None:
        counter()
        if counter.runs == 1:
            assert release.wait(WAIT)

    with ThreadPool(max_workers=4) as pool:
        handle = pool.every(TICK, slow)
        wait_until(lambda: handle.missed >= 3, "three ticks dropped during the first run")
        assert (handle.runs, pool.stats.busy, pool.stats.queued) == (1, 1, 0)  # none queued up
        release.set()
        wait_until(lambda: handle.runs >= 3, "runs resumed")
    assert counter.most_active == 1
    assert pool.stats.submitted == handle.runs


def test_first_run_now_starts_at_once() -> None:
    ran = threading.Event()
    with ThreadPool() as pool:
        handle = pool.every(3600, ran.set, first_run_now=True)  # the next would be in an hour
        assert ran.wait(WAIT)
        wait_until(lambda: pool.stats.completed == 1, "the run finished")
    assert handle.runs == 1


def test_cancel_stops_the_schedule() -> None:
    counter = Counter()
    with ThreadPool() as pool:
        handle = pool.every(TICK, counter)
        wait_until(lambda: counter.runs >= 2, "two runs")
        handle.cancel()
        handle.cancel()  # again: nothing
        assert handle.stopped()
        runs_at_cancel = handle.runs
    # The block waited for everything started; nothing started after cancel().
    assert handle.runs == counter.runs == runs_at_cancel


def test_cancel_tells_a_running_run_to_stop() -> None:
    started = threading.Event()
    outcome: list[str] = []

    def long_run() -> None:
        started.set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                check_cancelled()
            except JobCancelled:
                outcome.append("cancelled")
                raise
            time.sleep(0.001)

    with ThreadPool() as pool:
        handle = pool.every(TICK, long_run, first_run_now=True)
        assert started.wait(WAIT)
        handle.cancel()
    assert outcome == ["cancelled"]
    assert (pool.stats.cancelled, pool.stats.failed) == (1, 0)  # cancelled, not failed: no error


def test_the_pool_closing_lets_a_running_run_finish() -> None:
    started = threading.Event()
    release = threading.Event()
    finished: list[bool] = []

    def run() -> None:
        started.set()
        assert release.wait(WAIT)
        check_cancelled()  # closing is not cancelling
        finished.append(True)

    with ThreadPool() as pool:
        handle = pool.every(TICK, run, first_run_now=True)
        assert started.wait(WAIT)
        releaser = threading.Thread(
            target=lambda: (wait_until(lambda: "closing" in repr(pool), "closing"), release.set())
        )
        releaser.start()
    releaser.join(WAIT)
    assert finished == [True]
    assert handle.stopped()
    assert handle.runs == 1


def test_a_failing_run_follows_on_error() -> None:
    def broken() -> None:
        raise Boom("tick")

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="tick")), ThreadPool() as pool:
        handle = pool.every(TICK, broken)
        wait_until(handle.stopped, "the failure cancelled the pool, and the schedule with it")
    assert handle.runs == 1


def test_with_a_handler_a_failing_schedule_goes_on() -> None:
    failures: list[BaseException] = []

    def broken() -> None:
        raise Boom("tick")

    with ThreadPool(on_error=lambda future, exc: failures.append(exc)) as pool:
        pool.every(TICK, broken)
        wait_until(lambda: len(failures) >= 3, "three failures")
    assert all(isinstance(exc, Boom) for exc in failures)


def test_the_pool_being_cancelled_stops_the_schedule() -> None:
    counter = Counter()
    with ThreadPool() as pool:
        handle = pool.every(TICK, counter)
        wait_until(lambda: counter.runs >= 1, "a run")
        pool.cancel()
        assert handle.stopped()


def test_runs_see_the_context_of_the_every_call_each_in_its_own_copy() -> None:
    tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="unset")
    seen: list[str] = []

    def run() -> None:
        seen.append(tag.get())
        tag.set("changed by a run")

    with ThreadPool() as pool:
        tag.set("caller")
        pool.every(TICK, run)
        wait_until(lambda: len(seen) >= 3, "three runs")
    assert set(seen) == {"caller"}


def test_every_refuses_bad_arguments_and_a_closed_pool() -> None:
    async def an_async_function() -> None:
        pass  # pragma: no cover

    with ThreadPool() as pool:
        for interval in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="interval must be a positive, finite number"):
                pool.every(interval, print)
        for interval_of_the_wrong_type in ("1", True, None):
            with pytest.raises(TypeError, match="interval must be a number"):
                pool.every(interval_of_the_wrong_type, print)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="is an async function"):
            pool.every(1, an_async_function)
        with pytest.raises(TypeError, match="first_run_now must be True or False"):
            pool.every(1, print, first_run_now=1)  # type: ignore[arg-type]
        pool.shutdown(wait=False)
        with pytest.raises(PoolClosed):
            pool.every(1, print)
    with pytest.raises(PoolClosed):
        pool.every(1, print)
    with pytest.raises(RuntimeError, match="needs an open pool"):
        ThreadPool().every(1, print)


def test_every_from_another_thread_while_the_block_exits_does_not_break_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starting = threading.Event()
    go = threading.Event()
    original_start = threading.Thread.start
    me = threading.current_thread()

    def start(self: threading.Thread) -> None:
        if self.name.endswith("-ticker"):
            starting.set()  # every() has published the ticker and released the lock
            assert go.wait(WAIT)
        original_start(self)

    def release_once_the_exit_waits() -> None:
        waiting = ThreadPool._wait_workers.__code__
        wait_until(lambda: in_stack_of(me, waiting), "the block's exit waits for the threads")
        go.set()

    monkeypatch.setattr(threading.Thread, "start", start)
    outcome: list[object] = []
    pool = ThreadPool(name="race")
    other = threading.Thread(target=lambda: outcome.append(pool.every(60, time.time)))
    releaser = threading.Thread(target=release_once_the_exit_waits)
    try:
        with pool:
            other.start()
            assert starting.wait(WAIT)
            releaser.start()
    finally:
        go.set()
        other.join(WAIT)
        releaser.join(WAIT)
    [handle] = outcome  # every() won the race; the exit stopped it and joined its ticker
    assert isinstance(handle, PeriodicCall)
    assert handle.stopped()


def test_a_ticker_that_cannot_start_fails_every_and_not_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name.endswith("-ticker"):
            raise RuntimeError("can't start new thread")
        original_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with ThreadPool() as pool:
        with pytest.raises(RuntimeError, match="can't start new thread"):
            pool.every(60, time.time)
        assert pool.submit(time.time).result(WAIT)


def test_a_handle_has_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        PeriodicCall()
