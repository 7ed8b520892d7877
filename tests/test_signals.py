"""`shutdown_on_signals` in real processes: the first signal drains, the second cancels.

Each test runs tests/signal_child.py with ``sys.executable`` on one backend and
follows it through its stdout lines ("ready", "draining", "exit ...",
"threads N"): a signal is sent only once the child has said it is ready,
and every read has a deadline, so nothing here sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("signal_child.py")
N_JOBS = 8
TIMEOUT = 15.0  # seconds for any one step; a healthy child needs well under one

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.parametrize("backend", ["asyncio", "trio"]),
]


class Child:
    """A running signal_child.py, read line by line with a deadline."""

    def __init__(self, mode: str, backend: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), mode, backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=CHILD.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""
        self.lines: list[str] = []

    def readline(self, deadline: float) -> str | None:
        """The next line, or None at end of output; fails the test at the deadline."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                self.kill()
                pytest.fail(
                    f"the child said nothing more in time; so far: {self.lines}, stderr: {self.stderr()}"
                )
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return text

    def expect(self, word: str, timeout: float = TIMEOUT) -> str:
        """Read lines until one starts with `word`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(deadline)
            if line is None:
                rc = self.proc.wait(timeout)
                pytest.fail(f"the child exited ({rc}) before saying {word!r}: {self.lines}, {self.stderr()}")
            if line.split(" ", 1)[0] == word:
                return line

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Read everything that is left and wait for the exit; return the exit code."""
        deadline = time.monotonic() + timeout
        while self.readline(deadline) is not None:
            pass
        return self.proc.wait(max(deadline - time.monotonic(), 0.1))

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._selector.close()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


StartChild = Callable[[str, str], Child]


@pytest.fixture
def child_factory() -> Iterator[StartChild]:
    children: list[Child] = []

    def start(mode: str, backend: str) -> Child:
        child = Child(mode, backend)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


def summary(line: str) -> dict[str, Any]:
    """The report on the child's "exit" line."""
    assert line.startswith("exit ")
    report: dict[str, Any] = json.loads(line[len("exit ") :])
    return report


def assert_nothing_left_behind(child: Child, exit_line: str) -> None:
    report = summary(exit_line)
    assert report["tasks_after"] == report["tasks_before"], "a task outlived the pool"
    threads = [line for line in child.lines if line.startswith("threads ")]
    assert threads == ["threads 1"], f"threads left when the process ends: {threads}"


def test_first_sigterm_drains_every_accepted_job_and_exits_0(backend: str, child_factory: StartChild) -> None:
    child = child_factory("drain", backend)
    child.expect("ready")
    child.signal(signal.SIGTERM)
    child.expect("draining")
    exit_line = child.expect("exit")
    assert child.finish() == 0
    report = summary(exit_line)
    assert (report["accepted"], report["done"], report["cancelled"]) == (N_JOBS, N_JOBS, 0)
    assert (report["stats"]["completed"], report["stats"]["cancelled"]) == (N_JOBS, 0)
    assert_nothing_left_behind(child, exit_line)
    assert "KeyboardInterrupt" not in child.lines


def test_first_sigint_drains_too_and_leaves_no_task_or_thread(
    backend: str, child_factory: StartChild
) -> None:
    # Ctrl+C under shutdown_on_signals: no KeyboardInterrupt in the middle of
    # a job; the accepted jobs finish and nothing is left running.
    child = child_factory("drain", backend)
    child.expect("ready")
    child.signal(signal.SIGINT)
    child.expect("draining")
    exit_line = child.expect("exit")
    assert child.finish() == 0
    report = summary(exit_line)
    assert (report["done"], report["stats"]["completed"], report["stats"]["cancelled"]) == (N_JOBS, N_JOBS, 0)
    assert "KeyboardInterrupt" not in child.lines
    assert_nothing_left_behind(child, exit_line)


def test_sigterm_then_sigint_cancels_the_jobs_at_once(backend: str, child_factory: StartChild) -> None:
    # The grace period is an hour; the second signal must not wait for it.
    child = child_factory("cancel", backend)
    child.expect("ready")
    child.signal(signal.SIGTERM)
    child.expect("draining")
    child.signal(signal.SIGINT)
    exit_line = child.expect("exit", timeout=TIMEOUT)
    assert child.finish() == 0
    report = summary(exit_line)
    # Three were running (one per worker) and saw the cancellation; the
    # other five were cancelled in the queue.
    assert (report["accepted"], report["done"], report["cancelled"]) == (N_JOBS, 0, 3)
    assert (report["stats"]["completed"], report["stats"]["cancelled"]) == (0, N_JOBS)
    assert "KeyboardInterrupt" not in child.lines
    assert_nothing_left_behind(child, exit_line)


def test_keyboard_interrupt_without_handlers_cancels_everything_and_leaves_nothing(
    backend: str,
    child_factory: StartChild,
) -> None:
    child = child_factory("interrupt", backend)
    child.expect("ready")
    child.signal(signal.SIGINT)
    exit_line = child.expect("exit")
    if backend == "asyncio" and sys.version_info < (3, 11):
        # Python 3.10 has no asyncio.Runner; anyio's stand-in cancels the
        # main task on SIGINT and cannot turn that back into KeyboardInterrupt
        # (3.11's Task.uncancel is what tells the two apart), so the run ends
        # with CancelledError.  What workpool does is the same (below).
        assert child.finish() == 0
        assert "CancelledError" in child.lines
    else:
        assert child.finish() == 0
        assert "KeyboardInterrupt" in child.lines
    report = summary(exit_line)
    # Three workers had started a job each; the queued five were cancelled too.
    assert (report["accepted"], report["done"], report["cancelled"]) == (N_JOBS, 0, 3)
    assert (report["stats"]["completed"], report["stats"]["cancelled"]) == (0, N_JOBS)
    assert_nothing_left_behind(child, exit_line)


def test_a_signal_right_after_entering_the_block_is_handled(backend: str, child_factory: StartChild) -> None:
    # Guards a fixed bug: the handlers used to be installed by a listener
    # task that the pool merely scheduled, so a SIGTERM that arrived before
    # the body first yielded still killed the process (exit code -15) and lost
    # every accepted job.  shutdown_on_signals now installs them on entering
    # the block; the child signals itself at once.
    child = child_factory("early", backend)
    rc = child.finish()
    assert rc == 0, f"exit code {rc}; output {child.lines}"
    exit_line = next(line for line in child.lines if line.startswith("exit "))
    report = summary(exit_line)
    assert report["done"] == report["accepted"]


def test_first_sigterm_drains_the_jobs_a_consume_loop_started(
    backend: str, child_factory: StartChild
) -> None:
    # Guards a fixed bug: the first signal cancels the guarded block, and
    # consume() used to cancel the jobs it had started when its caller was
    # cancelled, so `with shutdown_on_signals(pool): await pool.consume(...)`
    # lost every accepted job on the first SIGTERM.  Cancelling consume now
    # only stops intake; its jobs drain with the pool.
    child = child_factory("consume", backend)
    child.expect("ready")
    child.signal(signal.SIGTERM)
    exit_line = child.expect("exit")
    assert child.finish() == 0
    report = summary(exit_line)
    assert report["accepted"] == N_JOBS
    assert (report["stats"]["completed"], report["stats"]["cancelled"]) == (N_JOBS, 0)
