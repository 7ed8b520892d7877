"""The worker threads an event loop keeps for reuse, and whether one is idle or running a call.

anyio (on asyncio) and trio keep their `to_thread` worker threads cached, and
asyncio its default executor's: an idle one is the loop's, not a leak.  A busy
one runs a call that someone started, maybe one that was abandoned
(``abandon_on_cancel=True``), and that call is a leak like any thread, even
when every frame of it is library code (``threading.Event.wait``).  So a
cached thread counts as idle only when its cache has it on its idle list, or
while its stack is at the cache's own idle wait:

* anyio's asyncio ``WorkerThread``: in its pool's ``idle_workers``, or in
  ``Queue.get`` on its own ``queue``;
* trio's thread cache: in ``ThreadCache._idle_workers``, or in
  ``WorkerThread._work`` itself (blocked acquiring its ``_worker_lock``), or
  running trio's own guest-mode I/O wait (``get_events``);
* asyncio's default executor (``asyncio_N`` threads): in
  ``concurrent.futures.thread._worker`` itself (blocked in ``SimpleQueue.get``).

The idle lists are what the caches themselves go by, so they are right even
while a thread finishes a call's bookkeeping.  Should a new version of one of
them keep its threads otherwise, that cache falls back to the older, looser
rule (idle while every frame on its stack is library code), so that idle
threads are never reported.
"""

from __future__ import annotations

import queue
import sys
import threading
from types import CodeType, FrameType
from typing import Any

from ._frames import is_library

__all__ = ["cache_thread_state", "idle_cached_threads"]


def _code(module_name: str, *path: str) -> CodeType | None:
    obj: Any = sys.modules.get(module_name)
    for name in path:
        obj = getattr(obj, name, None)
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, CodeType) else None


_QUEUE_GET = _code("queue", "Queue", "get")


def _stack(frame: FrameType | None) -> list[FrameType]:
    """Innermost first."""
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def _all_library(frames: list[FrameType]) -> bool:
    return all(is_library(frame.f_code.co_filename) for frame in frames)


def _in(item: object, collection: Any) -> bool | None:
    """`item in collection` for a collection another thread may be changing; None if unknown."""
    try:
        return item in collection
    except (TypeError, RuntimeError):  # not a collection; changed while iterated
        return None


def _anyio_asyncio(thread: threading.Thread, frames: list[FrameType]) -> bool | None:
    module: Any = sys.modules.get("anyio._backends._asyncio")
    worker_class = getattr(module, "WorkerThread", None)
    if not isinstance(worker_class, type) or not isinstance(thread, worker_class):
        return None
    own_queue = getattr(thread, "queue", None)
    listed = _in(thread, getattr(thread, "idle_workers", None))
    if _QUEUE_GET is None or not isinstance(own_queue, queue.Queue) or listed is None:
        return _all_library(frames)  # a version that keeps its threads otherwise
    return listed or any(f.f_code is _QUEUE_GET and f.f_locals.get("self") is own_queue for f in frames)


def _trio(frames: list[FrameType]) -> bool | None:
    work = _code("trio._core._thread_cache", "WorkerThread", "_work")
    if work is None:
        return None
    for frame in frames:
        if frame.f_code is work:
            worker = frame.f_locals.get("self")
            break
    else:
        return None
    if frames[0].f_code is work:
        return True  # blocked in its lock's acquire(), a C call: no frame below
    listed = _in(worker, getattr(getattr(worker, "_thread_cache", None), "_idle_workers", None))
    if listed is None:
        return _all_library(frames)  # a version that keeps its threads otherwise
    run_module: Any = sys.modules.get("trio._core._run")
    run_file = getattr(run_module, "__file__", None)
    # Guest mode: the loop waits for I/O in a cached thread.
    guest_io = any(f.f_code.co_name == "get_events" and f.f_code.co_filename == run_file for f in frames)
    return listed or guest_io


def _default_executor(thread: threading.Thread, frames: list[FrameType]) -> bool | None:
    if not thread.name.startswith("asyncio_"):
        return None
    worker = _code("concurrent.futures.thread", "_worker")
    if worker is None or not any(frame.f_code is worker for frame in frames):
        return _all_library(frames)  # a version that waits elsewhere
    return frames[0].f_code is worker  # blocked in SimpleQueue.get(), a C call


def cache_thread_state(thread: threading.Thread, frame: FrameType | None) -> bool | None:
    """For a thread an event loop keeps for reuse: whether it is idle; None for any other thread.

    `frame` is the thread's innermost frame (from `sys._current_frames`).
    """
    frames = _stack(frame)
    if not frames:
        return None
    state = _anyio_asyncio(thread, frames)
    if state is None:
        state = _trio(frames)
    if state is None:
        state = _default_executor(thread, frames)
    if state is None and thread.name.startswith("Trio thread "):
        return _all_library(frames)  # a trio whose cache waits elsewhere
    return state


def idle_cached_threads(threads: set[threading.Thread], loop: object | None) -> set[threading.Thread]:
    """Those of `threads` that idle in a cache, leaving out anyio's threads of a loop other than `loop`.

    A thread of another loop may take up that loop's work at any time; one
    of `loop` works only for the code that runs there.  trio's cache is
    shared by every trio run of the process, so one of its threads that
    another run takes up is counted too (a known false report, in
    docs/leaks.md).
    """
    frames = sys._current_frames()
    idle: set[threading.Thread] = set()
    for thread in threads:
        if cache_thread_state(thread, frames.get(thread.ident or -1)) is not True:
            continue
        thread_loop = getattr(thread, "loop", None)
        if loop is not None and thread_loop is not None and thread_loop is not loop:
            continue
        idle.add(thread)
    return idle
