"""`ThreadPool.map`: a bounded window of jobs over a lazily read input, values in input order."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from ._threads import in_event_loop_thread

if TYPE_CHECKING:
    from ._threadpool import ThreadPool

__all__ = ["fill", "map_results"]

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


def map_results(
    pool: ThreadPool,
    fn: Callable[..., T],
    items: Iterator[tuple[Any, ...]],
    pending: deque[Future[T]],
    window: int,
    input_error: list[BaseException],
    deadline: float | None,
) -> Iterator[T]:
    """Yield the values of `pending` in order, refilling the window; cancel what is left when closed."""
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
