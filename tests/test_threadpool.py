"""ThreadPool: the structured thread pool for synchronous code.

Threads need real time, so ordering comes from threading.Event and Barrier,
and every wait is bounded (WAIT seconds, far beyond what any step needs) and
asserted.  A test never sleeps hoping that another thread got somewhere:
where it must know that a thread is blocked, it polls the condition with
`wait_until`, which fails the test if the condition never comes.  An autouse
fixture checks after every test that the threads are back to what they were.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import itertools
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from helpers import Boom, Unswallowable, in_stack_of
from workpool import JobCancelled, PeriodicCall, PoolClosed, PoolFull, PoolStats, ThreadPool, check_cancelled

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

WAIT = 10.0  # seconds: the bound of every wait; reaching it is a failure


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until it holds; fail the test if it does not within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def _other_threads() -> set[threading.Thread]:
    # Threads an event loop keeps cached for its own to_thread calls (the
    # async tests below run one) are the loop's, not a pool's.
    return {
        t for t in threading.enumerate() if not t.name.startswith(("Trio thread ", "AnyIO worker thread"))
    }


@pytest.fixture(autouse=True)
def threads_back_to_baseline() -> Iterator[None]:
    """After every test, exactly the threads that were there before it (issue 6)."""
    before = _other_threads()
    yield
    after = _other_threads()
    assert after == before, f"threads changed: {sorted(t.name for t in after ^ before)}"


def assert_balanced(stats: PoolStats) -> None:
    assert stats.workers == 0
    assert stats.busy == 0
    assert stats.queued == 0
    assert stats.submitted == stats.completed + stats.failed + stats.cancelled, stats


class Gate:
    """Jobs that block until released, and record what happened to them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.active = 0
        self.most_active = 0

    def block(self, key: Any = None) -> Any:
        """Wait for `release`, then return `key`."""
        with self.lock:
            self.started.append(key)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            assert self.release.wait(WAIT), "never released"
        finally:
            with self.lock:
                self.active -= 1
        self.finished.append(key)
        return key

    def until_cancelled(self, key: Any = None) -> None:
        """Poll check_cancelled() until it raises; fail if it never does."""
        with self.lock:
            self.started.append(key)
        deadline = time.monotonic() + WAIT
        try:
            while time.monotonic() < deadline:
                check_cancelled()
                self.release.wait(0.001)
        except JobCancelled:
            self.cancelled.append(key)
            raise
        raise AssertionError("check_cancelled() never raised")

    def wait_started(self, n: int) -> None:
        wait_until(lambda: len(self.started) >= n, f"{n} jobs started")


def double(x: int) -> int:
    return 2 * x


def fail(message: str = "boom") -> None:
    raise Boom(message)


# -- basics --------------------------------------------------------------------


def test_it_is_an_executor_whose_submit_returns_a_future() -> None:
    with ThreadPool(max_workers=2) as pool:
        assert isinstance(pool, concurrent.futures.Executor)
        future = pool.submit(double, 21)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT) == 42
    assert_balanced(pool.stats)
    assert pool.stats.completed == 1


def test_submit_passes_keyword_arguments_like_executor_submit() -> None:
    def greet(name: str, *, greeting: str) -> str:
        return f"{greeting}, {name}"

    with ThreadPool() as pool:
        assert pool.submit(greet, "Ada", greeting="Hello").result(WAIT) == "Hello, Ada"


def test_jobs_run_in_worker_threads_named_after_the_pool() -> None:
    with ThreadPool(max_workers=1, name="crunch") as pool:
        name = pool.submit(lambda: threading.current_thread().name).result(WAIT)
    assert name == "crunch-thread-1"


def test_futures_work_with_concurrent_futures_wait_and_as_completed() -> None:
    with ThreadPool(max_workers=4) as pool:
        futures = [pool.submit(double, n) for n in range(20)]
        _, not_done = concurrent.futures.wait(futures, timeout=WAIT)
        assert not not_done
        assert sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=WAIT)) == [
            2 * n for n in range(20)
        ]


