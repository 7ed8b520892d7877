"""The ``workpool demo`` command: it runs, exits 0, and shows the leak it is about."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from workpool import JobCancelled
from workpool.__main__ import main
from workpool._demo import _is_ctrl_c

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


def _run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    # A subprocess, because the demo runs event loops of its own and must
    # leave the interpreter able to exit: a leaked task would show up as a
    # hang or a "Task was destroyed but it is pending" warning on stderr.
    return subprocess.run(
        [sys.executable, "-m", "workpool", "demo", "--jobs", "200", "--workers", "10", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _table_row(output: str, label: str) -> tuple[str, str]:
    match = re.search(rf"^  {re.escape(label)} +(\S+(?: s)?) +(\S+(?: s)?)$", output, re.MULTILINE)
    assert match is not None, f"no {label!r} row in the summary:\n{output}"
    return match.group(1), match.group(2)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_shows_the_leak_and_none_with_workpool(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")
    result = _run_demo("--backend", backend)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert _table_row(out, "jobs processed") == ("200", "200")
    assert _table_row(out, "requests answered") == ("10", "10")
    ad_hoc_left, workpool_left = _table_row(out, "tasks left behind")
    assert int(ad_hoc_left) > 0
    assert int(workpool_left) == 0
    # 10 workers blocked on the queue, one lease renewer for each of the 10 requests.
    assert int(ad_hoc_left) == 20
    assert f"cancelling {ad_hoc_left} leaked tasks so the demo can exit" in out
    assert "0 tasks left on the ad hoc loop" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("backend", "phase"),
    [("asyncio", "[1/2]"), ("asyncio", "[2/2]"), ("trio", "[2/2]")],
)
def test_ctrl_c_stops_the_demo_quietly_and_leaves_nothing(backend: str, phase: str) -> None:
    # Ctrl-C in either half: no traceback (trio raised a BaseExceptionGroup
    # and exited 1), exit 128 + SIGINT as the worker command does, and what
    # the ad hoc half started is still cancelled in plain sight.
    if backend == "trio":
        pytest.importorskip("trio")
    command = [sys.executable, "-m", "workpool", "demo", "--jobs", "4000", "--workers", "20"]
    process = subprocess.Popen(
        [*command, "--backend", backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job starts with SIGINT ignored: Ctrl-C's default here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:  # until a progress line of that half
            seen.append(line)
            if any(s.startswith(phase) for s in seen) and "jobs done=" in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    out = "".join(seen) + out
    assert "Traceback" not in err, err[-2000:]
    assert process.returncode == 128 + signal.SIGINT, (out[-2000:], err[-2000:])
    assert "interrupted" in out
    assert "0 tasks left on the ad hoc loop" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["demo", "--jobs", "0"],
        ["demo", "--workers", "many"],
        ["demo", "--backend", "curio"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: workpool" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "is_ctrl_c"),
    [
        (KeyboardInterrupt(), True),
        (BaseExceptionGroup("trio nursery", [KeyboardInterrupt()]), True),
        # The interrupt crashed the thumbnails pool; a request handler that
        # iterated a map of its jobs failed with JobCancelled first.
        (
            BaseExceptionGroup(
                "requests pool",
                [
                    ExceptionGroup("handler", [JobCancelled("map job")]),
                    BaseExceptionGroup("nursery", [KeyboardInterrupt()]),
                ],
            ),
            True,
        ),
        (ExceptionGroup("no interrupt", [JobCancelled("map job")]), False),
        (BaseExceptionGroup("a real error too", [KeyboardInterrupt(), ValueError("bug")]), False),
        (ValueError("bug"), False),
    ],
    ids=["interrupt", "group", "group-with-job-cancelled", "job-cancelled-alone", "with-an-error", "error"],
)
def test_what_the_demo_counts_as_ctrl_c(exc: BaseException, is_ctrl_c: bool) -> None:
    # Not async: the classification only.  Seen once on Python 3.10 with trio:
    # Ctrl-C in the workpool half printed the group of the third case.
    assert _is_ctrl_c(exc) is is_ctrl_c
