"""`workpool.redis` against a real Redis server: delivery, retries, dead letters, claims, leases.

These tests run on the asyncio backend only: redis-py's client is
asyncio-only, which `test_trio_gets_a_clear_error` pins.  Each test uses its
own stream and group names and deletes its streams afterwards.  Nothing
waits on a sleep: a test polls Redis or its own records until a condition
holds, within a deadline.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import pytest
import redis.asyncio as aioredis

import workpool.redis
from redis_support import URL, Names, eventually, require_redis, unique_names, until
from workpool import AckingSource, Job, Pool, Retry
from workpool.redis import JsonCodec, RedisProducer, RedisStream, RedisStreamStats

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"debug": True})


@pytest.fixture
def names() -> Iterator[Names]:
    yield from unique_names()


@pytest.fixture
async def admin() -> AsyncIterator[aioredis.Redis]:
    """A plain client for the test's own look at the server."""
    client = aioredis.Redis.from_url(URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def stream_of(names: Names, **options: Any) -> RedisStream[Any]:
    return RedisStream(URL, stream=names.stream, group=names.group, dead_letter=names.dead, **options)


async def group_info(admin: aioredis.Redis, names: Names) -> dict[str, Any]:
    groups: list[dict[str, Any]] = await admin.xinfo_groups(names.stream)
    (info,) = [g for g in groups if g["name"] == names.group]
    return info


async def dead_letters(admin: aioredis.Redis, names: Names) -> list[dict[str, str]]:
    return [fields for _, fields in await admin.xrange(names.dead)]


def ignore_failures(job: Job[Any], exc: Exception) -> None:
    pass


@asynccontextmanager
async def consuming(
    source: RedisStream[Any], handler: Callable[[Any], Any], **pool_options: Any
) -> AsyncIterator[Pool]:
    """Consume `source` with `handler` in the background; close the pool when the block ends."""
    pool_options.setdefault("on_error", ignore_failures)
    async with source, Pool(**pool_options) as pool, anyio.create_task_group() as tg:
        tg.start_soon(pool.consume, source, handler)
        yield pool
        await pool.close()


async def test_every_job_runs_and_is_acknowledged(names: Names, admin: aioredis.Redis) -> None:
    seen: list[Any] = []

    async def handle(payload: Any) -> None:
        seen.append(payload)

    source = stream_of(names)
    with anyio.fail_after(10):
        async with RedisProducer(URL, stream=names.stream) as producer:
            ids = await producer.enqueue_many([{"n": n} for n in range(50)])
            ids.append(await producer.enqueue(["last", None, 1.5]))
        assert len(set(ids)) == 51
        async with consuming(source, handle, max_workers=5):
            await until(lambda: source.stats.acked == 51)
    assert sorted(p["n"] for p in seen if isinstance(p, dict)) == list(range(50))
    assert ["last", None, 1.5] in seen
    assert source.stats == RedisStreamStats(
        read=51, claimed=0, acked=51, retried=0, dead_lettered=0, outstanding=0
    )
    info = await group_info(admin, names)
    assert (info["pending"], info["lag"]) == (0, 0)
    # A consumer with nothing pending removes itself from the group when it closes.
    assert info["consumers"] == 0


async def test_a_failing_job_is_retried_then_dead_lettered(names: Names, admin: aioredis.Redis) -> None:
    attempts: Counter[str] = Counter()

    async def handle(payload: dict[str, str]) -> None:
        attempts[payload["name"]] += 1
        if payload["name"] == "always" or attempts["flaky"] == 1:
            raise RuntimeError(f"cannot handle {payload['name']}")

    source = stream_of(names, max_deliveries=3, claim_idle=0.1)
    with anyio.fail_after(20):
        async with consuming(source, handle, max_workers=2):
            always_id = await source.enqueue({"name": "always"})
            await source.enqueue({"name": "flaky"})
            await until(lambda: (source.stats.dead_lettered, source.stats.acked) == (1, 1))
    assert attempts == {"always": 3, "flaky": 2}
    assert source.stats.retried == 3  # always twice, flaky once
    (letter,) = await dead_letters(admin, names)
    assert letter["payload"] == '{"name":"always"}'
    assert letter["reason"] == "failed"
    assert letter["error"] == "RuntimeError: cannot handle always"
    assert "Traceback" in letter["traceback"]
    assert letter["deliveries"] == "3"
    assert (letter["source_stream"], letter["source_id"]) == (names.stream, always_id)
    assert (letter["group"], letter["consumer"]) == (names.group, source.consumer)
    assert (await group_info(admin, names))["pending"] == 0


async def test_undecodable_messages_go_to_dead_letter_at_once(names: Names, admin: aioredis.Redis) -> None:
    seen: list[Any] = []

    async def handle(payload: Any) -> None:
        seen.append(payload)

    await admin.xadd(names.stream, {"payload": "{not json"})
    await admin.xadd(names.stream, {"something": "else"})
    await admin.xadd(names.stream, {"payload": '"fine"'})
    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(source, handle, max_workers=2):
            await until(lambda: (source.stats.dead_lettered, source.stats.acked) == (2, 1))
    assert seen == ["fine"]
    bad_json, no_payload = await dead_letters(admin, names)
    assert bad_json["reason"] == no_payload["reason"] == "undecodable"
    assert bad_json["payload"] == "{not json"
    assert bad_json["error"].startswith("json.decoder.JSONDecodeError: ")
    assert no_payload["something"] == "else"
    assert no_payload["error"] == "the entry has no 'payload' field"
    assert bad_json["deliveries"] == "1"
    assert (await group_info(admin, names))["pending"] == 0


async def test_an_entry_with_thousands_of_fields_is_dead_lettered_with_its_payload(
    names: Names, admin: aioredis.Redis
) -> None:
    seen: list[Any] = []

    async def handle(payload: Any) -> None:
        seen.append(payload)

    many = {f"f{i}": "x" for i in range(5000)}
    await admin.xadd(names.stream, many)
    await admin.xadd(names.stream, {**many, "payload": "{not json"})
    await admin.xadd(names.stream, {"payload": '"fine"'})
    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(source, handle):
            await until(lambda: (source.stats.dead_lettered, source.stats.acked) == (2, 1))
    assert seen == ["fine"]
    no_payload, bad_json = await dead_letters(admin, names)
    assert no_payload["reason"] == bad_json["reason"] == "undecodable"
    assert "payload" not in no_payload
    assert (no_payload["dropped_fields"], bad_json["dropped_fields"]) == ("5000", "5000")
    assert bad_json["payload"] == "{not json"
    assert "f0" not in bad_json
    assert (await group_info(admin, names))["pending"] == 0


async def test_a_dead_letter_that_fails_is_logged_and_the_consumer_goes_on(
    names: Names, admin: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []

    async def handle(payload: Any) -> None:
        seen.append(payload)

    await admin.set(names.dead, "not a stream")  # every XADD to it fails (WRONGTYPE)
    undecodable = await admin.xadd(names.stream, {"payload": "{not json"})
    await admin.xadd(names.stream, {"payload": '"fine"'})
    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(source, handle):
            await until(lambda: source.stats.acked == 1)
    assert seen == ["fine"]
    assert source.stats.dead_lettered == 0
    (record,) = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "workpool.redis"]
    assert "WRONGTYPE" in record.getMessage()
    assert undecodable in record.getMessage()
    pending = await admin.xpending_range(names.stream, names.group, "-", "+", 10)
    assert [entry["message_id"] for entry in pending] == [undecodable]  # to be tried again


class IntCodec:
    """A codec of non-negative ints as decimal text; anything else is undecodable."""

    def encode(self, payload: int, /) -> bytes:
        return str(payload).encode()

    def decode(self, data: bytes, /) -> int:
        if not data.isdigit():
            raise ValueError(f"not a non-negative int: {data!r}")
        return int(data)


async def test_the_codec_is_pluggable(names: Names, admin: aioredis.Redis) -> None:
    seen: list[int] = []

    async def handle(payload: int) -> None:
        seen.append(payload)

    source = RedisStream(
        URL, stream=names.stream, group=names.group, dead_letter=names.dead, codec=IntCodec()
    )
    with anyio.fail_after(10):
        async with RedisProducer(URL, stream=names.stream, codec=IntCodec()) as producer:
            await producer.enqueue_many([1, 2, 3])
        await admin.xadd(names.stream, {"payload": "-4"})
        async with consuming(source, handle):
            await until(lambda: source.stats.dead_lettered == 1)
            await until(lambda: source.stats.acked == 3)
    assert sorted(seen) == [1, 2, 3]
    (letter,) = await dead_letters(admin, names)
    assert letter["error"] == "ValueError: not a non-negative int: b'-4'"


async def test_a_job_that_hits_job_timeout_is_delivered_again(names: Names) -> None:
    attempts = 0

    async def handle(payload: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await anyio.sleep_forever()

    source = stream_of(names, claim_idle=0.2)
    with anyio.fail_after(10):
        async with consuming(source, handle, job_timeout=0.1) as pool:
            await source.enqueue(1)
            await until(lambda: source.stats.acked == 1)
    assert attempts == 2
    assert pool.stats.failed == 1
    assert (source.stats.retried, source.stats.outstanding) == (1, 0)


async def test_a_job_the_pool_retries_is_acknowledged_once(names: Names, admin: aioredis.Redis) -> None:
    attempts = 0
    failures: list[Exception] = []

    async def handle(payload: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("flaky SMTP server")

    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(
            source,
            handle,
            retry=Retry(attempts=2, backoff=0.001),
            on_error=lambda job, exc: failures.append(exc),
        ) as pool:
            await source.enqueue(1)
            await until(lambda: pool.stats.completed + pool.stats.failed == 1)
    assert (attempts, failures) == (2, [])
    assert (source.stats.acked, source.stats.retried) == (1, 0)
    assert (await group_info(admin, names))["pending"] == 0


async def test_a_dead_consumers_messages_are_claimed(names: Names, admin: aioredis.Redis) -> None:
    seen: list[int] = []

    async def handle(payload: int) -> None:
        seen.append(payload)

    async with RedisProducer(URL, stream=names.stream) as producer:
        await producer.enqueue_many(range(5))
    # A consumer reads three messages and dies without acknowledging them.
    await admin.xgroup_create(names.stream, names.group, id="0")
    await admin.xreadgroup(names.group, "ghost", {names.stream: ">"}, count=3)
    source = stream_of(names, claim_idle=0.2)
    with anyio.fail_after(10):
        async with consuming(source, handle, max_workers=2):
            await until(lambda: source.stats.acked == 5)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert (source.stats.read, source.stats.claimed) == (2, 3)
    assert (await group_info(admin, names))["pending"] == 0


async def test_a_message_abandoned_too_often_is_dead_lettered_unrun(
    names: Names, admin: aioredis.Redis
) -> None:
    seen: list[Any] = []

    async def handle(payload: Any) -> None:
        seen.append(payload)

    message_id = await admin.xadd(names.stream, {"payload": '"poison"'})
    await admin.xgroup_create(names.stream, names.group, id="0")
    await admin.xreadgroup(names.group, "ghost", {names.stream: ">"}, count=1)
    # Delivered (and never acknowledged) as often as allowed: consumers that
    # ran it kept dying.
    await admin.xclaim(names.stream, names.group, "ghost", 0, [message_id], retrycount=2, justid=True)
    source = stream_of(names, claim_idle=0.05, max_deliveries=2)
    with anyio.fail_after(10):
        async with consuming(source, handle):
            await until(lambda: source.stats.dead_lettered == 1)
    assert seen == []
    (letter,) = await dead_letters(admin, names)
    assert letter["reason"] == "abandoned"
    assert letter["deliveries"] == "2"
    assert letter["payload"] == '"poison"'
    assert (await group_info(admin, names))["pending"] == 0


async def test_it_never_holds_more_messages_than_the_pool_can_take(
    names: Names, admin: aioredis.Redis
) -> None:
    release = anyio.Event()
    held_at_start: list[int] = []
    source = stream_of(names)

    async def pending_here() -> int:
        summary = await admin.xpending(names.stream, names.group)
        return sum(c["pending"] for c in summary["consumers"] if c["name"] == source.consumer)

    async def handle(payload: int) -> None:
        held_at_start.append(await pending_here())
        await release.wait()

    async with RedisProducer(URL, stream=names.stream) as producer:
        await producer.enqueue_many(range(20))
    with anyio.fail_after(15):
        # Two running, one queued: three messages at most.
        async with consuming(source, handle, max_workers=2, max_pending=1) as pool:
            await until(lambda: (pool.stats.busy, pool.stats.queued) == (2, 1))
            assert await pending_here() == 3
            assert (await group_info(admin, names))["lag"] == 17
            release.set()
            await until(lambda: source.stats.acked == 20)
    assert max(held_at_start) <= 3


async def test_closing_the_pool_finishes_the_messages_it_fetched(names: Names, admin: aioredis.Redis) -> None:
    release = anyio.Event()
    done: list[int] = []

    async def handle(payload: int) -> None:
        await release.wait()
        done.append(payload)

    async with RedisProducer(URL, stream=names.stream) as producer:
        await producer.enqueue_many(range(10))
    source = stream_of(names)
    with anyio.fail_after(15):
        async with source, Pool(max_workers=1, max_pending=3) as pool, anyio.create_task_group() as tg:
            tg.start_soon(pool.consume, source, handle)
            await until(lambda: (pool.stats.busy, pool.stats.queued) == (1, 3))
            closing = anyio.Event()

            async def close() -> None:
                closing.set()
                await pool.close()  # stops intake before its first checkpoint

            tg.start_soon(close)
            await closing.wait()
            release.set()
        # The one running and the three fetched but not started all ran.
        assert sorted(done) == [0, 1, 2, 3]
        info = await group_info(admin, names)
        assert (info["pending"], info["lag"]) == (0, 6)

        rest = stream_of(names)
        async with consuming(rest, handle):
            await until(lambda: rest.stats.acked == 6)
    assert sorted(done) == list(range(10))


async def test_cancelled_jobs_messages_are_handed_back_at_once(names: Names, admin: aioredis.Redis) -> None:
    started = 0

    async def hang(payload: int) -> None:
        nonlocal started
        started += 1
        await anyio.sleep_forever()

    async with RedisProducer(URL, stream=names.stream) as producer:
        await producer.enqueue_many(range(4))
    first = stream_of(names)
    with anyio.fail_after(15):
        async with first, Pool(max_workers=2, max_pending=0) as pool, anyio.create_task_group() as tg:
            tg.start_soon(pool.consume, first, hang)
            await until(lambda: started == 2)
            pool.cancel()
        assert first.stats.outstanding == 0
        held = await admin.xpending_range(names.stream, names.group, "-", "+", 10)
        assert [entry["consumer"] for entry in held] == [first.consumer] * 2
        assert all(entry["time_since_delivered"] > 300 * 24 * 3600 * 1000 for entry in held)

        # A consumer that would claim only after a minute takes them at its first scan.
        done: list[int] = []

        async def handle(payload: int) -> None:
            done.append(payload)

        second = stream_of(names, claim_idle=60)
        async with consuming(second, handle):
            await until(lambda: second.stats.acked == 4)
    assert sorted(done) == [0, 1, 2, 3]
    assert (second.stats.claimed, second.stats.read) == (2, 2)


async def test_a_long_job_keeps_its_message(names: Names, admin: aioredis.Redis) -> None:
    release = anyio.Event()
    ran_on: list[str] = []
    busy = stream_of(names, claim_idle=0.3)
    idle = stream_of(names, claim_idle=0.3)

    async def slow(payload: int) -> None:
        ran_on.append("busy")
        await release.wait()

    async def spy(payload: int) -> None:
        ran_on.append("idle")

    with anyio.fail_after(15):
        async with consuming(busy, slow, max_workers=1, max_pending=0):
            await busy.enqueue(1)
            await until(lambda: ran_on == ["busy"])
            async with consuming(idle, spy):
                # Four times claim_idle: the lease must be renewed to survive it.
                deadline = anyio.current_time() + 1.2
                while anyio.current_time() < deadline:
                    (entry,) = await admin.xpending_range(names.stream, names.group, "-", "+", 10)
                    assert entry["consumer"] == busy.consumer
                    assert entry["time_since_delivered"] < 300
                    await anyio.sleep(0.05)
                release.set()
                await until(lambda: busy.stats.acked == 1)
    assert ran_on == ["busy"]
    assert idle.stats.claimed == 0


async def test_identical_payload_objects_are_acknowledged_one_each(
    names: Names, admin: aioredis.Redis
) -> None:
    # json.loads returns the same cached object for each small int.
    all_started = anyio.Event()
    started = 0

    async def handle(payload: int) -> None:
        nonlocal started
        started += 1
        if started == 6:
            all_started.set()
        await all_started.wait()

    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(source, handle, max_workers=6):
            for _ in range(6):
                await source.enqueue(7)
            await until(lambda: source.stats.acked == 6)
    assert (await group_info(admin, names))["pending"] == 0


async def test_a_failure_among_identical_payload_objects_counts_against_the_least_delivered(
    names: Names, admin: aioredis.Redis
) -> None:
    # Both messages decode to the same object (json.loads caches small ints),
    # so ack and nack cannot tell which one a job had: a failure must not
    # dead-letter the one on its last delivery while the other has
    # deliveries left.
    last_try = await admin.xadd(names.stream, {"payload": "1"})
    await admin.xgroup_create(names.stream, names.group, id="0")
    await admin.xreadgroup(names.group, "dead-consumer", {names.stream: ">"}, count=1)
    await admin.xclaim(names.stream, names.group, "dead-consumer", 0, [last_try], idle=3_600_000, justid=True)
    first_try = await admin.xadd(names.stream, {"payload": "1"})
    calls = 0
    release = anyio.Event()

    async def handle(payload: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the claimed message, on its last delivery
            await release.wait()
        else:
            raise ValueError("fails on its first delivery")

    source = stream_of(names, max_deliveries=2)
    with anyio.fail_after(10):
        async with consuming(source, handle, max_workers=2):
            await until(lambda: source.stats.retried + source.stats.dead_lettered == 1)
            release.set()
            await until(lambda: source.stats.acked == 1)
    assert (source.stats.claimed, source.stats.read, source.stats.dead_lettered) == (1, 1, 0)
    assert await admin.xlen(names.dead) == 0
    pending = await admin.xpending_range(names.stream, names.group, "-", "+", 10)
    assert [entry["message_id"] for entry in pending] == [first_try]


async def test_a_deleted_stream_and_group_are_created_again(names: Names, admin: aioredis.Redis) -> None:
    seen: list[int] = []

    async def handle(payload: int) -> None:
        seen.append(payload)

    source = stream_of(names)
    with anyio.fail_after(10):
        async with consuming(source, handle):
            await source.enqueue(1)
            await until(lambda: source.stats.acked == 1)
            await admin.delete(names.stream)

            async def readded() -> bool:
                # Until the consumer has recreated the group, XADD would make a
                # stream without it; wait for the group before adding.
                try:
                    await group_info(admin, names)
                except aioredis.ResponseError:
                    return False
                return True

            await eventually(readded)
            await source.enqueue(2)
            await until(lambda: source.stats.acked == 2)
    assert seen == [1, 2]


class GroupCreateCutter:
    """A TCP proxy to the test server that, once armed, drops the connection
    carrying the next XGROUP command instead of forwarding it."""

    def __init__(self) -> None:
        self.armed = False
        self.cut = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve until the block ends; yields the URL to connect through."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._handle)
            yield f"redis://127.0.0.1:{port}/0"
            tg.cancel_scope.cancel()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        target = urlsplit(URL)
        async with (
            client,
            await anyio.connect_tcp(target.hostname or "127.0.0.1", target.port or 6379) as server,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._pipe, client, server, True)
            tg.start_soon(self._pipe, server, client, False)

    async def _pipe(self, src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream, inspect: bool) -> None:
        try:
            async for chunk in src:
                if inspect and self.armed and b"XGROUP" in chunk.upper():
                    self.armed = False
                    self.cut += 1
                    await src.aclose()
                    return
                await dst.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        finally:
            await dst.aclose()


async def test_a_connection_error_while_creating_the_group_again_is_retried(
    names: Names, admin: aioredis.Redis
) -> None:
    seen: list[int] = []

    async def handle(payload: int) -> None:
        seen.append(payload)

    async def group_back() -> bool:
        try:
            await group_info(admin, names)
        except (aioredis.ResponseError, ValueError):
            return False
        return True

    proxy = GroupCreateCutter()
    with anyio.fail_after(15):
        async with proxy.running() as proxy_url:
            source = RedisStream(proxy_url, stream=names.stream, group=names.group, dead_letter=names.dead)
            async with consuming(source, handle):
                await source.enqueue(1)
                await until(lambda: source.stats.acked == 1)
                proxy.armed = True
                await admin.delete(names.stream)
                await eventually(group_back)
                await admin.xadd(names.stream, {"payload": "2"})
                await until(lambda: source.stats.acked == 2)
    assert proxy.cut == 1
    assert seen == [1, 2]


async def test_a_url_socket_timeout_of_one_second_keeps_reads_quiet(
    names: Names, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reads = 0
    read_new = RedisStream._read_new

    async def counting(self: RedisStream[Any], block: float) -> Any:
        nonlocal reads
        reads += 1
        return await read_new(self, block)

    monkeypatch.setattr(RedisStream, "_read_new", counting)
    source = RedisStream(
        URL + "?socket_timeout=1", stream=names.stream, group=names.group, dead_letter=names.dead
    )
    got: list[Any] = []
    with anyio.fail_after(20):
        async with source, anyio.create_task_group() as tg:

            async def read_one() -> None:
                got.append(await source.__anext__())

            tg.start_soon(read_one)
            await until(lambda: reads >= 4)  # three blocking reads came back empty
            await source.enqueue(1)
            await until(lambda: got == [1])
            await source.ack(1)
    assert [r.getMessage() for r in caplog.records if r.name == "workpool.redis"] == []


async def test_a_read_that_times_out_is_no_message(
    names: Names, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.exceptions

    timeouts = 0
    xreadgroup = aioredis.Redis.xreadgroup

    async def times_out_once(self: aioredis.Redis, *args: Any, **kwargs: Any) -> Any:
        nonlocal timeouts
        if timeouts == 0:
            timeouts += 1
            raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")
        return await xreadgroup(self, *args, **kwargs)

    monkeypatch.setattr(aioredis.Redis, "xreadgroup", times_out_once)
    with anyio.fail_after(10):
        async with stream_of(names) as source:
            await source.enqueue(1)
            assert await source.__anext__() == 1
            await source.ack(1)
    assert timeouts == 1
    assert [r.getMessage() for r in caplog.records if r.name == "workpool.redis"] == []


async def test_a_url_with_decode_responses_still_works(names: Names, admin: aioredis.Redis) -> None:
    url = URL + "?decode_responses=True"
    source = RedisStream(url, stream=names.stream, group=names.group, dead_letter=names.dead)
    with anyio.fail_after(10):
        async with RedisProducer(url, stream=names.stream) as producer:
            message_id = await producer.enqueue({"a": 1})
        async with source:
            item = await source.__anext__()
            assert item == {"a": 1}
            await source.ack(item)
    assert isinstance(message_id, str)
    assert await admin.xlen(names.dead) == 0
    assert (await group_info(admin, names))["pending"] == 0


async def test_the_producer_trims_the_stream_to_about_maxlen(names: Names, admin: aioredis.Redis) -> None:
    async with RedisProducer(URL, stream=names.stream, maxlen=100) as producer:
        await producer.enqueue_many(range(1000))
        await producer.enqueue(1000)
    assert 100 <= await admin.xlen(names.stream) < 400


async def test_an_error_in_the_block_is_not_wrapped(names: Names) -> None:
    with anyio.fail_after(10), pytest.raises(LookupError, match=r"^boom$"):
        async with stream_of(names):
            raise LookupError("boom")


async def test_outcomes_for_unknown_items_and_closed_streams(names: Names) -> None:
    with anyio.fail_after(10):
        await _misuse(names)


async def _misuse(names: Names) -> None:
    source = stream_of(names)
    with pytest.raises(RuntimeError, match="not open"):
        await source.__anext__()
    with pytest.raises(RuntimeError, match="not open"):
        await source.enqueue(1)
    async with source:
        assert isinstance(source, AckingSource)
        with pytest.raises(ValueError, match="not an outstanding item"):
            await source.ack(object())
        with pytest.raises(ValueError, match="not an outstanding item"):
            await source.nack(object(), RuntimeError())
    with pytest.raises(RuntimeError, match="closed"):
        await source.__anext__()
    with pytest.raises(RuntimeError, match="only once"):
        async with source:
            pass
    producer: RedisProducer[Any] = RedisProducer(URL, stream=names.stream)
    with pytest.raises(RuntimeError, match="not open"):
        await producer.enqueue(1)


async def test_the_longest_claim_idle_is_one_redis_takes(names: Names) -> None:
    with anyio.fail_after(10):
        async with stream_of(names, claim_idle=365 * 24 * 3600) as source:
            await source.enqueue(1)
            assert await source.__anext__() == 1
            await source.ack(1)
    assert source.stats.acked == 1


def test_trio_gets_a_clear_error() -> None:
    require_redis()

    async def open_stream() -> None:
        async with RedisStream(URL, stream="never-created", group="g"):
            pass  # pragma: no cover

    async def open_producer() -> None:
        async with RedisProducer(URL, stream="never-created"):
            pass  # pragma: no cover

    for main in (open_stream, open_producer):
        with pytest.raises(
            RuntimeError, match=r"needs the asyncio backend: redis-py's client runs only on asyncio"
        ):
            anyio.run(main, backend="trio")


def test_a_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'workpool\[redis\]'"):
        RedisStream(URL, stream="s", group="g")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'workpool\[redis\]'"):
        RedisProducer(URL, stream="s")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"stream": ""}, ValueError, "stream must not be empty"),
        ({"group": 3}, TypeError, "group must be a str"),
        ({"max_deliveries": 0}, ValueError, "max_deliveries must be a positive int"),
        ({"max_deliveries": True}, TypeError, "max_deliveries must be a positive int"),
        ({"claim_idle": 0}, ValueError, "claim_idle must be at least 0.001 s"),
        ({"claim_idle": float("inf")}, ValueError, "claim_idle must be at least 0.001 s and finite"),
        ({"claim_idle": "1"}, TypeError, "claim_idle must be a number of seconds"),
        ({"claim_idle": 1e300}, ValueError, r"claim_idle must be at most 31536000 s \(365 days\)"),
        ({"claim_idle": 31_536_000.5}, ValueError, "claim_idle must be at most 31536000 s"),
        ({"dead_letter": "s"}, ValueError, "dead_letter must be another stream"),
        ({"maxlen": 0}, ValueError, "maxlen must be a positive int or None"),
    ],
)
def test_bad_arguments_are_rejected(options: dict[str, Any], error: type[Exception], match: str) -> None:
    arguments: dict[str, Any] = {"stream": "s", "group": "g", **options}
    with pytest.raises(error, match=match):
        RedisStream(URL, **arguments)


@pytest.mark.parametrize(
    ("codec", "match"),
    [
        (None, "codec must be an object with encode"),
        ("json", "codec must be an object with encode"),
        (
            JsonCodec,
            r"codec must be a codec instance, got the class JsonCodec \(did you mean JsonCodec\(\)\?\)",
        ),
    ],
)
def test_a_codec_that_is_not_a_codec_is_rejected(codec: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        RedisStream(URL, stream="s", group="g", codec=codec)
    with pytest.raises(TypeError, match=match):
        RedisProducer(URL, stream="s", codec=codec)


def test_the_public_api_is_pinned_and_documented() -> None:
    assert workpool.redis.__all__ == (
        "Codec",
        "JsonCodec",
        "RedisProducer",
        "RedisStream",
        "RedisStreamStats",
    )
    for name in workpool.redis.__all__:
        obj = getattr(workpool.redis, name)
        assert (vars(obj).get("__doc__") or "").strip(), name
        for member, value in vars(obj).items():
            if member.startswith("_") and member not in ("__aenter__", "__aexit__", "__anext__"):
                continue
            target = value.fget if isinstance(value, property) else value
            if callable(target) or isinstance(value, property):
                assert (getattr(target, "__doc__", None) or "").strip(), f"{name}.{member}"
    # ("@py_builtins" and the like: pytest rewrites the asserts of plugin packages.)
    public = {n for n in vars(workpool.redis) if n[0] not in "_@"} - {"annotations"}
    assert public == set(workpool.redis.__all__)
    assert repr(JsonCodec()) == "JsonCodec()"


async def test_an_error_in_the_block_propagates_and_its_messages_are_handed_back(
    names: Names, admin: aioredis.Redis
) -> None:
    started = anyio.Event()

    async def hang(payload: int) -> None:
        started.set()
        await anyio.sleep_forever()

    source = stream_of(names)
    with anyio.fail_after(10):
        # The task group in the block wraps the error; the stream lets it through as it is.
        with pytest.RaisesGroup(pytest.RaisesExc(LookupError, match=r"^boom$")):
            async with source, Pool() as pool, anyio.create_task_group() as tg:
                tg.start_soon(pool.consume, source, hang)
                await source.enqueue(1)
                await started.wait()
                raise LookupError("boom")
    (entry,) = await admin.xpending_range(names.stream, names.group, "-", "+", 10)
    assert entry["time_since_delivered"] > 300 * 24 * 3600 * 1000


def test_the_guide_example_runs(names: Names) -> None:
    # docs/redis.md's quick start is a whole program; run it as written, on this
    # test's keys (its dead-letter stream, STREAM:dead, is names.dead).
    guide = (Path(__file__).parents[1] / "docs" / "redis.md").read_text()
    block = guide.split("# example: quickstart\n", 1)[1].split("```", 1)[0]
    keys = 'STREAM, GROUP = "mail", "mailers"'
    assert keys in block
    program = block.replace(keys, f"STREAM, GROUP = {names.stream!r}, {names.group!r}")
    program = program.replace('URL = "redis://127.0.0.1:6379/0"', f"URL = {URL!r}")
    exec(compile(program, "docs/redis.md", "exec"), {"__name__": "__main__"})
