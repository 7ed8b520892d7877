"""The few event-loop primitives the pool's hot path needs, resolved once per pool.

anyio's public helpers look the running backend up on every call (about a
microsecond on asyncio), which is as much as a whole job costs, so the pool
resolves them once when it opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import attrs

from ._waiters import AsyncioWaiters, TrioWaiters, Waiters

__all__ = ["Backend", "current_backend"]


@attrs.frozen
class Backend:
    name: str
    cancelled_exc: type[BaseException]
    #: Raise the backend's cancellation if the calling task is cancelled; no
    #: schedule point when it is not.
    checkpoint_if_cancelled: Callable[[], Awaitable[None]]
    #: Makes an empty queue of parked tasks; call it inside the event loop.
    waiters: Callable[[], Waiters]


def _anyio_backend_checkpoint_if_cancelled() -> Callable[[], Awaitable[None]]:
    try:
        # Private to anyio, hence the fallback to the public (slower) helper.
        from anyio._core._eventloop import get_async_backend

        return get_async_backend().checkpoint_if_cancelled
    except (ImportError, AttributeError):  # pragma: no cover - depends on anyio internals
        return anyio.lowlevel.checkpoint_if_cancelled


def current_backend() -> Backend:
    """Describe the backend of the running event loop.

    Raises:
        RuntimeError: not called from inside an anyio-supported event loop.
    """
    exc = anyio.get_cancelled_exc_class()
    if exc is asyncio.CancelledError:
        return Backend("asyncio", exc, _anyio_backend_checkpoint_if_cancelled(), AsyncioWaiters)
    import trio  # the only other backend anyio supports

    return Backend("trio", exc, trio.lowlevel.checkpoint_if_cancelled, TrioWaiters)
