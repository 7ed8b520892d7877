"""How workpool's cost per job scales with the number of workers and of jobs, and map's memory.

    python benchmarks/scale.py --quick         # small sizes: a smoke run of about 10 s
    python benchmarks/scale.py                 # the curves of issue #3, both backends
    python benchmarks/scale.py --backend trio --parts workers
    python benchmarks/scale.py --parts workers --workload sleep0   # jobs that suspend

Three measurements (issue #3, "scale"):

- workers: N no-op jobs (``--workload sleep0``: jobs that await ``sleep(0)``)
  through ``await pool.submit(job)`` on
  ``Pool(max_workers=W, max_pending=1000)`` for each W, beside the reference at
  the same W: raw asyncio workers on an ``asyncio.Queue`` on asyncio, the anyio
  memory-stream ``*_nowait`` pattern on trio (run.py's two denominators), and
  that pattern with workpool's bound, a stream of 1000 (``anyio-nowait-1000``).
- jobs: the same at W=100 for each N.
- rss: ``async for _ in pool.map(fn, range(N))`` in a fresh subprocess per run,
  so each run's peak RSS is its own; ordered and unordered.

The curves run like run.py: interleaved rounds in a shuffled order, a fresh
event loop and a ``gc.collect()`` per run, process CPU time, medians over
rounds, and ratios paired within a round.  Writes benchmarks/results/scale.json,
scale_workers.png and scale_jobs.png (matplotlib, from the ``bench`` extra) and
prints markdown tables.  Nothing is asserted: the verdicts only report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from _workloads import IMPLEMENTATIONS, NOWAIT, REFERENCE, WORKLOADS, Backend, make_work
from run import available_backends, environment, fmt, job_fns, summary, time_once, validate
from workpool import Pool

HERE = Path(__file__).resolve().parent
WORKPOOL = "workpool-submit-bounded"
REFERENCES: dict[Backend, str] = {"asyncio": REFERENCE, "trio": NOWAIT}
# The hand-written pattern with workpool's bound (a stream of 1000), beside
# the references, which queue without a bound: what the bound itself costs.
BOUNDED = "anyio-nowait-1000"
IMPLS = {impl.name: impl for impl in IMPLEMENTATIONS}
ITEM_JOB = WORKLOADS["noop"]["anyio"][1]  # of the map RSS runs
CHILD = "_map-rss"  # hidden subcommand: one map run in this (fresh) process
COLORS: dict[Backend, str] = {"asyncio": "tab:blue", "trio": "tab:green"}
FLAT, RSS_FLAT = 1.2, 1.1  # issue #3: within 20% (cost), within 10% (peak RSS)


@dataclass(frozen=True, order=True)
class Point:
    curve: str  # "workers" or "jobs": which argument varies along the x axis
    backend: Backend
    impl: str
    workers: int
    jobs: int


@dataclass
class Runs:
    """One point's µs per job, one entry per round."""

    cpu_us: list[float] = field(default_factory=list[float])
    wall_us: list[float] = field(default_factory=list[float])


def ints(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers-list", type=ints, default=[10, 100, 1000, 10_000], help="W, workers curve")
    p.add_argument("--workers-jobs", type=int, default=200_000, help="N of the workers curve (200000)")
    p.add_argument("--jobs-list", type=ints, default=[10_000, 100_000, 1_000_000], help="N of the jobs curve")
    p.add_argument("--jobs-workers", type=int, default=100, help="W of the jobs curve (100)")
    p.add_argument("--rss-list", type=ints, default=[100_000, 1_000_000], help="N of the map RSS runs")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the curves (3)")
    p.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default="noop",
        help="the jobs of the curves (noop); results of another go to files named after it",
    )
    p.add_argument("--backend", choices=("asyncio", "trio", "both"), default="both")
    p.add_argument("--parts", default="workers,jobs,rss", help="any of workers, jobs, rss")
    p.add_argument("--quick", action="store_true", help="small sizes and 2 rounds: a smoke run")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-round shuffles")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before one run counts as hung")
    p.add_argument("--out-dir", type=Path, default=HERE / "results", help="where the JSON and PNGs go")
    args = p.parse_args(argv)
    if args.quick:
        args.workers_list, args.workers_jobs = [10, 100, 1000], 20_000
        args.jobs_list, args.rss_list, args.rounds = [2_000, 20_000, 100_000], [10_000, 100_000], 2
    args.parts = set(args.parts.split(","))
    if not args.parts <= {"workers", "jobs", "rss"}:
        p.error("--parts takes workers, jobs and rss")
    return args


