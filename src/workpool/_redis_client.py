"""redis-py, imported on first use, and the server-side scripts the stream consumer runs.

Everything that has to happen atomically (claim a message and read its
delivery count; dead-letter a message and acknowledge it; refresh the lease of
messages only while this consumer still owns them) is one Lua script, so a
crash between two commands cannot leave a message half moved.  The scripts
return plain arrays, which read the same under RESP2 and RESP3.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CLAIM",
    "DEAD_LETTER",
    "RELEASE",
    "TOUCH",
    "connect",
    "import_redis",
    "redis_errors",
    "require_asyncio",
    "timeout_error",
]

# Redis 6.2 added XAUTOCLAIM and exclusive ranges; 7.0 made XAUTOCLAIM also
# drop entries that were trimmed while pending.
_MIN_VERSION = (6, 2)

#: Claim at most one message idle for at least ARGV[3] ms, scanning the group's
#: pending entries from cursor ARGV[4].  Returns {next cursor, id or "",
#: fields, delivery count, number of pending entries found trimmed}.
CLAIM = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', 1)
local trimmed = 0
if r[3] then trimmed = #r[3] end
local entry = r[2][1]
if not entry then
  return {r[1], '', {}, 0, trimmed}
end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
return {r[1], entry[1], entry[2], p[1][4], trimmed}
"""

#: Copy message ARGV[2] of stream KEYS[1] to the dead-letter stream KEYS[2],
#: with the field/value pairs ARGV[4..] added, and acknowledge it for group
#: ARGV[1].  An entry of more than ARGV[3] fields keeps only its payload
#: field and says how many it dropped: unpack() fails beyond about 8000
#: values, and a poison entry would then never leave.  Returns what XACK
#: returns.
DEAD_LETTER = """
local fields = {}
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if e[1] then
  local original = e[1][2]
  if #original <= 2 * tonumber(ARGV[3]) then
    for _, v in ipairs(original) do fields[#fields + 1] = v end
  else
    local dropped = #original / 2
    for i = 1, #original, 2 do
      if original[i] == 'payload' then
        fields[1], fields[2] = original[i], original[i + 1]
        dropped = dropped - 1
        break
      end
    end
    fields[#fields + 1] = 'dropped_fields'
    fields[#fields + 1] = tostring(dropped)
  end
end
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(fields))
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""

#: Set the idle time to ARGV[3] ms of those messages ARGV[4..] that consumer
#: ARGV[2] of group ARGV[1] still owns (another consumer may have claimed
#: one), without counting a delivery.  Returns how many it touched.
TOUCH = """
local n = 0
for i = 4, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    n = n + 1
  end
end
return n
"""

#: Make up to 500 of consumer ARGV[2]'s pending messages, from id ARGV[4]
#: on, look idle for ARGV[3] ms, so that any live consumer claims them at
#: once; delete the consumer if it has none left.  Returns {how many, last id}.
RELEASE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], '+', 500, ARGV[2])
local last = ''
for _, p in ipairs(pending) do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, p[1], 'IDLE', ARGV[3], 'JUSTID')
  last = p[1]
end
if #pending == 0 and ARGV[4] == '-' then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return {#pending, last}
"""


def import_redis() -> Any:
    """The ``redis.asyncio`` module.

    Raises:
        ModuleNotFoundError: redis-py is not installed; the message names the extra to install.
    """
    try:
        import redis.asyncio
    except ModuleNotFoundError as exc:
        if exc.name not in ("redis", "redis.asyncio"):
            raise
        raise ModuleNotFoundError(
            "workpool.redis needs redis-py (redis>=5), which is not installed: pip install 'workpool[redis]'",
            name=exc.name,
        ) from exc
    return redis.asyncio


def redis_errors() -> tuple[tuple[type[Exception], ...], type[Exception]]:
    """The redis-py exceptions that mean "the server could not be reached" (worth a
    retry), and the one for an error reply."""
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError), redis.exceptions.ResponseError


def timeout_error() -> type[Exception]:
    """redis-py's exception for a socket that timed out (one of `redis_errors`' retryable ones)."""
    import redis.exceptions

    return redis.exceptions.TimeoutError


def require_asyncio(what: str) -> None:
    """Raise a clear error unless the running event loop is asyncio.

    Raises:
        RuntimeError: running on trio (or anything but asyncio).
    """
    try:
        cancelled = anyio.get_cancelled_exc_class()
    except Exception:  # not inside any event loop anyio knows
        cancelled = None
    if cancelled is not asyncio.CancelledError:
        raise RuntimeError(
            f"{what} needs the asyncio backend: redis-py's client runs only on asyncio, not on trio. "
            "Run this part of the program with anyio.run(main) (the default backend is asyncio) "
            "or asyncio.run(main)."
        )


async def connect(url: str) -> Redis:
    """A redis-py asyncio client for `url`, after checking that the server answers and is new enough.

    Its replies are bytes, whatever ``decode_responses`` the URL sets.

    Cancellation: a cancellation point; a cancelled connect leaves nothing open.

    Raises:
        redis.exceptions.ConnectionError: the server does not answer.
        RuntimeError: the server is older than Redis 6.2.
    """
    aioredis = import_redis()
    client: Redis = aioredis.Redis.from_url(url)
    # The stream code reads bytes (ids, fields, script replies): a URL's
    # decode_responses=True, which from_url lets win over any keyword, is
    # turned off before the first connection is made.
    untyped_pool: Any = client.connection_pool
    untyped_pool.connection_kwargs["decode_responses"] = False
    try:
        untyped: Any = client  # redis-py's info() has an untyped **kwargs
        info: dict[str, Any] = await untyped.info("server")
        version = _version(str(info.get("redis_version", "")))
        if version < _MIN_VERSION:
            raise RuntimeError(
                f"workpool.redis needs Redis 6.2 or newer (7.0 recommended); {url!r} runs "
                f"{info.get('redis_version')}"
            )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await client.aclose()
        raise
    return client


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])
