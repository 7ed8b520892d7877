"""`dump_on_signal`: write the task dump to stderr when the process gets a signal, as Go does on SIGQUIT."""

from __future__ import annotations

import signal
import socket
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
        self._wakeup = _LoopWakeup.install(self._view.key) if self._view.kind == "asyncio" else None

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
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _LoopWakeup:
    """Makes a signal wake an asyncio loop that is about to sleep, so that its Python handler runs.

    Python runs a handler installed with ``signal.signal`` at the main
    thread's next bytecode.  A signal that lands while the loop sleeps in the
    selector interrupts that call, but one that lands just before it (after
    the last bytecode) waits for the loop's next timer or I/O, which may be
    minutes away.  The C handler also writes the signal number to the wakeup
    fd (`signal.set_wakeup_fd`), if there is one: trio sets one, and so does
    asyncio once ``loop.add_signal_handler`` was used, but not otherwise.  So
    when none is set, this sets one of its own, a socket the loop watches.

    The socket pair lives as long as this object, not as long as the loop: a
    wakeup fd that outlived its loop would be a closed file descriptor that
    the C handler writes into, whatever file later gets its number.
    """

    def __init__(self, loop: Any, reader: socket.socket, writer: socket.socket) -> None:
        self._loop = loop
        self._reader = reader
        self._writer = writer

    @classmethod
    def install(cls, loop: Any) -> _LoopWakeup | None:
        previous = signal.set_wakeup_fd(-1)
        if previous != -1:
            # Someone else's (asyncio's own, for add_signal_handler): it
            # already wakes the loop, and is theirs to remove.
            signal.set_wakeup_fd(previous)
            return None
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self = cls(loop, reader, writer)
        try:
            loop.add_reader(reader.fileno(), self._drain)
        except NotImplementedError:  # a loop without add_reader (Windows' proactor)
            reader.close()
            writer.close()
            return None
        # A full buffer only means the loop has not read the last bytes yet:
        # it is awake anyway, so no warning.
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        return self

    def _drain(self) -> None:
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        current = signal.set_wakeup_fd(-1)
        if current != self._writer.fileno():
            signal.set_wakeup_fd(current)  # replaced since: not ours to remove
        # Does nothing once the loop is closed.
        self._loop.remove_reader(self._reader.fileno())
        self._reader.close()
        self._writer.close()


def dump_on_signal(
    signum: int, *, file: TextIO | None = None, threads: bool = True
) -> AbstractContextManager[None]:
    """Write a task dump to stderr whenever the process receives `signum`, as a Go program does on SIGQUIT.

    Installs a handler at once, for the event loop (or trio run) that is
    running now: ``kill -USR1 <pid>`` then writes a summary grouped by
    creation site and state (see `summarize_tasks`), followed by the dump of
    every task (see `format_tasks`) and, with ``threads=True``, every thread.
    The dump is taken in the signal handler itself, in the main thread,
    so it shows where a loop stuck in blocking code is stuck.  On asyncio,
    unless a wakeup fd is set already (`signal.set_wakeup_fd`), it sets one
    that the loop watches, so that a signal arriving as the loop goes to
    sleep wakes it; leaving the block removes it.

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
