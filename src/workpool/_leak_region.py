"""What a leak check notes on entry, and the hooks that catch errors logged while it runs."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from . import _tracker
from ._cache_threads import cache_thread_state, idle_cached_threads
from ._dump import LoopView

__all__ = ["Region", "leaked_threads"]


class Region:
    """One entry into a `LeakCheck`: what existed before, and what was logged since."""

    def __init__(self, view: LoopView | None) -> None:
        self.view = view
        self.tasks_before: set[object] = set(view.tasks()) if view is not None else set()
        self.threads_before = set(threading.enumerate())
        # Cached worker threads idle now: one busy when the region ends runs
        # a call started inside it, and is checked like a new thread.
        self.idle_cached_before = idle_cached_threads(
            self.threads_before, view.key if view is not None and view.kind == "asyncio" else None
        )
        self.logged: list[str] = []
        self._undo: list[Callable[[], None]] = []
        self._hook_threads()
        if view is not None:
            _tracker.acquire()
            self._undo.append(_tracker.release)
            if view.kind == "asyncio":
                self._hook_asyncio(view.key)

    def _hook_threads(self) -> None:
        previous = threading.excepthook
        logged = self.logged

        # An enclosing region's hook is skipped: the error is reported once,
        # by the innermost region, and then handed to the hook from before.
        base = getattr(previous, "_workpool_base", previous)

        def hook(args: threading.ExceptHookArgs) -> None:
            if not done:
                name = args.thread.name if args.thread is not None else "?"
                error = "".join(traceback.format_exception_only(args.exc_type, args.exc_value)).strip()
                logged.append(f"unhandled exception in thread {name!r}: {error}")
            base(args)

        done: list[bool] = []
        _link(hook, base, previous, done)
        threading.excepthook = hook

        def undo() -> None:
            done.append(True)
            current = threading.excepthook
            top = _unwound(current)
            if top is not current:
                threading.excepthook = top

        self._undo.append(undo)

    def _hook_asyncio(self, loop: Any) -> None:
        previous = loop.get_exception_handler()
        base = getattr(previous, "_workpool_base", previous)  # as for threads above
        logged = self.logged

        def handler(loop: Any, context: dict[str, Any]) -> None:
            # Every call is an error the event loop could only log: a task
            # destroyed while pending, an exception nobody retrieved, a
            # failing callback.
            message = str(context.get("message", "error logged by the event loop"))
            exc = context.get("exception")
            if exc is not None:
                message += f": {type(exc).__name__}: {exc}"
            task = context.get("task") or context.get("future")
            if task is not None:
                message += f" ({task!r})"
            if not done:
                logged.append(message)
            if base is not None:
                base(loop, context)
            else:
                loop.default_exception_handler(context)

        done: list[bool] = []
        _link(handler, base, previous, done)
        loop.set_exception_handler(handler)

        def undo() -> None:
            done.append(True)
            current = loop.get_exception_handler()
            top = _unwound(current)
            if top is not current:
                loop.set_exception_handler(top)

        self._undo.append(undo)

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def _link(hook: Any, base: object, previous: object, done: list[bool]) -> None:
    hook._workpool_base = base
    hook._workpool_previous = previous
    hook._workpool_done = done  # empty while its region runs


def _unwound(hook: Any) -> Any:
    """`hook`, or, if its region has ended, the first hook below it whose region has not.

    Regions may end in any order (two checks that overlap without nesting):
    a region that ends under another's hook leaves its own in place, and the
    last one to end takes every ended hook off
    (test_overlapping_leak_checks_put_the_hooks_back).
    """
    while getattr(hook, "_workpool_done", None):
        hook = hook._workpool_previous
    return hook


def leaked_threads(region: Region) -> list[threading.Thread]:
    """The live threads the region left behind: new ones, and cached ones it set to work.

    A thread that an event loop keeps for reuse is not a leak while it idles
    in its cache (see `cache_thread_state`).
    """
    frames = sys._current_frames()
    before = region.threads_before
    idle_before = region.idle_cached_before
    return [
        thread
        for thread in threading.enumerate()
        if (thread not in before or thread in idle_before)
        and thread.is_alive()
        and cache_thread_state(thread, frames.get(thread.ident or -1)) is not True
    ]
