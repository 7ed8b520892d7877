"""Jobs per second through Redis: workpool's RedisStream against arq, with 1, 2 and 4 worker processes.

    .venv/bin/pip install -e '.[redis,bench]'        # redis-py and arq
    .venv/bin/python benchmarks/redis_bench.py        # 20,000 jobs, 1/2/4 processes, both systems
    .venv/bin/python benchmarks/redis_bench.py --jobs 5000 --processes 1,2 --only workpool

Each case uses the same Redis server and fresh keys, and runs like this:

1. the queue is filled with N jobs (not timed);
2. P worker processes start, connect, and wait at a barrier;
3. the clock starts when the barrier opens, and stops when the parent, polling
   Redis every 5 ms, sees every job done: for workpool, the group has read every
   entry and has none pending (every job acknowledged); for arq, its queue
   (a sorted set that a job leaves when it finishes) is empty;
4. the workers are terminated.

The job is a no-op (``--job-ms`` makes it await a sleep instead), so the
figures measure the queue's own cost per job: fetching, acknowledging, and for
arq its per-job bookkeeping.  Each worker process runs ``--concurrency`` jobs at
once: workpool as ``Pool(max_workers=C, max_pending=0)`` consuming a
`RedisStream`; arq as ``Worker(max_jobs=C, poll_delay=--arq-poll-delay)``
(arq polls its queue; its default poll_delay of 0.5 s would cap it far below
the figures here, so it runs with 0 by default, its best case).
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_URL = os.environ.get("WORKPOOL_REDIS_URL", "redis://127.0.0.1:6379/0")
SYSTEMS = ("workpool", "arq")


# -- worker processes ------------------------------------------------------------


async def _barrier(url: str, key: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.rpush(f"{key}:ready", 1)
        await client.blpop([f"{key}:go"], timeout=0)
    finally:
        await client.aclose()


async def _workpool_worker(args: argparse.Namespace) -> None:
    import anyio

    from workpool import Pool
    from workpool.redis import RedisStream

    delay = args.job_ms / 1000

    async def job(payload: Any) -> None:
        if delay:
            await anyio.sleep(delay)

    source: RedisStream[Any] = RedisStream(args.url, stream=args.key, group="bench", claim_idle=60)
    async with source, Pool(max_workers=args.concurrency, max_pending=0) as pool:
        await _barrier(args.url, args.key)
        await pool.consume(source, job)


async def _arq_worker(args: argparse.Namespace) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    delay = args.job_ms / 1000

    async def noop(ctx: dict[str, Any], n: int) -> None:
        if delay:
            await asyncio.sleep(delay)

    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(args.url),
        queue_name=args.key,
        max_jobs=args.concurrency,
        poll_delay=args.arq_poll_delay,
        keep_result=0,
        handle_signals=False,
    )
    await _barrier(args.url, args.key)
    await worker.main()


# -- the parent -------------------------------------------------------------------


async def _fill(system: str, url: str, key: str, jobs: int) -> None:
    if system == "workpool":
        from workpool.redis import RedisProducer

        async with RedisProducer(url, stream=key) as producer:
            await producer.enqueue_many({"n": n} for n in range(jobs))
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        await client.xgroup_create(key, "bench", id="0")
        await client.aclose()
    else:
        from arq import create_pool
        from arq.connections import RedisSettings

        pool = await create_pool(RedisSettings.from_dsn(url), default_queue_name=key)
        for start in range(0, jobs, 500):
            await asyncio.gather(
                *(
                    pool.enqueue_job("noop", n, _job_id=f"{key}:{n}")
                    for n in range(start, min(jobs, start + 500))
                )
            )
        await pool.aclose()


async def _done(client: Any, system: str, key: str, jobs: int) -> bool:
    if system == "workpool":
        (group,) = await client.xinfo_groups(key)
        return bool(group["pending"] == 0 and group["entries-read"] == jobs)
    return bool(await client.zcard(key) == 0)


async def _run_case(args: argparse.Namespace, system: str, processes: int) -> float:
    import redis.asyncio as aioredis

    key = f"workpool-bench:{system}:{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(args.url, decode_responses=True)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await _fill(system, args.url, key, args.jobs)
        command = [
            sys.executable,
            __file__,
            "--role",
            system,
            "--url",
            args.url,
            "--key",
            key,
            "--concurrency",
            str(args.concurrency),
            "--job-ms",
            str(args.job_ms),
            "--arq-poll-delay",
            str(args.arq_poll_delay),
        ]
        # Popen only forks: it does not wait for the child, so the loop is not blocked.
        workers = [subprocess.Popen(command, stdin=subprocess.DEVNULL) for _ in range(processes)]  # noqa: ASYNC220
        for _ in range(processes):
            if await client.blpop([f"{key}:ready"], timeout=60) is None:
                raise RuntimeError("a worker process did not start within 60 s")
        started = time.perf_counter()
        await client.rpush(f"{key}:go", *[1] * processes)
        deadline = started + args.timeout
        while not await _done(client, system, key, args.jobs):
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{system} with {processes} processes did not finish within {args.timeout} s"
                )
            if any(worker.poll() is not None for worker in workers):
                raise RuntimeError(f"a {system} worker process exited early")
            await asyncio.sleep(0.005)
        return time.perf_counter() - started
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        keys = [k async for k in client.scan_iter(match=f"{key}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    systems = [s for s in SYSTEMS if s in args.only.split(",")]
    counts = [int(p) for p in args.processes.split(",")]
    seconds: dict[tuple[str, int], list[float]] = {}
    for round_ in range(args.rounds):
        for processes in counts:
            for system in systems:
                elapsed = await _run_case(args, system, processes)
                seconds.setdefault((system, processes), []).append(elapsed)
                print(
                    f"round {round_ + 1}: {system:8} x{processes}: {args.jobs / elapsed:9,.0f} jobs/s",
                    file=sys.stderr,
                )
    versions = {name: metadata.version(name) for name in ("redis", "arq", "anyio")}
    import redis as sync_redis

    with sync_redis.Redis.from_url(args.url) as admin:
        server = admin.info("server")["redis_version"]
    print(
        f"\n{args.jobs:,} jobs, concurrency {args.concurrency} per process, job: "
        f"{'no-op' if not args.job_ms else f'sleep {args.job_ms} ms'}; Redis {server}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; arq poll_delay {args.arq_poll_delay}; median of {args.rounds} round(s)\n"
    )
    print("| processes | " + " | ".join(f"{s} jobs/s" for s in systems) + " |")
    print("|---:|" + "---:|" * len(systems))
    results = []
    for processes in counts:
        cells = []
        for system in systems:
            median = statistics.median(seconds[(system, processes)])
            cells.append(f"{args.jobs / median:,.0f}")
            results.append({"system": system, "processes": processes, "seconds": median})
        print(f"| {processes} | " + " | ".join(cells) + " |")
    return {"jobs": args.jobs, "concurrency": args.concurrency, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="Redis URL (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per case (default: %(default)s)")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=50, help="jobs at once per process (default: 50)")
    parser.add_argument("--job-ms", type=float, default=0.0, help="each job sleeps this long (default: 0)")
    parser.add_argument("--arq-poll-delay", type=float, default=0.0, help="arq's poll_delay (default: 0)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the median is reported (default: 1)")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="systems to run (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a case counts as hung")
    parser.add_argument("--output", help="also write the results as JSON to this file")
    # Internal: how the parent starts a worker process.
    parser.add_argument("--role", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "workpool":
        import anyio

        anyio.run(_workpool_worker, args)
    elif args.role == "arq":
        asyncio.run(_arq_worker(args))
    else:
        report = asyncio.run(_main(args))
        if args.output:
            Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
