"""Bytecodes per job, by Python function or by source line: where the interpreter's work goes.

    python benchmarks/bytecodes.py workpool-submit-bounded raw-asyncio
    python benchmarks/bytecodes.py workpool-submit-bounded --workload sleep0 --lines _enqueue,submit

Each implementation of ``run.py`` runs twice in this process under a
``sys.settrace`` hook that counts every bytecode executed (``opcode``
events), once with 2,000 jobs and once with 6,000, after an untraced warm-up
run.  The difference of the two counts divided by 4,000 is what one job
costs, without start-up and teardown.  The counts are exact and repeat
exactly, and a run takes seconds where ``instructions.py`` takes minutes.

A bytecode is not a unit of time: a specialised attribute load is a few
machine instructions and a call into C may be thousands.  This says *which
Python code* runs per job and how much of it; ``instructions.py`` says what
it costs.  It found the pool asking, on every submit into a pool whose
workers were all busy, for an idle worker it could not have (25 bytecodes
and two calls per job; benchmarks/README.md).

``--lines NAME,...`` breaks the functions whose name contains one of the
NAMEs down by source line, with the line's text.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import anyio

from _workloads import add_case_arguments, case, check_cases

SMALL, LARGE, WARM_UP = 2_000, 6_000, 2_000

Counts = collections.Counter[tuple[CodeType, int | None]]


def _count(name: str, backend: str, workload: str, jobs: int, workers: int) -> Counts:
    """Run one case of `jobs` jobs under a tracer; bytecodes executed per (code, line)."""
    run, work = case(name, backend, workload, jobs, workers)
    counts: Counts = collections.Counter()

    def on_opcode(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
        if event == "opcode":
            counts[frame.f_code, frame.f_lineno] += 1
        return on_opcode

    def on_call(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return on_opcode

    sys.settrace(on_call)
    try:
        anyio.run(run, work, backend=backend)
    finally:
        sys.settrace(None)
    return counts


def per_job(name: str, backend: str, workload: str, workers: int) -> dict[tuple[CodeType, int | None], float]:
    """Bytecodes per job of each (code, line) of one case: the difference of two run sizes."""
    run, work = case(name, backend, workload, WARM_UP, workers)
    anyio.run(run, work, backend=backend)  # imports and one-time set-up, untraced
    small = _count(name, backend, workload, SMALL, workers)
    large = _count(name, backend, workload, LARGE, workers)
    return {key: (large[key] - small[key]) / (LARGE - SMALL) for key in small.keys() | large.keys()}


def _where(code: CodeType) -> str:
    path = Path(code.co_filename)
    qualname: str = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    return f"{path.name}:{qualname}"


def report(name: str, counts: dict[tuple[CodeType, int | None], float], lines: list[str]) -> None:
    by_function: dict[str, float] = collections.defaultdict(float)
    for (code, _), n in counts.items():
        by_function[_where(code)] += n
    print(f"\n{name}: {sum(by_function.values()):.1f} bytecodes per job\n")
    for where, n in sorted(by_function.items(), key=lambda item: -item[1]):
        if abs(n) >= 0.5:
            print(f"{n:8.1f}  {where}")
    if lines:
        print(f"\nby line, in functions named like {', '.join(lines)}:\n")
    for (code, line), n in sorted(counts.items(), key=lambda item: (_where(item[0][0]), item[0][1] or 0)):
        if abs(n) >= 0.5 and any(part in code.co_name for part in lines):
            text = linecache.getline(code.co_filename, line).strip() if line else ""
            print(f"{n:8.1f}  {_where(code)}:{line}  {text[:80]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_arguments(parser)
    parser.add_argument(
        "--lines", default="", help="comma-separated function names to break down by source line"
    )
    args = parser.parse_args()
    check_cases(args.impls, args.backend, args.workload)
    lines = [part for part in args.lines.split(",") if part]
    print(f"bytecodes per job: {args.backend}, {args.workload}, {args.workers} workers")
    for name in args.impls:
        report(name, per_job(name, args.backend, args.workload, args.workers), lines)


if __name__ == "__main__":
    main()
