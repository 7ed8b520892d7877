"""A small web service whose background work lives in a `workpool.Pool`.

The pool is opened by the app's lifespan, so it lives exactly as long as the
server: request handlers hand it work with ``submit_nowait`` (answering 503
when it is full), a periodic job keeps a cache fresh, and when the server
stops, the lifespan leaves the pool's block, which stops the periodic job and
gives the accepted work ``shutdown_grace`` seconds to finish.

Run it (it needs ``pip install starlette uvicorn``)::

    python examples/asgi_service.py
    curl -X POST localhost:8000/orders/42     # 202, or 503 when the pool is full
    curl 'localhost:8000/rates?newer_than=0'  # the cache the periodic job refreshes
    curl localhost:8000/stats

Ctrl+C (or SIGTERM) stops it gracefully: uvicorn owns the signals, stops
taking requests and then runs the lifespan's exit, where the pool drains.
tests/test_asgi_service.py runs this app under a real uvicorn.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workpool import Job, PeriodicJob, Pool, PoolClosed, PoolFull

logger = logging.getLogger("asgi_service")


# --8<-- [start:work]
async def send_receipt(order_id: str) -> None:
    """The background work of a request: stands in for an email or a webhook call."""
    await anyio.sleep(0.05)
    logger.info("receipt for order %s sent", order_id)


async def fetch_rates() -> dict[str, float]:
    """What the periodic job refreshes: stands in for a call to another service."""
    await anyio.sleep(0.01)
    return {"EUR": 1.0, "USD": 1.08, "GBP": 0.85}


class RatesCache:
    """The latest rates, with a version that each refresh increments."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, float]]]) -> None:
        self._fetch = fetch
        self.rates: dict[str, float] = {}
        self.version = 0
        self._changed = anyio.Event()

    async def refresh(self) -> None:
        self.rates = await self._fetch()
        self.version += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_newer_than(self, version: int) -> None:
        while self.version <= version:
            await self._changed.wait()


# --8<-- [end:work]


@attrs.define
class Service:
    """What the lifespan sets up: handlers find it in ``request.state.service``."""

    pool: Pool
    cache: RatesCache
    refresher: PeriodicJob


def log_failure(job: Job[Any], exc: Exception) -> None:
    # One failed receipt must not stop the service: log it and go on.
    logger.error("background job %r failed", job, exc_info=exc)


def create_app(
    *,
    process: Callable[[str], Awaitable[object]] = send_receipt,
    fetch: Callable[[], Awaitable[dict[str, float]]] = fetch_rates,
    max_workers: int = 8,
    max_pending: int = 100,
    refresh_every: float = 30.0,
    shutdown_grace: float = 10.0,
) -> Starlette:
    """The service; the arguments let a test (or a deployment) swap the work and tune the pool."""

    # --8<-- [start:lifespan]
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Service]]:
        async with Pool(
            max_workers=max_workers,
            max_pending=max_pending,  # beyond this, requests are shed (503), not queued
            on_error=log_failure,
            shutdown_grace=shutdown_grace,  # at shutdown: drain for this long, then cancel
            name="service",
        ) as pool:
            cache = RatesCache(fetch)
            refresher = pool.every(refresh_every, cache.refresh, first_run_now=True)
            app.state.service = service = Service(pool, cache, refresher)
            yield {"service": service}  # the server runs while the lifespan is suspended here
            stats = pool.stats
            logger.info("shutting down: %d jobs running, %d queued", stats.busy, stats.queued)
        # Here the refresher has stopped and every job has finished or been cancelled.

    # --8<-- [end:lifespan]

    # --8<-- [start:handlers]
    async def create_order(request: Request) -> JSONResponse:
        service: Service = request.state.service
        order_id = request.path_params["order_id"]
        try:
            service.pool.submit_nowait(process, order_id)  # never waits: a request must not hang
        except PoolFull:
            return JSONResponse({"error": "busy, try again"}, status_code=503, headers={"Retry-After": "1"})
        except PoolClosed:
            return JSONResponse({"error": "shutting down"}, status_code=503)
        return JSONResponse({"accepted": order_id}, status_code=202)

    async def rates(request: Request) -> JSONResponse:
        cache = request.state.service.cache
        newer_than = int(request.query_params.get("newer_than", -1))
        with anyio.move_on_after(10):  # a long poll: wait for a newer version, for a while
            await cache.wait_newer_than(newer_than)
        return JSONResponse({"version": cache.version, "rates": cache.rates})

    # --8<-- [end:handlers]

    async def stats(request: Request) -> JSONResponse:
        service: Service = request.state.service
        return JSONResponse({**attrs.asdict(service.pool.stats), "refreshes": service.refresher.runs})

    routes = [
        Route("/orders/{order_id}", create_order, methods=["POST"]),
        Route("/rates", rates),
        Route("/stats", stats),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


app = create_app()

if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=8000)