def test_leaving_the_block_waits_for_every_job() -> None:
    gate = Gate()
    order: list[str] = []

    def release_once_closing(pool: ThreadPool) -> None:
        wait_until(lambda: "closing" in repr(pool), "the block is being left")
        order.append("exit started")
        gate.release.set()

    with ThreadPool(max_workers=2) as pool:
        futures = [pool.submit(gate.block, n) for n in range(5)]
        helper = threading.Thread(target=release_once_closing, args=(pool,))
        helper.start()
    order.append("exit returned")
    helper.join(WAIT)
    assert order == ["exit started", "exit returned"]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(5))
    assert_balanced(pool.stats)


def test_threads_start_on_demand_and_are_all_joined_at_exit() -> None:
    with ThreadPool(max_workers=16) as pool:
        assert pool.stats.workers == 0
        barrier = threading.Barrier(16, timeout=WAIT)
        futures = [pool.submit(barrier.wait) for _ in range(16)]  # needs 16 threads at once
        assert sorted(f.result(WAIT) for f in futures) == list(range(16))
        assert pool.stats.workers == 16
        mine = [t for t in threading.enumerate() if t.name.startswith("workpool-thread-")]
        assert len(mine) == 16
    assert all(not t.is_alive() for t in mine)
    assert pool.stats.workers == 0


def test_stats_count_every_outcome() -> None:
    gate = Gate()
    with pytest.RaisesGroup(Boom), ThreadPool(max_workers=1, max_pending=None, on_error="collect") as pool:
        running = pool.submit(gate.block, "running")
        gate.wait_started(1)
        queued = pool.submit(gate.block, "queued")
        assert queued.cancel()
        pool.submit(fail)
        stats = pool.stats
        # The cancelled job is counted at once and no longer queued.
        assert (stats.workers, stats.busy, stats.queued, stats.submitted) == (1, 1, 1, 3)
        assert stats.cancelled == 1
        gate.release.set()
        assert running.result(WAIT) == "running"
    stats = pool.stats
    assert (stats.completed, stats.failed, stats.cancelled) == (1, 1, 1)
    assert_balanced(stats)


def test_repr_names_the_pool_and_its_state() -> None:
    pool = ThreadPool(max_workers=3, name="io")
    assert repr(pool) == "<workpool.ThreadPool 'io' new workers=0/3 busy=0 queued=0>"
    with pool:
        assert "'io' open" in repr(pool)
    assert "'io' exited" in repr(pool)
    assert (pool.max_workers, pool.max_pending, pool.name) == (3, 1000, "io")


# -- backpressure ----------------------------------------------------------------


def test_submit_blocks_while_full_and_submit_nowait_raises_pool_full() -> None:
    gate = Gate()
    accepted = threading.Event()
    with ThreadPool(max_workers=2, max_pending=1) as pool:
        for n in range(3):  # two running, one queued: full
            pool.submit(gate.block, n)
        gate.wait_started(2)
        with pytest.raises(PoolFull, match=r"is full \(2 running, 1 queued\)"):
            pool.submit_nowait(gate.block, "refused")

        def producer() -> None:
            pool.submit(gate.block, 3)
            accepted.set()

        thread = threading.Thread(target=producer)
        thread.start()
        wait_until(lambda: pool._room_wanted == 1, "the producer waits for room")
        assert not accepted.is_set()
        gate.release.set()  # jobs finish, room appears
        assert accepted.wait(WAIT)
        thread.join(WAIT)
    assert gate.finished.count(3) == 1
    assert pool.stats.submitted == 4


def test_max_pending_zero_accepts_only_what_the_threads_can_start() -> None:
    gate = Gate()
    with ThreadPool(max_workers=2, max_pending=0) as pool:
        pool.submit(gate.block, 1)
        pool.submit(gate.block, 2)
        with pytest.raises(PoolFull):
            pool.submit_nowait(gate.block, 3)
        gate.release.set()


def test_max_pending_none_never_blocks() -> None:
    gate = Gate()
    with ThreadPool(max_workers=1, max_pending=None) as pool:
        futures = [pool.submit_nowait(gate.block, n) for n in range(500)]
        assert pool.stats.queued + pool.stats.busy == 500
        gate.release.set()
    assert [f.result() for f in futures] == list(range(500))


def test_a_producer_blocked_on_a_full_pool_gets_pool_closed_when_it_is_cancelled() -> None:
    gate = Gate()
    outcome: list[BaseException] = []
    with ThreadPool(max_workers=1, max_pending=0) as pool:
        pool.submit(gate.until_cancelled)
        gate.wait_started(1)

        def producer() -> None:
            try:
                pool.submit(double, 1)
            except PoolClosed as exc:
                outcome.append(exc)

        thread = threading.Thread(target=producer)
        thread.start()
        wait_until(lambda: pool._room_wanted == 1, "the producer waits for room")
        pool.cancel()
        thread.join(WAIT)
    assert len(outcome) == 1
    assert "was cancelled" in str(outcome[0])


