"""`RedisStream`: a Redis Streams consumer group as an `AckingSource` for `Pool.consume`."""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import traceback
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint, checkpoint_if_cancelled
from typing_extensions import Self

from ._redis_client import (
    CLAIM,
    DEAD_LETTER,
    RELEASE,
    TOUCH,
    connect,
    redis_errors,
    require_asyncio,
    timeout_error,
)
from ._redis_codec import Codec, check_codec
from ._redis_producer import JSON, PAYLOAD_FIELD, add_entries, check_maxlen, check_name, close_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStream", "RedisStreamStats"]

T = TypeVar("T")

logger = logging.getLogger("workpool.redis")

# A blocking read returns at least this often, so that claim scans run on
# time.  It also stays within this share of the URL's socket_timeout: a read
# blocked for as long as the socket waits would time out (see _block_limit).
_MAX_BLOCK = 1.0
_BLOCK_SHARE_OF_TIMEOUT = 0.5
# Released messages look this idle (a year, in ms), so that every live
# consumer's next claim scan takes them whatever its claim_idle.
_RELEASED_IDLE_MS = 365 * 24 * 3600 * 1000
# Hence the longest claim_idle: with a longer one, a message handed back at
# close would wait.  (Redis itself refuses idle times that overflow 64 bits
# of milliseconds, and failed every read with "Invalid min-idle-time".)
_MAX_CLAIM_IDLE = _RELEASED_IDLE_MS / 1000
# How long closing may spend handing messages back before it gives up.
_CLOSE_TIMEOUT = 5.0
# Reconnection backoff after Redis could not be reached.
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0
_TOUCH_BATCH = 500
_TRACEBACK_LIMIT = 16_384
# A dead-lettered entry with more fields keeps only its payload (the script
# could not copy tens of thousands, and nobody reads that many).
_DEAD_LETTER_MAX_FIELDS = 1000

_NEW, _OPEN, _CLOSED = range(3)


@attrs.frozen
class RedisStreamStats:
    """A snapshot of one `RedisStream`'s counters, taken by `RedisStream.stats`.

    Every message this consumer handed out ends as ``acked``, ``retried`` or
    (after a failure) ``dead_lettered``, or is still ``outstanding``; a job
    that was cancelled stays outstanding until the stream closes and hands it
    back.
    """

    read: int
    """New messages read from the stream."""
    claimed: int
    """Messages taken over after they were idle for ``claim_idle``: from a dead consumer, or a retry."""
    acked: int
    """Messages acknowledged after their job succeeded."""
    retried: int
    """Messages whose job failed and that were left pending, to be delivered again."""
    dead_lettered: int
    """Messages moved to the dead-letter stream: failed too often, undecodable or abandoned."""
    outstanding: int
    """Messages handed out and neither acknowledged nor failed yet (a gauge)."""


class _Lease:
    """A message handed out as `item`, until its job is acked or nacked."""

    __slots__ = ("deliveries", "item", "message_id")

    def __init__(self, item: Any, message_id: bytes, deliveries: int) -> None:
        # Holding the item keeps id(item) from being reused while the lease lives.
        self.item: Any = item
        self.message_id = message_id
        self.deliveries = deliveries


