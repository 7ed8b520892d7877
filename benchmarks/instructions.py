"""Instructions per job, counted by valgrind: a measure the noise of a shared machine cannot move.

    python benchmarks/instructions.py workpool-submit-bounded
    python benchmarks/instructions.py workpool-map anyio-nowait --backend trio --workload sleep0
    python benchmarks/instructions.py workpool-submit-bounded --commit 078c138 --commit HEAD
    python benchmarks/instructions.py workpool-submit-bounded --keep /tmp/cg   # then callgrind_annotate

Each implementation of ``run.py`` runs under ``valgrind --tool=callgrind``
twice, once with 20,000 jobs and once with 60,000, each after two warm-up
runs of 5,000 jobs in the same process (so that Python's specialising
interpreter has settled).  The difference of the two totals divided by
40,000 is the cost of one job, without start-up, imports and warm-up.
Counts repeat to within a few tens of instructions, so a change of 1% shows,
where timings on this machine spread by 10% or more.  They are not time:
a cache miss or a garbage collection of a large heap costs far more than
its instructions (see benchmarks/README.md), so confirm a gain with run.py.

``--commit`` measures a commit's ``src/`` (exported as history.py does)
instead of the working tree's; give it several times to compare commits.
``--keep DIR`` keeps callgrind's output of both runs there, so that
``callgrind_annotate`` can show which C functions the difference went to
(generic attribute lookups, allocations, the garbage collector...).
Needs valgrind (``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _workloads import add_case_arguments, case, check_cases
from history import export_src  # the same export as history.py

SMALL, LARGE, WARM_UP = 20_000, 60_000, 5_000


def child(name: str, backend: str, workload: str, jobs: int, workers: int) -> None:
    """Run one implementation with `jobs` jobs, after the warm-ups (inside valgrind)."""
    import gc

    import anyio

    for n in (WARM_UP, WARM_UP, jobs):
        run, work = case(name, backend, workload, n, workers)
        gc.collect()
        anyio.run(run, work, backend=backend)


def count(
    name: str, backend: str, workload: str, jobs: int, workers: int, src: Path | None, out: Path | None
) -> int:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    out_file = "/dev/null" if out is None else str(out)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        __file__,
        "--child",
        name,
        "--backend",
        backend,
        "--workload",
        workload,
        "--jobs",
        str(jobs),
        "--workers",
        str(workers),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"{name} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_arguments(parser)
    parser.add_argument(
        "--commit", action="append", default=[], help="measure this commit's src/ (repeatable)"
    )
    parser.add_argument("--keep", type=Path, help="keep callgrind's output files in this directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.impls[0], args.backend, args.workload, args.jobs, args.workers)
        return
    check_cases(args.impls, args.backend, args.workload)  # before minutes of valgrind runs
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt install valgrind)")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        sources: list[tuple[str, Path | None]] = [
            (commit, export_src(commit, Path(tmp))) for commit in args.commit
        ] or [("working tree", None)]
        print(f"instructions per job: {args.backend}, {args.workload}, {args.workers} workers")
        for label, src in sources:
            for name in args.impls:
                outs: list[Path | None] = [None, None]
                if args.keep is not None:
                    stem = f"{label.replace(' ', '-')}.{name}.{args.backend}.{args.workload}"
                    outs = [args.keep / f"{stem}.{SMALL}.out", args.keep / f"{stem}.{LARGE}.out"]
                small = count(name, args.backend, args.workload, SMALL, args.workers, src, outs[0])
                large = count(name, args.backend, args.workload, LARGE, args.workers, src, outs[1])
                print(f"{label:>14}  {name:<26} {(large - small) / (LARGE - SMALL):>9,.0f}")


if __name__ == "__main__":
    main()
