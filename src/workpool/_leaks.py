"""`no_leaks`: fail when a block of code leaves a task or a thread behind (a Python goleak)."""

from __future__ import annotations

import functools
import gc
import inspect
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from fnmatch import fnmatchcase
from types import CodeType, TracebackType
from typing import Any, TypeVar, final, overload

import anyio
import anyio.lowlevel
from typing_extensions import ParamSpec

from ._dump import LoopView, thread_records
from ._frames import qualname
from ._leak_region import Region, leaked_threads
from ._records import StackFrame, TaskRecord, format_records
from ._validate import check_str

__all__ = ["FunctionSpec", "LeakCheck", "LeakError", "no_leaks"]

P = ParamSpec("P")
T = TypeVar("T")

FunctionSpec = str | Callable[..., object]
"""A function to match: the function itself, or its name as a dump shows it.

A name is the qualified name (``Class.method``) or, for what a task is blocked
on, the label of `TaskRecord.blocked_on` (``anyio.sleep``).
"""

_FIRST_DELAY = 0.001
# Turns of the event loop given before anything counts as leaked, even with
# timeout=0: trio runs a batch of tasks in random order, so a task spawned on
# the region's last line is sure to have taken its first step only after the
# checker has passed through two batches.
_TURNS = 2
_MAX_DELAY = 0.1


class LeakError(AssertionError):
    """Tasks or threads outlived a `no_leaks` region, or it logged lost errors.

    The message is the task dump (see `workpool.format_tasks`) of exactly the
    tasks and threads that leaked, followed by the errors that were logged
    instead of raised.
    """

    def __init__(self, message: str, leaks: tuple[TaskRecord, ...], logged: tuple[str, ...]) -> None:
        super().__init__(message)
        self.leaks = leaks
        """The records of the leaked tasks and threads."""
        self.logged = logged
        """The errors logged while the region ran ("Task was destroyed but it is pending!"...)."""


def _new_check() -> LeakCheck:
    new: Any = object.__new__
    check: LeakCheck = new(LeakCheck)
    return check


def _matches(spec: FunctionSpec, frame: StackFrame) -> bool:
    if isinstance(spec, str):
        return frame.function == spec
    code = getattr(inspect.unwrap(spec), "__code__", None)
    if not isinstance(code, CodeType):
        return False
    return code.co_filename == frame.filename and qualname(code) == frame.function


