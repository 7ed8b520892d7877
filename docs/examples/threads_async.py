# Executed by tests/test_threads_docs.py on asyncio and trio: keep it runnable and self-checking.
"""Blocking code as jobs of an async Pool: run_in_thread, and check_cancelled inside the thread."""

from __future__ import annotations

import hashlib
import sys

import anyio

# --8<-- [start:run_in_thread]
from workpool import Pool, check_cancelled, run_in_thread


def checksum(data: bytes, rounds: int) -> str:
    """CPU-heavy, blocking work: it must not run in the event loop's thread."""
    digest = data
    for n in range(rounds):
        if n % 1000 == 0:
            check_cancelled()  # raises JobCancelled once the job is cancelled
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:12]


async def main() -> None:
    blobs = [f"blob {n}".encode() for n in range(8)]
    async with Pool(max_workers=4) as pool:  # at most 4 threads at once
        jobs = [await pool.submit(run_in_thread, checksum, blob, 2_000) for blob in blobs]
        sums = [await job for job in jobs]
        print(f"{len(sums)} checksums, the first {sums[0]}")

        # A job that would run for minutes: cancelling it raises the flag that
        # check_cancelled() reads, and the pool waits for the thread to stop.
        endless = await pool.submit(run_in_thread, checksum, b"big", 10**12)
        with anyio.move_on_after(0.05):
            await endless
        endless.cancel()
    assert endless.cancelled()
    assert pool.stats.completed == len(blobs)
    assert pool.stats.cancelled == 1


# --8<-- [end:run_in_thread]


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