def test_nested_submits_from_jobs_into_a_full_pool_do_not_deadlock() -> None:
    # Two threads, no queue: the pool is full as soon as both parents run,
    # and the main thread is blocked submitting a third job.  Each parent
    # still submits its children (past the bound) and returns; the children
    # run, and then the blocked producer gets its turn.
    children_started = threading.Barrier(3, timeout=WAIT)  # both parents and the main thread
    results: list[int] = []

    def child(n: int) -> None:
        results.append(n)

    def parent(base: int) -> list[concurrent.futures.Future[None]]:
        children_started.wait()  # both parents are running: the pool is full
        return [pool.submit(child, base + n) for n in range(5)]

    with ThreadPool(max_workers=2, max_pending=0) as pool:
        parents = [pool.submit(parent, 0), pool.submit(parent, 10)]
        children_started.wait()
        last = pool.submit(child, 99)  # blocks until a parent or child is done
        children = [c for p in parents for c in p.result(WAIT)]
        assert all(c.result(WAIT) is None for c in children)
        last.result(WAIT)
    assert sorted(results) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 99]
    assert_balanced(pool.stats)


def test_a_tree_of_jobs_fanning_out_through_a_tiny_pool_completes() -> None:
    visited: list[int] = []
    lock = threading.Lock()

    def node(depth: int) -> None:
        with lock:
            visited.append(depth)
        if depth < 5:
            pool.submit(node, depth + 1)
            pool.submit(node, depth + 1)

    with ThreadPool(max_workers=2, max_pending=0) as pool:
        pool.submit(node, 0)
    assert len(visited) == 2**6 - 1
    assert pool.stats.completed == 2**6 - 1


def test_jobs_may_still_fan_out_after_the_block_is_left() -> None:
    grandchildren: list[int] = []
    gate = Gate()

    def child(n: int) -> None:
        pool.submit(grandchildren.append, n)

    def parent() -> None:
        assert gate.release.wait(WAIT)
        for n in range(3):
            pool.submit(child, n)

    with ThreadPool(max_workers=2) as pool:
        pool.submit(parent)
        helper = threading.Thread(
            target=lambda: (wait_until(lambda: "closing" in repr(pool), "closing"), gate.release.set())
        )
        helper.start()
    helper.join(WAIT)
    assert sorted(grandchildren) == [0, 1, 2]
    with pytest.raises(PoolClosed, match="is closed"):
        pool.submit(double, 1)


# -- leaving the block with an exception, cancel() --------------------------------


def test_an_exception_in_the_block_cancels_queued_jobs_and_signals_running_ones() -> None:
    gate = Gate()
    error = KeyError("the body failed")
    with pytest.raises(KeyError) as caught, ThreadPool(max_workers=2, max_pending=None) as pool:  # noqa: PT012
        running = [pool.submit(gate.until_cancelled, n) for n in range(2)]
        queued = [pool.submit(gate.block, n) for n in range(2, 10)]
        gate.wait_started(2)
        raise error
    assert caught.value is error  # the body's own exception, untouched
    assert sorted(gate.cancelled) == [0, 1]
    assert all(f.cancelled() for f in queued)
    for future in running:
        assert isinstance(future.exception(0), JobCancelled)
        assert not future.cancelled()  # it ran: its Future holds the JobCancelled it raised
    stats = pool.stats
    assert (stats.cancelled, stats.failed, stats.completed) == (10, 0, 0)
    assert_balanced(stats)


def test_a_job_that_ignores_cancellation_is_waited_for() -> None:
    gate = Gate()

    def release_when_closing() -> None:
        wait_until(lambda: "closing" in repr(pool), "the block is being left")
        gate.release.set()

    with pytest.raises(KeyError), ThreadPool(max_workers=1) as pool:  # noqa: PT012
        stubborn = pool.submit(gate.block, "stubborn")  # never calls check_cancelled
        gate.wait_started(1)
        helper = threading.Thread(target=release_when_closing)
        helper.start()
        raise KeyError("leave")
    helper.join(WAIT)
    assert stubborn.result(0) == "stubborn"  # it finished before the block was left
    assert pool.stats.completed == 1


