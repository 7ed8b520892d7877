"""examples/asgi_service.py under a real uvicorn, with real HTTP requests.

asyncio only: uvicorn runs on asyncio.  The server runs inside the test's own
event loop (``Server.serve`` in a task), on a socket the test bound to a free
port of 127.0.0.1 before starting it, so requests can be sent at once (the
kernel queues the connections until uvicorn accepts them).  The test learns
that the server has begun shutting down from the ASGI lifespan messages
themselves, and what the pool is doing from the app's state, never by
sleeping.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from helpers import no_leaks

if TYPE_CHECKING:
    import httpx

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from workpool import PoolClosed  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)]

EXAMPLE = Path(__file__).parent.parent / "examples" / "asgi_service.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("asgi_service_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs resolves the Service class's annotations through it
    spec.loader.exec_module(module)
    return module


service_example = load_example()

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]


class LifespanWatch:
    """ASGI middleware that reports the lifespan's progress with events."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.started = anyio.Event()
        self.shutdown_requested = anyio.Event()
        self.shutdown_complete = anyio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.shutdown":
                self.shutdown_requested.set()
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.started.set()
            elif message["type"] == "lifespan.shutdown.complete":
                self.shutdown_complete.set()

        await self.app(scope, watched_receive, watched_send)


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient, LifespanWatch]]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1; yield the server, a client and the watch.

    On exit the server is asked to stop (``should_exit``) and waited for.
    """
    watch = LifespanWatch(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        watch, lifespan="on", log_level="warning", http="h11", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    try:
        async with (
            anyio.create_task_group() as tg,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            tg.start_soon(server.serve, [sock])
            await watch.started.wait()
            yield server, client, watch
            await client.aclose()  # uvicorn waits for open keep-alive connections
            server.should_exit = True
    finally:
        sock.close()


async def test_service_runs_background_work_and_drains_it_at_shutdown() -> None:
    gate = anyio.Event()
    processed: list[str] = []

    async def process(order_id: str) -> None:
        await gate.wait()  # held until the server is shutting down
        await anyio.sleep(0.01)
        processed.append(order_id)

    app = service_example.create_app(process=process, max_workers=2, max_pending=10, refresh_every=0.02)
    threads_before = threading.active_count()
    with anyio.fail_after(20):
        async with no_leaks():
            async with running(app) as (server, client, watch):
                service = app.state.service
                # The periodic job refreshes the cache: long-poll for a third version.
                response = await client.get("/rates", params={"newer_than": 2})
                assert response.status_code == 200
                assert response.json()["version"] >= 3
                assert response.json()["rates"]["EUR"] == 1.0

                statuses = [(await client.post(f"/orders/{n}")).status_code for n in range(6)]
                assert statuses == [202] * 6
                stats = (await client.get("/stats")).json()
                assert stats["busy"] + stats["queued"] >= 6  # all held by the gate
                assert stats["refreshes"] >= 3

                await client.aclose()
                server.should_exit = True
                await watch.shutdown_requested.wait()
                # Let the lifespan reach the pool's exit, where it waits for the jobs.
                await anyio.wait_all_tasks_blocked()
                assert processed == []
                assert service.refresher.stopped()  # closing the pool stopped the schedule
                with pytest.raises(PoolClosed):
                    service.pool.submit_nowait(process, "late")
                refreshes = service.refresher.runs
                gate.set()  # the jobs may now finish: the pool is draining them
                await watch.shutdown_complete.wait()
            assert sorted(processed, key=int) == [str(n) for n in range(6)]
            assert service.refresher.runs == refreshes
            stats = service.pool.stats
            assert (stats.completed, stats.failed, stats.cancelled, stats.workers) == (
                6 + refreshes,
                0,
                0,
                0,
            )
    assert threading.active_count() == threads_before


async def test_a_full_pool_sheds_requests_with_503() -> None:
    gate = anyio.Event()

    async def process(order_id: str) -> None:
        await gate.wait()

    app = service_example.create_app(process=process, max_workers=1, max_pending=2, refresh_every=3600)
    with anyio.fail_after(20):
        async with no_leaks(), running(app) as (_, client, _):
            # The refresher's first run holds the worker for an instant; what
            # counts is that three orders fit (1 running + 2 queued) and no more.
            await client.get("/rates", params={"newer_than": 0})
            statuses = [(await client.post(f"/orders/{n}")).status_code for n in range(5)]
            assert statuses == [202, 202, 202, 503, 503]
            shed = await client.post("/orders/late")
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            gate.set()


async def test_work_stuck_past_the_grace_period_is_cancelled_and_the_server_still_stops() -> None:
    started = anyio.Event()
    cancelled: list[str] = []

    async def process(order_id: str) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(order_id)
            raise

    app = service_example.create_app(process=process, refresh_every=3600, shutdown_grace=0.1)
    threads_before = threading.active_count()
    with anyio.fail_after(20):
        async with no_leaks():
            async with running(app) as (_, client, watch):
                assert (await client.post("/orders/stuck")).status_code == 202
                await started.wait()
            assert watch.shutdown_complete.is_set()
    assert cancelled == ["stuck"]
    stats = app.state.service.pool.stats
    assert stats.cancelled == 1
    assert stats.workers == 0
    assert threading.active_count() == threads_before


async def test_the_example_module_builds_a_default_app() -> None:
    # `python examples/asgi_service.py` serves this object.
    assert service_example.app.router.routes
    assert {route.path for route in service_example.app.router.routes} == {
        "/orders/{order_id}",
        "/rates",
        "/stats",
    }
