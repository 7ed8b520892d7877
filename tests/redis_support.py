"""Shared by the Redis test modules: the server to use, unique names, and polling with a deadline.

The Redis tests run against a real server (``$WORKPOOL_TEST_REDIS_URL``,
default ``redis://127.0.0.1:6379/0``; `.ci/run` starts one).  Without one they
are skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import anyio
import attrs
import pytest
import redis

URL = os.environ.get("WORKPOOL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    try:
        with redis.Redis.from_url(URL, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as error:
        message = f"no Redis server answers at {URL}: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@attrs.frozen
class Names:
    stream: str
    group: str
    dead: str


def unique_names() -> Iterator[Names]:
    """Fresh stream, group and dead-letter names; both streams are deleted afterwards."""
    require_redis()
    token = uuid.uuid4().hex[:12]
    names = Names(f"workpool-test:{token}", f"group-{token}", f"workpool-test:{token}:dead")
    try:
        yield names
    finally:
        with redis.Redis.from_url(URL) as client:
            client.delete(names.stream, names.dead)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` (about the server) until it is true; bound it with the test's `anyio.fail_after`."""
    while not await check():
        await anyio.sleep(0.02)


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (about the test's own state) until it is true; bound it with `anyio.fail_after`."""
    while not condition():
        await anyio.sleep(0.02)
