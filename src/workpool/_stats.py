"""Immutable snapshots of a pool's counters."""

from __future__ import annotations

import attrs

__all__ = ["PoolStats", "ShutdownReport"]


@attrs.frozen
class PoolStats:
    """A snapshot of a `Pool`'s state, taken by `Pool.stats`.

    Every counter covers the pool's whole life; the gauges (``workers``,
    ``busy``, ``queued``) describe the moment of the snapshot.  Every job that
    was accepted ends in exactly one of ``completed``, ``failed`` or
    ``cancelled``, so once the pool is closed
    ``submitted == completed + failed + cancelled``.
    """

    workers: int
    """Worker tasks alive now, idle or busy (they start on demand: a pool that never ran a job has none)."""
    busy: int
    """Jobs running now."""
    queued: int
    """Jobs accepted and waiting for a worker."""
    submitted: int
    """Jobs accepted since the pool opened."""
    completed: int
    """Jobs that returned a value."""
    failed: int
    """Jobs that raised an exception, including `TimeoutError` from ``job_timeout``."""
    cancelled: int
    """Jobs cancelled before they produced a result."""
    retries: int = 0
    """Attempts run again after a failure, under the pool's `Retry` policy."""
    stalled: int = 0
    """Jobs reported for running longer than ``stall_after``."""


@attrs.frozen
class ShutdownReport:
    """What `Pool.shutdown` did."""

    finished: int
    """Jobs that finished (returned or raised) during the shutdown."""
    cancelled: int
    """Jobs cancelled during the shutdown: those left when the grace period ended."""
    forced: bool
    """Whether the grace period ran out with jobs still queued or running."""
