"""`dump_on_signal`: write the task dump to stderr when the process gets a signal, as Go does on SIGQUIT."""

from __future__ import annotations

import signal
import sys
import time
from contextlib import AbstractContextManager
from types import FrameType, TracebackType
from typing import Any, TextIO

from ._dump import LoopView, thread_records
from ._records import TaskRecord, format_records, summarize

__all__ = ["dump_on_signal"]


class _SignalDump(AbstractContextManager[None]):
    """The installed handler; leaving the ``with`` block (or `close`) puts the previous one back."""

    def __init__(self, signum: int, file: TextIO | None, threads: bool) -> None:
        self._signum = signum
        self._file = file
        self._threads = threads
        # Read in the handler, which may run at any bytecode boundary of the
        # main thread, inside or outside the event loop's own code: the view
        # needs no running loop once made.
        self._view = LoopView()
        self._previous: Any = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        out = self._file if self._file is not None else sys.stderr
        try:
            records: list[TaskRecord] = self._view.records(self._view.tasks())
            if self._threads:
                records.extend(thread_records())
            summary = "\n".join(f"  {line}" for line in summarize(records))
            text = (
                f"workpool: task dump on {signal.Signals(signum).name} at {time.strftime('%H:%M:%S')}, "
                f"{len(records)} tasks and threads; by creation site and state:\n{summary}\n\n"
                f"{format_records(records)}\n"
            )
        except Exception as exc:  # pragma: no cover - a dump must never kill the process
            text = f"workpool: the task dump on signal {signum} failed: {exc!r}\n"
        out.write(text)
        out.flush()

    def close(self) -> None:
        """Restore the handler that was there before (if ours is still installed)."""
        if signal.getsignal(self._signum) == self._handle:
            signal.signal(self._signum, self._previous)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def dump_on_signal(
    signum: int, *, file: TextIO | None = None, threads: bool = True
) -> AbstractContextManager[None]:
    """Write a task dump to stderr whenever the process receives `signum`, as a Go program does on SIGQUIT.

    Installs a handler at once, for the event loop (or trio run) that is
    running now: ``kill -USR1 <pid>`` then writes a summary grouped by
    creation site and state (see `summarize_tasks`), followed by the dump of
    every task (see `format_tasks`) and, with ``threads=True``, every thread.
    The dump is taken in the signal handler itself, in the main thread,
    so it shows where a loop stuck in blocking code is stuck.

    Keep it installed for the life of the process, or use the returned
    context manager: leaving its ``with`` block restores the previous handler.
    Never blocks, and is not a cancellation point.

    Args:
        signum: the signal, such as ``signal.SIGUSR1`` (SIGQUIT's default
            core dump is Python's too, so a free signal is the better choice).
        file: where to write instead of ``sys.stderr``.
        threads: whether to dump the threads too.

    Raises:
        RuntimeError: no asyncio event loop or trio run is running in this thread.
        ValueError: not called from the main thread, or `signum` is not a
            signal that can be handled.
    """
    return _SignalDump(signum, file, threads)