def test_keyboard_interrupt_in_the_block_cancels_and_propagates() -> None:
    gate = Gate()
    with pytest.raises(Unswallowable), ThreadPool(max_workers=1) as pool:  # noqa: PT012
        pool.submit(gate.until_cancelled)
        gate.wait_started(1)
        raise Unswallowable
    assert pool.stats.cancelled == 1


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_while_the_block_waits_for_its_jobs_cancels_them_and_leaves_no_thread() -> None:
    gate = Gate()
    main = threading.main_thread()
    assert threading.current_thread() is main

    def press_ctrl_c() -> None:
        waiting = ThreadPool._wait_workers.__code__
        wait_until(lambda: in_stack_of(main, waiting), "the block waits for its job")
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt), ThreadPool(max_workers=1) as pool:  # noqa: PT012
            running = pool.submit(gate.until_cancelled)
            gate.wait_started(1)
            presser.start()
    finally:
        presser.join(WAIT)
    # Left with an exception (Ctrl-C), the block told the job to stop, and
    # waited for its thread (the autouse fixture checks that none is left).
    assert gate.cancelled == [None]
    assert isinstance(running.exception(0), JobCancelled)
    assert_balanced(pool.stats)


def test_cancel_stops_everything_and_the_block_exits_quietly() -> None:
    gate = Gate()
    with ThreadPool(max_workers=1, max_pending=None) as pool:
        running = pool.submit(gate.until_cancelled)
        queued = pool.submit(gate.block)
        gate.wait_started(1)
        pool.cancel()
        pool.cancel()  # again: nothing
        assert queued.cancelled()
        with pytest.raises(PoolClosed, match="was cancelled"):
            pool.submit(double, 1)
        # The sync counterpart of a cancelled Pool body: a PoolClosed from the
        # cancelled pool that ends the block is not an error.
        pool.submit(double, 2)
    assert isinstance(running.exception(0), JobCancelled)
    assert pool.stats.cancelled == 2
    pool.cancel()  # after exit: nothing


def test_job_cancelled_raised_without_a_cancellation_is_a_failure() -> None:
    def awaits_a_cancelled_future() -> None:
        raise JobCancelled("some other job was cancelled")

    with pytest.RaisesGroup(JobCancelled), ThreadPool() as pool:
        pool.submit(awaits_a_cancelled_future)
    assert pool.stats.failed == 1


# -- error policies ----------------------------------------------------------------


def test_on_error_cancel_raises_the_first_failure_and_cancels_the_rest() -> None:
    gate = Gate()
    first = pytest.RaisesExc(Boom, match="first")
    with pytest.RaisesGroup(first) as caught, ThreadPool(max_workers=2, max_pending=None) as pool:
        sibling = pool.submit(gate.until_cancelled, "sibling")
        gate.wait_started(1)
        go = threading.Event()
        failing = pool.submit(lambda: (go.wait(WAIT), fail("first")))
        others = [pool.submit(gate.until_cancelled, n) for n in range(5)]
        go.set()
        wait_until(failing.done, "the failure")
        with pytest.raises(PoolClosed):
            pool.submit(double, 1)
    assert "1 error(s) in workpool.ThreadPool 'workpool'" in str(caught.value)
    assert failing.exception(0) is caught.value.exceptions[0]
    for future in [sibling, *others]:  # queued ones cancelled, started ones told to stop
        assert future.cancelled() or isinstance(future.exception(0), JobCancelled)
    assert (pool.stats.failed, pool.stats.cancelled) == (1, 6)


def test_a_pool_closed_from_the_failure_is_not_reported_beside_it() -> None:
    with pytest.RaisesGroup(Boom), ThreadPool(max_workers=1) as pool:
        failing = pool.submit(fail)
        wait_until(lambda: failing.done() and "closing" in repr(pool), "the failure cancelled the pool")
        pool.submit(double, 1)  # raises PoolClosed, which ends the block


def test_on_error_collect_lets_every_job_run_and_raises_all_failures() -> None:
    with pytest.RaisesGroup(Boom, Boom, Boom), ThreadPool(max_workers=2, on_error="collect") as pool:
        futures = [pool.submit(fail if n % 3 == 0 else double, n) for n in range(9)]
    assert [f.result() for f in futures if f.exception() is None] == [2, 4, 8, 10, 14, 16]
    assert (pool.stats.completed, pool.stats.failed) == (6, 3)


