# Executed by tests/test_leaks_docs.py: keep it runnable and self-checking.
"""A price service that leaks tasks, the dump that finds them, the fix, and its test.

`main` runs the leaky version inside `no_leaks` and prints what it caught,
then runs the fixed version, which passes.  Run it on virtual time (trio's
MockClock) and the minute-long sleeps take no time at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

from workpool import Pool, summarize_tasks
from workpool.testing import LeakError, no_leaks


async def fetch_price(symbol: str) -> float:
    await anyio.sleep(0.1)  # stands in for an HTTP call
    return 42.0


# --8<-- [start:before]
class LeakyPriceService:
    """Request handlers get the task group of the app's lifespan."""

    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self.prices: dict[str, float] = {}
        self.send, self.receive = anyio.create_memory_object_stream[str](100)

    def start_workers(self, count: int) -> None:
        for n in range(count):
            self.tg.start_soon(self.refresh_worker, name=f"refresh-worker-{n}")

    async def refresh_worker(self) -> None:
        async for symbol in self.receive:  # nobody closes `send`: waits forever
            self.prices[symbol] = await fetch_price(symbol)

    async def handle_subscribe(self, symbol: str) -> str:
        self.tg.start_soon(self.poll, symbol)  # one poller per request, never stopped
        return "subscribed"

    async def poll(self, symbol: str) -> None:
        while True:
            await self.send.send(symbol)
            await anyio.sleep(60)


# --8<-- [end:before]


# --8<-- [start:after]
class PriceService:
    """Every task the service starts is a job of the pool its lifespan owns."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.prices: dict[str, float] = {}

    async def handle_subscribe(self, symbol: str) -> str:
        # A periodic job: it ends when the pool closes, with the service.
        self.pool.every(60, self.refresh, symbol, first_run_now=True)
        return "subscribed"

    async def refresh(self, symbol: str) -> None:
        self.prices[symbol] = await fetch_price(symbol)


@asynccontextmanager
async def lifespan() -> AsyncIterator[PriceService]:
    async with Pool(max_workers=8, name="prices") as pool:
        yield PriceService(pool)


# --8<-- [end:after]


# --8<-- [start:test]
async def test_subscriptions_end_with_the_service() -> None:
    async with no_leaks():
        async with lifespan() as service:
            assert await service.handle_subscribe("ACME") == "subscribed"
            await anyio.sleep(150)  # two more refreshes
        assert service.prices == {"ACME": 42.0}


# --8<-- [end:test]


async def run_leaky() -> LeakError:
    async with anyio.create_task_group() as lifespan_tg:
        service = LeakyPriceService(lifespan_tg)
        try:
            async with no_leaks(timeout=3600):  # an hour: time enough, were it to end
                service.start_workers(3)
                for symbol in ("ACME", "INITECH"):
                    await service.handle_subscribe(symbol)
                await anyio.sleep(150)
        except LeakError as caught:
            error = caught
        else:  # pragma: no cover - the leak is the point
            raise AssertionError("the leaky service was not caught")
        print("\n".join(str(group) for group in summarize_tasks(error.leaks)))
        print()
        print(error)
        lifespan_tg.cancel_scope.cancel()
        service.send.close()
        service.receive.close()
    return error


async def main() -> None:
    error = await run_leaky()
    assert sorted((r.created_by.function, r.blocked_on) for r in error.leaks if r.created_by) == [
        ("LeakyPriceService.handle_subscribe", "anyio.sleep"),
        ("LeakyPriceService.handle_subscribe", "anyio.sleep"),
        ("LeakyPriceService.start_workers", "MemoryObjectReceiveStream.receive"),
        ("LeakyPriceService.start_workers", "MemoryObjectReceiveStream.receive"),
        ("LeakyPriceService.start_workers", "MemoryObjectReceiveStream.receive"),
    ]
    await test_subscriptions_end_with_the_service()
    print("the fixed service leaves nothing behind")


if __name__ == "__main__":
    import trio.testing

    anyio.run(main, backend="trio", backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)})