# -- the cost curves ------------------------------------------------------------


def curve_points(args: argparse.Namespace, backends: list[Backend]) -> list[Point]:
    points: list[Point] = []
    for backend in backends:
        for impl in (WORKPOOL, REFERENCES[backend], BOUNDED):
            if "workers" in args.parts:
                points += [Point("workers", backend, impl, w, args.workers_jobs) for w in args.workers_list]
            if "jobs" in args.parts:
                points += [Point("jobs", backend, impl, args.jobs_workers, n) for n in args.jobs_list]
    return sorted(points)


def measure(
    points: list[Point], args: argparse.Namespace, save: Callable[[dict[Point, Runs]], None]
) -> dict[Point, Runs]:
    # The warm-up doubles as a check that every job runs exactly once.
    warmups: set[tuple[str, Backend, int]] = {(p.impl, p.backend, p.workers) for p in points}
    for impl, backend, w in sorted(warmups):
        validate(IMPLS[impl], args.workload, backend, w, args.timeout)
    runs = {p: Runs() for p in points}
    rng = random.Random(args.seed)
    for r in range(args.rounds):
        t0 = time.monotonic()
        order = list(points)
        rng.shuffle(order)
        for point in order:
            impl = IMPLS[point.impl]
            work = make_work(point.jobs, point.workers, *job_fns(impl, args.workload, point.backend))
            wall, cpu = time_once(point.backend, impl.runs[point.backend], work, args.timeout)
            runs[point].cpu_us.append(cpu / point.jobs * 1e6)
            runs[point].wall_us.append(wall / point.jobs * 1e6)
            del work  # a 1M-entry job list should not sit beside the next run's
        print(f"  round {r + 1}/{args.rounds}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        save(runs)
    return runs


def ratios(runs: dict[Point, Runs], point: Point) -> list[float]:
    """Per round: workpool's time over the reference's at the same W and N, in the same round."""
    ref = runs[Point(point.curve, point.backend, REFERENCES[point.backend], point.workers, point.jobs)]
    return [a / b for a, b in zip(runs[point].cpu_us, ref.cpu_us, strict=True)]


def curve_records(runs: dict[Point, Runs]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for p, r in runs.items():
        record: dict[str, Any] = {
            "curve": p.curve,
            "backend": p.backend,
            "impl": p.impl,
            "workers": p.workers,
            "jobs": p.jobs,
            "cpu_us_per_job": summary(r.cpu_us) if r.cpu_us else None,
            "wall_us_per_job": summary(r.wall_us) if r.wall_us else None,
            "cpu_us_per_job_by_round": r.cpu_us,
            "wall_us_per_job_by_round": r.wall_us,
        }
        if p.impl == WORKPOOL:
            by_round = ratios(runs, p)
            record["ratio_to_reference"] = summary(by_round) if by_round else None
            record["ratio_to_reference_by_round"] = by_round
        records.append(record)
    return records


def spread(medians: list[float]) -> float:
    """How far from flat a curve is: its highest median over its lowest."""
    return max(medians) / min(medians)


def curve_table(records: list[dict[str, Any]], curve: str) -> str:
    mine = sorted((r for r in records if r["curve"] == curve), key=lambda r: r[curve])
    xs = sorted({r[curve] for r in mine})
    head = ["backend", "measure", *[f"{'W' if curve == 'workers' else 'N'}={x:,}" for x in xs]]
    head.append("max/min of medians")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for backend in dict.fromkeys(r["backend"] for r in mine):
        impls = (WORKPOOL, REFERENCES[backend], BOUNDED)
        rows = [(f"{impl} µs/job", impl, "cpu_us_per_job") for impl in impls]
        rows.append(("workpool x reference", WORKPOOL, "ratio_to_reference"))
        for label, impl, key in rows:
            stats = [r[key] for r in mine if r["backend"] == backend and r["impl"] == impl]
            if not stats or None in stats:
                continue
            cells = [f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})" for s in stats]
            flat = spread([s["median"] for s in stats])
            verdict = f" {'flat' if flat <= FLAT else 'not flat'}" if key == "cpu_us_per_job" else ""
            lines.append(f"| {backend} | {label} | " + " | ".join(cells) + f" | {flat:.2f}{verdict} |")
    return "\n".join(lines)


# -- map's peak RSS, one fresh process per run ----------------------------------


def peak_rss_kb() -> int:
    # Linux carries ru_maxrss over fork and exec, so a child's figure would be
    # at least the parent's (its imports, 1M-job lists, maybe matplotlib) and hide
    # the map's.  VmHWM belongs to the child's own address space.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def map_child(backend: str, n: int, ordered: bool) -> None:
    async def run(items: int) -> None:
        async with Pool(max_workers=100, max_pending=1000) as pool:
            async for _ in pool.map(ITEM_JOB, range(items), ordered=ordered):
                pass

    # The baseline is the peak after a small map, so imports, the event loop
    # and the pool's own structures are in it and the growth is only N's doing.
    anyio.run(run, 1000, backend=backend)
    baseline = peak_rss_kb()
    cpu = time.process_time()
    anyio.run(run, n, backend=backend)
    cpu = time.process_time() - cpu
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak_rss_kb(), "cpu_us_per_item": cpu / n * 1e6}))


