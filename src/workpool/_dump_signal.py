"""`dump_on_signal`: write the task dump to stderr when the process gets a signal, as Go does on SIGQUIT."""

from __future__ import annotations

import signal
import socket
import sys
import time
import weakref
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType, TracebackType
from typing import Any, ClassVar, TextIO

from ._dump import LoopView, thread_records
from ._hooks import end, stack
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

        # A function rather than the bound method: it records what it
        # replaced, so that dumps may be closed in any order (_hooks.py).
        def hook(signum: int, frame: FrameType | None) -> None:
            self._handle(signum, frame)

        self._hook = hook
        previous = signal.signal(signum, hook)
        stack(hook, previous)
        try:
            self._wakeup = _LoopWakeup.install(self._view.key) if self._view.kind == "asyncio" else None
        except BaseException:
            signal.signal(signum, previous)  # the caller gets nothing to close
            raise

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
        top = end(self._hook, signal.getsignal(self._signum))
        if top is not None:
            signal.signal(self._signum, top)  # type: ignore[arg-type]
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
    fd (`signal.set_wakeup_fd`), if there is one: asyncio sets its self-pipe
    once ``loop.add_signal_handler`` was used, uvloop and Windows' proactor
    always keep one of their own, trio too; a plain selector loop has none.
    For that loop, this sets one: a socket the loop reads.
    """

    # One socket pair for the whole process, never closed.  The wakeup fd can
    # outlive the dump that set it (a dump left installed when its loop
    # closes, or collected without close(), or a library that saved the fd
    # and puts it back later), and a closed fd's number soon belongs to
    # another file, which the C handler would then write into.
    _pair: ClassVar[tuple[socket.socket, socket.socket] | None] = None
    # Dumps installed per loop: nested ones share the loop's reader.
    _users: ClassVar[weakref.WeakKeyDictionary[Any, int]] = weakref.WeakKeyDictionary()

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._closed = False

    @classmethod
    def install(cls, loop: Any) -> _LoopWakeup | None:
        if sys.platform == "win32" or not isinstance(loop, BaseSelectorEventLoop):
            return None  # the proactor and uvloop keep a wakeup fd of their own
        if not cls._users.get(loop):
            if getattr(loop, "_signal_handlers", None):
                return None  # asyncio's self-pipe is the wakeup fd: it wakes the loop
            reader, writer = cls._socket_pair()
            with _signals_held():
                previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
                if previous not in (-1, writer.fileno()):
                    # Someone else's: it stays.  Its warn_on_full_buffer cannot
                    # be read back; False, because the owners that set one
                    # (uvloop, trio) do, and a lost warning about a full
                    # buffer is better than one printed on every signal.
                    signal.set_wakeup_fd(previous, warn_on_full_buffer=False)
                    return None
            loop.add_reader(reader.fileno(), cls._drain)
        cls._users[loop] = cls._users.get(loop, 0) + 1
        return cls(loop)

    @classmethod
    def _socket_pair(cls) -> tuple[socket.socket, socket.socket]:
        if cls._pair is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            # A full buffer only means the loop has not read the last bytes
            # yet: it is awake anyway (hence warn_on_full_buffer=False).
            writer.setblocking(False)
            cls._pair = reader, writer
        return cls._pair

    @classmethod
    def _drain(cls) -> None:
        assert cls._pair is not None
        try:
            while cls._pair[0].recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        users = self._users.get(loop, 0) - 1
        if users > 0:
            self._users[loop] = users
            return
        self._users.pop(loop, None)
        assert self._pair is not None
        reader, writer = self._pair
        loop.remove_reader(reader.fileno())  # does nothing once the loop is closed
        if getattr(loop, "_signal_handlers", None):
            return  # add_signal_handler has put asyncio's self-pipe in our place
        with _signals_held():
            current = signal.set_wakeup_fd(-1)
            if current not in (-1, writer.fileno()):
                signal.set_wakeup_fd(current, warn_on_full_buffer=False)  # someone else's since (see install)


@contextmanager
def _signals_held() -> Generator[None, None, None]:
    """Hold back signals while the wakeup fd is swapped (POSIX only).

    One that arrives meanwhile is delivered once the right fd is in place,
    instead of being written to neither: asyncio's ``add_signal_handler``
    learns of a signal only through the bytes on its wakeup fd.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


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
    sleep wakes it; leaving the block removes it.  If asyncio's own signal
    handling (``loop.add_signal_handler``, which anyio's
    ``open_signal_receiver`` and `shutdown_on_signals` use) was in place when
    it was installed, it relies on asyncio's wakeup fd instead, and asyncio
    removes that when its last handler goes: a dump may then wait for the
    loop's next timer or I/O.  Install it before, or after, such blocks.

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
