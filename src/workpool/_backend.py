"""The few event-loop primitives the pool's hot path needs, resolved once per pool.

anyio's public helpers look the running backend up on every call, which on
asyncio costs about as much as a whole job, so the pool resolves them once
when it opens.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from ._waiters import AsyncioWaiters, TrioWaiters, Waiters

__all__ = ["Backend", "current_backend"]


@attrs.frozen
class Backend:
    name: str
    cancelled_exc: type[BaseException]
    #: Raise the backend's cancellation if the calling task is cancelled; no
    #: schedule point when it is not.
    checkpoint_if_cancelled: Callable[[], Awaitable[None]]
    #: A full checkpoint (anyio.lowlevel.checkpoint without the backend lookup).
    checkpoint: Callable[[], Awaitable[None]]
    #: Whether the calling task has a cancellation waiting to be raised.  Sync,
    #: so the hot path pays for a coroutine only when it must raise.
    cancel_pending: Callable[[], bool]
    #: Makes an empty queue of parked tasks; call it inside the event loop.
    waiters: Callable[[], Waiters]
    #: The event loop's clock, in seconds (what anyio.current_time() returns;
    #: virtual under trio's MockClock).
    clock: Callable[[], float]
    #: The running task object (asyncio.Task or trio.lowlevel.Task).
    current_task: Callable[[], object]


def _asyncio_cancel_pending() -> Callable[[], bool] | None:
    """anyio's cancellation check without the backend lookup, with the task's state cached.

    anyio keeps each task's cancel scope in a private WeakKeyDictionary; its
    own ``checkpoint_if_cancelled`` walks the same chain of scopes.  Returns
    None if anyio's internals are not what this expects, and the pool then
    calls the public (slower) helper on every submit.
    """
    states = _anyio_task_states()
    if states is None:
        return None  # pragma: no cover - depends on anyio internals

    current_task = _fast_current_task(asyncio.get_running_loop())
    # A weak reference to the last task seen, and its anyio state: a producer
    # submits many jobs in a row, and the dictionary lookup costs more than
    # the walk.  Both start as stand-ins for "no task, no scope".
    cached_ref: Callable[[], object] = _no_task
    cached_state: Any = _NO_STATE

    def cancel_pending() -> bool:
        nonlocal cached_ref, cached_state
        task = current_task()
        if cached_ref() is not task:
            if task is None:
                return False
            state = states.get(task)
            if state is None:
                # anyio makes a task's state when it first enters a scope:
                # remembering "none" would hide that scope's cancellation.
                return False
            cached_ref, cached_state = weakref.ref(task), state
        scope = cached_state.cancel_scope
        while scope is not None:
            if scope._cancel_called:
                return True
            if scope._shield:
                return False
            scope = scope._parent_scope
        return False

    return cancel_pending


@functools.cache
def _anyio_task_states() -> Any:
    """anyio's private map of asyncio tasks to their cancel scopes, or None if it is not as expected.

    Looked up once per process: the imports and the checks cost about 2 µs,
    a tenth of opening and closing an empty pool, and anyio's internals do
    not change while it runs.
    """
    try:
        import anyio._backends._asyncio as asyncio_backend
        from anyio._backends._asyncio import CancelScope, TaskState

        states: Any = getattr(asyncio_backend, "_task_states")  # noqa: B009 - private to anyio
    except (ImportError, AttributeError):  # pragma: no cover - depends on anyio internals
        return None
    if not {"_cancel_called", "_shield", "_parent_scope"} <= set(CancelScope.__slots__) or (
        "cancel_scope" not in TaskState.__slots__
    ):
        return None  # pragma: no cover - depends on anyio internals
    return states


def _no_task() -> None:
    return None


class _NoState:
    """Stands in for anyio's state of a task that is in no cancel scope."""

    cancel_scope = None


_NO_STATE = _NoState()


def _fast_current_task(loop: asyncio.AbstractEventLoop) -> Callable[[], object]:
    """`asyncio.current_task` for `loop`, minus its Python overhead where there is some.

    On Python 3.11 it is a Python function that looks the running loop up
    and then reads a private dictionary, about a tenth of a no-op job; from
    3.12 on it is written in C and used as it is.
    """
    if sys.version_info < (3, 12):
        tasks: Any = getattr(asyncio.tasks, "_current_tasks", None)
        get: Any = getattr(tasks, "get", None)
        if type(tasks) is dict and get is not None:
            current: Callable[[], object] = functools.partial(get, loop)
            return current
    return asyncio.current_task


def _asyncio_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    # BaseEventLoop.time() is a Python method around time.monotonic(); a loop
    # that keeps its own time (uvloop, a test loop, a virtual clock patched
    # onto the instance as aiotools does) is asked.  The idle timer's handle
    # runs on loop.time(): a different clock here made it fire again and
    # again until real time caught up with the loop's.
    if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def _trio_clock() -> Callable[[], float]:
    import trio

    clock: Any = trio.lowlevel.current_clock()
    offset = getattr(clock, "offset", None)
    if type(clock).__name__ == "SystemClock" and isinstance(offset, float):
        # trio.current_time() goes through the run context and the clock
        # object; the system clock is a fixed offset from perf_counter.
        return _offset_clock(offset)
    return trio.current_time


def _offset_clock(offset: float) -> Callable[[], float]:
    perf_counter = time.perf_counter

    def clock() -> float:
        return offset + perf_counter()

    return clock


class _Sleep0:
    """``await _SLEEP0`` is asyncio.sleep(0), which is what anyio's asyncio backend checkpoints with.

    A bare yield is how sleep(0) gives the event loop a turn; awaiting it
    directly skips the coroutine sleep(0) makes, 8% of an ``await job``
    on a finished job.  No state: any number of tasks may await it.
    """

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


_SLEEP0 = _Sleep0()


def _asyncio_checkpoint() -> Awaitable[None]:
    return _SLEEP0


def _always() -> bool:
    return True


def _trio_cancel_pending() -> Callable[[], bool]:
    import trio

    current_task = trio.lowlevel.current_task
    try:
        current_task()._cancel_status.effectively_cancelled  # noqa: B018 - probing trio internals
    except AttributeError:  # pragma: no cover - depends on trio internals
        return _always

    def cancel_pending() -> bool:
        task: Any = current_task()
        return bool(task._cancel_status.effectively_cancelled)

    return cancel_pending


def current_backend() -> Backend:
    """Describe the backend of the running event loop.

    Raises:
        RuntimeError: not called from inside an anyio-supported event loop.
    """
    exc = anyio.get_cancelled_exc_class()
    if exc is asyncio.CancelledError:
        loop = asyncio.get_running_loop()
        pending = _asyncio_cancel_pending() or _always
        return Backend(
            "asyncio",
            exc,
            anyio.lowlevel.checkpoint_if_cancelled,
            _asyncio_checkpoint,
            pending,
            AsyncioWaiters,
            _asyncio_clock(loop),
            _fast_current_task(loop),
        )
    import trio  # the only other backend anyio supports

    return Backend(
        "trio",
        exc,
        trio.lowlevel.checkpoint_if_cancelled,
        trio.lowlevel.checkpoint,
        _trio_cancel_pending(),
        TrioWaiters,
        _trio_clock(),
        trio.lowlevel.current_task,
    )