def measure_rss(args: argparse.Namespace, backends: list[Backend]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for backend in backends:
        for ordered in (True, False):
            for n in args.rss_list:
                kind = "ordered" if ordered else "unordered"
                cmd = [sys.executable, __file__, CHILD, backend, str(n), kind]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=args.timeout)
                record = json.loads(done.stdout.splitlines()[-1])
                records.append({"backend": backend, "ordered": ordered, "items": n, **record})
                print(f"  map {kind} on {backend}, N={n:,}: peak {record['peak_kb']:,} KiB", file=sys.stderr)
    return records


def rss_table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | map | N | peak RSS (MiB) | baseline (MiB) | growth (KiB) | cpu µs/item "
        "| peak / peak at smallest N |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        first = next(f for f in records if f["backend"] == r["backend"] and f["ordered"] == r["ordered"])
        ratio = r["peak_kb"] / first["peak_kb"]
        verdict = "" if r is first else f" {'flat' if ratio <= RSS_FLAT else 'not flat'}"
        lines.append(
            f"| {r['backend']} | {'ordered' if r['ordered'] else 'unordered'} | {r['items']:,} | "
            f"{r['peak_kb'] / 1024:.1f} | {r['baseline_kb'] / 1024:.1f} | "
            f"{r['peak_kb'] - r['baseline_kb']:,} | {fmt(r['cpu_us_per_item'])} | "
            f"{ratio:.3f}{verdict} |"
        )
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on a benchmark machine
    import matplotlib.pyplot as plt

    return plt


