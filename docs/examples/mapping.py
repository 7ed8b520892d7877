# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""`Pool.map`: ordered and unordered results, endless inputs, and stopping early."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator

import anyio

from workpool import Pool


async def square(n: int) -> int:
    # Later items finish first, so completion order differs from input order.
    await anyio.sleep(0.001 * (10 - n % 10))
    return n * n


# --8<-- [start:ordered]
async def ordered_and_unordered() -> None:
    async with Pool(max_workers=10) as pool:
        # ordered=True (the default): values come out in the order of the items.
        in_order = [value async for value in pool.map(square, range(10))]
        assert in_order == [n * n for n in range(10)]

        # ordered=False: values come out as their jobs finish.
        as_done = [value async for value in pool.map(square, range(10), ordered=False)]
        assert sorted(as_done) == in_order


# --8<-- [end:ordered]


# --8<-- [start:endless]
async def numbers() -> AsyncIterator[int]:
    for n in itertools.count():  # never ends
        yield n


async def first_big_square() -> int:
    # map reads its items lazily, keeping at most max_workers + max_pending of
    # them in flight, so an endless source runs in constant memory.
    async with Pool(max_workers=4, max_pending=4) as pool, pool.map(square, numbers()) as results:
        async for value in results:
            if value > 1000:
                # Leaving the loop stops reading numbers() and cancels the
                # map's unfinished jobs.
                return value
    raise AssertionError("unreachable: numbers() never ends")


# --8<-- [end:endless]


async def main() -> None:
    await ordered_and_unordered()
    assert await first_big_square() == 32 * 32
    print("map ok")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
