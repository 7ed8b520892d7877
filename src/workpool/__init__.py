"""workpool: structured-concurrency worker pools for anyio (asyncio and trio).

Every worker and job lives in a task group owned by the pool: leaving the
``async with`` block waits for them all, and an error or `Pool.cancel` stops
them all.
"""

from __future__ import annotations

from ._acking import AckingSource as AckingSource
from ._dump import dump_tasks as dump_tasks
from ._dump import format_tasks as format_tasks
from ._dump import summarize_tasks as summarize_tasks
from ._dump_signal import dump_on_signal as dump_on_signal
from ._errors import JobCancelled as JobCancelled
from ._errors import PoolClosed as PoolClosed
from ._errors import PoolFull as PoolFull
from ._errors import WorkpoolError as WorkpoolError
from ._job import Job as Job
from ._map import MapIterator as MapIterator
from ._periodic import PeriodicJob as PeriodicJob
from ._periodic import ticker as ticker
from ._pool import ErrorPolicy as ErrorPolicy
from ._pool import Pool as Pool
from ._records import StackFrame as StackFrame
from ._records import TaskRecord as TaskRecord
from ._records import TaskSummary as TaskSummary
from ._retry import Retry as Retry
from ._signals import shutdown_on_signals as shutdown_on_signals
from ._stats import PoolStats as PoolStats
from ._stats import ShutdownReport as ShutdownReport
from ._thread_periodic import PeriodicCall as PeriodicCall
from ._threadpool import ThreadPool as ThreadPool
from ._threads import check_cancelled as check_cancelled
from ._threads import run_in_thread as run_in_thread
from ._tracker import track_tasks as track_tasks
from ._tracker import untrack_tasks as untrack_tasks
from ._watch import watch_tasks as watch_tasks

__all__ = (
    "AckingSource",
    "ErrorPolicy",
    "Job",
    "JobCancelled",
    "MapIterator",
    "PeriodicCall",
    "PeriodicJob",
    "Pool",
    "PoolClosed",
    "PoolFull",
    "PoolStats",
    "Retry",
    "ShutdownReport",
    "StackFrame",
    "TaskRecord",
    "TaskSummary",
    "ThreadPool",
    "WorkpoolError",
    "check_cancelled",
    "dump_on_signal",
    "dump_tasks",
    "format_tasks",
    "run_in_thread",
    "shutdown_on_signals",
    "summarize_tasks",
    "ticker",
    "track_tasks",
    "untrack_tasks",
    "watch_tasks",
)

__version__ = "0.1.0"
