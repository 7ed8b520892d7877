"""workpool: structured-concurrency worker pools for anyio (asyncio and trio).

Every worker and job lives in a task group owned by the pool: leaving the
``async with`` block waits for them all, and an error or `Pool.cancel` stops
them all.
"""

from __future__ import annotations

from ._errors import JobCancelled as JobCancelled
from ._errors import PoolClosed as PoolClosed
from ._errors import PoolFull as PoolFull
from ._errors import WorkpoolError as WorkpoolError
from ._job import Job as Job
from ._map import AckingSource as AckingSource
from ._map import MapIterator as MapIterator
from ._periodic import PeriodicJob as PeriodicJob
from ._periodic import ticker as ticker
from ._pool import ErrorPolicy as ErrorPolicy
from ._pool import Pool as Pool
from ._retry import Retry as Retry
from ._signals import shutdown_on_signals as shutdown_on_signals
from ._stats import PoolStats as PoolStats
from ._stats import ShutdownReport as ShutdownReport

__all__ = (
    "AckingSource",
    "ErrorPolicy",
    "Job",
    "JobCancelled",
    "MapIterator",
    "PeriodicJob",
    "Pool",
    "PoolClosed",
    "PoolFull",
    "PoolStats",
    "Retry",
    "ShutdownReport",
    "WorkpoolError",
    "shutdown_on_signals",
    "ticker",
)

__version__ = "0.1.0"