def test_a_failure_that_another_job_re_raises_is_in_the_group_once() -> None:
    # As with Pool: two jobs failed (the stats say so) with one exception,
    # which the group lists once.
    def outer(inner: concurrent.futures.Future[Any]) -> None:
        inner.result(timeout=10)

    with pytest.RaisesGroup(Boom) as caught, ThreadPool(max_workers=2, on_error="collect") as pool:
        inner = pool.submit(fail)
        wrapper = pool.submit(outer, inner)
    assert caught.value.exceptions[0] is inner.exception() is wrapper.exception()
    assert pool.stats.failed == 2


def test_on_error_handler_is_told_of_each_failure_and_the_pool_goes_on() -> None:
    seen: list[tuple[concurrent.futures.Future[Any], Exception, str]] = []

    def handler(future: concurrent.futures.Future[Any], exc: Exception) -> None:
        seen.append((future, exc, threading.current_thread().name))

    with ThreadPool(max_workers=1, on_error=handler) as pool:
        failures = [pool.submit(fail, str(n)) for n in range(3)]
        ok = pool.submit(double, 5)
    assert ok.result() == 10
    assert [(f, e) for f, e, _ in seen] == [(f, f.exception()) for f in failures]
    assert {name for _, _, name in seen} == {"workpool-thread-1"}


def test_a_handler_that_raises_is_handled_as_cancel() -> None:
    def handler(future: concurrent.futures.Future[Any], exc: Exception) -> None:
        raise RuntimeError("handler failed") from exc

    handler_failed = pytest.RaisesExc(RuntimeError, match="handler failed")
    with pytest.RaisesGroup(handler_failed), ThreadPool(on_error=handler) as pool:
        pool.submit(fail)


def test_a_failure_the_body_also_received_is_reported_once() -> None:
    with pytest.RaisesGroup(Boom) as caught, ThreadPool() as pool:
        pool.submit(fail).result(WAIT)
    assert len(caught.value.exceptions) == 1


def test_the_body_error_and_job_failures_are_raised_together() -> None:
    with pytest.RaisesGroup(KeyError, Boom), ThreadPool(on_error="collect") as pool:
        failing = pool.submit(fail)
        wait_until(failing.done, "the failure")
        raise KeyError("body")


def test_a_base_exception_in_a_job_cancels_the_pool_whatever_the_policy() -> None:
    gate = Gate()

    def interrupt() -> None:
        raise Unswallowable

    with pytest.RaisesGroup(Unswallowable) as caught, ThreadPool(max_workers=2, on_error="collect") as pool:
        pool.submit(gate.until_cancelled)
        gate.wait_started(1)
        pool.submit(interrupt)
    assert isinstance(caught.value, BaseExceptionGroup)
    assert gate.cancelled == [None]


# -- shutdown --------------------------------------------------------------------------


def test_shutdown_with_grace_returns_even_with_a_hung_job() -> None:
    hung = threading.Event()
    release = threading.Event()
    after: list[str] = []

    def hangs() -> None:
        hung.set()
        assert release.wait(WAIT)  # never calls check_cancelled while the pool waits
        try:
            check_cancelled()
        except JobCancelled:
            after.append("saw the cancellation")
            raise

    with ThreadPool(max_workers=2, max_pending=None) as pool:
        job = pool.submit(hangs)
        queued = [pool.submit(double, n) for n in range(3)]
        assert hung.wait(WAIT)
        threads = [t for t in threading.enumerate() if t.name.startswith("workpool-thread-")]
        # If shutdown waited for the hung job, this would never return: the
        # job is released only below.
        pool.shutdown(grace=0.05)
        assert job.running()
        with pytest.raises(PoolClosed, match="was cancelled"):
            pool.submit(double, 1)
    # Nor does leaving the block wait for it.
    assert job.running()
    assert all(f.done() for f in queued)
    release.set()
    assert isinstance(job.exception(WAIT), JobCancelled)
    assert after == ["saw the cancellation"]
    for thread in threads:  # the abandoned thread ends once its job returns
        thread.join(WAIT)
        assert not thread.is_alive()