def plot(records: list[dict[str, Any]], curve: str, path: Path, subtitle: str) -> None:
    plt = pyplot()
    mine = sorted((r for r in records if r["curve"] == curve and r["cpu_us_per_job"]), key=lambda r: r[curve])
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 7), height_ratios=[2, 1])
    for backend in dict.fromkeys(r["backend"] for r in mine):
        color = COLORS[backend]
        for impl, key, ax, style in [
            (WORKPOOL, "cpu_us_per_job", top, "-"),
            (REFERENCES[backend], "cpu_us_per_job", top, "--"),
            (BOUNDED, "cpu_us_per_job", top, ":"),
            (WORKPOOL, "ratio_to_reference", bottom, "-"),
        ]:
            rows = [r for r in mine if r["backend"] == backend and r["impl"] == impl and r.get(key)]
            if not rows:
                continue
            xs = [r[curve] for r in rows]
            med = [r[key]["median"] for r in rows]
            lo = [m - r[key]["min"] for m, r in zip(med, rows, strict=True)]
            hi = [r[key]["max"] - m for m, r in zip(med, rows, strict=True)]
            label = f"{impl} ({backend})" if ax is top else f"{WORKPOOL} / {REFERENCES[backend]} ({backend})"
            label += f", max/min {spread(med):.2f}"
            ax.errorbar(
                xs, med, yerr=[lo, hi], color=color, linestyle=style, marker="o", capsize=3, label=label
            )
    top.set_xscale("log")
    xs = sorted({r[curve] for r in mine})
    bottom.set_xticks(xs, [f"{x:,}" for x in xs])
    bottom.minorticks_off()
    # From zero, so that a curve only looks flat when it is.
    top.set_ylim(bottom=0)
    bottom.set_ylim(bottom=0)
    bottom.axhline(1, color="grey", linewidth=0.8)
    top.set_ylabel("CPU µs per job (median, min-max)")
    bottom.set_ylabel("x reference, same round")
    bottom.set_xlabel("workers (W)" if curve == "workers" else "jobs (N)")
    top.set_title(
        f"workpool cost per job vs {'workers' if curve == 'workers' else 'jobs'}\n{subtitle}", fontsize=10
    )
    top.legend(fontsize="small")
    bottom.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Checked before the long runs, imported after them: matplotlib and numpy
    # would triple the objects every full collection of the timed runs walks.
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit("scale.py draws its plots with matplotlib: pip install 'workpool[bench]'")
    backends, notes = available_backends(args.backend)
    env = environment()
    meta: dict[str, Any] = {
        "command": " ".join(["python benchmarks/scale.py", *(sys.argv[1:] if argv is None else argv)]),
        "rounds": args.rounds,
        "workload": args.workload,
        "seed": args.seed,
        "clock": "cpu",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": notes,
        **env,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    rss: list[dict[str, Any]] = []
    # The no-op curves are issue #3's; another workload's go beside them.
    suffix = "" if args.workload == "noop" else f"_{args.workload}"
    jobs_kind = "no-op jobs" if args.workload == "noop" else f"{args.workload} jobs"

    def save(runs: dict[Point, Runs] | None = None, complete: bool = False) -> None:
        if runs is not None:
            records[:] = curve_records(runs)
        payload = {"complete": complete, "meta": meta, "curves": records, "map_rss": rss}
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        (args.out_dir / f"scale{suffix}.json").write_text(text)

    started = time.monotonic()
    points = curve_points(args, backends)
    if points:
        print(f"# scale: {len(points)} runs per round, {args.rounds} rounds", file=sys.stderr)
        measure(points, args, save)
    if "rss" in args.parts:
        rss += measure_rss(args, backends)
    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    if environment()["src_sha256"] != env["src_sha256"]:
        # The hot path is edited while benchmarks run; a mixed run is worth less.
        notes.append("src/ changed during the run: the figures mix versions of workpool")
    save(complete=True)

    dirty = " + uncommitted src changes" if env["src_dirty"] else ""
    head = f"workpool at {env['git_head']}{dirty}, python {env['python']}, {args.rounds} rounds"
    parts = [f"`{meta['command']}`\n", f"{head}; CPU µs per job, median (min-max) over rounds"]
    parts += [f"note: {n}" for n in notes]
    if "workers" in args.parts:
        sub = f"N={args.workers_jobs:,} {jobs_kind}, max_pending=1000\n{head}"
        plot(records, "workers", args.out_dir / f"scale_workers{suffix}.png", sub)
        parts += [f"\n### Cost vs workers ({args.workers_jobs:,} jobs)\n", curve_table(records, "workers")]
    if "jobs" in args.parts:
        sub = f"W={args.jobs_workers} workers, {jobs_kind}, max_pending=1000\n{head}"
        plot(records, "jobs", args.out_dir / f"scale_jobs{suffix}.png", sub)
        parts += [f"\n### Cost vs jobs ({args.jobs_workers} workers)\n", curve_table(records, "jobs")]
    if rss:
        title = "\n### Peak RSS of `map` (W=100, max_pending=1000, a fresh process per run)\n"
        parts += [title, rss_table(rss)]
    print("\n".join(parts))
    print(f"# {meta['wall_seconds']:.0f} s; results in {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        map_child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "ordered")
        sys.exit(0)
    sys.exit(main())
