"""How much of a case's cost is the cyclic garbage collector, by generation.

    python benchmarks/gc_share.py workpool-submit workpool-submit-bounded raw-asyncio
    python benchmarks/gc_share.py workpool-map --jobs 100000 --backend trio

Runs each implementation of ``run.py`` in this process (after a
``gc.collect()``, as run.py does), times every collection with
``gc.callbacks``, and prints per job: the CPU time of the whole run, the
time spent in collections of each generation, and how many there were.
Rounds alternate the cases; the table shows medians.  This is what says
that an unbounded ``submit`` burst pays most of its extra cost to the
collector walking the queued jobs (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

import anyio

from _workloads import add_case_arguments, case, check_cases


class _Timer:
    """Accumulates the wall time of collections per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.counts[generation] += 1


def measure(name: str, backend: str, workload: str, jobs: int, workers: int) -> list[float]:
    """One run: [CPU µs/job, gen0 µs/job, gen1 µs/job, gen2 µs/job, gen0 n, gen1 n, gen2 n]."""
    run, work = case(name, backend, workload, jobs, workers)
    timer = _Timer()
    gc.collect()
    gc.callbacks.append(timer)
    try:
        start = time.process_time()
        anyio.run(run, work, backend=backend)
        cpu = time.process_time() - start
    finally:
        gc.callbacks.remove(timer)
    per_job = [cpu / jobs * 1e6] + [s / jobs * 1e6 for s in timer.seconds]
    return per_job + [float(n) for n in timer.counts]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_arguments(parser)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    check_cases(args.impls, args.backend, args.workload)
    samples: dict[str, list[list[float]]] = {name: [] for name in args.impls}
    for _ in range(args.rounds):
        for name in args.impls:
            samples[name].append(measure(name, args.backend, args.workload, args.jobs, args.workers))
    print(
        f"`python benchmarks/gc_share.py {' '.join(args.impls)} --backend {args.backend} "
        f"--workload {args.workload} --jobs {args.jobs} --rounds {args.rounds}` (medians)\n"
    )
    print("| implementation | CPU µs/job | in gen 0 | in gen 1 | in gen 2 | collections (0/1/2) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, runs in samples.items():
        m = [statistics.median(column) for column in zip(*runs, strict=True)]
        counts = "/".join(str(round(n)) for n in m[4:])
        print(f"| {name} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} | {counts} |")


if __name__ == "__main__":
    main()
