"""Instructions per job, counted by valgrind: a measure the noise of a shared machine cannot move.

    python benchmarks/instructions.py workpool-submit-bounded
    python benchmarks/instructions.py workpool-map anyio-nowait --backend trio --workload sleep0
    python benchmarks/instructions.py workpool-submit-bounded --commit 078c138 --commit HEAD
    python benchmarks/instructions.py workpool-submit-bounded --keep /tmp/cg   # then callgrind_annotate
    python benchmarks/instructions.py workpool-submit-bounded raw-asyncio --caches

Each implementation of ``run.py`` runs under ``valgrind --tool=callgrind``
twice, once with 20,000 jobs and once with 60,000, each after two warm-up
runs of 5,000 jobs in the same process (so that Python's specialising
interpreter has settled).  The difference of the two totals divided by
40,000 is the cost of one job, without start-up, imports and warm-up.
Counts mostly repeat to within a few tens of instructions, so a change of 1%
shows, where timings on this machine spread by 10% or more; but now and then
a run of a case lands 4-6% away from the others (seen for ``workpool-map``
and once for ``workpool-submit-bounded``), so repeat a measurement before
trusting a small difference.  They are not time:
a cache miss or a garbage collection of a large heap costs far more than
its instructions (see benchmarks/README.md), so confirm a gain with run.py.

``--caches`` runs cachegrind instead, with its cache simulation, and also
prints the first-level instruction and data cache misses per job and the
last-level ones: what makes a job cost more time than its instructions say.

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


#: How cachegrind's summary names each count that ``--caches`` reports (a regex).
CACHE_EVENTS = {
    "instructions": r"I\s+refs",
    "I1 misses": r"I1\s+misses",
    "D1 misses": r"D1\s+misses",
    "LL misses": r"LL\s+misses",
}


def count(
    name: str,
    backend: str,
    workload: str,
    jobs: int,
    workers: int,
    src: Path | None,
    out: Path | None,
    caches: bool = False,
) -> dict[str, int]:
    """Run one case under valgrind; its totals: instructions, and cache misses with `caches`."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    out_file = "/dev/null" if out is None else str(out)
    tool = (
        ["--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out_file}"]
        if caches
        else ["--tool=callgrind", f"--callgrind-out-file={out_file}"]
    )
    command = [
        "valgrind",
        *tool,
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
    patterns = (
        {event: label + r":\s+([\d,]+)" for event, label in CACHE_EVENTS.items()}
        if caches
        else {"instructions": r"Collected : (\d+)"}
    )
    totals: dict[str, int] = {}
    for event, pattern in patterns.items():
        found = re.search(pattern, done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"{name} failed under valgrind:\n{done.stderr[-2000:]}")
        totals[event] = int(found.group(1).replace(",", ""))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_arguments(parser)
    parser.add_argument(
        "--commit", action="append", default=[], help="measure this commit's src/ (repeatable)"
    )
    parser.add_argument("--keep", type=Path, help="keep valgrind's output files in this directory")
    parser.add_argument(
        "--caches", action="store_true", help="simulate the caches (cachegrind): also count misses"
    )
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
        events = list(CACHE_EVENTS) if args.caches else ["instructions"]
        print(f"{', '.join(events)} per job: {args.backend}, {args.workload}, {args.workers} workers")
        for label, src in sources:
            for name in args.impls:
                outs: list[Path | None] = [None, None]
                if args.keep is not None:
                    stem = f"{label.replace(' ', '-')}.{name}.{args.backend}.{args.workload}"
                    outs = [args.keep / f"{stem}.{SMALL}.out", args.keep / f"{stem}.{LARGE}.out"]
                small, large = (
                    count(name, args.backend, args.workload, n, args.workers, src, out, args.caches)
                    for n, out in ((SMALL, outs[0]), (LARGE, outs[1]))
                )
                per_job = [(large[event] - small[event]) / (LARGE - SMALL) for event in events]
                # Misses per job are small numbers: a decimal; instructions are not.
                figures = [f"{per_job[0]:>9,.0f}"] + [f"{n:>10,.1f}" for n in per_job[1:]]
                print(f"{label:>14}  {name:<26} {' '.join(figures)}")


if __name__ == "__main__":
    main()
