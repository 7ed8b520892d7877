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
from ._hooks import end, ended, stack

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
            if not ended(hook):
                name = args.thread.name if args.thread is not None else "?"
                error = "".join(traceback.format_exception_only(args.exc_type, args.exc_value)).strip()
                logged.append(f"unhandled exception in thread {name!r}: {error}")
            base(args)

        hook._workpool_base = base  # type: ignore[attr-defined]
        threading.excepthook = stack(hook, previous)

        def undo() -> None:
            top = end(hook, threading.excepthook)
            if top is not None:
                threading.excepthook = top  # type: ignore[assignment]

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
            if not ended(handler):
                logged.append(message)
            if base is not None:
                base(loop, context)
            else:
                loop.default_exception_handler(context)

        handler._workpool_base = base  # type: ignore[attr-defined]
        loop.set_exception_handler(stack(handler, previous))

        def undo() -> None:
            top = end(handler, loop.get_exception_handler())
            if top is not None:
                loop.set_exception_handler(top)

        self._undo.append(undo)

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


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
