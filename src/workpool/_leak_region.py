"""What a leak check notes on entry, and the hooks that catch errors logged while it runs."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from . import _tracker
from ._dump import LoopView
from ._records import TaskRecord

__all__ = ["Region", "loop_owned"]

# Threads that an event loop keeps for itself and reuses: idle, or (trio's
# guest mode) waiting for I/O on the loop's behalf.  Such a thread is not a
# leak while none of the program's own code is on its stack.
_LOOP_THREAD_PREFIXES = ("Trio thread ", "AnyIO worker thread", "asyncio_")


class Region:
    """One entry into a `LeakCheck`: what existed before, and what was logged since."""

    def __init__(self, view: LoopView | None) -> None:
        self.view = view
        self.tasks_before: set[object] = set(view.tasks()) if view is not None else set()
        self.threads_before = set(threading.enumerate())
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
            name = args.thread.name if args.thread is not None else "?"
            error = "".join(traceback.format_exception_only(args.exc_type, args.exc_value)).strip()
            logged.append(f"unhandled exception in thread {name!r}: {error}")
            base(args)

        hook._workpool_base = base  # type: ignore[attr-defined]
        threading.excepthook = hook

        def undo() -> None:
            if threading.excepthook is hook:
                threading.excepthook = previous

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
            logged.append(message)
            if base is not None:
                base(loop, context)
            else:
                loop.default_exception_handler(context)

        handler._workpool_base = base  # type: ignore[attr-defined]
        loop.set_exception_handler(handler)

        def undo() -> None:
            if loop.get_exception_handler() is handler:
                loop.set_exception_handler(previous)

        self._undo.append(undo)

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def loop_owned(record: TaskRecord) -> bool:
    """Whether a thread is one an event loop keeps for reuse, busy with nothing of the program's."""
    return record.name.startswith(_LOOP_THREAD_PREFIXES) and all(frame.library for frame in record.stack)