def test_shutdown_with_grace_lets_jobs_that_finish_in_time_finish() -> None:
    gate = Gate()
    with ThreadPool(max_workers=2) as pool:
        futures = [pool.submit(gate.block, n) for n in range(4)]
        releaser = threading.Thread(
            target=lambda: (wait_until(lambda: "closing" in repr(pool), "closing"), gate.release.set())
        )
        releaser.start()
        pool.shutdown(grace=WAIT)
        assert [f.result(0) for f in futures] == [0, 1, 2, 3]
    releaser.join(WAIT)
    assert pool.stats.cancelled == 0
    assert_balanced(pool.stats)


def test_shutdown_without_waiting_closes_intake_and_the_block_still_waits() -> None:
    gate = Gate()
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(gate.block, "job")
        pool.shutdown(wait=False)
        with pytest.raises(PoolClosed, match="is closed"):
            pool.submit(double, 1)
        gate.release.set()
    assert future.result(0) == "job"


def test_shutdown_cancel_futures_cancels_only_queued_jobs() -> None:
    gate = Gate()
    with ThreadPool(max_workers=1, max_pending=None) as pool:
        running = pool.submit(gate.block, "running")
        gate.wait_started(1)
        queued = [pool.submit(gate.block, n) for n in range(3)]
        pool.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in queued)
        gate.release.set()
    assert running.result(0) == "running"


def test_shutdown_waits_and_joins_every_thread() -> None:
    with ThreadPool(max_workers=4) as pool:
        futures = [pool.submit(double, n) for n in range(50)]
        pool.shutdown()
        assert all(f.done() for f in futures)
        assert pool.stats.workers == 0
        assert not [t for t in threading.enumerate() if t.name.startswith("workpool-thread-")]


def test_shutdown_from_one_of_its_own_jobs_refuses_to_wait_for_itself() -> None:
    def shut_down_from_inside() -> str:
        with pytest.raises(RuntimeError, match="would wait for itself") as caught:
            pool.shutdown()
        pool.shutdown(wait=False)  # closing without waiting is fine
        return str(caught.value)

    with ThreadPool() as pool:
        assert "call pool.cancel()" in pool.submit(shut_down_from_inside).result(WAIT)
        with pytest.raises(PoolClosed):
            pool.submit(double, 1)


def test_shutdown_of_a_pool_never_opened_just_closes_it() -> None:
    pool = ThreadPool()
    pool.shutdown()
    with pytest.raises(RuntimeError, match="only once"):
        pool.__enter__()


# -- map ----------------------------------------------------------------------------------


def test_map_yields_values_in_input_order() -> None:
    release = {n: threading.Event() for n in range(6)}

    def job(n: int) -> int:
        assert release[n].wait(WAIT)
        return n * n

    with ThreadPool(max_workers=6) as pool:
        values = pool.map(job, range(6))
        for n in reversed(range(6)):  # finish in reverse order
            release[n].set()
        assert list(values) == [n * n for n in range(6)]


def test_map_zips_several_iterables_and_stops_at_the_shortest() -> None:
    with ThreadPool() as pool:
        assert list(pool.map(pow, [2, 3, 4], [5, 2])) == [32, 9]


def test_map_reads_an_endless_input_lazily_and_cancels_the_rest_on_break() -> None:
    with ThreadPool(max_workers=2, max_pending=3) as pool:
        for value in pool.map(double, itertools.count()):
            if value == 20:
                break  # the iterator is dropped, so closed: its queued jobs are cancelled
        assert pool.stats.submitted <= 11 + 5  # the values taken, and at most a window more
    assert_balanced(pool.stats)


def test_closing_a_map_before_iterating_it_cancels_its_queued_jobs() -> None:
    gate = Gate()
    ran: list[int] = []
    with ThreadPool(max_workers=1, max_pending=10) as pool:
        pool.submit(gate.block)  # holds the only thread: the map's jobs stay queued
        results = pool.map(ran.append, range(4))
        results.close()  # type: ignore[attr-defined]  # typed as Executor.map's Iterator
        gate.release.set()
        assert list(results) == []
    assert ran == []
    assert pool.stats.cancelled == 4
    assert_balanced(pool.stats)


def test_map_submits_its_first_window_at_once() -> None:
    gate = Gate()
    with ThreadPool(max_workers=2, max_pending=1) as pool:
        results = pool.map(gate.block, range(100))
        assert pool.stats.submitted == 3  # max_workers + max_pending, before any iteration
        gate.release.set()
        assert list(results) == list(range(100))


