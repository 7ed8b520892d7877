"""`AckingSource`: a source of `Pool.consume` that hears how each of its items' jobs ended."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["AckingSource", "run_and_ack"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class AckingSource(Protocol[T_co]):
    """A source that wants to know how each of its items ended, for `Pool.consume`.

    A job queue with at-least-once delivery implements it: `Pool.consume`
    runs ``fn(item)`` for each item and then awaits ``ack(item)`` if the
    job returned, or ``nack(item, error)`` if it raised an exception or hit
    the pool's ``job_timeout`` (``error`` is then a `TimeoutError`).  Each
    item gets exactly one of them, after its job's last attempt: with a
    ``retry`` policy, a failure that is retried is not reported, and only
    the last attempt's outcome counts.  A job that was cancelled gets
    neither, so its item stays unacknowledged and the queue delivers it
    again.  Both run inside the job, after ``fn`` and outside its
    ``job_timeout``; an exception they raise fails the job.
    """

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def ack(self, item: Any, /) -> None:
        """The job for `item` succeeded."""
        ...

    async def nack(self, item: Any, error: Exception, /) -> None:
        """The job for `item` raised `error` (a `TimeoutError` if it hit ``job_timeout``)."""
        ...


async def run_and_ack(fn: Callable[[T], Awaitable[object]], source: AckingSource[T], item: T) -> None:
    """The job `Pool.consume` runs for an item of an `AckingSource`.

    Run as it is only by a pool without ``job_timeout``, ``retry`` or a rate
    limit; otherwise the worker recognises it and runs ``fn(item)`` under
    those options, then acks or nacks once (see `_worker._run_configured`).
    """
    try:
        await fn(item)
    except Exception as error:
        await source.nack(item, error)
        raise
    await source.ack(item)
