"""`dump_tasks`: a goroutine-style dump of every task of the running event loop (and every thread)."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import Callable, Iterable
from types import CodeType
from typing import TYPE_CHECKING, Any

from . import _registry, _tracker
from ._frames import Frame, blocked_on, coroutine_frames, is_library, qualname, running_frames, thread_frames
from ._job import Site, site_line
from ._records import StackFrame, TaskRecord, TaskSummary, format_records, summarize
from ._threads import job_function

if TYPE_CHECKING:
    from ._worker import WorkerInfo

__all__ = ["LoopView", "dump_tasks", "format_tasks", "summarize_tasks"]


class LoopView:
    """One event loop (or trio run) as a dump reads it; usable from a signal handler too."""

    def __init__(self) -> None:
        kind, key = _tracker.loop_key()
        self.kind = kind
        self.key = key
        if kind == "asyncio":
            loop: Any = key
            self.now: Callable[[], float] = loop.time
        else:
            import trio

            self.now = trio.lowlevel.current_clock().current_time

    def tasks(self) -> list[Any]:
        """Every live task, in no particular order."""
        if self.kind == "asyncio":
            loop: Any = self.key
            return list(asyncio.all_tasks(loop))
        found: list[Any] = []
        stack: list[Any] = [self.key]
        while stack:
            task = stack.pop()
            found.append(task)
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return found

    def current_task(self) -> object | None:
        if self.kind == "asyncio":
            loop: Any = self.key
            return asyncio.current_task(loop)
        import trio

        try:
            return trio.lowlevel.current_task()
        except RuntimeError:
            return None

    def records(self, tasks: Iterable[Any]) -> list[TaskRecord]:
        """Records for `tasks` (task objects of this loop)."""
        workers = _worker_table()
        current = self.current_task()
        now = self.now()
        records = [self._record(task, task is current, workers.get(task), now) for task in tasks]
        # Tracked tasks in the order they were created, then the others by name.
        records.sort(key=lambda r: (r.number is None, r.number or 0, r.name))
        return records

    def _record(
        self, task: Any, running: bool, worker: tuple[str, WorkerInfo] | None, now: float
    ) -> TaskRecord:
        if self.kind == "asyncio":
            coro = task.get_coro()
            name = task.get_name()
            leaf = getattr(task, "_fut_waiter", None)
        else:
            coro = task.coro
            name = task.name
            leaf = None
        frames, awaited = ([], None) if running else coroutine_frames(coro)
        if running:
            frames = running_frames(coro)
        tracked = _tracker.tracked_info(self.key, task)
        created: tuple[CodeType, int] | None = tracked.site if tracked is not None else None
        # The running task is not waiting: it has no blocked_for.
        blocked_for = (
            now - tracked.blocked_since
            if not running and tracked is not None and tracked.blocked_since is not None
            else None
        )
        pool = job = job_site = job_running_for = None
        state = "" if running else blocked_on(frames, leaf if leaf is not None else awaited)
        if worker is not None:
            pool, info = worker
            created = site_line(info.site) if info.site is not None else created
            current_job = info.job
            if current_job is None:
                if info.idle_since is not None and not running:
                    state = "idle"
                    blocked_for = now - info.idle_since
            else:
                job = _function_name(job_function(current_job._fn, current_job._args))
                job_site = _pool_site(current_job._site)
                if info.started_at is not None:
                    job_running_for = now - info.started_at
        return TaskRecord(
            kind="task",
            name=str(name),
            number=tracked.number if tracked is not None else None,
            running=running,
            blocked_on=state,
            blocked_for=blocked_for,
            stack=_stack(frames),
            created_by=_site(created),
            pool=pool,
            job=job,
            job_submitted_by=job_site,
            job_running_for=job_running_for,
        )


def _worker_table() -> dict[object, tuple[str, WorkerInfo]]:
    """Worker task -> (pool name, what it is doing), over every open pool."""
    table: dict[object, tuple[str, WorkerInfo]] = {}
    for pool in _registry.live_pools():
        for task, info in list(pool._worker_info.items()):
            table[task] = (pool.name, info)
    return table


def _function_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    if name is None:
        inner = getattr(fn, "func", None)  # functools.partial
        name = getattr(inner, "__qualname__", None)
    return str(name) if name is not None else repr(fn)


@functools.lru_cache(maxsize=4096)
def _stack_frame(code: CodeType, lineno: int) -> StackFrame:
    # 10,000 tasks started by one loop share a handful of frames: each
    # record is made once, and the dump costs a third less.
    return StackFrame(code.co_filename, lineno, qualname(code), is_library(code.co_filename))


def _stack(frames: list[Frame]) -> tuple[StackFrame, ...]:
    return tuple(_stack_frame(code, lineno) for code, lineno, _ in reversed(frames))


def _site(site: tuple[CodeType, int] | None) -> StackFrame | None:
    return None if site is None else _stack_frame(*site)


def _pool_site(site: Site | None) -> StackFrame | None:
    """A site the pool recorded: its offset is turned into a line only now."""
    return None if site is None else _stack_frame(*site_line(site))


def thread_records(threads: Iterable[threading.Thread] | None = None) -> list[TaskRecord]:
    """Records for `threads` (default: every live thread)."""
    frames = sys._current_frames()
    me = threading.get_ident()
    records: list[TaskRecord] = []
    for thread in threading.enumerate() if threads is None else threads:
        ident = thread.ident
        stack = thread_frames(frames.get(ident)) if ident is not None else []
        running = ident == me
        state = "" if running else blocked_on(stack, None)
        target = getattr(thread, "_target", None)
        if not running and target is not None and all(is_library(code.co_filename) for code, _, _ in stack):
            # The thread runs a builtin (time.sleep) or library function
            # directly: its target says more than threading's own frames.
            state = _function_name(target)
            # A partial's module is functools': the module is its function's.
            module = getattr(getattr(target, "func", target), "__module__", None)
            if module and "." not in state:
                state = f"{module.partition('.')[0]}.{state}"
        records.append(
            TaskRecord(
                kind="thread",
                name=thread.name,
                number=ident,
                running=running,
                blocked_on=state,
                blocked_for=None,
                stack=_stack(stack),
                created_by=None,
                pool=None,
                job=None,
                job_submitted_by=None,
                job_running_for=None,
            )
        )
    return records


def dump_tasks(*, threads: bool = False) -> tuple[TaskRecord, ...]:
    """Describe every live task of the running event loop (asyncio) or run (trio).

    Each `TaskRecord` says what the task waits for and for how long, its
    stack, where it was created, and the `Pool` and job it works for if it
    is a pool worker.  Creation sites and waiting times of tasks that
    workpool did not start are known only while `track_tasks` is installed.
    With ``threads=True`` every thread of the process follows the tasks.

    The dump is a snapshot taken without yielding to the event loop: it is
    sync, never blocks and cannot be cancelled.  Its cost grows with the
    number of tasks and the depth of their stacks (tens of microseconds a task).

    Raises:
        RuntimeError: no asyncio event loop or trio run is running in this thread.
    """
    view = LoopView()
    records = view.records(view.tasks())
    if threads:
        records.extend(thread_records())
    return tuple(records)


def format_tasks(records: Iterable[TaskRecord] | None = None) -> str:
    """Render task records as a goroutine dump reads (`dump_tasks` now, by default).

    Each record is a header line, ``task 17 "fetch-worker-3" [awaiting
    MemoryObjectReceiveStream.receive, 4320 minutes]:``, then the task's own
    stack frames innermost first (library frames are left out, summed up by
    the header, unless there is nothing else), then ``created by f at
    file:line``.  Paths inside the working directory are shown relative to it.

    Raises:
        RuntimeError: `records` was not given and no event loop is running.
    """
    return format_records(dump_tasks() if records is None else records)


def summarize_tasks(records: Iterable[TaskRecord] | None = None) -> tuple[TaskSummary, ...]:
    """Group tasks by (where they were created, what they wait for), largest group first.

    10,000 identical leaked workers make one `TaskSummary` with
    ``count == 10000``, and its ``str()`` reads ``x10000 tasks [awaiting
    ...] created by ... at file:line``.  Summarizes `dump_tasks` now, by default.

    Raises:
        RuntimeError: `records` was not given and no event loop is running.
    """
    return tuple(summarize(dump_tasks() if records is None else records))
