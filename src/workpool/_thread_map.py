"""`ThreadPool.map`: a bounded window of jobs over a lazily read input, values in input order."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from ._threads import in_event_loop_thread

if TYPE_CHECKING:
    from ._threadpool import ThreadPool

__all__ = ["MapResults", "fill", "map_results"]

T = TypeVar("T")


def fill(
    pool: ThreadPool,
    fn: Callable[..., T],
    items: Iterator[tuple[Any, ...]],
    pending: deque[Future[T]],
    window: int,
    input_error: list[BaseException],
) -> None:
    """Submit items until `window` jobs are pending or the input ends (or fails: kept in `input_error`)."""
    while not input_error and len(pending) < window:
        try:
            args = next(items)
        except StopIteration:
            return
        except Exception as exc:
            input_error.append(exc)
            return
        pending.append(pool.submit(fn, *args))


class MapResults(Iterator[T]):
    """The iterator `ThreadPool.map` returns: its values in order, and `close` to cancel the rest.

    Not a bare generator: closing a generator that has not started runs no
    ``finally``, so the jobs of a map closed before its first value would
    stay queued (test_closing_a_map_before_iterating_it_cancels_its_queued_jobs).
    """

    __slots__ = ("_pending", "_values")

    def __init__(self, values: Generator[T, None, None], pending: deque[Future[T]]) -> None:
        self._values = values
        self._pending = pending

    def __iter__(self) -> MapResults[T]:
        return self

    def __next__(self) -> T:
        return next(self._values)

    def close(self) -> None:
        """Stop the map: read no more input, and cancel its jobs that have not started."""
        self._values.close()
        for future in self._pending:
            future.cancel()


def map_results(
    pool: ThreadPool,
    fn: Callable[..., T],
    items: Iterator[tuple[Any, ...]],
    pending: deque[Future[T]],
    window: int,
    input_error: list[BaseException],
    deadline: float | None,
) -> Generator[T, None, None]:
    """Yield the values of `pending` in order, refilling the window; cancel the rest when closed.

    `ThreadPool.map` wraps it in a `MapResults`.  Dropped after a break, the
    generator is closed and its finally cancels the rest; a map dropped
    before its first value runs its first window.
    """
    try:
        while pending:
            future = pending[0]
            if not future.done() and in_event_loop_thread():
                raise RuntimeError(
                    "iterating over ThreadPool.map() would block this thread's event loop; "
                    "iterate over it in a thread without an event loop"
                )
            value = future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            pending.popleft()
            fill(pool, fn, items, pending, window, input_error)
            yield value
        if input_error:
            raise input_error[0]
    finally:
        for future in pending:
            future.cancel()
