"""`Pool.map` and `Pool.consume`: feeding a pool from an iterable, a channel or a stream."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Iterator
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import anyio
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream
from typing_extensions import Self

from ._acking import AckingSource, run_and_ack
from ._errors import PoolClosed
from ._job import SUCCEEDED, Job, Site, _no_public_constructor
from ._worker import EXITED, OPEN

if TYPE_CHECKING:
    from types import TracebackType

    from ._pool import Pool

__all__ = ["MapIterator", "consume_source"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# Like the workers: a loop that never suspends yields this often.
_YIELD_EVERY = 64


class _MapState:
    """Everything a map needs, shared by the iterator and its feeder task.

    The feeder refers to this object, not to the `MapIterator`, so a caller
    that drops the iterator (``break``) lets it be collected, and its
    ``__del__`` stops the map.
    """

    __slots__ = (
        "backend",
        "cancel_pending",
        "closed",
        "consumer",
        "ctx",
        "feeder_room",
        "feeds",
        "fn",
        "in_flight",
        "internal",
        "items",
        "low_water",
        "ordered",
        "pending",
        "pool",
        "ready",
        "running",
        "scope",
        "site",
        "source_done",
        "source_exc",
        "started",
        "stopped_by_close",
        "sync_iterator",
        "window",
        "yields",
    )

    def __init__(
        self,
        pool: Pool,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterable[Any] | AsyncIterable[Any],
        ordered: bool,
        window: int,
        site: Site,
    ) -> None:
        self.pool = pool
        self.site = site
        self.fn = fn
        # Until the reading starts; a plain iterable's is then let go of,
        # for a generator is its own iterator (see feed_inline).
        self.items: Iterable[Any] | AsyncIterable[Any] | None = items
        self.ordered = ordered
        self.window = window
        # The feeder sleeps until the window is half empty, then refills it
        # in one go, instead of waking for every yielded value.
        self.low_water = window // 2
        self.internal = pool._is_own_job()
        # The feeder task is started by the first __anext__, maybe in another
        # task: its jobs must still see the context map() was called in.
        self.ctx = copy_context()
        self.pending: deque[Job[Any]] = deque()  # ordered: accepted, in order
        self.running: set[Job[Any]] = set()  # unordered: accepted, not finished
        self.ready: deque[Job[Any]] = deque()  # unordered: finished, not yielded
        self.in_flight = 0  # accepted and not yet yielded
        assert pool._backend is not None
        self.backend = pool._backend
        self.cancel_pending = pool._backend.cancel_pending
        self.consumer = pool._backend.waiters()
        self.feeder_room = pool._backend.waiters()
        self.scope: anyio.CancelScope | None = None  # the feeder's, if it has one
        self.started = False
        self.closed = False
        self.source_done = False
        self.source_exc: BaseException | None = None
        self.stopped_by_close = False
        self.sync_iterator: Iterator[Any] | None = None  # feed_inline() hands it to feed()
        self.yields = 0  # values the consumer took without suspending
        self.feeds = 0  # items the feeder took without suspending

    def job_done(self, job: Job[Any]) -> None:
        if self.ordered:
            if self.consumer.parked and self.pending and self.pending[0] is job:
                self.consumer.wake_one()
        else:
            self.running.discard(job)
            self.ready.append(job)
            if self.consumer.parked:
                self.consumer.wake_one()

    async def feed(self, scope: anyio.CancelScope) -> None:
        pool = self.pool
        items = self.items
        fn, site, job_done = self.fn, self.site, self.job_done
        track = self.pending.append if self.ordered else self.running.add
        exhausted = False
        iterator: object = None
        sync_iterator: Iterator[Any] | None = None
        try:
            with scope:
                # Room first, then the item: an item is taken from the source
                # only when it can be accepted at once, so stopping the map
                # (or closing the pool) never drops one it already took.
                # The wait is awaited only when there is something to wait
                # for: a coroutine per item would cost a tenth of a job.
                if isinstance(items, AsyncIterable):
                    iterator = aiter(items)
                    while not self.must_wait() or await self.wait_for_room():
                        if pool._room_wanted:
                            pool._pass_room_on()  # anext() may take a while
                        pool._holding += 1  # an item may arrive as the pool closes
                        try:
                            item = await anext(iterator)
                        except StopAsyncIteration:
                            exhausted = True
                            break
                        except PoolClosed as exc:
                            # The source's own (another pool's map): not
                            # this pool closing, but an error of the source.
                            self.source_exc = exc
                            break
                        finally:
                            pool._holding -= 1
                        if not self.internal and pool._accepted >= pool._capacity and pool._state == OPEN:
                            # It came late: see admit_when_room.  A map its consumer left drops it.
                            await admit_when_room(pool, item, self.admit, lambda: self.closed)
                            continue
                        track(pool._enqueue(fn, (item,), job_done, site))
                        self.in_flight += 1
                else:
                    # feed_inline() started it and took what fitted at once;
                    # from here on only this task holds it, so that it is
                    # let go of (a cursor closed) once the feeder ends.
                    sync_iterator, self.sync_iterator = self.sync_iterator, None
                    assert sync_iterator is not None
                    window, internal = self.window, self.internal
                    while True:
                        # must_wait(), written out for the common source, a
                        # plain iterable: a call per item costs 2% of a
                        # map's job.  Change both.
                        self.feeds += 1
                        if (
                            self.closed
                            or self.in_flight >= window
                            or self.feeds >= _YIELD_EVERY
                            or (not internal and (pool._accepted >= pool._capacity or pool._state != OPEN))
                        ) and not await self.wait_for_room():
                            break
                        try:
                            item = next(sync_iterator)
                        except StopIteration:
                            exhausted = True
                            break
                        except PoolClosed as exc:  # the source's own, as above
                            self.source_exc = exc
                            break
                        track(pool._enqueue(fn, (item,), job_done, site))
                        self.in_flight += 1
        except PoolClosed:
            self.stopped_by_close = True
        except Exception as exc:
            self.source_exc = exc
        finally:
            # The frame can outlive this call: the traceback of a
            # cancellation that stopped it refers to it, and asyncio or anyio
            # may keep that exception (seen on Python 3.13).  Its iterator
            # must not live as long (a cursor left open).
            sync_iterator = None
            if scope.cancelled_caught and not self.closed:
                self.stopped_by_close = True
            pool._intake_scopes.discard(scope)
            pool._job_map_scopes.discard(scope)
            pool._pass_room_on()  # a wake-up for room that it will not use
            pool._maybe_drained()  # it may have been the last thing close() waited for
            self.source_done = True
            self.consumer.wake_one()
            if not exhausted:
                # Nobody else will finish a generator that the map stopped
                # reading; closed here, its cleanup runs inside the pool.
                await close_generator(iterator)

    def feed_inline(self) -> bool:
        """Take the items of a plain iterable that fit at once, in the consumer's task.

        Run by the first `next`, in the context of the map() call.  True if
        that ended the reading (the iterable was exhausted or raised, or the
        pool was cancelled): the map then needs no feeder task, which costs
        more than a few no-op jobs, as in a request handler's small fan-out.
        It stops, leaving the rest to the feeder, as soon as the feeder's
        loop would have to wait or pause: every other case (a full pool or
        window, a closing pool, a closed map) is the feeder's, as before.
        The errors are sorted as `feed` sorts them.
        """
        items = self.items
        if isinstance(items, AsyncIterable):
            return False
        assert items is not None  # read once
        # A generator is its own iterator: let go of it with the iterator.
        self.items = None
        pool, fn, site, job_done = self.pool, self.fn, self.site, self.job_done
        track = self.pending.append if self.ordered else self.running.add
        try:
            iterator: Iterator[Any] = iter(items)
            del items
            while pool._state == OPEN and not self.must_wait():
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                except PoolClosed as exc:  # the source's own (see feed)
                    self.source_exc = exc
                    break
                # Raises PoolClosed if the iterable's own code cancelled the pool.
                track(pool._enqueue(fn, (item,), job_done, site))
                self.in_flight += 1
            else:
                self.sync_iterator = iterator  # the feeder's from here
                return False
        except PoolClosed:
            self.stopped_by_close = True
        except Exception as exc:
            self.source_exc = exc
        except BaseException:
            # Not the map's to hold back.  It leaves the caller's loop, as
            # leaving it early does, and as then the map's jobs are cancelled
            # (from the feeder, it would have cancelled the whole pool).
            self.source_done = True
            self.close()
            raise
        self.source_done = True
        return True

    def start_feeder(self) -> None:
        # Not written out in next(): a closure there would make its captured
        # locals cells, created on every call, that is for every value.
        pool = self.pool
        assert pool._tg is not None
        # close() stops the maps of the pool's callers; a job's own map
        # reads on, like its submits, so the job can finish fanning out
        # (until no job is left to read it: Pool._maybe_drained).
        scope = self.scope = anyio.CancelScope()
        (pool._job_map_scopes if self.internal else pool._intake_scopes).add(scope)
        tg, name = pool._tg, f"{pool.name}-map-feeder"
        self.ctx.run(lambda: tg.start_soon(self.feed, scope, name=name))

    def admit(self, item: Any) -> None:
        """Accept an item that came late (see `admit_when_room`)."""
        track = self.pending.append if self.ordered else self.running.add
        track(self.pool._enqueue(self.fn, (item,), self.job_done, self.site))
        self.in_flight += 1

    def must_wait(self) -> bool:
        """Whether the feeder must call `wait_for_room` before taking the next item.

        `feed` has a copy of this for plain iterables: change both.
        """
        self.feeds += 1
        pool = self.pool
        return (
            self.closed
            or self.in_flight >= self.window
            or self.feeds >= _YIELD_EVERY
            # A closing pool takes no more items from a map of its caller's
            # (the feeder may run after close() cancelled its scope, and
            # until its first wait nothing else would stop it).
            or (not self.internal and (pool._accepted >= pool._capacity or pool._state != OPEN))
        )

    async def wait_for_room(self) -> bool:
        """Wait until the map may take another item; False once the map is closed."""
        pool = self.pool
        waited = False
        if self.in_flight >= self.window:
            waited = True
            while self.in_flight > self.low_water and not self.closed:
                await self.feeder_room.wait()
        if not self.internal:
            pool._check_intake("map")  # raises PoolClosed once the pool is closing
            if not pool._has_room():
                waited = True
                await pool._wait_for_room()
        if not waited and self.feeds >= _YIELD_EVERY:
            await self.backend.checkpoint()
        self.feeds = 0
        return not self.closed

    async def next(self) -> Any:
        pool = self.pool
        if self.closed:
            raise StopAsyncIteration
        if not self.started:
            self.started = True
            if self.ctx.run(self.feed_inline):
                if not self.in_flight:
                    # Nothing to wait for (no item, or the iterable raised at
                    # once): still a schedule point, or a loop of such maps
                    # would never let another task run.
                    await self.backend.checkpoint()
            else:
                self.start_feeder()
        if self.yields >= _YIELD_EVERY:
            # Results that are always ready would let a consumer loop forever
            # without giving the event loop a turn.  Taken before a value is:
            # a cancellation here must not lose one.
            self.yields = 0
            await self.backend.checkpoint()
        else:
            # A local: Python 3.11 does not specialise calling an attribute
            # that holds a function as if it were a method.
            cancel_pending = self.cancel_pending
            if cancel_pending():
                await self.backend.checkpoint_if_cancelled()
        pending = self.pending
        while True:
            if self.ordered:
                if pending and pending[0]._state >= SUCCEEDED:
                    job = pending.popleft()
                    break
            elif self.ready:
                job = self.ready.popleft()
                break
            if self.source_done and not self.in_flight:
                self.close()
                exc, self.source_exc = self.source_exc, None
                if exc is not None:
                    raise exc
                if self.stopped_by_close:
                    self.stopped_by_close = False
                    raise PoolClosed(
                        f"workpool.Pool {pool.name!r} was closed before map() had read all its items"
                    )
                raise StopAsyncIteration
            if self.closed:
                raise StopAsyncIteration
            await self.consumer.wait()
        self.in_flight -= 1
        if self.in_flight <= self.low_water and self.feeder_room.parked:
            # Until the feeder runs, every value taken would wake it again.
            self.feeder_room.wake_one()
        if job._state != SUCCEEDED:
            self.close()  # a failed or cancelled job ends the map
            return job.result()  # raises
        self.yields += 1
        return job._outcome

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        scope = self.scope
        if scope is not None:
            if not self.source_done:
                # Only a feeder that may still run needs stopping: on
                # asyncio, cancelling a scope formats the current task's
                # repr (anyio 4.16), which costs more than a small map's jobs.
                scope.cancel()
            self.pool._intake_scopes.discard(scope)
            self.pool._job_map_scopes.discard(scope)
        for job in list(self.pending) + list(self.running):
            job.cancel()
        self.feeder_room.wake_all()
        self.consumer.wake_all()


@final
class MapIterator(Generic[T_co]):
    """The async iterator `Pool.map` returns.

    Also an async context manager: ``async with pool.map(fn, items) as
    results:`` stops the map when the block exits, however it exits.  Without
    it, leaving an ``async for`` early stops the map as soon as the iterator
    is garbage-collected (at once, on CPython).
    """

    __slots__ = ("_state",)
    _state: _MapState

    def __init__(self, *args: object, **kwargs: object) -> None:
        _no_public_constructor(MapIterator)

    @classmethod
    def _new(
        cls,
        pool: Pool,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterable[Any] | AsyncIterable[Any],
        ordered: bool,
        window: int,
        site: Site,
    ) -> MapIterator[Any]:
        self: MapIterator[Any] = object.__new__(cls)
        self._state = _MapState(pool, fn, items, ordered, window, site)
        return self

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Awaitable[T_co]:
        """The next value.

        Cancellation: a cancellation point; cancelling the caller does not
        stop the map (call `aclose` for that).

        Raises:
            StopAsyncIteration: every item's value has been yielded.
            PoolClosed: the pool closed before every item was read.
            JobCancelled: one of the map's jobs was cancelled (the pool was cancelled).
            Exception: the first exception a job raised, or the one iterating
                the items raised.
        """
        # The state's coroutine itself, not one that awaits it: one
        # coroutine per value instead of two.
        return self._state.next()

    async def aclose(self) -> None:
        """Stop the map: read no more items and cancel its unfinished jobs.

        Cancellation: a checkpoint; the map is stopped even if it is cancelled.
        """
        self._state.close()
        await checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            state.close()


async def consume_source(
    pool: Pool,
    source: AsyncIterable[T],
    fn: Callable[[T], Awaitable[object]],
    site: Site,
) -> None:
    """The body of `Pool.consume`, which has already checked its arguments."""
    backend = pool._backend
    assert backend is not None
    if backend.cancel_pending():
        await backend.checkpoint_if_cancelled()
    internal = pool._is_own_job()
    outstanding: set[Job[Any]] = set()
    all_done = backend.waiters()

    def job_done(job: Job[Any]) -> None:
        outstanding.discard(job)
        if not outstanding:
            all_done.wake_all()

    ticks = 0

    def must_wait() -> bool:
        # Room first, then the item: an item is taken from the source only
        # when it can be accepted at once, so closing the pool never drops
        # one that was already taken.  Awaited only when needed: a
        # coroutine per item would cost a tenth of a job.
        nonlocal ticks
        ticks += 1
        return ticks >= _YIELD_EVERY or (
            not internal and (pool._accepted >= pool._capacity or pool._state != OPEN)
        )

    async def wait_for_room() -> None:
        nonlocal ticks
        if not internal:
            # A closing pool takes no more items (consume() may resume with
            # an item after close() cancelled its scope: that one is
            # accepted, the next is not).
            pool._check_intake("consume")
        if not internal and not pool._has_room():
            await pool._wait_for_room()
        else:
            await backend.checkpoint()
        ticks = 0

    if isinstance(source, AckingSource):
        acking: AckingSource[T] = source
        # One partial for every item; the worker recognises it (_run_configured).
        run = partial(run_and_ack, fn, acking)

        def admit(item: T) -> None:
            outstanding.add(pool._enqueue(run, (item,), job_done, site))
    else:

        def admit(item: T) -> None:
            outstanding.add(pool._enqueue(fn, (item,), job_done, site))

    scope = anyio.CancelScope()
    pool._intake_scopes.add(scope)
    source_exc: Exception | None = None
    try:
        with scope:
            if isinstance(source, MemoryObjectReceiveStream):
                # The stream's async iterator pays a full checkpoint per item;
                # take what is already there without one.
                stream: MemoryObjectReceiveStream[T] = source
                while True:
                    if must_wait():
                        await wait_for_room()
                    try:
                        item = stream.receive_nowait()
                    except anyio.WouldBlock:
                        pool._pass_room_on()  # the next item may take a while
                        # Counted until it returns: an item it receives in
                        # the step that closes the pool is still accepted,
                        # and close() must wait for it (Pool._holding).
                        pool._holding += 1
                        try:
                            item = await stream.receive()
                        except (anyio.EndOfStream, anyio.ClosedResourceError):
                            break
                        finally:
                            pool._holding -= 1
                        ticks = 0
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                    if not internal and pool._accepted >= pool._capacity and pool._state == OPEN:
                        await admit_when_room(pool, item, admit)  # it came late: see there
                    else:
                        admit(item)
            else:
                iterator = aiter(source)
                try:
                    while True:
                        if must_wait():
                            await wait_for_room()
                        if pool._room_wanted:
                            pool._pass_room_on()  # anext() may take a while
                        pool._holding += 1  # see the stream's receive() above
                        try:
                            item = await anext(iterator)
                        except StopAsyncIteration:
                            break
                        except PoolClosed as exc:
                            # The source's own (another pool's map): not
                            # this pool closing, but an error of the source.
                            source_exc = exc
                            break
                        finally:
                            pool._holding -= 1
                        if not internal and pool._accepted >= pool._capacity and pool._state == OPEN:
                            await admit_when_room(pool, item, admit)  # it came late: see there
                        else:
                            admit(item)
                finally:
                    if iterator is not source:
                        # An async generator that source.__aiter__() made is
                        # this call's to finish; a source that is its own
                        # iterator stays the caller's, to resume or close.
                        await close_generator(iterator)
    except PoolClosed:
        if pool._cancel_called:
            _cancel_all(outstanding)
            raise
        # Closed gracefully: stop taking items; the jobs already started finish.
    except Exception as exc:
        source_exc = exc
    finally:
        # Cancelled, the call stops taking items and re-raises; the jobs it
        # started are the pool's, like any accepted job: they drain with a
        # closing pool (a graceful shutdown keeps them) and are cancelled
        # with a cancelled one.
        pool._intake_scopes.discard(scope)
        pool._pass_room_on()  # a wake-up for room that it will not use
        pool._maybe_drained()  # it may have been the last thing close() waited for
    while outstanding:
        await all_done.wait()
    if source_exc is not None:
        raise source_exc
    if pool._cancel_called:
        raise PoolClosed(f"workpool.Pool {pool.name!r} was cancelled while consume() was running")


async def admit_when_room(
    pool: Pool,
    item: Any,
    admit: Callable[[Any], None],
    dropped: Callable[[], bool] = lambda: False,
) -> None:
    """Accept an item that an intake took after waiting on its source, once there is room.

    While the source had no item the intake passed its room on (see
    `Pool._pass_room_on`), so another producer may have taken it: the item
    then waits in hand, keeping the bound, and counts in `Pool._holding`,
    which close() waits for.  Taken from the source, it is not dropped: if
    the pool closes or the intake is cancelled meanwhile, it is accepted
    anyway (a closing pool still runs what it accepts).  Only a cancelled
    pool, or an intake that says so through `dropped` (a map its consumer
    left, whose jobs are cancelled anyway), loses it.
    """
    pool._holding += 1
    try:
        while pool._accepted >= pool._capacity and pool._state == OPEN:
            await pool._wait_for_room()
    finally:
        pool._holding -= 1
        if not dropped() and not pool._cancel_called and pool._state != EXITED:
            admit(item)
        else:
            pool._maybe_drained()


async def close_generator(iterator: object) -> None:
    """Close `iterator` if it is an async generator, shielded from cancellation.

    Left to the garbage collector, its ``finally`` blocks would run later,
    from an event-loop hook outside any task group.
    """
    if isinstance(iterator, AsyncGenerator):
        generator: AsyncGenerator[object, None] = iterator  # pyright: ignore[reportUnknownVariableType]
        with anyio.CancelScope(shield=True):
            await generator.aclose()


def _cancel_all(jobs: set[Job[Any]]) -> None:
    for job in list(jobs):
        job.cancel()
