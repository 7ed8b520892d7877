"""What each commit of the hot path bought: run.py against several commits' src/, side by side.

    python benchmarks/history.py 29782e7 1f99222 HEAD --reps 3
    python benchmarks/history.py 29782e7 HEAD --only workpool-submit --backend both

Each commit's ``src/`` is exported with ``git archive`` into a temporary
directory and put first on ``PYTHONPATH`` of a ``run.py`` child process (one
round each), and the commits take turns ``--reps`` times so that the noise of
a shared machine spreads over all of them.  The table shows, per commit and
case, the median over the repetitions of the ratio to the same-run reference
(raw asyncio on asyncio, the anyio ``*_nowait`` path on trio) and of the CPU
µs/job.  The benchmark code itself is always the working tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def export_src(commit: str, into: Path) -> Path:
    """Write `commit`'s src/ under `into`; return the directory to put on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], cwd=REPO, check=True, capture_output=True
    ).stdout
    target = into / commit
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


def run_once(src: Path, args: argparse.Namespace, output: Path) -> dict[str, object]:
    command = [
        sys.executable,
        str(HERE / "run.py"),
        "--jobs",
        str(args.jobs),
        "--rounds",
        "1",
        "--only",
        args.only,
        "--backend",
        args.backend,
        "--workload",
        args.workload,
        "--output",
        str(output),
    ]
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run(command, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    result: dict[str, object] = json.loads(output.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("commits", nargs="+", help="commits (or refs) to compare, oldest first")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument(
        "--only", default="workpool-submit,workpool-submit-bounded,workpool-map,workpool-consume"
    )
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    parser.add_argument("--workload", default="noop,sleep0")
    args = parser.parse_args()

    # (commit, workload, backend, impl) -> [(ratio, µs)]
    samples: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {commit: export_src(commit, Path(tmp)) for commit in args.commits}
        for rep in range(args.reps):
            for commit in args.commits:
                print(f"rep {rep + 1}/{args.reps}: {commit}", file=sys.stderr, flush=True)
                result = run_once(sources[commit], args, Path(tmp) / "out.json")
                for case in _cases(result):
                    key = (commit, case["workload"], case["backend"], case["impl"])
                    samples.setdefault(key, []).append((case["ratio"], case["us"]))

    print(f"`python benchmarks/history.py {' '.join(sys.argv[1:])}`\n")
    print("| commit | workload | backend | implementation | x reference (median) | µs/job (median) |")
    print("|---|---|---|---|---:|---:|")
    for (commit, workload, backend, impl), values in sorted(
        samples.items(), key=lambda item: (item[0][1], item[0][2], item[0][3], args.commits.index(item[0][0]))
    ):
        ratio = statistics.median(v[0] for v in values)
        us = statistics.median(v[1] for v in values)
        print(f"| {commit} | {workload} | {backend} | {impl} | {ratio:.2f} | {us:.2f} |")


def _cases(result: dict[str, object]) -> list[dict[str, object]]:
    """One entry per (workload, backend, impl) of run.py's JSON, with its ratio to the reference."""
    results = result.get("results")
    if not isinstance(results, list):
        raise SystemExit("run.py's JSON has no 'results' list; has its format changed?")
    cases: list[dict[str, object]] = []
    for entry in results:
        assert isinstance(entry, dict)
        # On trio the reference is the anyio *_nowait path, on asyncio raw asyncio.
        key = "ratio_to_anyio_nowait_trio" if entry["backend"] == "trio" else "ratio_to_raw_asyncio"
        ratio = entry.get(key) or {}
        us = entry.get("us_per_job") or {}
        assert isinstance(ratio, dict)
        assert isinstance(us, dict)
        cpu = us.get("cpu") or {}
        assert isinstance(cpu, dict)
        if "median" in ratio and "median" in cpu:
            cases.append(
                {
                    "workload": entry["workload"],
                    "backend": entry["backend"],
                    "impl": entry["impl"],
                    "ratio": ratio["median"],
                    "us": cpu["median"],
                }
            )
    return cases


if __name__ == "__main__":
    main()
