"""The pools that are open right now, so a task dump can say which pool a worker belongs to.

`Pool.__aenter__` registers the pool and `Pool.__aexit__` unregisters it: one
set operation per pool, none per job or per worker.  A dump then looks each
task up in the open pools' ``_worker_info`` tables (task -> `WorkerInfo`).
The set holds pools weakly, so a pool that is dropped without exiting (an
abandoned ``__aenter__``) does not linger here.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["live_pools", "register", "unregister"]

_open_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def register(pool: Pool) -> None:
    """Record `pool` as open; called by `Pool.__aenter__` once its task group exists."""
    _open_pools.add(pool)


def unregister(pool: Pool) -> None:
    """Forget `pool`; called by `Pool.__aexit__` (in its ``finally``).  Unknown pools are ignored."""
    _open_pools.discard(pool)


def live_pools() -> tuple[Pool, ...]:
    """The pools open right now, in no particular order."""
    return tuple(_open_pools)
