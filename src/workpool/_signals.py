"""Signals start a graceful shutdown: the first drains, the second cancels."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Generator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, cast

import anyio

from ._stall import logger
from ._validate import check_grace
from ._worker import OPEN

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["shutdown_on_signals"]


@contextmanager
def shutdown_on_signals(
    pool: Pool,
    *,
    grace: float | None = None,
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> Generator[None, None, None]:
    """Serve inside this block until a signal asks the process to stop.

    ``with shutdown_on_signals(pool, grace=30): await serve(pool)`` inside
    ``async with Pool(...) as pool:``.  The first of `signals` cancels the
    block (the service stops taking work) and the pool then shuts down
    gracefully as its ``async with`` exits: accepted jobs get `grace`
    seconds to finish (``shutdown_grace``), the rest are cancelled.  A second
    signal cancels the pool at once.  The signals are caught only while the
    pool is open (on asyncio, only in the main thread), so ``Ctrl+C`` does not
    raise `KeyboardInterrupt` in the middle of a job.

    Args:
        pool: an open pool.
        grace: seconds the pool's jobs get after the first signal; overrides
            the pool's ``shutdown_grace``.  ``None`` keeps it (and a pool
            without one waits for every job).
        signals: the signals to handle.

    Raises:
        RuntimeError: the pool is not open.
        TypeError, ValueError: `grace` is not a number of seconds >= 0, or
            `signals` is not a non-empty tuple of signals.
    """
    grace_seconds = None if grace is None else check_grace(grace, "grace")
    _check_signals(signals)
    if pool._tg is None or pool._state != OPEN:
        raise RuntimeError("shutdown_on_signals() needs an open pool: call it inside 'async with Pool(...)'")
    # The handlers are installed here, not in the listener task, so that a
    # signal arriving before that task first runs is not lost (or fatal).
    receiver_cm = anyio.open_signal_receiver(*signals)
    receiver = receiver_cm.__enter__()
    scope = anyio.CancelScope()
    try:
        listener = pool._start_service(
            _listen, pool, scope, grace_seconds, receiver_cm, receiver, name=f"{pool.name}-signals"
        )
    except BaseException:
        receiver_cm.__exit__(None, None, None)
        raise
    try:
        with scope:
            yield
    finally:
        if not scope.cancel_called:
            # The block ended on its own: stop listening, and the signals
            # get their usual handlers back.  After a first signal the
            # listener stays, so that a second one cancels the draining pool.
            listener.cancel()


def _check_signals(signals: object) -> None:
    if not isinstance(signals, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in cast("tuple[object, ...]", signals)
    ):
        raise TypeError(
            f"shutdown_on_signals() expected a tuple of signals for signals=, got {signals!r}; "
            "write signals=(signal.SIGTERM,) for a single one"
        )
    if not signals:
        raise ValueError("shutdown_on_signals() needs at least one signal in signals=")


async def _listen(
    pool: Pool,
    scope: anyio.CancelScope,
    grace: float | None,
    receiver_cm: AbstractContextManager[AsyncIterator[int]],
    receiver: AsyncIterator[int],
) -> None:
    try:
        first = True
        async for signum in receiver:
            name = signal.Signals(signum).name
            if first:
                first = False
                logger.warning(
                    "workpool.Pool %r: %s received, shutting down (again to cancel at once)", pool.name, name
                )
                if grace is not None:
                    # Only now: a block that ends on its own leaves the pool's
                    # shutdown as it was.
                    pool._shutdown_grace = grace
                scope.cancel()
            else:
                logger.warning("workpool.Pool %r: %s received again, cancelling", pool.name, name)
                pool.cancel()
                return
    finally:
        receiver_cm.__exit__(None, None, None)