@final
class RedisStream(Generic[T]):
    """A consumer in a Redis Streams consumer group, to feed `Pool.consume`.

    ::

        async with (
            RedisStream(url, stream="jobs", group="mailers") as source,
            Pool(max_workers=50, on_error=log_failure) as pool,
        ):
            await pool.consume(source, send_mail)

    Open it outside the pool, as above, so that it closes after the pool's
    last job.  Opening it connects, creates the group if it does not exist
    (reading the stream from its first entry), and starts a task that keeps
    this consumer's messages leased.  Iterating it yields decoded payloads,
    one message per step: it reads the next message only when asked, so with
    `Pool.consume` it never holds more messages than the pool has room for.
    Iteration never ends by itself; close or cancel the pool to stop.

    Delivery is at-least-once.  `ack` (called by `Pool.consume` after the job
    returned) acknowledges the message (``XACK``).  `nack` (after the job
    raised) leaves it pending, to be delivered again once it has been idle
    for `claim_idle`; the failure on its `max_deliveries`-th delivery moves
    it to the `dead_letter` stream together with the error.  A message the
    codec cannot decode goes to the dead-letter stream at once.  Messages
    that a dead consumer held are claimed (``XAUTOCLAIM``) once idle for
    `claim_idle`; one claimed for the `max_deliveries` + 1-th time was never
    acknowledged by anyone and is dead-lettered instead of run.  While a job
    runs, its message is kept leased (its idle time reset every
    ``claim_idle / 3`` s), so a long job is not claimed by another consumer.

    `ack` and `nack` know a message by its decoded payload object.  When
    several messages held at once decode to the very same object (JSON's
    small ints, ``true``, ``null``, one-character strings), which of them a
    job had cannot be told: a failure then counts against the one with the
    most deliveries left, and a success acknowledges the one with the fewest.

    Closing hands back every message this consumer still holds (a job that
    was cancelled, or a read that was cancelled midway) by making it look
    idle, so that any live consumer claims it at its next scan.

    It runs only on asyncio: redis-py's client is asyncio-only.

    Args:
        url: a Redis URL, e.g. ``"redis://127.0.0.1:6379/0"`` (redis-py's
            `from_url` syntax, with its options, except ``decode_responses``,
            which is always off).  With a ``socket_timeout``, a blocking read
            waits for at most half of it.
        stream: the stream's key; created if missing.
        group: the consumer group; created if missing, at the stream's start.
        consumer: this consumer's name, unique within the group.  The default
            is ``"<hostname>-<pid>-<random>"``.
        max_deliveries: the most times a message is delivered; the job that
            fails on the last one sends it to the dead-letter stream.
        claim_idle: seconds after which a pending message whose consumer
            stopped renewing its lease (it died) or whose job failed is
            delivered again.  Also the retry delay.  At most 365 days.
        dead_letter: the dead-letter stream's key; ``"<stream>:dead"`` by default.
        codec: decodes payloads (and encodes them for `enqueue`): an object
            with `encode` and `decode` methods (see `Codec`); JSON by default.
        maxlen: for `enqueue`: trim the stream to about this many entries, as
            `RedisProducer` does.

    Raises:
        ModuleNotFoundError: redis-py is missing (``pip install 'workpool[redis]'``).
        TypeError, ValueError: an argument is of the wrong type or out of range.
    """

    __slots__ = (
        "_acked",
        "_claim_idle",
        "_claimed",
        "_client",
        "_codec",
        "_consumer",
        "_cursor",
        "_dead_letter",
        "_dead_lettered",
        "_group",
        "_heartbeat_scope",
        "_leases",
        "_max_block",
        "_max_deliveries",
        "_maxlen",
        "_next_scan",
        "_read",
        "_retried",
        "_scripts",
        "_state",
        "_stream",
        "_tg",
        "_url",
    )

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        group: str,
        consumer: str | None = None,
        max_deliveries: int = 5,
        claim_idle: float = 60.0,
        dead_letter: str | None = None,
        codec: Codec[T] = JSON,
        maxlen: int | None = None,
    ) -> None:
        from ._redis_client import import_redis

        import_redis()
        self._url = check_name(url, "url")
        self._stream = check_name(stream, "stream")
        self._group = check_name(group, "group")
        if consumer is None:
            consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._consumer = check_name(consumer, "consumer")
        self._max_deliveries = _check_positive_int(max_deliveries, "max_deliveries")
        claim_idle = _check_seconds(claim_idle, "claim_idle", _MAX_CLAIM_IDLE)
        self._claim_idle = float(claim_idle)
        self._dead_letter = check_name(
            dead_letter if dead_letter is not None else f"{stream}:dead", "dead_letter"
        )
        if self._dead_letter == self._stream:
            raise ValueError("dead_letter must be another stream than stream")
        check_codec(codec)
        self._codec: Codec[T] = codec
        self._maxlen = check_maxlen(maxlen)

        self._state = _NEW
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._tg: TaskGroup | None = None
        self._heartbeat_scope: anyio.CancelScope | None = None  # made when opened, in the event loop
        # id(item) -> leases of the outstanding messages handed out as that
        # object (several if the codec returns the same object twice, as
        # json.loads does for small ints).
        self._leases: dict[int, list[_Lease]] = {}
        self._cursor = b"0-0"
        self._next_scan = -math.inf
        self._max_block = _MAX_BLOCK
        self._read = self._claimed = self._acked = self._retried = self._dead_lettered = 0

    def __repr__(self) -> str:
        state = ("new", "open", "closed")[self._state]
        return (
            f"<workpool.redis.RedisStream {state} stream={self._stream!r} group={self._group!r} "
            f"consumer={self._consumer!r}>"
        )

    @property
    def stream(self) -> str:
        """The stream's key."""
        return self._stream

    @property
    def group(self) -> str:
        """The consumer group's name."""
        return self._group

    @property
    def consumer(self) -> str:
        """This consumer's name in the group."""
        return self._consumer

    @property
    def dead_letter(self) -> str:
        """The dead-letter stream's key."""
        return self._dead_letter

    @property
    def stats(self) -> RedisStreamStats:
        """A snapshot of this consumer's counters; see `RedisStreamStats`."""
        return RedisStreamStats(
            read=self._read,
            claimed=self._claimed,
            acked=self._acked,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            outstanding=sum(len(leases) for leases in self._leases.values()),
        )

    # -- life cycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect, create the group if needed, and start renewing leases.

        Cancellation: a cancellation point; a cancelled open leaves nothing open.

        Raises:
            RuntimeError: not running on asyncio (redis-py's client is
                asyncio-only), the stream was opened before, or the server
                is older than Redis 6.2.
            redis.exceptions.RedisError: Redis does not answer or refused.
        """
        require_asyncio("workpool.redis.RedisStream")
        if self._state != _NEW:
            raise RuntimeError(
                "a RedisStream can be opened only once; create a new one for each 'async with'"
            )
        client = await connect(self._url)
        try:
            self._scripts = {
                name: client.register_script(source)
                for name, source in (("claim", CLAIM), ("dead", DEAD_LETTER), ("touch", TOUCH))
            }
            self._scripts["release"] = client.register_script(RELEASE)
            self._client = client
            self._max_block = _block_limit(client)
            await self._create_group()
            tg = anyio.create_task_group()
            await tg.__aenter__()
        except BaseException:
            self._client = None
            await close_client(client)
            raise
        self._tg = tg
        self._heartbeat_scope = anyio.CancelScope()
        tg.start_soon(self._renew_leases, name=f"workpool.redis-leases-{self._consumer}")
        self._state = _OPEN
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Stop renewing leases, hand back the messages still held, and disconnect.

        Cancellation: handing back is shielded but bounded (a few seconds);
        messages it could not hand back are claimed after `claim_idle`.
        """
        assert self._tg is not None
        assert self._client is not None
        self._state = _CLOSED
        if self._heartbeat_scope is not None:
            self._heartbeat_scope.cancel()
        try:
            if exc is None or isinstance(exc, anyio.get_cancelled_exc_class()):
                suppress = await self._tg.__aexit__(exc_type, exc, tb)
            else:
                # The lease task never fails, so the block's own error is the
                # only one: let it through as it is, not wrapped in a group.
                await self._tg.__aexit__(None, None, None)
                suppress = False
        finally:
            client, self._client = self._client, None
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                try:
                    await self._release()
                except Exception as error:
                    logger.warning(
                        "could not hand back the messages of consumer %r of group %r on stream %r "
                        "(they will be claimed after claim_idle): %s",
                        self._consumer,
                        self._group,
                        self._stream,
                        error,
                    )
            self._leases.clear()
            await close_client(client)
        return suppress

    # -- iteration -----------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        """Read the next message and return its decoded payload.

        Waits until a message is available: a new one, or a pending one idle
        for `claim_idle`.  Messages that cannot be decoded, or were abandoned
        too often, go to the dead-letter stream on the way.  While Redis
        cannot be reached it retries, logging a warning, with a backoff up to
        5 s; if the group or stream was deleted, it creates them again.

        Cancellation: a cancellation point.  A message read by a call that
        was cancelled stays pending for this consumer and is handed back
        when the stream closes.

        Raises:
            RuntimeError: the stream is not open.
        """
        await checkpoint_if_cancelled()
        self._check_open()
        retryable, response_error = redis_errors()
        backoff = _BACKOFF_FIRST
        group_gone = False
        while True:
            try:
                # Inside the try: creating the group again can meet a dropped
                # connection too, and must be retried like a read.
                if group_gone:
                    await self._create_group()
                    group_gone = False
                return await self._next_item()
            except retryable as error:
                logger.warning(
                    "Redis error while reading stream %r: %s; retrying in %.1f s",
                    self._stream,
                    error,
                    backoff,
                )
            except response_error as error:
                if not _group_gone(error):
                    raise
                logger.warning(
                    "group %r of stream %r is gone (deleted?); creating it again", self._group, self._stream
                )
                group_gone = True
                continue
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _next_item(self) -> T:
        while True:
            entry: tuple[bytes, dict[bytes, bytes], int] | None = None
            if anyio.current_time() >= self._next_scan:
                entry = await self._claim_one()
            if entry is None:
                block = min(max(self._next_scan - anyio.current_time(), 0.001), self._max_block)
                entry = await self._read_new(block)
            if entry is not None:
                lease = await self._lease(*entry)
                if lease is not None:
                    self._leases.setdefault(id(lease.item), []).append(lease)
                    item: T = lease.item
                    return item

    async def _read_new(self, block: float) -> tuple[bytes, dict[bytes, bytes], int] | None:
        client = self._check_open()
        try:
            reply: Any = await client.xreadgroup(
                self._group, self._consumer, {self._stream: ">"}, count=1, block=max(1, round(block * 1000))
            )
        except timeout_error():
            # The socket timed out while the read was blocked: no message
            # (one that Redis delivered all the same stays pending here and
            # is claimed once idle).  A claim scan, which does not block,
            # comes next and says whether Redis still answers.
            self._next_scan = -math.inf
            return None
        if not reply:
            return None
        # RESP2: [[stream, [(id, fields)]]]; RESP3: {stream: [[(id, fields)]]}.
        values: Any = getattr(reply, "values", None)
        entries: Any = next(iter(values()))[0] if values is not None else reply[0][1]
        if not entries:
            return None
        message_id, fields = entries[0]
        self._read += 1
        return bytes(message_id), dict(fields or {}), 1

    async def _claim_one(self) -> tuple[bytes, dict[bytes, bytes], int] | None:
        """Continue the claim scan until it claims a message or finishes a pass."""
        while True:
            reply: Any = await self._scripts["claim"](
                keys=[self._stream],
                args=[self._group, self._consumer, round(self._claim_idle * 1000), self._cursor],
            )
            cursor, message_id, flat, deliveries, trimmed = reply
            self._cursor = bytes(cursor)
            if trimmed:
                logger.warning(
                    "%d pending messages of stream %r were trimmed before they were acknowledged "
                    "(is maxlen smaller than the backlog?)",
                    trimmed,
                    self._stream,
                )
            if self._cursor == b"0-0":
                self._next_scan = anyio.current_time() + self._claim_idle / 2
            if message_id:
                self._claimed += 1
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                return bytes(message_id), fields, int(deliveries)
            if self._cursor == b"0-0":
                return None

    async def _lease(self, message_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> _Lease | None:
        """Decode a message; None if it went to the dead-letter stream instead."""
        if deliveries > self._max_deliveries:
            await self._reject(
                message_id,
                "abandoned",
                f"delivered {deliveries - 1} times without being acknowledged or failing "
                "(its consumers died or were cancelled)",
                deliveries - 1,
            )
            return None
        data = fields.get(PAYLOAD_FIELD)
        if data is None:
            error = f"the entry has no {PAYLOAD_FIELD.decode()!r} field"
            await self._reject(message_id, "undecodable", error, deliveries)
            return None
        try:
            item = self._codec.decode(data)
        except Exception as exc:
            await self._reject(message_id, "undecodable", _describe(exc), deliveries)
            return None
        return _Lease(item, message_id, deliveries)

    async def _reject(self, message_id: bytes, reason: str, error: str, deliveries: int) -> None:
        """Dead-letter a message that will not run; if Redis refuses, log it and go on.

        A refusal (the dead-letter key holds something else than a stream,
        say) must not stop the consumer on every restart: the message stays
        pending and is tried again once it has been idle for claim_idle.
        """
        _, response_error = redis_errors()
        try:
            await self._send_to_dead_letter(message_id, reason, error, deliveries)
        except response_error as exc:
            if _group_gone(exc):
                raise  # __anext__ creates the group again
            logger.error(
                "could not move message %s of stream %r to dead-letter stream %r (%s: %s); "
                "it stays pending and will be tried again in %g s: %s",
                message_id.decode(),
                self._stream,
                self._dead_letter,
                reason,
                error,
                self._claim_idle,
                _describe(exc),
            )

    # -- outcomes ------------------------------------------------------------

    async def ack(self, item: object, /) -> None:
        """The job for `item` succeeded: acknowledge its message (``XACK``).

        Cancellation: a cancellation point; if it is cancelled, the message
        stays pending and is handed back when the stream closes.

        Raises:
            ValueError: `item` is not an outstanding item of this stream (it
                was acked or nacked already).
            RuntimeError: the stream is not open.
            redis.exceptions.RedisError: Redis could not be reached; the
                message stays pending and will be delivered again.
        """
        client = self._check_open()
        lease = self._take(item, failed=False)
        await client.xack(self._stream, self._group, lease.message_id)
        self._acked += 1

    async def nack(self, item: object, error: Exception, /) -> None:
        """The job for `item` raised `error`: retry its message later, or dead-letter it.

        Before its `max_deliveries`-th delivery, the message stays pending,
        and its idle time starts again now: it is delivered again (to any
        consumer) after `claim_idle`.  On that delivery, it is moved to the
        dead-letter stream with `error` and acknowledged, in one step.

        Cancellation: a cancellation point; if it is cancelled, the message
        stays pending and is handed back when the stream closes.

        Raises:
            ValueError: `item` is not an outstanding item of this stream.
            RuntimeError: the stream is not open.
            redis.exceptions.RedisError: Redis could not be reached; the
                message stays pending and will be delivered again.
        """
        self._check_open()
        lease = self._take(item, failed=True)
        if lease.deliveries >= self._max_deliveries:
            await self._send_to_dead_letter(
                lease.message_id, "failed", _describe(error), lease.deliveries, error
            )
        else:
            await self._scripts["touch"](
                keys=[self._stream], args=[self._group, self._consumer, 0, lease.message_id]
            )
            self._retried += 1
            logger.info(
                "message %s of stream %r failed on delivery %d of %d; it will be retried in %g s: %s",
                lease.message_id.decode(),
                self._stream,
                lease.deliveries,
                self._max_deliveries,
                self._claim_idle,
                _describe(error),
            )

    async def enqueue(self, payload: T) -> str:
        """Add a job to this stream and return its message id; see `RedisProducer.enqueue`.

        Cancellation: a cancellation point; if it is cancelled, the job may or
        may not have been added.

        Raises:
            RuntimeError: the stream is not open.
            Exception: whatever the codec raises for `payload`.
            redis.exceptions.RedisError: Redis refused or could not be reached.
        """
        client = self._check_open()
        ids = await add_entries(client, self._stream, [self._codec.encode(payload)], self._maxlen)
        return ids[0]

    # -- internals -----------------------------------------------------------

    def _check_open(self) -> Redis:
        if self._state != _OPEN or self._client is None:
            if self._state == _NEW:
                raise RuntimeError(
                    "the RedisStream is not open: use 'async with RedisStream(...) as source:'"
                )
            raise RuntimeError("the RedisStream is closed")
        return self._client

    def _take(self, item: object, *, failed: bool) -> _Lease:
        leases = self._leases.get(id(item))
        if not leases:
            raise ValueError(f"{item!r} is not an outstanding item of {self!r} (acked or nacked already?)")
        if len(leases) == 1:
            lease = leases.pop()
        else:
            # Several messages were handed out as this very object (json.loads
            # caches small ints, True, None, one-character strings), so which
            # one a job had cannot be known, and their jobs could not tell
            # either.  Any pairing is as true as another; choose the one that
            # keeps promises: a failure counts against the message with the
            # most deliveries left, a success retires the one with the fewest
            # left, so no message is dead-lettered while a twin could still retry
            # (test_a_failure_among_identical_payload_objects_...).
            pick = min if failed else max
            lease = pick(leases, key=_deliveries)  # the oldest of equals
            leases.remove(lease)
        if not leases:
            del self._leases[id(item)]
        return lease

    async def _create_group(self) -> None:
        client = self._check_client()
        try:
            await client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except Exception as error:
            if not str(error).startswith("BUSYGROUP"):
                raise

    def _check_client(self) -> Redis:
        assert self._client is not None
        return self._client

    async def _send_to_dead_letter(
        self,
        message_id: bytes,
        reason: str,
        error: str,
        deliveries: int,
        exc: BaseException | None = None,
    ) -> None:
        fields: list[str | bytes] = [
            "reason",
            reason,
            "error",
            error,
            "source_stream",
            self._stream,
            "source_id",
            message_id,
            "group",
            self._group,
            "consumer",
            self._consumer,
            "deliveries",
            str(deliveries),
        ]
        if exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            fields += ["traceback", text[-_TRACEBACK_LIMIT:]]
        await self._scripts["dead"](
            keys=[self._stream, self._dead_letter],
            args=[self._group, message_id, _DEAD_LETTER_MAX_FIELDS, *fields],
        )
        self._dead_lettered += 1
        logger.warning(
            "message %s of stream %r moved to dead-letter stream %r (%s): %s",
            message_id.decode(),
            self._stream,
            self._dead_letter,
            reason,
            error,
        )

    async def _renew_leases(self) -> None:
        """Keep the outstanding messages' idle time near zero while their jobs run."""
        interval = self._claim_idle / 3
        assert self._heartbeat_scope is not None
        with self._heartbeat_scope:
            while True:
                await anyio.sleep(interval)
                ids = [lease.message_id for leases in self._leases.values() for lease in leases]
                try:
                    for start in range(0, len(ids), _TOUCH_BATCH):
                        await self._scripts["touch"](
                            keys=[self._stream],
                            args=[self._group, self._consumer, 0, *ids[start : start + _TOUCH_BATCH]],
                        )
                except Exception as error:
                    # Not fatal: a lease that lapses only means another
                    # consumer may claim the message and run it a second time.
                    logger.warning("could not renew the leases on stream %r: %s", self._stream, error)

    async def _release(self) -> None:
        start: bytes | str = "-"
        released = 0
        while True:
            count, last = await self._scripts["release"](
                keys=[self._stream], args=[self._group, self._consumer, _RELEASED_IDLE_MS, start]
            )
            released += int(count)
            if int(count) < 500:
                break
            start = b"(" + bytes(last)
        if released:
            logger.info(
                "handed back %d unfinished messages of stream %r for other consumers to claim",
                released,
                self._stream,
            )
        await checkpoint()


def _check_positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_seconds(value: object, name: str, maximum: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0.001):
        raise ValueError(f"{name} must be at least 0.001 s and finite, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum:.0f} s ({maximum / 86400:g} days), got {value!r}")
    return float(value)


def _block_limit(client: Redis) -> float:
    """The longest a read may block on `client`: within its socket_timeout, if it has one."""
    untyped: Any = client  # redis-py leaves connection_kwargs' values untyped
    timeout: object = untyped.connection_pool.connection_kwargs.get("socket_timeout")
    if isinstance(timeout, (int, float)) and timeout > 0:
        return min(_MAX_BLOCK, timeout * _BLOCK_SHARE_OF_TIMEOUT)
    return _MAX_BLOCK


def _group_gone(error: Exception) -> bool:
    # NOGROUP, or UNBLOCKED for a blocked read whose stream was deleted.
    return any(code in str(error) for code in ("NOGROUP", "UNBLOCKED"))


def _deliveries(lease: _Lease) -> int:
    return lease.deliveries


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()