def test_map_raises_the_first_failure_and_cancels_its_queued_jobs() -> None:
    def job(n: int) -> int:
        if n == 3:
            raise Boom(str(n))
        return n

    with pytest.RaisesGroup(Boom), ThreadPool(max_workers=1, on_error="collect") as pool:
        values: list[int] = []
        with pytest.raises(Boom, match="3"):
            values.extend(pool.map(job, range(10)))
    assert values == [0, 1, 2]


def test_map_raises_an_input_error_after_the_values_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise KeyError("input")

    with ThreadPool() as pool:
        values: list[int] = []
        with pytest.raises(KeyError, match="input"):
            values.extend(pool.map(double, items()))
    assert values == [2, 4]


def test_map_timeout_raises_timeout_error() -> None:
    gate = Gate()
    with ThreadPool(max_workers=1) as pool:
        # What Executor.map raises: concurrent.futures.TimeoutError, which is
        # the built-in TimeoutError only from Python 3.11 on.
        with pytest.raises(concurrent.futures.TimeoutError):
            list(pool.map(gate.block, range(3), timeout=0.01))
        gate.release.set()


# -- event loops --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_opening_a_thread_pool_in_an_event_loop_thread_is_refused() -> None:
    pool = ThreadPool()
    with pytest.raises(RuntimeError, match="would block this thread's event loop"):
        pool.__enter__()


def test_run_in_executor_uses_the_pool_and_the_callers_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def read(suffix: str) -> str:
        return var.get() + suffix

    async def main(pool: ThreadPool) -> list[str]:
        loop = asyncio.get_running_loop()

        async def one(n: int) -> str:
            var.set(f"task-{n}")
            return await loop.run_in_executor(pool, read, "!")

        return list(await asyncio.gather(*(one(n) for n in range(20))))

    with ThreadPool(max_workers=4, max_pending=None) as pool:
        assert asyncio.run(main(pool)) == [f"task-{n}!" for n in range(20)]
    assert pool.stats.completed == 20


def test_a_submit_that_would_block_an_event_loop_thread_raises_instead() -> None:
    gate = Gate()

    async def main(pool: ThreadPool) -> None:
        with pytest.raises(PoolFull):
            pool.submit_nowait(gate.block)
        with pytest.raises(RuntimeError, match="would block this thread's event loop"):
            pool.submit(gate.block)
        with pytest.raises(RuntimeError, match="would block this thread's event loop"):
            pool.shutdown()

    with ThreadPool(max_workers=1, max_pending=0) as pool:
        pool.submit(gate.block)
        asyncio.run(main(pool))
        anyio.run(main, pool, backend="trio")
        gate.release.set()


def test_iterating_a_map_in_an_event_loop_thread_raises_instead_of_blocking() -> None:
    gate = Gate()

    async def main(pool: ThreadPool) -> None:
        results = pool.map(gate.block, range(2))
        with pytest.raises(RuntimeError, match="would block this thread's event loop"):
            next(results)

    with ThreadPool(max_workers=2) as pool:
        asyncio.run(main(pool))
        gate.release.set()


# -- contextvars -------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_a_job_sees_the_submitters_contextvars_as_at_submit_time() -> None:
    with ThreadPool(max_workers=1) as pool:
        token = request_id.set("req-1")
        future = pool.submit(request_id.get)
        request_id.reset(token)
        assert future.result(WAIT) == "req-1"
        assert pool.submit(request_id.get).result(WAIT) == "unset"


def test_changes_made_by_a_job_stay_in_that_job() -> None:
    def set_and_read(value: str) -> str:
        request_id.set(value)
        return request_id.get()

    # A sync test runs in the main thread's own context: reset what it set,
    # or a later test in the same process would see it.
    token = request_id.set("submitter")
    try:
        with ThreadPool(max_workers=1) as pool:  # one thread runs every job
            assert pool.submit(set_and_read, "job-1").result(WAIT) == "job-1"
            assert pool.submit(request_id.get).result(WAIT) == "submitter"
            assert request_id.get() == "submitter"
    finally:
        request_id.reset(token)


# -- misuse -----------------------------------------------------------------------------


