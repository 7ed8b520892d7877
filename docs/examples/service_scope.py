# Executed by tests/test_docs_examples.py on asyncio and trio: keep it runnable and self-checking.
"""A pool as a service scope: opened in an ASGI lifespan, fed by request handlers."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus

from workpool import Job, Pool, PoolClosed, PoolFull

sent: list[str] = []
failures: list[str] = []


async def send_welcome_email(address: str) -> None:
    await anyio.sleep(0.001)  # stands in for an SMTP call
    sent.append(address)


# --8<-- [start:lifespan]
def report_failure(job: Job[Any], exc: Exception) -> None:
    # In a service one bad job must not stop the others: log it and go on.
    failures.append(f"{job!r}: {exc!r}")


@asynccontextmanager
async def lifespan(app: object) -> AsyncGenerator[dict[str, Pool], None]:
    # Starlette and FastAPI take this function as `lifespan=`; the dict it
    # yields becomes `request.state`.
    async with Pool(max_workers=4, max_pending=100, on_error=report_failure, name="email") as pool:
        yield {"pool": pool}
    # Shutdown: leaving the block ran every accepted email before returning.


async def signup(state: dict[str, Pool], address: str) -> int:
    """A request handler: it runs in the server's task, not in the pool's task group."""
    try:
        state["pool"].submit_nowait(send_welcome_email, address)
    except (PoolFull, PoolClosed):
        return 503  # overloaded or shutting down: the client may retry
    return 202


# --8<-- [end:lifespan]


async def run_lifespan(shutdown: anyio.Event, *, task_status: TaskStatus[dict[str, Pool]]) -> None:
    """What an ASGI server does with the lifespan: enter it, report ready, exit it on shutdown."""
    async with lifespan(app=None) as state:
        task_status.started(state)
        await shutdown.wait()


async def main() -> None:
    sent.clear()
    failures.clear()
    statuses: list[int] = []

    async def request(state: dict[str, Pool], address: str) -> None:
        statuses.append(await signup(state, address))

    shutdown = anyio.Event()
    async with anyio.create_task_group() as server:
        state = await server.start(run_lifespan, shutdown)  # startup
        async with anyio.create_task_group() as requests:
            for n in range(50):
                requests.start_soon(request, state, f"user{n}@example.com")
        shutdown.set()  # the lifespan leaves the pool's block: queued emails still go out

    assert len(statuses) == 50
    assert set(statuses) <= {202, 503}
    assert len(sent) == statuses.count(202)
    assert failures == []
    print(f"{statuses.count(202)} emails sent, {statuses.count(503)} requests shed")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
