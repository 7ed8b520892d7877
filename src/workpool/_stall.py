"""The stall watchdog: ``Pool(stall_after=...)`` reports jobs that run too long."""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

import anyio

from ._frames import coroutine_frames
from ._job import site_line

if TYPE_CHECKING:
    from ._job import Job, Site
    from ._pool import Pool
    from ._worker import WorkerInfo

__all__ = ["describe_job", "logger", "watch_stalls"]

logger = logging.getLogger("workpool")


def format_site(site: Site | None) -> str:
    if site is None:
        return "unknown"
    code, line = site_line(site)
    return f"{code.co_name} at {code.co_filename}:{line}"


def describe_job(job: Job[Any], info: WorkerInfo, worker: str, now: float) -> str:
    """A task-dump entry for a running job: where it is, for how long, who submitted it."""
    started = info.started_at if info.started_at is not None else now
    lines = [f'task "{worker}" [running {job!r}, {now - started:.1f} s]:']
    # The task dump's walk, which also goes into async generators (async for).
    frames, _ = coroutine_frames(info.runner.job_coroutine)
    for code, line, _module in reversed(frames):
        lines.append(f"  {code.co_filename}:{line} in {code.co_name}")
    lines.append(f"submitted by {format_site(job._site)}")
    return "\n".join(lines)


def _task_name(task: object) -> str:
    get_name = getattr(task, "get_name", None)
    name = get_name() if get_name is not None else getattr(task, "name", None)
    return str(name)


async def watch_stalls(pool: Pool, stall_after: float) -> None:
    """Log, once per job, every job of `pool` that has run for `stall_after` seconds.

    Runs as one of the pool's service tasks, checking twice per `stall_after`;
    the pool stops it once it has closed and drained.
    """
    reported: weakref.WeakSet[Job[Any]] = weakref.WeakSet()
    while True:
        await anyio.sleep(stall_after / 2)
        now = pool._clock()
        for task, info in list(pool._worker_info.items()):
            job = info.job
            started_at = info.started_at
            if job is None or started_at is None or job in reported:
                continue
            if now - started_at >= stall_after:
                reported.add(job)
                pool._stalled += 1
                logger.warning(
                    "workpool.Pool %r: a job has run for more than stall_after=%g s\n%s",
                    pool.name,
                    stall_after,
                    describe_job(job, info, _task_name(task), now),
                )
