"""The benchmark scripts run end to end, at toy sizes.

Nothing is timed here (no test asserts a timing): this only keeps the
scripts that issue #3's figures come from working as the code under them
changes.  Each runs as a user would run it, in a subprocess from the
repository, and must exit 0 and print its table.  ``instructions.py`` needs
valgrind and minutes, so only its argument checks run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# scale.py alone takes 7 s on a quiet machine and three times that on a
# loaded one; the suite's default of 60 s per test is too close.
pytestmark = pytest.mark.timeout(240)


def _run(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_run_py_reports_every_case_and_the_targets(tmp_path: Path) -> None:
    out = _run(
        "run.py",
        "--jobs=2000",
        "--rounds=1",
        "--only=raw-asyncio,workpool-submit,workpool-submit-bounded,workpool-map,workpool-consume",
        "--backend=both",
        f"--output={tmp_path / 'results.json'}",
    )
    for name in ("raw-asyncio", "workpool-submit-bounded", "workpool-map", "workpool-consume"):
        assert f"| {name} |" in out
    assert "### trio, sleep0 job" in out
    assert "#2 submit, default max_pending ≤ 2x raw asyncio" in out
    assert (tmp_path / "results.json").stat().st_size > 0


def test_bytecodes_py_counts_per_function_and_line() -> None:
    out = _run("bytecodes.py", "workpool-submit-bounded", "--lines=_work")
    assert "workpool-submit-bounded:" in out
    # Functions are named by their qualified name from Python 3.11 on.
    assert re.search(r"\s_pool\.py:(Pool\.)?submit\n", out), out
    assert "_worker.py:_work:" in out  # a line of the breakdown


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("gc_share.py", "workpool-submit", "--jobs=2000", "--rounds=1"), "| workpool-submit |"),
        (("floor.py", "--jobs=2000", "--rounds=1"), "| on |"),
        (("memory.py", "--workers=100", "--jobs=2000"), "| asyncio |"),
        (("await_job.py", "--awaits=2000", "--rounds=1"), "| trio | workpool await job |"),
        (("fanout.py", "--fanouts=20", "--rounds=1", "--sizes=3"), "| trio | 3 | workpool map |"),
        (
            ("history.py", "HEAD", "--reps=1", "--jobs=2000", "--only=workpool-submit", "--backend=asyncio"),
            "| HEAD | noop | asyncio | workpool-submit |",
        ),
    ],
    ids=["gc_share", "floor", "memory", "await_job", "fanout", "history"],
)
def test_a_benchmark_script_prints_its_table(args: tuple[str, ...], expected: str) -> None:
    assert expected in _run(*args)


def test_scale_py_quick_writes_its_results(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="scale.py plots with the bench extra's matplotlib")
    out = _run("scale.py", "--quick", f"--out-dir={tmp_path}")
    assert "flat" in out
    assert list(tmp_path.glob("*.json"))


def test_instructions_py_checks_its_cases_before_looking_for_valgrind(tmp_path: Path) -> None:
    # With a PATH that has no valgrind, a bad name must still be the error:
    # the cases are checked first, on any machine.
    (tmp_path / "python").symlink_to(sys.executable)
    done = subprocess.run(
        [sys.executable, "instructions.py", "no-such-implementation"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "unknown implementation 'no-such-implementation'" in done.stderr, done.stderr
