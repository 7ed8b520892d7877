# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""Quick start: submit jobs, await their results, and map a function over items."""

from __future__ import annotations

import sys

# --8<-- [start:quickstart]
import anyio

from workpool import Pool


async def fetch(url: str) -> int:
    await anyio.sleep(0.01)  # stands in for real I/O
    return len(url)


async def main() -> None:
    urls = [f"https://example.com/page/{n}" for n in range(20)]

    async with Pool(max_workers=5) as pool:
        # One job: submit it, keep the handle, await the handle for the result.
        job = await pool.submit(fetch, urls[0])
        assert await job == len(urls[0])

        # Many jobs: map runs at most max_workers at a time and yields in input order.
        sizes = [size async for size in pool.map(fetch, urls)]
        assert sizes == [len(url) for url in urls]
        print(f"fetched {len(sizes)} pages, {sum(sizes)} bytes")

    # Leaving the block waited for every job and every worker: nothing runs now.
    assert pool.stats.workers == 0


# --8<-- [end:quickstart]


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
