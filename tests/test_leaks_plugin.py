"""The pytest plugin: ``--leaks``, ``@pytest.mark.no_leaks`` and the ``no_leaks`` fixture.

Each test runs pytest on a small test file in a process of its own, as a
project that installed workpool would, with anyio's plugin on both backends.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

LEAKY_TESTS = textwrap.dedent(
    """
    import asyncio
    import threading

    import anyio
    import pytest

    KEEP = set()


    async def forever():
        await anyio.sleep_forever()


    def leak_a_task(backend):
        if backend == "asyncio":
            KEEP.add(asyncio.create_task(forever(), name="leaked-task"))  # line 16
        else:
            import trio

            trio.lowlevel.spawn_system_task(forever, name="leaked-task")  # line 20


    @pytest.mark.anyio
    async def test_leaky(anyio_backend_name):
        leak_a_task(anyio_backend_name)


    @pytest.mark.anyio
    async def test_leaky_and_failing(anyio_backend_name):
        leak_a_task(anyio_backend_name)
        assert 1 == 2


    @pytest.mark.anyio
    async def test_clean(anyio_backend_name):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)


    def test_sync_thread_leak():
        stop = threading.Event()
        KEEP.add(stop)
        threading.Thread(target=stop.wait, name="leaked-thread", daemon=True).start()


    @pytest.mark.no_leaks
    @pytest.mark.anyio
    async def test_marked(anyio_backend_name):
        leak_a_task(anyio_backend_name)


    @pytest.mark.no_leaks(ignore_names=["leaked-*"])
    @pytest.mark.anyio
    async def test_marked_with_an_ignore_option(anyio_backend_name):
        leak_a_task(anyio_backend_name)


    @pytest.mark.anyio
    async def test_with_the_fixture(anyio_backend_name, no_leaks):
        leak_a_task(anyio_backend_name)


    @pytest.mark.no_leaks(ignore_blocked_in="anyio.sleep_forever")
    @pytest.mark.anyio
    async def test_marked_with_one_name_not_a_list(anyio_backend_name):
        pass
    """
).lstrip()


def run_pytest(tmp_path: Path, *args: str) -> tuple[str, dict[str, str]]:
    """Run pytest on the leaky test file; return its output and each test's outcome."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-p", "no:randomly", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes: dict[str, str] = {}
    for outcome, test in re.findall(r"^(PASSED|FAILED|ERROR) test_leaky\.py::(\S+)", result.stdout, re.M):
        outcomes.setdefault(test, "")
        outcomes[test] = " ".join(sorted({*outcomes[test].split(), outcome}))
    return result.stdout, outcomes


def test_the_leaks_option_checks_every_test_and_names_the_one_that_leaked(tmp_path: Path) -> None:
    output, outcomes = run_pytest(tmp_path, "--leaks")
    assert outcomes["test_sync_thread_leak"] == "ERROR PASSED"
    assert "LeakError: test test_leaky.py::test_sync_thread_leak: 1 thread leaked" in output
    assert 'thread "leaked-thread" [blocked in Event.wait]:' in output
    for backend, line in (("asyncio", 16), ("trio", 20)):
        assert outcomes[f"test_leaky[{backend}]"] == "ERROR PASSED"
        assert outcomes[f"test_leaky_and_failing[{backend}]"] == "ERROR FAILED"  # the leak is not hidden
        assert outcomes[f"test_clean[{backend}]"] == "PASSED"
        for test in (f"test_leaky[{backend}]", f"test_leaky_and_failing[{backend}]"):
            # The error's message, as pytest prints it: "E   " before each line.
            report = re.search(
                rf"^E +workpool\._leaks\.LeakError: test test_leaky\.py::{re.escape(test)}: "
                r"1 task leaked .*\n"
                r"E *\n"
                r'E +task \d+ "leaked-task" \[awaiting anyio\.sleep_forever, .*\]:\n'
                r"E +test_leaky\.py:11 in forever\n"
                rf"E +created by leak_a_task at test_leaky\.py:{line}\n",
                output,
                re.MULTILINE,
            )
            assert report is not None, (test, output)


def test_without_the_option_only_marked_tests_and_the_fixture_check(tmp_path: Path) -> None:
    output, outcomes = run_pytest(tmp_path)
    for backend in ("asyncio", "trio"):
        # A marker option is checked as no_leaks() checks it: one name, not
        # a list of them, is an error (it was spread into its characters).
        assert outcomes[f"test_marked_with_one_name_not_a_list[{backend}]"] == "ERROR"
        assert outcomes[f"test_leaky[{backend}]"] == "PASSED"
        assert outcomes[f"test_marked[{backend}]"] == "ERROR PASSED"
        assert outcomes[f"test_marked_with_an_ignore_option[{backend}]"] == "PASSED"
        assert outcomes[f"test_with_the_fixture[{backend}]"] == "ERROR PASSED"
    assert outcomes["test_sync_thread_leak"] == "PASSED"
    assert "ignore_blocked_in must be an iterable of functions or names, not a single one" in output
    assert (
        "no_leaks(**options): fail the test if it leaves a task or thread behind"
        in subprocess.run(
            [sys.executable, "-m", "pytest", "--markers"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
