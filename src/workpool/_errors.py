"""The exceptions workpool raises."""

from __future__ import annotations

__all__ = ["JobCancelled", "PoolClosed", "PoolFull", "WorkpoolError"]


class WorkpoolError(Exception):
    """Base class of every exception workpool defines."""


class PoolClosed(WorkpoolError):
    """The pool no longer accepts jobs from outside.

    Raised by `Pool.submit`, `Pool.submit_nowait`, `Pool.map` and `Pool.consume`
    once `Pool.close` has been called, the `async with` block has been left, or
    the pool has been cancelled; also raised in producers that were waiting for
    queue space when that happened.
    """


class PoolFull(WorkpoolError):
    """`Pool.submit_nowait` found no room: the pool holds ``max_workers + max_pending`` jobs.

    Use `await pool.submit(...)` to wait for room instead.
    """


class JobCancelled(WorkpoolError):
    """The job was cancelled before it produced a result.

    Raised by `await job`, `Job.result` and `Job.exception` for a job that was
    cancelled with `Job.cancel`, by `Pool.cancel`, or because the pool was torn
    down by an error.  It is an ordinary `Exception`, not the event loop's
    cancellation exception, so awaiting a cancelled job never cancels the
    awaiting task.
    """
