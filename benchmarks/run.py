"""Time workpool against hand-written patterns and peer libraries, side by side.

    python benchmarks/run.py                 # 200k jobs, 100 workers, 5 rounds, both backends
    python benchmarks/run.py --quick         # 20k jobs, 3 rounds: a smoke run
    python benchmarks/run.py --only workpool-submit,aiojobs --backend asyncio
    python benchmarks/run.py --profile workpool-submit --backend asyncio

Everything runs in one process, in interleaved rounds: each round runs every
(workload, backend, implementation) case once, in a freshly shuffled order, each
in a fresh event loop after a ``gc.collect()``.  A case's ratio to raw asyncio is
computed against the raw-asyncio run *of the same round* and the table shows
the median of those per-round ratios, so a slow patch of a noisy machine moves
numerator and denominator together.  See benchmarks/README.md.

Results are printed as markdown tables and written to benchmarks/results/latest.json.
Nothing here asserts a timing: the targets section reports, it does not fail.
"""

from __future__ import annotations

import argparse
import cProfile
import faulthandler
import gc
import hashlib
import importlib.util
import io
import json
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio

from _workloads import (
    IMPLEMENTATIONS,
    NOWAIT,
    REFERENCE,
    WORKLOADS,
    Backend,
    Impl,
    ItemFn,
    JobFn,
    Work,
    make_work,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUTPUT = HERE / "results" / "latest.json"
BACKENDS: tuple[Backend, ...] = ("asyncio", "trio")
PEERS = ("taskgroup-semaphore", "aiojobs", "aiometer", "anyio-stream")
WORKPOOL_VARIANTS = ("workpool-map", "workpool-map-unordered", "workpool-consume")
VALIDATE_JOBS = 2000


@dataclass(frozen=True, order=True)
class Case:
    workload: str
    backend: Backend
    impl: str


@dataclass
class Sample:
    """One case's µs/job, indexed by round (None: not run that round)."""

    #: On the clock the ratios use (--clock).
    us: list[float | None] = field(default_factory=list[float | None])
    #: On the other clock, for reference.
    alt_us: list[float | None] = field(default_factory=list[float | None])
    error: str | None = None


# -- running ------------------------------------------------------------------


def job_fns(impl: Impl, workload: str, backend: Backend) -> tuple[JobFn, ItemFn]:
    flavor = impl.sleep if backend == "asyncio" else "anyio"
    return WORKLOADS[workload][flavor]


def job_awaits(impl: Impl, workload: str, backend: Backend) -> str:
    if workload == "noop":
        return "nothing"
    return f"{impl.sleep if backend == 'asyncio' else 'anyio'}.sleep(0)"


def time_once(
    backend: Backend, fn: Callable[[Work], Awaitable[None]], work: Work, timeout: float
) -> tuple[float, float]:
    """Run ``fn(work)`` in a fresh event loop; return the (wall, CPU) seconds it took inside the loop.

    No workload ever waits for I/O or a timer, so the event loop never
    sleeps and on a quiet machine both clocks agree; on a busy one the
    process's CPU time leaves out the time other processes had the core.
    """

    async def main() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        await fn(work)
        return time.perf_counter() - wall, time.process_time() - cpu

    gc.collect()
    # A hang (say, a half-edited hot path) kills the process with a traceback
    # instead of blocking forever; results so far are already on disk.
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        return anyio.run(main, backend=backend)
    finally:
        faulthandler.cancel_dump_traceback_later()


def validate(impl: Impl, workload: str, backend: Backend, workers: int, timeout: float) -> None:
    """Run a small counted batch (untimed; also the warm-up) and check every job ran once."""
    count = [0]
    job, item_job = job_fns(impl, workload, backend)

    async def counted() -> None:
        count[0] += 1
        await job()

    async def counted_item(item: int) -> None:
        count[0] += 1
        await item_job(item)

    n = VALIDATE_JOBS
    time_once(backend, impl.runs[backend], make_work(n, workers, counted, counted_item), timeout)
    if count[0] != n:
        raise AssertionError(f"ran {count[0]} jobs instead of {n}")


# -- statistics ---------------------------------------------------------------


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summary(values: Sequence[float]) -> dict[str, float]:
    q1, q3 = quartiles(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "q1": q1,
        "q3": q3,
    }


def per_round_ratios(samples: dict[Case, Sample], num: Case, den: Case) -> list[float]:
    a, b = samples.get(num), samples.get(den)
    if a is None or b is None:
        return []
    return [x / y for x, y in zip(a.us, b.us, strict=True) if x is not None and y is not None]


# -- output -------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def fmt_ratio(values: list[float]) -> tuple[str, str]:
    if not values:
        return "-", "-"
    s = summary(values)
    return f"{s['median']:.2f}", f"{s['min']:.2f}-{s['max']:.2f}"


def table(
    samples: dict[Case, Sample], impls: dict[str, Impl], workload: str, backend: Backend, clock: str
) -> tuple[str, list[dict[str, Any]]]:
    alt_clock = "wall" if clock == "cpu" else "cpu"
    rows: list[tuple[float, list[str], dict[str, Any]]] = []
    for case, sample in samples.items():
        if case.workload != workload or case.backend != backend:
            continue
        impl = impls[case.impl]
        values = [v for v in sample.us if v is not None]
        if not values:
            rows.append(
                (float("inf"), [case.impl, job_awaits(impl, workload, backend), f"error: {sample.error}"], {})
            )
            continue
        s = summary(values)
        alt_values = [v for v in sample.alt_us if v is not None]
        alt = summary(alt_values)
        to_raw = per_round_ratios(samples, case, Case(workload, "asyncio", REFERENCE))
        to_nowait = per_round_ratios(samples, case, Case(workload, "trio", NOWAIT))
        raw_med, raw_range = fmt_ratio(to_raw)
        # Best against best: the machine's noise only ever adds time, so the
        # fastest run of each is the closest either got to a quiet machine.
        raw = samples.get(Case(workload, "asyncio", REFERENCE))
        raw_values = [v for v in raw.us if v is not None] if raw is not None else []
        best = s["min"] / min(raw_values) if raw_values else None
        best_ratio = "-" if best is None else f"{best:.2f}"
        cells = [
            case.impl,
            job_awaits(impl, workload, backend),
            fmt(s["median"]),
            f"{fmt(s['min'])}-{fmt(s['max'])}",
            f"{fmt(s['q1'])}-{fmt(s['q3'])}",
            fmt(alt["median"]),
            raw_med,
            raw_range,
            best_ratio,
        ]
        record: dict[str, Any] = {
            "workload": workload,
            "backend": backend,
            "impl": case.impl,
            "job_awaits": job_awaits(impl, workload, backend),
            "us_per_job": {clock: s, alt_clock: alt},
            "us_per_job_by_round": {clock: sample.us, alt_clock: sample.alt_us},
            "ratio_to_raw_asyncio": summary(to_raw) if to_raw else None,
            "ratio_to_raw_asyncio_by_round": to_raw,
            "ratio_to_raw_asyncio_best_of_rounds": best,
        }
        if backend == "trio":
            nowait_med, nowait_range = fmt_ratio(to_nowait)
            cells += [nowait_med, nowait_range]
            record["ratio_to_anyio_nowait_trio"] = summary(to_nowait) if to_nowait else None
            record["ratio_to_anyio_nowait_trio_by_round"] = to_nowait
        rows.append((s["median"], cells, record))
    rows.sort(key=lambda r: r[0])
    head = [
        "implementation",
        "job awaits",
        f"{clock} µs/job (median)",
        "min-max",
        "IQR",
        f"{alt_clock} µs/job (median)",
        "x raw asyncio",
        "ratio min-max",
        "x raw, best/best",
    ]
    if backend == "trio":
        head += ["x anyio-nowait (trio)", "ratio min-max"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
    ]
    for _, cells, _ in rows:
        cells = cells + [""] * (len(head) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), [r[2] for r in rows if r[2]]


@dataclass(frozen=True)
class Target:
    what: str
    num: Case
    den: Case
    limit: float  # met when the ratio num/den is at most this (strictly below for "faster than")
    strict: bool = False


def targets(workloads: Sequence[str], backends: Sequence[Backend]) -> list[Target]:
    out: list[Target] = []
    for workload in workloads:
        raw = Case(workload, "asyncio", REFERENCE)
        for backend in backends:
            submit = Case(workload, backend, "workpool-submit")
            if backend == "asyncio":
                limit = 1.5 if workload == "noop" else 1.3
                out.append(Target(f"#3 submit ≤ {limit}x raw asyncio", submit, raw, limit))
                if workload == "noop":
                    out.append(Target("#2 submit ≤ 2x raw asyncio", submit, raw, 2.0))
                    # The same budget for a pool as it comes (max_pending=1000):
                    # the row above queues every job at once, and most of the
                    # difference is the garbage collector walking them.
                    bounded = Case(workload, backend, "workpool-submit-bounded")
                    out.append(Target("#2 submit, default max_pending ≤ 2x raw asyncio", bounded, raw, 2.0))
            else:
                nowait = Case(workload, "trio", NOWAIT)
                out.append(Target("#3 submit ≤ 1.5x anyio-nowait on trio", submit, nowait, 1.5))
            for variant in WORKPOOL_VARIANTS:
                out.append(
                    Target(f"#3 {variant} ≤ 1.3x submit", Case(workload, backend, variant), submit, 1.3)
                )
            for peer in PEERS:
                out.append(
                    Target(f"#3 submit faster than {peer}", submit, Case(workload, backend, peer), 1.0, True)
                )
    return out


def check_targets(samples: dict[Case, Sample], wanted: list[Target]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| workload | backend | target | ratio (median) | min-max | verdict |",
        "|---|---|---|---:|---:|---|",
    ]
    records: list[dict[str, Any]] = []
    for t in wanted:
        ratios = per_round_ratios(samples, t.num, t.den)
        if not ratios:
            continue
        s = summary(ratios)

        def ok(x: float, t: Target = t) -> bool:
            return x < t.limit if t.strict else x <= t.limit

        verdict = (
            "met"
            if ok(s["max"])
            else "missed"
            if not ok(s["min"])
            else ("met (median)" if ok(s["median"]) else "missed (median)")
        )
        lines.append(
            f"| {t.num.workload} | {t.num.backend} | {t.what} | {s['median']:.2f} | "
            f"{s['min']:.2f}-{s['max']:.2f} | {verdict} |"
        )
        records.append(
            {
                "workload": t.num.workload,
                "backend": t.num.backend,
                "target": t.what,
                "limit": t.limit,
                "ratio": s,
                "verdict": verdict,
            }
        )
    return "\n".join(lines), records


def environment() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    import workpool

    src = Path(workpool.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(src.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    versions: dict[str, str | None] = {}
    for dist in ("anyio", "trio", "aiojobs", "aiometer", "workpool"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "git_head": git("rev-parse", "--short", "HEAD"),
        # The hot path is edited while benchmarks run: say exactly what was measured.
        "src_dirty": bool(git("status", "--porcelain", "--", str(src))),
        "src_sha256": digest.hexdigest()[:16],
    }


# -- main ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [impl.name for impl in IMPLEMENTATIONS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=200_000, help="jobs per run (default 200000)")
    p.add_argument("--workers", type=int, default=100, help="workers / concurrency limit (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20000 jobs, 3 rounds")
    p.add_argument("--only", default="", help="comma-separated implementations: " + ", ".join(names))
    p.add_argument("--backend", choices=("asyncio", "trio", "both"), default="both")
    p.add_argument("--workload", default="noop,sleep0", help="comma-separated: noop, sleep0")
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="what µs/job and the ratios measure: process CPU time (default; robust to other "
        "processes on a shared machine) or wall-clock time; the other is shown alongside",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the per-round shuffles")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before one run counts as hung")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    p.add_argument(
        "--update-readme",
        action="store_true",
        help="also put the report into benchmarks/README.md, between its results markers",
    )
    p.add_argument(
        "--profile",
        metavar="IMPL",
        help="instead of benchmarking, run IMPL once under cProfile (first --backend and --workload)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.jobs, args.rounds = 20_000, 3
    args.only = [s for s in args.only.split(",") if s]
    args.workloads = [s for s in args.workload.split(",") if s]
    for name in [*args.only, *([args.profile] if args.profile else [])]:
        if name not in names:
            p.error(f"unknown implementation {name!r}; choose from {', '.join(names)}")
    for workload in args.workloads:
        if workload not in WORKLOADS:
            p.error(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    if args.jobs < 1 or args.workers < 1 or args.rounds < 1:
        p.error("--jobs, --workers and --rounds must be positive")
    return args


def available_backends(wanted: str) -> tuple[list[Backend], list[str]]:
    backends: list[Backend] = list(BACKENDS) if wanted == "both" else [wanted]  # type: ignore[list-item]
    notes: list[str] = []
    if "trio" in backends and importlib.util.find_spec("trio") is None:
        backends.remove("trio")
        notes.append("trio is not installed: trio runs skipped")
    return backends, notes


def profile(args: argparse.Namespace, impls: dict[str, Impl], backends: list[Backend]) -> int:
    impl = impls[args.profile]
    backend: Backend | None = next((b for b in backends if b in impl.runs), None)
    if backend is None:
        print(f"{impl.name} does not run on {', '.join(backends)}", file=sys.stderr)
        return 2
    workload = args.workloads[0]
    job, item_job = job_fns(impl, workload, backend)
    work = make_work(args.jobs, args.workers, job, item_job)
    time_once(
        backend, impl.runs[backend], make_work(VALIDATE_JOBS, args.workers, job, item_job), args.timeout
    )
    profiler = cProfile.Profile()
    profiler.enable()
    elapsed, _ = time_once(backend, impl.runs[backend], work, args.timeout)
    profiler.disable()
    env = environment()
    print(
        f"workpool at {env['git_head']}{' + uncommitted src changes' if env['src_dirty'] else ''} "
        f"(src sha256 {env['src_sha256']})\n"
        f"{impl.name} on {backend}, {workload}, {args.jobs} jobs, {args.workers} workers: "
        f"{elapsed / args.jobs * 1e6:.2f} µs/job under cProfile (inflated; compare shares, not totals)"
    )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    impls = {impl.name: impl for impl in IMPLEMENTATIONS}
    backends, notes = available_backends(args.backend)
    if args.profile:
        return profile(args, impls, backends)

    chosen = [impls[n] for n in args.only] if args.only else [i for i in IMPLEMENTATIONS if not i.optional]
    for impl in chosen:
        if impl.unavailable:
            notes.append(f"{impl.name} skipped: {impl.unavailable}")
    chosen = [i for i in chosen if not i.unavailable]
    # The denominators always run: raw asyncio for every ratio (on asyncio,
    # even for a trio-only run), and the nowait path for the trio ratios.
    denominators: list[tuple[Impl, Backend]] = [(impls[REFERENCE], "asyncio")]
    if "trio" in backends:
        denominators.append((impls[NOWAIT], "trio"))

    cases: list[Case] = []
    for workload in args.workloads:
        for impl in chosen:
            if impl.workloads is None or workload in impl.workloads:
                cases += [Case(workload, b, impl.name) for b in backends if b in impl.runs]
        for impl, b in denominators:
            if Case(workload, b, impl.name) not in cases:
                cases.append(Case(workload, b, impl.name))
    cases.sort()

    print(
        f"# workpool benchmarks: {args.jobs} jobs, {args.workers} workers, {args.rounds} rounds, "
        f"{len(cases)} cases per round",
        file=sys.stderr,
    )
    samples: dict[Case, Sample] = {case: Sample() for case in cases}
    for case in cases:
        impl = impls[case.impl]
        try:
            validate(impl, case.workload, case.backend, args.workers, args.timeout)
        except Exception as exc:
            samples[case].error = f"{type(exc).__name__}: {exc}"
            print(
                f"  {case.impl} on {case.backend} ({case.workload}) failed validation: {exc!r}",
                file=sys.stderr,
            )

    env = environment()
    meta: dict[str, Any] = {
        "command": " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "jobs": args.jobs,
        "workers": args.workers,
        "rounds": args.rounds,
        "seed": args.seed,
        "clock": args.clock,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": os.getloadavg(),
        "notes": notes,
        **env,
    }
    rng = random.Random(args.seed)
    started = time.monotonic()
    for r in range(args.rounds):
        order = [c for c in cases if samples[c].error is None]
        rng.shuffle(order)
        t0 = time.monotonic()
        for sample in samples.values():
            sample.us.append(None)
            sample.alt_us.append(None)
        for case in order:
            impl = impls[case.impl]
            job, item_job = job_fns(impl, case.workload, case.backend)
            work = make_work(args.jobs, args.workers, job, item_job)
            try:
                wall, cpu = time_once(case.backend, impl.runs[case.backend], work, args.timeout)
            except Exception as exc:
                samples[case].error = f"{type(exc).__name__}: {exc}"
                print(f"  {case.impl} on {case.backend} ({case.workload}) failed: {exc!r}", file=sys.stderr)
                continue
            main, alt = (cpu, wall) if args.clock == "cpu" else (wall, cpu)
            samples[case].us[r] = main / args.jobs * 1e6
            samples[case].alt_us[r] = alt / args.jobs * 1e6
        print(f"  round {r + 1}/{args.rounds}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        write_json(args.output, meta, samples, impls, args, final=False)

    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    text = write_json(args.output, meta, samples, impls, args, final=True)
    print(text)
    if args.update_readme:
        update_readme(text)
    return 0


def update_readme(report: str, path: Path = HERE / "README.md") -> None:
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    text = path.read_text()
    head, found, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        print(f"{path}: no {start} ... {end} markers; README not updated", file=sys.stderr)
        return
    path.write_text(f"{head}{start}\n{report}\n{end}{tail}")


def write_json(
    path: Path,
    meta: dict[str, Any],
    samples: dict[Case, Sample],
    impls: dict[str, Impl],
    args: argparse.Namespace,
    *,
    final: bool,
) -> str:
    """Write the results so far to `path`; return the markdown report."""
    backends: list[Backend] = sorted({c.backend for c in samples}, key=BACKENDS.index)
    parts = [
        f"`{meta['command']}`\n",
        f"workpool benchmarks: {args.jobs} jobs, {args.workers} workers, {args.rounds} interleaved rounds; "
        f"python {meta['python']}, anyio {meta['versions']['anyio']}, trio {meta['versions']['trio']}; "
        f"workpool at {meta['git_head']}{' + uncommitted src changes' if meta['src_dirty'] else ''} "
        f"(src sha256 {meta['src_sha256']})",
    ]
    parts += [f"note: {n}" for n in meta["notes"]]
    results: list[dict[str, Any]] = []
    for backend in backends:
        for workload in args.workloads:
            text, records = table(samples, impls, workload, backend, args.clock)
            results += records
            parts.append(
                f"\n### {backend}, {workload} job (µs per job of {args.clock} time; "
                "ratios are medians of per-round ratios)\n"
            )
            parts.append(text)
    target_text, target_records = check_targets(samples, targets(args.workloads, backends))
    parts.append("\n### targets (issues #2 and #3; informational, never asserted)\n")
    parts.append(target_text)
    errors = {f"{c.impl}/{c.backend}/{c.workload}": s.error for c, s in samples.items() if s.error}
    for name, error in errors.items():
        parts.append(f"error: {name}: {error}")
    report = "\n".join(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "complete": final,
        "meta": meta,
        "implementations": {
            name: {"summary": impl.summary, "backends": sorted(impl.runs), "sleep_on_asyncio": impl.sleep}
            for name, impl in impls.items()
        },
        "results": results,
        "targets": target_records,
        "errors": errors,
        "report_markdown": report,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return report


if __name__ == "__main__":
    sys.exit(main())
