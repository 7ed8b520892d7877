"""Helpers shared by the test modules: leak checks and small job functions."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


def _threads() -> set[threading.Thread]:
    # trio's guest mode (which anyio's pytest runner uses) waits for I/O in
    # a worker thread of trio's own thread cache ("Trio thread N") whenever
    # every task is blocked, and such a thread idles on for a while: it is
    # the event loop's, not the pool's.
    return {t for t in threading.enumerate() if not t.name.startswith("Trio thread ")}


def live_tasks() -> set[Any]:
    """Every task alive in the running event loop, as a set of task objects.

    asyncio: `asyncio.all_tasks` (tasks that are not done).  trio: the whole
    task tree, walked from the root task through every nursery.
    """
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:  # trio
        import trio

        found: set[Any] = set()
        stack = [trio.lowlevel.current_root_task()]
        while stack:
            task = stack.pop()
            if task is None:  # pragma: no cover - only outside a run
                continue
            found.add(task)
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return found
    return set(asyncio.all_tasks())


def _describe(tasks: set[Any]) -> list[str]:
    return sorted(getattr(t, "name", None) or t.get_name() for t in tasks)


@asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    """Assert that the block leaves exactly the tasks and threads it found.

    Put it outside the pool (``async with no_leaks(), Pool() as pool:``): the
    check runs right after the pool has exited, without a checkpoint in
    between, so a task the pool merely cancelled but did not wait for is
    still alive and caught.
    """
    tasks_before = live_tasks()
    threads_before = _threads()
    try:
        yield
    finally:
        tasks_after = live_tasks()
        threads_after = _threads()
        leaked = tasks_after - tasks_before
        gone = tasks_before - tasks_after
        assert not leaked, f"tasks outlived the pool: {_describe(leaked)}"
        assert not gone, f"tasks that were there before the pool are gone: {_describe(gone)}"
        assert threads_after == threads_before, (
            f"threads changed: {sorted(t.name for t in threads_after ^ threads_before)}"
        )


@contextmanager
def no_leaks_sync() -> Iterator[None]:
    """Thread-only variant for code that runs its own event loop (anyio.run)."""
    threads_before = _threads()
    yield
    assert _threads() == threads_before


async def identity(x: Any) -> Any:
    return x


async def double(x: int) -> int:
    return 2 * x


async def noop() -> None:
    pass


async def wait_for(event: anyio.Event, value: Any = None) -> Any:
    await event.wait()
    return value


async def sleep_forever() -> None:
    await anyio.sleep_forever()


class Boom(Exception):
    """The failure the tests' jobs raise."""


class Unswallowable(BaseException):
    """A BaseException that is not a failure: stands in for KeyboardInterrupt."""


def assert_stats_balanced(stats: Any) -> None:
    """Once a pool has exited, every accepted job ended exactly one way."""
    assert stats.busy == 0
    assert stats.queued == 0
    assert stats.workers == 0
    assert stats.submitted == stats.completed + stats.failed + stats.cancelled, stats


class Probe:
    """Job functions that block until released and record what happened to them.

    Create it inside the event loop (it holds an `anyio.Event`).
    """

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.started: list[Any] = []
        self.cancelled: list[Any] = []
        self.finished: list[Any] = []

    async def block(self, key: Any = None) -> Any:
        """Run until `release` is set, then return `key`."""
        self.started.append(key)
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(key)
            raise
        self.finished.append(key)
        return key

    async def forever(self, key: Any = None) -> None:
        """Run until cancelled."""
        self.started.append(key)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(key)
            raise


def leaves(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside `exc`, depth first."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def in_stack_of(thread: threading.Thread, code: object) -> bool:
    """Whether `code` is running, or waiting, somewhere in the stack of `thread`."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