def test_a_pool_must_be_opened_before_use_and_only_once() -> None:
    pool = ThreadPool()
    with pytest.raises(RuntimeError, match=r"needs an open pool: use 'with ThreadPool"):
        pool.submit(double, 1)
    with pool:
        pass
    with pytest.raises(RuntimeError, match="only once"), pool:
        pass  # pragma: no cover
    with pytest.raises(PoolClosed):
        pool.submit(double, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_workers": 0}, ValueError, "max_workers must be a positive int"),
        ({"max_workers": 2.0}, TypeError, "max_workers must be an int"),
        ({"max_workers": True}, TypeError, "max_workers must be an int"),
        ({"max_pending": -1}, ValueError, "max_pending must be >= 0"),
        ({"max_pending": "10"}, TypeError, "max_pending must be an int or None"),
        ({"on_error": "ignore"}, ValueError, "on_error must be 'cancel', 'collect' or a callable"),
        ({"on_error": 3}, TypeError, "on_error must be 'cancel', 'collect' or a callable"),
        ({"name": None}, TypeError, "name must be a str"),
    ],
)
def test_constructor_arguments_are_validated(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ThreadPool(**kwargs)


async def an_async_function() -> None:
    pass  # pragma: no cover


def test_submit_refuses_async_functions_awaitables_and_non_callables() -> None:
    with ThreadPool() as pool:
        with pytest.raises(TypeError, match=r"is an async function; submit it to a workpool\.Pool"):
            pool.submit(an_async_function)
        coroutine = an_async_function()
        with pytest.raises(TypeError, match=r"not submit_nowait\(fn\(\*args\)\)"):
            pool.submit_nowait(coroutine)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a callable, but got int"):
            pool.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"ThreadPool\.map"):
            pool.map(an_async_function, [])
    assert pool.stats.submitted == 0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda pool: pool.map(double, [1], timeout=-1), ValueError, "timeout must be"),
        (lambda pool: pool.map(double, [1], timeout="1"), TypeError, "timeout must be"),
        (lambda pool: pool.map(double, [1], chunksize=0), ValueError, "chunksize must be a positive int"),
        (lambda pool: pool.map(double, 3), TypeError, "expected iterables, got int"),
        (lambda pool: pool.shutdown(grace=-1), ValueError, "grace must be"),
        (lambda pool: pool.shutdown(grace="1"), TypeError, "grace must be"),
        (lambda pool: pool.shutdown(wait=False, grace=1), ValueError, "needs wait=True"),
        (lambda pool: pool.shutdown(wait=None), TypeError, "wait must be True or False"),
        (lambda pool: pool.shutdown(cancel_futures=1), TypeError, "cancel_futures must be True or False"),
    ],
)
def test_method_arguments_are_validated(
    call: Callable[[ThreadPool], object], error: type[Exception], match: str
) -> None:
    with ThreadPool() as pool, pytest.raises(error, match=match):
        call(pool)


@pytest.mark.parametrize("cls", [ThreadPool, PeriodicCall])
def test_every_public_method_and_property_is_documented(cls: type) -> None:
    undocumented = []
    for name in [n for n in vars(cls) if not n.startswith("_")]:
        member = inspect.getattr_static(cls, name)
        target = member.fget if isinstance(member, property) else member
        if not (getattr(target, "__doc__", None) or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_blocking_methods_are_plain_functions() -> None:
    # Nothing here is async: a ThreadPool is for code without an event loop.
    for name in ("submit", "submit_nowait", "map", "every", "shutdown", "cancel", "__enter__", "__exit__"):
        assert not inspect.iscoroutinefunction(getattr(ThreadPool, name))


def test_a_cancelled_queued_future_gives_its_place_back_at_once() -> None:
    # Found by review: the place and the count used to wait for a worker to
    # reach the cancelled job.
    release = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        assert release.wait(10)

    with ThreadPool(max_workers=1, max_pending=2) as pool:
        pool.submit(block)
        assert started.wait(10)
        queued = [pool.submit(int, 1), pool.submit(int, 2)]
        with pytest.raises(PoolFull):
            pool.submit_nowait(int, 3)
        assert queued[0].cancel()
        stats = pool.stats
        assert (stats.queued, stats.cancelled) == (1, 1)
        third = pool.submit_nowait(int, 3)  # the cancelled job's place
        release.set()
    assert third.result() == 3
    assert queued[1].result() == 2
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.cancelled) == (4, 3, 1)