@final
class LeakCheck:
    """A leak check made by `no_leaks`: an async or sync context manager, and a decorator.

    See `no_leaks` for what it checks.  One check may be entered again after
    it exited; decorating a function makes each call a fresh check.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "workpool.testing.LeakCheck has no public constructor; use workpool.testing.no_leaks()"
        )

    _timeout: float
    _names: tuple[str, ...]
    _blocked_in: tuple[FunctionSpec, ...]
    _created_by: tuple[FunctionSpec, ...]
    _label: str
    _region: Region | None

    @classmethod
    def _new(
        cls,
        *,
        timeout: float = 1.0,
        ignore_names: Iterable[str] = (),
        ignore_blocked_in: Iterable[FunctionSpec] = (),
        ignore_created_by: Iterable[FunctionSpec] = (),
        label: str = "no_leaks()",
    ) -> LeakCheck:
        check = _new_check()
        check._timeout = _check_timeout(timeout)
        check._names = _strings(ignore_names, "ignore_names")
        check._blocked_in = _specs(ignore_blocked_in, "ignore_blocked_in")
        check._created_by = _specs(ignore_created_by, "ignore_created_by")
        check._label = label
        check._region = None
        return check

    def _copy(self) -> LeakCheck:
        return LeakCheck._new(
            timeout=self._timeout,
            ignore_names=self._names,
            ignore_blocked_in=self._blocked_in,
            ignore_created_by=self._created_by,
            label=self._label,
        )

    def __repr__(self) -> str:
        return f"<workpool.testing.LeakCheck {self._label} timeout={self._timeout:g}>"

    # -- entering ------------------------------------------------------------

    def _enter(self, view: LoopView | None) -> None:
        if self._region is not None:
            raise RuntimeError(f"{self!r} is already active; create another with no_leaks()")
        self._region = Region(view)

    async def __aenter__(self) -> None:
        """Take the snapshot: the tasks and threads that exist now are not checked."""
        await anyio.lowlevel.checkpoint()
        self._enter(LoopView())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        __tracebackhide__ = True
        region = self._region
        assert region is not None
        self._region = None
        view = region.view
        assert view is not None
        leaks: list[TaskRecord] = []
        try:
            # Shielded, and bounded by the timeout: a region left by a
            # cancellation is checked as well, and its tasks get the time
            # to finish that the cancellation gave them.
            with anyio.CancelScope(shield=True):
                deadline = view.now() + self._timeout
                delay = _FIRST_DELAY
                max_delay = self._max_delay()
                collected = False
                turns = 0
                while True:
                    leaks = self._leaked_tasks(region) + self._leaked_threads(region)
                    if not leaks:
                        break
                    if turns >= _TURNS and not collected:
                        # Still there after the loop has run.  A pending task
                        # that nothing references is not a leak to wait for:
                        # collecting it logs "Task was destroyed but it is
                        # pending!", which the region reports.
                        collected = True
                        gc.collect()
                        continue
                    remaining = deadline - view.now()
                    if turns < _TURNS:
                        # Whatever the timeout: a task started or cancelled on
                        # the region's last line needs the loop to run before
                        # it has started or finished.
                        await anyio.lowlevel.checkpoint()
                    elif remaining <= 0:
                        break
                    else:
                        await anyio.sleep(min(delay, remaining))
                        delay = min(delay * 2, max_delay)
                    turns += 1
                if not collected:
                    gc.collect(1)  # lost errors of short-lived tasks of the region
        finally:
            region.close()
        self._report(leaks, region)

    def __enter__(self) -> None:
        """Take a snapshot of the threads that exist now (a sync check covers threads only)."""
        self._enter(None)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        __tracebackhide__ = True
        region = self._region
        assert region is not None
        self._region = None
        leaks: list[TaskRecord] = []
        try:
            deadline = time.monotonic() + self._timeout
            delay = _FIRST_DELAY
            max_delay = self._max_delay()
            while True:
                leaks = self._leaked_threads(region)
                remaining = deadline - time.monotonic()
                if not leaks or remaining <= 0:
                    break
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, max_delay)
        finally:
            region.close()
        self._report(leaks, region)

    # -- decorating ----------------------------------------------------------

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Run each call of `fn` in a fresh check: async functions fully, sync ones for threads."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def check_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self._copy():
                    return await fn(*args, **kwargs)

            return check_async

        @functools.wraps(fn)
        def check_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self._copy():
                return fn(*args, **kwargs)

        return check_sync

    # -- checking ------------------------------------------------------------

    def _max_delay(self) -> float:
        # A tenth of a second between checks, as goleak; a long timeout
        # (hours of virtual time under MockClock) checks ~20 times, not millions.
        return max(_MAX_DELAY, self._timeout / 20)

    def _leaked_tasks(self, region: Region) -> list[TaskRecord]:
        view = region.view
        if view is None:
            return []
        current = view.current_task()
        new = [t for t in view.tasks() if t not in region.tasks_before and t is not current]
        return [r for r in view.records(new) if not self._ignored(r)] if new else []

    def _leaked_threads(self, region: Region) -> list[TaskRecord]:
        threads = leaked_threads(region)
        if not threads:
            return []
        return [r for r in thread_records(threads) if not self._ignored(r)]

    def _ignored(self, record: TaskRecord) -> bool:
        if any(fnmatchcase(record.name, pattern) for pattern in self._names):
            return True
        if self._blocked_in and not record.running:
            if record.blocked_on and record.blocked_on in self._blocked_in:
                return True
            # The frames it is blocked in: from the innermost up to its own code.
            for frame in record.stack:
                if any(_matches(spec, frame) for spec in self._blocked_in):
                    return True
                if not frame.library:
                    break
        site = record.created_by
        return site is not None and any(_matches(spec, site) for spec in self._created_by)

    def _report(self, leaks: list[TaskRecord], region: Region) -> None:
        __tracebackhide__ = True  # pytest shows the LeakError, not this code
        if not leaks and not region.logged:
            return
        parts: list[str] = []
        if leaks:
            tasks = sum(r.kind == "task" for r in leaks)
            threads = len(leaks) - tasks
            counted = " and ".join(
                f"{n} {kind}{'s' if n > 1 else ''}" for n, kind in ((tasks, "task"), (threads, "thread")) if n
            )
            parts.append(
                f"{self._label}: {counted} leaked (still alive {self._timeout:g} s after the region ended):"
                f"\n\n{format_records(leaks)}"
            )
        if region.logged:
            lines = "\n".join(f"  {message}" for message in region.logged)
            parts.append(
                f"{self._label}: errors were logged instead of raised while the region ran:\n{lines}"
            )
        raise LeakError("\n\n".join(parts), tuple(leaks), tuple(region.logged))


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(value).__name__} {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _strings(values: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be an iterable of patterns, not a single string")
    return tuple(check_str(value, f"each of {what}") for value in values)


def _specs(values: Iterable[FunctionSpec], what: str) -> tuple[FunctionSpec, ...]:
    if isinstance(values, str) or callable(values):
        raise TypeError(f"{what} must be an iterable of functions or names, not a single one")
    found = tuple(values)
    for value in found:
        if not isinstance(value, str) and not callable(value):
            raise TypeError(f"{what} must hold functions or their names, got {type(value).__name__}")
    return found


def no_leaks(
    *,
    timeout: float = 1.0,
    ignore_names: Iterable[str] = (),
    ignore_blocked_in: Iterable[FunctionSpec] = (),
    ignore_created_by: Iterable[FunctionSpec] = (),
) -> LeakCheck:
    """Check that the code in a block leaves no task and no thread behind, as Go's goleak does.

    ``async with no_leaks():`` notes the tasks of the running event loop (or
    trio run) and the threads that exist on entry; on exit, every task and
    thread created inside the block must be gone.  What existed before is
    never checked.  A task or thread still alive on exit is waited for, with
    a growing backoff on the event loop's clock (virtual under trio's
    ``MockClock``), for up to `timeout` seconds: one that ends a little late
    passes, one blocked for good fails.  Threads that an event loop keeps
    for reuse (anyio's and trio's worker threads, asyncio's default
    executor), while idle in their cache, are not leaks; one that runs a
    call is, even a call of library code only, and even if the cache had
    the thread, idle, before the block.

    It also fails when the event loop logged an error instead of raising it
    while the block ran ("Task was destroyed but it is pending!", "Task
    exception was never retrieved", a failing callback; asyncio only) or a
    thread died with an unhandled exception.  The errors are still passed on
    to the handlers that were there before.

    ``with no_leaks():`` (sync) checks threads only, on the real clock: use
    it around code that runs its own event loop.  ``@no_leaks()`` on an
    async function checks each call like ``async with``; on a sync
    function, like ``with``.  While an async check runs, `track_tasks` is
    installed, so the dump of a leaked task says where it was created.

    Args:
        timeout: seconds to wait on exit for tasks and threads to finish.
        ignore_names: glob patterns (``"poller-*"``); tasks and threads whose
            name matches one are not checked.
        ignore_blocked_in: functions (or their names as a dump shows them,
            ``Class.method`` or ``anyio.sleep``); a task or thread blocked in
            one is not checked: in the library call it waits on, or in any
            frame from there up to its own innermost function.
        ignore_created_by: functions (or their names); a task created by
            code in one of them is not checked.

    Cancellation: leaving the block waits up to `timeout` seconds, shielded
    from cancellation, and the body's own exception, cancellation included,
    propagates unless a leak is found.

    Raises:
        LeakError: on exit, when something leaked or an error was logged;
            the body's exception, if any, is its ``__context__``.
        RuntimeError: on entry, when ``async with`` runs outside an event
            loop, or the check is already active.
        ValueError: `timeout` is negative or not finite.
        TypeError: `timeout` is not a number, or an ignore option is not an
            iterable of the right things.
    """
    return LeakCheck._new(
        timeout=timeout,
        ignore_names=ignore_names,
        ignore_blocked_in=ignore_blocked_in,
        ignore_created_by=ignore_created_by,
    )
