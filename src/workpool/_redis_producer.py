"""`RedisProducer`: adding jobs to a Redis stream."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import anyio
from anyio.lowlevel import checkpoint
from typing_extensions import Self

from ._redis_client import connect, import_redis, require_asyncio
from ._redis_codec import Codec, JsonCodec, check_codec

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "JSON",
    "PAYLOAD_FIELD",
    "RedisProducer",
    "add_entries",
    "check_maxlen",
    "check_name",
    "close_client",
]

T = TypeVar("T")

#: The stream entry field that holds the encoded payload.
PAYLOAD_FIELD = b"payload"

#: The default codec: one shared instance (a JsonCodec has no state).
JSON = JsonCodec()

# A pipeline of this many XADDs is one round trip and a few hundred KiB.
_BATCH = 1000


@final
class RedisProducer(Generic[T]):
    """Adds jobs to a Redis stream for `RedisStream` consumers to run.

    Use it as ``async with RedisProducer(url, stream="jobs") as producer:``;
    it holds a connection pool while the block runs.  It creates the stream
    if it does not exist; it needs no consumer group.

    **Trimming.**  A stream keeps every entry until it is trimmed, acknowledged
    or not.  With ``maxlen=None`` (the default) nothing is trimmed: the
    stream grows by every job ever added, and you trim it yourself (``XTRIM
    jobs MINID ...`` from a cron job, say).  With ``maxlen=N`` every add also
    trims the stream to about N entries (``XADD ... MAXLEN ~ N``: Redis trims
    whole blocks, so it may keep somewhat more).  Trimming goes by position,
    not by whether a job is done: an entry trimmed before a consumer read it
    is lost, and one trimmed while pending is dropped when claimed.  Choose N
    well above the largest backlog you expect.

    Args:
        url: a Redis URL, e.g. ``"redis://127.0.0.1:6379/0"`` (redis-py's
            `from_url` syntax, with its options, except ``decode_responses``,
            which is always off).
        stream: the stream's key.
        maxlen: trim the stream to about this many entries on every add, or
            ``None`` not to trim.
        codec: turns payloads into bytes: an object with `encode` and
            `decode` methods (see `Codec`); JSON by default.

    Raises:
        ModuleNotFoundError: redis-py is missing (``pip install 'workpool[redis]'``).
        TypeError, ValueError: an argument is of the wrong type or out of range.
    """

    __slots__ = ("_client", "_codec", "_maxlen", "_stream", "_url")

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        maxlen: int | None = None,
        codec: Codec[T] = JSON,
    ) -> None:
        import_redis()
        self._url = check_name(url, "url")
        self._stream = check_name(stream, "stream")
        self._maxlen = check_maxlen(maxlen)
        check_codec(codec)
        self._codec: Codec[T] = codec
        self._client: Redis | None = None

    def __repr__(self) -> str:
        return f"<workpool.redis.RedisProducer stream={self._stream!r} maxlen={self._maxlen}>"

    @property
    def stream(self) -> str:
        """The stream's key."""
        return self._stream

    async def __aenter__(self) -> Self:
        """Connect to Redis.

        Cancellation: a cancellation point; a cancelled connect leaves nothing open.

        Raises:
            RuntimeError: not running on asyncio (redis-py's client is
                asyncio-only), the producer was opened before, or the server is
                older than Redis 6.2.
            redis.exceptions.ConnectionError: Redis does not answer.
        """
        require_asyncio("workpool.redis.RedisProducer")
        if self._client is not None:
            raise RuntimeError("a RedisProducer can be opened only once at a time")
        self._client = await connect(self._url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the connections (see `aclose`)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections.  Calling it again does nothing.

        Cancellation: the connections are closed even if the caller is cancelled.
        """
        client, self._client = self._client, None
        if client is not None:
            await close_client(client)
        else:
            await checkpoint()

    async def enqueue(self, payload: T) -> str:
        """Add one job and return its message id (``"<milliseconds>-<sequence>"``).

        The job is in Redis when this returns; it is not atomic with anything
        else the caller does.

        Cancellation: a cancellation point; if it is cancelled, the job may or
        may not have been added.

        Raises:
            RuntimeError: the producer is not open.
            Exception: whatever the codec raises for `payload` (`TypeError` for
                something JSON cannot hold), before anything is sent.
            redis.exceptions.RedisError: Redis refused or could not be reached.
        """
        client = self._open_client()
        ids = await add_entries(client, self._stream, [self._codec.encode(payload)], self._maxlen)
        return ids[0]

    async def enqueue_many(self, payloads: Iterable[T]) -> list[str]:
        """Add many jobs, pipelined, and return their message ids in order.

        Every payload is encoded before anything is sent, so a payload the
        codec rejects adds nothing.  The adds are not one transaction: if the
        connection fails midway, a prefix of the jobs has been added.

        Cancellation: a cancellation point; if it is cancelled, some of the
        jobs may have been added.

        Raises:
            RuntimeError: the producer is not open.
            Exception: whatever the codec raises, before anything is sent.
            redis.exceptions.RedisError: Redis refused or could not be reached.
        """
        client = self._open_client()
        encoded = [self._codec.encode(payload) for payload in payloads]
        return await add_entries(client, self._stream, encoded, self._maxlen)

    def _open_client(self) -> Redis:
        if self._client is None:
            raise RuntimeError(
                "the RedisProducer is not open: use 'async with RedisProducer(...) as producer:'"
            )
        return self._client


async def add_entries(client: Redis, stream: str, encoded: list[bytes], maxlen: int | None) -> list[str]:
    """XADD each of `encoded` to `stream` (trimming to ``~maxlen``), pipelined; their ids."""
    if not encoded:
        await checkpoint()
        return []
    if len(encoded) == 1:
        entry_id: Any = await client.xadd(
            stream, {PAYLOAD_FIELD: encoded[0]}, maxlen=maxlen, approximate=True
        )
        return [_text(entry_id)]
    ids: list[str] = []
    for start in range(0, len(encoded), _BATCH):
        pipe: Any = client.pipeline(transaction=False)
        for data in encoded[start : start + _BATCH]:
            pipe.xadd(stream, {PAYLOAD_FIELD: data}, maxlen=maxlen, approximate=True)
        results: list[Any] = await pipe.execute()
        ids.extend(_text(entry_id) for entry_id in results)
    return ids


async def close_client(client: Redis) -> None:
    """Close `client`'s connections, even if the caller is cancelled."""
    with anyio.CancelScope(shield=True):
        await client.aclose()


def check_name(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_maxlen(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"maxlen must be a positive int or None, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"maxlen must be a positive int or None, got {value!r}")
    return value


def _text(entry_id: object) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
